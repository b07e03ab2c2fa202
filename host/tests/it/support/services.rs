//! Private NATS and PostgreSQL instances for fault tests (never the shared
//! ones): the `events-testkit` crate, re-exported so tests keep importing
//! `support::services::*`.
pub use events_testkit::*;
