//! The chaos plugin: a deliberately HOSTILE source plugin for the host's sandbox tests.
//!
//! Identity: name `chaos`, source `$CHAOS_SOURCE` (default `chaos`), version `$CHAOS_VERSION`
//! (default `1.0.0`), both fixed at compile time. Built with `CHAOS_IDENTITY_SLEEP` set,
//! `identity()` sleeps for an hour first.
//!
//! `normalize-batch` reads each input's JSON field `"mode"`. If ANY event of the batch has a
//! hostile mode, the whole call does it (the first hostile event in batch order decides):
//! * `"spin"`: loop forever (the per-call epoch deadline must stop it: the host meters no fuel);
//! * `"alloc"`: allocate and touch 1 MiB blocks forever (memory limits must stop it);
//! * `"panic"`: panic (a trap: plugins are built with `panic = "abort"`);
//! * `"sleep"`: sleep for an hour (a blocking WASI call: the host must not wait);
//! * `"inflate"`: return, for every input, an `ok` event whose event type is 1 MiB long
//!   (far more output than input);
//! * `"wrong-count"`: return one result fewer than inputs;
//! * `"bad-output"`: return, for every input, an `ok` event with source `"not-chaos"` and
//!   2 000 000 000 nanoseconds (both invalid).
//!
//! Otherwise `{"eventId":"x","mode":"ok"}` → ok (source = identity source, event type `test`,
//! funnel top, timestamp 0, user `u`); any other mode → rejected on field `mode`. (Under WIT
//! 0.1.0 an ok event also echoed `raw` = input; 0.2.0 has no echo, the host stores what it sent.)

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
    if option_env!("CHAOS_IDENTITY_SLEEP").is_some() {
        nap();
    }
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
    Sleep,
    Inflate,
    WrongCount,
    BadOutput,
}

/// The hostile plan an event asks for, if any.
fn hostile_plan(raw: &str) -> Option<Plan> {
    let root = Validator::parse_root(raw).ok()?;
    let Some(Value::String(mode)) = root.get("mode") else {
        return None;
    };
    match mode.as_ref() {
        "spin" => Some(Plan::Spin),
        "alloc" => Some(Plan::Alloc),
        "panic" => Some(Plan::Panic),
        "sleep" => Some(Plan::Sleep),
        "inflate" => Some(Plan::Inflate),
        "wrong-count" => Some(Plan::WrongCount),
        "bad-output" => Some(Plan::BadOutput),
        _ => None,
    }
}

/// The plan for a batch: the first hostile mode found, else `Normal`.
pub fn plan(events: &[&str]) -> Plan {
    events
        .iter()
        .find_map(|e| hostile_plan(e))
        .unwrap_or(Plan::Normal)
}

/// The well-behaved path: `mode: "ok"` → ok event, anything else → rejected on `mode`.
pub fn normalize(raw: &str) -> EventResult {
    let root = Validator::parse_root(raw)?;
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
    Ok(event(event_id, SOURCE, Timestamp::default()))
}

fn event(event_id: String, source: &str, occurred_at: Timestamp) -> NormalizedEvent {
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
    }
}

/// The batch entry point (the component's `normalize-batch`).
pub fn run(events: &[&str]) -> Vec<EventResult> {
    match plan(events) {
        Plan::Normal => events.iter().map(|e| normalize(e)).collect(),
        Plan::Spin => spin(),
        Plan::Alloc => hoard(),
        Plan::Panic => panic!("chaos plugin: panic requested"),
        Plan::Sleep => nap(),
        Plan::Inflate => events
            .iter()
            .map(|_| {
                let mut e = event("big".to_owned(), SOURCE, Timestamp::default());
                e.event_type = "x".repeat(1 << 20);
                Ok(e)
            })
            .collect(),
        Plan::WrongCount => {
            let mut out: Vec<EventResult> = events.iter().map(|e| normalize(e)).collect();
            out.pop();
            out
        }
        Plan::BadOutput => events
            .iter()
            .map(|_| {
                let bad = Timestamp {
                    seconds: 0,
                    nanoseconds: 2_000_000_000,
                };
                Ok(event("bad".to_owned(), "not-chaos", bad))
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

/// Sleeps an hour: a blocking host call, where a deadline by epoch
/// interruption alone could not stop it.
fn nap() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
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

    fn run_modes(modes: &[&str]) -> Vec<EventResult> {
        let texts = batch(modes);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        run(&refs)
    }

    fn plan_of(modes: &[&str]) -> Plan {
        let texts = batch(modes);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        plan(&refs)
    }

    #[test]
    fn identity_defaults() {
        let id = identity();
        assert_eq!(id.name, "chaos");
        assert!(!id.source.is_empty() && !id.version.is_empty());
    }

    #[test]
    fn plans() {
        assert_eq!(plan_of(&["ok", "reject"]), Plan::Normal);
        assert_eq!(plan_of(&["ok", "spin"]), Plan::Spin);
        assert_eq!(plan_of(&["alloc", "panic"]), Plan::Alloc);
        assert_eq!(plan_of(&["ok", "panic"]), Plan::Panic);
        assert_eq!(plan_of(&["wrong-count"]), Plan::WrongCount);
        assert_eq!(plan_of(&["ok", "sleep"]), Plan::Sleep);
        assert_eq!(plan_of(&["inflate"]), Plan::Inflate);
        assert_eq!(plan_of(&["bad-output", "ok"]), Plan::BadOutput);
        assert_eq!(plan(&["not json"]), Plan::Normal);
    }

    #[test]
    fn normal_mode() {
        let out = run_modes(&["ok", "reject"]);
        let ok = out[0].as_ref().unwrap();
        assert_eq!((ok.event_id.as_str(), ok.source.as_str()), ("e-ok", SOURCE));
        assert_eq!((ok.event_type.as_str(), ok.user_id.as_str()), ("test", "u"));
        assert_eq!(ok.occurred_at, Timestamp::default());
        assert_eq!(out[1].as_ref().unwrap_err()[0].field, "mode");
    }

    #[test]
    fn lying_modes() {
        assert_eq!(run_modes(&["ok", "ok", "wrong-count"]).len(), 2);
        let out = run_modes(&["ok", "bad-output"]);
        assert_eq!(out.len(), 2);
        let e = out[0].as_ref().unwrap();
        assert_eq!(
            (e.source.as_str(), e.occurred_at.nanoseconds),
            ("not-chaos", 2_000_000_000)
        );
    }
}
