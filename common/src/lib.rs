//! Shared plumbing of the events crates: the services (`events-host`, `events-reporter`) and the publisher (its funnel stage).
//!
//! Each module is one concern; services compose them in their own `startup`.
pub mod backoff;
pub mod config;
pub mod db;
pub mod funnel;
pub mod health;
pub mod http;
pub mod metrics;
pub mod names;
pub mod service;
pub mod shutdown;
pub mod telemetry;
