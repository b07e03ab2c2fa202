//! Reading from a streaming replica: the schema check a replica gets
//! instead of migrations, and the replay lag that readiness, `/metrics` and
//! `/health/ready` report.
//!
//! The lag is an upper bound on how stale a report is: 0 on a primary and on
//! a replica that is streaming and has replayed everything it received;
//! otherwise the smaller of "since the last replayed transaction committed
//! on the primary" and "since this reporter last saw the replica caught up"
//! (the second keeps an idle primary's first new write from looking like a
//! long lag). Unknown (`null`, NaN) while the database does not answer, or
//! for a replica that neither streams nor has replayed anything since it
//! started.
use axum::{
    body::Body,
    extract::{Request, State},
    http::header::CONTENT_LENGTH,
    middleware::Next,
    response::Response,
};
use events_common::metrics;
use prometheus::{Gauge, Registry};
use sqlx::PgPool;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

/// Whether the server is a standby (in recovery): the reporter reads from a
/// replica and must not migrate it.
pub async fn in_recovery(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(pool)
        .await
}

/// This build's migrations compared with the database's `_sqlx_migrations`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Versions not applied (all of them when the table does not exist).
    pub missing: Vec<i64>,
    /// Versions applied with another checksum: another build's migrations.
    pub different: Vec<i64>,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }
}

/// Reads `_sqlx_migrations` (a `SELECT`, so fine on a replica and for a
/// read-only role). Versions newer than this build are ignored: an older
/// reporter may read a newer schema, as after a failed migration attempt.
pub async fn schema_status(pool: &PgPool) -> Result<SchemaStatus, sqlx::Error> {
    let applied: Vec<(i64, Vec<u8>)> =
        match sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows,
            // undefined_table: nothing was ever migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e),
        };
    let mut status = SchemaStatus::default();
    for m in events_common::db::MIGRATOR.iter() {
        match applied.iter().find(|(v, _)| *v == m.version) {
            None => status.missing.push(m.version),
            Some((_, c)) if c.as_slice() != &*m.checksum => status.different.push(m.version),
            Some(_) => {}
        }
    }
    Ok(status)
}

/// `in_recovery, streaming, caught_up, now, last replayed commit`, times as
/// epoch seconds. `pg_stat_wal_receiver` hides `status` from roles without
/// `pg_read_all_stats` (NULL) but still shows a row while a WAL receiver
/// runs, so a read-only role counts a running receiver as streaming.
const LAG_SQL: &str = "\
    SELECT pg_is_in_recovery(), \
           EXISTS (SELECT 1 FROM pg_stat_wal_receiver \
                   WHERE coalesce(status, 'streaming') = 'streaming'), \
           coalesce(pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), false), \
           extract(epoch FROM now())::float8, \
           extract(epoch FROM pg_last_xact_replay_timestamp())::float8";

/// The replica lag: measured by [`ReplicaLag::probe`] (run as the
/// `replica_lag` readiness check), exported as `reporter_replica_lag_seconds`
/// and shown in `/health/ready` under `replica`.
#[derive(Clone)]
pub struct ReplicaLag {
    inner: Arc<Inner>,
}

struct Inner {
    max: Duration,
    gauge: Gauge,
    state: Mutex<LagState>,
}

#[derive(Default)]
struct LagState {
    /// `None` until the first answer and while the database does not answer.
    in_recovery: Option<bool>,
    lag_seconds: Option<f64>,
    /// The database's clock when a probe last saw the replica caught up.
    caught_up_at: Option<f64>,
}

impl ReplicaLag {
    pub fn new(registry: &Registry, max: Duration) -> prometheus::Result<Self> {
        let gauge = metrics::gauge(
            registry,
            "reporter_replica_lag_seconds",
            "How stale the reporter's database may be, in seconds: 0 on a primary or a \
             caught-up streaming replica; NaN while unknown",
        )?;
        gauge.set(f64::NAN);
        Ok(Self {
            inner: Arc::new(Inner {
                max,
                gauge,
                state: Mutex::new(LagState::default()),
            }),
        })
    }

    /// Measures the lag; true when known and at most the maximum.
    pub async fn probe(&self, pool: &PgPool) -> bool {
        let row: Result<(bool, bool, bool, f64, Option<f64>), _> =
            sqlx::query_as(LAG_SQL).fetch_one(pool).await;
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        match row {
            Ok((in_recovery, streaming, caught_up, now, replayed)) => {
                state.in_recovery = Some(in_recovery);
                state.lag_seconds = if !in_recovery {
                    state.caught_up_at = None;
                    Some(0.0)
                } else if streaming && caught_up {
                    state.caught_up_at = Some(now);
                    Some(0.0)
                } else {
                    [replayed, state.caught_up_at]
                        .into_iter()
                        .flatten()
                        .map(|t| (now - t).max(0.0))
                        .reduce(f64::min)
                };
            }
            Err(e) => {
                tracing::debug!(error = %e, "replica lag probe failed");
                state.in_recovery = None;
                state.lag_seconds = None;
            }
        }
        self.inner.gauge.set(state.lag_seconds.unwrap_or(f64::NAN));
        state
            .lag_seconds
            .is_some_and(|lag| lag <= self.inner.max.as_secs_f64())
    }

    /// What `/health/ready` shows under `replica`.
    pub fn status(&self) -> serde_json::Value {
        let state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "inRecovery": state.in_recovery,
            "lagSeconds": state.lag_seconds,
            "maxLagSeconds": self.inner.max.as_secs_f64(),
        })
    }

    /// Middleware over the ops routes: adds `replica` (see [`Self::status`])
    /// to the `/health/ready` answer, next to the boolean checks (whose
    /// `replica_lag` is the verdict). Status and other fields are kept.
    pub async fn annotate_readiness(
        State(lag): State<ReplicaLag>,
        req: Request,
        next: Next,
    ) -> Response {
        if req.uri().path() != "/health/ready" {
            return next.run(req).await;
        }
        let (mut parts, body) = next.run(req).await.into_parts();
        // The body changes length; hyper sets the new one.
        parts.headers.remove(CONTENT_LENGTH);
        let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
            return Response::from_parts(parts, Body::empty());
        };
        let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.insert("replica".to_string(), lag.status());
                Body::from(serde_json::Value::Object(map).to_string())
            }
            _ => Body::from(bytes),
        };
        Response::from_parts(parts, body)
    }
}
