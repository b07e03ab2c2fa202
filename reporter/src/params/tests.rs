use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn win(from: Option<&str>, to: Option<&str>) -> Result<Option<Window>, Vec<ParamError>> {
    let mut c = Checker::default();
    let w = window(&mut c, from, to);
    c.finish().map(|_| w)
}

#[test]
fn bare_dates_cover_whole_days() {
    let w = win(Some("2024-01-31"), Some("2024-01-31"))
        .unwrap()
        .unwrap();
    assert_eq!(w.from, Some(t("2024-01-31T00:00:00Z")));
    assert_eq!(w.to, Some(t("2024-02-01T00:00:00Z")));
    let w = win(None, Some("2024-12-31")).unwrap().unwrap();
    assert_eq!(w.to, Some(t("2025-01-01T00:00:00Z")));
}

#[test]
fn offsets_are_converted_to_utc_and_nanoseconds_rounded_up() {
    let w = win(
        Some("2024-01-01T12:00:00+02:00"),
        Some("2024-01-01T10:00:00.0000001Z"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(w.from, Some(t("2024-01-01T10:00:00Z")));
    assert_eq!(w.to, Some(t("2024-01-01T10:00:00.000001Z")));
}

#[test]
fn empty_windows_are_valid_reversed_ones_are_not() {
    let w = win(Some("2024-01-02"), Some("2024-01-02T00:00:00Z"))
        .unwrap()
        .unwrap();
    assert!(w.is_empty());
    let e = win(
        Some("2024-01-02T00:00:00.000001Z"),
        Some("2024-01-02T00:00:00Z"),
    )
    .unwrap_err();
    assert_eq!(e[0].param, "from");
}

#[test]
fn garbage_is_refused_with_the_parameter_named() {
    for bad in [
        "",
        "now",
        "2024-1-01",
        "2024-01-01T10:00:00",
        "2024-01-01 10:00:00 02:00",
        "20240101",
    ] {
        let e = win(Some(bad), None).unwrap_err();
        assert_eq!(e[0].param, "from", "{bad}");
        let e = win(None, Some(bad)).unwrap_err();
        assert_eq!(e[0].param, "to", "{bad}");
    }
    assert!(win(Some("0000-12-31"), None).is_err());
    assert!(win(None, Some("9999-12-31")).is_err());
}

#[test]
fn sources_follow_the_plugin_rule() {
    assert!(source("facebook").is_ok());
    assert!(source("my_src-2").is_ok());
    assert!(source(&"a".repeat(32)).is_ok());
    for bad in ["", "Facebook", "face book", "fb;", &"a".repeat(33), "é"] {
        assert!(source(bad).is_err(), "{bad}");
    }
}

#[test]
fn limits_are_plain_integers_in_range() {
    assert_eq!(limit("1"), Ok(1));
    assert_eq!(limit("1000"), Ok(1000));
    for bad in [
        "0",
        "1001",
        "-1",
        "+5",
        " 5",
        "5.0",
        "",
        "99999999999999999999999",
    ] {
        assert!(limit(bad).is_err(), "{bad}");
    }
}

#[test]
fn default_granularity_counts_aligned_buckets() {
    let g = |a: &str, b: &str| Granularity::finest_for(t(a), t(b));
    assert_eq!(
        g("2024-01-01T00:00:00Z", "2024-01-01T08:20:00Z"),
        Granularity::Minute
    );
    assert_eq!(
        g("2024-01-01T00:00:01Z", "2024-01-01T08:20:01Z"),
        Granularity::Hour
    );
    assert_eq!(
        g("2024-01-01T00:00:00Z", "2024-01-21T20:00:00Z"),
        Granularity::Hour
    );
    assert_eq!(
        g("2024-01-01T00:00:00Z", "2024-01-21T20:00:01Z"),
        Granularity::Day
    );
    assert_eq!(
        g("2024-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        Granularity::Day
    );
    assert_eq!(
        g("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        Granularity::Minute
    );
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct Sample {
    from: Option<String>,
    funnel_stage: Option<String>,
}

#[test]
fn extraction_ignores_unknown_and_refuses_repeated_parameters() {
    let s: Sample = extract(Some("from=a%2Bb&funnelStage=top&x=1&x=2")).unwrap();
    assert_eq!(s.from.as_deref(), Some("a+b"));
    assert_eq!(s.funnel_stage.as_deref(), Some("top"));
    let s: Sample = extract(None).unwrap();
    assert!(s.from.is_none());
    let e = extract::<Sample>(Some("funnelStage=top&funnelStage=bottom")).unwrap_err();
    assert_eq!(e[0].param, "funnelStage");
}
