//! The events report against a real database, compared with expectations
//! computed in Rust (`support::model`).

use crate::support::model::{events_report, Query};
use crate::support::{at, stored, Event, TestApp};

const PATH: &str = "/api/v1/reports/events";

fn fixture() -> Vec<Event> {
    vec![
        Event::new("fb-1", "facebook", "top", "ad.view", "2024-01-01T00:00:00Z"),
        Event::new(
            "fb-2",
            "facebook",
            "top",
            "comment",
            "2024-01-01T09:59:59.999999Z",
        ),
        Event::new("fb-3", "facebook", "top", "ad.view", "2024-01-01T10:00:00Z"),
        Event::new(
            "fb-4",
            "facebook",
            "bottom",
            "ad.click",
            "2024-01-01T10:00:00.000001Z",
        ),
        Event::new(
            "fb-5",
            "facebook",
            "bottom",
            "checkout.complete",
            "2024-01-01T23:59:59.999999Z",
        ),
        Event::new("ttk-1", "tiktok", "top", "comment", "2024-01-02T00:00:00Z"),
        Event::new(
            "ttk-2",
            "tiktok",
            "top",
            "video.view",
            "2024-01-01T10:30:00Z",
        ),
        Event::new(
            "ttk-3",
            "tiktok",
            "bottom",
            "purchase",
            "2024-01-01T12:00:00.5Z",
        ),
        Event::new(
            "ttk-4",
            "tiktok",
            "top",
            "video.view",
            "2024-01-03T08:00:00Z",
        ),
        Event::new("ttk-5", "tiktok", "top", "comment", "2023-12-31T23:59:59Z"),
    ]
}

#[tokio::test]
async fn counts_by_every_dimension_and_ignores_duplicates() {
    let app = TestApp::spawn().await;
    let first = fixture();
    assert_eq!(app.insert(&first).await, 10);
    // A re-delivery of the same ids with different content: first write wins,
    // nothing is counted twice.
    let dupes = vec![
        Event::new(
            "fb-1",
            "facebook",
            "bottom",
            "ad.click",
            "2024-01-05T00:00:00Z",
        ),
        Event::new("ttk-4", "tiktok", "top", "like", "2024-01-01T10:00:00Z"),
    ];
    assert_eq!(app.insert(&dupes).await, 0);
    let all = stored(&[&first, &dupes]);
    for q in [
        Query::new(),
        Query::new().source("facebook"),
        Query::new().source("tiktok").stage("top"),
        Query::new().stage("bottom"),
        Query::new().event_type("comment"),
        Query::new().source("tiktok").event_type("comment"),
        Query::new()
            .source("facebook")
            .stage("top")
            .event_type("ad.view"),
        Query::new().granularity("hour"),
        Query::new()
            .granularity("minute")
            .start("2024-01-01T09:00:00Z")
            .end("2024-01-01T13:00:00Z"),
    ] {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, events_report(&all, &q), "{}", q.url(PATH));
    }
    let body = app.ok(PATH).await;
    assert_eq!(body["totalEvents"], 10);
    assert_eq!(body["bySource"]["facebook"], 5);
    app.cleanup().await;
}

#[tokio::test]
async fn window_edges_are_inclusive_exclusive_and_dates_cover_whole_days() {
    let app = TestApp::spawn().await;
    let events = fixture();
    app.insert(&events).await;
    let cases = [
        // from inclusive, to exclusive, at microsecond edges
        Query::new()
            .start("2024-01-01T10:00:00Z")
            .end("2024-01-01T10:00:00.000001Z"),
        Query::new()
            .start("2024-01-01T09:59:59.999999Z")
            .end("2024-01-01T10:00:00Z"),
        // bare dates: to covers the whole day
        Query::new().start_date("2024-01-01").end_date("2024-01-01"),
        Query::new().end_date("2024-01-01"),
        Query::new().start_date("2024-01-02"),
        // offsets (the + is percent-encoded by the query builder)
        Query::new()
            .start("2024-01-01T12:00:00+02:00")
            .end("2024-01-01T05:30:00-05:00"),
        // nanoseconds: events are stored at microseconds
        Query::new()
            .start("2024-01-01T09:59:59.9999985Z")
            .end("2024-01-01T10:00:00.0000005Z"),
        // sub-second edge inside a minute and an hour
        Query::new()
            .start("2024-01-01T12:00:00.4Z")
            .end("2024-01-01T12:00:00.6Z"),
        Query::new().start("2024-01-01T12:00:00.6Z"),
        // one-sided windows
        Query::new().start("2024-01-01T10:00:00Z"),
        Query::new().end("2024-01-01T10:00:00Z"),
        // a window spanning whole days plus ragged edges
        Query::new()
            .start("2023-12-31T23:59:59Z")
            .end("2024-01-03T08:00:00.000001Z"),
    ];
    for q in cases {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, events_report(&events, &q), "{}", q.url(PATH));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn empty_windows_and_unknown_sources_give_empty_reports() {
    let app = TestApp::spawn().await;
    let events = fixture();
    app.insert(&events).await;
    for q in [
        Query::new()
            .start("2024-01-01T10:00:00Z")
            .end("2024-01-01T10:00:00Z"),
        Query::new()
            .start_date("2024-01-02")
            .end("2024-01-02T00:00:00Z"),
        Query::new().source("snapchat"),
        Query::new().source("facebook").event_type("purchase"),
        Query::new().start_date("2030-01-01"),
    ] {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, events_report(&events, &q), "{}", q.url(PATH));
        assert_eq!(got["totalEvents"], 0);
        assert_eq!(got["timeline"]["buckets"], serde_json::json!([]));
    }
    // Unknown parameters are ignored.
    let got = app.ok(&format!("{PATH}?foo=bar&limit=oops")).await;
    assert_eq!(got, events_report(&events, &Query::new()));
    app.cleanup().await;
}

#[tokio::test]
async fn out_of_order_inserts_count_the_same() {
    let app = TestApp::spawn().await;
    let mut events = fixture();
    events.reverse();
    for chunk in events.chunks(3) {
        app.insert(chunk).await;
    }
    let got = app.ok(PATH).await;
    assert_eq!(got, events_report(&events, &Query::new()));
    app.cleanup().await;
}

#[tokio::test]
async fn default_granularity_is_the_finest_with_at_most_500_buckets() {
    let app = TestApp::spawn().await;
    let t0 = at("2024-03-01T00:00:00Z");
    let events: Vec<Event> = (0..40)
        .map(|i| {
            Event::at(
                &format!("e{i}"),
                "facebook",
                "top",
                "ad.view",
                t0 + chrono::TimeDelta::minutes(i * 37),
            )
        })
        .collect();
    app.insert(&events).await;
    let g = |v: &serde_json::Value| {
        v["timeline"]["granularity"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // 500 aligned minutes → minute; 501 → hour.
    let q = Query::new()
        .start("2024-03-01T00:00:00Z")
        .end("2024-03-01T08:20:00Z");
    assert_eq!(g(&app.ok(&q.url(PATH)).await), "minute");
    let q = Query::new()
        .start("2024-03-01T00:00:00Z")
        .end("2024-03-01T08:20:00.000001Z");
    assert_eq!(g(&app.ok(&q.url(PATH)).await), "hour");
    let q = Query::new()
        .start("2024-03-01T00:00:30Z")
        .end("2024-03-01T08:20:30Z");
    assert_eq!(g(&app.ok(&q.url(PATH)).await), "hour");
    // 500 hours → hour; more → day.
    let q = Query::new()
        .start("2024-03-01T00:00:00Z")
        .end("2024-03-21T20:00:00Z");
    assert_eq!(g(&app.ok(&q.url(PATH)).await), "hour");
    let q = Query::new()
        .start("2024-03-01T00:00:00Z")
        .end("2024-03-21T20:00:01Z");
    assert_eq!(g(&app.ok(&q.url(PATH)).await), "day");
    // Open windows use the stored data's span (40 × 37 min ≈ 24 h → hour).
    for q in [
        Query::new(),
        Query::new().start("2024-03-01T20:00:00Z"),
        Query::new().end("2024-03-01T01:00:00Z"),
        Query::new().start("2024-02-01T00:00:00Z"),
    ] {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, events_report(&events, &q), "{}", q.url(PATH));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_empty_database_answers_with_an_empty_report() {
    let app = TestApp::spawn().await;
    let got = app.ok(PATH).await;
    assert_eq!(got, events_report(&[], &Query::new()));
    assert_eq!(got["timeline"]["granularity"], "minute");
    app.cleanup().await;
}
