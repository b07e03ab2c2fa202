//! A collector for all sources except some (`COLLECTOR_EXCLUDE`) leaves the
//! excluded sources in the stream for their own collector.

use super::gen_config;
use crate::support::pipeline::{spawn_load, LoadSpec, Pipeline};
use std::time::{Duration, Instant};

/// Rows stored for `source`.
async fn stored(p: &Pipeline, source: &str) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE source = $1")
        .bind(source)
        .fetch_one(&p.db.pool)
        .await
        .expect("count") as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_for_all_except_leaves_excluded_sources_to_their_own() {
    let p = Pipeline::shared("e2e_except").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let rest = p
        .start(
            "collector-rest",
            "collector",
            &[("COLLECTOR_TYPE", "all"), ("COLLECTOR_EXCLUDE", "facebook")],
        )
        .await;
    let spec = LoadSpec {
        batches: 4,
        batch_size: 300,
        concurrency: 1,
        pause: Duration::ZERO,
        gen: gen_config(7),
        targets: vec![gw.url("/webhook")],
    };
    let load = spawn_load(p.http.clone(), spec).await.unwrap();
    assert_eq!(load.ok_posts(), 4);
    let ledger = load.ledger;
    let want = |source: &str| {
        ledger
            .valid
            .values()
            .filter(|e| e["source"] == source)
            .count()
    };
    let (tiktok, facebook) = (want("tiktok"), want("facebook"));
    assert!(tiktok > 0 && facebook > 0, "{tiktok} / {facebook}");
    let start = Instant::now();
    while stored(&p, "tiktok").await < tiktok {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tiktok: {} of {tiktok} stored; logs: {}",
            stored(&p, "tiktok").await,
            rest.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored(&p, "tiktok").await, tiktok);
    // Facebook is left in the stream for a collector that serves it.
    assert_eq!(stored(&p, "facebook").await, 0);
    assert!(p.streams.backlog().await.unwrap_or(0) > 0);
    assert_eq!(
        rest.metrics().await.sum(
            "collector_events_accepted_total",
            &[("collector", "facebook")]
        ),
        0.0
    );
    let _fb = p
        .start(
            "collector-fb",
            "collector",
            &[("COLLECTOR_TYPE", "facebook")],
        )
        .await;
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}
