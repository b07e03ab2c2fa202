//! One loaded plugin: its compiled component, pre-linked once, and a few warm
//! instances reused across calls.
//!
//! Instantiating costs ≈ 50 µs, but a fresh instance also starts with an
//! empty linear memory that every batch grows and page-faults in again, and
//! its allocator starts cold: reusing an instance makes calls markedly
//! faster (see `benches/plugin_throughput.rs`). Reuse is bounded so that
//! nothing a plugin accumulates lives long: an instance is dropped after any
//! failed call (trap, timeout, memory, broken contract), after
//! [`MAX_CALLS_PER_INSTANCE`] calls, once its memory has grown past
//! [`MAX_WARM_MEMORY`], and beyond [`MAX_IDLE_INSTANCES`] idle ones. State
//! surviving from one batch to the next of the same plugin is harmless (one
//! plugin serves one source; results are still checked call by call).
use super::{
    bindings::{convert_result, output_bytes, Bound, PluginPre},
    engine::PluginEngine,
    error::{CallError, PluginError},
    limits::{Limits, StoreState},
    metrics::PluginMetrics,
    types::{EventResult, Identity, Lineage},
};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};
use wasmtime::{component::Linker, Store};

/// Calls an instance serves before it is replaced by a fresh one.
pub const MAX_CALLS_PER_INSTANCE: u32 = 1_000;
/// An instance whose linear memory grew beyond this, or beyond a quarter of
/// `Limits::max_memory_bytes`, is not kept warm: a big batch should not pin
/// its memory, and a reused instance keeps most of the memory budget.
pub const MAX_WARM_MEMORY: usize = 64 * 1024 * 1024;
/// Idle instances kept per plugin (about the number of concurrent callers).
pub const MAX_IDLE_INSTANCES: usize = 4;

/// An instance with its store, ready for the next call.
struct Warm {
    store: Store<StoreState>,
    instance: Bound,
    calls: u32,
}

pub struct Plugin {
    /// Who it is, the digest of its file, its contract version.
    lineage: Lineage,
    path: PathBuf,
    pre: PluginPre,
    engine: wasmtime::Engine,
    limits: Limits,
    metrics: PluginMetrics,
    /// Whether the compiled artifact came from the on-disk cache.
    pub from_cache: bool,
    /// Idle instances (see the module docs).
    idle: Mutex<Vec<Warm>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("lineage", &self.lineage)
            .field("path", &self.path)
            .finish()
    }
}

impl Plugin {
    /// Compiles (or loads from cache), links, and asks the plugin who it is.
    pub fn load(
        engine: &PluginEngine,
        linker: &Linker<StoreState>,
        path: &Path,
        limits: &Limits,
        metrics: &PluginMetrics,
    ) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Of the file's bytes, whether or not the compiled artifact is cached.
        let digest = Lineage::digest_of(&bytes);
        let (component, from_cache) = engine.compile(&bytes, path)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|source| PluginError::Link {
                path: path.to_path_buf(),
                source,
            })?;
        let pre = PluginPre::new(pre).map_err(|message| PluginError::Contract {
            path: path.to_path_buf(),
            message,
        })?;
        let wit_version = pre.version().to_string();
        let mut plugin = Self {
            lineage: Lineage {
                identity: Identity {
                    name: String::new(),
                    version: String::new(),
                    source: String::new(),
                },
                digest,
                wit_version,
            },
            path: path.to_path_buf(),
            pre,
            engine: engine.engine.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            from_cache,
            idle: Mutex::new(Vec::new()),
        };
        let identity = plugin
            .call_identity()
            .map_err(|source| PluginError::IdentityCall {
                path: path.to_path_buf(),
                source,
            })?;
        if identity.name.is_empty() || identity.version.is_empty() {
            return Err(PluginError::Identity {
                path: path.to_path_buf(),
                message: "name and version must not be empty".into(),
            });
        }
        if !super::types::is_valid_source_name(&identity.source) {
            return Err(PluginError::Identity {
                path: path.to_path_buf(),
                message: format!(
                    "source {:?} must match ^[a-z0-9_-]{{1,32}}$",
                    identity.source
                ),
            });
        }
        plugin.lineage.identity = identity;
        Ok(plugin)
    }

    pub fn identity(&self) -> &Identity {
        &self.lineage.identity
    }

    /// Its identity, the SHA-256 of its file and its contract version: what
    /// every row it produces records.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// The lowercase hex SHA-256 of the component file it was loaded from.
    pub fn digest(&self) -> &str {
        &self.lineage.digest
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The WIT contract version the component implements (`0.2.0`, `0.1.0`).
    pub fn contract_version(&self) -> &'static str {
        self.pre.version()
    }

    fn new_store(&self) -> Store<StoreState> {
        let mut store = Store::new(&self.engine, StoreState::new(&self.limits));
        store.limiter(|s| s);
        store.set_epoch_deadline(self.limits.deadline_ticks());
        store
    }

    fn call_identity(&self) -> Result<Identity, CallError> {
        let mut store = self.new_store();
        self.pre
            .identity(&mut store)
            .map_err(|e| classify(e, &store))
    }

    /// Validates and normalizes a batch: one result per event, in order.
    /// Blocking (runs guest code); see [`Plugin::normalize_batch`].
    pub fn normalize_batch_blocking<S: AsRef<str>>(
        &self,
        events: &[S],
    ) -> Result<Vec<EventResult>, CallError> {
        let start = Instant::now();
        let texts: Vec<&str> = events.iter().map(AsRef::as_ref).collect();
        let result = self.call_batch(&texts);
        let secs = start.elapsed().as_secs_f64();
        match &result {
            Ok(results) => {
                let ok = results
                    .iter()
                    .filter(|r| matches!(r, EventResult::Ok(_)))
                    .count();
                self.metrics.record_call(
                    &self.lineage.identity,
                    secs,
                    events.len(),
                    ok,
                    results.len() - ok,
                );
            }
            Err(e) => {
                tracing::warn!(plugin = %self.lineage.identity, events = events.len(), kind = e.kind(), error = %e, "plugin call failed");
                self.metrics
                    .record_failure(&self.lineage.identity, secs, events.len(), e.kind());
            }
        }
        result
    }

    /// Async wrapper running the call on the blocking pool. The events are
    /// slices of fetched messages (no copy); each must be UTF-8.
    pub async fn normalize_batch(
        self: &Arc<Self>,
        events: Vec<bytes::Bytes>,
    ) -> Result<Vec<EventResult>, CallError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let texts = events
                .iter()
                .map(|e| std::str::from_utf8(e))
                .collect::<Result<Vec<&str>, _>>()
                .map_err(CallError::Input)?;
            this.normalize_batch_blocking(&texts)
        })
        .await
        .map_err(CallError::Task)?
    }

    /// An idle instance, or a new one.
    fn take_instance(&self) -> Result<Warm, CallError> {
        if let Some(warm) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(warm);
        }
        let mut store = self.new_store();
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store))?;
        Ok(Warm {
            store,
            instance,
            calls: 0,
        })
    }

    /// Keeps a healthy instance for the next call, within the bounds.
    fn return_instance(&self, warm: Warm) {
        let max_memory = MAX_WARM_MEMORY.min(self.limits.max_memory_bytes / 4);
        if warm.calls >= MAX_CALLS_PER_INSTANCE || warm.store.data().memory_bytes > max_memory {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_INSTANCES {
                idle.push(warm);
            }
        }
    }

    fn call_batch(&self, events: &[&str]) -> Result<Vec<EventResult>, CallError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut warm = self.take_instance()?;
        warm.calls += 1;
        // A fresh budget for this call; the memory cap holds across calls.
        warm.store.data_mut().memory_denied = false;
        warm.store.set_epoch_deadline(self.limits.deadline_ticks());
        // On any error `warm` is dropped here: a failed instance never serves again.
        let raw = warm
            .instance
            .normalize(&mut warm.store, events)
            .map_err(|e| classify(e, &warm.store))?;
        if raw.len() != events.len() {
            return Err(CallError::BadOutput(format!(
                "returned {} results for {} events",
                raw.len(),
                events.len()
            )));
        }
        let input: usize = events.iter().map(|e| e.len()).sum();
        let allowed = MAX_OUTPUT_PER_INPUT_BYTE * input + MAX_OUTPUT_PER_EVENT * events.len();
        let output: usize = raw.iter().map(output_bytes).sum();
        if output > allowed {
            return Err(CallError::BadOutput(format!(
                "returned {output} bytes for {input} bytes of input (at most {allowed})"
            )));
        }
        let results = raw
            .into_iter()
            .map(|r| convert_result(r, &self.lineage.identity.source))
            .collect::<Result<Vec<_>, _>>()
            .map_err(CallError::BadOutput)?;
        self.return_instance(warm);
        Ok(results)
    }
}

/// What a call may return, relative to its input: a normalized event is a
/// subset of its input's text, a rejection a few messages. More is a plugin
/// inflating its output, which the host would have to carry and store.
const MAX_OUTPUT_PER_INPUT_BYTE: usize = 4;
const MAX_OUTPUT_PER_EVENT: usize = 16 << 10;

/// Turns a wasmtime error into the kind of failure it is.
fn classify(e: wasmtime::Error, store: &Store<StoreState>) -> CallError {
    if store.data().memory_denied {
        return CallError::MemoryLimit(e);
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => CallError::Timeout,
        Some(wasmtime::Trap::UnreachableCodeReached) => CallError::Panic(e),
        _ => CallError::Trap(e),
    }
}
