//! Rejections: every envelope and field rule of both sources rejects its
//! event naming exactly its field, with a message saying why.

use crate::support::plugins::{
    call, fb_bottom, fb_top, production, rejected_fields, tt_bottom, tt_top, with,
};
use events_host::plugins::{EventResult, Plugin};
use serde_json::{json, Value};

/// Sends every case in ONE batch; each must be rejected with exactly `fields`.
fn expect_rejections<'a, F: AsRef<[&'a str]>>(plugin: &Plugin, cases: Vec<(Value, F)>) {
    let docs: Vec<String> = cases.iter().map(|(d, _)| d.to_string()).collect();
    for ((doc, want), got) in cases.iter().zip(call(plugin, &docs)) {
        match got {
            EventResult::Ok(e) => panic!("accepted {doc}: {e:?}"),
            EventResult::Rejected(issues) => {
                let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
                assert_eq!(fields, want.as_ref(), "{doc}\n{issues:?}");
            }
        }
    }
}
/// Each `(path, json)` sets the field at dotted `path` (`data.user.age`) of
/// `base` to `json` (`-` removes it); all go in ONE batch, and each event
/// must be rejected with exactly one issue, on `path`.
fn expect_rejected_on(plugin: &Plugin, base: &Value, cases: &[(&str, &str)]) {
    let cases = cases.iter().map(|(path, v)| {
        let value = (*v != "-").then(|| serde_json::from_str(v).expect("case JSON"));
        let doc = with(base.clone(), &format!("/{}", path.replace('.', "/")), value);
        (doc, vec![*path])
    });
    expect_rejections(plugin, cases.collect());
}

#[rustfmt::skip]
const ENVELOPE: &[(&str, &str)] = &[
    ("eventId", "-"), ("eventId", r#""""#), ("eventId", "7"), ("eventId", "null"),
    ("timestamp", "-"), ("timestamp", r#""invalid-timestamp""#), ("timestamp", "1709296496"),
    ("timestamp", r#""2024-02-30T00:00:00Z""#), ("timestamp", r#""2023-02-29T00:00:00Z""#),
    ("timestamp", r#""2024-03-01 12:34:56Z""#), ("timestamp", r#""2024-03-01T24:00:00Z""#),
    ("timestamp", r#""2024-03-01T12:34:56""#), ("timestamp", r#""2024-03-01T12:34:56+24:00""#),
    ("source", "-"), ("source", "true"),
    ("funnelStage", "-"), ("funnelStage", r#""invalid-stage""#), ("funnelStage", r#""Top""#),
    ("eventType", "-"), ("eventType", r#"["ad.view"]"#), ("eventType", r#""unknown.type""#),
    ("data", "-"), ("data", "[]"), ("data.user", "-"), ("data.user", r#""u""#),
    ("data.engagement", "null"),
];

/// Another source's name, another source's event type, the other stage's type.
#[rustfmt::skip]
const FB_FOREIGN: &[(&str, &str)] =
    &[("source", r#""tiktok""#), ("eventType", r#""share""#), ("eventType", r#""checkout.complete""#)];
#[rustfmt::skip]
const TT_FOREIGN: &[(&str, &str)] =
    &[("source", r#""facebook""#), ("eventType", r#""page.like""#), ("eventType", r#""purchase""#)];

#[test]
fn envelope_rejections() {
    for (source, base, foreign) in [
        ("facebook", fb_top("ad.view"), FB_FOREIGN),
        ("tiktok", tt_top("like"), TT_FOREIGN),
    ] {
        let plugin = production(source);
        expect_rejected_on(&plugin, &base, ENVELOPE);
        expect_rejected_on(&plugin, &base, foreign);
        // not JSON, not an object: the whole document
        for raw in ["{", "[]", "null", "\"x\"", "", "{} x"] {
            assert_eq!(rejected_fields(&plugin, raw), ["$"], "{raw:?}");
        }
    }
}

#[test]
fn facebook_field_rejections() {
    let fb = production("facebook");
    let top = fb_top("video.view");
    #[rustfmt::skip]
    expect_rejected_on(&fb, &top, &[
        ("data.user.userId", "-"), ("data.user.userId", "5"), ("data.user.name", "-"),
        ("data.user.age", "-"), ("data.user.age", "30.0"), ("data.user.age", r#""30""#),
        ("data.user.age", "true"), ("data.user.age", "1e3"), ("data.user.age", "-1"),
        ("data.user.age", "151"), ("data.user.age", "null"),
        ("data.user.gender", r#""alien""#), ("data.user.gender", r#""Male""#),
        ("data.user.gender", "-"), ("data.user.location", "-"),
        ("data.user.location", r#""DE""#), ("data.user.location.country", "-"),
        ("data.user.location.city", "1"),
        ("data.engagement.actionTime", "-1"), ("data.engagement.actionTime", r#""yesterday""#),
        ("data.engagement.referrer", r#""search""#), ("data.engagement.referrer", "-"),
        ("data.engagement.videoId", "-"), ("data.engagement.videoId", "5"),
    ]);
    let bottom = fb_bottom("checkout.complete");
    #[rustfmt::skip]
    expect_rejected_on(&fb, &bottom, &[
        ("data.engagement.adId", "-"), ("data.engagement.campaignId", "null"),
        ("data.engagement.clickPosition", r#""middle""#), ("data.engagement.clickPosition", "-"),
        ("data.engagement.device", r#""tablet""#), ("data.engagement.device", r#""Mobile""#),
        ("data.engagement.browser", r#""chrome""#), ("data.engagement.browser", r#""Edge""#),
        ("data.engagement.purchaseAmount", "-"), ("data.engagement.purchaseAmount", "12.5"),
        ("data.engagement.purchaseAmount", r#""-1""#), ("data.engagement.purchaseAmount", r#""1e3""#),
        ("data.engagement.purchaseAmount", r#""1.234""#), ("data.engagement.purchaseAmount", r#""""#),
        ("data.engagement.purchaseAmount", r#""12,50""#), ("data.engagement.purchaseAmount", "true"),
    ]);
    // a top event carrying bottom engagement fields instead; several issues at once
    let mut swapped = fb_top("ad.view");
    swapped["data"]["engagement"] = bottom["data"]["engagement"].clone();
    let mut many = with(top.clone(), "/source", Some(json!("x")));
    many["data"]["user"]["age"] = json!(200);
    many["data"]["engagement"]["referrer"] = json!(null);
    let cases: Vec<(Value, &[&str])> = vec![
        (
            swapped,
            &[
                "data.engagement.actionTime",
                "data.engagement.referrer",
                "data.engagement.videoId",
            ],
        ),
        (
            many,
            &["source", "data.user.age", "data.engagement.referrer"],
        ),
    ];
    expect_rejections(&fb, cases);
}

#[test]
fn tiktok_field_rejections() {
    let tt = production("tiktok");
    let top = tt_top("video.view");
    #[rustfmt::skip]
    expect_rejected_on(&tt, &top, &[
        ("data.user.userId", "-"), ("data.user.username", "-"), ("data.user.username", "1"),
        ("data.user.followers", r#""not-a-number""#), ("data.user.followers", "30.0"),
        ("data.user.followers", "false"), ("data.user.followers", "-1"),
        ("data.user.followers", "-"),
        ("data.engagement.watchTime", "-1"), ("data.engagement.watchTime", "true"),
        ("data.engagement.watchTime", r#""12""#), ("data.engagement.watchTime", "-"),
        ("data.engagement.percentageWatched", "100.5"),
        ("data.engagement.percentageWatched", "-0.1"),
        ("data.engagement.percentageWatched", "false"),
        ("data.engagement.device", r#""android""#), ("data.engagement.device", "-"),
        ("data.engagement.country", "-"), ("data.engagement.country", "1"),
        ("data.engagement.videoId", "null"), ("data.engagement.videoId", "-"),
    ]);
    let bottom = tt_bottom("purchase");
    #[rustfmt::skip]
    expect_rejected_on(&tt, &bottom, &[
        ("data.engagement.actionTime", r#""2024-13-01T00:00:00Z""#),
        ("data.engagement.actionTime", "-1"),
        ("data.engagement.profileId", "-"), ("data.engagement.profileId", "1"),
        ("data.engagement.purchasedItem", "-"), ("data.engagement.purchasedItem", "3"),
        ("data.engagement.purchaseAmount", "-"), ("data.engagement.purchaseAmount", r#""9.999""#),
        ("data.engagement.purchaseAmount", "9"), ("data.engagement.purchaseAmount", r#""-5""#),
    ]);
    // a bottom event carrying top engagement fields instead
    let mut swapped = tt_bottom("follow");
    swapped["data"]["engagement"] = top["data"]["engagement"].clone();
    let want: &[&str] = &[
        "data.engagement.actionTime",
        "data.engagement.profileId",
        "data.engagement.purchasedItem",
        "data.engagement.purchaseAmount",
    ];
    expect_rejections(&tt, vec![(swapped, want)]);
}

#[test]
fn messages_say_why() {
    let fb = production("facebook");
    let docs = [
        with(fb_top("ad.view"), "/data/user/age", Some(json!(30.0))),
        with(fb_top("ad.view"), "/data/user/gender", Some(json!("alien"))),
        with(fb_top("ad.view"), "/data/engagement/videoId", None),
    ]
    .map(|d| d.to_string());
    let messages: Vec<String> = call(&fb, &docs)
        .into_iter()
        .map(|r| match r {
            EventResult::Rejected(i) => i[0].message.clone(),
            EventResult::Ok(e) => panic!("accepted {e:?}"),
        })
        .collect();
    assert_eq!(messages[0], "must be an integer, got 30.0");
    assert_eq!(
        messages[1],
        r#"must be one of "male", "female", "non-binary", got "alien""#
    );
    assert_eq!(messages[2], "is required (null is allowed)");
}
