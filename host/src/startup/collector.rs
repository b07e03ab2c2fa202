//! The collector's part of the host: JetStream in, plugins, PostgreSQL out.
use super::StartupError;
use crate::{
    collector::{Collector, CollectorMetrics},
    config::HostConfig,
    plugins::PluginRuntime,
};
use async_nats::jetstream;
use events_common::{db, service::Service};
use sqlx::PgPool;
use std::{sync::Arc, time::Duration};
use tokio::task::JoinHandle;

/// Running collectors and their pool, for the drain.
pub(super) struct Collecting {
    task: JoinHandle<()>,
    pool: PgPool,
}

/// Migrates the database, probes it for readiness and starts the
/// collectors.
pub(super) async fn start(
    config: &HostConfig,
    service: &Service,
    js: &jetstream::Context,
    plugins: &PluginRuntime,
) -> Result<Collecting, StartupError> {
    let pool = db::pool(&config.database.options, config.db_max_connections);
    db::migrate_with_retry(&pool, Duration::from_secs(60)).await?;
    let probe_pool = pool.clone();
    service.health.spawn_probe(
        "database",
        Duration::from_secs(1),
        service.stop_token(),
        move || {
            let pool = probe_pool.clone();
            async move { db::ping(&pool).await }
        },
    );
    let collector = Arc::new(Collector {
        js: js.clone(),
        pool: pool.clone(),
        plugins: plugins.clone(),
        nats: config.nats.clone(),
        cfg: config.collector.clone(),
        metrics: CollectorMetrics::new(&service.registry)?,
        health: service.health.clone(),
        stop: service.stop_token(),
    });
    Ok(Collecting {
        task: tokio::spawn(collector.run()),
        pool,
    })
}

impl Collecting {
    /// Waits for the collectors to finish (and ack) their current batch;
    /// hands back the pool, to close once NATS is drained.
    pub(super) async fn finish(self) -> PgPool {
        let _ = self.task.await;
        self.pool
    }
}
