//! `GET /api/v1/dead-letters` and `GET /api/v1/dead-letters/summary`: the
//! refused events of `dead_letters`, listed newest first with cursor
//! pagination, or counted by stage, source, reason field and message.
//!
//! Dead letters have no event time (many were refused precisely because
//! theirs was missing or invalid), so the window filters `received_at`, when
//! the pipeline stored the refusal.
use crate::{
    error::{ApiError, ErrorBody},
    params::{self, Checker, Window},
    reports::{snapshot, AppState},
};
use axum::{
    extract::{RawQuery, State},
    Json,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Default page size of the list.
pub const DEFAULT_LIMIT: i64 = 100;
/// `raw` is cut to this many characters in the list (`rawTruncated` says so).
pub const RAW_MAX_CHARS: i32 = 65_536;
/// Length of the summary's `byField` and `byMessage` lists.
pub const TOP: i64 = 50;

/// Query parameters of the dead-letters list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// Only this stage: `gateway` (envelope check), `plugin` (the source
    /// plugin's validation) or `delivery` (kept failing); 1 to 128
    /// characters.
    #[param(example = "plugin")]
    pub stage: Option<String>,
    /// Only this source, exactly as stored (1 to 128 characters: a gateway
    /// refusal may carry a source no plugin serves).
    #[param(example = "facebook")]
    pub source: Option<String>,
    /// Only dead letters with at least one reason on this field (1 to 128
    /// characters).
    #[param(example = "occurredAt")]
    pub field: Option<String>,
    /// Only dead letters refused by this plugin version (1 to 128
    /// characters).
    #[param(example = "1.2.0")]
    pub plugin_version: Option<String>,
    /// Window start, inclusive, on `receivedAt` (when the refusal was
    /// stored; dead letters have no trusted event time): an RFC 3339
    /// date-time (percent-encode `+` as `%2B`) or a date (from its start,
    /// UTC). Default: all time.
    #[param(example = "2024-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// Window end on `receivedAt`: a date-time is exclusive; a date covers
    /// that whole day (UTC). Default: all time.
    #[param(example = "2024-01-31")]
    pub to: Option<String>,
    /// Page size, 1 to 1000. Default 100.
    #[param(example = "100")]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page (with the same filters).
    pub cursor: Option<String>,
}

/// Query parameters of the dead-letters summary.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Only this stage (`gateway`, `plugin`, `delivery`).
    #[param(example = "plugin")]
    pub stage: Option<String>,
    /// Only this source, exactly as stored.
    #[param(example = "facebook")]
    pub source: Option<String>,
    /// Only dead letters with at least one reason on this field.
    #[param(example = "occurredAt")]
    pub field: Option<String>,
    /// Only dead letters refused by this plugin version.
    #[param(example = "1.2.0")]
    pub plugin_version: Option<String>,
    /// Window start, inclusive, on `receivedAt` (as in the list).
    #[param(example = "2024-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// Window end on `receivedAt` (as in the list).
    #[param(example = "2024-01-31")]
    pub to: Option<String>,
}

/// One page of dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    /// By `receivedAt` descending, then `id` descending.
    pub items: Vec<DeadLetterItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One refused event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterItem {
    pub id: i64,
    /// `gateway`, `plugin` or `delivery`.
    pub stage: String,
    pub source: Option<String>,
    pub event_id: Option<String>,
    /// Why it was refused, as stored.
    #[schema(value_type = Vec<Reason>)]
    pub reasons: serde_json::Value,
    /// The event as received, cut to its first 65 536 characters.
    pub raw: String,
    /// Whether `raw` was cut.
    pub raw_truncated: bool,
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub correlation_id: Option<String>,
    /// When the refusal was stored, UTC.
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// One reason a dead letter was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reason {
    /// The offending field (a JSON path such as `properties.age`, or a
    /// pseudo-field such as `envelope`).
    pub field: String,
    pub message: String,
}

/// Dead-letter counts over the filters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSummary {
    pub total: i64,
    /// Dead letters per stage (absent = 0).
    pub by_stage: BTreeMap<String, i64>,
    /// Dead letters per source (absent = 0; letters without a source are
    /// only in `total`).
    pub by_source: BTreeMap<String, i64>,
    /// The 50 fields most dead letters have a reason on (a letter counts
    /// once per field), by count descending, then field.
    pub by_field: Vec<FieldCount>,
    /// The 50 messages most dead letters have a reason with (a letter counts
    /// once per message), by count descending, then message.
    pub by_message: Vec<MessageCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldCount {
    pub field: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageCount {
    pub message: String,
    pub count: i64,
}

/// Validated filters (both endpoints).
#[derive(Debug)]
struct Filters {
    window: Window,
    stage: Option<String>,
    source: Option<String>,
    field: Option<String>,
    plugin_version: Option<String>,
}

impl Filters {
    fn check(
        c: &mut Checker,
        stage: Option<&str>,
        source: Option<&str>,
        field: Option<&str>,
        plugin_version: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Option<Self> {
        let window = params::window(c, from, to);
        let stage = c.optional("stage", stage, params::identifier);
        let source = c.optional("source", source, params::identifier);
        let field = c.optional("field", field, params::identifier);
        let plugin_version = c.optional("pluginVersion", plugin_version, params::identifier);
        Some(Self {
            window: window?,
            stage,
            source,
            field,
            plugin_version,
        })
    }

    /// ` AND ...` for the filters given.
    fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if let Some(f) = self.window.from {
            qb.push(" AND received_at >= ").push_bind(f);
        }
        if let Some(t) = self.window.to {
            qb.push(" AND received_at < ").push_bind(t);
        }
        if let Some(s) = &self.stage {
            qb.push(" AND stage = ").push_bind(s.clone());
        }
        if let Some(s) = &self.source {
            qb.push(" AND source = ").push_bind(s.clone());
        }
        if let Some(f) = &self.field {
            // Containment, so the GIN index on reasons can answer it.
            qb.push(" AND reasons @> jsonb_build_array(jsonb_build_object('field', ")
                .push_bind(f.clone())
                .push("::text))");
        }
        if let Some(v) = &self.plugin_version {
            qb.push(" AND plugin_version = ").push_bind(v.clone());
        }
    }
}

/// A position in the list: the last item of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    received_at: DateTime<Utc>,
    id: i64,
}

impl Cursor {
    fn encode(self) -> String {
        let text = format!("{}.{}", self.received_at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(value: &str) -> Result<Self, String> {
        let message = || "not a cursor returned by this endpoint".to_string();
        // Canonical base64url only: padding or stray bits are refused.
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| message())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| message())?;
        let (micros, id) = text.split_once('.').ok_or_else(message)?;
        let micros: i64 = micros.parse().map_err(|_| message())?;
        let id: i64 = id.parse().map_err(|_| message())?;
        let received_at = DateTime::from_timestamp_micros(micros).ok_or_else(message)?;
        Ok(Self { received_at, id })
    }
}

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
    let page = list(&mut tx, &filters, limit, cursor).await?;
    tx.commit().await?;
    Ok(Json(page))
}

type ItemRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    serde_json::Value,
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
);

async fn list(
    conn: &mut PgConnection,
    f: &Filters,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<DeadLetterPage, sqlx::Error> {
    let mut qb = QueryBuilder::new("SELECT id, stage, source, event_id, reasons, left(raw, ");
    qb.push_bind(RAW_MAX_CHARS)
        .push("), length(raw) > ")
        .push_bind(RAW_MAX_CHARS)
        .push(
            ", plugin_name, plugin_version, correlation_id, received_at \
             FROM dead_letters WHERE true",
        );
    f.push(&mut qb);
    if let Some(c) = cursor {
        // A row comparison: a backward range scan of (received_at, id).
        qb.push(" AND (received_at, id) < (")
            .push_bind(c.received_at)
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    // One more than the page: whether there is a next page.
    qb.push(" ORDER BY received_at DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    let mut rows: Vec<ItemRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(
            Cursor {
                received_at: last.10,
                id: last.0,
            }
            .encode(),
        ),
        _ => None,
    };
    let items = rows
        .into_iter()
        .map(
            |(
                id,
                stage,
                source,
                event_id,
                reasons,
                raw,
                raw_truncated,
                plugin_name,
                plugin_version,
                correlation_id,
                received_at,
            )| DeadLetterItem {
                id,
                stage,
                source,
                event_id,
                reasons,
                raw,
                raw_truncated,
                plugin_name,
                plugin_version,
                correlation_id,
                received_at: params::format_time(received_at),
            },
        )
        .collect();
    Ok(DeadLetterPage { items, next_cursor })
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
    let summary = summary(&mut tx, &filters).await?;
    tx.commit().await?;
    Ok(Json(summary))
}

async fn summary(conn: &mut PgConnection, f: &Filters) -> Result<DeadLetterSummary, sqlx::Error> {
    let mut qb = QueryBuilder::new("SELECT stage, source, count(*) FROM dead_letters WHERE true");
    f.push(&mut qb);
    qb.push(" GROUP BY 1, 2");
    let groups: Vec<(String, Option<String>, i64)> =
        qb.build_query_as().fetch_all(&mut *conn).await?;
    let mut total = 0;
    let mut by_stage = BTreeMap::new();
    let mut by_source = BTreeMap::new();
    for (stage, source, n) in groups {
        total += n;
        *by_stage.entry(stage).or_insert(0) += n;
        if let Some(s) = source {
            *by_source.entry(s).or_insert(0) += n;
        }
    }
    let by_field = top(conn, f, "field")
        .await?
        .into_iter()
        .map(|(field, count)| FieldCount { field, count })
        .collect();
    let by_message = top(conn, f, "message")
        .await?
        .into_iter()
        .map(|(message, count)| MessageCount { message, count })
        .collect();
    Ok(DeadLetterSummary {
        total,
        by_stage,
        by_source,
        by_field,
        by_message,
    })
}

/// The [`TOP`] values of the reasons' `key` (`field` or `message`, a
/// constant) by how many dead letters have them, ties in byte order.
async fn top(
    conn: &mut PgConnection,
    f: &Filters,
    key: &'static str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut qb = QueryBuilder::new("SELECT v, count(*) FROM dead_letters d CROSS JOIN LATERAL (");
    // Distinct per letter; a malformed (non-array) reasons counts nothing.
    qb.push(format!(
        "SELECT DISTINCT r ->> '{key}' AS v FROM jsonb_array_elements(\
         CASE WHEN jsonb_typeof(d.reasons) = 'array' THEN d.reasons ELSE '[]' END) AS r \
         WHERE jsonb_typeof(r -> '{key}') = 'string'"
    ));
    qb.push(") AS k WHERE true");
    f.push(&mut qb);
    qb.push(" GROUP BY v ORDER BY 2 DESC, v COLLATE \"C\" LIMIT ")
        .push_bind(TOP);
    qb.build_query_as().fetch_all(&mut *conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            received_at: DateTime::from_timestamp_micros(1_704_067_200_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "x",
            "MTIz",
            "aGVsbG9=",
            &URL_SAFE_NO_PAD.encode(b"1.x"),
            &URL_SAFE_NO_PAD.encode(b"a.1"),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
