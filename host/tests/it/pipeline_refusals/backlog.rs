//! The stream's backlog: unprocessed events never expire, and their age and
//! the stream's fill are shown until a collector drains them.

use super::{batch, post_ok};
use crate::support::pipeline::{wait_until, Host, Ledger, Pipeline};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_events_never_expire_and_their_age_and_size_are_shown() {
    let p = Pipeline::shared("refuse_age").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let js = p.streams.js().await;
    let mut stream = js.get_stream(&p.streams.stream).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.max_age,
        Duration::ZERO,
        "no age limit by default"
    );

    // No collector yet: the backlog waits, and its age is visible.
    let b = batch(45, 200);
    post_ok(&p, &gw, b.body()).await;
    let gauge = |h: &Host, name: &'static str| {
        let url = h.url("/metrics");
        let http = p.http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            crate::support::pipeline::Metrics(text).sum(name, &[])
        }
    };
    let age = |h: &Host| gauge(h, "jetstream_oldest_unprocessed_age_seconds");
    let fill = |h: &Host| gauge(h, "jetstream_stream_fill_ratio");
    wait_until(
        "the backlog's age to show",
        Duration::from_secs(60),
        || async { age(&gw).await >= 2.0 },
    )
    .await;
    // How full the stream is: the backlog's bytes over max_bytes.
    let held = stream.info().await.unwrap().state.bytes as f64;
    let ratio = fill(&gw).await;
    let expected = held / (256u64 << 20) as f64;
    assert!(
        ratio > 0.0 && (ratio - expected).abs() < expected * 0.01,
        "fill {ratio} for {held} bytes of 256 MiB"
    );

    let _collector = p.start("collector", "collector", &[]).await;
    let mut ledger = Ledger::default();
    ledger.record(&[(b, true)]);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
    wait_until("the age to drop to 0", Duration::from_secs(30), || async {
        age(&gw).await == 0.0 && fill(&gw).await == 0.0
    })
    .await;
}
