//! The Facebook source plugin: validates events of `source: "facebook"` exactly as
//! `shared/spec/events.md` says and maps them to the canonical [`NormalizedEvent`].
//!
//! Native API (tests, host-side benchmarks): [`identity`], [`normalize`] and
//! [`normalize_batch`]. The wasm component (built by `scripts/build-plugins.sh`) exports the
//! same logic through the WIT world `source-plugin` (`marketing:events@0.2.0`: no `raw` echo,
//! the host stores the bytes it sent).

use events_plugin_kit::json::Object;
use events_plugin_kit::{
    Demographics, EventResult, EventTypes, FunnelStage, Identity, NormalizedEvent, Validator,
};

#[cfg(target_arch = "wasm32")]
mod component;

/// The source this plugin owns.
pub const SOURCE: &str = "facebook";

/// Event types per funnel stage.
pub const EVENT_TYPES: EventTypes = EventTypes {
    top: &["ad.view", "page.like", "comment", "video.view"],
    bottom: &["ad.click", "form.submission", "checkout.complete"],
};

/// The revenue event type (bottom funnel).
pub const REVENUE_EVENT: &str = "checkout.complete";

const GENDERS: &[&str] = &["male", "female", "non-binary"];
const REFERRERS: &[&str] = &["newsfeed", "marketplace", "groups"];
const CLICK_POSITIONS: &[&str] = &["top_left", "bottom_right", "center"];
const DEVICES: &[&str] = &["mobile", "desktop"];
const BROWSERS: &[&str] = &["Chrome", "Firefox", "Safari"];

/// name "facebook", this crate's version, source "facebook".
pub fn identity() -> Identity {
    Identity {
        name: "facebook".to_owned(),
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
    let user = env.user.map(|u| user(&mut v, u)).unwrap_or_default();
    let engagement = engagement(&mut v, env.engagement, env.funnel_stage);
    v.finish()?;

    let (
        Some(event_id),
        Some(occurred_at),
        Some(funnel_stage),
        Some(event_type),
        Some(user_id),
        Some(age),
        Some(gender),
        Some((country, city)),
    ) = (
        env.event_id,
        env.occurred_at,
        env.funnel_stage,
        env.event_type,
        user.id,
        user.age,
        user.gender,
        user.location,
    )
    else {
        return Err(Validator::inconsistent());
    };
    let age = u32::try_from(age).map_err(|_| Validator::inconsistent())?;

    Ok(NormalizedEvent {
        event_id: event_id.to_owned(),
        source: SOURCE.to_owned(),
        occurred_at,
        funnel_stage,
        event_type: event_type.to_owned(),
        user_id: user_id.to_owned(),
        revenue: engagement
            .amount
            .filter(|_| event_type == REVENUE_EVENT)
            .map(str::to_owned),
        campaign_id: engagement.campaign_id.map(str::to_owned),
        demographics: Demographics {
            age: Some(age),
            gender: Some(gender.to_owned()),
            country: Some(country.to_owned()),
            city: Some(city.to_owned()),
            followers: None,
            device: None,
        },
    })
}

/// The `data.user` values the normalized event keeps (`None` where invalid).
#[derive(Default)]
struct User<'v> {
    id: Option<&'v str>,
    age: Option<i128>,
    gender: Option<&'static str>,
    location: Option<(&'v str, &'v str)>,
}

/// Checks `data.user`, recording every issue in `v`.
fn user<'v>(v: &mut Validator, user: &'v Object<'_>) -> User<'v> {
    let id = v.string(user, "data.user.userId");
    v.string(user, "data.user.name");
    let age = v.integer(user, "data.user.age", 0, 150);
    let gender = v.enumeration(user, "data.user.gender", GENDERS);
    let location = v.object(user, "data.user.location").and_then(|loc| {
        let country = v.string(loc, "data.user.location.country");
        let city = v.string(loc, "data.user.location.city");
        country.zip(city)
    });
    User {
        id,
        age,
        gender,
        location,
    }
}

/// The `data.engagement` values the normalized event keeps.
#[derive(Default)]
struct Engagement<'v> {
    campaign_id: Option<&'v str>,
    /// `purchaseAmount`; revenue only on the revenue event.
    amount: Option<&'v str>,
}

/// Checks `data.engagement` against its funnel stage, recording every issue in `v`.
///
/// The funnel stage decides the engagement shape; with an invalid stage only
/// `data.engagement` being an object is checked (the stage issue is already recorded).
fn engagement<'v>(
    v: &mut Validator,
    engagement: Option<&'v Object<'_>>,
    stage: Option<FunnelStage>,
) -> Engagement<'v> {
    match (engagement, stage) {
        (Some(eng), Some(FunnelStage::Top)) => {
            v.datetime(eng, "data.engagement.actionTime");
            v.enumeration(eng, "data.engagement.referrer", REFERRERS);
            v.nullable_string(eng, "data.engagement.videoId");
            Engagement::default()
        }
        (Some(eng), Some(FunnelStage::Bottom)) => {
            v.string(eng, "data.engagement.adId");
            let campaign_id = v.string(eng, "data.engagement.campaignId");
            v.enumeration(eng, "data.engagement.clickPosition", CLICK_POSITIONS);
            v.enumeration(eng, "data.engagement.device", DEVICES);
            v.enumeration(eng, "data.engagement.browser", BROWSERS);
            let amount = v
                .nullable_amount(eng, "data.engagement.purchaseAmount")
                .flatten();
            Engagement {
                campaign_id,
                amount,
            }
        }
        _ => Engagement::default(),
    }
}
