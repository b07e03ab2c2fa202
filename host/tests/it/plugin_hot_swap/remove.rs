//! Removal: a removed file unloads its source after a grace, so
//! remove-then-copy leaves no gap, and in-flight callers finish.

use super::{chaos_dir, version, Load};
use crate::support::plugins::{
    chaos_ok_batch, runtime_with, test_limits, test_wasm, tiktok_wasm, PluginDir,
};
use events_host::plugins::{PluginRuntime, RuntimeConfig};
use std::time::{Duration, Instant};

#[test]
fn removing_a_file_unloads_its_source() {
    let (dir, runtime) = chaos_dir();
    dir.install(&tiktok_wasm(), "tiktok.wasm");
    let mut watcher = runtime.watcher();
    assert_eq!(watcher.scan().activated.len(), 1);
    let mut rx = runtime.subscribe();
    rx.borrow_and_update();
    let in_flight = runtime.get("chaos").unwrap();

    std::fs::remove_file(dir.file("chaos.wasm")).unwrap();
    let report = watcher.scan();
    assert_eq!(report.removed, ["chaos"]);
    assert!(runtime.get("chaos").is_none());
    assert_eq!(runtime.sources(), ["tiktok"]);
    assert_eq!(*rx.borrow_and_update(), ["tiktok"]);
    // a caller holding the old plugin finishes its work
    let out = in_flight.normalize_batch_blocking(&chaos_ok_batch(3));
    assert_eq!(out.expect("in-flight plugin still callable").len(), 3);

    // and dropping it back in brings the source back
    dir.install(&test_wasm("chaos-v2"), "chaos.wasm");
    assert_eq!(watcher.scan().activated.len(), 1);
    assert_eq!(version(&runtime, "chaos"), "2.0.0");
}

/// A runtime over `dir` (chaos-v1 loaded) that unloads a missing file's
/// source only after `grace`.
fn chaos_dir_with_grace(grace: Duration) -> (PluginDir, PluginRuntime) {
    let dir = PluginDir::new();
    dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let (runtime, _) = runtime_with(RuntimeConfig {
        limits: test_limits(),
        remove_grace: grace,
        ..RuntimeConfig::for_dir(dir.path())
    });
    runtime.load_dir().expect("load chaos-v1");
    (dir, runtime)
}

#[test]
fn remove_then_copy_leaves_no_gap() {
    // A grace far longer than this test: the scans between the removal and
    // the copy happen inside it however slow the machine is.
    let (dir, runtime) = chaos_dir_with_grace(Duration::from_secs(600));
    let mut watcher = runtime.watcher();
    let mut rx = runtime.subscribe();
    rx.borrow_and_update();
    let load = Load::start(&runtime);

    std::fs::remove_file(dir.file("chaos.wasm")).unwrap();
    for _ in 0..3 {
        assert_eq!(watcher.scan(), Default::default());
        assert_eq!(version(&runtime, "chaos"), "1.0.0", "still served");
    }
    dir.install(&test_wasm("chaos-v2"), "chaos.wasm");
    let report = watcher.scan();
    assert_eq!(report.activated.len(), 1, "{report:?}");
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(version(&runtime, "chaos"), "2.0.0");
    assert_eq!(*rx.borrow_and_update(), ["chaos"], "never announced gone");
    let r = load.finish();
    assert_eq!(r.failures, Vec::<String>::new(), "{} calls", r.calls);

    // The same under another file name: the missing file's source is free
    // to be taken over, not "already served".
    std::fs::remove_file(dir.file("chaos.wasm")).unwrap();
    assert_eq!(watcher.scan(), Default::default());
    dir.install(&test_wasm("chaos-v1"), "chaos-renamed.wasm");
    let report = watcher.scan();
    assert_eq!(report.activated.len(), 1, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    let active = runtime.get("chaos").unwrap();
    assert_eq!(active.path(), dir.file("chaos-renamed.wasm"));
}

#[test]
fn a_file_missing_past_its_grace_unloads_its_source() {
    let grace = Duration::from_millis(300);
    let (dir, runtime) = chaos_dir_with_grace(grace);
    let mut watcher = runtime.watcher();
    std::fs::remove_file(dir.file("chaos.wasm")).unwrap();
    let removed_at = Instant::now();
    let mut report = watcher.scan();
    while report.removed.is_empty() {
        assert!(
            removed_at.elapsed() < Duration::from_secs(60),
            "never unloaded"
        );
        assert!(runtime.get("chaos").is_some(), "unloaded before the grace");
        std::thread::sleep(Duration::from_millis(20));
        report = watcher.scan();
    }
    assert!(removed_at.elapsed() >= grace, "unloaded inside the grace");
    assert_eq!(report.removed, ["chaos"]);
    assert!(runtime.get("chaos").is_none());
}
