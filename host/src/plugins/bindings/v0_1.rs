//! `marketing:events@0.1.0` (wit/v0.1.0/): the first contract, still loaded.
//! Its normalized event echoes the raw JSON; the host ignores that echo and
//! stores the bytes it sent, so results are converted to the 0.2.0 shape.
wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "source-plugin",
});

use super::v0_2::wit as current;
use marketing::events::types as wit;

impl From<wit::Identity> for current::Identity {
    fn from(i: wit::Identity) -> Self {
        Self {
            name: i.name,
            version: i.version,
            source: i.source,
        }
    }
}

impl From<wit::EventResult> for current::EventResult {
    fn from(r: wit::EventResult) -> Self {
        match r {
            wit::EventResult::Rejected(issues) => Self::Rejected(
                issues
                    .into_iter()
                    .map(|i| current::ValidationIssue {
                        field: i.field,
                        message: i.message,
                    })
                    .collect(),
            ),
            wit::EventResult::Ok(e) => Self::Ok(current::NormalizedEvent {
                event_id: e.event_id,
                source: e.source,
                occurred_at: current::Timestamp {
                    seconds: e.occurred_at.seconds,
                    nanoseconds: e.occurred_at.nanoseconds,
                },
                funnel_stage: match e.funnel_stage {
                    wit::FunnelStage::Top => current::FunnelStage::Top,
                    wit::FunnelStage::Bottom => current::FunnelStage::Bottom,
                },
                event_type: e.event_type,
                user_id: e.user_id,
                revenue: e.revenue,
                campaign_id: e.campaign_id,
                demographics: current::Demographics {
                    age: e.demographics.age,
                    gender: e.demographics.gender,
                    country: e.demographics.country,
                    city: e.demographics.city,
                    followers: e.demographics.followers,
                    device: e.demographics.device,
                },
                // `e.raw` is dropped: the host stores what it sent.
            }),
        }
    }
}
