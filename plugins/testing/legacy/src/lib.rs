//! The legacy plugin: a test plugin built against the PREVIOUS WIT contract,
//! `wit/v0.1.0/source-plugin.wit` (`marketing:events@0.1.0`), for the host's compatibility tests.
//! Never deployed. Built by `scripts/build-plugins.sh` into `test-plugins/legacy-v0.1.wasm`.
//!
//! Identity: name `legacy`, version `0.1.0`, source `legacy`.
//!
//! It validates Facebook-shaped events with `"source":"legacy"`, minimally: the kit's envelope
//! (`eventId` non-empty string, `timestamp` RFC 3339 via `events_plugin_kit::time`, `source`,
//! `funnelStage` `top`/`bottom`, `eventType` one of the Facebook types of that stage, objects
//! `data`, `data.user`, `data.engagement`) plus `data.user.userId` (string). Anything else is
//! rejected with issues naming the fields. An ok event carries event id, source, time, stage,
//! type and user id; no revenue, campaign or demographics.
//!
//! **It lies about `raw`.** Contract 0.1.0 makes a plugin echo each event's raw JSON in the
//! normalized event; this plugin echoes a DIFFERENT text than it was given ([`echoed_raw`]: the
//! input with `"tampered":true` inserted as the object's first member). The host must ignore a
//! 0.1.0 plugin's echoed `raw` and store the bytes it sent; the host test proves it with this
//! component.
//!
//! Native API (tests): [`identity`], [`normalize`], [`normalize_batch`], [`echoed_raw`].

use events_plugin_kit::{
    Demographics, EventResult, EventTypes, Identity, NormalizedEvent, Validator,
};

#[cfg(target_arch = "wasm32")]
mod component;

/// The source this plugin owns.
pub const SOURCE: &str = "legacy";

/// The version this plugin reports.
pub const VERSION: &str = "0.1.0";

/// The Facebook event types per funnel stage.
pub const EVENT_TYPES: EventTypes = EventTypes {
    top: &["ad.view", "page.like", "comment", "video.view"],
    bottom: &["ad.click", "form.submission", "checkout.complete"],
};

/// The member inserted into the echoed raw.
pub const TAMPER: &str = r#""tampered":true"#;

/// name `legacy`, version `0.1.0`, source `legacy`.
pub fn identity() -> Identity {
    Identity {
        name: "legacy".to_owned(),
        version: VERSION.to_owned(),
        source: SOURCE.to_owned(),
    }
}

/// Validates and normalizes one event. `Err` lists every issue found.
pub fn normalize(raw: &str) -> EventResult {
    let root = Validator::parse_root(raw)?;
    let mut v = Validator::new();
    let env = v.envelope(&root, SOURCE, &EVENT_TYPES);
    let user_id = env.user.and_then(|u| v.string(u, "data.user.userId"));
    v.finish()?;
    let (Some(event_id), Some(occurred_at), Some(funnel_stage), Some(event_type), Some(user_id)) = (
        env.event_id,
        env.occurred_at,
        env.funnel_stage,
        env.event_type,
        user_id,
    ) else {
        return Err(Validator::inconsistent());
    };
    Ok(NormalizedEvent {
        event_id: event_id.to_owned(),
        source: SOURCE.to_owned(),
        occurred_at,
        funnel_stage,
        event_type: event_type.to_owned(),
        user_id: user_id.to_owned(),
        revenue: None,
        campaign_id: None,
        demographics: Demographics::default(),
    })
}

/// One result per input, in order.
pub fn normalize_batch(events: &[&str]) -> Vec<EventResult> {
    events.iter().map(|e| normalize(e)).collect()
}

/// The `raw` the component echoes for an ok event: never the input. `{…}` becomes
/// `{"tampered":true,…}` (leading whitespace dropped), anything else `{"tampered":true}`.
pub fn echoed_raw(raw: &str) -> String {
    match raw.trim_start().strip_prefix('{') {
        Some(rest) if !rest.trim_start().starts_with('}') => format!("{{{TAMPER},{rest}"),
        _ => format!("{{{TAMPER}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_plugin_kit::FunnelStage;

    const OK: &str = r#"{"eventId":"lg-1","timestamp":"2024-03-01T14:00:00.5+02:00",
        "source":"legacy","funnelStage":"bottom","eventType":"ad.click",
        "data":{"user":{"userId":"u1"},"engagement":{"adId":"a"}}}"#;

    #[test]
    fn identity_is_legacy() {
        let id = identity();
        assert_eq!(
            (id.name.as_str(), id.version.as_str(), id.source.as_str()),
            ("legacy", "0.1.0", "legacy")
        );
    }

    #[test]
    fn valid_event_normalizes() {
        let e = normalize(OK).unwrap();
        assert_eq!((e.event_id.as_str(), e.source.as_str()), ("lg-1", "legacy"));
        assert_eq!(
            (e.occurred_at.seconds, e.occurred_at.nanoseconds),
            (1_709_294_400, 500_000_000)
        );
        assert_eq!(e.funnel_stage, FunnelStage::Bottom);
        assert_eq!(
            (e.event_type.as_str(), e.user_id.as_str()),
            ("ad.click", "u1")
        );
    }

    #[test]
    fn invalid_fields_are_named() {
        let bad = OK
            .replace("\"legacy\"", "\"facebook\"")
            .replace("14:00:00.5", "25:00:00")
            .replace("\"u1\"", "1");
        let fields: Vec<String> = normalize(&bad)
            .unwrap_err()
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert_eq!(fields, ["timestamp", "source", "data.user.userId"]);
        let top_with_bottom_type = OK.replace("\"bottom\"", "\"top\"");
        assert_eq!(
            normalize(&top_with_bottom_type).unwrap_err()[0].field,
            "eventType"
        );
        assert_eq!(normalize("[1]").unwrap_err()[0].field, "$");
        assert_eq!(normalize_batch(&[OK, "{}"]).len(), 2);
    }

    #[test]
    fn echoed_raw_differs_from_the_input() {
        let echoed = echoed_raw(OK);
        assert_ne!(echoed, OK);
        assert!(
            echoed.starts_with(r#"{"tampered":true,"eventId":"lg-1""#),
            "{echoed}"
        );
        assert_eq!(echoed_raw(" {} "), r#"{"tampered":true}"#);
        assert_eq!(echoed_raw("[]"), r#"{"tampered":true}"#);
    }
}
