//! One POST body worth of events plus the bookkeeping a test needs to know
//! exactly what the database should hold afterwards.

use serde_json::Value;

use crate::corrupt::CorruptionKind;

/// A corrupted event inside a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// Position of the event in [`Batch::events`].
    pub index: usize,
    /// How it was broken.
    pub kind: CorruptionKind,
}

/// The events of one POST and their ledger.
///
/// Every event is exactly one of: a new valid event (its id is in
/// `valid_unique_ids`), a byte-identical re-send of a valid event generated
/// earlier by the same generator (its id is in `duplicate_ids`), or a
/// corrupted event (listed in `corruptions`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The events, in send order.
    pub events: Vec<Value>,
    /// Ids of the valid events sent here for the first time, in send order.
    pub valid_unique_ids: Vec<String>,
    /// Ids of the re-sent (duplicate) events, in send order.
    pub duplicate_ids: Vec<String>,
    /// The corrupted events.
    pub corruptions: Vec<Corruption>,
}

impl Batch {
    /// Number of events in the batch.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Number of exact re-sends of earlier events.
    pub fn duplicates(&self) -> usize {
        self.duplicate_ids.len()
    }

    /// Number of corrupted events.
    pub fn corrupted(&self) -> usize {
        self.corruptions.len()
    }

    /// The POST body: the events as one compact JSON array. Serialization is
    /// deterministic, so a duplicate is byte-identical to its original.
    pub fn body(&self) -> Vec<u8> {
        // A Vec<Value> always serializes; keep a fallback rather than panic.
        serde_json::to_vec(&self.events).unwrap_or_else(|_| b"[]".to_vec())
    }
}
