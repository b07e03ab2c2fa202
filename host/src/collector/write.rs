//! Storing a batch, under one rule: a message is acked only when each of its
//! events is in `events` or in `dead_letters`.
//!
//! Before each write the months of its events get their partitions of
//! `events` (`db::ensure_partitions`, a short transaction of its own).
//!
//! A statement error is classified. A data error (SQLSTATE class 22, 23 or
//! 54) belongs to some row: the batch is written row by row and each refused row
//! becomes a dead letter (sanitized, so the dead letter itself can be
//! stored). A month the database will not partition (outside years
//! 0000-9999, or before the retention horizon) is such an error too, so only
//! the events concerned become dead letters. Anything else — connection
//! loss, disk full (53100), read-only (25006), permissions (42501), a
//! cancelled statement (57014), a trigger raising — is the database's state,
//! not the data's: the whole batch is retried with backoff, its messages
//! kept from redelivery with progress acks, readiness false
//! (`database_writes`) and `collector_db_retries_total` counting, until it
//! commits.
use super::{batch::Incoming, Collector};
use crate::db::{self, DeadLetter, EventRow};
use async_nats::jetstream::message::AckKind;
use events_common::backoff::Backoff;
use std::time::{Duration, Instant};

/// What a successful write stored.
pub struct Written {
    /// Rows new in `events` (the rest were duplicates).
    pub inserted: u64,
    /// Rows the database refused, stored as dead letters instead.
    pub refused: Vec<DeadLetter>,
}

/// True when the error is about the data of a row, not the database's state:
/// data exceptions (22), integrity violations (23), and limits a value
/// exceeds (54, e.g. an index row too large).
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
        _ => false,
    }
}

/// Writes rows and dead letters, retrying until every event is stored one
/// way or the other. `None` when shutdown interrupted the retries (nothing
/// may be acked then).
pub async fn write(
    c: &Collector,
    source: &str,
    batch: &[Incoming],
    rows: &[EventRow<'_>],
    dead: &[DeadLetter],
) -> Option<Written> {
    let mut backoff = Backoff::new(Duration::from_millis(100));
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result = match in_one_transaction(c, rows, dead).await {
            Ok(inserted) => Ok(Written {
                inserted,
                refused: Vec::new(),
            }),
            Err(e) if is_data_error(&e) => {
                tracing::warn!(source, error = %e, "a row of the batch is refused, writing row by row");
                // The error may be a partition that is known here but was
                // dropped meanwhile (retention in another collector): ask
                // the database again.
                db::forget_partitions(&c.pool);
                row_by_row(c, source, rows, dead).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(written) => {
                c.metrics
                    .db_write
                    .with_label_values(&[source])
                    .observe(started.elapsed().as_secs_f64());
                c.health.set(WRITES_CHECK, true);
                return Some(written);
            }
            Err(e) => {
                c.metrics.db_retries.with_label_values(&[source]).inc();
                c.health.set(WRITES_CHECK, false);
                tracing::warn!(source, attempt, error = %e, retry_in_ms = backoff.current().as_millis() as u64, "database write failed, nothing acked, retrying");
            }
        }
        // Tell JetStream we are still on it, so ack_wait does not expire.
        futures::future::join_all(batch.iter().map(|i| i.msg.ack_with(AckKind::Progress))).await;
        if !backoff.sleep(&c.stop).await {
            return None;
        }
    }
}

/// The readiness check that is false while writes are being retried.
pub const WRITES_CHECK: &str = "database_writes";

async fn in_one_transaction(
    c: &Collector,
    rows: &[EventRow<'_>],
    dead: &[DeadLetter],
) -> Result<u64, sqlx::Error> {
    db::ensure_partitions(&c.pool, rows.iter().map(|r| r.event.occurred_at)).await?;
    let mut tx = c.pool.begin().await?;
    let n = db::insert_events(&mut tx, rows).await?;
    db::insert_dead_letters(&mut tx, dead).await?;
    tx.commit().await?;
    Ok(n)
}

/// Each row in its own transaction; a row refused for its data becomes a
/// dead letter. `Err` (retry the whole batch; stored rows are deduplicated
/// then) for any other error, or when a dead letter cannot be stored.
async fn row_by_row(
    c: &Collector,
    source: &str,
    rows: &[EventRow<'_>],
    dead: &[DeadLetter],
) -> Result<Written, sqlx::Error> {
    let mut inserted = 0;
    let mut refused = Vec::new();
    for row in rows {
        let one = async {
            db::ensure_partitions(&c.pool, [row.event.occurred_at]).await?;
            let mut tx = c.pool.begin().await?;
            let n = db::insert_events(&mut tx, std::slice::from_ref(row)).await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }
        .await;
        match one {
            Ok(n) => inserted += n,
            Err(e) if is_data_error(&e) => refused.push(DeadLetter {
                stage: "delivery".into(),
                source: Some(source.to_string()),
                event_id: Some(row.event.event_id.clone()),
                reasons: serde_json::json!([{"field": "$", "message": format!("database refused the row: {e}")}]),
                raw: row.raw.to_string(),
                plugin_name: Some(row.plugin.identity.name.clone()),
                plugin_version: Some(row.plugin.identity.version.clone()),
                plugin_digest: Some(row.plugin.digest.clone()),
                wit_version: Some(row.plugin.wit_version.clone()),
                correlation_id: row.correlation_id.map(str::to_string),
                dedup_key: None,
            }),
            Err(e) => return Err(e),
        }
    }
    for letter in dead.iter().chain(&refused) {
        let mut tx = c.pool.begin().await?;
        match db::insert_dead_letters(&mut tx, std::slice::from_ref(letter)).await {
            Ok(_) => tx.commit().await?,
            // Sanitized letters are always storable; if one still is not, the
            // batch waits (retried) rather than losing it.
            Err(e) => {
                tracing::error!(source, error = %e, "the database refuses a dead letter; retrying the batch");
                return Err(e);
            }
        }
    }
    Ok(Written { inserted, refused })
}
