//! The summary: totals and counts by stage, source, field and message, as
//! recounted in Rust from the seeded letters.
use super::{filters, seed, Filter, Letter};
use crate::support::{at, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

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
