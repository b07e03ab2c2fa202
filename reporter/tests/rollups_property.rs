//! Property-style: on randomized data (duplicates, out-of-order batches,
//! microsecond edges, deletes and updates), every report equals the raw
//! computation and every rollup row equals a recount of the raw events.
mod support;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use support::model::{demographics_report, events_report, revenue_report, Query};
use support::{at, recount, Event, TestApp};

fn seed() -> u64 {
    let seed = std::env::var("PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed = {seed} (set PROPTEST_SEED to replay)");
    seed
}

const T0: &str = "2024-02-27T22:00:00Z";
const SPAN_HOURS: i64 = 80;
const WIDTHS: [i64; 4] = [86_400, 3_600, 600, 60];

fn random_time(rng: &mut StdRng) -> DateTime<Utc> {
    let t = at(T0) + TimeDelta::microseconds(rng.gen_range(0..SPAN_HOURS * 3_600_000_000));
    // Many events sit exactly on bucket edges, where off-by-ones would show.
    match rng.gen_range(0..10) {
        0..=3 => {
            let w = WIDTHS[rng.gen_range(0..WIDTHS.len())] * 1_000_000;
            let us = t.timestamp_micros().div_euclid(w) * w;
            DateTime::from_timestamp_micros(us).expect("time")
        }
        _ => t,
    }
}

fn random_event(rng: &mut StdRng, id: usize) -> Event {
    let t = random_time(rng);
    let (source, stage, types): (&str, &str, &[&str]) = match rng.gen_range(0..6) {
        0 | 1 => ("facebook", "top", &["ad.view", "comment", "video.view"]),
        2 => ("facebook", "bottom", &["ad.click", "checkout.complete"]),
        3 => ("tiktok", "top", &["video.view", "comment", "like"]),
        4 => ("tiktok", "bottom", &["purchase", "follow"]),
        _ => (
            "newsrc",
            if rng.gen_bool(0.5) { "top" } else { "bottom" },
            &["comment", "order"],
        ),
    };
    let event_type = types[rng.gen_range(0..types.len())];
    let mut e = Event::at(&format!("ev-{id}"), source, stage, event_type, t);
    if matches!(event_type, "checkout.complete" | "purchase" | "order") && rng.gen_bool(0.9) {
        e.revenue = Some(Decimal::new(rng.gen_range(0..500_000), 2));
    }
    if stage == "bottom" && source != "tiktok" && rng.gen_bool(0.8) {
        e.campaign_id = Some(format!("camp-{}", rng.gen_range(0..8)));
    }
    let countries = ["Poland", "Ukraine", "Brazil", "Japan"];
    let cities = ["A", "B", "Ö"];
    match source {
        "facebook" => {
            e.age = Some(rng.gen_range(13..90));
            e.gender = Some(["male", "female", "non-binary"][rng.gen_range(0..3)].into());
            e.country = Some(countries[rng.gen_range(0..4)].into());
            e.city = Some(cities[rng.gen_range(0..3)].into());
        }
        "tiktok" => {
            e.followers = Some(10f64.powf(rng.gen_range(0.0..7.0)) as i64);
            if stage == "top" {
                e.country = Some(countries[rng.gen_range(0..4)].into());
                e.device = Some(["Android", "iOS", "Desktop"][rng.gen_range(0..3)].into());
            }
        }
        _ => {
            // A new source filling columns unevenly.
            if rng.gen_bool(0.5) {
                e.device = Some("tv".into());
            }
            if rng.gen_bool(0.3) {
                e.country = Some(countries[rng.gen_range(0..4)].into());
            }
        }
    }
    e
}

/// Inserts `events` in shuffled batches, re-sending some (which must not
/// count). Returns what the database keeps.
async fn load(app: &TestApp, rng: &mut StdRng, n: usize) -> Vec<Event> {
    let events: Vec<Event> = (0..n).map(|i| random_event(rng, i)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut kept = BTreeMap::new();
    for chunk in order.chunks(rng.gen_range(50..400)) {
        let mut batch: Vec<Event> = chunk.iter().map(|&i| events[i].clone()).collect();
        // Re-deliveries: of this batch (same statement) and of earlier ones,
        // sometimes with different content — the first write wins.
        for _ in 0..rng.gen_range(0..20) {
            let mut dup = events[rng.gen_range(0..n)].clone();
            if rng.gen_bool(0.5) {
                dup.occurred_at = random_time(rng);
            }
            batch.push(dup);
        }
        let expected_new = batch
            .iter()
            .filter(|e| !kept.contains_key(&e.event_id))
            .map(|e| e.event_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        assert_eq!(app.insert(&batch).await, expected_new);
        for e in batch {
            kept.entry(e.event_id.clone()).or_insert(e);
        }
    }
    kept.into_values().collect()
}

fn random_bound(rng: &mut StdRng) -> Option<(String, bool)> {
    // (value, is a bare date)
    match rng.gen_range(0..10) {
        0 | 1 => None,
        2 => {
            let t = random_time(rng);
            Some((t.format("%Y-%m-%d").to_string(), true))
        }
        3..=5 => Some((
            random_time(rng).to_rfc3339_opts(SecondsFormat::AutoSi, true),
            false,
        )),
        _ => {
            let t = at(T0) + TimeDelta::microseconds(rng.gen_range(0..SPAN_HOURS * 3_600_000_000));
            let off = FixedOffset::east_opt(rng.gen_range(-12..=14) * 1800).expect("offset");
            Some((
                t.with_timezone(&off)
                    .to_rfc3339_opts(SecondsFormat::Micros, false),
                false,
            ))
        }
    }
}

fn random_query(rng: &mut StdRng) -> Query {
    loop {
        let mut q = Query::new();
        if let Some((v, date)) = random_bound(rng) {
            q = if date { q.start_date(&v) } else { q.start(&v) };
        }
        if let Some((v, date)) = random_bound(rng) {
            q = if date { q.end_date(&v) } else { q.end(&v) };
        }
        if let (Some(f), Some(t)) = (q.from, q.to) {
            if f > t {
                continue;
            }
        }
        if rng.gen_bool(0.3) {
            q = q.source(["facebook", "tiktok", "newsrc", "ghost"][rng.gen_range(0..4)]);
        }
        if rng.gen_bool(0.4) {
            q = q.granularity(["minute", "hour", "day"][rng.gen_range(0..3)]);
        }
        return q;
    }
}

async fn check_reports(app: &TestApp, rng: &mut StdRng, stored: &[Event], rounds: usize) {
    for _ in 0..rounds {
        let base = random_query(rng);
        let mut q = base.clone();
        if rng.gen_bool(0.3) {
            q = q.stage(["top", "bottom"][rng.gen_range(0..2)]);
        }
        if rng.gen_bool(0.3) {
            q = q.event_type(["comment", "video.view", "purchase", "order"][rng.gen_range(0..4)]);
        }
        let url = q.url("/api/v1/reports/events");
        assert_eq!(app.ok(&url).await, events_report(stored, &q), "{url}");

        let mut q = base.clone();
        if rng.gen_bool(0.3) {
            q = q.campaign(&format!("camp-{}", rng.gen_range(0..9)));
        }
        if rng.gen_bool(0.3) {
            q = q.limit(rng.gen_range(1..6));
        }
        let url = q.url("/api/v1/reports/revenue");
        assert_eq!(app.ok(&url).await, revenue_report(stored, &q), "{url}");

        let mut q = base;
        if rng.gen_bool(0.3) {
            q = q.limit(rng.gen_range(1..6));
        }
        let url = q.url("/api/v1/reports/demographics");
        assert_eq!(app.ok(&url).await, demographics_report(stored, &q), "{url}");
    }
}

#[tokio::test]
async fn reports_equal_the_raw_computation_on_random_data() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let stored = load(&app, &mut rng, 4_000).await;
    recount::check_rollup_tables(&app, &stored).await;
    check_reports(&app, &mut rng, &stored, 40).await;
    app.cleanup().await;
}

#[tokio::test]
async fn deletes_updates_and_truncates_are_mirrored() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let mut stored = load(&app, &mut rng, 1_500).await;

    // Retention-style delete of a random third.
    stored.shuffle(&mut rng);
    let gone: Vec<String> = stored.drain(..500).map(|e| e.event_id).collect();
    sqlx::query("DELETE FROM events WHERE event_id = ANY($1)")
        .bind(&gone)
        .execute(&app.pool)
        .await
        .expect("delete");
    recount::check_rollup_tables(&app, &stored).await;

    // Corrections: move events in time, change amounts and sources.
    for e in stored.iter_mut().take(200) {
        e.occurred_at = random_time(&mut rng);
        if e.revenue.is_some() {
            e.revenue = Some(Decimal::new(rng.gen_range(0..9_999), 2));
        }
        sqlx::query("UPDATE events SET occurred_at = $2, revenue = $3 WHERE event_id = $1")
            .bind(&e.event_id)
            .bind(e.occurred_at)
            .bind(e.revenue)
            .execute(&app.pool)
            .await
            .expect("update");
    }
    sqlx::query("UPDATE events SET source = 'renamed' WHERE source = 'newsrc'")
        .execute(&app.pool)
        .await
        .expect("rename");
    for e in stored.iter_mut().filter(|e| e.source == "newsrc") {
        e.source = "renamed".into();
    }
    // An update touching no reported column changes nothing.
    sqlx::query("UPDATE events SET correlation_id = 'x'")
        .execute(&app.pool)
        .await
        .expect("noop update");
    recount::check_rollup_tables(&app, &stored).await;
    check_reports(&app, &mut rng, &stored, 15).await;

    sqlx::query("TRUNCATE events")
        .execute(&app.pool)
        .await
        .expect("truncate");
    recount::check_rollup_tables(&app, &[]).await;
    assert_eq!(app.ok("/api/v1/reports/events").await["totalEvents"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn rebuild_reproduces_the_trigger_maintained_rollups() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let stored = load(&app, &mut rng, 1_000).await;
    sqlx::query("SELECT reporter_rebuild_rollups()")
        .execute(&app.pool)
        .await
        .expect("rebuild");
    recount::check_rollup_tables(&app, &stored).await;
    app.cleanup().await;
}
