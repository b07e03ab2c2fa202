//! The demographics report: sections, buckets, top lists.

use crate::support::model::{demographics_report, Query};
use crate::support::{Event, TestApp};

const PATH: &str = "/api/v1/reports/demographics";

fn fb(id: &str, t: &str, age: i32, gender: &str, country: &str, city: &str) -> Event {
    Event::new(id, "facebook", "top", "ad.view", t).person(age, gender, country, city)
}

fn ttk(
    id: &str,
    stage: &str,
    t: &str,
    followers: i64,
    country: Option<&str>,
    device: Option<&str>,
) -> Event {
    Event::new(id, "tiktok", stage, "video.view", t).audience(followers, country, device)
}

fn fixture() -> Vec<Event> {
    let mut v = vec![
        // Age bucket edges.
        fb("f1", "2024-01-01T10:00:00Z", 17, "male", "Ukraine", "Kyiv"),
        fb(
            "f2",
            "2024-01-01T10:00:01Z",
            18,
            "female",
            "Ukraine",
            "Kyiv",
        ),
        fb(
            "f3",
            "2024-01-01T10:00:02Z",
            24,
            "non-binary",
            "Ukraine",
            "Lviv",
        ),
        fb(
            "f4",
            "2024-01-01T10:10:00Z",
            25,
            "female",
            "Poland",
            "Warsaw",
        ),
        fb(
            "f5",
            "2024-01-01T11:00:00Z",
            34,
            "female",
            "Poland",
            "Kraków",
        ),
        fb(
            "f6",
            "2024-01-01T23:59:59.999999Z",
            35,
            "male",
            "Germany",
            "Berlin",
        ),
        fb(
            "f7",
            "2024-01-02T00:00:00Z",
            64,
            "male",
            "Germany",
            "Berlin",
        ),
        fb(
            "f8",
            "2024-01-02T05:00:00Z",
            65,
            "female",
            "Åland",
            "Mariehamn",
        ),
        fb(
            "f9",
            "2024-01-02T05:00:00Z",
            99,
            "female",
            "Zambia",
            "Lusaka",
        ),
        // Follower bucket edges; country and device only on top-funnel rows.
        ttk(
            "t1",
            "top",
            "2024-01-01T10:00:00Z",
            0,
            Some("Poland"),
            Some("Android"),
        ),
        ttk(
            "t2",
            "top",
            "2024-01-01T10:05:00Z",
            999,
            Some("Poland"),
            Some("iOS"),
        ),
        ttk("t3", "bottom", "2024-01-01T10:05:00Z", 1_000, None, None),
        ttk(
            "t4",
            "top",
            "2024-01-01T12:00:00Z",
            9_999,
            Some("Brazil"),
            Some("Desktop"),
        ),
        ttk("t5", "bottom", "2024-01-02T01:00:00Z", 10_000, None, None),
        ttk(
            "t6",
            "top",
            "2024-01-02T01:00:00Z",
            99_999,
            Some("Brazil"),
            Some("iOS"),
        ),
        ttk(
            "t7",
            "top",
            "2024-01-02T02:00:00Z",
            100_000,
            Some("Chile"),
            Some("iOS"),
        ),
        ttk(
            "t8",
            "top",
            "2024-01-03T00:00:00Z",
            999_999,
            Some("Poland"),
            Some("Android"),
        ),
        ttk(
            "t9",
            "bottom",
            "2024-01-03T00:00:00Z",
            1_000_000,
            None,
            None,
        ),
    ];
    // A new source filling only age and gender: profile-shaped.
    let mut ig = Event::new(
        "i1",
        "instagram",
        "top",
        "story.view",
        "2024-01-01T10:00:00Z",
    );
    ig.age = Some(30);
    ig.gender = Some("female".into());
    v.push(ig);
    // A new source with only devices: audience-shaped.
    let mut sc = Event::new("s1", "snapchat", "top", "snap.view", "2024-01-01T10:00:00Z");
    sc.device = Some("iOS".into());
    v.push(sc);
    // A source with no demographic data at all: no section.
    v.push(Event::new("x1", "x", "top", "view", "2024-01-01T10:00:00Z"));
    v
}

#[tokio::test]
async fn sections_buckets_and_top_lists() {
    let app = TestApp::spawn().await;
    let events = fixture();
    app.insert(&events).await;
    for q in [
        Query::new(),
        Query::new().source("facebook"),
        Query::new().source("tiktok"),
        Query::new().source("x"),
        Query::new().source("nobody"),
        Query::new().limit(1),
        Query::new().limit(2).source("tiktok"),
        Query::new()
            .start("2024-01-01T10:00:01Z")
            .end("2024-01-01T10:10:00Z"),
        Query::new()
            .start("2024-01-01T10:05:00Z")
            .end("2024-01-02T01:00:00.000001Z"),
        Query::new().start_date("2024-01-02").end_date("2024-01-02"),
        Query::new().end("2024-01-01T10:00:00Z"),
        Query::new()
            .start("2024-01-01T23:59:59.999999Z")
            .end("2024-01-01T23:59:59.999999Z"),
    ] {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, demographics_report(&events, &q), "{}", q.url(PATH));
    }
    let all = app.ok(PATH).await;
    assert_eq!(
        all["facebook"]["age"][0],
        serde_json::json!({"bucket": "<18", "count": 1})
    );
    assert_eq!(all["facebook"]["topLocations"][0]["city"], "Berlin");
    assert_eq!(
        all["tiktok"]["topCountries"][0],
        serde_json::json!({"country": "Poland", "count": 3})
    );
    assert!(all.get("x").is_none());
    assert!(all["instagram"].get("age").is_some());
    assert!(all["snapchat"].get("devices").is_some());
    app.cleanup().await;
}

#[tokio::test]
async fn a_section_without_data_in_the_window_is_omitted() {
    let app = TestApp::spawn().await;
    let events = fixture();
    app.insert(&events).await;
    let q = Query::new().start_date("2024-01-03");
    let got = app.ok(&q.url(PATH)).await;
    assert!(got.get("facebook").is_none(), "{got}");
    assert!(got.get("tiktok").is_some(), "{got}");
    assert_eq!(got, demographics_report(&events, &q));
    app.cleanup().await;
}
