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
    /// Lowercase hex SHA-256 of the plugin's component file (plugin-stage
    /// letters); `None` where no plugin ran.
    #[serde(default)]
    pub plugin_digest: Option<String>,
    /// The WIT contract version the plugin spoke; `None` where no plugin ran.
    #[serde(default)]
    pub wit_version: Option<String>,
    pub correlation_id: Option<String>,
    /// Identifies the message it came from; a redelivery is not stored twice.
    pub dedup_key: Option<String>,
}

/// Longest `event_id` kept in a dead letter's own column (indexed); the
/// full value stays in `raw`.
pub const MAX_ID_CHARS: usize = 256;

impl DeadLetter {
    /// A copy PostgreSQL can always store: NUL characters (which `text` and
    /// `jsonb` refuse) written as the six characters `\u0000`, the id cut to
    /// [`MAX_ID_CHARS`].
    pub fn sanitized(&self) -> Self {
        let mut d = self.clone();
        for field in [
            &mut d.source,
            &mut d.event_id,
            &mut d.plugin_name,
            &mut d.plugin_version,
            &mut d.plugin_digest,
            &mut d.wit_version,
            &mut d.correlation_id,
            &mut d.dedup_key,
        ] {
            if let Some(v) = field.as_mut() {
                escape_nul(v);
            }
        }
        if let Some(id) = d.event_id.as_mut() {
            if let Some((cut, _)) = id.char_indices().nth(MAX_ID_CHARS) {
                id.truncate(cut);
            }
        }
        escape_nul(&mut d.stage);
        escape_nul(&mut d.raw);
        escape_nul_in(&mut d.reasons);
        d
    }
}

fn escape_nul(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\\u0000");
    }
}

fn escape_nul_in(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => escape_nul(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(escape_nul_in),
        serde_json::Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                *o = std::mem::take(o)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\\u0000"), v))
                    .collect();
            }
            o.values_mut().for_each(escape_nul_in)
        }
        _ => {}
    }
}

/// Inserts dead letters (sanitized) in one statement; returns how many were
/// new.
pub async fn insert_dead_letters(
    tx: &mut Transaction<'_, Postgres>,
    letters: &[DeadLetter],
) -> Result<u64, sqlx::Error> {
    if letters.is_empty() {
        return Ok(0);
    }
    let letters: Vec<DeadLetter> = letters.iter().map(DeadLetter::sanitized).collect();
    let letters = letters.as_slice();
    let col = |f: fn(&DeadLetter) -> Option<&str>| letters.iter().map(f).collect::<Vec<_>>();
    let reasons: Vec<String> = letters.iter().map(|l| l.reasons.to_string()).collect();
    let raw: Vec<&str> = letters.iter().map(|l| l.raw.as_str()).collect();
    let result = sqlx::query(
        "INSERT INTO dead_letters (stage, source, event_id, reasons, raw, plugin_name, plugin_version,
                                   plugin_digest, wit_version, correlation_id, dedup_key)
         SELECT stage, source, event_id, reasons::jsonb, raw, plugin_name, plugin_version,
                plugin_digest, wit_version, correlation_id, dedup_key
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::text[], $11::text[])
              AS t(stage, source, event_id, reasons, raw, plugin_name, plugin_version,
                   plugin_digest, wit_version, correlation_id, dedup_key)
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(col(|l| Some(l.stage.as_str())))
    .bind(col(|l| l.source.as_deref()))
    .bind(col(|l| l.event_id.as_deref()))
    .bind(&reasons)
    .bind(&raw)
    .bind(col(|l| l.plugin_name.as_deref()))
    .bind(col(|l| l.plugin_version.as_deref()))
    .bind(col(|l| l.plugin_digest.as_deref()))
    .bind(col(|l| l.wit_version.as_deref()))
    .bind(col(|l| l.correlation_id.as_deref()))
    .bind(col(|l| l.dedup_key.as_deref()))
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_letters_have_no_nul_and_a_bounded_id() {
        let d = DeadLetter {
            stage: "plugin".into(),
            source: Some("face\0book".into()),
            event_id: Some(format!("a\0{}", "x".repeat(8000))),
            reasons: serde_json::json!([{"field": "k\0", "message": "got \"\0\""}]),
            raw: "{\"eventId\":\"a\\u0000\"}\0".into(),
            plugin_name: None,
            plugin_version: None,
            plugin_digest: None,
            wit_version: None,
            correlation_id: None,
            dedup_key: Some("m:0".into()),
        };
        let s = d.sanitized();
        fn has_nul(v: &serde_json::Value) -> bool {
            match v {
                serde_json::Value::String(s) => s.contains('\0'),
                serde_json::Value::Array(a) => a.iter().any(has_nul),
                serde_json::Value::Object(o) => {
                    o.keys().any(|k| k.contains('\0')) || o.values().any(has_nul)
                }
                _ => false,
            }
        }
        assert!(has_nul(&serde_json::to_value(&d).unwrap()));
        assert!(!has_nul(&serde_json::to_value(&s).unwrap()), "{s:?}");
        assert!(!s.raw.contains('\0') && s.raw.ends_with("\\u0000"));
        assert_eq!(s.event_id.as_ref().unwrap().chars().count(), MAX_ID_CHARS);
        assert_eq!(s.source.as_deref(), Some("face\\u0000book"));
        assert_eq!(s.reasons[0]["message"], "got \"\\u0000\"");
        assert_eq!(s.reasons[0]["field"], "k\\u0000");
    }
}
