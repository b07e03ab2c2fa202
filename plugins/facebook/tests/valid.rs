//! Facebook: every valid shape of docs/events.md and its normalization.

mod common;

use common::{bottom, ok, rejected_on, top, with};
use events_plugin_kit::FunnelStage;
use facebook_plugin::{identity, normalize};
use serde_json::{json, Value};

#[test]
fn identity_is_facebook() {
    let id = identity();
    assert_eq!(
        (id.name.as_str(), id.source.as_str()),
        ("facebook", "facebook")
    );
    assert_eq!(id.version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_top_event_type_normalizes() {
    for t in ["ad.view", "page.like", "comment", "video.view"] {
        let e = ok(&top(t));
        assert_eq!(e.event_type, t);
        assert_eq!(e.funnel_stage, FunnelStage::Top);
        assert_eq!(
            (e.event_id.as_str(), e.source.as_str(), e.user_id.as_str()),
            ("fb-1", "facebook", "u-1")
        );
        assert_eq!(
            (e.occurred_at.seconds, e.occurred_at.nanoseconds),
            (1_709_296_496, 789_000_000)
        );
        assert_eq!((e.revenue, e.campaign_id), (None, None));
        let d = e.demographics;
        assert_eq!((d.age, d.gender.as_deref()), (Some(30), Some("female")));
        assert_eq!(
            (d.country.as_deref(), d.city.as_deref()),
            (Some("DE"), Some("Berlin"))
        );
        assert_eq!((d.followers, d.device), (None, None));
    }
    ok(&with(
        top("video.view"),
        "/data/engagement/videoId",
        Some(json!("v-1")),
    ));
}

#[test]
fn every_bottom_event_type_normalizes() {
    for t in ["ad.click", "form.submission", "checkout.complete"] {
        let e = ok(&bottom(t));
        assert_eq!(e.funnel_stage, FunnelStage::Bottom);
        assert_eq!(e.campaign_id.as_deref(), Some("cmp-3"));
        // revenue only on checkout.complete
        let revenue = (t == "checkout.complete").then(|| "123.45".to_owned());
        assert_eq!(e.revenue, revenue, "{t}");
        assert_eq!(e.demographics.device, None);
    }
}

#[test]
fn revenue_amounts_as_given() {
    for amount in ["0.5", "7", "123.45", "0", "007.10"] {
        let doc = with(
            bottom("checkout.complete"),
            "/data/engagement/purchaseAmount",
            Some(json!(amount)),
        );
        assert_eq!(ok(&doc).revenue.as_deref(), Some(amount));
    }
    let doc = with(
        bottom("checkout.complete"),
        "/data/engagement/purchaseAmount",
        Some(Value::Null),
    );
    assert_eq!(ok(&doc).revenue, None);
    for bad in [
        json!("-1"),
        json!("1e3"),
        json!("1.234"),
        json!(12.5),
        json!(7),
        json!(""),
        json!(true),
    ] {
        let doc = with(
            bottom("checkout.complete"),
            "/data/engagement/purchaseAmount",
            Some(bad),
        );
        rejected_on(doc, "data.engagement.purchaseAmount");
    }
    // an amount is validated on every bottom event, even without revenue
    let doc = with(
        bottom("ad.click"),
        "/data/engagement/purchaseAmount",
        Some(json!("1.234")),
    );
    rejected_on(doc, "data.engagement.purchaseAmount");
}

#[test]
fn offsets_normalize_to_utc() {
    let doc = with(
        top("comment"),
        "/timestamp",
        Some(json!("2024-03-01T14:34:56.789+02:00")),
    );
    assert_eq!(ok(&doc).occurred_at.seconds, 1_709_296_496);
    let doc = with(
        top("comment"),
        "/timestamp",
        Some(json!("2024-03-01T12:34:56Z")),
    );
    assert_eq!(ok(&doc).occurred_at.nanoseconds, 0);
    let doc = with(
        top("comment"),
        "/data/engagement/actionTime",
        Some(json!("2024-02-29T23:00:00-05:00")),
    );
    ok(&doc);
}

#[test]
fn unknown_fields_and_whitespace_are_ignored() {
    let doc = with(
        top("comment"),
        "/data/user/extra",
        Some(json!({"nested": [1, 2]})),
    );
    let doc = with(doc, "/campaign", Some(json!("x")));
    let doc = with(
        doc,
        "/data/engagement/purchaseAmount",
        Some(json!("ignored on top")),
    );
    let raw = format!("  {}\n", doc);
    assert_eq!(normalize(&raw).unwrap(), ok(&top("comment")));
}
