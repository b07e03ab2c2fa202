//! Logging: JSON lines via `tracing`, one subscriber per process.
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. `level` is an `EnvFilter` directive
/// (already validated by the configuration). Safe to call twice: the second
/// call is a no-op, which keeps tests that start several services happy.
pub fn init(level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
