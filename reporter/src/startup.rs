//! Wiring: database, migrations, metrics, router, server, shutdown.
use crate::{
    auth::{self, Token},
    config::Config,
    dead_letters,
    metrics::{Report, ReportMetrics},
    openapi,
    replica::{self, ReplicaLag},
    reports::{demographics, events, revenue, AppState},
};
use axum::{
    handler::Handler,
    middleware::from_fn_with_state,
    routing::{get, MethodRouter},
    Router,
};
use events_common::{backoff::Backoff, db, health::Health, http};
use prometheus::Registry;
use sqlx::PgPool;
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Query(sqlx::Error),
    #[error(
        "the replica still lacks migration(s) {missing} after {} ms (MIGRATION_TIMEOUT_MS); \
         the reporter never migrates a replica: apply them on the primary (the host does at \
         startup) and let the replica replay them",
        .waited.as_millis()
    )]
    ReplicaBehind { missing: String, waited: Duration },
    #[error(
        "the database has migration(s) {0} with other checksums than this build's: run a \
         reporter built from the same migrations as the schema"
    )]
    SchemaDiffers(String),
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

/// Migrates the database (on a replica: waits until it has replayed the
/// migrations), then serves on `listener` until the returned app's
/// `shutdown` token is cancelled.
pub async fn spawn(config: Config, listener: TcpListener) -> Result<App, StartupError> {
    let address = listener.local_addr()?;
    let pool = db::pool(&config.database.options, config.db_max_connections);
    prepare_schema(&pool, config.migration_timeout).await?;

    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let lag = ReplicaLag::new(&registry, config.max_replica_lag)?;

    let shutdown = CancellationToken::new();
    let health = Health::new();
    let probe_pool = pool.clone();
    let probe = health.spawn_probe("database", DB_PROBE_EVERY, shutdown.clone(), move || {
        let pool = probe_pool.clone();
        async move { db::ping(&pool).await }
    });
    let (lag_pool, lag_probe) = (pool.clone(), lag.clone());
    let replica_probe =
        health.spawn_probe("replica_lag", DB_PROBE_EVERY, shutdown.clone(), move || {
            let (pool, lag) = (lag_pool.clone(), lag_probe.clone());
            async move { lag.probe(&pool).await }
        });
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
        .route(
            "/api/v1/dead-letters",
            report_route(
                dead_letters::list_handler,
                Report::DeadLetters,
                &report_metrics,
                &token,
            ),
        )
        .route(
            "/api/v1/dead-letters/summary",
            report_route(
                dead_letters::summary_handler,
                Report::DeadLettersSummary,
                &report_metrics,
                &token,
            ),
        )
        .with_state(state);
    let router = Router::new()
        .merge(reports)
        .route("/api/v1/openapi.json", get(openapi::handler))
        .merge(
            http::ops_router(health.clone(), registry)
                .route_layer(from_fn_with_state(lag, ReplicaLag::annotate_readiness)),
        );
    let header = config.common.correlation_id_header.clone();
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
        replica_probe.abort();
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

/// How often startup looks again at a replica's schema.
const SCHEMA_POLL_EVERY: Duration = Duration::from_millis(500);

/// On a primary, migrates; on a replica (in recovery, read-only), never
/// tries: waits until it has replayed every migration this build knows.
/// Both within `timeout`, retrying while the database is unreachable.
async fn prepare_schema(pool: &PgPool, timeout: Duration) -> Result<(), StartupError> {
    let start = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(200));
    let is_replica = loop {
        match replica::in_recovery(pool).await {
            Ok(r) => break r,
            Err(e) if db::is_connection_error(&e) && start.elapsed() < timeout => {
                tracing::warn!(error = %e, "database not reachable yet, retrying");
            }
            Err(e) if db::is_connection_error(&e) => {
                return Err(db::DbError::Connect(e).into());
            }
            Err(e) => return Err(StartupError::Query(e)),
        }
        backoff.sleep_uninterrupted().await;
    };
    if is_replica {
        tracing::info!("the database is a replica (in recovery): not migrating it");
        wait_for_replica_schema(pool, start, timeout).await
    } else {
        migrate(pool, timeout.saturating_sub(start.elapsed())).await
    }
}

/// Applies the migrations like every service does. A role without DDL rights
/// (the read-only production role, see README) cannot, which is fine as long
/// as the service owning the schema has applied every migration this build
/// knows, with the same checksums.
async fn migrate(pool: &PgPool, deadline: Duration) -> Result<(), StartupError> {
    let Err(e) = db::migrate_with_retry(pool, deadline).await else {
        return Ok(());
    };
    match replica::schema_status(pool).await {
        Ok(status) if status.is_current() => {
            tracing::warn!(error = %e, "cannot run migrations, but all are applied: continuing");
            Ok(())
        }
        _ => Err(e.into()),
    }
}

/// Polls the replica's `_sqlx_migrations` until it holds every migration
/// this build knows (the primary's migrator applies them, the replica
/// replays them), failing once `timeout` has passed since `start`.
async fn wait_for_replica_schema(
    pool: &PgPool,
    start: Instant,
    timeout: Duration,
) -> Result<(), StartupError> {
    let list = |versions: &[i64]| {
        versions
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut logged = false;
    loop {
        match replica::schema_status(pool).await {
            Ok(s) if s.is_current() => return Ok(()),
            Ok(s) if !s.different.is_empty() => {
                return Err(StartupError::SchemaDiffers(list(&s.different)))
            }
            Ok(s) if start.elapsed() >= timeout => {
                return Err(StartupError::ReplicaBehind {
                    missing: list(&s.missing),
                    waited: start.elapsed(),
                })
            }
            Ok(s) => {
                if !logged {
                    logged = true;
                    tracing::warn!(
                        missing = %list(&s.missing),
                        "the replica lacks migrations: waiting for it to replay them"
                    );
                }
            }
            Err(e) if db::is_connection_error(&e) && start.elapsed() < timeout => {
                tracing::warn!(error = %e, "database not reachable, retrying");
            }
            Err(e) if db::is_connection_error(&e) => {
                return Err(db::DbError::Connect(e).into());
            }
            Err(e) => return Err(StartupError::Query(e)),
        }
        tokio::time::sleep(SCHEMA_POLL_EVERY).await;
    }
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
