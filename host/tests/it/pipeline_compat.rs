//! What earlier versions left behind, with the real services: a backlog of
//! the previous one-event messages, and 0.1.0 and 0.2.0 plugins side by side.
use crate::pipeline_slices::generate;
use crate::support::pipeline::{post, wait_until, Ledger, Pipeline};
use crate::support::plugins::{dist_file, test_wasm, PluginDir};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_one_event_messages_is_stored_exactly() {
    let p = Pipeline::shared("slice_upgrade").await;
    // A gateway creates the streams; no collector runs yet.
    let gw = p.start("gateway", "gateway", &[]).await;
    drop(gw);
    let batch = generate(35, 800);
    let js = p.streams.js().await;
    // What the previous version wrote: one message per event on
    // `<prefix>.<source>.<funnel>.<type>`, id `<eventId>:<hash>`; envelope
    // failures as dead-letter JSON on the dead-letter stream.
    for (i, ev) in batch.events.iter().enumerate() {
        let raw = ev.to_string();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Correlation-Id", "old-gateway");
        let Some(id) = ev["eventId"].as_str() else {
            let letter = json!({"stage": "gateway", "source": ev["source"], "event_id": null,
                "reasons": [{"field": "eventId", "message": "is required"}], "raw": raw,
                "plugin_name": null, "plugin_version": null, "correlation_id": "old-gateway",
                "dedup_key": null});
            headers.insert("Nats-Msg-Id", format!("dlq:{i}").as_str());
            js.publish_with_headers(
                format!("{}_dlq.gateway", p.streams.prefix),
                headers,
                letter.to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            continue;
        };
        let subject = format!(
            "{}.{}.{}.x",
            p.streams.prefix,
            ev["source"].as_str().unwrap(),
            ev["funnelStage"].as_str().unwrap_or("_")
        );
        let hash = xxhash_rust::xxh3::xxh3_128(raw.as_bytes());
        headers.insert("Nats-Msg-Id", format!("{id}:{hash:032x}").as_str());
        let ack = js
            .publish_with_headers(subject, headers, raw.into())
            .await
            .unwrap()
            .await
            .unwrap();
        // Exact re-sends were dropped by the window then, as now.
        let _ = ack.duplicate;
    }
    let mut ledger = Ledger::default();
    ledger.record(&[(batch, true)]);
    let _collector = p.start("collector", "collector", &[]).await;
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

/// A facebook-shaped event for the `legacy` test source.
fn legacy_event(id: &str) -> Value {
    json!({
        "eventId": id,
        "timestamp": "2024-05-01T10:00:00Z",
        "source": "legacy",
        "funnelStage": "top",
        "eventType": "ad.view",
        "data": {"user": {"userId": "u-1", "age": 30}, "engagement": {"x": [1, 2]}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_of_both_contract_versions_run_side_by_side_and_raw_is_what_was_sent() {
    let dir = PluginDir::new();
    dir.install(&dist_file("plugins/facebook.wasm"), "facebook.wasm");
    dir.install(&test_wasm("legacy-v0.1"), "legacy.wasm");
    let (runtime, _) =
        crate::support::plugins::runtime_in(dir.path(), crate::support::plugins::test_limits());
    runtime.load_dir().expect("both load");
    let versions = |s: &str| runtime.get(s).map(|p| p.contract_version());
    assert_eq!(
        (versions("facebook"), versions("legacy")),
        (Some("0.2.0"), Some("0.1.0"))
    );

    let mut p = Pipeline::shared("slice_legacy").await;
    p.env
        .insert("PLUGINS_DIR".into(), dir.path().display().to_string());
    let host = p.start("all", "all", &[]).await;
    // Odd spacing and unknown fields: the stored raw must be these bytes, not
    // the legacy plugin's tampered echo.
    let legacy = format!(" {} ", legacy_event("legacy-1")).replace("\":", "\" : ");
    let fb = crate::support::plugins::fb_top("ad.view").to_string();
    let body = format!("[{legacy},\n{fb}]");
    let (status, reply) = post(&p.http, &host.url("/webhook"), body.into_bytes(), &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2, "{reply}");
    wait_until("both events handled", Duration::from_secs(60), || async {
        p.db.count("events").await + p.db.count("dead_letters").await == 2
    })
    .await;
    let dead: Vec<(String,)> = sqlx::query_as("SELECT reasons::text FROM dead_letters")
        .fetch_all(&p.db.pool)
        .await
        .unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT source, raw::text, plugin_name FROM events ORDER BY source")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    assert_eq!(rows[0].0, "facebook");
    assert_eq!(rows[0].1, fb);
    assert_eq!(rows[1].0, "legacy");
    assert_eq!(
        rows[1].1,
        legacy.trim(),
        "the bytes sent, not the plugin's echo"
    );
}
