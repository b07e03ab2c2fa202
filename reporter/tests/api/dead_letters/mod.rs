//! The dead-letters API: filters, ordering and pagination of the list, the
//! summary's counts, validation, access and OpenAPI. Dead letters are
//! inserted with plain SQL; every expectation is computed in Rust from the
//! inserted rows, never by the reporter's SQL. This module holds the seeded
//! letters and the filters applied to them in Rust.
mod access;
mod list;
mod summary;
mod validation;

use crate::support::{at, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

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
