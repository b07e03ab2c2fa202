//! Events of any month in the monthly partitions of `events`, claimed once
//! across months and writers, and the retention horizon.
use crate::support::{
    pipeline::{post, wait_until, Pipeline},
    rows::{facebook_event as event, facebook_lineage as plugin},
};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use events_host::{
    db::{self, EventRow},
    plugins::NormalizedEvent,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

/// What the collector does for a batch: partitions, then one
/// transaction.
async fn write(pool: &PgPool, events: &[NormalizedEvent]) -> Result<u64, sqlx::Error> {
    let plugin = plugin();
    let rows: Vec<EventRow<'_>> = events
        .iter()
        .map(|e| EventRow {
            event: e,
            raw: "{}",
            plugin: &plugin,
            correlation_id: None,
        })
        .collect();
    db::ensure_partitions(pool, events.iter().map(|e| e.occurred_at)).await?;
    let mut tx = pool.begin().await?;
    let n = db::insert_events(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(n)
}

async fn stored(pool: &PgPool) -> Vec<(String, DateTime<Utc>, String)> {
    sqlx::query_as("SELECT event_id, occurred_at, event_type FROM events ORDER BY event_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn code(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_else(|| panic!("not a database error: {e}"))
}

/// The collector's own code: a batch over months and years stores each
/// key once, the first arrival winning even when a later copy has
/// another month; a copy in a later batch is a duplicate; two writers
/// with overlapping batches (in opposite orders, months nobody made yet)
/// store each event once and their counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_claims_each_event_once_across_months_and_writers() {
    let p = Pipeline::shared("part_claims").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let pool = &p.db.pool;
    let batch = [
        event("a", at("1999-12-31T23:59:59.999999Z"), "first"),
        event("b", at("2024-02-29T23:59:59Z"), "first"),
        event("c", at("2024-03-01T00:00:00Z"), "first"),
        event("b", at("2011-01-01T00:00:00Z"), "second"),
        event("a", at("2024-03-05T00:00:00Z"), "second"),
    ];
    assert_eq!(write(pool, &batch).await.unwrap(), 3);
    assert_eq!(
        stored(pool).await,
        [
            (
                "a".into(),
                at("1999-12-31T23:59:59.999999Z"),
                "first".into()
            ),
            ("b".into(), at("2024-02-29T23:59:59Z"), "first".into()),
            ("c".into(), at("2024-03-01T00:00:00Z"), "first".into()),
        ]
    );
    assert_eq!(
        write(pool, &[event("c", at("2030-05-05T00:00:00Z"), "again")])
            .await
            .unwrap(),
        0
    );
    for t in [
        "events_y1999m12",
        "events_y2011m01",
        "events_y2024m02",
        "events_y2030m05",
    ] {
        assert!(p.db.count(t).await >= 0, "{t} exists");
    }
    assert_eq!(p.db.count("event_claims").await, 3);

    for round in 0..5i64 {
        let ids: Vec<String> = (0..400).map(|i| format!("r{round}-{i:03}")).collect();
        let base = at("2035-01-15T00:00:00Z") + TimeDelta::days(62 * round);
        let a: Vec<NormalizedEvent> = ids[..300]
            .iter()
            .enumerate()
            .map(|(i, id)| event(id, base + TimeDelta::minutes(i as i64), "a"))
            .collect();
        let b: Vec<NormalizedEvent> = ids[100..]
            .iter()
            .rev()
            .enumerate()
            .map(|(i, id)| {
                event(
                    id,
                    base + TimeDelta::days(31) + TimeDelta::minutes(i as i64),
                    "b",
                )
            })
            .collect();
        let (pa, pb) = (pool.clone(), pool.clone());
        let (na, nb) = tokio::join!(
            tokio::spawn(async move { write(&pa, &a).await }),
            tokio::spawn(async move { write(&pb, &b).await }),
        );
        let (na, nb) = (na.unwrap().unwrap(), nb.unwrap().unwrap());
        assert_eq!(na + nb, 400, "round {round}");
    }
    assert_eq!(p.db.count("events").await, 3 + 5 * 400);
    assert_eq!(p.db.count("event_claims").await, 3 + 5 * 400);
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT (source, event_id)) FROM events")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(distinct, 3 + 5 * 400);
    // The rollups count what was stored, once.
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(events), 0)::bigint FROM rollup_events WHERE width = 86400",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(counted, 3 + 5 * 400);

    // Years past 9999 get no partition: a data error for that event.
    let far = chrono::NaiveDate::from_ymd_opt(12_000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let e = write(pool, &[event("far", far, "x")]).await.unwrap_err();
    assert_eq!(code(&e), "22008", "{e}");
}

/// Retention through the collector's code: old partitions and their
/// claims go, rollups stay; a month this process still believes in but
/// another collector's retention dropped fails as a data error (no
/// partition), and once forgotten the month is refused (retention
/// horizon) instead of being stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_months_and_a_stale_month_is_refused() {
    let p = Pipeline::shared("part_retention").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let pool = &p.db.pool;
    let now = Utc::now();
    let old = now - TimeDelta::days(800);
    let recent = now - TimeDelta::days(20);
    assert_eq!(
        write(pool, &[event("old", old, "x"), event("new", recent, "x")])
            .await
            .unwrap(),
        2
    );
    let rollups = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(events), 0)::bigint FROM rollup_events WHERE width = 86400",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(rollups(pool.clone()).await, 2);
    let old_partition = old.format("events_y%Ym%m").to_string();

    // Another collector (plain SQL: this process's memory is untouched).
    let dropped: Vec<String> = sqlx::query_scalar("SELECT d FROM events_apply_retention(12) AS d")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(dropped.contains(&old_partition), "{dropped:?}");
    assert_eq!(p.db.count("events").await, 1);
    assert_eq!(p.db.count("event_claims").await, 1);
    assert_eq!(rollups(pool.clone()).await, 2, "rollups kept");

    let resent = [event("old", old, "x")];
    let e = write(pool, &resent).await.unwrap_err();
    assert_eq!(code(&e), "23514", "no partition: {e}");
    db::forget_partitions(pool);
    let e = write(pool, &resent).await.unwrap_err();
    assert_eq!(code(&e), "23514", "{e}");
    assert!(e.to_string().contains("retention horizon"), "{e}");
    assert_eq!(p.db.count("events").await, 1);
    assert_eq!(rollups(pool.clone()).await, 2, "nothing counted twice");

    // The collector's own call: idempotent now.
    assert_eq!(
        db::apply_retention(pool, 12).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(write(pool, &[event("new", recent, "x")]).await.unwrap(), 0);
}

/// Through a running host: one request with events of several months and
/// years (one twice, with another month) stores each once; after
/// retention moved the horizon, an event before it becomes a dead letter
/// saying why, and its neighbours are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_any_month_go_through_the_pipeline_and_old_ones_are_dead_lettered() {
    let p = Pipeline::shared("part_e2e").await;
    let host = p.start("all", "all", &[]).await;
    let now = Utc::now().trunc_subsecs(0);
    // Everything before the month of `now - 24 months` is past the horizon.
    sqlx::query("SELECT events_apply_retention(24)")
        .execute(&p.db.pool)
        .await
        .unwrap();
    let mut g = events_publisher::Generator::new(events_publisher::GeneratorConfig {
        seed: Some(71),
        ..Default::default()
    });
    let mut fb = |id: &str, t: DateTime<Utc>| {
        let mut e = g
            .event(
                events_publisher::Source::Facebook,
                events_publisher::FunnelStage::Top,
                "ad.view",
            )
            .unwrap();
        e["eventId"] = json!(id);
        e["timestamp"] = json!(t.to_rfc3339());
        e
    };
    let times = [
        now - TimeDelta::days(700),
        now - TimeDelta::days(60),
        now,
        now + TimeDelta::days(400),
    ];
    let mut body: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, t)| fb(&format!("month-{i}"), *t))
        .collect();
    body.push(fb("month-1", now - TimeDelta::days(300)));
    body.push(fb("too-old", now - TimeDelta::days(1200)));
    let url = host.url("/webhook");
    let (status, reply) = post(&p.http, &url, serde_json::to_vec(&body).unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    wait_until(
        "stored and dead-lettered",
        Duration::from_secs(60),
        || async {
            p.streams.backlog().await == Some(0)
                && p.db.count("events").await == 4
                && p.db.count("dead_letters").await == 1
        },
    )
    .await;
    let ids: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT event_id, occurred_at FROM events ORDER BY event_id")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    let want: Vec<(String, DateTime<Utc>)> = times
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("month-{i}"), *t))
        .collect();
    assert_eq!(ids, want);
    let (event_id, reasons): (Option<String>, serde_json::Value) =
        sqlx::query_as("SELECT event_id, reasons FROM dead_letters")
            .fetch_one(&p.db.pool)
            .await
            .unwrap();
    assert_eq!(event_id.as_deref(), Some("too-old"));
    assert!(
        reasons.to_string().contains("retention horizon"),
        "{reasons}"
    );
    drop(host);
}
