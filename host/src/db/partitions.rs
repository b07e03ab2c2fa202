//! Monthly partitions of `events` (see
//! `migrations/20270101000001_partitioned_events.sql`). There is no DEFAULT
//! partition: before a batch is written, every month it touches must have
//! one. `events_ensure_partitions` creates a missing month (`CREATE TABLE …
//! (LIKE events INCLUDING ALL)` + `ATTACH PARTITION`, under an advisory
//! lock) in a short transaction of its own; months already known to exist
//! are remembered per database so a batch normally costs no round trip.
//!
//! The memory can go stale (retention in another collector dropped a month):
//! the insert then fails with "no partition of relation" (SQLSTATE 23514),
//! a data error, and the writer calls [`forget_partitions`] before retrying
//! row by row, which asks the database again.
//!
//! Bounds: months of years 0000-9999 only (the range the plugin kit parses,
//! RFC 3339 four-digit years), and none before the retention horizon; the
//! database refuses others as data errors (22008, 23514), so only the event
//! concerned becomes a dead letter.
use chrono::{DateTime, Datelike, Utc};
use sqlx::PgPool;
use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard, OnceLock},
};

/// Months (`year * 12 + month0`) known to have a partition, per database.
fn known() -> MutexGuard<'static, HashMap<String, HashSet<i32>>> {
    static KNOWN: OnceLock<Mutex<HashMap<String, HashSet<i32>>>> = OnceLock::new();
    KNOWN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn database_key(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or_default()
    )
}

/// The UTC month of `t` as one number (chrono years are astronomical, as
/// the partition names are).
pub fn month_key(t: DateTime<Utc>) -> i32 {
    t.year() * 12 + t.month0() as i32
}

/// Makes sure every month of `occurred` has a partition of `events`.
/// A data error (22008, 23514) means some event's month is refused.
pub async fn ensure_partitions(
    pool: &PgPool,
    occurred: impl IntoIterator<Item = DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    let db = database_key(pool);
    let mut months = Vec::new();
    let mut times = Vec::new();
    {
        let known = known();
        let known = known.get(&db);
        for t in occurred {
            let m = month_key(t);
            if !known.is_some_and(|k| k.contains(&m)) && !months.contains(&m) {
                months.push(m);
                times.push(t);
            }
        }
    }
    if times.is_empty() {
        return Ok(());
    }
    // Autocommit: its own transaction, committed before the batch's begins.
    sqlx::query("SELECT events_ensure_partitions($1)")
        .bind(&times)
        .execute(pool)
        .await?;
    known().entry(db).or_default().extend(months);
    Ok(())
}

/// Forgets which months exist (after a partition went missing, or
/// retention dropped some): the next [`ensure_partitions`] asks again.
pub fn forget_partitions(pool: &PgPool) {
    known().remove(&database_key(pool));
}
