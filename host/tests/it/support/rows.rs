//! Rows the tests write through the collector's own insert, bypassing the
//! gateway and the plugins: a minimal valid event and its plugin's lineage.
use chrono::{DateTime, Utc};
use events_host::plugins::{FunnelStage, Identity, Lineage, NormalizedEvent};

/// A top-funnel Facebook event with only the required fields.
pub fn facebook_event(id: &str, t: DateTime<Utc>, event_type: &str) -> NormalizedEvent {
    NormalizedEvent {
        event_id: id.into(),
        source: "facebook".into(),
        occurred_at: t,
        funnel_stage: FunnelStage::Top,
        event_type: event_type.into(),
        user_id: "u".into(),
        revenue: None,
        campaign_id: None,
        age: None,
        gender: None,
        country: None,
        city: None,
        followers: None,
        device: None,
    }
}

/// The lineage of a stand-in `facebook@1.0.0` plugin.
pub fn facebook_lineage() -> Lineage {
    Lineage {
        identity: Identity {
            name: "facebook".into(),
            version: "1.0.0".into(),
            source: "facebook".into(),
        },
        digest: Lineage::digest_of(b"facebook"),
        wit_version: "0.2.0".into(),
    }
}
