//! Builds a running host from its configuration and returns a handle, so the
//! binary and the tests start it the same way (tests on port 0 against their
//! own database and stream names). The parts every service has come from
//! `events_common::service`; `gateway` and `collector` add the role's own.
mod collector;
mod gateway;

use crate::{
    config::{role_name, HostConfig},
    nats::{self, NatsError},
    plugins::{PluginError, PluginMetrics, PluginRuntime},
};
use async_nats::jetstream;
use events_common::{
    db::DbError,
    http,
    service::{App, Listeners, Service, ServiceError, Serving},
};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {variable} {port}")]
    Listen {
        variable: &'static str,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Plugins(#[from] PluginError),
    #[error("loading plugins: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Binds the configured ports (`PORT`, `METRICS_PORT`) and builds the app.
pub async fn bind_and_build(config: HostConfig) -> Result<App, StartupError> {
    let bind = |variable: &'static str, port: u16| async move {
        TcpListener::bind(("0.0.0.0", port))
            .await
            .map_err(|source| StartupError::Listen {
                variable,
                port,
                source,
            })
    };
    let main = bind("PORT", config.port).await?;
    let metrics = match config.metrics_port {
        Some(p) => Some(bind("METRICS_PORT", p).await?),
        None => None,
    };
    build(config, Listeners { main, metrics }).await
}

/// Loads the plugins, connects to NATS, then wires the gateway and/or the
/// collector and serves.
pub async fn build(config: HostConfig, listeners: Listeners) -> Result<App, StartupError> {
    let service = Service::new()?;
    let stop = service.stop_token();
    let plugins = load_plugins(&config, &service).await?;
    let watcher = plugins.watcher().spawn(stop.clone());
    let (client, js) = connect_nats(&config, &service).await?;

    let mut router = service.ops_router();
    if config.runs_gateway() {
        router = router.merge(gateway::router(&config, &service, &client, &js, &plugins)?);
    }
    let collecting = if config.runs_collector() {
        Some(collector::start(&config, &service, &js, &plugins).await?)
    } else {
        None
    };
    let drain = async move {
        // Collectors finish and ack their current batch...
        let pool = match collecting {
            Some(c) => Some(c.finish().await),
            None => None,
        };
        let _ = watcher.await;
        // ...then outstanding NATS traffic is flushed and the pool closed.
        if let Err(e) = client.drain().await {
            tracing::warn!(error = %e, "NATS drain failed");
        }
        if let Some(p) = pool {
            p.close().await;
        }
    };
    let serving = Serving {
        name: format!("host-{}", role_name(config.role)),
        correlation_header: config.common.correlation_id_header.clone(),
        header_timeout: if config.runs_gateway() {
            config.gateway.header_timeout
        } else {
            http::DEFAULT_HEADER_TIMEOUT
        },
        shutdown_timeout: config.common.shutdown_timeout,
    };
    let app = service.start(listeners, router, serving, drain)?;
    log_started(&app, &config);
    Ok(app)
}

/// Plugins first: a broken plugins directory is a startup error.
async fn load_plugins(
    config: &HostConfig,
    service: &Service,
) -> Result<PluginRuntime, StartupError> {
    service.health.register("plugins");
    let metrics = PluginMetrics::new(&service.registry)?;
    let plugins = PluginRuntime::new(config.plugins.clone(), metrics)?;
    let loader = plugins.clone();
    let identities = tokio::task::spawn_blocking(move || loader.load_dir()).await??;
    tracing::info!(
        plugins = ?identities.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        dir = %config.plugins.dir.display(),
        "plugins loaded"
    );
    service.health.set("plugins", true);
    Ok(plugins)
}

/// Connects and makes sure the streams exist (the gateway creates them,
/// collectors wait for them), then keeps probing them for readiness.
async fn connect_nats(
    config: &HostConfig,
    service: &Service,
) -> Result<(async_nats::Client, jetstream::Context), StartupError> {
    let stop = service.stop_token();
    let client = nats::connect(&config.nats, &service.health).await?;
    let js = nats::jetstream(client.clone(), config.gateway.publish_concurrency);
    if config.runs_gateway() {
        nats::ensure_streams_with_retry(&js, &config.nats, &stop).await?;
    } else {
        nats::wait_for_streams(&js, &config.nats, &stop).await?;
    }
    let gauges = nats::StreamGauges::new(&service.registry)?;
    let (probe_js, cfg) = (js.clone(), config.nats.clone());
    // The gateway re-creates a stream that went missing (deleted by hand, a
    // lost store); its publishes are retried meanwhile.
    let owns_streams = config.runs_gateway();
    service
        .health
        .spawn_probe("jetstream", Duration::from_secs(1), stop, move || {
            let (js, cfg, gauges) = (probe_js.clone(), cfg.clone(), gauges.clone());
            async move { nats::probe_streams(&js, &cfg, &gauges, owns_streams).await }
        });
    Ok((client, js))
}

/// Tests and scripts started on port 0 read the bound ports from this line.
fn log_started(app: &App, config: &HostConfig) {
    let (addr, role, env) = (
        app.addr,
        role_name(config.role),
        config.common.app_env.as_str(),
    );
    match app.metrics_addr {
        Some(metrics_addr) => {
            tracing::info!(%addr, %metrics_addr, role, env, "events-host started")
        }
        None => tracing::info!(%addr, role, env, "events-host started"),
    }
}
