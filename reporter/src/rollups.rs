//! Query planning over the rollup tables (see
//! `migrations/20260101000002_rollups.sql`).
//!
//! A rollup row holds the exact aggregate of the events in one UTC-aligned
//! bucket `[bucket, bucket + width)`. A window `[from, to)` is split into
//! the largest whole buckets that fit (days, then hours, then ten-minute or
//! minute buckets) and two sub-bucket edges read from `events` itself. The
//! pieces are disjoint and cover the window exactly, so summing them equals
//! aggregating the raw rows: a 30-day report reads ~30 day rows per key plus
//! at most a few hundred finer rows and two short raw edges, whatever the
//! data volume.
use crate::params::Window;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

/// Buckets in every rollup table are aligned on this instant (see the
/// migration); all widths divide a day, so it is also midnight-aligned.
pub const ORIGIN: &str = "timestamptz '2000-01-01 00:00:00+00'";

/// A rollup table and the bucket widths (seconds) it keeps, coarsest first;
/// each width divides the previous one.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub table: &'static str,
    pub widths: &'static [i64],
}

/// Counts by source, funnel stage and event type.
pub const EVENTS: Family = Family {
    table: "rollup_events",
    widths: &[86_400, 3_600, 60],
};

/// Revenue by source.
pub const REVENUE: Family = Family {
    table: "rollup_revenue",
    widths: &[86_400, 3_600, 60],
};

/// Revenue by source and campaign: no minute level, campaign ids can be
/// nearly as many as events.
pub const CAMPAIGNS: Family = Family {
    table: "rollup_revenue_campaigns",
    widths: &[86_400, 3_600, 600],
};

/// Counts per demographic value: no minute level, for the same reason.
pub const DEMOGRAPHICS: Family = Family {
    table: "rollup_demographics",
    widths: &[86_400, 3_600, 600],
};

impl Family {
    /// The widths usable for a timeline of `granularity` seconds: those whose
    /// buckets each fall inside one timeline bucket. `None`: all of them.
    pub fn widths_for(&self, granularity: Option<i64>) -> Vec<i64> {
        self.widths
            .iter()
            .copied()
            .filter(|w| granularity.is_none_or(|g| *w <= g && g % *w == 0))
            .collect()
    }
}

/// One part of a planned window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Rollup rows of `width` with `bucket` in `span` (whole buckets only).
    Rollup { width: i64, span: Window },
    /// Raw events with `occurred_at` in `span`.
    Raw(Window),
}

/// Splits `window` into disjoint pieces covering it exactly: whole buckets of
/// the coarsest width in the middle, finer widths towards the edges, raw
/// events for what no bucket covers. `widths` must be coarsest first, each
/// dividing the previous.
pub fn plan(window: Window, widths: &[i64]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    plan_into(window, widths, &mut pieces);
    pieces
}

fn plan_into(window: Window, widths: &[i64], out: &mut Vec<Piece>) {
    if window.is_empty() {
        return;
    }
    let Some((&width, finer)) = widths.split_first() else {
        out.push(Piece::Raw(window));
        return;
    };
    // Whole buckets inside the window: [ceil(from), floor(to)). `None` keeps
    // meaning unbounded; an unrepresentable bound skips this width.
    let start = match window.from {
        None => None,
        Some(f) => match align(f, width, true) {
            Some(a) => Some(a),
            None => return plan_into(window, finer, out),
        },
    };
    let end = match window.to {
        None => None,
        Some(t) => match align(t, width, false) {
            Some(b) => Some(b),
            None => return plan_into(window, finer, out),
        },
    };
    let middle = Window {
        from: start,
        to: end,
    };
    if let (Some(a), Some(b)) = (start, end) {
        if a >= b {
            return plan_into(window, finer, out);
        }
    }
    if let (Some(f), Some(a)) = (window.from, start) {
        plan_into(
            Window {
                from: Some(f),
                to: Some(a),
            },
            finer,
            out,
        );
    }
    out.push(Piece::Rollup {
        width,
        span: middle,
    });
    if let (Some(b), Some(t)) = (end, window.to) {
        plan_into(
            Window {
                from: Some(b),
                to: Some(t),
            },
            finer,
            out,
        );
    }
}

/// Rounds `t` up (or down) to a multiple of `width` seconds since the epoch
/// (the same grid as the migration's origin, which is a whole day after it).
fn align(t: DateTime<Utc>, width: i64, up: bool) -> Option<DateTime<Utc>> {
    let width_us = width.checked_mul(1_000_000)?;
    let us = t.timestamp_micros();
    let down = us.div_euclid(width_us).checked_mul(width_us)?;
    let aligned = if up && down != us {
        down.checked_add(width_us)?
    } else {
        down
    };
    DateTime::from_timestamp_micros(aligned)
}

/// Appends ` AND <column> >= $a AND <column> < $b` for the bounded sides.
pub fn push_range(qb: &mut QueryBuilder<'_, Postgres>, column: &'static str, span: Window) {
    if let Some(from) = span.from {
        qb.push(format_args!(" AND {column} >= "));
        qb.push_bind(from);
    }
    if let Some(to) = span.to {
        qb.push(format_args!(" AND {column} < "));
        qb.push_bind(to);
    }
}

/// Appends the pieces as a `UNION ALL` of subqueries written by `rollup`
/// (given the width and span of rollup rows) and `raw` (given a raw span).
/// Table and column names are constants of this crate; every value is bound.
pub fn push_union<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    pieces: &[Piece],
    mut rollup: impl FnMut(&mut QueryBuilder<'a, Postgres>, i64, Window),
    mut raw: impl FnMut(&mut QueryBuilder<'a, Postgres>, Window),
) {
    for (i, piece) in pieces.iter().enumerate() {
        qb.push(if i == 0 { "(" } else { " UNION ALL (" });
        match *piece {
            Piece::Rollup { width, span } => rollup(qb, width, span),
            Piece::Raw(span) => raw(qb, span),
        }
        qb.push(")");
    }
}

/// `date_bin` of `column` to timeline buckets of `granularity` seconds.
pub fn push_bucket(qb: &mut QueryBuilder<'_, Postgres>, granularity: i64, column: &'static str) {
    qb.push("date_bin(make_interval(secs => ");
    // Granularity is a validated enum, bound anyway like every other value.
    qb.push_bind(granularity as f64);
    qb.push(format_args!("), {column}, {ORIGIN})"));
}

#[cfg(test)]
mod tests;
