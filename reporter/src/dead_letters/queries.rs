//! The SQL behind the two endpoints: one page of the list and the summary's
//! counts.
use super::{
    cursor::Cursor, filters::Filters, DeadLetterItem, DeadLetterPage, DeadLetterSummary,
    FieldCount, MessageCount, RAW_MAX_CHARS, TOP,
};
use crate::params;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, QueryBuilder};
use std::collections::BTreeMap;

/// One row of the list, as selected.
#[derive(sqlx::FromRow)]
struct ItemRow {
    id: i64,
    stage: String,
    source: Option<String>,
    event_id: Option<String>,
    reasons: serde_json::Value,
    raw: String,
    raw_truncated: bool,
    plugin_name: Option<String>,
    plugin_version: Option<String>,
    plugin_digest: Option<String>,
    wit_version: Option<String>,
    correlation_id: Option<String>,
    received_at: DateTime<Utc>,
}

impl From<ItemRow> for DeadLetterItem {
    fn from(r: ItemRow) -> Self {
        Self {
            id: r.id,
            stage: r.stage,
            source: r.source,
            event_id: r.event_id,
            reasons: r.reasons,
            raw: r.raw,
            raw_truncated: r.raw_truncated,
            plugin_name: r.plugin_name,
            plugin_version: r.plugin_version,
            plugin_digest: r.plugin_digest,
            wit_version: r.wit_version,
            correlation_id: r.correlation_id,
            received_at: params::format_time(r.received_at),
        }
    }
}

/// The page after `cursor` (the first without one), `limit` items at most.
pub(super) async fn list(
    conn: &mut PgConnection,
    f: &Filters,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<DeadLetterPage, sqlx::Error> {
    let mut qb = QueryBuilder::new("SELECT id, stage, source, event_id, reasons, left(raw, ");
    qb.push_bind(RAW_MAX_CHARS)
        .push(") AS raw, length(raw) > ")
        .push_bind(RAW_MAX_CHARS)
        .push(
            " AS raw_truncated, plugin_name, plugin_version, plugin_digest, wit_version, \
             correlation_id, received_at FROM dead_letters WHERE true",
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
                received_at: last.received_at,
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    let items = rows.into_iter().map(DeadLetterItem::from).collect();
    Ok(DeadLetterPage { items, next_cursor })
}

/// Counts by stage and source, and the most frequent reason fields and
/// messages.
pub(super) async fn summary(
    conn: &mut PgConnection,
    f: &Filters,
) -> Result<DeadLetterSummary, sqlx::Error> {
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
