//! TEMPLATE source plugin — copy this crate to start a new source.
//!
//! It validates an imaginary source `"example"` whose events look like
//!
//! ```json
//! {"eventId":"ex-1","timestamp":"2024-03-01T12:00:00Z","source":"example",
//!  "funnelStage":"bottom","eventType":"purchase",
//!  "data":{"user":{"userId":"u1","country":"DE"},
//!          "engagement":{"amount":"19.99"}}}
//! ```
//!
//! To make your own:
//! 1. Set [`SOURCE`] (must match `^[a-z0-9_-]{1,32}$`) and the name in [`identity`].
//! 2. List your event types per funnel stage in [`EVENT_TYPES`].
//! 3. In [`normalize`], check your `data.user` and `data.engagement` fields with the
//!    kit's [`Validator`] (each check records an issue and returns `None` when the field is
//!    wrong, so every problem of an event is reported at once), then fill the
//!    [`NormalizedEvent`].
//! 4. Add native tests (see the bottom of this file), run `scripts/build-plugins.sh`, and try
//!    the component with `events-host plugin check <file.wasm> sample.json...`.

use events_plugin_kit::{
    Demographics, EventResult, EventTypes, FunnelStage, Identity, NormalizedEvent, Validator,
};

// The wit-bindgen glue exists only in the wasm build.
#[cfg(target_arch = "wasm32")]
mod component;

/// The `source` value this plugin owns; events with another source are rejected.
pub const SOURCE: &str = "example";

/// Allowed `eventType`s per `funnelStage` (the kit checks both and that they agree).
pub const EVENT_TYPES: EventTypes = EventTypes {
    top: &["page.view"],
    bottom: &["purchase"],
};

/// Who the plugin is: returned once after instantiation, must be constant.
pub fn identity() -> Identity {
    Identity {
        name: "example".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        source: SOURCE.to_owned(),
    }
}

/// One result per input, in order (the native batch API; the component calls [`normalize`] per
/// event).
pub fn normalize_batch(events: &[&str]) -> Vec<EventResult> {
    events.iter().map(|e| normalize(e)).collect()
}

/// Validates and normalizes one event (JSON text): the normalized event, or every issue found.
/// No need to echo the input: the host stores exactly the bytes it sent.
pub fn normalize(raw: &str) -> EventResult {
    // Parse once (zero-copy); invalid JSON or a non-object is reported on field `$`.
    let root = Validator::parse_root(raw)?;
    let mut v = Validator::new();

    // eventId, timestamp, source, funnelStage, eventType, data, data.user, data.engagement.
    let env = v.envelope(&root, SOURCE, &EVENT_TYPES);

    // Source-specific fields. Paths are full JSON paths; the last segment is the key.
    let mut user_id = None;
    let mut country = None;
    if let Some(user) = env.user {
        user_id = v.string(user, "data.user.userId");
        // "string or null": must be present, null allowed → Some(None) when null.
        country = v.nullable_string(user, "data.user.country");
    }

    // The engagement shape depends on the funnel stage.
    let mut amount = None;
    match (env.engagement, env.funnel_stage) {
        (Some(eng), Some(FunnelStage::Top)) => {
            v.string(eng, "data.engagement.url");
        }
        (Some(eng), Some(FunnelStage::Bottom)) => {
            amount = v.nullable_amount(eng, "data.engagement.amount").flatten();
        }
        _ => {} // invalid stage: already reported
    }
    // Other helpers: v.integer(obj, path, min, max), v.number(obj, path, min, max),
    // v.enumeration(obj, path, &["a", "b"]), v.datetime(obj, path), v.object(obj, path).

    // Any issue → reject with all of them.
    v.finish()?;
    // With no issue every required value is Some; the else branch cannot happen.
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
        revenue: amount
            .filter(|_| event_type == "purchase")
            .map(str::to_owned),
        campaign_id: None,
        demographics: Demographics {
            country: country.flatten().map(str::to_owned),
            ..Demographics::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"eventId":"ex-1","timestamp":"2024-03-01T14:00:00+02:00",
        "source":"example","funnelStage":"bottom","eventType":"purchase",
        "data":{"user":{"userId":"u1","country":null},"engagement":{"amount":"19.99"}}}"#;

    #[test]
    fn valid_event_normalizes() {
        let e = normalize(OK).unwrap();
        assert_eq!(e.occurred_at.seconds, 1_709_294_400);
        assert_eq!(e.revenue.as_deref(), Some("19.99"));
        assert_eq!(e.demographics.country, None);
        assert_eq!(normalize_batch(&[OK, "{}"]).len(), 2);
    }

    #[test]
    fn every_issue_is_reported() {
        let bad = OK.replace(r#""19.99""#, "19.99").replace(r#""u1""#, "1");
        let issues = normalize(&bad).unwrap_err();
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["data.user.userId", "data.engagement.amount"]);
    }
}
