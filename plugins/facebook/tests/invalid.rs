//! Facebook: each rejection rule of docs/events.md.

mod common;

use common::{bottom, ok, rejected, rejected_on, top, with};
use facebook_plugin::{normalize, normalize_batch};
use serde_json::{json, Value};

#[test]
fn nullable_fields_must_be_present() {
    rejected_on(
        with(top("video.view"), "/data/engagement/videoId", None),
        "data.engagement.videoId",
    );
    rejected_on(
        with(
            bottom("checkout.complete"),
            "/data/engagement/purchaseAmount",
            None,
        ),
        "data.engagement.purchaseAmount",
    );
    rejected_on(
        with(top("ad.view"), "/data/engagement/videoId", Some(json!(5))),
        "data.engagement.videoId",
    );
}

#[test]
fn publisher_corruptions_are_rejected() {
    rejected_on(
        with(
            top("ad.view"),
            "/timestamp",
            Some(json!("invalid-timestamp")),
        ),
        "timestamp",
    );
    rejected_on(with(top("ad.view"), "/eventId", None), "eventId");
    rejected_on(
        with(top("ad.view"), "/data/user/name", None),
        "data.user.name",
    );
    rejected_on(with(top("ad.view"), "/data/user", None), "data.user");
    rejected_on(
        with(bottom("ad.click"), "/eventType", Some(json!(["ad.click"]))),
        "eventType",
    );
    rejected_on(
        with(
            top("ad.view"),
            "/data/engagement/actionTime",
            Some(json!(-1)),
        ),
        "data.engagement.actionTime",
    );
    rejected_on(
        with(bottom("ad.click"), "/data/engagement/adId", None),
        "data.engagement.adId",
    );
    rejected_on(
        with(top("ad.view"), "/data/user/gender", Some(json!("alien"))),
        "data.user.gender",
    );
    // invalid stage: the engagement shape cannot be checked, only the stage is blamed
    rejected_on(
        with(top("ad.view"), "/funnelStage", Some(json!("invalid-stage"))),
        "funnelStage",
    );
}

#[test]
fn envelope_rules() {
    rejected_on(
        with(top("ad.view"), "/source", Some(json!("tiktok"))),
        "source",
    );
    rejected_on(with(top("ad.view"), "/source", None), "source");
    rejected_on(with(top("ad.view"), "/eventId", Some(json!(""))), "eventId");
    rejected_on(with(top("ad.view"), "/eventId", Some(json!(17))), "eventId");
    rejected_on(
        with(top("ad.view"), "/eventType", Some(json!("like"))),
        "eventType",
    );
    rejected_on(
        with(top("ad.view"), "/eventType", Some(json!("ad.click"))),
        "eventType",
    );
    rejected_on(
        with(bottom("ad.click"), "/eventType", Some(json!("ad.view"))),
        "eventType",
    );
    rejected_on(with(top("ad.view"), "/data", Some(json!([]))), "data");
    rejected_on(
        with(
            top("ad.view"),
            "/timestamp",
            Some(json!("2024-02-30T00:00:00Z")),
        ),
        "timestamp",
    );
    rejected_on(
        with(
            top("ad.view"),
            "/timestamp",
            Some(json!("2024-03-01T24:00:00Z")),
        ),
        "timestamp",
    );
    for text in ["", "not json", "[]", "{\"eventId\":"] {
        let issues = normalize(text).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field, "$");
    }
}

#[test]
fn user_rules() {
    for age in [json!(0), json!(150)] {
        assert!(normalize(&with(top("comment"), "/data/user/age", Some(age)).to_string()).is_ok());
    }
    for bad in [
        json!(30.0),
        json!("30"),
        json!(true),
        json!(151),
        json!(-1),
        json!(1e3),
        json!(null),
    ] {
        rejected_on(
            with(top("comment"), "/data/user/age", Some(bad)),
            "data.user.age",
        );
    }
    let msg = normalize(&with(top("comment"), "/data/user/age", Some(json!(30.0))).to_string())
        .unwrap_err();
    assert_eq!(msg[0].message, "must be an integer, got 30.0");
    for g in ["male", "female", "non-binary"] {
        ok(&with(top("comment"), "/data/user/gender", Some(json!(g))));
    }
    rejected_on(
        with(top("comment"), "/data/user/gender", Some(json!("Male"))),
        "data.user.gender",
    );
    rejected_on(
        with(top("comment"), "/data/user/userId", Some(json!(5))),
        "data.user.userId",
    );
    rejected_on(
        with(top("comment"), "/data/user/location", Some(json!("DE"))),
        "data.user.location",
    );
    rejected_on(
        with(top("comment"), "/data/user/location/city", None),
        "data.user.location.city",
    );
    rejected_on(
        with(
            top("comment"),
            "/data/user/location/country",
            Some(Value::Null),
        ),
        "data.user.location.country",
    );
}

#[test]
fn engagement_enums() {
    for r in ["newsfeed", "marketplace", "groups"] {
        ok(&with(
            top("ad.view"),
            "/data/engagement/referrer",
            Some(json!(r)),
        ));
    }
    rejected_on(
        with(
            top("ad.view"),
            "/data/engagement/referrer",
            Some(json!("search")),
        ),
        "data.engagement.referrer",
    );
    for (field, good, bad) in [
        (
            "clickPosition",
            ["top_left", "bottom_right", "center"],
            "middle",
        ),
        ("device", ["mobile", "desktop", "mobile"], "tablet"),
        ("browser", ["Chrome", "Firefox", "Safari"], "chrome"),
    ] {
        let ptr = format!("/data/engagement/{field}");
        for g in good {
            ok(&with(bottom("ad.click"), &ptr, Some(json!(g))));
        }
        rejected_on(
            with(bottom("ad.click"), &ptr, Some(json!(bad))),
            &format!("data.engagement.{field}"),
        );
    }
    rejected_on(
        with(
            bottom("ad.click"),
            "/data/engagement/campaignId",
            Some(Value::Null),
        ),
        "data.engagement.campaignId",
    );
}

#[test]
fn engagement_shape_follows_the_stage() {
    // a top event carrying the bottom-funnel engagement: every top field is missing
    let mut doc = top("ad.view");
    doc["data"]["engagement"] = bottom("ad.click")["data"]["engagement"].clone();
    assert_eq!(
        rejected(&doc),
        [
            "data.engagement.actionTime",
            "data.engagement.referrer",
            "data.engagement.videoId"
        ]
    );
    let mut doc = bottom("ad.click");
    doc["data"]["engagement"] = top("ad.view")["data"]["engagement"].clone();
    assert_eq!(rejected(&doc).len(), 6);
}

#[test]
fn all_issues_are_collected() {
    let mut doc = top("ad.view");
    doc["timestamp"] = json!("yesterday");
    doc["data"]["user"]["age"] = json!("30");
    doc["data"]["user"]["gender"] = json!("alien");
    doc["data"]["engagement"]["referrer"] = json!(null);
    let issues = normalize(&doc.to_string()).unwrap_err();
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "timestamp",
            "data.user.age",
            "data.user.gender",
            "data.engagement.referrer"
        ]
    );
    assert!(issues.iter().all(|i| !i.message.is_empty()));
}

#[test]
fn batch_keeps_order_and_is_deterministic() {
    let texts = [
        top("ad.view").to_string(),
        bottom("checkout.complete").to_string(),
    ];
    let batch = [texts[0].as_str(), "{}", texts[1].as_str()];
    let a = normalize_batch(&batch);
    assert_eq!(a.len(), 3);
    assert!(a[0].is_ok() && a[1].is_err() && a[2].is_ok());
    assert_eq!(a, normalize_batch(&batch));
    assert!(normalize_batch(&[]).is_empty());
}
