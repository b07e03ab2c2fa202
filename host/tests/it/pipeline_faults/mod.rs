//! Faults under load, each ending with the exact ledger: every valid event
//! of a POST answered 200 stored once with its fields, nothing stored that
//! was not sent, every corrupted event dead-lettered once. NATS and
//! PostgreSQL outages use private instances (see `crate::support::services`).
mod kills;
mod live_changes;
mod max_deliver;
mod outages;
mod signals;

use crate::support::pipeline::{wait_until, LoadResult, LoadSpec, Pipeline};
use events_publisher::GeneratorConfig;
use futures::StreamExt;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

fn spec(
    seed: u64,
    batches: usize,
    concurrency: usize,
    pause_ms: u64,
    targets: Vec<String>,
) -> LoadSpec {
    LoadSpec {
        batches,
        batch_size: 500,
        concurrency,
        pause: Duration::from_millis(pause_ms),
        gen: GeneratorConfig {
            seed: Some(seed),
            duplicate_rate: 0.02,
            corrupt_post_rate: 0.5,
            shuffle_timestamps: true,
            ..Default::default()
        },
        targets,
    }
}

/// Waits until the pipeline drained, then checks the exact ledger.
async fn finish(p: &Pipeline, load: &LoadResult) {
    p.settle(&load.ledger, Duration::from_secs(90)).await;
    load.ledger.check(&p.db.pool).await;
}

async fn wait_stored(p: &Pipeline, n: i64) {
    wait_until(
        &format!("{n} stored events"),
        Duration::from_secs(60),
        || async { p.db.count("events").await >= n },
    )
    .await;
}

fn all_ok(load: &LoadResult) {
    let bad: Vec<_> = load
        .posts
        .iter()
        .filter(|p| p.status != Some(200))
        .map(|p| (p.status, p.reply.clone()))
        .collect();
    assert!(bad.is_empty(), "POSTs not answered 200: {bad:?}");
}

/// Messages delivered to collectors but not acked.
async fn unacked(p: &Pipeline) -> i64 {
    let js = p.streams.js().await;
    let stream = js.get_stream(&p.streams.stream).await.unwrap();
    let mut n = 0;
    for source in ["facebook", "tiktok"] {
        n += stream
            .consumer_info(format!("collector-{source}"))
            .await
            .map_or(0, |i| i.num_ack_pending as i64);
    }
    n
}

/// The stream sequences the collectors nak from now on, as JetStream's
/// advisories report them.
async fn watch_naks(p: &Pipeline) -> Arc<Mutex<HashSet<u64>>> {
    let client = async_nats::connect(&p.streams.nats_url).await.unwrap();
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.{}.*",
        p.streams.stream
    );
    let mut sub = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let naked = Arc::new(Mutex::new(HashSet::new()));
    let seen = naked.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Some(m) = sub.next().await {
            let advisory: serde_json::Value =
                serde_json::from_slice(&m.payload).unwrap_or_default();
            if let (Some(seq), Ok(mut seen)) = (advisory["stream_seq"].as_u64(), seen.lock()) {
                seen.insert(seq);
            }
        }
    });
    naked
}
