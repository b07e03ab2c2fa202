//! events-reporter: the events, revenue and demographics reports over the
//! stored events, answered from rollup tables the collectors' inserts keep
//! up to date (see `rollups` and `README.md`), and the dead-letters API over
//! the refused events.
pub mod auth;
pub mod config;
pub mod dead_letters;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod replica;
pub mod reports;
pub mod rollups;
pub mod startup;
