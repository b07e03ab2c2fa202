//! With promtool: every expression parses, and the counter stats count
//! what happened in the range on made-up series.

use std::process::Command;

use deploy_tests::{all_exprs, command_exists, panel_exprs, prometheus_expr, run, title};

use super::{counter_stats, metrics_of};

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
