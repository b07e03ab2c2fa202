//! The vocabulary of the event format (its rules: `plugins/README.md`,
//! "Validation rules"): sources, funnel stages and the event types and enum
//! values each allows.

use std::fmt;
use std::str::FromStr;

/// The platform an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `"facebook"`, event ids `fb-<uuid>`.
    Facebook,
    /// `"tiktok"`, event ids `ttk-<uuid>`.
    Tiktok,
}

impl Source {
    /// Both sources.
    pub const ALL: [Source; 2] = [Source::Facebook, Source::Tiktok];

    /// The wire value of `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Facebook => "facebook",
            Source::Tiktok => "tiktok",
        }
    }

    /// The `eventId` prefix the publisher uses (`fb` / `ttk`).
    pub fn id_prefix(self) -> &'static str {
        match self {
            Source::Facebook => "fb",
            Source::Tiktok => "ttk",
        }
    }

    /// The event types this source allows at `stage`.
    pub fn event_types(self, stage: FunnelStage) -> &'static [&'static str] {
        match (self, stage) {
            (Source::Facebook, FunnelStage::Top) => FACEBOOK_TOP_TYPES,
            (Source::Facebook, FunnelStage::Bottom) => FACEBOOK_BOTTOM_TYPES,
            (Source::Tiktok, FunnelStage::Top) => TIKTOK_TOP_TYPES,
            (Source::Tiktok, FunnelStage::Bottom) => TIKTOK_BOTTOM_TYPES,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "facebook" => Ok(Source::Facebook),
            "tiktok" => Ok(Source::Tiktok),
            other => Err(format!("unknown source {other:?}")),
        }
    }
}

/// Where in the marketing funnel an event sits (shared with the services).
pub use events_common::funnel::FunnelStage;

/// Facebook top-funnel event types.
pub const FACEBOOK_TOP_TYPES: &[&str] = &["ad.view", "page.like", "comment", "video.view"];
/// Facebook bottom-funnel event types.
pub const FACEBOOK_BOTTOM_TYPES: &[&str] = &["ad.click", "form.submission", "checkout.complete"];
/// TikTok top-funnel event types.
pub const TIKTOK_TOP_TYPES: &[&str] = &["video.view", "like", "share", "comment"];
/// TikTok bottom-funnel event types.
pub const TIKTOK_BOTTOM_TYPES: &[&str] = &["profile.visit", "purchase", "follow"];

/// Facebook `user.gender` values.
pub const FACEBOOK_GENDERS: &[&str] = &["male", "female", "non-binary"];
/// Facebook top-funnel `engagement.referrer` values.
pub const FACEBOOK_REFERRERS: &[&str] = &["newsfeed", "marketplace", "groups"];
/// Facebook bottom-funnel `engagement.clickPosition` values.
pub const FACEBOOK_CLICK_POSITIONS: &[&str] = &["top_left", "bottom_right", "center"];
/// Facebook bottom-funnel `engagement.device` values.
pub const FACEBOOK_DEVICES: &[&str] = &["mobile", "desktop"];
/// Facebook bottom-funnel `engagement.browser` values.
pub const FACEBOOK_BROWSERS: &[&str] = &["Chrome", "Firefox", "Safari"];
/// TikTok top-funnel `engagement.device` values.
pub const TIKTOK_DEVICES: &[&str] = &["Android", "iOS", "Desktop"];

/// `Generator::event` was asked for an event type the source does not allow
/// at that funnel stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEventType {
    /// The source asked for.
    pub source: Source,
    /// The stage asked for.
    pub stage: FunnelStage,
    /// The rejected event type.
    pub event_type: String,
}

impl fmt::Display for InvalidEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} does not allow event type {:?} at funnel stage {} (allowed: {:?})",
            self.source,
            self.event_type,
            self.stage,
            self.source.event_types(self.stage)
        )
    }
}

impl std::error::Error for InvalidEventType {}
