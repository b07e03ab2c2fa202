//! The panels the dashboards must have, and failure queries that return a
//! series when nothing failed.

use deploy_tests::{all_exprs, panel_exprs, title};
use serde_json::Value as Json;

use super::{kind, query_panels, stacking};

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
        ("JetStream stream fill", &["jetstream_stream_fill_ratio"]),
        (
            "DB retries per collector",
            &["collector_db_retries_total", "by (collector)"],
        ),
        ("plugins loaded", &["plugins_loaded"]),
        (
            "dead-letter lag",
            &["dead_letters_oldest_unwritten_age_seconds"],
        ),
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

    for (needle, unit) in [
        ("jetstream_stream_fill_ratio", "percentunit"),
        ("collector_db_retries_total", "short"),
        ("plugins_loaded", "short"),
        ("dead_letters_oldest_unwritten_age_seconds", "s"),
    ] {
        for p in find(&all, "timeseries", &[needle]) {
            assert_eq!(
                p.pointer("/fieldConfig/defaults/unit")
                    .and_then(Json::as_str),
                Some(unit),
                "panel {:?} over {needle}: unit",
                title(p)
            );
        }
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
        "collector_db_retries_total",
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
