//! Units and legends: every panel has a unit, every target a legend that
//! names its series.

use deploy_tests::title;
use serde_json::Value as Json;

use super::{kind, mentions, query_panels};

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
