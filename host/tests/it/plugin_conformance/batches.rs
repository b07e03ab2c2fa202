//! Batches: a mixed batch keeps its order and count; a value beyond storage
//! rejects only its own event.

use crate::support::plugins::{call, fb_bottom, fb_top, production, tt_top, with};
use events_host::plugins::EventResult;
use serde_json::json;

#[test]
fn mixed_batch_keeps_order_and_count() {
    let fb = production("facebook");
    let docs: Vec<String> = (0..500)
        .map(|i| {
            let mut doc = if i % 2 == 0 {
                fb_top("comment")
            } else {
                fb_bottom("ad.click")
            };
            doc["eventId"] = json!(format!("e-{i}"));
            if i % 3 == 0 {
                doc["data"]["user"]["gender"] = json!("alien");
            }
            doc.to_string()
        })
        .collect();
    let out = call(&fb, &docs);
    for (i, r) in out.iter().enumerate() {
        match r {
            EventResult::Ok(e) => {
                assert!(i % 3 != 0, "event {i} should be rejected");
                assert_eq!(e.event_id, format!("e-{i}"));
            }
            EventResult::Rejected(issues) => {
                assert_eq!(i % 3, 0, "event {i} should be accepted: {issues:?}");
                assert_eq!(issues[0].field, "data.user.gender");
            }
        }
    }
}

#[test]
fn values_beyond_storage_reject_only_their_event() {
    // valid for the plugin (followers is any integer >= 0, WIT u64) but
    // beyond the database's bigint: that event is rejected, not the batch
    let tt = production("tiktok");
    let huge = with(
        tt_top("share"),
        "/data/user/followers",
        Some(json!(u64::MAX)),
    );
    let out = call(&tt, &[huge.to_string(), tt_top("like").to_string()]);
    assert!(matches!(&out[0], EventResult::Rejected(i) if i[0].field == "demographics.followers"));
    assert!(matches!(&out[1], EventResult::Ok(_)));
}
