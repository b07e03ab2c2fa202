//! Access and description: the report token guards dead letters, OpenAPI
//! documents them, and their requests are counted in the metrics.
use crate::support::TestApp;
use serde_json::json;

#[tokio::test]
async fn the_report_token_protects_dead_letters() {
    let app = TestApp::spawn_with(&[("REPORTER_API_TOKEN", "s3cret-token")]).await;
    for path in ["/api/v1/dead-letters", "/api/v1/dead-letters/summary"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "missing or invalid bearer token");
        let (status, _) = app.get_with(path, Some("wrong-token")).await;
        assert_eq!(status, 401);
        let (status, body) = app.get_with(path, Some("s3cret-token")).await;
        assert_eq!(status, 200, "{body}");
        // Authentication comes before validation.
        let (status, _) = app.get(&format!("{path}?stage=")).await;
        assert_eq!(status, 401);
        let (status, _) = app
            .get_with(&format!("{path}?stage="), Some("s3cret-token"))
            .await;
        assert_eq!(status, 400);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn openapi_and_metrics_cover_dead_letters() {
    let app = TestApp::spawn().await;
    let doc = app.ok("/api/v1/openapi.json").await;
    for (path, params, schema) in [
        (
            "/api/v1/dead-letters",
            &[
                "stage",
                "source",
                "field",
                "pluginVersion",
                "from",
                "to",
                "limit",
                "cursor",
            ][..],
            "DeadLetterPage",
        ),
        (
            "/api/v1/dead-letters/summary",
            &["stage", "source", "field", "pluginVersion", "from", "to"][..],
            "DeadLetterSummary",
        ),
    ] {
        let op = &doc["paths"][path]["get"];
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, params, "{path}");
        for status in ["200", "400", "401", "503"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{path}"
        );
        assert!(op["security"].is_array(), "{path}");
    }
    let schemas = &doc["components"]["schemas"];
    for s in [
        "DeadLetterPage",
        "DeadLetterItem",
        "DeadLetterSummary",
        "FieldCount",
        "MessageCount",
        "Reason",
    ] {
        assert!(schemas[s].is_object(), "schema {s}");
    }
    assert_eq!(
        schemas["DeadLetterItem"]["properties"]["rawTruncated"]["type"],
        "boolean"
    );
    // Lineage: nullable strings, next to the plugin's name and version.
    for field in ["pluginDigest", "witVersion"] {
        let property = &schemas["DeadLetterItem"]["properties"][field];
        assert!(property.is_object(), "DeadLetterItem.{field}: {property}");
        assert!(
            property.to_string().contains("string"),
            "DeadLetterItem.{field}: {property}"
        );
        let required = schemas["DeadLetterItem"]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!required.contains(&json!(field)), "{field} is nullable");
    }
    let text = doc.to_string();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(schemas[&name].is_object(), "dangling $ref {name}");
    }
    // Requests are counted like the reports'.
    app.ok("/api/v1/dead-letters").await;
    let (status, _) = app.get("/api/v1/dead-letters/summary?from=x").await;
    assert_eq!(status, 400);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "reporter_requests_total{outcome=\"success\",report=\"dead_letters\"} 1",
        "reporter_requests_total{outcome=\"client_error\",report=\"dead_letters_summary\"} 1",
        "reporter_requests_in_flight{report=\"dead_letters\"} 0",
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }
    app.cleanup().await;
}
