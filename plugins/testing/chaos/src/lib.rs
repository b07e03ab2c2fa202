//! The chaos plugin: a deliberately HOSTILE source plugin for the host's sandbox tests.
//!
//! Identity: name `chaos`, source `$CHAOS_SOURCE` (default `chaos`), version `$CHAOS_VERSION`
//! (default `1.0.0`), both fixed at compile time.
//!
//! `normalize-batch` reads each input's JSON field `"mode"`. If ANY event of the batch has a
//! hostile mode, the whole call does it (the first hostile event in batch order decides):
//! * `"spin"`: loop forever (epoch/fuel limits must stop it);
//! * `"alloc"`: allocate and touch 1 MiB blocks forever (memory limits must stop it);
//! * `"panic"`: panic (a trap: plugins are built with `panic = "abort"`);
//! * `"wrong-count"`: return one result fewer than inputs;
//! * `"bad-output"`: return, for every input, an `ok` event with source `"not-chaos"` and
//!   2 000 000 000 nanoseconds (both invalid).
//!
//! Otherwise `{"eventId":"x","mode":"ok"}` → ok (source = identity source, event type `test`,
//! funnel top, timestamp 0, user `u`, raw = input); any other mode → rejected on field `mode`.

use std::hint::black_box;

use events_plugin_kit::json::Value;
use events_plugin_kit::{
    Demographics, EventResult, FunnelStage, Identity, Issue, NormalizedEvent, Timestamp, Validator,
};

#[cfg(target_arch = "wasm32")]
mod component;

/// The source this build claims (`CHAOS_SOURCE`, default `chaos`).
pub const SOURCE: &str = match option_env!("CHAOS_SOURCE") {
    Some(s) => s,
    None => "chaos",
};

/// The version this build reports (`CHAOS_VERSION`, default `1.0.0`).
pub const VERSION: &str = match option_env!("CHAOS_VERSION") {
    Some(v) => v,
    None => "1.0.0",
};

pub fn identity() -> Identity {
    Identity {
        name: "chaos".to_owned(),
        version: VERSION.to_owned(),
        source: SOURCE.to_owned(),
    }
}

/// What a batch call will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Normal,
    Spin,
    Alloc,
    Panic,
    WrongCount,
    BadOutput,
}

fn mode_of(raw: &str) -> Option<String> {
    let root = Validator::parse_root(raw).ok()?;
    match root.get("mode") {
        Some(Value::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// The plan for a batch: the first hostile mode found, else `Normal`.
pub fn plan(events: &[String]) -> Plan {
    events
        .iter()
        .find_map(|e| match mode_of(e).as_deref() {
            Some("spin") => Some(Plan::Spin),
            Some("alloc") => Some(Plan::Alloc),
            Some("panic") => Some(Plan::Panic),
            Some("wrong-count") => Some(Plan::WrongCount),
            Some("bad-output") => Some(Plan::BadOutput),
            _ => None,
        })
        .unwrap_or(Plan::Normal)
}

/// The well-behaved path: `mode: "ok"` → ok event, anything else → rejected on `mode`.
pub fn normalize_owned(raw: String) -> EventResult {
    let root = Validator::parse_root(&raw)?;
    let event_id = match root.get("eventId") {
        Some(Value::String(s)) => s.to_string(),
        _ => "x".to_owned(),
    };
    match root.get("mode") {
        Some(Value::String(m)) if m == "ok" => {}
        other => {
            let got = other.map_or("nothing".to_owned(), Value::describe);
            return Err(vec![Issue::new(
                "mode",
                format!("must be \"ok\", got {got}"),
            )]);
        }
    }
    drop(root);
    Ok(event(event_id, SOURCE, Timestamp::default(), raw))
}

fn event(event_id: String, source: &str, occurred_at: Timestamp, raw: String) -> NormalizedEvent {
    NormalizedEvent {
        event_id,
        source: source.to_owned(),
        occurred_at,
        funnel_stage: FunnelStage::Top,
        event_type: "test".to_owned(),
        user_id: "u".to_owned(),
        revenue: None,
        campaign_id: None,
        demographics: Demographics::default(),
        raw,
    }
}

/// The batch entry point (the component's `normalize-batch`).
pub fn run(events: Vec<String>) -> Vec<EventResult> {
    match plan(&events) {
        Plan::Normal => events.into_iter().map(normalize_owned).collect(),
        Plan::Spin => spin(),
        Plan::Alloc => hoard(),
        Plan::Panic => panic!("chaos plugin: panic requested"),
        Plan::WrongCount => {
            let mut out: Vec<EventResult> = events.into_iter().map(normalize_owned).collect();
            out.pop();
            out
        }
        Plan::BadOutput => events
            .into_iter()
            .map(|raw| {
                let bad = Timestamp {
                    seconds: 0,
                    nanoseconds: 2_000_000_000,
                };
                Ok(event("bad".to_owned(), "not-chaos", bad, raw))
            })
            .collect(),
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // vec![x; n] with x != 0 writes every byte, so the pages are really touched.
        hoard.push(vec![0xA5u8; 1 << 20]);
        black_box(&hoard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(modes: &[&str]) -> Vec<String> {
        modes
            .iter()
            .map(|m| format!(r#"{{"eventId":"e-{m}","mode":"{m}"}}"#))
            .collect()
    }

    #[test]
    fn identity_defaults() {
        let id = identity();
        assert_eq!(id.name, "chaos");
        assert!(!id.source.is_empty() && !id.version.is_empty());
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&batch(&["ok", "reject"])), Plan::Normal);
        assert_eq!(plan(&batch(&["ok", "spin"])), Plan::Spin);
        assert_eq!(plan(&batch(&["alloc", "panic"])), Plan::Alloc);
        assert_eq!(plan(&batch(&["ok", "panic"])), Plan::Panic);
        assert_eq!(plan(&batch(&["wrong-count"])), Plan::WrongCount);
        assert_eq!(plan(&batch(&["bad-output", "ok"])), Plan::BadOutput);
        assert_eq!(plan(&["not json".to_owned()]), Plan::Normal);
    }

    #[test]
    fn normal_mode() {
        let input = batch(&["ok", "reject"]);
        let out = run(input.clone());
        let ok = out[0].as_ref().unwrap();
        assert_eq!((ok.event_id.as_str(), ok.source.as_str()), ("e-ok", SOURCE));
        assert_eq!((ok.event_type.as_str(), ok.user_id.as_str()), ("test", "u"));
        assert_eq!(ok.occurred_at, Timestamp::default());
        assert_eq!(ok.raw, input[0]);
        assert_eq!(out[1].as_ref().unwrap_err()[0].field, "mode");
    }

    #[test]
    fn lying_modes() {
        assert_eq!(run(batch(&["ok", "ok", "wrong-count"])).len(), 2);
        let out = run(batch(&["ok", "bad-output"]));
        assert_eq!(out.len(), 2);
        let e = out[0].as_ref().unwrap();
        assert_eq!(
            (e.source.as_str(), e.occurred_at.nanoseconds),
            ("not-chaos", 2_000_000_000)
        );
    }
}
