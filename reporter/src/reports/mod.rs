//! The three reports. Each module parses its parameters, plans its queries
//! over the rollups (see [`crate::rollups`]) and shapes the JSON answer.
pub mod demographics;
pub mod events;
pub mod revenue;

use crate::params::{self, Checker, Granularity, Window};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// What the report handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

/// The parameters every report takes.
#[derive(Debug, Clone)]
pub struct Common {
    pub window: Window,
    pub source: Option<String>,
}

impl Common {
    pub fn check(
        checker: &mut Checker,
        from: Option<&str>,
        to: Option<&str>,
        source: Option<&str>,
    ) -> Option<Self> {
        let window = params::window(checker, from, to);
        let source = checker.optional("source", source, params::source);
        Some(Self {
            window: window?,
            source,
        })
    }

    /// The window's bounds as the answers show them (`null` when open).
    pub fn bounds(&self) -> (Option<String>, Option<String>) {
        (
            self.window.from.map(params::format_time),
            self.window.to.map(params::format_time),
        )
    }
}

/// Opens the read-only snapshot a report runs in: every query of one report
/// sees the same data, so totals always equal the sum of their parts even
/// while collectors insert.
pub async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    // Report queries are small but their cost estimates over many union
    // pieces are not: measured at 10 M events, the planner chose parallel
    // workers whose startup cost ~15 ms for 0.2 ms of work, and JIT would
    // cost more still. Both off. The timeout bounds what a pathological
    // request (minute buckets over years, say) may cost the database.
    sqlx::query(
        "SELECT set_config('jit', 'off', true), \
                set_config('max_parallel_workers_per_gather', '0', true), \
                set_config('statement_timeout', '30s', true)",
    )
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// The timeline granularity: the requested one, or the finest giving at most
/// 500 buckets over the window, an open side replaced by the stored data's
/// first or last event.
pub async fn granularity(
    conn: &mut PgConnection,
    requested: Option<Granularity>,
    window: Window,
) -> Result<Granularity, sqlx::Error> {
    if let Some(g) = requested {
        return Ok(g);
    }
    let (start, end) = match (window.from, window.to) {
        (Some(f), Some(t)) => (f, t),
        (from, to) => {
            // Two index probes on events_occurred_at_idx.
            let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
                sqlx::query_as("SELECT min(occurred_at), max(occurred_at) FROM events")
                    .fetch_one(&mut *conn)
                    .await?;
            let (Some(first), Some(last)) = (first, last) else {
                return Ok(Granularity::Minute);
            };
            let after_last = last + TimeDelta::microseconds(1);
            (from.unwrap_or(first), to.unwrap_or(after_last))
        }
    };
    Ok(Granularity::finest_for(start, end))
}

/// SQL for money as the answers show it: a decimal string with exactly two
/// decimals, computed by PostgreSQL from the exact `numeric` sum `expr`, so
/// it holds at any magnitude (a Rust decimal type stops at 28 digits).
/// Rounding (half away from zero) only matters if a source ever stores
/// sub-cent amounts.
pub fn money_sql(expr: &str) -> String {
    format!("round({expr}, 2)::text")
}

/// Orders by count descending, then by name: the order of every top list.
pub fn by_count_then_name<K: Ord>(a: &(K, i64), b: &(K, i64)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}
