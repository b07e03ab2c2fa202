//! Monthly partitions of `events` (migrations/20270101000001): batches
//! spanning months and years, concurrent overlapping writers, retention.
use super::check_reports;
use super::generators::{random_event, seed, spread_event};
use super::tables::{count, only, partition_names, partitions, rollup_rows};
use crate::support::model::{events_report, revenue_report, Query};
use crate::support::{at, recount, Event, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use std::collections::BTreeMap;

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
