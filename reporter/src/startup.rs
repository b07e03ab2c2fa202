//! Wiring: database and migrations, then the reports' routes on the common
//! service skeleton (`events_common::service`).
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
/// The running reporter: the same handle as every service's.
pub use events_common::service::App;
use events_common::{
    backoff::Backoff,
    db, http,
    service::{Listeners, Service, ServiceError, Serving},
};
use sqlx::PgPool;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Service(#[from] ServiceError),
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

/// How often readiness probes the database.
const DB_PROBE_EVERY: Duration = Duration::from_secs(2);

/// Migrates the database (on a replica: waits until it has replayed the
/// migrations), then serves on `listener` until the returned app is stopped.
pub async fn spawn(config: Config, listener: TcpListener) -> Result<App, StartupError> {
    let pool = db::pool(&config.database.options, config.db_max_connections);
    prepare_schema(&pool, config.migration_timeout).await?;

    let service = Service::new()?;
    let lag = ReplicaLag::new(&service.registry, config.max_replica_lag)?;
    spawn_probes(&service, &pool, &lag);
    let router = Router::new()
        .merge(reports_router(&config, &service, &pool)?)
        .route("/api/v1/openapi.json", get(openapi::handler))
        .merge(
            service
                .ops_router()
                .route_layer(from_fn_with_state(lag, ReplicaLag::annotate_readiness)),
        );
    let serving = Serving {
        name: "reporter".into(),
        correlation_header: config.common.correlation_id_header.clone(),
        header_timeout: http::DEFAULT_HEADER_TIMEOUT,
        shutdown_timeout: config.common.shutdown_timeout,
    };
    let listeners = Listeners {
        main: listener,
        metrics: None,
    };
    let app = service.start(
        listeners,
        router,
        serving,
        async move { pool.close().await },
    )?;
    let (addr, env) = (app.addr, config.common.app_env.as_str());
    tracing::info!(%addr, env, "events-reporter listening");
    Ok(app)
}

/// Readiness: the database answers, and a replica is not too far behind.
/// Both stop with the service.
fn spawn_probes(service: &Service, pool: &PgPool, lag: &ReplicaLag) {
    let stop = service.stop_token();
    let probe_pool = pool.clone();
    service
        .health
        .spawn_probe("database", DB_PROBE_EVERY, stop.clone(), move || {
            let pool = probe_pool.clone();
            async move { db::ping(&pool).await }
        });
    let (lag_pool, lag_probe) = (pool.clone(), lag.clone());
    service
        .health
        .spawn_probe("replica_lag", DB_PROBE_EVERY, stop, move || {
            let (pool, lag) = (lag_pool.clone(), lag_probe.clone());
            async move { lag.probe(&pool).await }
        });
}

/// The report and dead-letters routes, each behind the token check and
/// counted by report.
fn reports_router(config: &Config, service: &Service, pool: &PgPool) -> prometheus::Result<Router> {
    let metrics = ReportMetrics::new(&service.registry)?;
    let token = Token(config.api_token.as_ref().map(|t| Arc::from(t.expose())));
    let route = |report| (report, &metrics, &token);
    Ok(Router::new()
        .route(
            "/api/v1/reports/events",
            report_route(events::handler, route(Report::Events)),
        )
        .route(
            "/api/v1/reports/revenue",
            report_route(revenue::handler, route(Report::Revenue)),
        )
        .route(
            "/api/v1/reports/demographics",
            report_route(demographics::handler, route(Report::Demographics)),
        )
        .route(
            "/api/v1/dead-letters",
            report_route(dead_letters::list_handler, route(Report::DeadLetters)),
        )
        .route(
            "/api/v1/dead-letters/summary",
            report_route(
                dead_letters::summary_handler,
                route(Report::DeadLettersSummary),
            ),
        )
        .with_state(AppState { pool: pool.clone() }))
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
    (report, metrics, token): (Report, &ReportMetrics, &Token),
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
