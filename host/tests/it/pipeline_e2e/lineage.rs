//! Exact lineage (issue 13): every stored event and every plugin's dead
//! letter records the SHA-256 of the component file that produced it and
//! the WIT version it spoke; a letter no plugin produced records neither.

use super::gen_config;
use crate::{
    pipeline_bad_input::json_post,
    support::{
        pipeline::{plugins_dir, spawn_load, wait_until, LoadSpec, Pipeline},
        plugins::{fb_top, with},
    },
};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The SHA-256 of `<plugins dir>/<source>.wasm`, lowercase hex.
fn file_digest(source: &str) -> String {
    let path = plugins_dir().join(format!("{source}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

/// `(source, plugin_digest, wit_version, rows)` of `table` where `filter`.
async fn lineage(
    p: &Pipeline,
    table: &str,
    filter: &str,
) -> Vec<(Option<String>, Option<String>, Option<String>, i64)> {
    sqlx::query_as(&format!(
        "SELECT source, plugin_digest, wit_version, count(*) FROM {table} WHERE {filter} \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ))
    .fetch_all(&p.db.pool)
    .await
    .expect("lineage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_digests_equal_the_files_sha256() {
    let p = Pipeline::shared("e2e_lineage").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let collector = p
        .start("collector", "collector", &[("COLLECTOR_TYPE", "all")])
        .await;
    let spec = LoadSpec {
        batches: 2,
        batch_size: 200,
        concurrency: 1,
        pause: Duration::ZERO,
        gen: gen_config(13),
        targets: vec![gw.url("/webhook")],
    };
    let load = spawn_load(p.http.clone(), spec).await.unwrap();
    assert_eq!(load.ok_posts(), 2);
    // One event the facebook plugin refuses (age out of range), one the
    // gateway refuses (no envelope): no plugin ran on it.
    let mut refused = with(fb_top("ad.view"), "/data/user/age", Some(json!(151)));
    refused["eventId"] = json!("lineage-refused");
    let no_envelope = json!({"eventId": "lineage-no-envelope"});
    let (status, answer) = json_post(&p, &gw, json!([refused, no_envelope]).to_string()).await;
    assert!(status < 300, "{status}: {answer}");
    p.settle(&load.ledger, Duration::from_secs(60)).await;
    let letter = "event_id = 'lineage-refused' AND stage = 'plugin'";
    wait_until(
        "the plugin's dead letter",
        Duration::from_secs(60),
        || async { !lineage(&p, "dead_letters", letter).await.is_empty() },
    )
    .await;

    let (fb, tt) = (file_digest("facebook"), file_digest("tiktok"));
    let want = |source: &str, n: i64| {
        let digest = if source == "facebook" { &fb } else { &tt };
        (
            Some(source.to_string()),
            Some(digest.clone()),
            Some("0.2.0".to_string()),
            n,
        )
    };
    // Every event: its source's file digest, contract 0.2.0.
    let events = lineage(&p, "events", "true").await;
    let stored: Vec<(&str, i64)> = events
        .iter()
        .map(|r| (r.0.as_deref().unwrap_or_default(), r.3))
        .collect();
    assert_eq!(
        stored.len(),
        2,
        "both sources, one lineage each: {events:?}"
    );
    let expected: Vec<_> = stored.iter().map(|&(s, n)| want(s, n)).collect();
    assert_eq!(events, expected, "logs: {}", collector.logs());
    assert_eq!(fb.len(), 64);
    assert_ne!(fb, tt);

    // The refused event's letter: the same digest as facebook's events.
    assert_eq!(
        lineage(&p, "dead_letters", letter).await,
        [want("facebook", 1)]
    );
    // Every plugin letter: its source's plugin.
    for (source, digest, wit, n) in lineage(&p, "dead_letters", "stage = 'plugin'").await {
        let source = source.expect("a plugin letter has a source");
        assert_eq!((Some(source.clone()), digest, wit, n), want(&source, n));
    }
    // The gateway's letters: no plugin, no lineage.
    let gateway = lineage(&p, "dead_letters", "stage = 'gateway'").await;
    assert!(!gateway.is_empty());
    assert!(
        gateway.iter().all(|r| r.1.is_none() && r.2.is_none()),
        "{gateway:?}"
    );
}
