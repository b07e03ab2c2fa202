//! The wasmtime engine: configured once, compiling components once, with an
//! on-disk cache of compiled artifacts so restarts skip Cranelift.
use super::{limits::Limits, PluginError};
use sha2::{Digest, Sha256};
use std::{
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use wasmtime::{component::Component, Config, Engine};

/// The engine plus its compiled-artifact cache.
pub struct PluginEngine {
    pub engine: Engine,
    cache_dir: Option<PathBuf>,
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
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;
        let ticker = spawn_epoch_ticker(engine.clone(), limits.epoch_tick);
        if let Some(dir) = &cache_dir {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "plugin cache dir unusable, compiling without cache");
                return Ok(Self {
                    engine,
                    cache_dir: None,
                    _ticker: ticker,
                });
            }
        }
        Ok(Self {
            engine,
            cache_dir,
            _ticker: ticker,
        })
    }

    /// Compiles `bytes`, or loads the artifact compiled earlier for the same
    /// bytes by the same engine configuration.
    pub fn compile(&self, bytes: &[u8], origin: &Path) -> Result<(Component, bool), PluginError> {
        let compile_err = |e: wasmtime::Error| PluginError::Compile {
            path: origin.to_path_buf(),
            message: format!("{e:#}"),
        };
        let Some(cache_path) = self.cache_path(bytes) else {
            return Component::new(&self.engine, bytes)
                .map(|c| (c, false))
                .map_err(compile_err);
        };
        // Read into memory rather than `deserialize_file`, which maps the file:
        // a mapped artifact truncated or rewritten later (by an operator, or
        // another replica sharing the volume) would crash the process (SIGBUS).
        if let Ok(artifact) = std::fs::read(&cache_path) {
            // SAFETY: the cache directory is ours (configured by the operator,
            // written only by this function) and the file name binds the
            // artifact to the source bytes and this engine's configuration;
            // wasmtime still checks the artifact's header and version.
            match unsafe { Component::deserialize(&self.engine, &artifact) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %cache_path.display(), error = %e, "stale compiled plugin artifact, recompiling")
                }
            }
        }
        let artifact = self
            .engine
            .precompile_component(bytes)
            .map_err(compile_err)?;
        // Write then rename so a concurrent reader never sees half a file. The
        // temp name is unique per writer: replicas sharing the cache volume may
        // all be pid 1, and threads of one process share a pid.
        let tmp = cache_path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        if let Err(e) =
            std::fs::write(&tmp, &artifact).and_then(|_| std::fs::rename(&tmp, &cache_path))
        {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %cache_path.display(), error = %e, "cannot write compiled plugin artifact");
        }
        // SAFETY: `artifact` was produced just now by this engine.
        unsafe { Component::deserialize(&self.engine, &artifact) }
            .map(|c| (c, false))
            .map_err(compile_err)
    }

    fn cache_path(&self, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let digest = Sha256::digest(bytes);
        Some(dir.join(format!(
            "{}-{:016x}.cwasm",
            hex::encode(&digest[..16]),
            engine_hash.finish()
        )))
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
