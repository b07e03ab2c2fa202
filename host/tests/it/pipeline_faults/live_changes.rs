//! A running pipeline changed under load: a source served by two
//! collectors behind two gateways, a plugin swapped.
use super::{all_ok, finish, spec};
use crate::support::pipeline::{spawn_load, Pipeline};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_and_two_collectors_for_one_source_split_the_work() {
    let p = Pipeline::shared("fault_split").await;
    // Small slices: many messages, so both replicas certainly fetch some.
    let small = [("GATEWAY_SLICE_EVENTS", "10")];
    let gw1 = p.start("gateway-1", "gateway", &small).await;
    let gw2 = p.start("gateway-2", "gateway", &small).await;
    let fb1 = p
        .start(
            "collector-facebook-1",
            "collector",
            &[
                ("COLLECTOR_TYPE", "facebook"),
                ("COLLECTOR_BATCH_SIZE", "100"),
            ],
        )
        .await;
    let fb2 = p
        .start(
            "collector-facebook-2",
            "collector",
            &[
                ("COLLECTOR_TYPE", "facebook"),
                ("COLLECTOR_BATCH_SIZE", "100"),
            ],
        )
        .await;
    let _tt = p
        .start(
            "collector-tiktok",
            "collector",
            &[("COLLECTOR_TYPE", "tiktok")],
        )
        .await;
    let load = spawn_load(
        p.http.clone(),
        spec(14, 50, 4, 0, vec![gw1.url("/webhook"), gw2.url("/webhook")]),
    )
    .await
    .unwrap();
    all_ok(&load);
    finish(&p, &load).await;

    let stored_fb: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE source = 'facebook'")
            .fetch_one(&p.db.pool)
            .await
            .unwrap();
    let mut processed = Vec::new();
    for h in [&fb1, &fb2] {
        processed.push(h.metrics().await.sum(
            "collector_events_processed_total",
            &[("collector", "facebook")],
        ));
    }
    assert!(
        processed.iter().all(|n| *n > 0.0),
        "both facebook collectors took work: {processed:?}"
    );
    let dups = fb1
        .metrics()
        .await
        .sum("collector_events_db_duplicates_total", &[])
        + fb2
            .metrics()
            .await
            .sum("collector_events_db_duplicates_total", &[]);
    assert_eq!(
        processed.iter().sum::<f64>() - dups,
        stored_fb as f64,
        "facebook work split without overlap"
    );
    for gw in [&gw1, &gw2] {
        assert!(gw.metrics().await.sum("gateway_events_accepted_total", &[]) > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_hot_swapped_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["facebook.wasm", "tiktok.wasm"] {
        std::fs::copy(
            crate::support::pipeline::plugins_dir().join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    let p = Pipeline::shared("fault_swap").await;
    let plugins = dir.path().display().to_string();
    let host = p
        .start(
            "all",
            "all",
            &[
                ("PLUGINS_DIR", &plugins),
                ("PLUGINS_POLL_INTERVAL_MS", "100"),
            ],
        )
        .await;
    let load = spawn_load(
        p.http.clone(),
        spec(15, 40, 2, 100, vec![host.url("/webhook")]),
    );
    let bytes = std::fs::read(dir.path().join("facebook.wasm")).unwrap();
    let mut swaps = 0;
    while !load.is_finished() {
        // Same component, new file: written aside, renamed over atomically.
        let tmp = dir.path().join(".facebook.wasm.new");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, dir.path().join("facebook.wasm")).unwrap();
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let load = load.await.unwrap();
    all_ok(&load);
    assert!(swaps >= 5, "only {swaps} swaps during the load");
    finish(&p, &load).await;

    let m = host.metrics().await;
    let activated = m.sum("plugin_reloads_total", &[("result", "activated")]);
    assert!(
        activated >= (swaps - 1) as f64,
        "{activated} activations for {swaps} swaps"
    );
    assert_eq!(m.sum("plugin_reloads_total", &[("result", "refused")]), 0.0);
    assert_eq!(
        m.sum("plugin_failures_total", &[]),
        0.0,
        "no failed plugin call"
    );
    assert_eq!(
        m.sum("collector_events_failed_total", &[("stage", "delivery")]),
        0.0,
        "no event failed delivery"
    );
}
