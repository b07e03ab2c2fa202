//! The WebAssembly component glue (wasm32 only), written out by hand because it targets the OLD
//! world `marketing:events@0.1.0` (`wit/v0.1.0/`), whose `normalized-event` has a `raw` field;
//! the kit's `export_source_plugin!` only generates the current (0.2.0) glue.
wit_bindgen::generate!({ world: "source-plugin", path: "../../../wit/v0.1.0" });

use marketing::events::types as wit;

struct Plugin;

impl Guest for Plugin {
    fn identity() -> wit::Identity {
        let id = crate::identity();
        wit::Identity {
            name: id.name,
            version: id.version,
            source: id.source,
        }
    }

    fn normalize_batch(events: Vec<String>) -> Vec<wit::EventResult> {
        events.iter().map(|raw| to_wit(raw)).collect()
    }
}

fn to_wit(raw: &str) -> wit::EventResult {
    match crate::normalize(raw) {
        Ok(e) => wit::EventResult::Ok(wit::NormalizedEvent {
            event_id: e.event_id,
            source: e.source,
            occurred_at: wit::Timestamp {
                seconds: e.occurred_at.seconds,
                nanoseconds: e.occurred_at.nanoseconds,
            },
            funnel_stage: match e.funnel_stage {
                events_plugin_kit::FunnelStage::Top => wit::FunnelStage::Top,
                events_plugin_kit::FunnelStage::Bottom => wit::FunnelStage::Bottom,
            },
            event_type: e.event_type,
            user_id: e.user_id,
            revenue: e.revenue,
            campaign_id: e.campaign_id,
            demographics: wit::Demographics {
                age: e.demographics.age,
                gender: e.demographics.gender,
                country: e.demographics.country,
                city: e.demographics.city,
                followers: e.demographics.followers,
                device: e.demographics.device,
            },
            // Deliberately NOT the input: see the crate docs.
            raw: crate::echoed_raw(raw),
        }),
        Err(issues) => wit::EventResult::Rejected(
            issues
                .into_iter()
                .map(|i| wit::ValidationIssue {
                    field: i.field,
                    message: i.message,
                })
                .collect(),
        ),
    }
}

export!(Plugin);
