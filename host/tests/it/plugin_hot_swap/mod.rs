//! Hot swap and pickup through the watcher, under load: replacing a plugin
//! (atomically or in place) never fails a call, new sources are picked up
//! and announced, broken or conflicting files are refused while the old
//! version keeps serving, removal unloads after a grace (so remove-then-copy
//! leaves no gap); plus the compiled-artifact cache. Shared here: the chaos
//! plugin directory and the `Load` thread calling it.
mod compiled_cache;
mod refuse;
mod remove;
mod swap;

use crate::support::plugins::{chaos_ok_batch, runtime_in, test_limits, test_wasm, PluginDir};
use events_host::plugins::{EventResult, PluginRuntime};
use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

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
