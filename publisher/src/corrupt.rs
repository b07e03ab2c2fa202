//! The corruptions the real publisher applies: with probability ≈ 0.1 a POST
//! gets exactly one extra event broken in one of these ways (see the spec,
//! "What the real publisher does").

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::model::{FunnelStage, Source};

/// One way of breaking an otherwise valid event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CorruptionKind {
    /// `timestamp` set to `"invalid-timestamp"`.
    InvalidTimestamp,
    /// `eventId` removed.
    MissingEventId,
    /// Facebook `data.user.name` removed.
    MissingUserName,
    /// TikTok `data.user.username` removed.
    MissingUsername,
    /// The whole `data.user` removed.
    MissingUser,
    /// `funnelStage` set to `"invalid-stage"`.
    InvalidFunnelStage,
    /// `eventType` set to an array (holding the original type).
    EventTypeArray,
    /// Facebook top-funnel `engagement.actionTime` set to the number `-1`
    /// (a number where a date-time string is required).
    NegativeActionTime,
    /// TikTok top-funnel `engagement.watchTime` set to `-1` (out of range).
    NegativeWatchTime,
    /// Facebook bottom-funnel `engagement.adId` removed.
    MissingAdId,
    /// TikTok bottom-funnel `engagement.purchasedItem` removed (it is nullable
    /// but must be present).
    MissingPurchasedItem,
    /// Facebook `data.user.gender` set to `"alien"`.
    AlienGender,
    /// TikTok `data.user.followers` set to `"not-a-number"`.
    FollowersNotANumber,
}

impl CorruptionKind {
    /// Every kind, in declaration order.
    pub const ALL: [CorruptionKind; 13] = [
        CorruptionKind::InvalidTimestamp,
        CorruptionKind::MissingEventId,
        CorruptionKind::MissingUserName,
        CorruptionKind::MissingUsername,
        CorruptionKind::MissingUser,
        CorruptionKind::InvalidFunnelStage,
        CorruptionKind::EventTypeArray,
        CorruptionKind::NegativeActionTime,
        CorruptionKind::NegativeWatchTime,
        CorruptionKind::MissingAdId,
        CorruptionKind::MissingPurchasedItem,
        CorruptionKind::AlienGender,
        CorruptionKind::FollowersNotANumber,
    ];

    /// A stable snake_case name (used in summaries and on the command line).
    pub fn name(self) -> &'static str {
        match self {
            CorruptionKind::InvalidTimestamp => "invalid_timestamp",
            CorruptionKind::MissingEventId => "missing_event_id",
            CorruptionKind::MissingUserName => "missing_user_name",
            CorruptionKind::MissingUsername => "missing_username",
            CorruptionKind::MissingUser => "missing_user",
            CorruptionKind::InvalidFunnelStage => "invalid_funnel_stage",
            CorruptionKind::EventTypeArray => "event_type_array",
            CorruptionKind::NegativeActionTime => "negative_action_time",
            CorruptionKind::NegativeWatchTime => "negative_watch_time",
            CorruptionKind::MissingAdId => "missing_ad_id",
            CorruptionKind::MissingPurchasedItem => "missing_purchased_item",
            CorruptionKind::AlienGender => "alien_gender",
            CorruptionKind::FollowersNotANumber => "followers_not_a_number",
        }
    }

    /// The JSON path of the field this corruption breaks (what a validator's
    /// reason should name).
    pub fn field(self) -> &'static str {
        match self {
            CorruptionKind::InvalidTimestamp => "timestamp",
            CorruptionKind::MissingEventId => "eventId",
            CorruptionKind::MissingUserName => "data.user.name",
            CorruptionKind::MissingUsername => "data.user.username",
            CorruptionKind::MissingUser => "data.user",
            CorruptionKind::InvalidFunnelStage => "funnelStage",
            CorruptionKind::EventTypeArray => "eventType",
            CorruptionKind::NegativeActionTime => "data.engagement.actionTime",
            CorruptionKind::NegativeWatchTime => "data.engagement.watchTime",
            CorruptionKind::MissingAdId => "data.engagement.adId",
            CorruptionKind::MissingPurchasedItem => "data.engagement.purchasedItem",
            CorruptionKind::AlienGender => "data.user.gender",
            CorruptionKind::FollowersNotANumber => "data.user.followers",
        }
    }

    /// The source this kind needs, if any.
    pub fn required_source(self) -> Option<Source> {
        match self {
            CorruptionKind::MissingUserName
            | CorruptionKind::NegativeActionTime
            | CorruptionKind::MissingAdId
            | CorruptionKind::AlienGender => Some(Source::Facebook),
            CorruptionKind::MissingUsername
            | CorruptionKind::NegativeWatchTime
            | CorruptionKind::MissingPurchasedItem
            | CorruptionKind::FollowersNotANumber => Some(Source::Tiktok),
            _ => None,
        }
    }

    /// The funnel stage this kind needs, if any.
    pub fn required_stage(self) -> Option<FunnelStage> {
        match self {
            CorruptionKind::NegativeActionTime | CorruptionKind::NegativeWatchTime => {
                Some(FunnelStage::Top)
            }
            CorruptionKind::MissingAdId | CorruptionKind::MissingPurchasedItem => {
                Some(FunnelStage::Bottom)
            }
            _ => None,
        }
    }

    /// Whether this kind can be applied to `event` (its source and funnel
    /// stage fit and the targeted field exists).
    pub fn applies_to(self, event: &Value) -> bool {
        let source = event.get("source").and_then(Value::as_str);
        let stage = event.get("funnelStage").and_then(Value::as_str);
        if let Some(s) = self.required_source() {
            if source != Some(s.as_str()) {
                return false;
            }
        }
        if let Some(s) = self.required_stage() {
            if stage != Some(s.as_str()) {
                return false;
            }
        }
        let (parent, key) = self.target();
        match parent_of(event, parent) {
            Some(obj) => obj.contains_key(key),
            None => false,
        }
    }

    /// Breaks `event` in place. Returns `false` (leaving the event untouched)
    /// when the kind does not apply to it (see [`CorruptionKind::applies_to`]).
    pub fn apply(self, event: &mut Value) -> bool {
        if !self.applies_to(event) {
            return false;
        }
        let (parent, key) = self.target();
        let Some(obj) = parent_of_mut(event, parent) else {
            return false;
        };
        match self {
            CorruptionKind::InvalidTimestamp => {
                obj.insert(key.into(), json!("invalid-timestamp"));
            }
            CorruptionKind::InvalidFunnelStage => {
                obj.insert(key.into(), json!("invalid-stage"));
            }
            CorruptionKind::EventTypeArray => {
                let old = obj.get(key).cloned().unwrap_or(Value::Null);
                obj.insert(key.into(), json!([old]));
            }
            CorruptionKind::NegativeActionTime | CorruptionKind::NegativeWatchTime => {
                obj.insert(key.into(), json!(-1));
            }
            CorruptionKind::AlienGender => {
                obj.insert(key.into(), json!("alien"));
            }
            CorruptionKind::FollowersNotANumber => {
                obj.insert(key.into(), json!("not-a-number"));
            }
            CorruptionKind::MissingEventId
            | CorruptionKind::MissingUserName
            | CorruptionKind::MissingUsername
            | CorruptionKind::MissingUser
            | CorruptionKind::MissingAdId
            | CorruptionKind::MissingPurchasedItem => {
                obj.remove(key);
            }
        }
        true
    }

    /// (path of the parent object, key inside it).
    fn target(self) -> (&'static [&'static str], &'static str) {
        const ROOT: &[&str] = &[];
        const DATA: &[&str] = &["data"];
        const USER: &[&str] = &["data", "user"];
        const ENGAGEMENT: &[&str] = &["data", "engagement"];
        match self {
            CorruptionKind::InvalidTimestamp => (ROOT, "timestamp"),
            CorruptionKind::MissingEventId => (ROOT, "eventId"),
            CorruptionKind::InvalidFunnelStage => (ROOT, "funnelStage"),
            CorruptionKind::EventTypeArray => (ROOT, "eventType"),
            CorruptionKind::MissingUser => (DATA, "user"),
            CorruptionKind::MissingUserName => (USER, "name"),
            CorruptionKind::MissingUsername => (USER, "username"),
            CorruptionKind::AlienGender => (USER, "gender"),
            CorruptionKind::FollowersNotANumber => (USER, "followers"),
            CorruptionKind::NegativeActionTime => (ENGAGEMENT, "actionTime"),
            CorruptionKind::NegativeWatchTime => (ENGAGEMENT, "watchTime"),
            CorruptionKind::MissingAdId => (ENGAGEMENT, "adId"),
            CorruptionKind::MissingPurchasedItem => (ENGAGEMENT, "purchasedItem"),
        }
    }
}

fn parent_of<'a>(event: &'a Value, path: &[&str]) -> Option<&'a serde_json::Map<String, Value>> {
    path.iter()
        .try_fold(event, |v, k| v.get(*k))
        .and_then(Value::as_object)
}

fn parent_of_mut<'a>(
    event: &'a mut Value,
    path: &[&str],
) -> Option<&'a mut serde_json::Map<String, Value>> {
    path.iter()
        .try_fold(event, |v, k| v.get_mut(*k))
        .and_then(Value::as_object_mut)
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CorruptionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CorruptionKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown corruption kind {s:?}"))
    }
}
