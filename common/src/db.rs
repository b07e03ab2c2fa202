//! PostgreSQL: pool and migrations shared by every service.
pub mod events;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unreachable: {0}")]
    Connect(sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Builds a lazily connecting pool: services start (and report not-ready)
/// even while PostgreSQL is down, and reconnect when it comes back.
pub fn pool(options: &PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.clone())
}

/// The repository's `migrations/`, embedded once here: services apply them,
/// the reporter compares a replica's schema with them.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Applies [`MIGRATOR`]. sqlx takes an advisory lock, so several services
/// starting at once are safe.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Applies migrations, retrying while the database is unreachable, until
/// `deadline` passes.
pub async fn migrate_with_retry(pool: &PgPool, deadline: Duration) -> Result<(), DbError> {
    let start = std::time::Instant::now();
    let mut backoff = crate::backoff::Backoff::new(Duration::from_millis(200));
    loop {
        match migrate(pool).await {
            Ok(()) => return Ok(()),
            Err(DbError::Migrate(sqlx::migrate::MigrateError::Execute(e)))
                if is_connection_error(&e) && start.elapsed() < deadline =>
            {
                tracing::warn!(error = %e, "database not reachable yet, retrying migrations");
            }
            Err(e) => return Err(e),
        }
        backoff.sleep_uninterrupted().await;
    }
}

/// True for errors that mean "could not talk to the server" rather than
/// "the server refused the statement".
/// "The server is starting up / shutting down / out of connections" count as
/// unreachable too: such a statement is worth retrying as it is.
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Cheap reachability probe for readiness.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
