//! The plugin runtime: every source's validation and normalization runs in a
//! sandboxed WebAssembly component (see `wit/`), loaded from `PLUGINS_DIR`,
//! keyed by the source it declares, and swapped live when its file changes.
//!
//! - `error`: why a plugin does not load, why a call fails;
//! - `files`: the directory's `*.wasm` files and their stamps;
//! - `engine`: wasmtime configuration and compilation;
//! - `cache`: the on-disk cache of compiled artifacts, private and verified;
//! - `limits`: the sandbox (no capabilities, memory cap, call deadline);
//! - `instance`: one loaded plugin and its calls;
//! - `registry`: the source → plugin map and directory loading;
//! - `watcher`: hot swap and pickup, by comparing file stamps;
//! - `metrics`: per-plugin Prometheus series.
mod bindings;
mod cache;
mod engine;
mod error;
mod files;
mod instance;
mod limits;
mod metrics;
mod registry;
mod types;
mod watcher;

pub use error::{CallError, PluginError};
pub use instance::Plugin;
pub use limits::Limits;
pub use metrics::PluginMetrics;
pub use registry::{PluginRuntime, RuntimeConfig};
pub use types::{
    is_valid_amount, is_valid_source_name, EventResult, FunnelStage, Identity, Issue, Lineage,
    NormalizedEvent,
};
