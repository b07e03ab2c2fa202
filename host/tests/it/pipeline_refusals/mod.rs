//! Zero loss when the database refuses: a refusal of the database's state
//! (disk full) acks nothing until it clears; a refusal of one row's data
//! turns that row into a dead letter; values PostgreSQL cannot hold (NUL,
//! oversized ids) are refused with a reason or stored sanitized, never lost;
//! a huge refused element never costs its request a 503. Also what the
//! stream holds (unprocessed events never expire), the same event id or the
//! same events arriving twice, and the operator's
//! `events-host jetstream setup|info|delete`, which refuses to delete without
//! `--yes`.
mod backlog;
mod database;
mod jetstream_admin;
mod same_events;

use crate::support::pipeline::{post, Host, Pipeline};
use events_publisher::{Generator, GeneratorConfig};
use serde_json::Value;

fn batch(seed: u64, n: usize) -> events_publisher::Batch {
    Generator::new(GeneratorConfig {
        seed: Some(seed),
        corrupt_post_rate: 1.0,
        ..Default::default()
    })
    .next_batch(n)
}

async fn post_ok(p: &Pipeline, h: &Host, body: Vec<u8>) -> Value {
    let (status, reply) = post(&p.http, &h.url("/webhook"), body, &[]).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    reply
}
