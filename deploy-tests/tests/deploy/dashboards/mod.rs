//! Structure of the provisioned Grafana dashboards: they parse, every panel
//! queries the provisioned Prometheus datasource with a non-empty PromQL
//! expression that uses only metrics the services export, the required
//! panels exist, and (with promtool) every expression parses.
//!
//! Expressions may use Grafana's built-in interval variables (`$__range`,
//! `$__rate_interval`, `$__interval`) and nothing else starting with `$`:
//! [`prometheus_expr`] replaces those with concrete durations before an
//! expression goes to promtool. The `prometheus_e2e` module then evaluates
//! every expression, substituted the same way, against a real Prometheus
//! scraping the real services.
//!
//! The checks are grouped by concern: [`queries`] identity, datasources and
//! metrics, [`legends`] units and legends, [`range_stats`] the stat panels
//! over counters, [`required`] the panels that must exist, [`promtool`] the
//! expressions run through promtool.

mod legends;
mod promtool;
mod queries;
mod range_stats;
mod required;

use std::collections::BTreeSet;

use deploy_tests::{dashboards, metric_names, panel_exprs, panels, prometheus_expr};
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
    "collector_db_retries_total",
    "jetstream_stream_fill_ratio",
    "dead_letters_oldest_unwritten_age_seconds",
    "dead_letters_total",
    "plugin_calls_total",
    "plugin_events_total",
    "plugin_failures_total",
    "plugin_call_duration_seconds_bucket",
    "plugins_loaded",
    "reporter_report_duration_seconds_bucket",
    "reporter_requests_total",
    "reporter_requests_in_flight",
];

/// Where `text` holds `word` as a whole identifier (byte offsets).
fn occurrences(text: &str, word: &str) -> Vec<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.match_indices(word)
        .map(|(i, _)| i)
        .filter(|&i| {
            !text[..i].chars().next_back().is_some_and(ident)
                && !text[i + word.len()..].chars().next().is_some_and(ident)
        })
        .collect()
}

/// Metric names of `expr` as Prometheus evaluates it (Grafana's interval
/// variables substituted: `offset $__range` is not a metric).
fn metrics_of(expr: &str) -> BTreeSet<String> {
    metric_names(&prometheus_expr(expr).unwrap_or_else(|_| expr.to_string()))
}

/// True when `text` holds `word` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    !occurrences(text, word).is_empty()
}
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

/// Stat panels whose queries read a counter (`*_total`), with those counters.
fn counter_stats() -> Vec<(String, Json, BTreeSet<String>)> {
    query_panels()
        .into_iter()
        .filter(|(_, p)| kind(p) == "stat")
        .filter_map(|(file, p)| {
            let counters: BTreeSet<String> = panel_exprs(&p)
                .iter()
                .flat_map(|e| metrics_of(e))
                .filter(|m| m.ends_with("_total"))
                .collect();
            (!counters.is_empty()).then_some((file, p, counters))
        })
        .collect()
}
