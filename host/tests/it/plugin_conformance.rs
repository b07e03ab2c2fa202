//! Conformance of the production plugins (`dist/plugins/*.wasm`), through the
//! host's real runtime: every valid shape of shared/spec/events.md and its
//! canonical fields, every rejection rule naming its field, batches keeping order and count.

use crate::support::plugins::{
    accepted, call, facebook_wasm, fb_bottom, fb_top, production, rejected_fields, test_wasm,
    tiktok_wasm, tt_bottom, tt_top, with,
};
use chrono::{DateTime, SecondsFormat, Utc};
use events_host::plugins::{EventResult, NormalizedEvent, Plugin};
use serde_json::{json, Value};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ok(plugin: &Plugin, doc: &Value) -> NormalizedEvent {
    accepted(plugin, &doc.to_string())
}

/// The canonical fields of `e` on one line (`-` = none), `raw` left out.
fn canon(e: &NormalizedEvent) -> String {
    let o = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let at = e.occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    format!(
        "{} {} {} {} user={} at={at} revenue={} campaign={} age={} gender={} country={} city={} \
         followers={} device={}",
        e.event_id,
        e.source,
        e.funnel_stage.as_str(),
        e.event_type,
        e.user_id,
        o(e.revenue.clone()),
        o(e.campaign_id.clone()),
        o(e.age.map(|a| a.to_string())),
        o(e.gender.clone()),
        o(e.country.clone()),
        o(e.city.clone()),
        o(e.followers.map(|f| f.to_string())),
        o(e.device.clone()),
    )
}

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

#[test]
fn identities() {
    for source in ["facebook", "tiktok"] {
        let id = production(source).identity().clone();
        assert_eq!((id.name.as_str(), id.source.as_str()), (source, source));
        assert!(!id.version.is_empty());
    }
}

#[test]
fn facebook_every_event_type_normalizes() {
    let fb = production("facebook");
    for t in ["ad.view", "page.like", "comment", "video.view"] {
        let want = format!(
            "fb-1 facebook top {t} user=u-1 at=2024-03-01T12:34:56.789Z revenue=- campaign=- \
             age=30 gender=female country=DE city=Berlin followers=- device=-"
        );
        assert_eq!(canon(&ok(&fb, &fb_top(t))), want);
    }
    // revenue only on checkout.complete; campaign on every bottom event; the
    // bottom-funnel device is validated but is not a Facebook demographic
    for t in ["ad.click", "form.submission", "checkout.complete"] {
        let revenue = if t == "checkout.complete" {
            "123.45"
        } else {
            "-"
        };
        let want = format!(
            "fb-2 facebook bottom {t} user=u-2 at=2024-03-01T12:34:56.789Z revenue={revenue} \
             campaign=cmp-3 age=41 gender=non-binary country=US city=Austin followers=- device=-"
        );
        assert_eq!(canon(&ok(&fb, &fb_bottom(t))), want);
    }
}

#[test]
fn tiktok_every_event_type_normalizes() {
    let tt = production("tiktok");
    // top funnel: country and device from the engagement
    for t in ["video.view", "like", "share", "comment"] {
        let want = format!(
            "ttk-1 tiktok top {t} user=t-1 at=2024-03-01T12:34:56.789Z revenue=- campaign=- \
             age=- gender=- country=FR city=- followers=1200 device=iOS"
        );
        assert_eq!(canon(&ok(&tt, &tt_top(t))), want);
    }
    for t in ["profile.visit", "purchase", "follow"] {
        let revenue = if t == "purchase" { "19.99" } else { "-" };
        let want = format!(
            "ttk-2 tiktok bottom {t} user=t-2 at=2024-03-01T12:34:56.789Z revenue={revenue} \
             campaign=- age=- gender=- country=- city=- followers=0 device=-"
        );
        assert_eq!(canon(&ok(&tt, &tt_bottom(t))), want);
    }
}

#[test]
fn nulls_are_accepted_and_carry_no_revenue() {
    let fb = production("facebook");
    let video = with(
        fb_top("video.view"),
        "/data/engagement/videoId",
        Some(json!("v-1")),
    );
    ok(&fb, &video);
    let null_amount = json!(null);
    let checkout = with(
        fb_bottom("checkout.complete"),
        "/data/engagement/purchaseAmount",
        Some(null_amount),
    );
    assert_eq!(ok(&fb, &checkout).revenue, None);

    let tt = production("tiktok");
    for f in ["profileId", "purchasedItem", "purchaseAmount"] {
        let doc = with(
            tt_bottom("purchase"),
            &format!("/data/engagement/{f}"),
            Some(Value::Null),
        );
        assert_eq!(
            ok(&tt, &doc).revenue.is_some(),
            f != "purchaseAmount",
            "{f}"
        );
    }
}

#[test]
fn times_become_utc() {
    #[rustfmt::skip]
    let cases = [
        ("2024-03-01T14:34:56+02:00", "2024-03-01T12:34:56Z"),
        ("2024-03-01T07:04:56.5-05:30", "2024-03-01T12:34:56.5Z"),
        ("2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00Z"),
        ("2024-03-01T12:34:56-00:00", "2024-03-01T12:34:56Z"),
        ("2024-03-01t12:34:56z", "2024-03-01T12:34:56Z"),
        ("2024-03-01T12:34:56.123456789Z", "2024-03-01T12:34:56.123456789Z"),
        ("2024-03-01T12:34:56.1234567891Z", "2024-03-01T12:34:56.123456789Z"),
        ("2024-03-01T12:34:56.000001Z", "2024-03-01T12:34:56.000001Z"),
        ("1969-12-31T23:59:59.25Z", "1969-12-31T23:59:59.25Z"),
    ];
    for (source, base) in [
        ("facebook", fb_top("ad.view")),
        ("tiktok", tt_bottom("follow")),
    ] {
        for (given, want) in cases {
            let doc = with(base.clone(), "/timestamp", Some(json!(given)));
            assert_eq!(
                ok(&production(source), &doc).occurred_at,
                utc(want),
                "{given}"
            );
        }
    }
}

#[test]
fn amounts_and_bounds_are_accepted() {
    let fb = production("facebook");
    for amount in ["0", "7", "0.5", "007.10", "123456789012.99"] {
        let ptr = "/data/engagement/purchaseAmount";
        let doc = with(fb_bottom("checkout.complete"), ptr, Some(json!(amount)));
        assert_eq!(ok(&fb, &doc).revenue.as_deref(), Some(amount));
    }
    for age in [0, 150] {
        let doc = with(fb_top("ad.view"), "/data/user/age", Some(json!(age)));
        assert_eq!(ok(&fb, &doc).age, Some(age));
    }
    let tt = production("tiktok");
    #[rustfmt::skip]
    let cases = [
        ("/data/engagement/watchTime", json!(0)),
        ("/data/engagement/watchTime", json!(1.5e3)),
        ("/data/engagement/percentageWatched", json!(0)),
        ("/data/engagement/percentageWatched", json!(100)),
        ("/data/engagement/percentageWatched", json!(99.999)),
        ("/data/user/followers", json!(i64::MAX)), // the largest stored
    ];
    for (ptr, v) in cases {
        ok(&tt, &with(tt_top("share"), ptr, Some(v)));
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

#[test]
fn unknown_fields_and_odd_formatting_are_accepted() {
    let fb = production("facebook");
    let raw = "{ \"eventId\" : \"fb-\\u0031\",\"timestamp\":\"2024-03-01T12:34:56.789Z\",\
        \"source\":\"facebook\",\"funnelStage\":\"top\",\"eventType\":\"ad.view\",\
        \"extra\":{\"nested\":[1,2.50,{\"é\":\"\\n\"}]},\"data\":{\"user\":{\"userId\":\"u\",\
        \"name\":\"Zoë 😀\",\"age\":30,\"gender\":\"male\",\"location\":{\"country\":\"DE\",\
        \"city\":\"Köln\",\"zip\":\"50667\"},\"vip\":true},\"engagement\":{\"actionTime\":\
        \"2024-03-01T12:34:50Z\",\"referrer\":\"groups\",\"videoId\":null,\"x\":null}}}\n";
    // (The pipeline tests prove the stored raw is these exact bytes.)
    let e = accepted(&fb, raw);
    assert_eq!(
        (e.event_id.as_str(), e.city.as_deref()),
        ("fb-1", Some("Köln"))
    );

    let tt = production("tiktok");
    let mut doc = tt_top("comment");
    doc["campaign"] = json!({"id": 1});
    doc["data"]["engagement"]["sound"] = json!("track-1");
    let raw = serde_json::to_string_pretty(&doc).unwrap();
    assert_eq!(
        accepted(&tt, &raw).event_id,
        doc["eventId"].as_str().unwrap()
    );
}

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

// ---- `events-host plugin test`: the fixture sets shipped with the plugins ----

/// Runs `events-host plugin test COMPONENT FIXTURES...`: (exit code, stdout, stderr).
fn plugin_test(
    component: &std::path::Path,
    fixtures: &[&std::path::Path],
) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_events-host"))
        .args(["plugin", "test"])
        .arg(component)
        .args(fixtures)
        .output()
        .expect("run events-host plugin test");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 output");
    (
        out.status.code().expect("exit code"),
        text(out.stdout),
        text(out.stderr),
    )
}

fn fixtures_of(plugin: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/{plugin}/fixtures"))
}

/// Every shipped fixture passes; the summary counts them all.
fn shipped_fixtures_pass(component: &std::path::Path, plugin: &str, at_least: usize) {
    let dir = fixtures_of(plugin);
    let count = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert!(count >= at_least, "{plugin}: {count} fixtures");
    let (code, out, err) = plugin_test(component, &[&dir]);
    assert_eq!(code, 0, "{plugin}:\n{out}\n{err}");
    assert!(
        out.contains(&format!("{count} fixtures: {count} passed, 0 failed")),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok    ")).count(),
        count
    );
}

#[test]
fn facebook_fixtures_pass() {
    shipped_fixtures_pass(&facebook_wasm(), "facebook", 100);
}

#[test]
fn tiktok_fixtures_pass() {
    shipped_fixtures_pass(&tiktok_wasm(), "tiktok", 100);
}

#[test]
fn template_fixtures_pass() {
    shipped_fixtures_pass(&test_wasm("template"), "template", 5);
}

/// The shipped fixture sets name every field the validation rules of
/// plugins/README.md cover, accepted and rejected.
#[test]
fn fixture_sets_cover_every_field() {
    #[rustfmt::skip]
    let rules: &[(&str, &[&str])] = &[
        ("facebook", &[
            "data.user.userId", "data.user.name", "data.user.age", "data.user.gender",
            "data.user.location", "data.user.location.country", "data.user.location.city",
            "data.engagement.actionTime", "data.engagement.referrer", "data.engagement.videoId",
            "data.engagement.adId", "data.engagement.campaignId", "data.engagement.clickPosition",
            "data.engagement.device", "data.engagement.browser", "data.engagement.purchaseAmount",
        ]),
        ("tiktok", &[
            "data.user.userId", "data.user.username", "data.user.followers",
            "data.engagement.watchTime", "data.engagement.percentageWatched",
            "data.engagement.device", "data.engagement.country", "data.engagement.videoId",
            "data.engagement.actionTime", "data.engagement.profileId",
            "data.engagement.purchasedItem", "data.engagement.purchaseAmount",
        ]),
    ];
    let envelope = [
        "$",
        "eventId",
        "timestamp",
        "source",
        "funnelStage",
        "eventType",
        "data",
        "data.user",
        "data.engagement",
    ];
    for (plugin, fields) in rules {
        let mut rejected = std::collections::BTreeSet::new();
        let mut accepted_types = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(fixtures_of(plugin)).unwrap() {
            let f: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .unwrap();
            match f["expect"]["verdict"].as_str() {
                Some("rejected") => rejected.extend(
                    f["expect"]["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned()),
                ),
                Some("accepted") => {
                    if let Some(t) = f["expect"]["fields"]["event_type"].as_str() {
                        accepted_types.insert(t.to_owned());
                    }
                }
                other => panic!("verdict {other:?}"),
            }
        }
        for field in envelope.iter().chain(fields.iter()) {
            assert!(
                rejected.contains(*field),
                "{plugin}: no fixture rejects {field}"
            );
        }
        let types: &[&str] = if *plugin == "facebook" {
            &[
                "ad.view",
                "page.like",
                "comment",
                "video.view",
                "ad.click",
                "form.submission",
                "checkout.complete",
            ]
        } else {
            &[
                "video.view",
                "like",
                "share",
                "comment",
                "profile.visit",
                "purchase",
                "follow",
            ]
        };
        for t in types {
            assert!(
                accepted_types.contains(*t),
                "{plugin}: no accepted fixture of {t}"
            );
        }
    }
}

/// Wrong expectations: exit 1, a FAIL line per fixture and a diff naming the field.
#[test]
fn failing_fixtures_print_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, doc: Value| {
        std::fs::write(dir.path().join(name), doc.to_string()).unwrap();
    };
    write(
        "a-wrong-age.json",
        json!({"name": "age is 30", "input": fb_top("ad.view"),
               "expect": {"verdict": "accepted", "fields": {"age": 31, "revenue": null}}}),
    );
    write(
        "b-wrong-rejection.json",
        json!({"input": with(fb_top("ad.view"), "/data/user/age", Some(json!(151))),
               "expect": {"verdict": "rejected", "fields": ["data.user.gender"]}}),
    );
    write(
        "c-not-rejected.json",
        json!({"input": fb_top("ad.view"),
               "expect": {"verdict": "rejected", "fields": ["eventId"]}}),
    );
    write(
        "d-passes.json",
        json!({"input": fb_top("ad.view"), "expect": {"verdict": "accepted"}}),
    );
    let (code, out, _) = plugin_test(&facebook_wasm(), &[dir.path()]);
    assert_eq!(code, 1, "{out}");
    for want in [
        "FAIL  ",
        "a-wrong-age.json (age is 30)",
        "age: expected 31, got 30",
        "missing rejection field: data.user.gender",
        "extra rejection field: data.user.age: must be between 0 and 150, got 151",
        "expected rejected on [eventId], got accepted:",
        "ok    ",
        "4 fixtures: 1 passed, 3 failed",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(!out.contains("revenue: expected"), "{out}");
}

/// A malformed fixture is a usage error (exit 2) naming the file; nothing runs.
#[test]
fn malformed_fixture_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"input": fb_top("ad.view"), "expect": {"verdict": "accepted"}});
    std::fs::write(dir.path().join("good.json"), good.to_string()).unwrap();
    for (file, text, why) in [
        ("broken.json", "{\"input\": {", "bad fixture"),
        (
            "verdict.json",
            r#"{"input": {}, "expect": {"verdict": "maybe"}}"#,
            "unknown variant",
        ),
        (
            "field.json",
            r#"{"input": {}, "expect": {"verdict": "accepted", "fields": {"ages": 3}}}"#,
            "unknown normalized field \"ages\"",
        ),
        (
            "both.json",
            r#"{"input": {}, "raw": "{}", "expect": {"verdict": "accepted"}}"#,
            "exactly one of",
        ),
    ] {
        let bad = dir.path().join(file);
        std::fs::write(&bad, text).unwrap();
        let (code, out, err) = plugin_test(&facebook_wasm(), &[dir.path()]);
        assert_eq!(code, 2, "{file}: {out}\n{err}");
        assert!(err.contains(&bad.display().to_string()), "{file}: {err}");
        assert!(err.contains(why), "{file}: {why:?} not in {err}");
        assert!(!out.contains("ok    "), "{out}");
        std::fs::remove_file(&bad).unwrap();
    }
    // an empty directory and a missing component are errors too
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = plugin_test(&facebook_wasm(), &[empty.path()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no fixtures"), "{err}");
    let (code, _, err) = plugin_test(&dir.path().join("nope.wasm"), &[dir.path()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.wasm"), "{err}");
}
