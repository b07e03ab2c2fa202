//! Builds a running host from its configuration and returns a handle, so the
//! binary and the tests start it the same way (tests on port 0 against their
//! own database and stream names).
use crate::{
    collector::{Collector, CollectorMetrics},
    config::{role_name, HostConfig},
    gateway::{self, Gateway, GatewayMetrics},
    nats,
    plugins::{PluginMetrics, PluginRuntime},
};
use anyhow::Context as _;
use events_common::{db, health::Health, http};
use prometheus::Registry;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub struct App {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub health: Health,
    pub plugins: PluginRuntime,
    pub registry: Registry,
    /// Cancel to shut down gracefully; then await [`App::wait`].
    pub stop: CancellationToken,
    done: JoinHandle<()>,
}

impl App {
    /// Waits until the app has shut down.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Binds the configured ports and builds the app.
pub async fn bind_and_build(config: HostConfig) -> anyhow::Result<App> {
    let listener = TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("cannot listen on PORT {}", config.port))?;
    let metrics_listener = match config.metrics_port {
        Some(p) => Some(
            TcpListener::bind(("0.0.0.0", p))
                .await
                .with_context(|| format!("cannot listen on METRICS_PORT {p}"))?,
        ),
        None => None,
    };
    build(config, listener, metrics_listener).await
}

pub async fn build(
    config: HostConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
) -> anyhow::Result<App> {
    let stop = CancellationToken::new();
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let health = Health::new();

    // Plugins first: a broken plugins directory is a startup error.
    health.register("plugins");
    let plugins = PluginRuntime::new(config.plugins.clone(), PluginMetrics::new(&registry)?)?;
    let loader = plugins.clone();
    let identities = tokio::task::spawn_blocking(move || loader.load_dir()).await??;
    tracing::info!(plugins = ?identities.iter().map(|i| i.to_string()).collect::<Vec<_>>(), dir = %config.plugins.dir.display(), "plugins loaded");
    health.set("plugins", true);
    let watcher = plugins.watcher().spawn(stop.clone());

    let client = nats::connect(&config.nats, &health).await?;
    let js = nats::jetstream(client.clone(), config.gateway.publish_concurrency);
    if config.runs_gateway() {
        nats::ensure_streams_with_retry(&js, &config.nats, &stop).await?;
    } else {
        nats::wait_for_streams(&js, &config.nats, &stop).await?;
    }
    let gauges = nats::StreamGauges::new(&registry)?;
    let (probe_js, probe_cfg) = (js.clone(), config.nats.clone());
    // The gateway re-creates a stream that went missing (deleted by hand, a
    // lost store); its publishes are retried meanwhile.
    let owns_streams = config.runs_gateway();
    health.spawn_probe(
        "jetstream",
        Duration::from_secs(1),
        stop.clone(),
        move || {
            let (js, cfg, gauges) = (probe_js.clone(), probe_cfg.clone(), gauges.clone());
            async move { nats::probe_streams(&js, &cfg, &gauges, owns_streams).await }
        },
    );

    let header = config.common.correlation_id_header.clone();
    let service = format!("host-{}", role_name(config.role));
    let http_metrics = http::HttpMetrics::new(&registry, &service)?;
    let mut router = http::ops_router(health.clone(), registry.clone());
    if config.runs_gateway() {
        let max_payload = client.server_info().max_payload;
        let gw = Gateway {
            js: js.clone(),
            plugins: plugins.clone(),
            cfg: config.gateway.clone(),
            nats: config.nats.clone(),
            metrics: GatewayMetrics::new(&registry)?,
            health: health.clone(),
            // A slice stays under the server's max_payload with room for
            // headers; one event must fit in a slice alone.
            max_event_bytes: max_payload.saturating_sub(4096).max(1024)
                - crate::wire::FRAME_OVERHEAD,
            inflight: Gateway::inflight_budget(&config.gateway),
            stop: stop.clone(),
        };
        router = router.merge(gateway::router(Arc::new(gw)));
    }

    let mut collector_task = None;
    let mut pool = None;
    if config.runs_collector() {
        let p = db::pool(&config.database.options, config.db_max_connections);
        db::migrate_with_retry(&p, Duration::from_secs(60)).await?;
        let probe_pool = p.clone();
        health.spawn_probe(
            "database",
            Duration::from_secs(1),
            stop.clone(),
            move || {
                let pool = probe_pool.clone();
                async move { db::ping(&pool).await }
            },
        );
        let collector = Arc::new(Collector {
            js: js.clone(),
            pool: p.clone(),
            plugins: plugins.clone(),
            nats: config.nats.clone(),
            cfg: config.collector.clone(),
            metrics: CollectorMetrics::new(&registry)?,
            health: health.clone(),
            stop: stop.clone(),
        });
        collector_task = Some(tokio::spawn(collector.run()));
        pool = Some(p);
    }

    let router = http::instrument(router, http_metrics, header);
    let addr = listener.local_addr()?;
    let header_timeout = if config.runs_gateway() {
        config.gateway.header_timeout
    } else {
        http::DEFAULT_HEADER_TIMEOUT
    };
    let server = http::serve(listener, router, stop.clone(), header_timeout);
    let mut metrics_addr = None;
    let metrics_server = match metrics_listener {
        Some(l) => {
            metrics_addr = Some(l.local_addr()?);
            Some(http::serve(
                l,
                http::ops_router(health.clone(), registry.clone()),
                stop.clone(),
                http::DEFAULT_HEADER_TIMEOUT,
            ))
        }
        None => None,
    };
    tracing::info!(%addr, role = role_name(config.role), "events-host started");

    let timeout = config.common.shutdown_timeout;
    let h = health.clone();
    let stop_wait = stop.clone();
    let done = tokio::spawn(async move {
        stop_wait.cancelled().await;
        h.start_draining();
        let graceful = async {
            // In-flight webhook requests finish (their publishes acked) and
            // collectors finish and ack their current batch...
            let _ = server.await;
            if let Some(m) = metrics_server {
                let _ = m.await;
            }
            if let Some(c) = collector_task {
                let _ = c.await;
            }
            let _ = watcher.await;
            // ...then outstanding NATS traffic is flushed and the pool closed.
            if let Err(e) = client.drain().await {
                tracing::warn!(error = %e, "NATS drain failed");
            }
            if let Some(p) = pool {
                p.close().await;
            }
        };
        if tokio::time::timeout(timeout, graceful).await.is_err() {
            tracing::error!(
                timeout_ms = timeout.as_millis() as u64,
                "graceful shutdown timed out"
            );
        } else {
            tracing::info!("shutdown complete");
        }
    });

    Ok(App {
        addr,
        metrics_addr,
        health,
        plugins,
        registry,
        stop,
        done,
    })
}
