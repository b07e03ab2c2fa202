//! Invalid parameters of the list and the summary: 400 naming each of them;
//! hostile values are just values.
use crate::support::TestApp;
use serde_json::Value;

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
async fn invalid_parameters_are_400_naming_them() {
    let app = TestApp::spawn().await;
    let common: &[(&str, &str)] = &[
        ("stage=", "stage"),
        ("stage=a%0Ab", "stage"),
        ("stage=plugin&stage=gateway", "stage"),
        ("source=", "source"),
        ("field=", "field"),
        ("field=x%00y", "field"),
        ("pluginVersion=", "pluginVersion"),
        ("from=yesterday", "from"),
        ("from=2024-01-01T10:00:00+02:00", "from"),
        ("to=2024-1-1", "to"),
        ("from=2024-01-02&to=2024-01-01T23:59:59Z", "from"),
    ];
    let list_only: &[(&str, &str)] = &[
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("cursor=", "cursor"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=MTIz", "cursor"),
        ("cursor=a%2Bb", "cursor"),
    ];
    for (query, param) in common.iter().chain(list_only) {
        let (status, body) = app.get(&format!("/api/v1/dead-letters?{query}")).await;
        assert_400(&body, status, param, query);
    }
    for (query, param) in common {
        let (status, body) = app
            .get(&format!("/api/v1/dead-letters/summary?{query}"))
            .await;
        assert_400(&body, status, param, query);
    }
    // The summary has no limit or cursor: ignored like unknown parameters.
    app.ok("/api/v1/dead-letters/summary?limit=0&cursor=x")
        .await;
    // Every problem is listed.
    let (status, body) = app
        .get("/api/v1/dead-letters?stage=&from=x&limit=0&cursor=%21")
        .await;
    assert_eq!(status, 400);
    let params: Vec<&str> = body["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["param"].as_str()).collect())
        .unwrap_or_default();
    for p in ["stage", "from", "limit", "cursor"] {
        assert!(params.contains(&p), "{p} missing in {body}");
    }
    // Hostile values are just values.
    for q in [
        "source=%27%3B%20DROP%20TABLE%20dead_letters%3B--",
        "field=%22%7D%5D",
        "limit=1000&from=0001-01-01&to=9999-12-30",
    ] {
        app.ok(&format!("/api/v1/dead-letters?{q}")).await;
        app.ok(&format!("/api/v1/dead-letters/summary?{q}")).await;
    }
    app.cleanup().await;
}
