//! One loaded plugin: its compiled component, pre-linked once, instantiated
//! fresh for every call (≈ tens of µs, negligible per batch) so that no state,
//! leak or corruption survives from one batch to the next.
use super::{
    bindings::{convert_result, SourcePluginPre},
    engine::PluginEngine,
    limits::{Limits, StoreState},
    metrics::PluginMetrics,
    types::{EventResult, Identity},
    CallError, PluginError,
};
use std::{path::{Path, PathBuf}, sync::Arc, time::Instant};
use wasmtime::{component::Linker, Store};

pub struct Plugin {
    identity: Identity,
    path: PathBuf,
    pre: SourcePluginPre<StoreState>,
    engine: wasmtime::Engine,
    limits: Limits,
    metrics: PluginMetrics,
    /// Whether the compiled artifact came from the on-disk cache.
    pub from_cache: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("identity", &self.identity)
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
        let bytes = std::fs::read(path).map_err(|e| PluginError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let (component, from_cache) = engine.compile(&bytes, path)?;
        let link_err = |e: wasmtime::Error| PluginError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = SourcePluginPre::new(pre).map_err(link_err)?;
        let mut plugin = Self {
            identity: Identity {
                name: String::new(),
                version: String::new(),
                source: String::new(),
            },
            path: path.to_path_buf(),
            pre,
            engine: engine.engine.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            from_cache,
        };
        let identity = plugin.call_identity().map_err(|e| PluginError::Identity {
            path: path.to_path_buf(),
            message: e.to_string(),
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
        plugin.identity = identity;
        Ok(plugin)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn new_store(&self) -> Store<StoreState> {
        let mut store = Store::new(&self.engine, StoreState::new(&self.limits));
        store.limiter(|s| s);
        store.set_epoch_deadline(self.limits.deadline_ticks());
        store
    }

    fn call_identity(&self) -> Result<Identity, CallError> {
        let mut store = self.new_store();
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store))?;
        instance
            .call_identity(&mut store)
            .map(Identity::from)
            .map_err(|e| classify(e, &store))
    }

    /// Validates and normalizes a batch: one result per event, in order.
    /// Blocking (runs guest code); see [`Plugin::normalize_batch`].
    pub fn normalize_batch_blocking(&self, events: &[String]) -> Result<Vec<EventResult>, CallError> {
        let start = Instant::now();
        let result = self.call_batch(events);
        let secs = start.elapsed().as_secs_f64();
        match &result {
            Ok(results) => {
                let ok = results.iter().filter(|r| matches!(r, EventResult::Ok(_))).count();
                self.metrics
                    .record_call(&self.identity, secs, events.len(), ok, results.len() - ok);
            }
            Err(e) => {
                tracing::warn!(plugin = %self.identity, events = events.len(), kind = e.kind(), error = %e, "plugin call failed");
                self.metrics
                    .record_failure(&self.identity, secs, events.len(), e.kind());
            }
        }
        result
    }

    /// Async wrapper running the call on the blocking pool.
    pub async fn normalize_batch(self: &Arc<Self>, events: Vec<String>) -> Result<Vec<EventResult>, CallError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.normalize_batch_blocking(&events))
            .await
            .map_err(|e| CallError::Trap(format!("plugin call task failed: {e}")))?
    }

    fn call_batch(&self, events: &[String]) -> Result<Vec<EventResult>, CallError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut store = self.new_store();
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store))?;
        let raw = instance
            .call_normalize_batch(&mut store, events)
            .map_err(|e| classify(e, &store))?;
        if raw.len() != events.len() {
            return Err(CallError::BadOutput(format!(
                "returned {} results for {} events",
                raw.len(),
                events.len()
            )));
        }
        raw.into_iter()
            .map(|r| convert_result(r, &self.identity.source))
            .collect::<Result<Vec<_>, _>>()
            .map_err(CallError::BadOutput)
    }
}

/// Turns a wasmtime error into the kind of failure it is.
fn classify(e: wasmtime::Error, store: &Store<StoreState>) -> CallError {
    let message = format!("{e:#}");
    if store.data().memory_denied {
        return CallError::MemoryLimit(message);
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => CallError::Timeout,
        Some(wasmtime::Trap::UnreachableCodeReached) => CallError::Panic(message),
        Some(_) => CallError::Trap(message),
        None => CallError::Trap(message),
    }
}
