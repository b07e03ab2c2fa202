//! The TikTok rules of docs/events.md, each shape and each rejection.

use events_plugin_kit::{FunnelStage, NormalizedEvent};
use serde_json::{json, Value};
use tiktok_plugin::{identity, normalize, normalize_batch};

fn top(event_type: &str) -> Value {
    json!({
        "eventId": "ttk-1", "timestamp": "2024-03-01T12:34:56.789Z", "source": "tiktok",
        "funnelStage": "top", "eventType": event_type,
        "data": {
            "user": {"userId": "u-1", "username": "ann", "followers": 1200},
            "engagement": {"watchTime": 12.5, "percentageWatched": 80, "device": "iOS",
                           "country": "FR", "videoId": "v-1"}
        }
    })
}

fn bottom(event_type: &str) -> Value {
    json!({
        "eventId": "ttk-2", "timestamp": "2024-03-01T12:34:56.789Z", "source": "tiktok",
        "funnelStage": "bottom", "eventType": event_type,
        "data": {
            "user": {"userId": "u-2", "username": "bo", "followers": 0},
            "engagement": {"actionTime": "2024-03-01T12:34:50Z", "profileId": null,
                           "purchasedItem": "hat", "purchaseAmount": "7"}
        }
    })
}

/// `doc` with the value at JSON pointer `ptr` replaced (`Some`) or removed (`None`).
fn with(mut doc: Value, ptr: &str, new: Option<Value>) -> Value {
    let (parent, key) = ptr.rsplit_once('/').unwrap();
    let obj = doc.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match new {
        Some(v) => obj.insert(key.to_owned(), v),
        None => obj.remove(key),
    };
    doc
}

fn ok(doc: &Value) -> NormalizedEvent {
    let raw = doc.to_string();
    normalize(&raw).unwrap_or_else(|issues| panic!("{raw}\n{issues:?}"))
}

fn rejected(doc: &Value) -> Vec<String> {
    match normalize(&doc.to_string()) {
        Ok(e) => panic!("accepted: {doc}\n{e:?}"),
        Err(issues) => issues.into_iter().map(|i| i.field).collect(),
    }
}

fn rejected_on(doc: Value, field: &str) {
    assert_eq!(rejected(&doc), [field], "{doc}");
}

#[test]
fn identity_is_tiktok() {
    let id = identity();
    assert_eq!((id.name.as_str(), id.source.as_str()), ("tiktok", "tiktok"));
    assert_eq!(id.version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_top_event_type_normalizes() {
    for t in ["video.view", "like", "share", "comment"] {
        let e = ok(&top(t));
        assert_eq!(
            (e.event_type.as_str(), e.funnel_stage),
            (t, FunnelStage::Top)
        );
        assert_eq!(
            (e.event_id.as_str(), e.source.as_str(), e.user_id.as_str()),
            ("ttk-1", "tiktok", "u-1")
        );
        assert_eq!((e.revenue, e.campaign_id), (None, None));
        let d = e.demographics;
        assert_eq!(d.followers, Some(1200));
        assert_eq!(
            (d.country.as_deref(), d.device.as_deref()),
            (Some("FR"), Some("iOS"))
        );
        assert_eq!((d.age, d.gender, d.city), (None, None, None));
    }
}

#[test]
fn every_bottom_event_type_normalizes() {
    for t in ["profile.visit", "purchase", "follow"] {
        let e = ok(&bottom(t));
        assert_eq!(e.funnel_stage, FunnelStage::Bottom);
        assert_eq!(e.revenue, (t == "purchase").then(|| "7".to_owned()), "{t}");
        assert_eq!(e.campaign_id, None);
        let d = e.demographics;
        // country and device only on top-funnel events
        assert_eq!((d.followers, d.country, d.device), (Some(0), None, None));
    }
    let doc = with(
        bottom("profile.visit"),
        "/data/engagement/profileId",
        Some(json!("p-1")),
    );
    ok(&doc);
}

#[test]
fn purchase_amounts() {
    for amount in ["0.5", "7", "123.45", "10.00"] {
        let doc = with(
            bottom("purchase"),
            "/data/engagement/purchaseAmount",
            Some(json!(amount)),
        );
        assert_eq!(ok(&doc).revenue.as_deref(), Some(amount));
    }
    let doc = with(
        bottom("purchase"),
        "/data/engagement/purchaseAmount",
        Some(Value::Null),
    );
    assert_eq!(ok(&doc).revenue, None);
    for bad in [
        json!("-1"),
        json!("1e3"),
        json!("1.234"),
        json!(12.5),
        json!("12,50"),
        json!(false),
    ] {
        let doc = with(
            bottom("purchase"),
            "/data/engagement/purchaseAmount",
            Some(bad),
        );
        rejected_on(doc, "data.engagement.purchaseAmount");
    }
}

#[test]
fn nullable_fields() {
    for f in ["profileId", "purchasedItem", "purchaseAmount"] {
        let ptr = format!("/data/engagement/{f}");
        ok(&with(bottom("follow"), &ptr, Some(Value::Null)));
        rejected_on(
            with(bottom("follow"), &ptr, None),
            &format!("data.engagement.{f}"),
        );
        rejected_on(
            with(bottom("follow"), &ptr, Some(json!(1))),
            &format!("data.engagement.{f}"),
        );
    }
    // videoId is a plain string on top events: null is not allowed
    rejected_on(
        with(top("like"), "/data/engagement/videoId", Some(Value::Null)),
        "data.engagement.videoId",
    );
}

#[test]
fn followers() {
    ok(&with(
        top("like"),
        "/data/user/followers",
        Some(json!(u64::MAX)),
    ));
    for bad in [
        json!(-1),
        json!(1.5),
        json!(100.0),
        json!("not-a-number"),
        json!(true),
        json!(null),
    ] {
        rejected_on(
            with(top("like"), "/data/user/followers", Some(bad)),
            "data.user.followers",
        );
    }
}

#[test]
fn watch_numbers() {
    for (w, p) in [
        (json!(0), json!(0)),
        (json!(0.001), json!(100)),
        (json!(3600), json!(99.99)),
    ] {
        let doc = with(top("video.view"), "/data/engagement/watchTime", Some(w));
        ok(&with(doc, "/data/engagement/percentageWatched", Some(p)));
    }
    for bad in [json!(-1), json!(-0.5), json!(true), json!("5"), json!(null)] {
        rejected_on(
            with(top("like"), "/data/engagement/watchTime", Some(bad)),
            "data.engagement.watchTime",
        );
    }
    for bad in [
        json!(100.5),
        json!(-0.1),
        json!(101),
        json!(false),
        json!("50"),
    ] {
        rejected_on(
            with(top("like"), "/data/engagement/percentageWatched", Some(bad)),
            "data.engagement.percentageWatched",
        );
    }
}

#[test]
fn devices() {
    for d in ["Android", "iOS", "Desktop"] {
        assert_eq!(
            ok(&with(
                top("share"),
                "/data/engagement/device",
                Some(json!(d))
            ))
            .demographics
            .device
            .as_deref(),
            Some(d)
        );
    }
    for bad in ["ios", "mobile", "Windows"] {
        rejected_on(
            with(top("share"), "/data/engagement/device", Some(json!(bad))),
            "data.engagement.device",
        );
    }
}

#[test]
fn publisher_corruptions_are_rejected() {
    rejected_on(
        with(top("like"), "/timestamp", Some(json!("invalid-timestamp"))),
        "timestamp",
    );
    rejected_on(with(top("like"), "/eventId", None), "eventId");
    rejected_on(
        with(top("like"), "/data/user/username", None),
        "data.user.username",
    );
    rejected_on(with(bottom("follow"), "/data/user", None), "data.user");
    rejected_on(
        with(top("like"), "/funnelStage", Some(json!("invalid-stage"))),
        "funnelStage",
    );
    rejected_on(
        with(top("like"), "/eventType", Some(json!(["like"]))),
        "eventType",
    );
    rejected_on(
        with(top("like"), "/data/engagement/watchTime", Some(json!(-1))),
        "data.engagement.watchTime",
    );
    rejected_on(
        with(bottom("purchase"), "/data/engagement/purchasedItem", None),
        "data.engagement.purchasedItem",
    );
    rejected_on(
        with(
            top("like"),
            "/data/user/followers",
            Some(json!("not-a-number")),
        ),
        "data.user.followers",
    );
}

#[test]
fn envelope_and_stage_rules() {
    rejected_on(
        with(top("like"), "/source", Some(json!("facebook"))),
        "source",
    );
    rejected_on(
        with(top("like"), "/eventType", Some(json!("purchase"))),
        "eventType",
    );
    rejected_on(
        with(bottom("purchase"), "/eventType", Some(json!("like"))),
        "eventType",
    );
    rejected_on(
        with(top("like"), "/eventType", Some(json!("ad.view"))),
        "eventType",
    );
    rejected_on(
        with(
            bottom("follow"),
            "/data/engagement/actionTime",
            Some(json!("2024-13-01T00:00:00Z")),
        ),
        "data.engagement.actionTime",
    );
    let mut doc = top("like");
    doc["data"]["engagement"] = bottom("follow")["data"]["engagement"].clone();
    assert_eq!(rejected(&doc).len(), 5);
}

#[test]
fn utc_and_unknown_fields() {
    let doc = with(
        top("like"),
        "/timestamp",
        Some(json!("2024-03-01T13:34:56.5+01:00")),
    );
    let doc = with(doc, "/data/engagement/extra", Some(json!({"a": [true]})));
    let e = ok(&doc);
    assert_eq!(
        (e.occurred_at.seconds, e.occurred_at.nanoseconds),
        (1_709_296_496, 500_000_000)
    );
    assert_eq!(e, ok(&with(doc, "/data/engagement/extra", None)));
}

#[test]
fn batch_keeps_order() {
    let texts = [top("like").to_string(), bottom("purchase").to_string()];
    let batch = ["[]", texts[0].as_str(), texts[1].as_str()];
    let out = normalize_batch(&batch);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().unwrap_err()[0].field, "$");
    assert_eq!(out[2].as_ref().unwrap().revenue.as_deref(), Some("7"));
    assert_eq!(out, normalize_batch(&batch));
}
