//! Every invalid parameter value gives 400 with the JSON error naming it.

use crate::support::TestApp;
use serde_json::Value;

const REPORTS: [&str; 3] = ["events", "revenue", "demographics"];

/// (query, the parameter blamed)
const COMMON_BAD: &[(&str, &str)] = &[
    ("from=yesterday", "from"),
    ("from=", "from"),
    ("from=2024-13-01", "from"),
    ("from=2024-02-30", "from"),
    ("from=2024-01-01T25:00:00Z", "from"),
    ("from=2024-01-01T10:00:00", "from"),
    // an unencoded + arrives as a space
    ("from=2024-01-01T10:00:00+02:00", "from"),
    ("from=1704067200", "from"),
    ("to=2024-1-1", "to"),
    ("to=0000-01-01", "to"),
    ("to=9999-12-31", "to"),
    ("from=2024-01-02&to=2024-01-01T23:59:59Z", "from"),
    (
        "from=2024-01-02T00:00:00.000001Z&to=2024-01-02T00:00:00Z",
        "from",
    ),
    ("source=", "source"),
    ("source=Facebook", "source"),
    ("source=face%20book", "source"),
    ("source=abcdefghijklmnopqrstuvwxyz0123456", "source"),
    ("source=fb%27%3B%20DROP%20TABLE%20events%3B--", "source"),
    ("source=facebook&source=tiktok", "source"),
];

fn assert_400(body: &Value, status: u16, param: &str, query: &str) {
    assert_eq!(status, 400, "{query}: {body}");
    assert_eq!(body["error"], "invalid query parameters", "{query}: {body}");
    let details = body["details"].as_array().expect("details array");
    assert!(
        details
            .iter()
            .any(|d| d["param"] == param && d["message"].as_str().is_some_and(|m| !m.is_empty())),
        "{query}: expected a detail for {param}: {body}"
    );
}

#[tokio::test]
async fn bad_common_parameters_are_refused_by_every_report() {
    let app = TestApp::spawn().await;
    for report in REPORTS {
        for (query, param) in COMMON_BAD {
            let (status, body) = app.get(&format!("/api/v1/reports/{report}?{query}")).await;
            assert_400(&body, status, param, query);
        }
    }
    // The table is still there.
    let (status, _) = app.get("/api/v1/reports/events").await;
    assert_eq!(status, 200);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_report_specific_parameters() {
    let app = TestApp::spawn().await;
    let cases: &[(&str, &str, &str)] = &[
        ("events", "funnelStage=middle", "funnelStage"),
        ("events", "funnelStage=TOP", "funnelStage"),
        ("events", "funnelStage=", "funnelStage"),
        ("events", "eventType=", "eventType"),
        ("events", "eventType=a%0Ab", "eventType"),
        ("events", "granularity=week", "granularity"),
        ("events", "granularity=", "granularity"),
        ("events", "granularity=hour&granularity=day", "granularity"),
        ("revenue", "granularity=second", "granularity"),
        ("revenue", "campaignId=", "campaignId"),
        ("revenue", "limit=0", "limit"),
        ("revenue", "limit=1001", "limit"),
        ("revenue", "limit=-1", "limit"),
        ("revenue", "limit=ten", "limit"),
        ("revenue", "limit=1.5", "limit"),
        ("revenue", "limit=", "limit"),
        ("revenue", "limit=99999999999999999999", "limit"),
        ("demographics", "limit=0", "limit"),
        ("demographics", "limit=1001", "limit"),
        ("demographics", "limit=%2B5", "limit"),
    ];
    for (report, query, param) in cases {
        let (status, body) = app.get(&format!("/api/v1/reports/{report}?{query}")).await;
        assert_400(&body, status, param, query);
    }
    // Several problems are all listed.
    let (status, body) = app
        .get("/api/v1/reports/events?from=x&to=y&source=Z&funnelStage=m&granularity=w&eventType=")
        .await;
    assert_eq!(status, 400);
    let params: Vec<&str> = body["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["param"].as_str()).collect())
        .unwrap_or_default();
    for p in [
        "from",
        "to",
        "source",
        "funnelStage",
        "granularity",
        "eventType",
    ] {
        assert!(params.contains(&p), "{p} missing in {body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn limits_at_the_edges_and_hostile_values_are_fine() {
    let app = TestApp::spawn().await;
    for q in [
        "revenue?limit=1",
        "revenue?limit=1000",
        "demographics?limit=1000",
        "events?eventType=%27%3B%20DROP%20TABLE%20events%3B--",
        "revenue?campaignId=%27%20OR%201%3D1--",
        "events?from=2024-01-01T10:00:00%2B02:00&to=2024-01-01T10:00:00.123456789-07:30",
        "events?from=2024-01-01t10:00:00z",
        "events?from=0001-01-01&to=9999-12-30",
    ] {
        let (status, body) = app.get(&format!("/api/v1/reports/{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
    }
    app.cleanup().await;
}
