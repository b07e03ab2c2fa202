//! The dead-letters API: filters, ordering and pagination of the list, the
//! summary's counts, validation, access and OpenAPI. Dead letters are
//! inserted with plain SQL; every expectation is computed in Rust from the
//! inserted rows, never by the reporter's SQL.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use crate::support::{at, TestApp};

/// A dead letter as inserted (the id is the database's).
#[derive(Debug, Clone)]
struct Letter {
    id: i64,
    stage: &'static str,
    source: Option<String>,
    reasons: Vec<(String, String)>,
    plugin_version: Option<String>,
    received_at: DateTime<Utc>,
}

const STAGES: [&str; 3] = ["gateway", "plugin", "delivery"];
const SOURCES: [Option<&str>; 4] = [Some("facebook"), Some("tiktok"), Some("Bad Source"), None];
const FIELDS: [&str; 5] = [
    "eventId",
    "occurredAt",
    "properties.age",
    "source",
    "envelope",
];

/// Stored instants the window tests put their bounds on.
const BOUND_INSTANTS: [&str; 3] = [
    "2024-03-01T10:03:00Z",
    "2024-03-01T10:03:00.123456Z",
    "2024-03-02T02:48:00.123456Z",
];

/// A small deterministic generator (no seed to replay: the data is fixed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Inserts `n` varied dead letters: several per received_at (so the id
/// breaks ties), reasons on 1–3 fields, 60 distinct messages.
async fn seed(app: &TestApp, n: usize) -> Vec<Letter> {
    let mut rng = Lcg(7);
    let base = at("2024-03-01T00:00:00Z");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let stage = STAGES[rng.next(3) as usize];
        let source = SOURCES[rng.next(4) as usize].map(str::to_string);
        let mut reasons = Vec::new();
        for _ in 0..=rng.next(3) {
            let field = FIELDS[rng.next(5) as usize].to_string();
            let message = format!("problem {}", rng.next(60));
            reasons.push((field, message));
        }
        let plugin_version = match rng.next(3) {
            0 => None,
            1 => Some("1.0.0".to_string()),
            _ => Some("1.1.0".to_string()),
        };
        // ~4 letters per distinct instant, over ~3 days, microseconds too.
        let mut received_at = base
            + TimeDelta::minutes(rng.next(n as u64 / 4 + 1) as i64 * 67)
            + TimeDelta::microseconds(if rng.next(2) == 0 { 0 } else { 123_456 });
        // The first three on the window bounds the tests use.
        if let Some(t) = BOUND_INSTANTS.get(i) {
            received_at = at(t);
        }
        let reasons_json: Value = reasons
            .iter()
            .map(|(f, m)| json!({"field": f, "message": m}))
            .collect();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO dead_letters (stage, source, event_id, reasons, raw, plugin_name, \
             plugin_version, correlation_id, dedup_key, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(stage)
        .bind(&source)
        .bind(format!("ev-{i}"))
        .bind(&reasons_json)
        .bind(format!("{{\"eventId\":\"ev-{i}\"}}"))
        .bind(source.as_ref().map(|s| format!("{s}-plugin")))
        .bind(&plugin_version)
        .bind(format!("corr-{i}"))
        .bind(format!("DEADLETTERS:{i}"))
        .bind(received_at)
        .fetch_one(&app.pool)
        .await
        .expect("insert dead letter");
        out.push(Letter {
            id,
            stage,
            source,
            reasons,
            plugin_version,
            received_at,
        });
    }
    out
}

/// The filters of one request, applied in Rust.
#[derive(Debug, Default, Clone)]
struct Filter {
    stage: Option<&'static str>,
    source: Option<&'static str>,
    field: Option<&'static str>,
    plugin_version: Option<&'static str>,
    from: Option<&'static str>,
    to: Option<&'static str>,
}

impl Filter {
    fn query(&self) -> String {
        let mut q = form_query();
        for (k, v) in [
            ("stage", self.stage),
            ("source", self.source),
            ("field", self.field),
            ("pluginVersion", self.plugin_version),
            ("from", self.from),
            ("to", self.to),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }

    fn keeps(&self, l: &Letter) -> bool {
        self.stage.is_none_or(|s| l.stage == s)
            && self.source.is_none_or(|s| l.source.as_deref() == Some(s))
            && self
                .field
                .is_none_or(|f| l.reasons.iter().any(|r| r.0 == f))
            && self
                .plugin_version
                .is_none_or(|v| l.plugin_version.as_deref() == Some(v))
            && self.from.is_none_or(|f| l.received_at >= bound(f, false))
            && self.to.is_none_or(|t| l.received_at < bound(t, true))
    }

    /// Ids newest first by (received_at, id).
    fn expected_ids(&self, letters: &[Letter]) -> Vec<i64> {
        let mut kept: Vec<&Letter> = letters.iter().filter(|l| self.keeps(l)).collect();
        kept.sort_by_key(|l| std::cmp::Reverse((l.received_at, l.id)));
        kept.iter().map(|l| l.id).collect()
    }
}

fn form_query() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

/// A test's bound: a date-time, or a bare date (an end covers that day).
fn bound(v: &str, end: bool) -> DateTime<Utc> {
    if v.len() == 10 {
        let t = at(&format!("{v}T00:00:00Z"));
        if end {
            t + TimeDelta::days(1)
        } else {
            t
        }
    } else {
        at(v)
    }
}

fn filters() -> Vec<Filter> {
    vec![
        Filter::default(),
        Filter {
            stage: Some("plugin"),
            ..Default::default()
        },
        Filter {
            source: Some("facebook"),
            ..Default::default()
        },
        Filter {
            source: Some("Bad Source"),
            stage: Some("gateway"),
            ..Default::default()
        },
        Filter {
            field: Some("occurredAt"),
            ..Default::default()
        },
        Filter {
            field: Some("properties.age"),
            plugin_version: Some("1.1.0"),
            ..Default::default()
        },
        Filter {
            plugin_version: Some("1.0.0"),
            ..Default::default()
        },
        Filter {
            // Bounds on stored instants (every 67 minutes, +0 or
            // +0.123456 s): from is inclusive, to exclusive.
            from: Some("2024-03-01T10:03:00.123456Z"),
            to: Some("2024-03-02T02:48:00.123456Z"),
            ..Default::default()
        },
        Filter {
            from: Some("2024-03-02"),
            to: Some("2024-03-02"),
            stage: Some("delivery"),
            field: Some("eventId"),
            ..Default::default()
        },
        Filter {
            source: Some("nobody"),
            ..Default::default()
        },
        Filter {
            field: Some("no-such-field"),
            ..Default::default()
        },
        Filter {
            from: Some("2024-03-01T05:00:00Z"),
            to: Some("2024-03-01T05:00:00Z"),
            ..Default::default()
        },
    ]
}

/// Follows `nextCursor` until it is null; the ids of every page, in order.
async fn all_pages(app: &TestApp, query: &str, limit: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!("/api/v1/dead-letters?{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let body = app.ok(&q).await;
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= limit, "{q}: {} items", items.len());
        ids.extend(items.iter().map(|i| i["id"].as_i64().expect("id")));
        match body["nextCursor"].as_str() {
            Some(c) => {
                // A cursor is only given when something follows.
                assert_eq!(items.len(), limit, "{q}: short page with a cursor");
                cursor = Some(c.to_string());
            }
            None => {
                assert!(body["nextCursor"].is_null(), "{q}: {body}");
                return ids;
            }
        }
    }
    panic!("{query}: pagination does not end");
}

#[tokio::test]
async fn list_filters_orders_and_pages_without_gaps_or_duplicates() {
    let app = TestApp::spawn().await;
    let letters = seed(&app, 240).await;
    for (i, f) in filters().into_iter().enumerate() {
        let query = f.query();
        let expected = f.expected_ids(&letters);
        // The last three filters select nothing; the others something.
        assert_eq!(expected.is_empty(), i >= 9, "{query}");
        // Everything in one page (default limit 100 when it fits).
        if expected.len() <= 100 {
            let body = app.ok(&format!("/api/v1/dead-letters?{query}")).await;
            let ids: Vec<i64> = body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["id"].as_i64().expect("id"))
                .collect();
            assert_eq!(ids, expected, "{query}");
            assert!(body["nextCursor"].is_null(), "{query}: {body}");
        }
        for limit in [1, 7, 100, 1000] {
            if limit == 1 && expected.len() > 60 {
                continue;
            }
            let ids = all_pages(&app, &query, limit).await;
            assert_eq!(ids, expected, "{query} limit={limit}");
        }
    }
    // Unfiltered with the default limit: 100, then 100, then 40.
    let expected = Filter::default().expected_ids(&letters);
    let first = app.ok("/api/v1/dead-letters").await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(100));
    let c = first["nextCursor"].as_str().expect("cursor").to_string();
    assert!(
        c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{c}"
    );
    let second = app.ok(&format!("/api/v1/dead-letters?cursor={c}")).await;
    let ids: Vec<i64> = first["items"]
        .as_array()
        .into_iter()
        .chain(second["items"].as_array())
        .flatten()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, expected[..200]);
    // New letters arriving while paging do not shift the later pages.
    sqlx::query(
        "INSERT INTO dead_letters (stage, reasons, raw) \
         SELECT 'gateway', '[]', '{}' FROM generate_series(1, 5)",
    )
    .execute(&app.pool)
    .await
    .expect("insert");
    let again = app.ok(&format!("/api/v1/dead-letters?cursor={c}")).await;
    assert_eq!(again["items"], second["items"]);
    app.cleanup().await;
}

#[tokio::test]
async fn list_items_have_every_column_and_a_capped_raw() {
    let app = TestApp::spawn().await;
    let big = format!("{{\"x\":\"{}\"}}", "é".repeat(70_000));
    sqlx::query(
        "INSERT INTO dead_letters (stage, source, event_id, reasons, raw, plugin_name, \
         plugin_version, correlation_id, received_at) VALUES \
         ('plugin', 'facebook', 'ev-1', '[{\"field\":\"properties.age\",\"message\":\"must be 13-120\"}]', \
          '{\"eventId\":\"ev-1\"}', 'facebook-plugin', '1.2.0', 'corr-1', '2024-01-01T10:00:00.5Z'), \
         ('gateway', NULL, NULL, '[{\"field\":\"envelope\",\"message\":\"not JSON\"}]', $1, \
          NULL, NULL, NULL, '2024-01-01T09:00:00Z')",
    )
    .bind(&big)
    .execute(&app.pool)
    .await
    .expect("insert");
    let body = app.ok("/api/v1/dead-letters").await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let first = items[0].as_object().expect("object");
    let expected = json!({
        "id": first["id"],
        "stage": "plugin",
        "source": "facebook",
        "eventId": "ev-1",
        "reasons": [{"field": "properties.age", "message": "must be 13-120"}],
        "raw": "{\"eventId\":\"ev-1\"}",
        "rawTruncated": false,
        "pluginName": "facebook-plugin",
        "pluginVersion": "1.2.0",
        "correlationId": "corr-1",
        "receivedAt": "2024-01-01T10:00:00.500Z",
    });
    assert_eq!(items[0], expected);
    let second = &items[1];
    assert_eq!(second["source"], Value::Null);
    assert_eq!(second["eventId"], Value::Null);
    assert_eq!(second["receivedAt"], "2024-01-01T09:00:00Z");
    assert_eq!(second["rawTruncated"], true);
    let raw = second["raw"].as_str().expect("raw");
    assert_eq!(raw.chars().count(), 65_536);
    assert!(big.starts_with(raw));
    app.cleanup().await;
}

/// The summary computed in Rust.
fn expected_summary(letters: &[Letter], f: &Filter) -> Value {
    let kept: Vec<&Letter> = letters.iter().filter(|l| f.keeps(l)).collect();
    let mut by_stage: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_source: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_field: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_message: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &kept {
        *by_stage.entry(l.stage).or_default() += 1;
        if let Some(s) = &l.source {
            *by_source.entry(s).or_default() += 1;
        }
        let fields: BTreeSet<&str> = l.reasons.iter().map(|r| r.0.as_str()).collect();
        for x in fields {
            *by_field.entry(x).or_default() += 1;
        }
        let messages: BTreeSet<&str> = l.reasons.iter().map(|r| r.1.as_str()).collect();
        for x in messages {
            *by_message.entry(x).or_default() += 1;
        }
    }
    let top = |m: BTreeMap<&str, i64>, key: &str| -> Value {
        let mut v: Vec<(&str, i64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.truncate(50);
        v.into_iter()
            .map(|(k, n)| json!({key: k, "count": n}))
            .collect()
    };
    json!({
        "total": kept.len(),
        "byStage": by_stage,
        "bySource": by_source,
        "byField": top(by_field, "field"),
        "byMessage": top(by_message, "message"),
    })
}

#[tokio::test]
async fn summary_counts_match_the_letters() {
    let app = TestApp::spawn().await;
    let mut letters = seed(&app, 240).await;
    // Two reasons on one field and message count the letter once.
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO dead_letters (stage, source, reasons, raw, received_at) VALUES \
         ('plugin', 'tiktok', '[{\"field\":\"source\",\"message\":\"problem 1\"}, \
           {\"field\":\"source\",\"message\":\"problem 1\"}]', '{}', '2024-03-01T00:00:00Z') \
         RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .expect("insert");
    letters.push(Letter {
        id,
        stage: "plugin",
        source: Some("tiktok".to_string()),
        reasons: vec![("source".to_string(), "problem 1".to_string()); 2],
        plugin_version: None,
        received_at: at("2024-03-01T00:00:00Z"),
    });
    for f in filters() {
        let query = f.query();
        let body = app
            .ok(&format!("/api/v1/dead-letters/summary?{query}"))
            .await;
        let expected = expected_summary(&letters, &f);
        assert_eq!(body, expected, "{query}");
    }
    // 60 messages exist: the list stops at 50.
    let all = app.ok("/api/v1/dead-letters/summary").await;
    assert_eq!(all["byMessage"].as_array().map(Vec::len), Some(50));
    assert_eq!(all["total"], letters.len());
    // Letters without a source are in the total but not in bySource.
    let by_source: i64 = all["bySource"]
        .as_object()
        .expect("bySource")
        .values()
        .filter_map(Value::as_i64)
        .sum();
    let without = letters.iter().filter(|l| l.source.is_none()).count() as i64;
    assert!(without > 0);
    assert_eq!(by_source + without, letters.len() as i64);
    // Empty table: zeros and empty lists.
    sqlx::query("TRUNCATE dead_letters")
        .execute(&app.pool)
        .await
        .expect("truncate");
    let empty = app.ok("/api/v1/dead-letters/summary").await;
    assert_eq!(
        empty,
        json!({"total": 0, "byStage": {}, "bySource": {}, "byField": [], "byMessage": []})
    );
    let list = app.ok("/api/v1/dead-letters").await;
    assert_eq!(list, json!({"items": [], "nextCursor": null}));
    app.cleanup().await;
}

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
