//! The wasmtime engine: configured once, compiling components once, with an
//! on-disk cache of compiled artifacts (see [`super::cache`]).
use super::{cache::ArtifactCache, error::PluginError, limits::Limits};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use wasmtime::{component::Component, Config, Engine};

/// The engine plus its compiled-artifact cache.
pub struct PluginEngine {
    pub engine: Engine,
    cache: Option<ArtifactCache>,
    /// Ends the epoch ticker thread when the engine is dropped.
    _ticker: Arc<TickerGuard>,
}

struct TickerGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PluginEngine {
    pub fn new(limits: &Limits, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(PluginError::Engine)?;
        let ticker = spawn_epoch_ticker(engine.clone(), limits.epoch_tick);
        let cache = cache_dir.and_then(|dir| ArtifactCache::open(dir, &engine));
        Ok(Self {
            engine,
            cache,
            _ticker: ticker,
        })
    }

    /// Compiles `bytes`, or loads the artifact compiled earlier for the same
    /// bytes by the same engine configuration.
    pub fn compile(&self, bytes: &[u8], origin: &Path) -> Result<(Component, bool), PluginError> {
        let compile_err = |source: wasmtime::Error| PluginError::Compile {
            path: origin.to_path_buf(),
            source,
        };
        let Some(cache) = &self.cache else {
            return Component::new(&self.engine, bytes)
                .map(|c| (c, false))
                .map_err(compile_err);
        };
        if let Some(artifact) = cache.load(bytes) {
            // SAFETY: `load` returns only an artifact from a directory and
            // file private to this user, written by `store` for exactly these
            // component bytes and this engine's configuration; wasmtime still
            // checks the artifact's header and version.
            match unsafe { Component::deserialize(&self.engine, &artifact) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(origin = %origin.display(), error = %e, "stale compiled plugin artifact, recompiling")
                }
            }
        }
        let artifact = self
            .engine
            .precompile_component(bytes)
            .map_err(compile_err)?;
        cache.store(bytes, &artifact);
        // SAFETY: `artifact` was produced just now by this engine.
        unsafe { Component::deserialize(&self.engine, &artifact) }
            .map(|c| (c, false))
            .map_err(compile_err)
    }
}

/// Advances the engine's epoch every `tick`, which is what lets a call's
/// deadline interrupt a guest stuck in a loop.
fn spawn_epoch_ticker(engine: Engine, tick: Duration) -> Arc<TickerGuard> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker: plugin timeouts will not fire");
    }
    Arc::new(TickerGuard(stop))
}
