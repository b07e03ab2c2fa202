//! The collector runtime: for each source, pull batches from the source's
//! durable JetStream consumer (shared by every replica, so replicas split the
//! work), normalize them with the source's plugin in one call, write them in
//! one transaction, and ack only after the commit.
mod batch;
mod dead_letters;
mod metrics;

pub use metrics::CollectorMetrics;
pub type Metrics = CollectorMetrics;

use crate::{
    config::{CollectorConfig, NatsConfig, Sources},
    nats,
    plugins::PluginRuntime,
};
use async_nats::jetstream::{self, consumer::PullConsumer};
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
        let mut started = BTreeSet::new();
        let mut sources_rx = self.plugins.subscribe();
        loop {
            let wanted: Vec<String> = match &self.cfg.sources {
                Sources::List(l) => l.clone(),
                Sources::All => sources_rx.borrow_and_update().clone(),
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
        let mut wait = Duration::from_millis(200);
        loop {
            match nats::source_consumer(&self.js, &self.nats, &self.cfg, source).await {
                Ok(c) => return Some(c),
                Err(e) => tracing::warn!(source, error = %e, "consumer not ready, retrying"),
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
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
    async fn worker(self: Arc<Self>, source: String, consumer: PullConsumer) {
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
                .max_messages(self.cfg.batch_size)
                .expires(self.cfg.fetch_wait)
                .messages()
                .await;
            let mut messages = match fetched {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(source, error = %e, "fetch failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut batch = Vec::with_capacity(self.cfg.batch_size);
            while let Some(m) = messages.next().await {
                match m {
                    Ok(m) => batch.push(batch::Incoming::new(m)),
                    Err(e) => {
                        tracing::debug!(source, error = %e, "batch ended early");
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                batch::process(&self, &source, plugin, batch).await;
            }
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
