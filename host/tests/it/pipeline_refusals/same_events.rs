//! The same event id or the same events twice: two sources may share an id,
//! and batches holding the same events in opposite orders do not deadlock.

use super::post_ok;
use crate::support::pipeline::{wait_until, Pipeline};
use events_publisher::{Generator, GeneratorConfig};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_may_use_the_same_event_id() {
    let p = Pipeline::shared("refuse_shared_id").await;
    let host = p.start("all", "all", &[]).await;
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(46),
        ..Default::default()
    });
    let mut fb = g
        .event(
            events_publisher::Source::Facebook,
            events_publisher::FunnelStage::Top,
            "ad.view",
        )
        .unwrap();
    let mut tt = g
        .event(
            events_publisher::Source::Tiktok,
            events_publisher::FunnelStage::Top,
            "video.view",
        )
        .unwrap();
    fb["eventId"] = json!("shared-1");
    tt["eventId"] = json!("shared-1");
    let reply = post_ok(&p, &host, serde_json::to_vec(&[&fb, &tt]).unwrap()).await;
    assert_eq!(reply["accepted"], 2, "{reply}");
    // The same event again is still a duplicate within its source.
    post_ok(&p, &host, serde_json::to_vec(&[&fb]).unwrap()).await;
    wait_until("both stored", Duration::from_secs(60), || async {
        p.db.count("events").await == 2 && p.streams.backlog().await == Some(0)
    })
    .await;
    let sources: Vec<(String,)> =
        sqlx::query_as("SELECT source FROM events WHERE event_id = 'shared-1' ORDER BY source")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    assert_eq!(
        sources,
        [("facebook".to_string(),), ("tiktok".to_string(),)]
    );
    assert_eq!(p.db.count("dead_letters").await, 0);
}

/// Two batches holding the same events in opposite orders (a re-sent event,
/// a redelivery) must not deadlock. Deterministic: batch B inserts `y` and
/// then waits on `x`, which A holds uncommitted; A then inserts `y`. In
/// arrival order that is a cycle PostgreSQL breaks with "deadlock detected";
/// in key order B waits on `x` before taking `y`, and both commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_the_same_events_in_opposite_orders_do_not_deadlock() {
    use crate::support::rows::{facebook_event, facebook_lineage};
    use events_host::db::{insert_events, EventRow};
    let p = Pipeline::shared("insert_order").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let event = |id: &str| facebook_event(id, chrono::Utc::now(), "ad.view");
    let (x, y) = (event("x"), event("y"));
    events_host::db::ensure_partitions(&p.db.pool, [x.occurred_at, y.occurred_at])
        .await
        .unwrap();
    let plugin = facebook_lineage();
    let row = |e| EventRow {
        event: e,
        raw: "{}",
        plugin: &plugin,
        correlation_id: None,
    };
    let mut a = p.db.pool.begin().await.unwrap();
    assert_eq!(insert_events(&mut a, &[row(&x)]).await.unwrap(), 1);
    let pool = p.db.pool.clone();
    let (x2, y2) = (x.clone(), y.clone());
    let plugin2 = plugin.clone();
    let b = tokio::spawn(async move {
        let mut b = pool.begin().await?;
        let rows = [&y2, &x2].map(|e| EventRow {
            event: e,
            raw: "{}",
            plugin: &plugin2,
            correlation_id: None,
        });
        let n = insert_events(&mut b, &rows).await?;
        b.commit().await?;
        Ok::<u64, sqlx::Error>(n)
    });
    wait_until(
        "batch B waits on a lock",
        Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&p.db.pool)
            .await
            .is_ok_and(|n| n == 1)
        },
    )
    .await;
    let a_second = insert_events(&mut a, &[row(&y)]).await;
    let a_done = match a_second {
        Ok(n) => a.commit().await.map(|()| n),
        Err(e) => Err(e),
    };
    let b_done = b.await.unwrap();
    assert!(
        a_done.is_ok() && b_done.is_ok(),
        "A: {a_done:?}, B: {b_done:?}"
    );
    // A stored x and y; B found both stored (it waited on x, then on y).
    assert_eq!(a_done.unwrap(), 1);
    assert_eq!(b_done.unwrap(), 0);
    assert_eq!(p.db.count("events").await, 2);
}
