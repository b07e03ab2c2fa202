//! PostgreSQL writes of the collectors: normalized events and dead letters,
//! the monthly partitions of `events` and their retention.
mod dead_letters;
mod events;
mod partitions;
mod retention;

pub use dead_letters::{insert_dead_letters, DeadLetter};
pub use events::{insert_events, EventRow};
pub use partitions::{ensure_partitions, forget_partitions, month_key};
pub use retention::{apply_retention, retention_months, run_retention, RETENTION_VAR};
