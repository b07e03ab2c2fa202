//! Wiring: database, migrations, metrics, router, server, shutdown.
use crate::{
    auth::{self, Token},
    config::Config,
    metrics::{Report, ReportMetrics},
    openapi,
    reports::{demographics, events, revenue, AppState},
};
use axum::{
    handler::Handler,
    http::HeaderName,
    middleware::from_fn_with_state,
    routing::{get, MethodRouter},
    Router,
};
use events_common::{db, health::Health, http};
use prometheus::Registry;
use sqlx::PgPool;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid CORRELATION_ID_HEADER: {0}")]
    Header(#[from] axum::http::header::InvalidHeaderName),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// A running reporter.
pub struct App {
    /// Where it listens (the real port when started on port 0).
    pub address: SocketAddr,
    /// Cancel to shut down gracefully.
    pub shutdown: CancellationToken,
    /// Readiness; the pre-stop delay makes it false before `shutdown`.
    pub health: Health,
    join: JoinHandle<Result<(), std::io::Error>>,
}

impl App {
    /// Waits until the server has stopped (after `shutdown` is cancelled).
    pub async fn wait(self) -> Result<(), std::io::Error> {
        match self.join.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Cancels and waits.
    pub async fn stop(self) -> Result<(), std::io::Error> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// How often readiness probes the database.
const DB_PROBE_EVERY: Duration = Duration::from_secs(2);

/// Migrates the database, then serves on `listener` until the returned
/// app's `shutdown` token is cancelled.
pub async fn spawn(config: Config, listener: TcpListener) -> Result<App, StartupError> {
    let address = listener.local_addr()?;
    let pool = db::pool(&config.database.options, config.db_max_connections);
    migrate(&pool, config.migration_timeout).await?;

    let shutdown = CancellationToken::new();
    let health = Health::new();
    let probe_pool = pool.clone();
    let probe = health.spawn_probe("database", DB_PROBE_EVERY, shutdown.clone(), move || {
        let pool = probe_pool.clone();
        async move { db::ping(&pool).await }
    });

    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let http_metrics = http::HttpMetrics::new(&registry, "reporter")?;
    let report_metrics = ReportMetrics::new(&registry)?;
    let token = Token(config.api_token.as_ref().map(|t| Arc::from(t.expose())));
    let state = AppState { pool: pool.clone() };

    let reports = Router::new()
        .route(
            "/api/v1/reports/events",
            report_route(events::handler, Report::Events, &report_metrics, &token),
        )
        .route(
            "/api/v1/reports/revenue",
            report_route(revenue::handler, Report::Revenue, &report_metrics, &token),
        )
        .route(
            "/api/v1/reports/demographics",
            report_route(
                demographics::handler,
                Report::Demographics,
                &report_metrics,
                &token,
            ),
        )
        .with_state(state);
    let router = Router::new()
        .merge(reports)
        .route("/api/v1/openapi.json", get(openapi::handler))
        .merge(http::ops_router(health.clone(), registry));
    let header = HeaderName::from_bytes(config.common.correlation_id_header.as_bytes())?;
    let router = http::instrument(router, http_metrics, header);

    let server = http::serve(
        listener,
        router,
        shutdown.clone(),
        http::DEFAULT_HEADER_TIMEOUT,
    );
    let stop = shutdown.clone();
    let timeout = config.common.shutdown_timeout;
    let draining = health.clone();
    let join = tokio::spawn(async move {
        stop.cancelled().await;
        draining.start_draining();
        tracing::info!("draining: finishing requests in flight");
        let result = match tokio::time::timeout(timeout, server).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => {
                tracing::warn!(?timeout, "shutdown timed out with requests in flight");
                Ok(())
            }
        };
        probe.abort();
        pool.close().await;
        tracing::info!("stopped");
        result
    });
    tracing::info!(%address, "events-reporter listening");
    Ok(App {
        address,
        shutdown,
        health,
        join,
    })
}

/// Applies the migrations like every service does. A role without DDL rights
/// (the read-only production role, see README) cannot, which is fine as long
/// as the service owning the schema has applied every migration this build
/// knows, with the same checksums.
async fn migrate(pool: &PgPool, deadline: Duration) -> Result<(), StartupError> {
    let Err(e) = db::migrate_with_retry(pool, deadline).await else {
        return Ok(());
    };
    match schema_is_current(pool).await {
        Ok(true) => {
            tracing::warn!(error = %e, "cannot run migrations, but all are applied: continuing");
            Ok(())
        }
        _ => Err(e.into()),
    }
}

async fn schema_is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(sqlx::migrate!("../migrations").iter().all(|m| {
        applied
            .iter()
            .any(|(v, c)| *v == m.version && c.as_slice() == &*m.checksum)
    }))
}

/// A report's GET route: the report metrics outermost (so 401s count), then
/// the token check, then the handler.
fn report_route<H, T>(
    handler: H,
    report: Report,
    metrics: &ReportMetrics,
    token: &Token,
) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(handler)
        .layer(from_fn_with_state(token.clone(), auth::require))
        .layer(from_fn_with_state(
            (metrics.clone(), report),
            ReportMetrics::track,
        ))
}
