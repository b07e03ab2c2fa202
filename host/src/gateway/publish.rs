//! Publishing a request's events to JetStream with bounded concurrency: many
//! publishes in flight, each awaited for its ack, never one at a time.
use crate::{nats::CORRELATION_HEADER, wire::COUNT_HEADER};
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

/// One message to publish.
pub struct Outgoing {
    pub index: usize,
    pub subject: String,
    pub msg_id: String,
    pub payload: Bytes,
    /// Events in the message (a slice); `None` for a dead letter.
    pub events: Option<usize>,
}

/// What JetStream said about one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Acked {
    Stored,
    /// Dropped by the duplicate window: an exact re-send.
    Duplicate,
    Failed(String),
}

/// Publishes every message and waits for every ack; results are indexed
/// like the input. `timeout` bounds the wait for each ack.
pub async fn publish_all(
    js: &jetstream::Context,
    items: Vec<Outgoing>,
    correlation_id: &str,
    concurrency: usize,
    timeout: Duration,
) -> Vec<(usize, Acked)> {
    futures::stream::iter(items)
        .map(|item| async move {
            let mut msg = PublishMessage::build()
                .payload(item.payload)
                .message_id(&item.msg_id)
                .header(CORRELATION_HEADER, correlation_id);
            if let Some(n) = item.events {
                msg = msg.header(COUNT_HEADER, n.to_string().as_str());
            }
            let result = async {
                let ack_future = js
                    .send_publish(item.subject, msg)
                    .await
                    .map_err(|e| e.to_string())?;
                match tokio::time::timeout(timeout, ack_future).await {
                    Err(_) => Err("timed out waiting for the JetStream ack".to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(ack)) if ack.duplicate => Ok(Acked::Duplicate),
                    Ok(Ok(_)) => Ok(Acked::Stored),
                }
            }
            .await;
            (item.index, result.unwrap_or_else(Acked::Failed))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}
