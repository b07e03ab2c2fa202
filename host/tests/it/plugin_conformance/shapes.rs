//! Accepted shapes: every event type of both sources normalizes to its
//! canonical fields; nulls, times, amounts, bounds and unknown fields.

use crate::support::plugins::{accepted, fb_bottom, fb_top, production, tt_bottom, tt_top, with};
use chrono::{DateTime, SecondsFormat, Utc};
use events_host::plugins::{NormalizedEvent, Plugin};
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
