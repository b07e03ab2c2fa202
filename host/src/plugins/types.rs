//! Host-side types of the plugin contract, independent of the generated
//! bindings so the rest of the host never sees wasmtime types.
use chrono::{DateTime, Utc};

/// Who a plugin is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub name: String,
    pub version: String,
    pub source: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{} (source {:?})",
            self.name, self.version, self.source
        )
    }
}

/// Exactly which build of a plugin produced a row: who it says it is, the
/// SHA-256 of its component file and the WIT contract version it spoke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lineage {
    pub identity: Identity,
    /// Lowercase hex SHA-256 of the `.wasm` file's bytes (not of a cached
    /// compiled artifact).
    pub digest: String,
    /// `0.2.0`, `0.1.0`.
    pub wit_version: String,
}

impl Lineage {
    /// The lowercase hex SHA-256 of a component file's bytes.
    pub fn digest_of(component: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(component))
    }
}

pub use events_common::funnel::FunnelStage;

/// The canonical, source-independent event the reports are computed from.
/// Its raw JSON is not here: the host keeps the bytes it received and pairs
/// them with this result by index.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NormalizedEvent {
    pub event_id: String,
    pub source: String,
    pub occurred_at: DateTime<Utc>,
    pub funnel_stage: FunnelStage,
    pub event_type: String,
    pub user_id: String,
    /// Exact decimal string (`^[0-9]+(\.[0-9]{1,2})?$`).
    pub revenue: Option<String>,
    pub campaign_id: Option<String>,
    pub age: Option<u32>,
    pub gender: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub followers: Option<u64>,
    pub device: Option<String>,
}

/// Why an event is invalid: a JSON path and a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

impl Issue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The plugin's verdict on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventResult {
    Ok(Box<NormalizedEvent>),
    Rejected(Vec<Issue>),
}

pub use events_common::names::is_valid_source_name;

/// True when `s` is an exact decimal amount: `^[0-9]+(\.[0-9]{1,2})?$`.
pub fn is_valid_amount(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| (1..=2).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        assert!(is_valid_source_name("facebook"));
        assert!(is_valid_source_name("my-src_2"));
        assert!(!is_valid_source_name(""));
        assert!(!is_valid_source_name("Facebook"));
        assert!(!is_valid_source_name("a.b"));
        assert!(!is_valid_source_name(&"a".repeat(33)));
    }

    #[test]
    fn amounts() {
        for ok in ["0", "7", "0.5", "123.45"] {
            assert!(is_valid_amount(ok), "{ok}");
        }
        for bad in ["", "-1", "1.", ".5", "1.234", "1e3", " 1", "1,5"] {
            assert!(!is_valid_amount(bad), "{bad}");
        }
    }
}
