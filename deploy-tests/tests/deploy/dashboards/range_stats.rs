//! Stat panels over counters count the selected time range, and are red
//! only when something failed in it.

use std::collections::BTreeSet;

use deploy_tests::title;
use serde_json::Value as Json;

use super::{counter_stats, metrics_of, occurrences};

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
