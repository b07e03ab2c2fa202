//! Fixtures shared by the Facebook tests: one valid event per stage, and mutators.
#![allow(dead_code)]

use events_plugin_kit::NormalizedEvent;
use facebook_plugin::normalize;
use serde_json::{json, Value};

pub fn top(event_type: &str) -> Value {
    json!({
        "eventId": "fb-1", "timestamp": "2024-03-01T12:34:56.789Z", "source": "facebook",
        "funnelStage": "top", "eventType": event_type,
        "data": {
            "user": {"userId": "u-1", "name": "Ann", "age": 30, "gender": "female",
                     "location": {"country": "DE", "city": "Berlin"}},
            "engagement": {"actionTime": "2024-03-01T12:34:50.000Z", "referrer": "newsfeed",
                           "videoId": null}
        }
    })
}

pub fn bottom(event_type: &str) -> Value {
    json!({
        "eventId": "fb-2", "timestamp": "2024-03-01T12:34:56.789Z", "source": "facebook",
        "funnelStage": "bottom", "eventType": event_type,
        "data": {
            "user": {"userId": "u-2", "name": "Bo", "age": 41, "gender": "non-binary",
                     "location": {"country": "US", "city": "Austin"}},
            "engagement": {"adId": "ad-9", "campaignId": "cmp-3", "clickPosition": "center",
                           "device": "mobile", "browser": "Safari", "purchaseAmount": "123.45"}
        }
    })
}

/// `doc` with the value at JSON pointer `ptr` replaced (`Some`) or removed (`None`).
pub fn with(mut doc: Value, ptr: &str, new: Option<Value>) -> Value {
    let (parent, key) = ptr.rsplit_once('/').unwrap();
    let obj = doc.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match new {
        Some(v) => obj.insert(key.to_owned(), v),
        None => obj.remove(key),
    };
    doc
}

pub fn ok(doc: &Value) -> NormalizedEvent {
    let raw = doc.to_string();
    normalize(&raw).unwrap_or_else(|issues| panic!("{raw}\n{issues:?}"))
}

/// The fields of the issues of an invalid event.
pub fn rejected(doc: &Value) -> Vec<String> {
    match normalize(&doc.to_string()) {
        Ok(e) => panic!("accepted: {doc}\n{e:?}"),
        Err(issues) => {
            assert!(!issues.is_empty());
            issues.into_iter().map(|i| i.field).collect()
        }
    }
}

pub fn rejected_on(doc: Value, field: &str) {
    assert_eq!(rejected(&doc), [field], "{doc}");
}
