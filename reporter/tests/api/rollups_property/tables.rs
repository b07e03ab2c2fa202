//! Reading the database back for comparisons: raw rows and rollup rows as
//! text, the partitions of `events`, row counts.
use chrono::{DateTime, Utc};

/// Every row of `events`, as text, in key order.
pub(super) async fn raw_rows(pool: &sqlx::PgPool) -> Vec<String> {
    utc_rows(
        pool,
        "SELECT row_to_json(e)::text FROM events e ORDER BY source, event_id",
    )
    .await
}

/// Text rows of `sql`, times written in UTC whatever the pool's TimeZone.
async fn utc_rows(pool: &sqlx::PgPool, sql: &str) -> Vec<String> {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *tx)
        .await
        .expect("time zone");
    let rows = sqlx::query_scalar(sql)
        .fetch_all(&mut *tx)
        .await
        .expect("read rows");
    tx.commit().await.expect("commit");
    rows
}

/// Every rollup row, as text, in a fixed order.
pub(super) async fn rollup_rows(pool: &sqlx::PgPool) -> Vec<String> {
    let mut all = Vec::new();
    for table in [
        "rollup_events",
        "rollup_revenue",
        "rollup_revenue_campaigns",
        "rollup_demographics",
    ] {
        let sql = format!("SELECT '{table} ' || row_to_json(r)::text FROM {table} r ORDER BY 1");
        all.extend(utc_rows(pool, &sql).await);
    }
    all
}

pub(super) async fn partitions(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("list partitions")
}

pub(super) async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// `partitions()` filtered to the months of `times` (the migration also
/// makes the current and next month).
pub(super) fn partition_names(times: impl IntoIterator<Item = DateTime<Utc>>) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = times
        .into_iter()
        .map(|t| t.format("events_y%Ym%m").to_string())
        .collect();
    names.into_iter().collect()
}

pub(super) fn only(mut all: Vec<String>, wanted: &[String]) -> Vec<String> {
    all.retain(|p| wanted.contains(p));
    all
}
