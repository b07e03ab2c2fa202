//! The backstop for messages that reached `max_deliver` anyway (the process
//! died during their last delivery too). In a work-queue stream nats-server
//! neither delivers nor removes such a message: it stays, unseen, counting
//! against `max_bytes` (nats-server #5564). It does announce it, once, on
//! `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`: every
//! collector listens, fetches the message by sequence, stores its events as
//! dead letters and deletes it. Several collectors may do so at once; the
//! dead letters' keys make that harmless.
use super::{
    batch::{exhausted_letters, parse},
    Collector,
};
use crate::{db, nats};
use events_common::backoff::Backoff;
use futures::StreamExt;
use std::{sync::Arc, time::Duration};

/// The fields of the advisory this needs.
#[derive(serde::Deserialize)]
struct Advisory {
    consumer: String,
    stream_seq: u64,
    deliveries: i64,
}

/// Subscribes to the advisories; done before any worker fetches, so no
/// advisory a fetch triggers can be missed.
pub async fn subscribe(c: &Collector) -> Option<async_nats::Subscriber> {
    let subject = nats::max_deliveries_subject(&c.nats.stream);
    let client = c.js.client();
    loop {
        match client.subscribe(subject.clone()).await {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for max-deliveries advisories, retrying")
            }
        }
        tokio::select! {
            _ = c.stop.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

pub async fn run(c: Arc<Collector>, mut advisories: async_nats::Subscriber) {
    loop {
        let message = tokio::select! {
            _ = c.stop.cancelled() => return,
            m = advisories.next() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let advisory: Advisory = match serde_json::from_slice(&message.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable max-deliveries advisory");
                continue;
            }
        };
        let Some(source) = advisory.consumer.strip_prefix("collector-") else {
            continue;
        };
        recover(&c, source, &advisory).await;
    }
}

/// Dead-letters and deletes one stranded message, retrying until done or
/// shutdown (the message stays in the stream until its letters are stored).
async fn recover(c: &Collector, source: &str, advisory: &Advisory) {
    let seq = advisory.stream_seq;
    let mut backoff = Backoff::new(Duration::from_millis(200));
    loop {
        match try_recover(c, source, advisory).await {
            Ok(Some(letters)) => {
                tracing::warn!(
                    source,
                    seq,
                    letters,
                    "stranded message dead-lettered and deleted"
                );
                c.metrics
                    .max_deliveries
                    .with_label_values(&[source, "advisory"])
                    .inc();
                c.metrics
                    .failed
                    .with_label_values(&[source, "delivery"])
                    .inc_by(letters as u64);
                c.metrics
                    .dead_letters
                    .with_label_values(&["delivery", source])
                    .inc_by(letters as u64);
                return;
            }
            // Gone already: another collector took care of it.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(source, seq, error = %e, "cannot recover a stranded message yet, retrying")
            }
        }
        if !backoff.sleep(&c.stop).await {
            return;
        }
    }
}

/// `Ok(None)` when the message no longer exists.
async fn try_recover(
    c: &Collector,
    source: &str,
    advisory: &Advisory,
) -> Result<Option<usize>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = c.js.get_stream(&c.nats.stream).await?;
    let message = match stream.get_raw_message(advisory.stream_seq).await {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let (correlation_id, msg_id, events) = parse(Some(&message.headers), &message.payload);
    let letters = exhausted_letters(
        source,
        &message.payload,
        correlation_id.as_deref(),
        &msg_id,
        &events,
        advisory.deliveries,
    );
    let mut tx = c.pool.begin().await?;
    db::insert_dead_letters(&mut tx, &letters).await?;
    tx.commit().await?;
    stream.delete_message(advisory.stream_seq).await?;
    Ok(Some(letters.len()))
}
