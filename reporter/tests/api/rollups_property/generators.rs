//! Random data for the properties: events with duplicates, out-of-order
//! batches and microsecond bucket edges, and random report queries.
use crate::support::model::Query;
use crate::support::{at, Event, TestApp};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use rand::{rngs::StdRng, seq::SliceRandom, Rng};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

pub(super) fn seed() -> u64 {
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

pub(super) fn random_time(rng: &mut StdRng) -> DateTime<Utc> {
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

pub(super) fn random_event(rng: &mut StdRng, id: usize) -> Event {
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
pub(super) async fn load(app: &TestApp, rng: &mut StdRng, n: usize) -> Vec<Event> {
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

pub(super) fn random_query(rng: &mut StdRng) -> Query {
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

/// A random event moved to another year or month now and then, so the data
/// spans historic years and several partitions.
pub(super) fn spread_event(rng: &mut StdRng, id: usize) -> Event {
    let mut e = random_event(rng, id);
    match rng.gen_range(0..10) {
        0 => e.occurred_at -= TimeDelta::days(365 * 25), // 1999
        1 => e.occurred_at -= TimeDelta::days(40),
        2 => e.occurred_at += TimeDelta::days(400),
        _ => {}
    }
    e
}
