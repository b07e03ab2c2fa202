//! The source → plugin map. Readers take an `Arc<Plugin>` and keep it for
//! their call, so replacing an entry never disturbs a call in flight.
use super::{
    engine::PluginEngine,
    error::PluginError,
    files::{self, Stamp},
    instance::Plugin,
    limits::{Limits, StoreState},
    metrics::PluginMetrics,
    types::Identity,
};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};
use tokio::sync::watch;
use wasmtime::component::Linker;

/// How the runtime finds and runs plugins.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `PLUGINS_DIR`: every `*.wasm` in it is a plugin.
    pub dir: PathBuf,
    /// `PLUGINS_CACHE_DIR`: compiled artifacts; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// `PLUGINS_POLL_INTERVAL_MS`: how often the directory is rescanned.
    pub poll_interval: Duration,
    /// `PLUGINS_REMOVE_GRACE_MS`: how long a plugin's file may be missing
    /// before its source is unloaded (a remove-then-copy replacement).
    pub remove_grace: Duration,
    pub limits: Limits,
}

impl RuntimeConfig {
    /// Defaults for tools and tests: no cache, and a removed file unloads its
    /// source at the next scan.
    pub fn for_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache_dir: None,
            poll_interval: Duration::from_millis(500),
            remove_grace: Duration::ZERO,
            limits: Limits::default(),
        }
    }
}

/// Cheap to clone; all clones share the same plugins.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    engine: PluginEngine,
    linker: Linker<StoreState>,
    metrics: PluginMetrics,
    active: RwLock<BTreeMap<String, Arc<Plugin>>>,
    /// The active plugins' files as they were just before they were read,
    /// so a new watcher picks up a file changed since.
    stamps: Mutex<BTreeMap<PathBuf, Stamp>>,
    sources_tx: watch::Sender<Vec<String>>,
}

impl PluginRuntime {
    pub fn new(config: RuntimeConfig, metrics: PluginMetrics) -> Result<Self, PluginError> {
        let engine = PluginEngine::new(&config.limits, config.cache_dir.clone())?;
        let mut linker = Linker::<StoreState>::new(&engine.engine);
        // The WASI imports a wasip2 component needs, backed by a context
        // that grants nothing (see `limits`).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| super::limits::forbid_blocking(&mut linker))
            .map_err(PluginError::Engine)?;
        let (sources_tx, _) = watch::channel(Vec::new());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                engine,
                linker,
                metrics,
                active: RwLock::new(BTreeMap::new()),
                stamps: Mutex::new(BTreeMap::new()),
                sources_tx,
            }),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &PluginMetrics {
        &self.inner.metrics
    }

    /// Loads one component without activating it (`plugin check`, tests).
    pub fn load_file(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let i = &self.inner;
        Plugin::load(&i.engine, &i.linker, path, &i.config.limits, &i.metrics).map(Arc::new)
    }

    /// Startup: loads every plugin of the directory. Any broken file or two
    /// files claiming one source stop the service with that reason.
    pub fn load_dir(&self) -> Result<Vec<Identity>, PluginError> {
        let mut loaded: BTreeMap<String, Arc<Plugin>> = BTreeMap::new();
        let mut stamps = BTreeMap::new();
        for path in files::wasm_files(&self.inner.config.dir)? {
            let stamp = files::stamp(&path);
            let plugin = self.load_file(&path)?;
            let source = plugin.identity().source.clone();
            if let Some(first) = loaded.get(&source) {
                return Err(PluginError::Conflict {
                    claimed: source,
                    first: first.path().to_path_buf(),
                    second: path,
                });
            }
            tracing::info!(plugin = %plugin.identity(), path = %path.display(), cached = plugin.from_cache, "plugin loaded");
            if let Some(stamp) = stamp {
                stamps.insert(path, stamp);
            }
            loaded.insert(source, plugin);
        }
        let identities = loaded.values().map(|p| p.identity().clone()).collect();
        self.replace_all(loaded);
        self.set_stamps(stamps);
        Ok(identities)
    }

    /// The active plugin for `source`.
    pub fn get(&self, source: &str) -> Option<Arc<Plugin>> {
        self.inner.active.read().ok()?.get(source).cloned()
    }

    pub fn has_source(&self, source: &str) -> bool {
        self.inner
            .active
            .read()
            .map(|a| a.contains_key(source))
            .unwrap_or(false)
    }

    /// Sources with an active plugin, sorted.
    pub fn sources(&self) -> Vec<String> {
        self.inner
            .active
            .read()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Notified with the source list whenever it changes (collectors with
    /// `COLLECTOR_TYPE=all` start consuming new sources from it).
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.inner.sources_tx.subscribe()
    }

    pub(super) fn snapshot(&self) -> BTreeMap<String, Arc<Plugin>> {
        self.inner
            .active
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// The stamps of the active plugins' files when they were read.
    pub(super) fn stamps(&self) -> BTreeMap<PathBuf, Stamp> {
        self.inner
            .stamps
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    pub(super) fn set_stamps(&self, stamps: BTreeMap<PathBuf, Stamp>) {
        if let Ok(mut s) = self.inner.stamps.lock() {
            *s = stamps;
        }
    }

    pub(super) fn replace_all(&self, plugins: BTreeMap<String, Arc<Plugin>>) {
        let sources: Vec<String> = plugins.keys().cloned().collect();
        self.inner.metrics.loaded.set(plugins.len() as i64);
        if let Ok(mut active) = self.inner.active.write() {
            *active = plugins;
        }
        self.inner.sources_tx.send_if_modified(|s| {
            let changed = *s != sources;
            *s = sources;
            changed
        });
    }
}
