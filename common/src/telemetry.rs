//! Logging: JSON lines via `tracing`, one subscriber per process.
use crate::config::LogFilter;
use tracing_subscriber::fmt;

/// Installs the global subscriber. Safe to call twice: the second call is a
/// no-op, which keeps tests that start several services happy.
pub fn init(level: &LogFilter) {
    let _ = fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(level.filter())
        .with_writer(std::io::stderr)
        .try_init();
}
