//! `GET /api/v1/reports/events`: event counts by source, funnel stage and
//! event type, and a timeline.
use super::{by_count_then_name, granularity, snapshot, AppState, Common};
use crate::{
    error::{ApiError, ErrorBody},
    params::{self, Checker, FunnelStage, Granularity, Window},
    rollups::{self, Piece},
};
use axum::{
    extract::{RawQuery, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Query parameters of the events report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Window start, inclusive, on the event's own time: an RFC 3339
    /// date-time (`2024-01-01T10:00:00Z`; percent-encode `+` as `%2B`) or a
    /// date (`2024-01-31`, from its start, UTC). Default: all time.
    #[param(example = "2024-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// Window end: a date-time is exclusive; a date covers that whole day
    /// (UTC). Default: all time.
    #[param(example = "2024-01-31")]
    pub to: Option<String>,
    /// Only this source.
    #[param(pattern = "^[a-z0-9_-]{1,32}$", example = "facebook")]
    pub source: Option<String>,
    /// Only this funnel stage.
    #[param(value_type = Option<FunnelStage>)]
    pub funnel_stage: Option<String>,
    /// Only this event type (1 to 128 characters).
    #[param(example = "ad.view")]
    pub event_type: Option<String>,
    /// Timeline bucket size. Default: the finest of minute, hour, day giving
    /// at most 500 buckets over the window (over the stored events' span when
    /// the window is open).
    #[param(value_type = Option<Granularity>)]
    pub granularity: Option<String>,
}

/// The events report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsReport {
    /// Window start (inclusive), UTC; null when open.
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Window end (exclusive), UTC; null when open.
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub total_events: i64,
    /// Events per source (sources without events are absent).
    pub by_source: BTreeMap<String, i64>,
    /// Events per funnel stage (`top`, `bottom`; absent when zero).
    pub by_funnel_stage: BTreeMap<String, i64>,
    /// Events per (source, event type), by count descending, then source and
    /// event type.
    pub by_event_type: Vec<EventTypeCount>,
    pub timeline: CountTimeline,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeCount {
    pub source: String,
    pub event_type: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountTimeline {
    pub granularity: Granularity,
    /// UTC-aligned buckets in time order; empty buckets are omitted.
    pub buckets: Vec<CountBucket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountBucket {
    /// Bucket start, UTC.
    #[schema(format = DateTime)]
    pub start: String,
    pub count: i64,
}

/// Validated filters.
#[derive(Debug)]
struct Filters {
    common: Common,
    funnel_stage: Option<FunnelStage>,
    event_type: Option<String>,
    granularity: Option<Granularity>,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let q: EventsQuery = params::extract(query)?;
        let mut c = Checker::default();
        let common = Common::check(
            &mut c,
            q.from.as_deref(),
            q.to.as_deref(),
            q.source.as_deref(),
        );
        let funnel_stage = c.optional("funnelStage", q.funnel_stage.as_deref(), FunnelStage::parse);
        let event_type = c.optional("eventType", q.event_type.as_deref(), params::identifier);
        let granularity = c.optional("granularity", q.granularity.as_deref(), Granularity::parse);
        c.finish()?;
        let common = common.ok_or_else(|| ApiError::InvalidParams(Vec::new()))?;
        Ok(Self {
            common,
            funnel_stage,
            event_type,
            granularity,
        })
    }

    /// ` AND source = $n ...` for the filters given (same columns in
    /// `events` and `rollup_events`).
    fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if let Some(s) = &self.common.source {
            qb.push(" AND source = ").push_bind(s.clone());
        }
        if let Some(f) = self.funnel_stage {
            qb.push(" AND funnel_stage = ").push_bind(f.as_str());
        }
        if let Some(t) = &self.event_type {
            qb.push(" AND event_type = ").push_bind(t.clone());
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/events",
    tag = "reports",
    params(EventsQuery),
    responses(
        (status = 200, description = "The report", body = EventsReport),
        (status = 400, description = "An invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when required)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<EventsReport>, ApiError> {
    let filters = Filters::parse(query.as_deref())?;
    let mut tx = snapshot(&state.pool).await?;
    let report = build(&mut tx, &filters).await?;
    tx.commit().await?;
    Ok(Json(report))
}

async fn build(conn: &mut PgConnection, f: &Filters) -> Result<EventsReport, sqlx::Error> {
    let window = f.common.window;
    let granularity = granularity(conn, f.granularity, window).await?;
    let totals = totals(conn, f, window).await?;
    let buckets = timeline(conn, f, window, granularity).await?;

    let mut by_source = BTreeMap::new();
    let mut by_funnel_stage = BTreeMap::new();
    let mut by_event_type = Vec::with_capacity(totals.len());
    let mut total_events = 0;
    for (source, stage, event_type, count) in totals {
        total_events += count;
        *by_source.entry(source.clone()).or_insert(0) += count;
        *by_funnel_stage.entry(stage).or_insert(0) += count;
        // (source, type) is unique unless a source uses one type in both
        // stages: merge those.
        by_event_type.push(((source, event_type), count));
    }
    by_event_type.sort();
    by_event_type.dedup_by(|b, a| {
        let same = a.0 == b.0;
        if same {
            a.1 += b.1;
        }
        same
    });
    by_event_type.sort_by(by_count_then_name);
    let (from, to) = f.common.bounds();
    Ok(EventsReport {
        from,
        to,
        total_events,
        by_source,
        by_funnel_stage,
        by_event_type: by_event_type
            .into_iter()
            .map(|((source, event_type), count)| EventTypeCount {
                source,
                event_type,
                count,
            })
            .collect(),
        timeline: CountTimeline {
            granularity,
            buckets: buckets
                .into_iter()
                .map(|(start, count)| CountBucket {
                    start: params::format_time(start),
                    count,
                })
                .collect(),
        },
    })
}

type TotalRow = (String, String, String, i64);

/// Counts per (source, stage, type) over the window, from the coarsest
/// rollups that fit.
async fn totals(
    conn: &mut PgConnection,
    f: &Filters,
    window: Window,
) -> Result<Vec<TotalRow>, sqlx::Error> {
    let pieces = rollups::plan(window, &rollups::EVENTS.widths_for(None));
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb =
        QueryBuilder::new("SELECT source, funnel_stage, event_type, sum(n)::bigint FROM (");
    push_pieces(&mut qb, &pieces, f, None);
    qb.push(") AS p GROUP BY 1, 2, 3 HAVING sum(n) > 0");
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// Counts per timeline bucket, from rollups no coarser than the buckets.
async fn timeline(
    conn: &mut PgConnection,
    f: &Filters,
    window: Window,
    granularity: Granularity,
) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
    let g = granularity.seconds();
    let pieces = rollups::plan(window, &rollups::EVENTS.widths_for(Some(g)));
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::new("SELECT start, sum(n)::bigint FROM (");
    push_pieces(&mut qb, &pieces, f, Some(g));
    qb.push(") AS p GROUP BY 1 HAVING sum(n) > 0 ORDER BY 1");
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// The pieces as subqueries yielding `(start, n)` when `bucket` is given,
/// else `(source, funnel_stage, event_type, n)`.
fn push_pieces(
    qb: &mut QueryBuilder<'_, Postgres>,
    pieces: &[Piece],
    f: &Filters,
    bucket: Option<i64>,
) {
    rollups::push_union(
        qb,
        pieces,
        |qb, width, span| {
            qb.push("SELECT ");
            match bucket {
                Some(g) => {
                    rollups::push_bucket(qb, g, "bucket");
                    qb.push(" AS start, ");
                }
                None => {
                    qb.push("source, funnel_stage, event_type, ");
                }
            }
            qb.push("events AS n FROM rollup_events WHERE width = ")
                .push_bind(width);
            rollups::push_range(qb, "bucket", span);
            f.push(qb);
        },
        |qb, span| {
            qb.push("SELECT ");
            match bucket {
                Some(g) => {
                    rollups::push_bucket(qb, g, "occurred_at");
                    qb.push(" AS start, ");
                }
                None => {
                    qb.push("source, funnel_stage, event_type, ");
                }
            }
            qb.push("count(*) AS n FROM events WHERE true");
            rollups::push_range(qb, "occurred_at", span);
            f.push(qb);
            qb.push(" GROUP BY 1");
            if bucket.is_none() {
                qb.push(", 2, 3");
            }
        },
    );
}
