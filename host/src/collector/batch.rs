//! One batch: plugin once, one transaction, commit, then ack.
use super::{Collector, Metrics};
use crate::{
    db::{self, DeadLetter, EventRow},
    nats::CORRELATION_HEADER,
    plugins::{CallError, EventResult, Identity, Plugin},
};
use async_nats::jetstream::{message::AckKind, Message};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// A fetched message, unpacked once.
pub struct Incoming {
    pub msg: Message,
    pub payload: String,
    pub correlation_id: Option<String>,
    /// `stream:sequence`: identifies the stored message across redeliveries.
    pub key: String,
}

impl Incoming {
    pub fn new(msg: Message) -> Self {
        let payload = String::from_utf8_lossy(&msg.payload).into_owned();
        let correlation_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(CORRELATION_HEADER))
            .map(|v| v.as_str().to_string());
        let key = msg
            .info()
            .map(|i| format!("{}:{}", i.stream, i.stream_sequence))
            .unwrap_or_default();
        Self {
            msg,
            payload,
            correlation_id,
            key,
        }
    }
}

/// The plugin's verdicts for a batch. A failed call is retried event by
/// event so that one poisonous event cannot take its neighbours down; an
/// event that fails alone is dead-lettered with the failure as its reason.
async fn normalize(
    plugin: &Arc<Plugin>,
    batch: &[Incoming],
) -> Vec<Result<EventResult, CallError>> {
    let payloads: Vec<String> = batch.iter().map(|m| m.payload.clone()).collect();
    match plugin.normalize_batch(payloads).await {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(plugin = %plugin.identity(), error = %e, events = batch.len(), "batch call failed, retrying event by event");
            let mut out = Vec::with_capacity(batch.len());
            for m in batch {
                let r = plugin.normalize_batch(vec![m.payload.clone()]).await;
                out.push(r.and_then(|mut v| {
                    v.pop()
                        .ok_or_else(|| CallError::BadOutput("no result".into()))
                }));
            }
            out
        }
    }
}

pub async fn process(c: &Collector, source: &str, plugin: Arc<Plugin>, batch: Vec<Incoming>) {
    let started = Instant::now();
    let m: &Metrics = &c.metrics;
    let n = batch.len();
    m.accepted.with_label_values(&[source]).inc_by(n as u64);
    m.batch_size.with_label_values(&[source]).observe(n as f64);

    let verdicts = normalize(&plugin, &batch).await;
    let id: &Identity = plugin.identity();
    let mut rows = Vec::with_capacity(n);
    let mut dead = Vec::new();
    for (incoming, verdict) in batch.iter().zip(&verdicts) {
        let (stage, reasons) = match verdict {
            Ok(EventResult::Ok(event)) => {
                rows.push(EventRow {
                    event,
                    plugin: id,
                    correlation_id: incoming.correlation_id.as_deref(),
                });
                continue;
            }
            Ok(EventResult::Rejected(issues)) => {
                ("plugin", serde_json::to_value(issues).unwrap_or_default())
            }
            Err(e) => (
                "delivery",
                serde_json::json!([{"field": "$", "message": format!("plugin {} failed on this event ({}): {e}", id, e.kind())}]),
            ),
        };
        let event_id = serde_json::from_str::<serde_json::Value>(&incoming.payload)
            .ok()
            .and_then(|v| {
                v.get("eventId")
                    .and_then(|i| i.as_str())
                    .map(str::to_string)
            });
        dead.push(DeadLetter {
            stage: stage.into(),
            source: Some(source.to_string()),
            event_id,
            reasons,
            raw: incoming.payload.clone(),
            plugin_name: Some(id.name.clone()),
            plugin_version: Some(id.version.clone()),
            correlation_id: incoming.correlation_id.clone(),
            dedup_key: Some(incoming.key.clone()),
        });
    }

    let Some(inserted) = write(c, source, &batch, &rows, &dead).await else {
        // Shutting down mid-retry: hand the batch back for redelivery.
        for i in &batch {
            let _ = i
                .msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
        return;
    };
    let acks = futures::future::join_all(batch.iter().map(|i| i.msg.ack())).await;
    let ack_failures = acks.iter().filter(|a| a.is_err()).count();
    if ack_failures > 0 {
        // Committed but not acked: the redelivery is a harmless duplicate.
        tracing::warn!(
            source,
            ack_failures,
            "acks failed after commit; the events will be redelivered and deduplicated"
        );
    }
    m.processed
        .with_label_values(&[source])
        .inc_by(rows.len() as u64);
    m.inserted.with_label_values(&[source]).inc_by(inserted);
    m.db_duplicates
        .with_label_values(&[source])
        .inc_by(rows.len() as u64 - inserted.min(rows.len() as u64));
    for d in &dead {
        m.failed.with_label_values(&[source, &d.stage]).inc();
        m.dead_letters.with_label_values(&[&d.stage, source]).inc();
    }
    m.batch_duration
        .with_label_values(&[source])
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(
        source,
        events = n,
        inserted,
        dead = dead.len(),
        "batch committed"
    );
}

/// Writes rows and dead letters in one transaction, retrying with backoff
/// (and keeping the messages from redelivery meanwhile) until it commits.
/// `None` when shutdown interrupted the retries.
async fn write(
    c: &Collector,
    source: &str,
    batch: &[Incoming],
    rows: &[EventRow<'_>],
    dead: &[DeadLetter],
) -> Option<u64> {
    let mut wait = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result = async {
            let mut tx = c.pool.begin().await?;
            let n = db::insert_events(&mut tx, rows).await?;
            db::insert_dead_letters(&mut tx, dead).await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }
        .await;
        match result {
            Ok(n) => {
                c.metrics
                    .db_write
                    .with_label_values(&[source])
                    .observe(started.elapsed().as_secs_f64());
                return Some(n);
            }
            Err(e) if !events_common::db::is_connection_error(&e) && attempt >= 3 => {
                tracing::error!(source, error = %e, "batch keeps failing on a statement error, writing row by row");
                match write_row_by_row(c, source, rows, dead).await {
                    Some(n) => return Some(n),
                    // The database went away meanwhile: back to retrying.
                    None => {
                        tracing::warn!(source, "database unreachable during the row-by-row write")
                    }
                }
            }
            Err(e) => {
                c.metrics.db_retries.with_label_values(&[source]).inc();
                tracing::warn!(source, attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "database write failed, retrying");
            }
        }
        // Tell JetStream we are still on it, so ack_wait does not expire.
        futures::future::join_all(batch.iter().map(|i| i.msg.ack_with(AckKind::Progress))).await;
        tokio::select! {
            _ = c.stop.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Last resort for a batch a statement error keeps refusing: each row on its
/// own, a row the database refuses becomes a dead letter with the error.
/// `None` when the database became unreachable: nothing may be acked then.
async fn write_row_by_row(
    c: &Collector,
    source: &str,
    rows: &[EventRow<'_>],
    dead: &[DeadLetter],
) -> Option<u64> {
    let mut inserted = 0;
    let mut refused = Vec::new();
    for row in rows {
        let one = async {
            let mut tx = c.pool.begin().await?;
            let n = db::insert_events(&mut tx, std::slice::from_ref(row)).await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }
        .await;
        match one {
            Ok(n) => inserted += n,
            Err(e) if events_common::db::is_connection_error(&e) => return None,
            Err(e) => refused.push(DeadLetter {
                stage: "delivery".into(),
                source: Some(source.to_string()),
                event_id: Some(row.event.event_id.clone()),
                reasons: serde_json::json!([{"field": "$", "message": format!("database refused the row: {e}")}]),
                raw: row.event.raw.clone(),
                plugin_name: Some(row.plugin.name.clone()),
                plugin_version: Some(row.plugin.version.clone()),
                correlation_id: row.correlation_id.map(str::to_string),
                dedup_key: None,
            }),
        }
    }
    refused.extend(dead.iter().cloned());
    for letter in &refused {
        let res = async {
            let mut tx = c.pool.begin().await?;
            db::insert_dead_letters(&mut tx, std::slice::from_ref(letter)).await?;
            tx.commit().await
        }
        .await;
        match res {
            Ok(_) => {}
            Err(e) if events_common::db::is_connection_error(&e) => return None,
            Err(e) => {
                tracing::error!(source, error = %e, raw = %letter.raw, "database refuses the dead letter; logged here instead")
            }
        }
    }
    Some(inserted)
}
