//! The collector runtime: for each source, pull batches from the source's
//! durable JetStream consumer (shared by every replica, so replicas split the
//! work), normalize them with the source's plugin in one call, write them in
//! one transaction, and ack only after the commit.
mod batch;
mod dead_letters;
mod metrics;
mod stranded;
mod write;

pub use metrics::CollectorMetrics;
pub type Metrics = CollectorMetrics;

use crate::{
    config::{CollectorConfig, NatsConfig, Sources},
    nats,
    plugins::PluginRuntime,
};
use async_nats::jetstream::{self, consumer::PullConsumer};
use events_common::backoff::Backoff;
use futures::StreamExt;
use sqlx::PgPool;
use std::{collections::BTreeSet, sync::Arc, time::Duration};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Collector {
    pub js: jetstream::Context,
    pub pool: PgPool,
    pub plugins: PluginRuntime,
    pub nats: NatsConfig,
    pub cfg: CollectorConfig,
    pub metrics: CollectorMetrics,
    /// Readiness: `database_writes` is false while a batch write is retried.
    pub health: events_common::health::Health,
    /// Cancelled on shutdown: workers finish (and ack) their current batch,
    /// then stop fetching.
    pub stop: CancellationToken,
}

impl Collector {
    /// Runs workers for the configured sources (and, with `all`, for every
    /// source a plugin adds later) plus the dead-letter writer, until `stop`.
    pub async fn run(self: Arc<Self>) {
        let mut tasks = JoinSet::new();
        tasks.spawn(dead_letters::run(self.clone()));
        if let Some(months) = self.cfg.retention_months {
            tasks.spawn(crate::db::run_retention(
                self.pool.clone(),
                months,
                self.stop.clone(),
            ));
        }
        let Some(advisories) = stranded::subscribe(&self).await else {
            return;
        };
        tasks.spawn(stranded::run(self.clone(), advisories));
        let mut started = BTreeSet::new();
        let mut sources_rx = self.plugins.subscribe();
        loop {
            let wanted: Vec<String> = match &self.cfg.sources {
                Sources::List(l) => l.clone(),
                Sources::All { .. } => sources_rx
                    .borrow_and_update()
                    .iter()
                    .filter(|s| self.cfg.sources.includes(s))
                    .cloned()
                    .collect(),
            };
            for source in wanted {
                if started.insert(source.clone()) {
                    tracing::info!(source, "collector starting");
                    tasks.spawn(self.clone().run_source(source));
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                changed = sources_rx.changed() => if changed.is_err() { break },
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("collectors stopped");
    }

    async fn consumer(&self, source: &str) -> Option<PullConsumer> {
        let mut backoff = Backoff::new(Duration::from_millis(200));
        loop {
            match nats::source_consumer(&self.js, &self.nats, &self.cfg, source).await {
                Ok(c) => return Some(c),
                Err(e) => tracing::warn!(source, error = %e, "consumer not ready, retrying"),
            }
            if !backoff.sleep(&self.stop).await {
                return None;
            }
        }
    }

    async fn run_source(self: Arc<Self>, source: String) {
        let Some(consumer) = self.consumer(&source).await else {
            return;
        };
        let mut workers = JoinSet::new();
        for _ in 0..self.cfg.concurrency {
            workers.spawn(self.clone().worker(source.clone(), consumer.clone()));
        }
        workers.spawn(self.clone().watch_lag(source.clone(), consumer));
        while workers.join_next().await.is_some() {}
    }

    /// Fetch → process → ack, until shutdown.
    async fn worker(self: Arc<Self>, source: String, mut consumer: PullConsumer) {
        let mut per_message = EventsPerMessage::new(self.cfg.batch_size);
        let mut checked = std::time::Instant::now();
        // Fetches failing in a row: the first and every 50th are warned
        // about, so a worker that cannot fetch is never silent.
        let mut fetch_errors = 0u32;
        while !self.stop.is_cancelled() {
            // No plugin (yet, or removed): leave the events in JetStream.
            let Some(plugin) = self.plugins.get(&source) else {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            };
            let fetched = consumer
                .batch()
                .max_messages(per_message.messages_for(self.cfg.batch_size))
                .max_bytes(MAX_FETCH_BYTES)
                .expires(self.cfg.fetch_wait)
                .messages()
                .await;
            let mut failed = None;
            let mut batch = Vec::new();
            match fetched {
                Ok(mut messages) => {
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(m) => batch.push(batch::Incoming::new(m)),
                            Err(e) => {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                    }
                }
                Err(e) => failed = Some(e.to_string()),
            }
            if failed.is_none() {
                fetch_errors = 0;
            }
            if !batch.is_empty() {
                per_message.observe(batch.len(), batch.iter().map(batch::Incoming::len).sum());
                batch::process(&self, &source, plugin, batch).await;
            } else if failed.is_some() || checked.elapsed() >= CONSUMER_CHECK_EVERY {
                // A pull on a consumer that no longer exists (its stream was
                // deleted and re-created) may just come back empty, without
                // an error: an idle worker checks its consumer now and then.
                if let Some(e) = &failed {
                    fetch_errors += 1;
                    if fetch_errors % 50 == 1 {
                        tracing::warn!(source, error = %e, in_a_row = fetch_errors, "fetch failed");
                    } else {
                        tracing::debug!(source, error = %e, "fetch ended with an error");
                    }
                }
                checked = std::time::Instant::now();
                if !self.recover_consumer(&source, &mut consumer).await {
                    return;
                }
                if failed.is_some() {
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }

    /// After a failed fetch: if the consumer (or its stream) is gone, waits
    /// for the stream and re-creates the durable consumer. `false` on
    /// shutdown.
    async fn recover_consumer(&self, source: &str, consumer: &mut PullConsumer) -> bool {
        if consumer.info().await.is_ok() {
            return true;
        }
        tracing::warn!(source, "consumer or stream gone, re-creating the consumer");
        match self.consumer(source).await {
            Some(c) => {
                *consumer = c;
                true
            }
            None => false,
        }
    }

    /// Publishes the consumer's lag as a gauge.
    async fn watch_lag(self: Arc<Self>, source: String, mut consumer: PullConsumer) {
        loop {
            if let Ok(info) = consumer.info().await {
                let lag = info.num_pending as i64 + info.num_ack_pending as i64;
                self.metrics.pending.with_label_values(&[&source]).set(lag);
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

/// How often an idle worker makes sure its consumer still exists.
const CONSUMER_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Bytes one fetch may bring (JetStream stops a pull at this many).
const MAX_FETCH_BYTES: usize = 64 << 20;

/// How many events a message holds, on average: a message is a slice of up
/// to `GATEWAY_SLICE_EVENTS` events, or one event from an earlier version.
/// A fetch asks for as many messages as make about `COLLECTOR_BATCH_SIZE`
/// events.
struct EventsPerMessage(f64);

impl EventsPerMessage {
    /// Starts high, so the first fetch is one message, not a batch of slices.
    fn new(batch_size: usize) -> Self {
        Self(batch_size.max(1) as f64)
    }

    fn messages_for(&self, batch_size: usize) -> usize {
        ((batch_size as f64 / self.0).round() as usize).clamp(1, batch_size.max(1))
    }

    fn observe(&mut self, messages: usize, events: usize) {
        if messages > 0 {
            let seen = (events as f64 / messages as f64).max(1.0);
            self.0 = 0.5 * self.0 + 0.5 * seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventsPerMessage;

    #[test]
    fn fetch_size_follows_what_messages_hold() {
        let mut e = EventsPerMessage::new(1000);
        assert_eq!(e.messages_for(1000), 1);
        // A backlog of one-event messages: fetches grow towards the batch.
        for _ in 0..20 {
            e.observe(e.messages_for(1000), e.messages_for(1000));
        }
        assert!(e.messages_for(1000) > 900, "{}", e.messages_for(1000));
        // Slices of 250: four per batch.
        for _ in 0..20 {
            e.observe(4, 1000);
        }
        assert_eq!(e.messages_for(1000), 4);
        e.observe(0, 0);
        assert_eq!(e.messages_for(1000), 4);
    }
}
