//! Health, metrics, OpenAPI, access control, correlation ids, shutdown.

use crate::support::{Event, TestApp};

#[tokio::test]
async fn health_endpoints() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/health/live").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    // The database probe runs at startup; give it a moment.
    let mut ready = (0, serde_json::Value::Null);
    for _ in 0..50 {
        ready = app.get("/health/ready").await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(ready.1["checks"]["database"], true);
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_have_the_dashboard_names() {
    let app = TestApp::spawn().await;
    app.ok("/api/v1/reports/events").await;
    app.ok("/api/v1/reports/revenue").await;
    let (status, _) = app.get("/api/v1/reports/demographics?limit=0").await;
    assert_eq!(status, 400);
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "reporter_report_duration_seconds_bucket{report=\"events\"",
        "reporter_report_duration_seconds_count{report=\"revenue\"} 1",
        "reporter_requests_total{outcome=\"success\",report=\"events\"} 1",
        "reporter_requests_total{outcome=\"client_error\",report=\"demographics\"} 1",
        "reporter_requests_total{outcome=\"server_error\",report=\"events\"} 0",
        "reporter_requests_in_flight{report=\"events\"} 0",
        "http_requests_total{method=\"GET\",route=\"/api/v1/reports/events\",service=\"reporter\",status=\"200\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn openapi_describes_the_three_reports() {
    let app = TestApp::spawn().await;
    let doc = app.ok("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for (path, params) in [
        (
            "/api/v1/reports/events",
            &[
                "from",
                "to",
                "source",
                "funnelStage",
                "eventType",
                "granularity",
            ][..],
        ),
        (
            "/api/v1/reports/revenue",
            &["from", "to", "source", "campaignId", "granularity", "limit"][..],
        ),
        (
            "/api/v1/reports/demographics",
            &["from", "to", "source", "limit"][..],
        ),
    ] {
        let op = &doc["paths"][path]["get"];
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, params, "{path}");
        for status in ["200", "400", "401"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    for s in [
        "EventsReport",
        "RevenueReport",
        "DemographicsReport",
        "ErrorBody",
        "ParamError",
    ] {
        assert!(schemas[s].is_object(), "schema {s}");
    }
    assert_eq!(
        schemas["EventsReport"]["properties"]["totalEvents"]["type"],
        "integer"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every reference resolves.
    let text = doc.to_string();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(schemas[&name].is_object(), "dangling $ref {name}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_token_protects_reports_but_not_ops_endpoints() {
    let app = TestApp::spawn_with(&[("REPORTER_API_TOKEN", "s3cret-token")]).await;
    for report in ["events", "revenue", "demographics"] {
        let path = format!("/api/v1/reports/{report}");
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "missing or invalid bearer token");
        let (status, _) = app.get_with(&path, Some("wrong-token")).await;
        assert_eq!(status, 401);
        let (status, _) = app.get_with(&path, Some("s3cret-token")).await;
        assert_eq!(status, 200);
        // Authentication comes before validation.
        let (status, _) = app.get(&format!("{path}?limit=0")).await;
        assert_eq!(status, 401);
    }
    let res = app
        .client
        .get(format!("{}/api/v1/reports/events", app.address))
        .header("authorization", "Basic s3cret-token")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    for open in ["/health/live", "/metrics", "/api/v1/openapi.json"] {
        let (status, _) = app.get(open).await;
        assert_eq!(status, 200, "{open}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn correlation_ids_are_echoed_and_unknown_routes_are_json_404() {
    let app = TestApp::spawn_with(&[("CORRELATION_ID_HEADER", "X-Request-Id")]).await;
    let res = app
        .client
        .get(format!("{}/api/v1/reports/events", app.address))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    let (status, body) = app.get("/api/v1/reports/nope").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = app.get_with("/api/v1/reports/events", None).await;
    assert_eq!((status, body.is_object()), (200, true));
    app.cleanup().await;
}

#[tokio::test]
async fn reports_stay_consistent_while_inserting() {
    // Totals and timelines come from one snapshot: they always agree even
    // with inserts running concurrently.
    let app = TestApp::spawn().await;
    let pool = app.pool.clone();
    let writer = tokio::spawn(async move {
        for b in 0..20 {
            let batch: Vec<Event> = (0..50)
                .map(|i| {
                    Event::new(
                        &format!("w{b}-{i}"),
                        "facebook",
                        "top",
                        "ad.view",
                        "2024-01-01T10:00:00Z",
                    )
                })
                .collect();
            crate::support::insert(&pool, &batch).await;
        }
    });
    for _ in 0..20 {
        let r = app.ok("/api/v1/reports/events").await;
        let sum: i64 = r["timeline"]["buckets"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["count"].as_i64()).sum())
            .unwrap_or(0);
        assert_eq!(Some(sum), r["totalEvents"].as_i64());
    }
    writer.await.expect("writer");
    app.cleanup().await;
}

#[tokio::test]
async fn a_read_only_role_is_enough() {
    // The README's role, against a schema migrated by its owner.
    let owner = TestApp::spawn().await;
    owner
        .insert(&[
            Event::new("e1", "facebook", "top", "ad.view", "2024-01-01T10:00:00Z")
                .person(30, "female", "Poland", "Warsaw"),
        ])
        .await;
    let role = format!("reporter_ro_{}", uuid::Uuid::new_v4().simple());
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", owner.db_name),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!(
            "GRANT SELECT ON events, rollup_events, rollup_revenue, rollup_revenue_campaigns, \
             rollup_demographics, events_demographic_facts, dead_letters, _sqlx_migrations \
             TO {role}"
        ),
        format!("ALTER ROLE {role} SET default_transaction_read_only = on"),
    ] {
        sqlx::query(&sql).execute(&owner.pool).await.expect(&sql);
    }
    let url = format!("{}/{}", crate::support::base_url(), owner.db_name)
        .replace("postgres@", &format!("{role}@"));
    let config = events_reporter::config::Config::from_source(&std::collections::HashMap::from([
        ("DATABASE_URL".to_string(), url),
        ("LOG_LEVEL".to_string(), "error".to_string()),
    ]))
    .expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = events_reporter::startup::spawn(config, listener)
        .await
        .expect("starts read-only");
    let base = format!("http://{}", app.addr);
    for path in [
        "reports/events",
        "reports/revenue",
        "reports/demographics",
        "dead-letters",
        "dead-letters/summary",
    ] {
        let res = reqwest::get(format!("{base}/api/v1/{path}"))
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 200, "{path}");
    }
    let body: serde_json::Value = reqwest::get(format!("{base}/api/v1/reports/demographics"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(body["facebook"]["gender"]["female"], 1);
    app.stop().await.expect("stop");
    owner.cleanup().await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&format!(
        "{}/postgres",
        crate::support::base_url()
    ))
    .await
    .expect("admin");
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await
        .expect("drop role");
}
