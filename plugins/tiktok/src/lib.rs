//! The TikTok source plugin: validates events of `source: "tiktok"` exactly as
//! `docs/events.md` says and maps them to the canonical [`NormalizedEvent`].
//!
//! Native API (tests, host-side benchmarks): [`identity`], [`normalize`] and
//! [`normalize_batch`]. The wasm component (built by `scripts/build-plugins.sh`) exports the
//! same logic through the WIT world `source-plugin` (`marketing:events@0.2.0`: no `raw` echo,
//! the host stores the bytes it sent).

use events_plugin_kit::{
    Demographics, EventResult, EventTypes, FunnelStage, Identity, NormalizedEvent, Validator,
};

#[cfg(target_arch = "wasm32")]
mod component;

/// The source this plugin owns.
pub const SOURCE: &str = "tiktok";

/// Event types per funnel stage.
pub const EVENT_TYPES: EventTypes = EventTypes {
    top: &["video.view", "like", "share", "comment"],
    bottom: &["profile.visit", "purchase", "follow"],
};

/// The revenue event type (bottom funnel).
pub const REVENUE_EVENT: &str = "purchase";

const DEVICES: &[&str] = &["Android", "iOS", "Desktop"];

/// name "tiktok", this crate's version, source "tiktok".
pub fn identity() -> Identity {
    Identity {
        name: "tiktok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        source: SOURCE.to_owned(),
    }
}

/// Validates and normalizes a batch: exactly one result per input, in order. Takes borrowed
/// slices so a caller (the host's benchmark) can pass its buffers without copying.
pub fn normalize_batch(events: &[&str]) -> Vec<EventResult> {
    events.iter().map(|e| normalize(e)).collect()
}

/// Validates and normalizes one event (JSON text). `Err` lists every issue found.
pub fn normalize(raw: &str) -> EventResult {
    let root = Validator::parse_root(raw)?;
    let mut v = Validator::new();
    let env = v.envelope(&root, SOURCE, &EVENT_TYPES);

    let mut user_id = None;
    let mut followers = None;
    if let Some(user) = env.user {
        user_id = v.string(user, "data.user.userId");
        v.string(user, "data.user.username");
        followers = v.integer(user, "data.user.followers", 0, i128::from(u64::MAX));
    }

    // The funnel stage decides the engagement shape; with an invalid stage only
    // `data.engagement` being an object is checked (the stage issue is already recorded).
    let mut country = None;
    let mut device = None;
    let mut amount = None;
    match (env.engagement, env.funnel_stage) {
        (Some(eng), Some(FunnelStage::Top)) => {
            v.number(eng, "data.engagement.watchTime", 0.0, None);
            v.number(eng, "data.engagement.percentageWatched", 0.0, Some(100.0));
            device = v.enumeration(eng, "data.engagement.device", DEVICES);
            country = v.string(eng, "data.engagement.country");
            v.string(eng, "data.engagement.videoId");
        }
        (Some(eng), Some(FunnelStage::Bottom)) => {
            v.datetime(eng, "data.engagement.actionTime");
            v.nullable_string(eng, "data.engagement.profileId");
            v.nullable_string(eng, "data.engagement.purchasedItem");
            amount = v
                .nullable_amount(eng, "data.engagement.purchaseAmount")
                .flatten();
        }
        _ => {}
    }

    v.finish()?;
    let (
        Some(event_id),
        Some(occurred_at),
        Some(funnel_stage),
        Some(event_type),
        Some(user_id),
        Some(followers),
    ) = (
        env.event_id,
        env.occurred_at,
        env.funnel_stage,
        env.event_type,
        user_id,
        followers,
    )
    else {
        return Err(Validator::inconsistent());
    };
    let followers = u64::try_from(followers).map_err(|_| Validator::inconsistent())?;

    Ok(NormalizedEvent {
        event_id: event_id.to_owned(),
        source: SOURCE.to_owned(),
        occurred_at,
        funnel_stage,
        event_type: event_type.to_owned(),
        user_id: user_id.to_owned(),
        revenue: amount
            .filter(|_| event_type == REVENUE_EVENT)
            .map(str::to_owned),
        campaign_id: None,
        demographics: Demographics {
            age: None,
            gender: None,
            // Only top-funnel events carry country and device (set above for `top` only).
            country: country.map(str::to_owned),
            city: None,
            followers: Some(followers),
            device: device.map(str::to_owned),
        },
    })
}
