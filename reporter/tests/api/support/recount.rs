//! Recounts every rollup table from the stored events in plain Rust and
//! compares it with the tables' non-zero rows.
use super::{Event, TestApp};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Recounts every rollup table from `stored` in Rust and compares it with
/// the table's non-zero rows.
pub async fn check_rollup_tables(app: &TestApp, stored: &[Event]) {
    fn floor(t: DateTime<Utc>, w: i64) -> DateTime<Utc> {
        let w = w * 1_000_000;
        DateTime::from_timestamp_micros(t.timestamp_micros().div_euclid(w) * w).expect("time")
    }
    type Key = (i32, DateTime<Utc>, String, String, String, String);
    let mut counts: BTreeMap<Key, i64> = BTreeMap::new();
    let mut money: BTreeMap<Key, (Decimal, i64)> = BTreeMap::new();
    for e in stored {
        for w in [60, 3_600, 86_400] {
            let k = (
                w as i32,
                floor(e.occurred_at, w),
                "events".to_string(),
                e.source.clone(),
                e.funnel_stage.clone(),
                e.event_type.clone(),
            );
            *counts.entry(k).or_default() += 1;
            if let Some(r) = e.revenue {
                let k = (
                    w as i32,
                    floor(e.occurred_at, w),
                    "revenue".to_string(),
                    e.source.clone(),
                    String::new(),
                    String::new(),
                );
                let s = money.entry(k).or_default();
                s.0 += r;
                s.1 += 1;
            }
        }
        for w in [600, 3_600, 86_400] {
            let b = floor(e.occurred_at, w);
            if let (Some(r), Some(c)) = (e.revenue, &e.campaign_id) {
                let k = (
                    w as i32,
                    b,
                    "campaign".to_string(),
                    e.source.clone(),
                    c.clone(),
                    String::new(),
                );
                let s = money.entry(k).or_default();
                s.0 += r;
                s.1 += 1;
            }
            let mut facts: Vec<(&str, String, String)> = Vec::new();
            if let Some(a) = e.age {
                let label = match a {
                    ..=17 => "<18",
                    18..=24 => "18-24",
                    25..=34 => "25-34",
                    35..=44 => "35-44",
                    45..=54 => "45-54",
                    55..=64 => "55-64",
                    _ => "65+",
                };
                facts.push(("age", label.into(), String::new()));
            }
            if let Some(g) = &e.gender {
                facts.push(("gender", g.clone(), String::new()));
            }
            if let Some(c) = &e.country {
                facts.push(("location", c.clone(), e.city.clone().unwrap_or_default()));
            }
            if let Some(f) = e.followers {
                let label = match f {
                    ..=999 => "0-999",
                    1_000..=9_999 => "1K-9.9K",
                    10_000..=99_999 => "10K-99.9K",
                    100_000..=999_999 => "100K-999.9K",
                    _ => "1M+",
                };
                facts.push(("followers", label.into(), String::new()));
            }
            if let Some(d) = &e.device {
                facts.push(("device", d.clone(), String::new()));
            }
            for (dim, v, detail) in facts {
                let k = (
                    w as i32,
                    b,
                    format!("demo:{dim}"),
                    e.source.clone(),
                    v,
                    detail,
                );
                *counts.entry(k).or_default() += 1;
            }
        }
    }
    let mut got_counts: BTreeMap<Key, i64> = BTreeMap::new();
    let rows: Vec<(i32, DateTime<Utc>, String, String, String, i64)> = sqlx::query_as(
        "SELECT width, bucket, source, funnel_stage, event_type, events FROM rollup_events WHERE events <> 0",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rollup_events");
    for (w, b, s, st, t, n) in rows {
        got_counts.insert((w, b, "events".into(), s, st, t), n);
    }
    type DemoRow = (i32, DateTime<Utc>, String, String, String, String, i64);
    let rows: Vec<DemoRow> = sqlx::query_as(
        "SELECT width, bucket, source, dimension, value, detail, events FROM rollup_demographics WHERE events <> 0",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rollup_demographics");
    for (w, b, s, dim, v, d, n) in rows {
        got_counts.insert((w, b, format!("demo:{dim}"), s, v, d), n);
    }
    assert_eq!(
        got_counts, counts,
        "count rollups differ from the raw events"
    );

    let mut got_money: BTreeMap<Key, (Decimal, i64)> = BTreeMap::new();
    let rows: Vec<(i32, DateTime<Utc>, String, Decimal, i64)> = sqlx::query_as(
        "SELECT width, bucket, source, revenue, transactions FROM rollup_revenue WHERE transactions <> 0 OR revenue <> 0",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rollup_revenue");
    for (w, b, s, r, n) in rows {
        got_money.insert(
            (w, b, "revenue".into(), s, String::new(), String::new()),
            (r.normalize(), n),
        );
    }
    let rows: Vec<(i32, DateTime<Utc>, String, String, Decimal, i64)> = sqlx::query_as(
        "SELECT width, bucket, source, campaign_id, revenue, transactions FROM rollup_revenue_campaigns WHERE transactions <> 0 OR revenue <> 0",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rollup_revenue_campaigns");
    for (w, b, s, c, r, n) in rows {
        got_money.insert(
            (w, b, "campaign".into(), s, c, String::new()),
            (r.normalize(), n),
        );
    }
    let money: BTreeMap<Key, (Decimal, i64)> = money
        .into_iter()
        .map(|(k, (r, n))| (k, (r.normalize(), n)))
        .collect();
    assert_eq!(got_money, money, "money rollups differ from the raw events");
}
