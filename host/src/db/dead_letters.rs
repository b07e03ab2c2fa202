//! Dead letters: every refused event, kept with its reasons.
use sqlx::{Postgres, Transaction};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// `gateway`, `plugin` or `delivery`.
    pub stage: String,
    pub source: Option<String>,
    pub event_id: Option<String>,
    /// `[{"field": ..., "message": ...}]`
    pub reasons: serde_json::Value,
    pub raw: String,
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub correlation_id: Option<String>,
    /// Identifies the message it came from; a redelivery is not stored twice.
    pub dedup_key: Option<String>,
}

/// Inserts dead letters in one statement; returns how many were new.
pub async fn insert_dead_letters(
    tx: &mut Transaction<'_, Postgres>,
    letters: &[DeadLetter],
) -> Result<u64, sqlx::Error> {
    if letters.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&DeadLetter) -> Option<&str>| letters.iter().map(f).collect::<Vec<_>>();
    let reasons: Vec<String> = letters.iter().map(|l| l.reasons.to_string()).collect();
    let raw: Vec<&str> = letters.iter().map(|l| l.raw.as_str()).collect();
    let result = sqlx::query(
        "INSERT INTO dead_letters (stage, source, event_id, reasons, raw, plugin_name, plugin_version, correlation_id, dedup_key)
         SELECT stage, source, event_id, reasons::jsonb, raw, plugin_name, plugin_version, correlation_id, dedup_key
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
              AS t(stage, source, event_id, reasons, raw, plugin_name, plugin_version, correlation_id, dedup_key)
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(col(|l| Some(l.stage.as_str())))
    .bind(col(|l| l.source.as_deref()))
    .bind(col(|l| l.event_id.as_deref()))
    .bind(&reasons)
    .bind(&raw)
    .bind(col(|l| l.plugin_name.as_deref()))
    .bind(col(|l| l.plugin_version.as_deref()))
    .bind(col(|l| l.correlation_id.as_deref()))
    .bind(col(|l| l.dedup_key.as_deref()))
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}
