//! Publishing a request's slices and dead letters to JetStream with bounded
//! concurrency: many publishes in flight, each awaited for its ack, never
//! one at a time.
//!
//! An unacked publish is retried with the same `Nats-Msg-Id` until the
//! request's deadline (`GATEWAY_REQUEST_TIMEOUT_MS`): JetStream's duplicate
//! window makes a retry of a message that was in fact stored a no-op, so a
//! broker restart, a reconnect or a leader election shorter than the
//! deadline costs the publisher nothing. Only a refusal that waiting cannot
//! fix (the stream is full, the message too large) fails at once.
use crate::{nats::CORRELATION_HEADER, wire::COUNT_HEADER};
use async_nats::jetstream::{
    self,
    context::{PublishError, PublishErrorKind},
    message::PublishMessage,
};
use bytes::Bytes;
use futures::StreamExt;
use prometheus::IntCounter;
use tokio::time::{Duration, Instant};

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
#[derive(Debug)]
pub enum Acked {
    Stored,
    /// Dropped by the duplicate window: an exact re-send.
    Duplicate,
    Failed(PublishFailure),
}

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    #[error(transparent)]
    Nats(#[from] PublishError),
    #[error("timed out waiting for the JetStream ack")]
    AckTimeout,
    /// Seen around leader changes: not a stored message.
    #[error("duplicate ack without a sequence")]
    DuplicateWithoutSequence,
    /// Retries stopped at the request's deadline; this was the last failure.
    #[error("{0} (request deadline reached)")]
    Deadline(#[source] Box<PublishFailure>),
}

/// How a batch of publishes is bounded.
pub struct Budget<'a> {
    /// Publishes awaiting their ack at once.
    pub concurrency: usize,
    /// When the request must be answered; retries stop here.
    pub deadline: Instant,
    /// Counts every retried publish (`gateway_publish_retries_total`).
    pub retries: &'a IntCounter,
}

/// The first wait for an ack; doubled on each retry. Far above JetStream's
/// normal ack latency, so only a lost publish or ack is retried.
const FIRST_ACK_WAIT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Publishes every message and waits for every ack; results are indexed
/// like the input.
pub async fn publish_all(
    js: &jetstream::Context,
    items: Vec<Outgoing>,
    correlation_id: &str,
    budget: &Budget<'_>,
) -> Vec<(usize, Acked)> {
    futures::stream::iter(items)
        .map(|item| async move {
            let index = item.index;
            (index, publish_one(js, item, correlation_id, budget).await)
        })
        .buffer_unordered(budget.concurrency.max(1))
        .collect()
        .await
}

/// Why one attempt did not store the message.
enum Attempt {
    /// Waiting may help: retry with the same message id.
    Retry(PublishFailure),
    /// It will not: answer now.
    Fail(PublishFailure),
}

async fn publish_one(
    js: &jetstream::Context,
    item: Outgoing,
    correlation_id: &str,
    budget: &Budget<'_>,
) -> Acked {
    let mut ack_wait = FIRST_ACK_WAIT;
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut msg = PublishMessage::build()
            .payload(item.payload.clone())
            .message_id(&item.msg_id)
            .header(CORRELATION_HEADER, correlation_id);
        if let Some(n) = item.events {
            msg = msg.header(COUNT_HEADER, n.to_string().as_str());
        }
        let started = Instant::now();
        let left = budget.deadline.saturating_duration_since(started);
        let error = match attempt(js, &item.subject, msg, ack_wait.min(left)).await {
            Ok(acked) => return acked,
            Err(Attempt::Fail(e)) => return Acked::Failed(e),
            Err(Attempt::Retry(e)) => e,
        };
        // Errors that come back at once (no responders while a stream
        // leader is elected) wait a little; a timed-out ack already did.
        let pause = backoff.saturating_sub(started.elapsed());
        if Instant::now() + pause >= budget.deadline {
            return Acked::Failed(PublishFailure::Deadline(Box::new(error)));
        }
        tracing::debug!(msg_id = %item.msg_id, %error, "publish not acked, retrying");
        budget.retries.inc();
        tokio::time::sleep(pause).await;
        ack_wait = (ack_wait * 2).min(Duration::from_secs(8));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn attempt(
    js: &jetstream::Context,
    subject: &str,
    msg: PublishMessage,
    ack_wait: Duration,
) -> Result<Acked, Attempt> {
    let ack_future = js
        .send_publish(subject.to_string(), msg)
        .await
        .map_err(classify)?;
    match tokio::time::timeout(ack_wait, ack_future).await {
        Err(_) => Err(Attempt::Retry(PublishFailure::AckTimeout)),
        Ok(Err(e)) => Err(classify(e)),
        // A duplicate without a sequence is not a stored message (seen
        // around leader changes); only a retry can tell.
        Ok(Ok(ack)) if ack.duplicate && ack.sequence == 0 => {
            Err(Attempt::Retry(PublishFailure::DuplicateWithoutSequence))
        }
        Ok(Ok(ack)) if ack.duplicate => Ok(Acked::Duplicate),
        Ok(Ok(_)) => Ok(Acked::Stored),
    }
}

/// Stream full and message too large are final; everything else (no
/// responders, stream not found during an election, broken pipe, timeouts,
/// "duplicate message id is in process") may pass.
fn classify(e: PublishError) -> Attempt {
    let message = e.to_string();
    // nats-server's texts for a full stream and an oversized message.
    let full = [
        "maximum bytes",
        "maximum messages",
        "exceeds maximum",
        "to large",
    ]
    .iter()
    .any(|t| message.contains(t));
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => Attempt::Fail(e.into()),
        PublishErrorKind::Other if full => Attempt::Fail(e.into()),
        _ => Attempt::Retry(e.into()),
    }
}
