//! Moves dead letters published by the gateway (stream `…_dlq.>`) into the
//! `dead_letters` table: insert, commit, then ack.
use super::Collector;
use crate::{
    db::{self, DeadLetter},
    nats,
};
use async_nats::jetstream::{consumer::PullConsumer, Message};
use events_common::backoff::Backoff;
use futures::StreamExt;
use std::{sync::Arc, time::Duration};

/// The dead-letter consumer, once its stream exists; `None` on shutdown.
async fn consumer(c: &Collector) -> Option<PullConsumer> {
    loop {
        match nats::dlq_consumer(&c.js, &c.nats, &c.cfg).await {
            Ok(consumer) => return Some(consumer),
            Err(e) => tracing::warn!(error = %e, "dead-letter consumer not ready, retrying"),
        }
        tokio::select! {
            _ = c.stop.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

pub async fn run(c: Arc<Collector>) {
    let Some(mut consumer) = consumer(&c).await else {
        return;
    };
    let mut checked = std::time::Instant::now();
    while !c.stop.is_cancelled() {
        let (batch, failed) = fetch(&mut consumer, c.cfg.batch_size).await;
        if batch.is_empty() {
            // The consumer or its stream may be gone (a pull on a missing
            // consumer may just come back empty): re-create it.
            let check = failed || checked.elapsed() >= Duration::from_secs(2);
            if check {
                checked = std::time::Instant::now();
            }
            if check && consumer.info().await.is_err() {
                tracing::warn!("dead-letter consumer or stream gone, re-creating the consumer");
                let Some(c2) = self::consumer(&c).await else {
                    return;
                };
                consumer = c2;
            }
            if failed {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        }
        let letters: Vec<DeadLetter> = batch.iter().map(letter).collect();
        if !store(&c, &letters).await {
            return;
        }
        futures::future::join_all(batch.iter().map(|m| m.ack())).await;
        for l in &letters {
            let source = l
                .source
                .as_deref()
                .filter(|s| c.plugins.has_source(s))
                .unwrap_or("unknown");
            c.metrics
                .dead_letters
                .with_label_values(&[&l.stage, source])
                .inc();
        }
    }
}

/// One pull: the messages it brought, and whether it failed.
async fn fetch(consumer: &mut PullConsumer, max: usize) -> (Vec<Message>, bool) {
    let mut batch = Vec::new();
    let mut messages = match consumer
        .batch()
        .max_messages(max)
        .expires(Duration::from_millis(500))
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(_) => return (batch, true),
    };
    while let Some(m) = messages.next().await {
        match m {
            Ok(m) => batch.push(m),
            Err(_) => return (batch, true),
        }
    }
    (batch, false)
}

/// The dead letter a message carries, keyed by the gateway's own
/// Nats-Msg-Id: a redelivery is not stored twice, and a re-created stream
/// cannot collide with old keys. An unreadable one is kept as it came.
fn letter(m: &Message) -> DeadLetter {
    let key = m
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| format!("xxh3:{:032x}", xxhash_rust::xxh3::xxh3_128(&m.payload)));
    let mut letter = serde_json::from_slice::<DeadLetter>(&m.payload).unwrap_or_else(|e| DeadLetter {
        stage: "gateway".into(),
        source: None,
        event_id: None,
        reasons: serde_json::json!([{"field": "$", "message": format!("unreadable dead letter: {e}")}]),
        raw: String::from_utf8_lossy(&m.payload).into_owned(),
        plugin_name: None,
        plugin_version: None,
        plugin_digest: None,
        wit_version: None,
        correlation_id: None,
        dedup_key: None,
    });
    letter.dedup_key = Some(key);
    letter
}

/// Stores the letters in one transaction, retrying until it commits;
/// `false` when shutdown came first.
async fn store(c: &Collector, letters: &[DeadLetter]) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(100));
    loop {
        let res = async {
            let mut tx = c.pool.begin().await?;
            db::insert_dead_letters(&mut tx, letters).await?;
            tx.commit().await
        }
        .await;
        match res {
            Ok(()) => return true,
            Err(e) => tracing::warn!(error = %e, "dead-letter write failed, retrying"),
        }
        if !backoff.sleep(&c.stop).await {
            return false;
        }
    }
}
