//! The revenue report: exact money, campaigns, windows.

use crate::support::model::{revenue_report, Query};
use crate::support::{at, Event, TestApp};
use events_common::{
    db::events::{insert_events, NewEvent},
    funnel::FunnelStage,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rust_decimal::Decimal;

const PATH: &str = "/api/v1/reports/revenue";

fn fixture() -> Vec<Event> {
    vec![
        Event::new(
            "fb-1",
            "facebook",
            "bottom",
            "checkout.complete",
            "2024-01-01T10:00:00Z",
        )
        .revenue("100.10")
        .campaign("camp-b"),
        Event::new(
            "fb-2",
            "facebook",
            "bottom",
            "checkout.complete",
            "2024-01-01T10:59:59.999999Z",
        )
        .revenue("0.01")
        .campaign("camp-a"),
        Event::new(
            "fb-3",
            "facebook",
            "bottom",
            "checkout.complete",
            "2024-01-02T00:00:00Z",
        )
        .revenue("99.99")
        .campaign("camp-a"),
        // Same revenue as camp-b: ties are broken by campaign id.
        Event::new(
            "fb-4",
            "facebook",
            "bottom",
            "checkout.complete",
            "2024-01-02T03:00:00Z",
        )
        .revenue("100.10")
        .campaign("camp-c"),
        // Not a transaction: no amount.
        Event::new(
            "fb-5",
            "facebook",
            "bottom",
            "ad.click",
            "2024-01-01T10:00:00Z",
        )
        .campaign("camp-a"),
        // Revenue without a campaign: counted, not listed by campaign.
        Event::new(
            "ttk-1",
            "tiktok",
            "bottom",
            "purchase",
            "2024-01-01T11:00:00Z",
        )
        .revenue("19.99"),
        Event::new(
            "ttk-2",
            "tiktok",
            "bottom",
            "purchase",
            "2024-01-03T23:59:59Z",
        )
        .revenue("1999.00"),
        Event::new(
            "ttk-3",
            "tiktok",
            "bottom",
            "purchase",
            "2024-01-01T10:30:00Z",
        )
        .revenue("0.00"),
        // A new source whose plugin sets amounts participates too.
        Event::new(
            "sc-1",
            "snapchat",
            "bottom",
            "order",
            "2024-01-02T12:00:00Z",
        )
        .revenue("5.55")
        .campaign("camp-a"),
    ]
}

#[tokio::test]
async fn sums_by_source_campaign_and_time() {
    let app = TestApp::spawn().await;
    let events = fixture();
    app.insert(&events).await;
    for q in [
        Query::new(),
        Query::new().source("facebook"),
        Query::new().source("tiktok"),
        Query::new().campaign("camp-a"),
        Query::new().campaign("camp-a").source("snapchat"),
        Query::new().campaign("nope"),
        Query::new().limit(1),
        Query::new().limit(2).source("facebook"),
        Query::new().granularity("day"),
        Query::new()
            .granularity("minute")
            .campaign("camp-a")
            .start_date("2024-01-01")
            .end_date("2024-01-02"),
        Query::new()
            .start("2024-01-01T10:00:00Z")
            .end("2024-01-01T11:00:00Z"),
        Query::new()
            .start("2024-01-01T10:59:59.999999Z")
            .end("2024-01-02T00:00:00.000001Z"),
        Query::new()
            .start_date("2024-01-02")
            .end_date("2024-01-02")
            .granularity("hour"),
        Query::new()
            .start("2024-01-02T00:00:00Z")
            .end("2024-01-02T00:00:00Z"),
        Query::new().source("instagram"),
    ] {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, revenue_report(&events, &q), "{}", q.url(PATH));
    }
    let all = app.ok(PATH).await;
    assert_eq!(all["totalRevenue"], "2324.74");
    assert_eq!(all["transactions"], 8);
    // camp-a 105.55, then camp-b and camp-c tied at 100.10: by id.
    assert_eq!(all["byCampaign"][0]["campaignId"], "camp-a");
    assert_eq!(all["byCampaign"][1]["campaignId"], "camp-b");
    assert_eq!(all["byCampaign"][2]["campaignId"], "camp-c");
    app.cleanup().await;
}

#[tokio::test]
async fn many_cents_add_up_exactly() {
    let app = TestApp::spawn().await;
    let mut rng = StdRng::seed_from_u64(7);
    let t0 = at("2024-05-01T00:00:00Z");
    let mut events = Vec::new();
    let mut expected = Decimal::ZERO;
    for i in 0..3000 {
        let cents: i64 = rng.gen_range(0..200_000);
        let amount = Decimal::new(cents, 2);
        expected += amount;
        let t = t0 + chrono::TimeDelta::milliseconds(rng.gen_range(0..3 * 86_400_000));
        let source = if i % 2 == 0 { "facebook" } else { "tiktok" };
        let mut e = Event::at(&format!("r{i}"), source, "bottom", "purchase", t);
        e.revenue = Some(amount);
        if i % 3 == 0 {
            e.campaign_id = Some(format!("camp-{}", i % 7));
        }
        events.push(e);
    }
    for chunk in events.chunks(1000) {
        app.insert(chunk).await;
    }
    let got = app.ok(PATH).await;
    assert_eq!(got["totalRevenue"], format!("{expected:.2}"));
    for q in [
        Query::new(),
        Query::new()
            .start("2024-05-01T13:17:00.250Z")
            .end("2024-05-03T02:00:00Z"),
        Query::new().campaign("camp-3").granularity("hour"),
        Query::new()
            .source("tiktok")
            .granularity("minute")
            .start("2024-05-02T10:00:00Z")
            .end("2024-05-02T12:00:00Z"),
        Query::new().limit(1000),
    ] {
        let got = app.ok(&q.url(PATH)).await;
        assert_eq!(got, revenue_report(&events, &q), "{}", q.url(PATH));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn limit_defaults_to_20_campaigns() {
    let app = TestApp::spawn().await;
    let events: Vec<Event> = (0..30)
        .map(|i| {
            Event::new(
                &format!("c{i}"),
                "facebook",
                "bottom",
                "checkout.complete",
                "2024-02-01T12:00:00Z",
            )
            .revenue(&format!("{}.00", i % 5))
            .campaign(&format!("camp-{i:02}"))
        })
        .collect();
    app.insert(&events).await;
    let got = app.ok(PATH).await;
    assert_eq!(got["byCampaign"].as_array().map(Vec::len), Some(20));
    assert_eq!(got, revenue_report(&events, &Query::new()));
    app.cleanup().await;
}

/// Amounts beyond a Rust decimal's 28 digits (stored before the ingestion
/// bound existed, or by hand) are summed exactly, never a 5xx or a dropped
/// connection; sub-cent amounts round half away from zero.
#[tokio::test]
async fn amounts_past_28_digits_are_summed_exactly() {
    let app = TestApp::spawn().await;
    let rows = [
        (
            "big-1",
            "2024-03-01T10:00:00Z",
            "12345678901234567890123456789.99",
        ),
        (
            "big-2",
            "2024-03-01T10:00:30Z",
            "12345678901234567890123456789.99",
        ),
        ("cent", "2024-03-02T00:00:00Z", "0.005"),
    ];
    // By hand (a test event's amount is a Rust decimal): the months'
    // partitions first, as every writer must, then the collectors' statement.
    let times: Vec<_> = rows.iter().map(|(_, t, _)| at(t)).collect();
    crate::support::ensure_partitions(&app.pool, &times).await;
    let events: Vec<NewEvent> = rows
        .iter()
        .zip(times)
        .map(|(&(id, _, amount), occurred_at)| NewEvent {
            event_id: id,
            source: "facebook",
            funnel_stage: FunnelStage::Bottom,
            event_type: "purchase",
            occurred_at,
            user_id: "u",
            revenue: Some(amount),
            campaign_id: Some("camp-big"),
            age: None,
            gender: None,
            country: None,
            city: None,
            followers: None,
            device: None,
            raw: "{}",
            plugin_name: "facebook",
            plugin_version: "1.0.0",
            plugin_digest: None,
            wit_version: None,
            correlation_id: None,
        })
        .collect();
    let inserted = insert_events(&app.pool, &events).await.unwrap();
    assert_eq!(inserted, 3);
    let total = "24691357802469135780246913579.99";
    // All time (rollups), and a window with raw edges read from `events`.
    for path in [
        PATH.to_string(),
        format!("{PATH}?from=2024-03-01T10:00:10Z&to=2024-03-02T00:00:00.5Z&granularity=hour"),
    ] {
        let (status, got) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {got}");
        if path == PATH {
            assert_eq!(got["totalRevenue"], total, "{got}");
            assert_eq!(got["bySource"][0]["revenue"], total);
            assert_eq!(got["byCampaign"][0]["revenue"], total);
            assert_eq!(got["transactions"], 3);
        } else {
            assert_eq!(
                got["totalRevenue"], "12345678901234567890123456790.00",
                "{got}"
            );
            assert_eq!(
                got["timeline"]["buckets"][0]["revenue"],
                "12345678901234567890123456789.99"
            );
        }
    }
    app.cleanup().await;
}
