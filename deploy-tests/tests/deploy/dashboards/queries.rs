//! Dashboard identity, panel layout and types, the datasource of every
//! query, and the metrics the queries use.

use std::collections::{BTreeMap, BTreeSet};

use deploy_tests::{all_exprs, dashboards, panel_exprs, panels, prometheus_expr, title};
use serde_json::Value as Json;

use super::{ds, kind, metrics_of, query_panels, METRICS, PANEL_TYPES};

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
