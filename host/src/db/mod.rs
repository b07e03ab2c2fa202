//! PostgreSQL writes of the collectors: normalized events and dead letters.
mod dead_letters;
mod events;

pub use dead_letters::{insert_dead_letters, DeadLetter};
pub use events::{insert_events, EventRow};
