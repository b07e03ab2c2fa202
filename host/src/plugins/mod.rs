//! The plugin runtime: every source's validation and normalization runs in a
//! sandboxed WebAssembly component (see `wit/`), loaded from `PLUGINS_DIR`,
//! keyed by the source it declares, and swapped live when its file changes.
//!
//! - `engine`: wasmtime configuration and compilation;
//! - `cache`: the on-disk cache of compiled artifacts, private and verified;
//! - `limits`: the sandbox (no capabilities, memory cap, call deadline);
//! - `instance`: one loaded plugin and its calls;
//! - `registry`: the source → plugin map and directory loading;
//! - `watcher`: hot swap and pickup;
//! - `metrics`: per-plugin Prometheus series.
mod bindings;
mod cache;
mod engine;
mod instance;
mod limits;
mod metrics;
mod registry;
mod types;
mod watcher;

pub use instance::Plugin;
pub use limits::Limits;
pub use metrics::PluginMetrics;
pub use registry::{PluginRuntime, RuntimeConfig};
pub use types::{
    is_valid_amount, is_valid_source_name, EventResult, FunnelStage, Identity, Issue,
    NormalizedEvent,
};

use std::path::PathBuf;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin engine: {0}")]
    Engine(String),
    #[error("cannot read plugins from {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{} is not a valid component: {message}", path.display())]
    Compile { path: PathBuf, message: String },
    #[error("{} does not fit the source-plugin contract: {message}", path.display())]
    Link { path: PathBuf, message: String },
    #[error("{}: bad identity: {message}", path.display())]
    Identity { path: PathBuf, message: String },
    #[error("{} and {} both claim source {claimed:?}", first.display(), second.display())]
    Conflict {
        claimed: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// Why a plugin call failed. The events of that call are reported as failed
/// with this reason; the host carries on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("plugin call exceeded its time limit")]
    Timeout,
    #[error("plugin exceeded its memory limit: {0}")]
    MemoryLimit(String),
    #[error("plugin panicked or aborted: {0}")]
    Panic(String),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin broke the contract: {0}")]
    BadOutput(String),
    /// The host could not hand the events over (not UTF-8).
    #[error("events cannot be passed to a plugin: {0}")]
    Input(String),
}

impl CallError {
    /// Short label for metrics and dead letters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::MemoryLimit(_) => "memory",
            Self::Panic(_) => "panic",
            Self::Trap(_) => "trap",
            Self::BadOutput(_) => "bad_output",
            Self::Input(_) => "input",
        }
    }
}
