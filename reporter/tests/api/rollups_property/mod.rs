//! Property-style: on randomized data (duplicates, out-of-order batches,
//! microsecond edges, deletes and updates), every report equals the raw
//! computation and every rollup row equals a recount of the raw events.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rust_decimal::Decimal;
use sqlx::Connection;
use std::collections::BTreeMap;
use crate::support::model::{demographics_report, events_report, revenue_report, Query};
use crate::support::{at, recount, Event, TestApp};

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

// --- Monthly partitions of `events` (migrations/20270101000001) -------------

/// Every row of `events`, as text, in key order.
async fn raw_rows(pool: &sqlx::PgPool) -> Vec<String> {
    utc_rows(
        pool,
        "SELECT row_to_json(e)::text FROM events e ORDER BY source, event_id",
    )
    .await
}

/// Text rows of `sql`, times written in UTC whatever the pool's TimeZone.
async fn utc_rows(pool: &sqlx::PgPool, sql: &str) -> Vec<String> {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *tx)
        .await
        .expect("time zone");
    let rows = sqlx::query_scalar(sql)
        .fetch_all(&mut *tx)
        .await
        .expect("read rows");
    tx.commit().await.expect("commit");
    rows
}

/// Every rollup row, as text, in a fixed order.
async fn rollup_rows(pool: &sqlx::PgPool) -> Vec<String> {
    let mut all = Vec::new();
    for table in [
        "rollup_events",
        "rollup_revenue",
        "rollup_revenue_campaigns",
        "rollup_demographics",
    ] {
        let sql = format!("SELECT '{table} ' || row_to_json(r)::text FROM {table} r ORDER BY 1");
        all.extend(utc_rows(pool, &sql).await);
    }
    all
}

async fn partitions(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("list partitions")
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// `partitions()` filtered to the months of `times` (the migration also
/// makes the current and next month).
fn partition_names(times: impl IntoIterator<Item = DateTime<Utc>>) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = times
        .into_iter()
        .map(|t| t.format("events_y%Ym%m").to_string())
        .collect();
    names.into_iter().collect()
}

fn only(mut all: Vec<String>, wanted: &[String]) -> Vec<String> {
    all.retain(|p| wanted.contains(p));
    all
}

/// A random event moved to another year or month now and then, so the data
/// spans historic years and several partitions.
fn spread_event(rng: &mut StdRng, id: usize) -> Event {
    let mut e = random_event(rng, id);
    match rng.gen_range(0..10) {
        0 => e.occurred_at -= TimeDelta::days(365 * 25), // 1999
        1 => e.occurred_at -= TimeDelta::days(40),
        2 => e.occurred_at += TimeDelta::days(400),
        _ => {}
    }
    e
}

/// A database at the version before partitioning, holding events, goes
/// through the full migrator: every row is kept byte for byte, each gets its
/// claim, the rollups are exactly what they were (and what a rebuild gives),
/// the reports are exact, and a stored event re-sent for another month is
/// still a duplicate.
#[tokio::test]
async fn partitioning_an_existing_database_keeps_every_row_and_exact_reports() {
    let mut rng = StdRng::seed_from_u64(seed());
    let db = crate::support::create_database().await;
    let url = format!("{}/{db}", crate::support::base_url());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("pool");
    let all = &events_common::db::MIGRATOR;
    let first_new = all
        .iter()
        .position(|m| m.version == 20270101000001)
        .expect("the partitioning migration");
    let before = sqlx::migrate::Migrator {
        migrations: all.migrations[..first_new].to_vec().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before
        .run(&pool)
        .await
        .expect("migrations before partitioning");

    let events: Vec<Event> = (0..1_500).map(|i| spread_event(&mut rng, i)).collect();
    let mut kept = BTreeMap::new();
    for chunk in events.chunks(300) {
        let mut batch = chunk.to_vec();
        batch.push(events[rng.gen_range(0..events.len())].clone());
        crate::support::insert_before_partitioning(&pool, &batch).await;
        for e in batch {
            kept.entry(e.event_id.clone()).or_insert(e);
        }
    }
    let stored: Vec<Event> = kept.into_values().collect();
    // A read-only role's grants outlive the table's replacement.
    let role = format!("reporter_ro_{}", uuid::Uuid::new_v4().simple());
    for sql in [
        format!("CREATE ROLE {role}"),
        format!("GRANT SELECT ON events, events_demographic_facts TO {role}"),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    let rows_before = raw_rows(&pool).await;
    let rollups_before = rollup_rows(&pool).await;
    assert_eq!(rows_before.len(), stored.len());
    pool.close().await;

    // The reporter's start-up applies the rest.
    let app = TestApp::spawn_in(db, &[]).await;
    assert_eq!(
        raw_rows(&app.pool).await,
        rows_before,
        "rows kept as they were"
    );
    assert_eq!(
        rollup_rows(&app.pool).await,
        rollups_before,
        "rollups untouched"
    );
    assert_eq!(count(&app.pool, "event_claims").await, stored.len() as i64);
    let months = partition_names(stored.iter().map(|e| e.occurred_at));
    assert!(months.len() >= 4, "{months:?}");
    assert_eq!(only(partitions(&app.pool).await, &months), months);
    recount::check_rollup_tables(&app, &stored).await;
    check_reports(&app, &mut rng, &stored, 15).await;
    sqlx::query("SELECT reporter_rebuild_rollups()")
        .execute(&app.pool)
        .await
        .expect("rebuild");
    assert_eq!(
        rollup_rows(&app.pool).await,
        rollups_before,
        "equal to a rebuild"
    );

    // Claims dedup pre-migration rows, whatever month a re-send claims.
    let mut again = stored[0].clone();
    again.occurred_at -= TimeDelta::days(400);
    assert_eq!(app.insert(&[again]).await, 0);
    assert_eq!(count(&app.pool, "events").await, stored.len() as i64);

    let granted: (bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege($1, 'events', 'SELECT'), \
                has_table_privilege($1, 'events_demographic_facts', 'SELECT')",
    )
    .bind(&role)
    .fetch_one(&app.pool)
    .await
    .expect("privileges");
    assert_eq!(granted, (true, true));
    app.cleanup().await;
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", crate::support::base_url()))
        .await
        .expect("admin");
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await
        .expect("drop role");
}

/// One batch spanning months and years (a historic one included) creates
/// the partitions it needs and stores exactly; an event re-sent with another
/// time (another month) is a duplicate, in the same batch or a later one.
#[tokio::test]
async fn a_batch_spanning_months_and_years_is_stored_once_in_monthly_partitions() {
    let app = TestApp::spawn().await;
    let times = [
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T00:00:00Z",
        "2024-02-29T23:59:59.999999Z",
        "2024-03-01T00:00:00Z",
        "2031-07-15T12:00:00Z",
    ];
    let mut batch: Vec<Event> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Event::new(&format!("m-{i}"), "facebook", "bottom", "purchase", t)
                .revenue("10.00")
                .campaign("camp-m")
        })
        .collect();
    // The same key again in the batch, months away: the first one wins.
    let mut moved = batch[2].clone();
    moved.occurred_at = at("2023-11-05T08:00:00Z");
    moved.revenue = Some("99.00".parse().unwrap());
    batch.push(moved.clone());
    // Same id, another source: a different event.
    batch.push(Event::new(
        "m-0",
        "tiktok",
        "top",
        "like",
        "2012-05-05T05:05:05Z",
    ));
    assert_eq!(app.insert(&batch).await, 6);
    let expected = partition_names(
        times
            .iter()
            .map(|t| at(t))
            .chain([at("2012-05-05T05:05:05Z")]),
    );
    assert_eq!(only(partitions(&app.pool).await, &expected), expected);
    // A partition for 2023-11 was made (the batch touched it), and is empty.
    assert!(partitions(&app.pool)
        .await
        .contains(&"events_y2023m11".to_string()));
    assert_eq!(count(&app.pool, "events_y2023m11").await, 0);

    // Later batches: re-sends in other months, from both sides of the
    // original, are duplicates; a new event in an existing month is not.
    let mut later = vec![moved.clone()];
    later[0].occurred_at = at("2040-01-01T00:00:00Z");
    let mut early = batch[4].clone();
    early.occurred_at = at("1990-06-01T00:00:00Z");
    later.push(early);
    later.push(Event::new(
        "m-new",
        "facebook",
        "top",
        "ad.view",
        "2024-03-01T00:00:01Z",
    ));
    assert_eq!(app.insert(&later).await, 1);

    let mut stored: Vec<Event> = batch[..5].to_vec();
    stored.push(batch[6].clone());
    stored.push(later[2].clone());
    assert_eq!(count(&app.pool, "events").await, stored.len() as i64);
    assert_eq!(count(&app.pool, "event_claims").await, stored.len() as i64);
    recount::check_rollup_tables(&app, &stored).await;
    let mut rng = StdRng::seed_from_u64(seed());
    check_reports(&app, &mut rng, &stored, 10).await;
    for q in [Query::new(), Query::new().granularity("day")] {
        let url = q.url("/api/v1/reports/revenue");
        assert_eq!(app.ok(&url).await, revenue_report(&stored, &q), "{url}");
    }

    // Outside years 0000-9999 no partition is made: a data error (22008).
    let err = sqlx::query("SELECT events_ensure_partitions($1)")
        .bind(vec![
            at("2024-01-01T00:00:00Z"),
            chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
        ])
        .execute(&app.pool)
        .await
        .expect_err("year 10000 is refused");
    let code = err.as_database_error().and_then(|d| d.code()).unwrap();
    assert_eq!(code, "22008", "{err}");
    assert!(!partitions(&app.pool)
        .await
        .contains(&"events_y2024m01".to_string()));
    app.cleanup().await;
}

/// Two writers inserting overlapping batches at once (the overlap with other
/// times, in months nobody created yet): every event is stored once, the
/// counts the statements return add up, and the rollups are exact.
#[tokio::test]
async fn concurrent_overlapping_batches_store_each_event_once() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    let other = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&format!("{}/{}", crate::support::base_url(), app.db_name))
        .await
        .expect("second pool");
    let mut stored: BTreeMap<String, Event> = BTreeMap::new();
    let mut new_total = 0;
    for round in 0..6 {
        let base = round * 1_000;
        let a: Vec<Event> = (base..base + 600)
            .map(|i| spread_event(&mut rng, i))
            .collect();
        // The overlap in b is a re-send with another time, often another
        // month, and other content.
        let mut b: Vec<Event> = a[300..]
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.occurred_at -= TimeDelta::days(31 * (round as i64 + 1));
                e.event_type = "resent".into();
                e
            })
            .chain((base + 600..base + 900).map(|i| spread_event(&mut rng, i)))
            .collect();
        b.shuffle(&mut rng);
        let (na, nb) = tokio::join!(app.insert(&a), crate::support::insert(&other, &b));
        new_total += na + nb;
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT event_id, occurred_at FROM events")
                .fetch_all(&app.pool)
                .await
                .expect("read back");
        let versions: BTreeMap<&str, DateTime<Utc>> =
            rows.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        for e in a.iter().chain(&b) {
            if versions.get(e.event_id.as_str()) == Some(&e.occurred_at) {
                stored
                    .entry(e.event_id.clone())
                    .or_insert_with(|| e.clone());
            }
        }
        assert_eq!(rows.len(), stored.len(), "round {round}");
        assert_eq!(new_total, stored.len() as u64, "round {round}");
    }
    assert_eq!(stored.len(), 6 * 900);
    assert_eq!(count(&app.pool, "event_claims").await, stored.len() as i64);
    let stored: Vec<Event> = stored.into_values().collect();
    recount::check_rollup_tables(&app, &stored).await;
    other.close().await;
    app.cleanup().await;
}

/// Retention drops whole old partitions and their claims in one go; the
/// rollups stay, so reports over the dropped range (whole days) and over
/// all time are unchanged. An event of a dropped month sent again is
/// refused (23514, the collectors dead-letter it) instead of being counted
/// twice; retained months keep deduplicating.
#[tokio::test]
async fn retention_drops_old_partitions_and_claims_and_keeps_the_rollups() {
    let mut rng = StdRng::seed_from_u64(seed());
    let app = TestApp::spawn().await;
    // October 2023 to March 2024.
    let events: Vec<Event> = (0..1_200)
        .map(|i| {
            let mut e = random_event(&mut rng, i);
            e.occurred_at -= TimeDelta::days(30 * rng.gen_range(0..5));
            e
        })
        .collect();
    for chunk in events.chunks(400) {
        app.insert(chunk).await;
    }
    let months = partition_names(events.iter().map(|e| e.occurred_at));
    assert_eq!(months.first().map(String::as_str), Some("events_y2023m10"));
    assert_eq!(months.last().map(String::as_str), Some("events_y2024m03"));
    let queries = [
        Query::new().granularity("day"),
        Query::new().granularity("hour"),
        Query::new()
            .start_date("2023-10-01")
            .end_date("2023-12-31")
            .granularity("day"),
        Query::new().start_date("2023-11-15").end_date("2024-01-10"),
    ];
    let mut answers = Vec::new();
    for q in &queries {
        for path in ["events", "revenue", "demographics"] {
            let url = q.url(&format!("/api/v1/reports/{path}"));
            answers.push((url.clone(), app.ok(&url).await));
        }
    }
    let rollups = rollup_rows(&app.pool).await;

    // Keep 3 months on 2024-03-20: from December 2023 on.
    let dropped: Vec<String> = sqlx::query_scalar(
        "SELECT d FROM events_apply_retention(3, timestamptz '2024-03-20 00:00:00+00') AS d",
    )
    .fetch_all(&app.pool)
    .await
    .expect("retention");
    let gone: Vec<String> = months
        .iter()
        .filter(|m| m.as_str() < "events_y2023m12")
        .cloned()
        .collect();
    assert!(!gone.is_empty());
    assert_eq!(dropped, gone);
    let left = partitions(&app.pool).await;
    assert!(gone.iter().all(|g| !left.contains(g)), "{left:?}");
    let horizon = at("2023-12-01T00:00:00Z");
    let kept: Vec<Event> = events
        .iter()
        .filter(|e| e.occurred_at >= horizon)
        .cloned()
        .collect();
    assert_eq!(count(&app.pool, "events").await, kept.len() as i64);
    assert_eq!(count(&app.pool, "event_claims").await, kept.len() as i64);
    let old_claims: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_claims WHERE occurred_at < $1")
            .bind(horizon)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(old_claims, 0);

    // No DELETE trigger fired: rollups and answers as before; a rebuild
    // keeps the dropped range's rollups too.
    assert_eq!(rollup_rows(&app.pool).await, rollups);
    sqlx::query("SELECT reporter_rebuild_rollups()")
        .execute(&app.pool)
        .await
        .expect("rebuild");
    assert_eq!(rollup_rows(&app.pool).await, rollups);
    for (url, answer) in &answers {
        assert_eq!(&app.ok(url).await, answer, "{url}");
    }
    // ...which are the answers over everything ever stored.
    for q in &queries[..3] {
        let url = q.url("/api/v1/reports/events");
        assert_eq!(app.ok(&url).await, events_report(&events, q), "{url}");
    }

    // A dropped month's event sent again: refused, nothing counted twice.
    let old = events.iter().find(|e| e.occurred_at < horizon).unwrap();
    let err = sqlx::query("SELECT events_ensure_partitions($1)")
        .bind(vec![old.occurred_at])
        .execute(&app.pool)
        .await
        .expect_err("before the horizon");
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().unwrap(), "23514", "{err}");
    assert!(db_err.message().contains("retention horizon"), "{err}");
    assert_eq!(rollup_rows(&app.pool).await, rollups);
    // Retained months: duplicates still dropped, new events still stored.
    let retained = kept[0].clone();
    assert_eq!(app.insert(&[retained]).await, 0);
    let fresh = Event::at("fresh", "facebook", "top", "ad.view", horizon);
    assert_eq!(app.insert(&[fresh]).await, 1);
    // Again later: idempotent, the horizon stays.
    let dropped: Vec<String> = sqlx::query_scalar(
        "SELECT d FROM events_apply_retention(3, timestamptz '2024-03-21 00:00:00+00') AS d",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    app.cleanup().await;
}
