//! Plugin-runtime test helpers: where the built components are, temporary
//! `PLUGINS_DIR`s, runtimes with their own metrics registry, event fixtures.
//!
//! The components are built by `scripts/build-plugins.sh` into `<repo>/dist`
//! (override with `EVENTS_PLUGINS_DIST`). Missing components fail the test
//! with instructions: CI builds them before running the host tests.

use events_host::plugins::{
    EventResult, Limits, NormalizedEvent, Plugin, PluginMetrics, PluginRuntime, RuntimeConfig,
};
use prometheus::Registry;
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

/// `$EVENTS_PLUGINS_DIST`, else `<repo>/dist`.
pub fn dist_dir() -> PathBuf {
    match std::env::var_os("EVENTS_PLUGINS_DIST") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"),
    }
}

/// A built component, `rel` inside the dist dir (`plugins/facebook.wasm`).
/// Panics with the build instructions when it is missing.
pub fn dist_file(rel: &str) -> PathBuf {
    let path = dist_dir().join(rel);
    assert!(
        path.is_file(),
        "plugin component {} is missing: build the plugins first with \
         `scripts/build-plugins.sh` (e.g. `PLUGINS_TARGET_DIR=/var/cache/events-target/plugins \
         scripts/build-plugins.sh`), or point EVENTS_PLUGINS_DIST at a directory holding \
         plugins/ and test-plugins/",
        path.display()
    );
    path
}

pub fn facebook_wasm() -> PathBuf {
    dist_file("plugins/facebook.wasm")
}
pub fn tiktok_wasm() -> PathBuf {
    dist_file("plugins/tiktok.wasm")
}
/// `chaos-v1`, `chaos-v2`, `chaos-claims-facebook`, `template`.
pub fn test_wasm(name: &str) -> PathBuf {
    dist_file(&format!("test-plugins/{name}.wasm"))
}

/// A temporary `PLUGINS_DIR` (removed on drop).
pub struct PluginDir {
    pub tmp: tempfile::TempDir,
}

impl PluginDir {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `dir/<name>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Copies `src` to `dir/<name>`.
    pub fn install(&self, src: &Path, name: &str) -> PathBuf {
        let dest = self.file(name);
        std::fs::copy(src, &dest).expect("copy component");
        dest
    }

    /// Replaces `dir/<name>` atomically: write a temp file (not `*.wasm`),
    /// then rename it over the target.
    pub fn replace_atomically(&self, src: &Path, name: &str) -> PathBuf {
        let dest = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        std::fs::copy(src, &tmp).expect("copy component");
        std::fs::rename(&tmp, &dest).expect("rename component");
        dest
    }
}

/// Limits for tests: a modest memory cap and a call deadline no busy
/// machine reaches, so a test fails for its own reason, never the clock.
pub fn test_limits() -> Limits {
    Limits {
        max_memory_bytes: 32 * 1024 * 1024,
        call_timeout: Duration::from_secs(60),
        epoch_tick: Duration::from_millis(5),
    }
}

/// [`test_limits`] with a 300 ms deadline, for the tests that prove the
/// deadline itself.
pub fn tight_limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(300),
        ..test_limits()
    }
}

/// A runtime over `dir` whose metrics live in the returned registry.
pub fn runtime_in(dir: &Path, limits: Limits) -> (PluginRuntime, Registry) {
    runtime_with(RuntimeConfig {
        limits,
        poll_interval: Duration::from_millis(20),
        ..RuntimeConfig::for_dir(dir)
    })
}

pub fn runtime_with(config: RuntimeConfig) -> (PluginRuntime, Registry) {
    let registry = Registry::new();
    let metrics = PluginMetrics::new(&registry).expect("register plugin metrics");
    let runtime = PluginRuntime::new(config, metrics).expect("plugin runtime");
    (runtime, registry)
}

/// Sum of the samples of counter `name` whose labels include all of `labels`.
pub fn counter(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

/// The production plugins, loaded once per test binary (read-only, so tests
/// sharing it still run in parallel).
pub fn production_runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<(PluginDir, PluginRuntime)> = OnceLock::new();
    &RUNTIME
        .get_or_init(|| {
            let dir = PluginDir::new();
            dir.install(&facebook_wasm(), "facebook.wasm");
            dir.install(&tiktok_wasm(), "tiktok.wasm");
            let (runtime, _) = runtime_in(dir.path(), Limits::default());
            runtime.load_dir().expect("load the production plugins");
            (dir, runtime)
        })
        .1
}

/// The active plugin of the shared production runtime.
pub fn production(source: &str) -> Arc<Plugin> {
    production_runtime()
        .get(source)
        .unwrap_or_else(|| panic!("no plugin for {source}"))
}

/// One call of `plugin` on `docs`; a call failure fails the test.
pub fn call(plugin: &Plugin, docs: &[String]) -> Vec<EventResult> {
    let out = plugin
        .normalize_batch_blocking(docs)
        .unwrap_or_else(|e| panic!("{} call failed: {e}", plugin.identity()));
    assert_eq!(out.len(), docs.len(), "one result per event");
    out
}

/// The normalized event; panics with the issues when rejected.
pub fn accepted(plugin: &Plugin, raw: &str) -> NormalizedEvent {
    match call(plugin, &[raw.to_owned()]).remove(0) {
        EventResult::Ok(e) => *e,
        EventResult::Rejected(issues) => panic!("rejected {raw}: {issues:?}"),
    }
}

/// The fields named by the issues; panics when accepted.
pub fn rejected_fields(plugin: &Plugin, raw: &str) -> Vec<String> {
    match call(plugin, &[raw.to_owned()]).remove(0) {
        EventResult::Ok(e) => panic!("accepted {raw}: {e:?}"),
        EventResult::Rejected(issues) => {
            assert!(!issues.is_empty(), "a rejection names a reason");
            assert!(issues.iter().all(|i| !i.message.is_empty()), "{issues:?}");
            issues.into_iter().map(|i| i.field).collect()
        }
    }
}

// --- fixtures -----------------------------------------------------------------------------

pub fn fb_top(event_type: &str) -> Value {
    json!({
        "eventId": "fb-1", "timestamp": "2024-03-01T12:34:56.789Z", "source": "facebook",
        "funnelStage": "top", "eventType": event_type,
        "data": {
            "user": {"userId": "u-1", "name": "Ann", "age": 30, "gender": "female",
                     "location": {"country": "DE", "city": "Berlin"}},
            "engagement": {"actionTime": "2024-03-01T12:34:50.000Z", "referrer": "newsfeed",
                           "videoId": null}
        }
    })
}

pub fn fb_bottom(event_type: &str) -> Value {
    json!({
        "eventId": "fb-2", "timestamp": "2024-03-01T12:34:56.789Z", "source": "facebook",
        "funnelStage": "bottom", "eventType": event_type,
        "data": {
            "user": {"userId": "u-2", "name": "Bo", "age": 41, "gender": "non-binary",
                     "location": {"country": "US", "city": "Austin"}},
            "engagement": {"adId": "ad-9", "campaignId": "cmp-3", "clickPosition": "center",
                           "device": "mobile", "browser": "Safari", "purchaseAmount": "123.45"}
        }
    })
}

pub fn tt_top(event_type: &str) -> Value {
    json!({
        "eventId": "ttk-1", "timestamp": "2024-03-01T12:34:56.789Z", "source": "tiktok",
        "funnelStage": "top", "eventType": event_type,
        "data": {
            "user": {"userId": "t-1", "username": "ann", "followers": 1200},
            "engagement": {"watchTime": 12.5, "percentageWatched": 87.5, "device": "iOS",
                           "country": "FR", "videoId": "v-7"}
        }
    })
}

pub fn tt_bottom(event_type: &str) -> Value {
    json!({
        "eventId": "ttk-2", "timestamp": "2024-03-01T12:34:56.789Z", "source": "tiktok",
        "funnelStage": "bottom", "eventType": event_type,
        "data": {
            "user": {"userId": "t-2", "username": "bo", "followers": 0},
            "engagement": {"actionTime": "2024-03-01T12:34:50Z", "profileId": "p-1",
                           "purchasedItem": "hat", "purchaseAmount": "19.99"}
        }
    })
}

/// `doc` with the value at JSON pointer `ptr` replaced (`Some`) or removed (`None`).
pub fn with(mut doc: Value, ptr: &str, new: Option<Value>) -> Value {
    let (parent, key) = ptr.rsplit_once('/').expect("a JSON pointer");
    let obj = doc
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"));
    match new {
        Some(v) => obj.insert(key.to_owned(), v),
        None => obj.remove(key),
    };
    doc
}

/// A chaos-plugin event with the given `mode`.
pub fn chaos(mode: &str, id: usize) -> String {
    format!(r#"{{"eventId":"c-{id}","mode":"{mode}"}}"#)
}

/// `n` well-behaved chaos events.
pub fn chaos_ok_batch(n: usize) -> Vec<String> {
    (0..n).map(|i| chaos("ok", i)).collect()
}
