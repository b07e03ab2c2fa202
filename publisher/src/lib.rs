//! `events-publisher`: a stand-in for the external marketing-event publisher.
//!
//! It generates Facebook and TikTok events exactly as described in
//! `docs/events.md`, optionally corrupts, duplicates and reorders
//! them like the real publisher, and POSTs them as JSON arrays to the
//! gateway's `/webhook`.
//!
//! ```
//! use events_publisher::{Generator, GeneratorConfig};
//!
//! let mut g = Generator::new(GeneratorConfig { seed: Some(7), ..Default::default() });
//! let batch = g.next_batch(100);
//! assert_eq!(batch.len(), 100);
//! // Every event is valid-and-new, a re-send, or corrupted:
//! assert_eq!(
//!     batch.valid_unique_ids.len() + batch.duplicates() + batch.corrupted(),
//!     100
//! );
//! let body: Vec<u8> = batch.body(); // what gets POSTed
//! # assert!(body.starts_with(b"["));
//! ```
//!
//! Modules: [`model`] (sources, stages, enums), [`generate`] (valid events),
//! [`corrupt`] (the publisher's corruption kinds), [`batch`] (a POST body and
//! its ledger), [`send`] (one POST), [`stats`] (summary), [`ledger`]
//! (delivered ids file).

pub mod batch;
pub mod corrupt;
mod data;
pub mod generate;
pub mod ledger;
pub mod model;
pub mod send;
pub mod stats;

pub use batch::{Batch, Corruption};
pub use corrupt::CorruptionKind;
pub use generate::{rfc3339, Generator, GeneratorConfig};
pub use ledger::{Ledger, LedgerEntry};
pub use model::{FunnelStage, InvalidEventType, Source};
pub use send::{signature, GatewayReply, PostOutcome, Poster};
pub use stats::{LedgerTotals, PostCounts, Stats, Summary};
