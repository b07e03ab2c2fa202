//! The list: filters, newest-first order, cursor pagination without gaps or
//! duplicates, and every column of an item with the raw text capped.
use super::{filters, seed, Filter};
use crate::support::TestApp;
use serde_json::{json, Value};

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

/// A plugin component's SHA-256, as the collectors store it.
const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[tokio::test]
async fn list_items_have_every_column_and_a_capped_raw() {
    let app = TestApp::spawn().await;
    let big = format!("{{\"x\":\"{}\"}}", "é".repeat(70_000));
    sqlx::query(
        "INSERT INTO dead_letters (stage, source, event_id, reasons, raw, plugin_name, \
         plugin_version, plugin_digest, wit_version, correlation_id, received_at) VALUES \
         ('plugin', 'facebook', 'ev-1', '[{\"field\":\"properties.age\",\"message\":\"must be 13-120\"}]', \
          '{\"eventId\":\"ev-1\"}', 'facebook-plugin', '1.2.0', $2, '0.2.0', 'corr-1', \
          '2024-01-01T10:00:00.5Z'), \
         ('gateway', NULL, NULL, '[{\"field\":\"envelope\",\"message\":\"not JSON\"}]', $1, \
          NULL, NULL, NULL, NULL, NULL, '2024-01-01T09:00:00Z')",
    )
    .bind(&big)
    .bind(DIGEST)
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
        "pluginDigest": DIGEST,
        "witVersion": "0.2.0",
        "correlationId": "corr-1",
        "receivedAt": "2024-01-01T10:00:00.500Z",
    });
    assert_eq!(items[0], expected);
    let second = &items[1];
    assert_eq!(second["source"], Value::Null);
    assert_eq!(second["eventId"], Value::Null);
    // A gateway refusal: no plugin ran, no lineage.
    assert_eq!(second["pluginDigest"], Value::Null);
    assert_eq!(second["witVersion"], Value::Null);
    assert_eq!(second["receivedAt"], "2024-01-01T09:00:00Z");
    assert_eq!(second["rawTruncated"], true);
    let raw = second["raw"].as_str().expect("raw");
    assert_eq!(raw.chars().count(), 65_536);
    assert!(big.starts_with(raw));
    app.cleanup().await;
}
