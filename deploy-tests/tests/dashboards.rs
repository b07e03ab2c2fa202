//! Structure of the provisioned Grafana dashboards: they parse, every panel
//! queries the provisioned Prometheus datasource with a non-empty PromQL
//! expression that uses only metrics the services export, the required
//! panels exist, and (with promtool) every expression parses.
//!
//! Expressions may use Grafana's built-in interval variables (`$__range`,
//! `$__rate_interval`, `$__interval`) and nothing else starting with `$`:
//! [`prometheus_expr`] replaces those with concrete durations before an
//! expression goes to promtool. `tests/prometheus_e2e.rs` then evaluates
//! every expression, substituted the same way, against a real Prometheus
//! scraping the real services.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use deploy_tests::{
    all_exprs, command_exists, dashboards, metric_names, panel_exprs, panels, prometheus_expr, run,
    title,
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

#[test]
fn prometheus_expr_substitutes_only_the_builtin_intervals() {
    assert_eq!(
        prometheus_expr("sum(increase(x_total[$__range])) or vector(0)").as_deref(),
        Ok("sum(increase(x_total[5m])) or vector(0)")
    );
    assert_eq!(
        prometheus_expr("rate(x_total[$__rate_interval]) + rate(y_total[$__interval])").as_deref(),
        Ok("rate(x_total[1m]) + rate(y_total[1m])")
    );
    assert_eq!(prometheus_expr("up").as_deref(), Ok("up"));
    for bad in [
        "up{job=\"$job\"}",
        "rate(x_total[${__range}])",
        "rate(x_total[$__range_s])",
        "rate(x_total[$__interval_ms])",
        "rate(x_total[$])",
    ] {
        assert!(prometheus_expr(bad).is_err(), "accepted {bad}");
    }
}

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

/// The label names a legend format refers to (`{{collector}}` gives
/// `collector`).
fn legend_labels(legend: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = legend;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push(rest[start + 2..start + 2 + len].trim().to_string());
        rest = &rest[start + 2 + len + 2..];
    }
    out
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
            // Only Grafana's built-in interval variables: the tests (and
            // anyone pasting a query into Prometheus) replace those with a
            // duration; any other variable would not evaluate.
            if let Err(why) = prometheus_expr(expr) {
                panic!("{file}: panel {:?}: {why}: {expr}", title(&p));
            }
        }
    }
}

#[test]
fn exprs_use_only_exported_metrics() {
    let known: BTreeSet<&str> = METRICS.iter().copied().collect();
    let mut unknown = BTreeMap::new();
    for (file, panel, expr) in all_exprs() {
        for m in metrics_of(&expr) {
            if !known.contains(m.as_str()) {
                unknown.insert(m, format!("{file}: {panel}: {expr}"));
            }
        }
    }
    assert!(unknown.is_empty(), "unknown metrics: {unknown:#?}");
}

#[test]
fn every_panel_has_a_unit() {
    for (file, p) in query_panels() {
        if kind(&p) == "text" {
            continue;
        }
        let unit = p
            .pointer("/fieldConfig/defaults/unit")
            .and_then(Json::as_str)
            .unwrap_or_default();
        assert!(
            !unit.trim().is_empty(),
            "{file}: panel {:?} has no fieldConfig.defaults.unit",
            title(&p)
        );
    }
}

/// Every target names its series: an explicit legend (not Grafana's
/// `__auto`, which shows the raw query for a label-less series), whose
/// `{{label}}`s the expression keeps, and which is not blank for a
/// label-less `vector(...)` fallback.
#[test]
fn every_target_has_a_legend() {
    for (file, p) in query_panels() {
        if kind(&p) == "text" {
            continue;
        }
        for t in p
            .get("targets")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let expr = t.get("expr").and_then(Json::as_str).unwrap_or_default();
            let legend = t
                .get("legendFormat")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let what = format!("{file}: panel {:?}: legend {legend:?} of {expr}", title(&p));
            assert!(
                !legend.trim().is_empty() && legend.trim() != "__auto",
                "{what}: every target needs an explicit legendFormat"
            );
            let labels = legend_labels(legend);
            for label in &labels {
                assert!(
                    !label.is_empty() && mentions(expr, label),
                    "{what}: the expression does not keep label {label:?}"
                );
            }
            let mut literal = legend.to_string();
            for label in &labels {
                literal = literal.replace(&format!("{{{{{label}}}}}"), "");
            }
            assert!(
                !expr.contains("vector(") || literal.chars().any(char::is_alphanumeric),
                "{what}: the label-less vector(...) fallback would have a blank legend; add text"
            );
        }
    }
}

fn threshold_steps(p: &Json) -> Vec<(String, Option<f64>)> {
    p.pointer("/fieldConfig/defaults/thresholds/steps")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s.get("color")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                s.get("value").and_then(Json::as_f64),
            )
        })
        .collect()
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

/// How a stat query reads a counter over the selected range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RangeRead {
    /// `increase(m[$__range])`
    Increase,
    /// `min_over_time(m[$__range])`: the first value of a series ...
    FirstValue,
    /// `m offset $__range`: ... that did not exist when the range began.
    AtStart,
}

/// Every read of counter `m` in `expr`; `Err` for any other use (a lifetime
/// total, a fixed window).
fn range_reads(expr: &str, m: &str) -> Result<BTreeSet<RangeRead>, String> {
    let mut reads = BTreeSet::new();
    for i in occurrences(expr, m) {
        let mut after = &expr[i + m.len()..];
        if after.starts_with('{') {
            after = after.split_once('}').map_or("", |(_, rest)| rest);
        }
        let before = &expr[..i];
        let read = if before.ends_with("increase(") && after.starts_with("[$__range])") {
            RangeRead::Increase
        } else if before.ends_with("min_over_time(") && after.starts_with("[$__range])") {
            RangeRead::FirstValue
        } else if before.ends_with("unless ") && after.trim_start().starts_with("offset $__range") {
            RangeRead::AtStart
        } else {
            let context: String = expr[i..].chars().take(m.len() + 20).collect();
            return Err(format!("`{context}`"));
        };
        reads.insert(read);
    }
    Ok(reads)
}

/// Stat panels over counters show what happened in the selected time range
/// (`increase(...[$__range])`, so a restart does not reset them and the time
/// picker applies, plus the first value of series first seen in the range,
/// which `increase` cannot see), evaluated once at its end; failure stats
/// are red only when something failed in the range.
#[test]
fn stat_panels_over_counters_count_the_selected_range() {
    let stats = counter_stats();
    assert!(
        stats.len() >= 3,
        "only {} stat panels over counters",
        stats.len()
    );
    for (file, p, counters) in stats {
        let name = format!("{file}: stat {:?}", title(&p));
        assert!(
            title(&p).to_lowercase().contains("in range"),
            "{name}: the title must say the value is for the selected range (\"in range\")"
        );
        for t in p
            .get("targets")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let expr = t.get("expr").and_then(Json::as_str).unwrap_or_default();
            for m in metrics_of(expr).iter().filter(|m| m.ends_with("_total")) {
                let reads = range_reads(expr, m).unwrap_or_else(|bad| {
                    panic!(
                        "{name}: {bad}: counter {m} may only be read over the selected range: \
                         increase({m}[$__range]), min_over_time({m}[$__range]) unless {m} offset $__range: {expr}"
                    )
                });
                assert_eq!(
                    reads,
                    [RangeRead::Increase, RangeRead::FirstValue, RangeRead::AtStart].into(),
                    "{name}: counter {m}: (sum(increase({m}[$__range])) or vector(0)) + \
                     (sum(min_over_time({m}[$__range]) unless {m} offset $__range) or vector(0)): {expr}"
                );
            }
            assert!(
                t.get("instant").and_then(Json::as_bool) == Some(true)
                    && t.get("range").and_then(Json::as_bool) != Some(true),
                "{name}: the increase over the whole range is one instant query: {expr}"
            );
        }
        let steps = threshold_steps(&p);
        assert!(
            steps
                .first()
                .is_some_and(|(c, v)| c == "green" && v.is_none()),
            "{name}: thresholds must start green: {steps:?}"
        );
        let failures = counters.iter().any(|m| {
            ["failed", "failure", "dead_letter"]
                .iter()
                .any(|f| m.contains(f))
        });
        let red: Vec<Option<f64>> = steps
            .iter()
            .filter(|(c, _)| c == "red")
            .map(|(_, v)| *v)
            .collect();
        if failures {
            // increase() of an integer counter is 0, or at least 1 once it moved.
            assert!(
                red.len() == 1 && red[0].is_some_and(|v| v > 0.0 && v <= 1.0),
                "{name}: must turn red exactly when something failed in the range: {steps:?}"
            );
        } else {
            assert!(
                red.is_empty(),
                "{name}: not a failure count, never red: {steps:?}"
            );
        }
    }
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

/// promtool has no offline query checker, but it parses recording rules: one
/// rule per expression (Grafana's interval variables substituted) makes it
/// check every expression's syntax.
#[test]
fn promtool_parses_every_expr() {
    if !command_exists("promtool") {
        println!("SKIPPED: promtool not installed; PromQL syntax not checked");
        return;
    }
    let exprs = all_exprs();
    let mut rules = String::from("groups:\n  - name: dashboard_exprs\n    rules:\n");
    for (i, (file, panel, expr)) in exprs.iter().enumerate() {
        let expr = prometheus_expr(expr).unwrap_or_else(|why| panic!("{file}: {panel}: {why}"));
        let quoted = serde_json::to_string(&expr).expect("string"); // JSON strings are YAML
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

/// The counter stats' queries on made-up series (`promtool test rules`,
/// `$__range` = 5m, one scrape per 15s): an old series growing by 1 per
/// scrape until 15m, and a series first seen at 10m with 1 that never moves
/// again (a first failure of its kind). At 12m the range holds 20 + 1; at
/// 25m nothing happened in the range: 0, so failure stats are green again.
#[test]
fn counter_stats_count_what_happened_in_the_range() {
    if !command_exists("promtool") {
        println!("SKIPPED: promtool not installed; stat queries not evaluated");
        return;
    }
    let mut rules = String::from("groups:\n  - name: stats\n    rules:\n");
    let mut tests = String::from("rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n");
    let mut n = 0;
    for (file, p, counters) in counter_stats() {
        for expr in panel_exprs(&p) {
            let name = format!("{file}: stat {:?}: {expr}", title(&p));
            let ms: Vec<&String> = counters
                .iter()
                .filter(|m| metrics_of(&expr).contains(*m))
                .collect();
            assert_eq!(ms.len(), 1, "{name}: one counter per stat query");
            let m = ms[0];
            let expr = prometheus_expr(&expr).unwrap_or_else(|why| panic!("{name}: {why}"));
            let quoted = serde_json::to_string(&expr).expect("string");
            rules.push_str(&format!(
                "      - record: stat_{n}\n        expr: {quoted}\n"
            ));
            tests.push_str(&format!(
                "  - interval: 15s\n    input_series:\n\
                 \x20     - series: '{m}{{test=\"old\"}}'\n        values: '0+1x60 60x40'\n\
                 \x20     - series: '{m}{{test=\"new\"}}'\n        values: '_x40 1x60'\n\
                 \x20   promql_expr_test:\n\
                 \x20     - expr: stat_{n}\n        eval_time: 12m\n        exp_samples: [{{labels: 'stat_{n}', value: 21}}]\n\
                 \x20     - expr: stat_{n}\n        eval_time: 25m\n        exp_samples: [{{labels: 'stat_{n}', value: 0}}]\n"
            ));
            n += 1;
        }
    }
    let dir = std::env::temp_dir().join(format!("deploy-tests-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("rules.yml"), &rules).expect("write rules");
    std::fs::write(dir.join("tests.yml"), &tests).expect("write tests");
    let (ok, out, err) = run(Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(dir.join("tests.yml")));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ok,
        "counter stats miscount their range ({n} queries):\n{out}\n{err}\n{rules}"
    );
}
