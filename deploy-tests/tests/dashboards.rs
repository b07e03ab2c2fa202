//! Structure of the provisioned Grafana dashboards: they parse, every panel
//! queries the provisioned Prometheus datasource with a non-empty PromQL
//! expression that uses only metrics the services export, the required
//! panels exist, and (with promtool) every expression parses.
//!
//! `tests/prometheus_e2e.rs` then evaluates every expression against a real
//! Prometheus scraping the real services.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use deploy_tests::{
    all_exprs, command_exists, dashboards, metric_names, panel_exprs, panels, run, title,
};
use serde_json::{json, Value as Json};

const PANEL_TYPES: &[&str] = &[
    "stat",
    "timeseries",
    "gauge",
    "bargauge",
    "table",
    "text",
    "row",
    "heatmap",
    "piechart",
];

/// Every metric the services export (see the README), plus Prometheus' own.
const METRICS: &[&str] = &[
    "up",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "http_requests_in_flight",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
    "gateway_events_accepted_total",
    "gateway_events_processed_total",
    "gateway_events_failed_total",
    "gateway_events_duplicate_total",
    "gateway_request_body_bytes_bucket",
    "gateway_request_body_bytes_sum",
    "gateway_request_body_bytes_count",
    "gateway_webhook_auth_failures_total",
    "collector_events_accepted_total",
    "collector_events_processed_total",
    "collector_events_failed_total",
    "collector_batch_size_bucket",
    "collector_batch_duration_seconds_bucket",
    "collector_db_write_duration_seconds_bucket",
    "collector_consumer_pending",
    "dead_letters_total",
    "plugin_calls_total",
    "plugin_events_total",
    "plugin_failures_total",
    "plugin_call_duration_seconds_bucket",
    "reporter_report_duration_seconds_bucket",
    "reporter_requests_total",
    "reporter_requests_in_flight",
];

fn ds() -> Json {
    json!({"type": "prometheus", "uid": "prometheus"})
}

/// All non-row panels of all dashboards.
fn query_panels() -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for (path, dash) in dashboards() {
        for p in panels(&dash) {
            if p.get("type").and_then(Json::as_str) != Some("row") {
                out.push((path.display().to_string(), p.clone()));
            }
        }
    }
    out
}

fn kind(p: &Json) -> &str {
    p.get("type").and_then(Json::as_str).unwrap_or_default()
}

fn stacking(p: &Json) -> Option<&str> {
    p.pointer("/fieldConfig/defaults/custom/stacking/mode")
        .and_then(Json::as_str)
}

#[test]
fn dashboards_parse_and_have_identity() {
    let all = dashboards();
    assert!(
        !all.is_empty(),
        "no dashboards in deploy/grafana/dashboards"
    );
    let mut uids = BTreeSet::new();
    for (path, dash) in &all {
        let uid = dash.get("uid").and_then(Json::as_str).unwrap_or_default();
        assert!(!uid.is_empty(), "{}: no uid", path.display());
        assert!(
            uids.insert(uid.to_string()),
            "duplicate dashboard uid {uid}"
        );
        assert!(
            dash.get("title")
                .and_then(Json::as_str)
                .is_some_and(|t| !t.is_empty()),
            "{}: no title",
            path.display()
        );
        assert!(
            dash.get("id").is_none_or(Json::is_null),
            "{}: provisioned dashboards must not carry a database id",
            path.display()
        );
        let ps = panels(dash);
        assert!(!ps.is_empty(), "{}: no panels", path.display());
        let mut ids = BTreeSet::new();
        for p in ps {
            let id = p.get("id").and_then(Json::as_u64);
            assert!(
                id.is_some_and(|id| ids.insert(id)),
                "{}: panel {:?} has a missing or duplicate id",
                path.display(),
                title(p)
            );
            for k in ["h", "w", "x", "y"] {
                assert!(
                    p.pointer(&format!("/gridPos/{k}"))
                        .and_then(Json::as_u64)
                        .is_some(),
                    "{}: panel {:?} lacks gridPos.{k}",
                    path.display(),
                    title(p)
                );
            }
            assert!(
                PANEL_TYPES.contains(&kind(p)),
                "panel {:?}: unexpected type {:?}",
                title(p),
                kind(p)
            );
            if kind(p) == "row" {
                assert!(
                    panel_exprs(p).is_empty(),
                    "row {:?} must not have queries",
                    title(p)
                );
            }
        }
    }
}

#[test]
fn every_panel_queries_the_prometheus_datasource() {
    for (file, p) in query_panels() {
        if kind(&p) == "text" {
            continue;
        }
        assert_eq!(
            p.get("datasource"),
            Some(&ds()),
            "{file}: panel {:?} datasource",
            title(&p)
        );
        let targets = p
            .get("targets")
            .and_then(Json::as_array)
            .unwrap_or_else(|| panic!("{file}: panel {:?} has no targets", title(&p)));
        assert!(
            !targets.is_empty(),
            "{file}: panel {:?} has no targets",
            title(&p)
        );
        let mut refs = BTreeSet::new();
        for t in targets {
            if let Some(d) = t.get("datasource") {
                assert_eq!(d, &ds(), "{file}: panel {:?} target datasource", title(&p));
            }
            let r = t.get("refId").and_then(Json::as_str).unwrap_or_default();
            assert!(
                !r.is_empty() && refs.insert(r.to_string()),
                "{file}: panel {:?}: missing or duplicate refId",
                title(&p)
            );
            let expr = t.get("expr").and_then(Json::as_str).unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "{file}: panel {:?} has an empty expr",
                title(&p)
            );
            // Grafana variables ($__rate_interval, $job) would not evaluate in
            // Prometheus, and the end-to-end test runs the exprs verbatim.
            assert!(
                !expr.contains('$'),
                "{file}: panel {:?}: template variables are not used: {expr}",
                title(&p)
            );
        }
    }
}

#[test]
fn exprs_use_only_exported_metrics() {
    let known: BTreeSet<&str> = METRICS.iter().copied().collect();
    let mut unknown = BTreeMap::new();
    for (file, panel, expr) in all_exprs() {
        for m in metric_names(&expr) {
            if !known.contains(m.as_str()) {
                unknown.insert(m, format!("{file}: {panel}: {expr}"));
            }
        }
    }
    assert!(unknown.is_empty(), "unknown metrics: {unknown:#?}");
}

/// Panels of type `ty` whose exprs (all of them, joined) contain every needle.
fn find<'a>(all: &'a [(String, Json)], ty: &str, needles: &[&str]) -> Vec<&'a Json> {
    all.iter()
        .map(|(_, p)| p)
        .filter(|p| kind(p) == ty)
        .filter(|p| {
            let joined = panel_exprs(p).join("\n");
            needles.iter().all(|n| joined.contains(n))
        })
        .collect()
}

#[test]
fn required_panels_exist() {
    let all = query_panels();

    // Gateway totals as stat panels.
    for metric in [
        "gateway_events_accepted_total",
        "gateway_events_processed_total",
        "gateway_events_failed_total",
    ] {
        assert!(
            !find(&all, "stat", &[metric]).is_empty(),
            "no stat panel for {metric}"
        );
    }
    // Failures may legitimately never happen: the panel must still show 0.
    for p in find(&all, "stat", &["gateway_events_failed_total"]) {
        for e in panel_exprs(p) {
            assert!(
                e.contains("or vector(0)"),
                "failed-events stat must fall back to 0: {e}"
            );
        }
    }

    // Collectors: accepted / processed / failed, stacked per collector, one
    // panel each, laid out one above another.
    let mut ys = Vec::new();
    for metric in [
        "collector_events_accepted_total",
        "collector_events_processed_total",
        "collector_events_failed_total",
    ] {
        let ps: Vec<&Json> = find(&all, "timeseries", &[metric, "by (collector)", "[1m]"])
            .into_iter()
            .filter(|p| stacking(p) == Some("normal"))
            .collect();
        assert!(
            !ps.is_empty(),
            "no stacked (stacking.mode=normal) timeseries of rate({metric}[1m]) by collector"
        );
        let p = ps[0];
        ys.push((
            p.pointer("/gridPos/y").and_then(Json::as_u64).unwrap_or(0),
            p.pointer("/gridPos/x").and_then(Json::as_u64).unwrap_or(0),
        ));
    }
    assert!(
        ys.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 == w[1].1),
        "collector accepted/processed/failed panels must be stacked one above another: {ys:?}"
    );

    // Reporter: p50 and p95 latency per report.
    let reporter = find(
        &all,
        "timeseries",
        &["reporter_report_duration_seconds_bucket", "le, report"],
    );
    assert!(!reporter.is_empty(), "no reporter latency panel by report");
    let joined = panel_exprs(reporter[0]).join("\n");
    for q in ["histogram_quantile(0.5,", "histogram_quantile(0.95,"] {
        assert!(joined.contains(q), "reporter latency panel lacks {q}");
    }

    // Plugins, lag, HTTP, DB.
    let required: &[(&str, &[&str])] = &[
        ("plugin calls", &["plugin_calls_total", "plugin, version"]),
        (
            "plugin failures",
            &["plugin_failures_total", "plugin, version"],
        ),
        (
            "plugin latency",
            &["plugin_call_duration_seconds_bucket", "le, plugin, version"],
        ),
        ("JetStream consumer lag", &["collector_consumer_pending"]),
        ("HTTP request rate", &["rate(http_requests_total[1m])"]),
        ("HTTP 5xx", &["http_requests_total{status=~\"5..\"}"]),
        (
            "DB write latency",
            &["collector_db_write_duration_seconds_bucket"],
        ),
    ];
    for (what, needles) in required {
        assert!(
            !find(&all, "timeseries", needles).is_empty(),
            "no timeseries panel for {what} ({needles:?})"
        );
    }
}

/// Counters that may legitimately stay at zero (no series at all until the
/// first failure): every expr over them must still return a series.
#[test]
fn failure_exprs_return_a_series_when_nothing_failed() {
    let maybe_absent = [
        "gateway_events_failed_total",
        "gateway_events_duplicate_total",
        "gateway_webhook_auth_failures_total",
        "collector_events_failed_total",
        "dead_letters_total",
        "plugin_failures_total",
        "status=~\"5..\"",
    ];
    for (file, panel, expr) in all_exprs() {
        if maybe_absent.iter().any(|m| expr.contains(m)) {
            assert!(
                expr.contains(" or "),
                "{file}: {panel}: needs an `or` fallback so it returns data with no failures: {expr}"
            );
        }
    }
}

/// promtool has no offline query checker, but it parses recording rules: one
/// rule per expression makes it check every expression's syntax.
#[test]
fn promtool_parses_every_expr() {
    if !command_exists("promtool") {
        println!("SKIPPED: promtool not installed; PromQL syntax not checked");
        return;
    }
    let exprs = all_exprs();
    let mut rules = String::from("groups:\n  - name: dashboard_exprs\n    rules:\n");
    for (i, (_, _, expr)) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(expr).expect("string"); // JSON strings are YAML
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = std::env::temp_dir().join(format!("deploy-tests-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("rules.yml");
    std::fs::write(&file, rules).expect("write rules");
    let (ok, out, err) = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "promtool rejected a dashboard expr:\n{out}\n{err}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "promtool output: {out}"
    );
}
