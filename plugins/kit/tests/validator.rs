//! The kit's checks, one rule at a time.

use events_plugin_kit::json::Object;
use events_plugin_kit::{is_amount, EventTypes, FunnelStage, Issue, Timestamp, Validator};

fn obj(text: &str) -> Object<'_> {
    Validator::parse_root(text).unwrap()
}

/// Runs `check` on `{"f": <json>}` and returns (result, issues).
fn run<T>(
    json: &str,
    check: impl FnOnce(&mut Validator, &Object<'_>) -> Option<T>,
) -> (Option<T>, Vec<Issue>) {
    let text = format!(r#"{{"f":{json}}}"#);
    let o = obj(&text);
    let mut v = Validator::new();
    let r = check(&mut v, &o);
    (r, v.into_issues())
}

fn message(json: &str, check: impl FnOnce(&mut Validator, &Object<'_>) -> bool) -> String {
    let text = format!(r#"{{"f":{json}}}"#);
    let o = obj(&text);
    let mut v = Validator::new();
    check(&mut v, &o);
    let issues = v.into_issues();
    assert_eq!(issues.len(), 1, "{json}: {issues:?}");
    assert_eq!(issues[0].field, "a.f");
    issues[0].message.clone()
}

#[test]
fn root_must_be_a_json_object() {
    for bad in ["", "[]", "1", "null", "{", "{\"a\":1} {}", "\"x\""] {
        let issues = Validator::parse_root(bad).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field, "$", "{bad}");
    }
}

#[test]
fn required_fields() {
    let o = obj("{}");
    let mut v = Validator::new();
    assert!(v.string(&o, "data.user.userId").is_none());
    assert!(v.nullable_string(&o, "data.engagement.videoId").is_none());
    assert!(v.object(&o, "data").is_none());
    let issues = v.into_issues();
    assert_eq!(issues[0], Issue::new("data.user.userId", "is required"));
    assert_eq!(issues[1].message, "is required (null is allowed)");
    assert_eq!(issues[2].field, "data");
}

#[test]
fn strings() {
    assert_eq!(
        run(r#""""#, |v, o| v.string(o, "f").map(String::from))
            .0
            .as_deref(),
        Some("")
    );
    assert_eq!(
        message("12", |v, o| v.string(o, "a.f").is_some()),
        "must be a string, got 12"
    );
    assert_eq!(
        message("null", |v, o| v.string(o, "a.f").is_some()),
        "must be a string, got null"
    );
    assert_eq!(
        message("[1]", |v, o| v.string(o, "a.f").is_some()),
        "must be a string, got an array"
    );
    assert_eq!(
        message(r#""""#, |v, o| v.non_empty_string(o, "a.f").is_some()),
        "must be a non-empty string"
    );
    let ns =
        |v: &mut Validator, o: &Object<'_>| v.nullable_string(o, "f").map(|s| s.map(String::from));
    assert_eq!(run("null", ns).0, Some(None));
    assert_eq!(run(r#""x""#, ns).0, Some(Some("x".to_owned())));
    assert_eq!(
        message("false", |v, o| v.nullable_string(o, "a.f").is_some()),
        "must be a string, got false"
    );
}

#[test]
fn escaped_strings_are_decoded() {
    assert_eq!(
        run(r#""a\"b\u00e9""#, |v, o| v
            .string(o, "f")
            .map(str::to_owned))
        .0
        .as_deref(),
        Some("a\"bé")
    );
}

#[test]
fn enumerations_are_exact() {
    let allowed = &["male", "female", "non-binary"];
    assert_eq!(
        run(r#""non-binary""#, |v, o| v.enumeration(o, "f", allowed)).0,
        Some("non-binary")
    );
    assert_eq!(
        message(r#""alien""#, |v, o| v
            .enumeration(o, "a.f", allowed)
            .is_some()),
        r#"must be one of "male", "female", "non-binary", got "alien""#
    );
    for bad in [r#""Male""#, r#"" male""#, "1", "null"] {
        assert!(
            run(bad, |v, o| v.enumeration(o, "f", allowed)).0.is_none(),
            "{bad}"
        );
    }
}

#[test]
fn integers() {
    let age = |v: &mut Validator, o: &Object<'_>| v.integer(o, "a.f", 0, 150);
    for (ok, n) in [("0", 0), ("150", 150), ("30", 30)] {
        assert_eq!(run(ok, age).0, Some(n));
    }
    assert_eq!(
        message("30.0", |v, o| age(v, o).is_some()),
        "must be an integer, got 30.0"
    );
    assert_eq!(
        message(r#""30""#, |v, o| age(v, o).is_some()),
        r#"must be an integer, got "30""#
    );
    assert_eq!(
        message("true", |v, o| age(v, o).is_some()),
        "must be an integer, got true"
    );
    assert_eq!(
        message("1e2", |v, o| age(v, o).is_some()),
        "must be an integer, got 100.0"
    );
    assert_eq!(
        message("151", |v, o| age(v, o).is_some()),
        "must be between 0 and 150, got 151"
    );
    assert_eq!(
        message("-1", |v, o| age(v, o).is_some()),
        "must be between 0 and 150, got -1"
    );
    let followers =
        |v: &mut Validator, o: &Object<'_>| v.integer(o, "a.f", 0, i128::from(u64::MAX));
    assert_eq!(
        run("18446744073709551615", followers).0,
        Some(i128::from(u64::MAX))
    );
    assert_eq!(
        message("-5", |v, o| followers(v, o).is_some()),
        "must be >= 0, got -5"
    );
    assert!(run("18446744073709551616", followers).0.is_none());
}

#[test]
fn numbers() {
    let pct = |v: &mut Validator, o: &Object<'_>| v.number(o, "a.f", 0.0, Some(100.0));
    for (ok, n) in [
        ("0", 0.0),
        ("100", 100.0),
        ("12.5", 12.5),
        ("1e1", 10.0),
        ("-0", 0.0),
    ] {
        assert_eq!(run(ok, pct).0, Some(n), "{ok}");
    }
    assert_eq!(
        message("true", |v, o| pct(v, o).is_some()),
        "must be a number, got true"
    );
    assert_eq!(
        message(r#""5""#, |v, o| pct(v, o).is_some()),
        r#"must be a number, got "5""#
    );
    assert_eq!(
        message("100.01", |v, o| pct(v, o).is_some()),
        "must be between 0 and 100, got 100.01"
    );
    let watch = |v: &mut Validator, o: &Object<'_>| v.number(o, "a.f", 0.0, None);
    assert_eq!(run("1e9", watch).0, Some(1e9));
    assert_eq!(
        message("-1", |v, o| watch(v, o).is_some()),
        "must be >= 0, got -1"
    );
    assert_eq!(
        message("-0.5", |v, o| watch(v, o).is_some()),
        "must be >= 0, got -0.5"
    );
}

#[test]
fn datetimes() {
    let t = run(r#""2024-03-01T14:34:56.250+02:00""#, |v, o| {
        v.datetime(o, "f")
    })
    .0;
    assert_eq!(
        t,
        Some(Timestamp {
            seconds: 1_709_296_496,
            nanoseconds: 250_000_000
        })
    );
    let m = message(r#""invalid-timestamp""#, |v, o| {
        v.datetime(o, "a.f").is_some()
    });
    assert!(
        m.contains("RFC 3339") && m.ends_with(r#"got "invalid-timestamp""#),
        "{m}"
    );
    assert_eq!(
        message("-1", |v, o| v.datetime(o, "a.f").is_some()),
        "must be a string, got -1"
    );
    assert!(run(r#""2024-02-30T00:00:00Z""#, |v, o| v.datetime(o, "f"))
        .0
        .is_none());
}

#[test]
fn amounts() {
    let amount =
        |v: &mut Validator, o: &Object<'_>| v.nullable_amount(o, "f").map(|s| s.map(String::from));
    for ok in [
        "0",
        "7",
        "0.5",
        "123.45",
        "007",
        "10.00",
        "999999999999999.99",
    ] {
        assert!(is_amount(ok), "{ok}");
        assert_eq!(
            run(&format!("\"{ok}\""), amount).0,
            Some(Some(ok.to_owned()))
        );
    }
    for bad in [
        "",
        "-1",
        "+1",
        "1e3",
        "1.234",
        ".5",
        "5.",
        "1.2.3",
        " 5",
        "5 ",
        "5\n",
        "١",
        "0x10",
        "1,5",
        "NaN",
        "1000000000000000",
        "99999999999999999999999999999.99",
    ] {
        assert!(!is_amount(bad), "{bad:?}");
    }
    assert_eq!(run("null", amount).0, Some(None));
    assert_eq!(
        message("12.5", |v, o| v.nullable_amount(o, "a.f").is_some()),
        r#"must be a decimal string like "123.45", got 12.5"#
    );
    assert_eq!(
        message(r#""1.234""#, |v, o| v.nullable_amount(o, "a.f").is_some()),
        r#"must be a decimal string matching ^[0-9]{1,15}(\.[0-9]{1,2})?$, got "1.234""#
    );
}

const TYPES: EventTypes = EventTypes {
    top: &["view"],
    bottom: &["buy"],
};

fn envelope_issues(text: &str) -> Vec<Issue> {
    let root = obj(text);
    let mut v = Validator::new();
    v.envelope(&root, "src", &TYPES);
    v.into_issues()
}

#[test]
fn envelope_valid() {
    let text = r#"{"eventId":"e","timestamp":"2024-01-01T00:00:00Z","source":"src","funnelStage":"bottom",
        "eventType":"buy","data":{"user":{},"engagement":{}},"extra":[1,{"x":null}]}"#;
    let root = obj(text);
    let mut v = Validator::new();
    let env = v.envelope(&root, "src", &TYPES);
    assert!(v.is_ok(), "{:?}", v.issues());
    assert_eq!(env.event_id, Some("e"));
    assert_eq!(env.funnel_stage, Some(FunnelStage::Bottom));
    assert_eq!(env.event_type, Some("buy"));
    assert!(env.user.is_some() && env.engagement.is_some());
}

#[test]
fn envelope_collects_every_issue() {
    let issues = envelope_issues(
        r#"{"eventId":"","timestamp":"nope","source":"other","funnelStage":"middle","eventType":["x"],"data":{"user":1}}"#,
    );
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "eventId",
            "timestamp",
            "source",
            "funnelStage",
            "eventType",
            "data.user",
            "data.engagement"
        ]
    );
    assert_eq!(
        issues[2].message,
        r#"must be "src" (the source this plugin owns), got "other""#
    );
    assert_eq!(issues[4].message, "must be a string, got an array");
    let issues = envelope_issues("{}");
    assert_eq!(issues.len(), 6, "{issues:?}"); // data missing: no data.* cascade
}

#[test]
fn event_type_must_match_the_stage() {
    let base = r#"{"eventId":"e","timestamp":"2024-01-01T00:00:00Z","source":"src","data":{"user":{},"engagement":{}},"#;
    let issues = envelope_issues(&format!(r#"{base}"funnelStage":"top","eventType":"buy"}}"#));
    assert_eq!(
        issues,
        vec![Issue::new(
            "eventType",
            r#""buy" is a bottom-funnel event type but funnelStage is "top""#
        )]
    );
    let issues = envelope_issues(&format!(
        r#"{base}"funnelStage":"top","eventType":"sell"}}"#
    ));
    assert_eq!(
        issues[0].message,
        r#"must be one of "view", "buy", got "sell""#
    );
    // with an invalid stage, a known event type is not blamed
    let issues = envelope_issues(&format!(r#"{base}"funnelStage":"x","eventType":"buy"}}"#));
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].field, "funnelStage");
}
