//! Why a plugin could not be loaded, and why a call failed.
use std::path::PathBuf;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin engine: {0:#}")]
    Engine(#[source] wasmtime::Error),
    #[error("cannot read plugins from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid component: {source:#}", path.display())]
    Compile {
        path: PathBuf,
        #[source]
        source: wasmtime::Error,
    },
    #[error("{} does not fit the source-plugin contract: {source:#}", path.display())]
    Link {
        path: PathBuf,
        #[source]
        source: wasmtime::Error,
    },
    /// Linked, but its exports match no contract version the host knows.
    #[error("{} does not fit the source-plugin contract: {message}", path.display())]
    Contract { path: PathBuf, message: String },
    #[error("{}: bad identity: {source}", path.display())]
    IdentityCall {
        path: PathBuf,
        #[source]
        source: CallError,
    },
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
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("plugin call exceeded its time limit")]
    Timeout,
    #[error("plugin exceeded its memory limit: {0:#}")]
    MemoryLimit(#[source] wasmtime::Error),
    #[error("plugin panicked or aborted: {0:#}")]
    Panic(#[source] wasmtime::Error),
    #[error("plugin trapped: {0:#}")]
    Trap(#[source] wasmtime::Error),
    #[error("plugin broke the contract: {0}")]
    BadOutput(String),
    /// The host could not hand the events over (not UTF-8).
    #[error("events cannot be passed to a plugin: an event is not UTF-8: {0}")]
    Input(#[source] std::str::Utf8Error),
    /// The blocking task running the call panicked or was cancelled.
    #[error("plugin trapped: plugin call task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl CallError {
    /// Short label for metrics and dead letters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::MemoryLimit(_) => "memory",
            Self::Panic(_) => "panic",
            Self::Trap(_) | Self::Task(_) => "trap",
            Self::BadOutput(_) => "bad_output",
            Self::Input(_) => "input",
        }
    }
}
