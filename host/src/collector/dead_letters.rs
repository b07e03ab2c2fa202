//! Moves dead letters published by the gateway (stream `…_dlq.>`) into the
//! `dead_letters` table: insert, commit, then ack.
use super::Collector;
use crate::{
    db::{self, DeadLetter},
    nats,
};
use async_nats::jetstream::consumer::PullConsumer;
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
        let mut batch = Vec::new();
        let mut failed = false;
        match consumer
            .batch()
            .max_messages(c.cfg.batch_size)
            .expires(Duration::from_millis(500))
            .messages()
            .await
        {
            Ok(mut messages) => {
                while let Some(m) = messages.next().await {
                    match m {
                        Ok(m) => batch.push(m),
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
            }
            Err(_) => failed = true,
        }
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
        let letters: Vec<DeadLetter> = batch
            .iter()
            .map(|m| {
                // The gateway's own Nats-Msg-Id: a redelivery is not stored
                // twice, and a re-created stream cannot collide with old keys.
                let key = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_else(|| format!("xxh3:{:032x}", xxhash_rust::xxh3::xxh3_128(&m.payload)));
                let key = Some(key);
                let mut letter = serde_json::from_slice::<DeadLetter>(&m.payload).unwrap_or_else(|e| DeadLetter {
                    stage: "gateway".into(),
                    source: None,
                    event_id: None,
                    reasons: serde_json::json!([{"field": "$", "message": format!("unreadable dead letter: {e}")}]),
                    raw: String::from_utf8_lossy(&m.payload).into_owned(),
                    plugin_name: None,
                    plugin_version: None,
                    correlation_id: None,
                    dedup_key: None,
                });
                letter.dedup_key = key;
                letter
            })
            .collect();
        let mut backoff = Backoff::new(Duration::from_millis(100));
        loop {
            let res = async {
                let mut tx = c.pool.begin().await?;
                db::insert_dead_letters(&mut tx, &letters).await?;
                tx.commit().await
            }
            .await;
            match res {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "dead-letter write failed, retrying"),
            }
            if !backoff.sleep(&c.stop).await {
                return;
            }
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
