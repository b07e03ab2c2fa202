//! Helpers shared by the host's integration tests (one module per area).
pub mod pipeline;
pub mod plugins;
pub mod rows;
pub mod services;
