//! Hot swap and pickup through the watcher, under load: replacing a plugin
//! (atomically or in place) never fails a call, new sources are picked up
//! and announced, broken or conflicting files are refused while the old
//! version keeps serving, removal unloads after a grace (so remove-then-copy
//! leaves no gap); plus the compiled-artifact cache.

use crate::support::plugins::{
    chaos_ok_batch, runtime_in, runtime_with, test_limits, test_wasm, tiktok_wasm, PluginDir,
};
use events_host::plugins::{EventResult, PluginRuntime, RuntimeConfig};
use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

fn version(runtime: &PluginRuntime, source: &str) -> String {
    let plugin = runtime
        .get(source)
        .unwrap_or_else(|| panic!("{source} not active"));
    plugin.identity().version.clone()
}

/// A dir with chaos-v1 as `chaos.wasm`, loaded.
fn chaos_dir() -> (PluginDir, PluginRuntime) {
    let dir = PluginDir::new();
    dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let (runtime, _) = runtime_in(dir.path(), test_limits());
    runtime.load_dir().expect("load chaos-v1");
    assert_eq!(version(&runtime, "chaos"), "1.0.0");
    (dir, runtime)
}

/// Calls `chaos` in a loop until stopped; every call must succeed.
struct Load {
    stop: Arc<AtomicBool>,
    /// Versions the load thread has called so far.
    seen: Arc<std::sync::Mutex<BTreeSet<String>>>,
    handle: JoinHandle<(usize, Vec<String>, BTreeSet<String>)>,
}

struct LoadReport {
    calls: usize,
    failures: Vec<String>,
    versions: BTreeSet<String>,
}

impl Load {
    fn start(runtime: &PluginRuntime) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let (flag, runtime, seen_by_thread) = (stop.clone(), runtime.clone(), seen.clone());
        let handle = std::thread::spawn(move || {
            let batch = chaos_ok_batch(20);
            let (mut calls, mut failures, mut versions) = (0, Vec::new(), BTreeSet::new());
            while !flag.load(Ordering::Relaxed) {
                let Some(plugin) = runtime.get("chaos") else {
                    failures.push("chaos not active".to_owned());
                    break;
                };
                calls += 1;
                versions.insert(plugin.identity().version.clone());
                if let Ok(mut seen) = seen_by_thread.lock() {
                    seen.insert(plugin.identity().version.clone());
                }
                match plugin.normalize_batch_blocking(&batch) {
                    Ok(out) if out.iter().all(|r| matches!(r, EventResult::Ok(_))) => {}
                    Ok(out) => failures.push(format!("unexpected results {out:?}")),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (calls, failures, versions)
        });
        Self { stop, seen, handle }
    }

    /// Waits (generously: the thread's pace is not ours) until the load
    /// thread has called `version`.
    async fn wait_for_version(&self, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.seen.lock().unwrap().contains(version) {
            assert!(Instant::now() < deadline, "the load never called {version}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let (calls, failures, versions) = self.handle.join().expect("load thread");
        LoadReport {
            calls,
            failures,
            versions,
        }
    }
}

/// `calls` more calls from this thread, while the load thread keeps going.
fn let_it_run(runtime: &PluginRuntime, calls: usize) {
    let plugin = runtime.get("chaos").unwrap();
    for _ in 0..calls {
        plugin
            .normalize_batch_blocking(&chaos_ok_batch(5))
            .expect("main-thread call");
    }
}

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

#[test]
fn a_broken_replacement_is_refused_and_the_old_version_stays() {
    let (dir, runtime) = chaos_dir();
    let mut watcher = runtime.watcher();
    let load = Load::start(&runtime);
    let garbage = dir.file("garbage");
    std::fs::write(&garbage, b"this is not a webassembly component").unwrap();
    dir.replace_atomically(&garbage, "chaos.wasm");

    let report = watcher.scan();
    assert!(report.activated.is_empty(), "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].0, dir.file("chaos.wasm"));
    assert_eq!(version(&runtime, "chaos"), "1.0.0");
    let_it_run(&runtime, 5);
    assert_eq!(
        watcher.scan(),
        Default::default(),
        "refused once, not on every scan"
    );

    // fixing the file activates it
    dir.replace_atomically(&test_wasm("chaos-v2"), "chaos.wasm");
    assert_eq!(watcher.scan().activated.len(), 1);
    assert_eq!(version(&runtime, "chaos"), "2.0.0");
    let r = load.finish();
    assert_eq!(r.failures, Vec::<String>::new(), "{} calls", r.calls);
}

#[test]
fn a_second_file_for_a_served_source_is_refused() {
    let (dir, runtime) = chaos_dir();
    let mut watcher = runtime.watcher();
    let mut rx = runtime.subscribe();
    rx.borrow_and_update();
    let impostor = dir.install(&test_wasm("chaos-v2"), "another-chaos.wasm");

    let report = watcher.scan();
    assert!(report.activated.is_empty(), "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let (path, why) = &report.refused[0];
    assert_eq!(path, &impostor);
    assert!(
        why.contains("already served") && why.contains("chaos.wasm"),
        "{why}"
    );
    let active = runtime.get("chaos").unwrap();
    assert_eq!(active.path(), dir.file("chaos.wasm"));
    assert_eq!(active.identity().version, "1.0.0");
    assert!(!rx.has_changed().unwrap());
}

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

#[test]
fn the_compiled_cache_serves_a_second_runtime() {
    let dir = PluginDir::new();
    let path = dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().join("compiled")),
        limits: test_limits(),
        ..RuntimeConfig::for_dir(dir.path())
    };
    let (first, _) = runtime_with(config.clone());
    assert!(
        !first.load_file(&path).unwrap().from_cache,
        "compiled the first time"
    );
    let artifacts: Vec<_> = std::fs::read_dir(cache.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1, "one artifact: {artifacts:?}");

    let (second, _) = runtime_with(config.clone());
    second.load_dir().unwrap();
    let plugin = second.get("chaos").unwrap();
    assert!(plugin.from_cache, "the second runtime uses the artifact");
    let out = plugin.normalize_batch_blocking(&chaos_ok_batch(4)).unwrap();
    assert!(out.iter().all(|r| matches!(r, EventResult::Ok(_))));

    // a damaged artifact is recompiled, not trusted
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let (third, _) = runtime_with(config);
    let plugin = third.load_file(&path).unwrap();
    assert!(!plugin.from_cache);
    let out = plugin.normalize_batch_blocking(&chaos_ok_batch(2));
    assert_eq!(out.unwrap().len(), 2);
    let still = second.get("chaos").unwrap();
    assert_eq!(
        still
            .normalize_batch_blocking(&chaos_ok_batch(2))
            .unwrap()
            .len(),
        2
    );
}

/// The cache file of `component` in `dir` (named by its SHA-256).
fn cached_file(dir: &std::path::Path, component: &[u8]) -> std::path::PathBuf {
    use sha2::Digest;
    let prefix = hex::encode(sha2::Sha256::digest(component));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .unwrap_or_else(|| panic!("no cache entry for {prefix}"))
}

#[test]
fn the_compiled_cache_cannot_be_used_to_plant_code() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = PluginDir::new();
    let chaos = dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let tiktok = dir.install(&tiktok_wasm(), "tiktok.wasm");
    let cache = tempfile::tempdir().unwrap();
    let compiled = cache.path().join("compiled");
    let config = RuntimeConfig {
        cache_dir: Some(compiled.clone()),
        limits: test_limits(),
        ..RuntimeConfig::for_dir(dir.path())
    };
    let (first, _) = runtime_with(config.clone());
    first.load_file(&chaos).unwrap();
    first.load_file(&tiktok).unwrap();
    assert_eq!(mode(&compiled), 0o700, "created private");
    let chaos_entry = cached_file(&compiled, &std::fs::read(&chaos).unwrap());
    let tiktok_entry = cached_file(&compiled, &std::fs::read(&tiktok).unwrap());
    assert_eq!(mode(&chaos_entry), 0o600);

    // A well-formed artifact of another component under chaos's name.
    std::fs::copy(&tiktok_entry, &chaos_entry).unwrap();
    let (second, _) = runtime_with(config.clone());
    let plugin = second.load_file(&chaos).unwrap();
    assert!(!plugin.from_cache, "the planted artifact was used");
    assert_eq!(plugin.identity().source, "chaos");
    let (third, _) = runtime_with(config.clone());
    assert!(
        third.load_file(&chaos).unwrap().from_cache,
        "rewritten properly"
    );

    // An entry others may write to is refused; a directory others may
    // write to is made private again.
    std::fs::set_permissions(&chaos_entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (fourth, _) = runtime_with(config);
    assert_eq!(mode(&compiled), 0o700);
    let plugin = fourth.load_file(&chaos).unwrap();
    assert!(!plugin.from_cache, "a writable-by-others artifact was used");
    assert_eq!(plugin.identity().source, "chaos");
}
