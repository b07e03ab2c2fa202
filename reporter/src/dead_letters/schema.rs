//! The query parameters and JSON bodies of the dead-letters endpoints, as
//! the OpenAPI document describes them.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

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
    /// Lowercase hex SHA-256 of the plugin component file that refused it;
    /// null where no plugin ran (gateway and most delivery letters) and for
    /// letters stored before lineage was recorded.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub plugin_digest: Option<String>,
    /// The WIT contract version that plugin spoke (`0.2.0`, `0.1.0`); null
    /// as `pluginDigest` is.
    #[schema(example = "0.2.0")]
    pub wit_version: Option<String>,
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
