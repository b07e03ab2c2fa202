//! Test helpers: an independent structural check of the spec
//! (`docs/events.md`) and the publisher's own conventions.
#![allow(dead_code)]

pub mod server;

use chrono::DateTime;
use serde_json::{Map, Value};

const FB_TOP: &[&str] = &["ad.view", "page.like", "comment", "video.view"];
const FB_BOTTOM: &[&str] = &["ad.click", "form.submission", "checkout.complete"];
const TT_TOP: &[&str] = &["video.view", "like", "share", "comment"];
const TT_BOTTOM: &[&str] = &["profile.visit", "purchase", "follow"];

/// The spec's validity rules. `Err` names the offending field.
pub fn validate(ev: &Value) -> Result<(), String> {
    let ev = obj(ev, "event")?;
    non_empty_string(ev, "eventId", "eventId")?;
    date_time(ev, "timestamp", "timestamp")?;
    let source = enum_str(ev, "source", "source", &["facebook", "tiktok"])?;
    let stage = enum_str(ev, "funnelStage", "funnelStage", &["top", "bottom"])?;
    let types = match (source, stage) {
        ("facebook", "top") => FB_TOP,
        ("facebook", _) => FB_BOTTOM,
        ("tiktok", "top") => TT_TOP,
        _ => TT_BOTTOM,
    };
    enum_str(ev, "eventType", "eventType", types)?;
    let data = obj(field(ev, "data", "data")?, "data")?;
    let user = obj(field(data, "user", "data.user")?, "data.user")?;
    let eng = obj(
        field(data, "engagement", "data.engagement")?,
        "data.engagement",
    )?;
    match source {
        "facebook" => {
            string(user, "userId", "data.user.userId")?;
            string(user, "name", "data.user.name")?;
            integer_in(user, "age", "data.user.age", 0, 150)?;
            enum_str(
                user,
                "gender",
                "data.user.gender",
                &["male", "female", "non-binary"],
            )?;
            let loc = obj(
                field(user, "location", "data.user.location")?,
                "data.user.location",
            )?;
            string(loc, "country", "data.user.location.country")?;
            string(loc, "city", "data.user.location.city")?;
            if stage == "top" {
                date_time(eng, "actionTime", "data.engagement.actionTime")?;
                enum_str(
                    eng,
                    "referrer",
                    "data.engagement.referrer",
                    &["newsfeed", "marketplace", "groups"],
                )?;
                nullable_string(eng, "videoId", "data.engagement.videoId")?;
            } else {
                string(eng, "adId", "data.engagement.adId")?;
                string(eng, "campaignId", "data.engagement.campaignId")?;
                enum_str(
                    eng,
                    "clickPosition",
                    "data.engagement.clickPosition",
                    &["top_left", "bottom_right", "center"],
                )?;
                enum_str(
                    eng,
                    "device",
                    "data.engagement.device",
                    &["mobile", "desktop"],
                )?;
                enum_str(
                    eng,
                    "browser",
                    "data.engagement.browser",
                    &["Chrome", "Firefox", "Safari"],
                )?;
                nullable_amount(eng, "purchaseAmount", "data.engagement.purchaseAmount")?;
            }
        }
        _ => {
            string(user, "userId", "data.user.userId")?;
            string(user, "username", "data.user.username")?;
            integer_in(user, "followers", "data.user.followers", 0, i64::MAX)?;
            if stage == "top" {
                number_in(eng, "watchTime", "data.engagement.watchTime", 0.0, f64::MAX)?;
                number_in(
                    eng,
                    "percentageWatched",
                    "data.engagement.percentageWatched",
                    0.0,
                    100.0,
                )?;
                enum_str(
                    eng,
                    "device",
                    "data.engagement.device",
                    &["Android", "iOS", "Desktop"],
                )?;
                string(eng, "country", "data.engagement.country")?;
                string(eng, "videoId", "data.engagement.videoId")?;
            } else {
                date_time(eng, "actionTime", "data.engagement.actionTime")?;
                nullable_string(eng, "profileId", "data.engagement.profileId")?;
                nullable_string(eng, "purchasedItem", "data.engagement.purchasedItem")?;
                nullable_amount(eng, "purchaseAmount", "data.engagement.purchaseAmount")?;
            }
        }
    }
    Ok(())
}

/// What this publisher does beyond validity: id format, UTC millisecond
/// timestamps, and which nullable fields are set for which event types.
pub fn check_conventions(ev: &Value) -> Result<(), String> {
    let s = |p: &str| {
        ev.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let source = s("/source");
    let et = s("/eventType");
    let prefix = if source == "facebook" { "fb-" } else { "ttk-" };
    let id = s("/eventId");
    let uuid = id
        .strip_prefix(prefix)
        .ok_or(format!("eventId {id} lacks {prefix}"))?;
    if uuid.len() != 36 || uuid.chars().filter(|c| *c == '-').count() != 4 {
        return Err(format!("eventId {id} is not <prefix>-<uuid>"));
    }
    for p in ["/timestamp", "/data/engagement/actionTime"] {
        if let Some(t) = ev.pointer(p).and_then(Value::as_str) {
            // 2024-03-01T12:34:56.789Z
            if t.len() != 24 || !t.ends_with('Z') || t.as_bytes()[19] != b'.' {
                return Err(format!("{p} {t} is not UTC with milliseconds"));
            }
        }
    }
    let set = |p: &str| !ev.pointer(p).is_some_and(Value::is_null);
    let stage = s("/funnelStage");
    let expect = |cond: bool, p: &str| {
        if set(p) == cond {
            Ok(())
        } else {
            Err(format!("{et}: {p} set={} but expected set={cond}", set(p)))
        }
    };
    match (source.as_str(), stage.as_str()) {
        ("facebook", "top") => expect(et == "video.view", "/data/engagement/videoId"),
        ("facebook", _) => expect(et == "checkout.complete", "/data/engagement/purchaseAmount"),
        ("tiktok", "top") => Ok(()),
        _ => {
            expect(et == "profile.visit", "/data/engagement/profileId")?;
            expect(et == "purchase", "/data/engagement/purchasedItem")?;
            expect(et == "purchase", "/data/engagement/purchaseAmount")
        }
    }
}

/// `^[0-9]+(\.[0-9]{1,2})?$`
pub fn is_amount(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(|f| digits(f) && f.len() <= 2)
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: not an object"))
}

fn field<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Value, String> {
    o.get(key).ok_or_else(|| format!("{path}: missing"))
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, String> {
    field(o, key, path)?
        .as_str()
        .ok_or_else(|| format!("{path}: not a string"))
}

fn non_empty_string(o: &Map<String, Value>, key: &str, path: &str) -> Result<(), String> {
    if string(o, key, path)?.is_empty() {
        return Err(format!("{path}: empty"));
    }
    Ok(())
}

fn nullable_string(o: &Map<String, Value>, key: &str, path: &str) -> Result<(), String> {
    match field(o, key, path)? {
        Value::Null | Value::String(_) => Ok(()),
        _ => Err(format!("{path}: not a string or null")),
    }
}

fn nullable_amount(o: &Map<String, Value>, key: &str, path: &str) -> Result<(), String> {
    match field(o, key, path)? {
        Value::Null => Ok(()),
        Value::String(s) if is_amount(s) => Ok(()),
        _ => Err(format!("{path}: not a decimal string or null")),
    }
}

fn enum_str<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    path: &str,
    allowed: &[&str],
) -> Result<&'a str, String> {
    let s = string(o, key, path)?;
    if allowed.contains(&s) {
        Ok(s)
    } else {
        Err(format!("{path}: {s:?} not one of {allowed:?}"))
    }
}

fn date_time(o: &Map<String, Value>, key: &str, path: &str) -> Result<(), String> {
    let s = string(o, key, path)?;
    DateTime::parse_from_rfc3339(s)
        .map(|_| ())
        .map_err(|e| format!("{path}: {s:?} is not RFC 3339: {e}"))
}

fn integer_in(
    o: &Map<String, Value>,
    key: &str,
    path: &str,
    min: i64,
    max: i64,
) -> Result<(), String> {
    let v = field(o, key, path)?;
    let n = v
        .as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .ok_or_else(|| format!("{path}: not an integer"))?;
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(format!("{path}: {n} out of range"))
    }
}

fn number_in(
    o: &Map<String, Value>,
    key: &str,
    path: &str,
    min: f64,
    max: f64,
) -> Result<(), String> {
    let n = field(o, key, path)?
        .as_f64()
        .ok_or_else(|| format!("{path}: not a number"))?;
    if n >= min && n <= max {
        Ok(())
    } else {
        Err(format!("{path}: {n} out of range"))
    }
}
