//! The gateway's cheap, native look at a request: split the body into raw
//! events without copying them, and check each one's envelope. Full
//! validation is the plugin's job, once, in the collector.
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a body as a whole is refused (400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be a JSON array of events or a single event object")]
    Shape,
    /// Answered 413: per-element state would cost far more than the bytes.
    #[error("body has at least {found} elements, more than the {max} a request may carry (GATEWAY_MAX_EVENTS)")]
    TooManyElements { found: usize, max: usize },
}

/// Longest `eventId` taken, in bytes: ids are indexed and carried in
/// headers and dead letters, so they are bounded.
pub const MAX_EVENT_ID_BYTES: usize = 256;

/// Deepest nesting of arrays and objects a body may have (the outer array
/// counts as one level).
pub const MAX_DEPTH: usize = 128;

/// Splits a body into its events' raw JSON, borrowed from `body`; at most
/// `max_elements` of them.
pub fn split(body: &[u8], max_elements: usize) -> Result<Vec<&RawValue>, BodyError> {
    // serde_json does not apply its recursion limit to values it keeps raw,
    // so the depth is checked first, in one cheap pass, which also counts
    // the elements before any per-element memory is spent.
    let scan = scan(body, max_elements);
    if let Some(depth) = scan.too_deep {
        return Err(BodyError::Json(format!(
            "nesting deeper than {MAX_DEPTH} levels (at least {depth})"
        )));
    }
    if scan.elements > max_elements {
        return Err(BodyError::TooManyElements {
            found: scan.elements,
            max: max_elements,
        });
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => serde_json::from_slice::<Vec<&RawValue>>(body)
            .map_err(|e| BodyError::Json(e.to_string())),
        Some(b'{') => serde_json::from_slice::<&RawValue>(body)
            .map(|v| vec![v])
            .map_err(|e| BodyError::Json(e.to_string())),
        Some(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(BodyError::Shape),
            Err(e) => Err(BodyError::Json(e.to_string())),
        },
        None => Err(BodyError::Json("empty body".into())),
    }
}

struct Scan {
    /// `Some(depth)` when brackets outside strings nest deeper than
    /// [`MAX_DEPTH`].
    too_deep: Option<usize>,
    /// Elements of a top-level array (an upper bound for malformed input),
    /// counted up to just past `max_elements`.
    elements: usize,
}

fn scan(body: &[u8], max_elements: usize) -> Scan {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut elements, mut array_root, mut seen_value) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if depth == 1
            && array_root
            && !b.is_ascii_whitespace()
            && b != b','
            && b != b']'
            && !seen_value
        {
            seen_value = true;
            elements += 1;
            if elements > max_elements {
                break;
            }
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                if depth == 0 && b == b'[' {
                    array_root = true;
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Scan {
                        too_deep: Some(depth),
                        elements,
                    };
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => seen_value = false,
            _ => {}
        }
    }
    Scan {
        too_deep: None,
        elements,
    }
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "eventId", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(rename = "funnelStage", borrow, default)]
    funnel_stage: Option<&'a RawValue>,
    #[serde(rename = "eventType", borrow, default)]
    event_type: Option<&'a RawValue>,
}

/// What the envelope check learned about one event.
#[derive(Debug, Default, PartialEq)]
pub struct Envelope {
    pub event_id: Option<String>,
    pub source: Option<String>,
    pub funnel_stage: Option<String>,
    pub event_type: Option<String>,
    /// `field: message` reasons; empty when the envelope is acceptable.
    pub reasons: Vec<(String, String)>,
}

fn as_string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// Checks that `raw` is an object with a string `eventId` and a `source` for
/// which `has_source` is true.
pub fn check(raw: &RawValue, has_source: impl Fn(&str) -> bool) -> Envelope {
    let mut env = Envelope::default();
    if !raw.get().starts_with('{') {
        env.reasons
            .push(("$".into(), "event must be a JSON object".into()));
        return env;
    }
    let fields: Fields = match serde_json::from_str(raw.get()) {
        Ok(f) => f,
        Err(e) => {
            env.reasons
                .push(("$".into(), format!("malformed event: {e}")));
            return env;
        }
    };
    env.event_id = as_string(fields.event_id);
    env.source = as_string(fields.source);
    env.funnel_stage = as_string(fields.funnel_stage);
    env.event_type = as_string(fields.event_type);
    match (&fields.event_id, &env.event_id) {
        (None, _) => env.reasons.push(("eventId".into(), "is required".into())),
        (Some(_), None) => env
            .reasons
            .push(("eventId".into(), "must be a string".into())),
        (Some(_), Some(id)) if id.is_empty() => env
            .reasons
            .push(("eventId".into(), "must not be empty".into())),
        (Some(_), Some(id)) if id.len() > MAX_EVENT_ID_BYTES => env.reasons.push((
            "eventId".into(),
            format!("is {} bytes, more than {MAX_EVENT_ID_BYTES}", id.len()),
        )),
        (Some(_), Some(id)) if id.chars().any(char::is_control) => env.reasons.push((
            "eventId".into(),
            "must not contain control characters (NUL, newlines, ...)".into(),
        )),
        _ => {}
    }
    match (&fields.source, &env.source) {
        (None, _) => env.reasons.push(("source".into(), "is required".into())),
        (Some(_), None) => env
            .reasons
            .push(("source".into(), "must be a string".into())),
        (Some(_), Some(s)) if !has_source(s) => env.reasons.push((
            "source".into(),
            format!(
                "unknown source {:?}: no plugin is loaded for it",
                s.chars().take(64).collect::<String>()
            ),
        )),
        _ => {}
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(s: &str) -> bool {
        s == "facebook"
    }

    #[test]
    fn splits_arrays_and_single_objects_without_copying() {
        let body = br#" [ {"a":1}, {"b":[2]} ] "#;
        let parts = split(body, usize::MAX).unwrap();
        assert_eq!(
            parts.iter().map(|p| p.get()).collect::<Vec<_>>(),
            [r#"{"a":1}"#, r#"{"b":[2]}"#]
        );
        assert_eq!(split(br#"{"x":1}"#, usize::MAX).unwrap().len(), 1);
        assert_eq!(split(b"[]", usize::MAX).unwrap().len(), 0);
    }

    #[test]
    fn refuses_bad_bodies() {
        assert!(matches!(split(b"42", usize::MAX), Err(BodyError::Shape)));
        assert!(matches!(split(b"\"x\"", usize::MAX), Err(BodyError::Shape)));
        assert!(matches!(split(b"[1,", usize::MAX), Err(BodyError::Json(_))));
        assert!(matches!(split(b"", usize::MAX), Err(BodyError::Json(_))));
        let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            split(deep.as_bytes(), usize::MAX),
            Err(BodyError::Json(_))
        ));
        let ok_depth = format!("[{}{}]", "[".repeat(127), "]".repeat(127));
        assert!(split(ok_depth.as_bytes(), usize::MAX).is_ok());
        // Brackets inside strings do not count.
        let in_string = format!(
            r#"[{{"eventId":"{}\\\"{}"}}]"#,
            "[".repeat(300),
            "{".repeat(300)
        );
        assert_eq!(split(in_string.as_bytes(), usize::MAX).unwrap().len(), 1);
    }

    #[test]
    fn element_counts_are_bounded_before_parsing() {
        assert!(split(b"[1,2,3]", 3).is_ok());
        assert!(matches!(
            split(b"[1,2,3,4]", 3),
            Err(BodyError::TooManyElements { found: 4, max: 3 })
        ));
        // Commas inside strings and nested values do not count.
        let body = br#"[{"a":[1,2,3],"b":"x,y,z"} , "p,q" ,[4,5]]"#;
        assert_eq!(split(body, 3).unwrap().len(), 3);
        assert!(split(body, 2).is_err());
        assert!(split(b"[]", 0).is_ok());
        assert_eq!(split(br#"{"x":[1,2,3]}"#, 1).unwrap().len(), 1);
        let bomb = format!("[{}1]", "1,".repeat(1_500_000));
        assert!(matches!(
            split(bomb.as_bytes(), 100_000),
            Err(BodyError::TooManyElements { found: 100_001, .. })
        ));
    }

    #[test]
    fn envelope_rules() {
        let raw = |s: &str| serde_json::from_str::<Box<RawValue>>(s).unwrap();
        let ok = check(
            &raw(
                r#"{"eventId":"fb-1","source":"facebook","eventType":"ad.view","extra":{"deep":[1]}}"#,
            ),
            known,
        );
        assert!(ok.reasons.is_empty());
        assert_eq!(ok.event_id.as_deref(), Some("fb-1"));
        assert_eq!(ok.event_type.as_deref(), Some("ad.view"));
        let cases = [
            (r#"[1]"#, "$"),
            (r#"{"source":"facebook"}"#, "eventId"),
            (r#"{"eventId":7,"source":"facebook"}"#, "eventId"),
            (r#"{"eventId":"x"}"#, "source"),
            (r#"{"eventId":"x","source":"myspace"}"#, "source"),
            (r#"{"eventId":"x","source":true}"#, "source"),
            (r#"{"eventId":"x","eventId":"y","source":"facebook"}"#, "$"),
            (r#"{"eventId":"a\u0000b","source":"facebook"}"#, "eventId"),
            (r#"{"eventId":"a\nb","source":"facebook"}"#, "eventId"),
        ];
        for (json, field) in cases {
            let env = check(&raw(json), known);
            assert_eq!(
                env.reasons.first().map(|r| r.0.as_str()),
                Some(field),
                "{json}"
            );
        }
        let long = format!(r#"{{"eventId":"{}","source":"facebook"}}"#, "x".repeat(257));
        assert_eq!(check(&raw(&long), known).reasons[0].0, "eventId");
        let fits = format!(r#"{{"eventId":"{}","source":"facebook"}}"#, "é".repeat(128));
        assert!(check(&raw(&fits), known).reasons.is_empty());
        // An eventType that is not a string is the plugin's business.
        assert!(check(
            &raw(r#"{"eventId":"x","source":"facebook","eventType":[1]}"#),
            known
        )
        .reasons
        .is_empty());
    }
}
