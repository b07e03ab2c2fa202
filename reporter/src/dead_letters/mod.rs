//! `GET /api/v1/dead-letters` and `GET /api/v1/dead-letters/summary`: the
//! refused events of `dead_letters`, listed newest first with cursor
//! pagination, or counted by stage, source, reason field and message.
//!
//! Dead letters have no event time (many were refused precisely because
//! theirs was missing or invalid), so the window filters `received_at`, when
//! the pipeline stored the refusal.
use crate::{
    error::{ApiError, ErrorBody},
    params::{self, Checker},
    reports::{snapshot, AppState},
};
use axum::{
    extract::{RawQuery, State},
    Json,
};
use cursor::Cursor;
use filters::Filters;

mod cursor;
mod filters;
mod queries;
mod schema;

pub use schema::{
    DeadLetterItem, DeadLetterPage, DeadLetterSummary, DeadLettersQuery, FieldCount, MessageCount,
    Reason, SummaryQuery,
};

/// Default page size of the list.
pub const DEFAULT_LIMIT: i64 = 100;
/// `raw` is cut to this many characters in the list (`rawTruncated` says so).
pub const RAW_MAX_CHARS: i32 = 65_536;
/// Length of the summary's `byField` and `byMessage` lists.
pub const TOP: i64 = 50;

#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    tag = "dead-letters",
    params(DeadLettersQuery),
    responses(
        (status = 200, description = "A page of dead letters, newest first", body = DeadLetterPage),
        (status = 400, description = "An invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when required)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn list_handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let q: DeadLettersQuery = params::extract(query.as_deref())?;
    let mut c = Checker::default();
    let filters = Filters::check(
        &mut c,
        q.stage.as_deref(),
        q.source.as_deref(),
        q.field.as_deref(),
        q.plugin_version.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
    );
    let limit = c
        .optional("limit", q.limit.as_deref(), params::limit)
        .unwrap_or(DEFAULT_LIMIT);
    let cursor = c.optional("cursor", q.cursor.as_deref(), Cursor::decode);
    c.finish()?;
    let filters = filters.ok_or_else(|| ApiError::InvalidParams(Vec::new()))?;
    let mut tx = snapshot(&state.pool).await?;
    let page = queries::list(&mut tx, &filters, limit, cursor).await?;
    tx.commit().await?;
    Ok(Json(page))
}

#[utoipa::path(
    get,
    path = "/api/v1/dead-letters/summary",
    tag = "dead-letters",
    params(SummaryQuery),
    responses(
        (status = 200, description = "Dead-letter counts", body = DeadLetterSummary),
        (status = 400, description = "An invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when required)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn summary_handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<DeadLetterSummary>, ApiError> {
    let q: SummaryQuery = params::extract(query.as_deref())?;
    let mut c = Checker::default();
    let filters = Filters::check(
        &mut c,
        q.stage.as_deref(),
        q.source.as_deref(),
        q.field.as_deref(),
        q.plugin_version.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
    );
    c.finish()?;
    let filters = filters.ok_or_else(|| ApiError::InvalidParams(Vec::new()))?;
    // One snapshot: the total equals the sum of byStage.
    let mut tx = snapshot(&state.pool).await?;
    let summary = queries::summary(&mut tx, &filters).await?;
    tx.commit().await?;
    Ok(Json(summary))
}
