//! Generated bindings of `wit/` and their conversion into host types.
//!
//! The conversion is also where a plugin's output is checked: the host never
//! trusts a guest to respect the contract (source, timestamp, amount format,
//! integer ranges), because a bad value would otherwise fail a whole database
//! batch later.
use super::types::{EventResult, FunnelStage, Identity, Issue, NormalizedEvent};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "source-plugin",
    });
}

use generated::marketing::events::types as wit;
pub use generated::{SourcePlugin, SourcePluginPre};

impl From<wit::Identity> for Identity {
    fn from(i: wit::Identity) -> Self {
        Self {
            name: i.name,
            version: i.version,
            source: i.source,
        }
    }
}

/// Converts one result, checking it against the contract. `Err` names the
/// violation; the caller fails the whole call (a plugin that breaks the
/// contract once cannot be trusted for the rest of the batch).
pub fn convert_result(r: wit::EventResult, source: &str) -> Result<EventResult, String> {
    match r {
        wit::EventResult::Rejected(issues) => {
            if issues.is_empty() {
                return Err("a rejection carries no issue".into());
            }
            Ok(EventResult::Rejected(
                issues
                    .into_iter()
                    .map(|i| Issue {
                        field: i.field,
                        message: i.message,
                    })
                    .collect(),
            ))
        }
        wit::EventResult::Ok(e) => {
            // Valid WIT values the database cannot hold (age > i32::MAX,
            // followers > i64::MAX) reject that event only: a source may
            // legitimately send them, and they must not fail the whole batch.
            if let Some(issue) = unstorable(&e.demographics) {
                return Ok(EventResult::Rejected(vec![issue]));
            }
            convert_event(e, source).map(|e| EventResult::Ok(Box::new(e)))
        }
    }
}

fn unstorable(d: &wit::Demographics) -> Option<Issue> {
    let too_big = |field: &str, got: u64, max: u64| Issue {
        field: field.into(),
        message: format!("is {got}, more than the host can store ({max})"),
    };
    if let Some(age) = d.age.filter(|a| *a > i32::MAX as u32) {
        return Some(too_big("demographics.age", age.into(), i32::MAX as u64));
    }
    d.followers
        .filter(|f| *f > i64::MAX as u64)
        .map(|f| too_big("demographics.followers", f, i64::MAX as u64))
}

fn convert_event(e: wit::NormalizedEvent, source: &str) -> Result<NormalizedEvent, String> {
    if e.source != source {
        return Err(format!(
            "event {:?} has source {:?} but the plugin owns {:?}",
            e.event_id, e.source, source
        ));
    }
    if e.event_id.is_empty() || e.event_type.is_empty() {
        return Err("event id and event type must not be empty".into());
    }
    let occurred_at =
        chrono::DateTime::from_timestamp(e.occurred_at.seconds, e.occurred_at.nanoseconds)
            .filter(|_| e.occurred_at.nanoseconds < 1_000_000_000)
            .ok_or_else(|| {
                format!(
                    "event {:?}: timestamp {}s {}ns is out of range",
                    e.event_id, e.occurred_at.seconds, e.occurred_at.nanoseconds
                )
            })?;
    if let Some(r) = &e.revenue {
        if !super::types::is_valid_amount(r) {
            return Err(format!(
                "event {:?}: revenue {r:?} is not an exact decimal",
                e.event_id
            ));
        }
    }
    let d = e.demographics;
    Ok(NormalizedEvent {
        event_id: e.event_id,
        source: e.source,
        occurred_at,
        funnel_stage: match e.funnel_stage {
            wit::FunnelStage::Top => FunnelStage::Top,
            wit::FunnelStage::Bottom => FunnelStage::Bottom,
        },
        event_type: e.event_type,
        user_id: e.user_id,
        revenue: e.revenue,
        campaign_id: e.campaign_id,
        age: d.age,
        gender: d.gender,
        country: d.country,
        city: d.city,
        followers: d.followers,
        device: d.device,
        raw: e.raw,
    })
}
