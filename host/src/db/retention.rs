//! Retention of raw events (`EVENTS_RETENTION_MONTHS`, off by default):
//! whole monthly partitions of `events` lying entirely before the first month
//! that is less than N months old are dropped, with the claims of their
//! events, in one transaction (`events_apply_retention`, see
//! `migrations/20270101000001_partitioned_events.sql`).
//!
//! Rollups are kept: dropping a partition fires no DELETE trigger, so the
//! reports keep answering from the rollups for the dropped range (whole
//! rollup buckets; the sub-bucket edges a report reads from raw events find
//! none there, see the README).
//!
//! The start of the oldest kept month becomes the retention horizon: an
//! event older than it is refused afterwards (a dead letter saying so),
//! because its month's raw rows and claims are gone and the pipeline could no
//! longer tell a re-send from a new event. Counts stay exact that way; the
//! refused event is not lost (`dead_letters` keeps it).
use events_common::config::{ConfigError, Vars};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The variable: a number of months (1 to 1200), or unset / `off`.
pub const RETENTION_VAR: &str = "EVENTS_RETENTION_MONTHS";

/// How often a collector applies retention (every replica does; the
/// database serializes them and the work is idempotent).
const EVERY: Duration = Duration::from_secs(3600);
/// After a failure (e.g. the brief exclusive lock was not granted in time).
const RETRY: Duration = Duration::from_secs(60);

/// `EVENTS_RETENTION_MONTHS`: `None` when off (unset, empty or `off`).
pub fn retention_months(vars: &Vars) -> Result<Option<u32>, ConfigError> {
    match vars.raw(RETENTION_VAR) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
        Some(_) => vars.ranged(RETENTION_VAR, 1, 1..=1200).map(Some),
    }
}

/// Drops the partitions entirely older than `months` months, with their
/// claims; returns their names. Dropping needs ACCESS EXCLUSIVE on `events`
/// for a moment: it waits at most 5 s for it (then fails, to be retried)
/// rather than queue every writer and report behind a long query.
pub async fn apply_retention(pool: &PgPool, months: u32) -> Result<Vec<String>, sqlx::Error> {
    let months = i32::try_from(months).unwrap_or(i32::MAX);
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *tx)
        .await?;
    let dropped: Vec<String> =
        sqlx::query_scalar("SELECT dropped FROM events_apply_retention($1) AS dropped")
            .bind(months)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    if !dropped.is_empty() {
        super::forget_partitions(pool);
    }
    Ok(dropped)
}

/// Applies retention now and then every hour, until `stop`.
pub async fn run_retention(pool: PgPool, months: u32, stop: CancellationToken) {
    loop {
        let wait = match apply_retention(&pool, months).await {
            Ok(dropped) => {
                if !dropped.is_empty() {
                    tracing::info!(
                        months,
                        ?dropped,
                        "retention dropped raw event partitions (rollups kept)"
                    );
                }
                EVERY
            }
            Err(e) => {
                tracing::warn!(months, error = %e, "retention failed, retrying");
                RETRY
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(v: Option<&str>) -> Result<Option<u32>, ConfigError> {
        let map: HashMap<String, String> = v
            .map(|v| (RETENTION_VAR.to_string(), v.to_string()))
            .into_iter()
            .collect();
        retention_months(&Vars::new(&map))
    }

    #[test]
    fn retention_is_off_unless_set() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some("")).unwrap(), None);
        assert_eq!(parse(Some("off")).unwrap(), None);
        assert_eq!(parse(Some("OFF")).unwrap(), None);
        assert_eq!(parse(Some("13")).unwrap(), Some(13));
        assert_eq!(parse(Some("1200")).unwrap(), Some(1200));
        for bad in ["0", "1201", "-1", "twelve", "1.5"] {
            let e = parse(Some(bad)).unwrap_err();
            assert_eq!(e.variable, RETENTION_VAR, "{bad}");
        }
    }
}
