//! Swaps and pickups: replacing a plugin atomically or in place under load
//! fails no call, by hand or through the spawned watcher; a new source is
//! picked up and announced.

use super::{chaos_dir, let_it_run, version, Load};
use crate::support::plugins::{test_wasm, tiktok_wasm};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[test]
fn replacing_under_load_fails_no_call() {
    let (dir, runtime) = chaos_dir();
    let mut watcher = runtime.watcher();
    assert!(watcher.scan().activated.is_empty(), "nothing changed yet");
    let load = Load::start(&runtime);
    let_it_run(&runtime, 5);

    // atomic replacement: write a temp file, rename it over
    dir.replace_atomically(&test_wasm("chaos-v2"), "chaos.wasm");
    let report = watcher.scan();
    assert_eq!(report.activated.len(), 1, "{report:?}");
    assert_eq!(version(&runtime, "chaos"), "2.0.0");
    let_it_run(&runtime, 5);

    // in-place overwrite of the same path (back to v1)
    std::fs::copy(test_wasm("chaos-v1"), dir.file("chaos.wasm")).unwrap();
    let report = watcher.scan();
    assert_eq!(report.activated.len(), 1, "{report:?}");
    assert_eq!(version(&runtime, "chaos"), "1.0.0");
    let_it_run(&runtime, 5);

    dir.replace_atomically(&test_wasm("chaos-v2"), "chaos.wasm");
    assert_eq!(watcher.scan().activated.len(), 1);
    let_it_run(&runtime, 5);

    let r = load.finish();
    assert_eq!(r.failures, Vec::<String>::new(), "{} calls", r.calls);
    assert!(r.calls > 0);
    assert!(r.versions.contains("2.0.0"), "{:?}", r.versions);
    assert_eq!(version(&runtime, "chaos"), "2.0.0");
    assert_eq!(runtime.sources(), ["chaos"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_watcher_swaps_under_load() {
    let (dir, runtime) = chaos_dir();
    let stop = CancellationToken::new();
    let watching = runtime.watcher().spawn(stop.clone());
    let load = Load::start(&runtime);
    let mut sources = runtime.subscribe();

    dir.replace_atomically(&test_wasm("chaos-v2"), "chaos.wasm");
    dir.install(&tiktok_wasm(), "tiktok.wasm");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(runtime.has_source("tiktok") && version(&runtime, "chaos") == "2.0.0") {
        assert!(
            Instant::now() < deadline,
            "the watcher did not pick the changes up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = tokio::time::timeout(Duration::from_secs(5), sources.wait_for(|s| s.len() == 2))
        .await
        .expect("subscribers are told")
        .expect("sender alive")
        .clone();
    assert_eq!(seen, ["chaos", "tiktok"]);
    let_it_run(&runtime, 5);
    load.wait_for_version("2.0.0").await;

    stop.cancel();
    watching.await.expect("watcher task");
    let r = load.finish();
    assert_eq!(r.failures, Vec::<String>::new(), "{} calls", r.calls);
    assert!(r.versions.contains("2.0.0"), "{:?}", r.versions);
}

#[test]
fn a_new_source_is_picked_up_and_announced() {
    let (dir, runtime) = chaos_dir();
    let mut watcher = runtime.watcher();
    let mut rx = runtime.subscribe();
    assert_eq!(*rx.borrow_and_update(), ["chaos"]);

    dir.install(&tiktok_wasm(), "tiktok.wasm");
    let report = watcher.scan();
    let activated: Vec<_> = report.activated.iter().map(|i| i.source.as_str()).collect();
    assert_eq!(activated, ["tiktok"]);
    assert_eq!(runtime.sources(), ["chaos", "tiktok"]);
    assert!(rx.has_changed().unwrap(), "subscribers are told");
    assert_eq!(*rx.borrow_and_update(), ["chaos", "tiktok"]);
    assert_eq!(
        version(&runtime, "chaos"),
        "1.0.0",
        "the others are untouched"
    );
    assert_eq!(
        watcher.scan(),
        Default::default(),
        "a second scan changes nothing"
    );
}
