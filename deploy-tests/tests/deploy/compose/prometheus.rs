//! The Prometheus scrape configuration against the compose services, and the
//! alert rules (with promtool where installed).

use std::{collections::BTreeMap, process::Command};

use deploy_tests::{command_exists, get, load_yaml, read, repo_root, run, scalar, strings};
use serde_yaml::Value as Yaml;

use super::{compose, env_of, service, services, str_of};

fn scrape_jobs(p: &Yaml) -> BTreeMap<String, Yaml> {
    get(p, "scrape_configs")
        .and_then(Yaml::as_sequence)
        .expect("prometheus.yml has scrape_configs")
        .iter()
        .map(|j| (str_of(j, "job_name"), j.clone()))
        .collect()
}

/// (target, labels) of every static_config of a job.
fn job_targets(job: &Yaml) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for sc in get(job, "static_configs")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        let labels: BTreeMap<String, String> = get(sc, "labels")
            .and_then(Yaml::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        for t in strings(get(sc, "targets")) {
            out.push((t, labels.clone()));
        }
    }
    out
}

#[test]
fn prometheus_scrapes_every_service() {
    let p = load_yaml("deploy/prometheus/prometheus.yml");
    let global = get(&p, "global").expect("global section");
    assert_eq!(str_of(global, "scrape_interval"), "5s");
    let jobs = scrape_jobs(&p);
    let c = compose();
    let all = services(&c);

    // job -> (compose service, collector label)
    type Targets<'a> = &'a [(&'a str, Option<&'a str>)];
    let expect: &[(&str, Targets)] = &[
        ("gateway", &[("gateway", None)]),
        (
            "collectors",
            &[
                ("fb-collector", Some("facebook")),
                ("ttk-collector", Some("tiktok")),
                ("collector", Some("others")),
            ],
        ),
        ("reporter", &[("reporter", None)]),
    ];
    for (job_name, targets) in expect {
        let job = jobs
            .get(*job_name)
            .unwrap_or_else(|| panic!("prometheus.yml: no job {job_name}"));
        let path = str_of(job, "metrics_path");
        assert!(
            path.is_empty() || path == "/metrics",
            "{job_name}: metrics_path {path}"
        );
        let have = job_targets(job);
        assert_eq!(have.len(), targets.len(), "{job_name}: targets {have:?}");
        for (svc, collector) in *targets {
            let env = env_of(&all, svc);
            let port = env
                .get("METRICS_PORT")
                .or(env.get("PORT"))
                .cloned()
                .unwrap();
            let target = format!("{svc}:{port}");
            let (_, labels) = have
                .iter()
                .find(|(t, _)| *t == target)
                .unwrap_or_else(|| panic!("{job_name}: no target {target} in {have:?}"));
            if let Some(c) = collector {
                assert_eq!(labels.get("collector").map(String::as_str), Some(*c));
                let served = if *c == "others" { "all" } else { c };
                assert_eq!(env["COLLECTOR_TYPE"], served);
            }
        }
    }
    // A target label named like a metric label would rename the metric's own
    // label to exported_*, unless the job honours the scraped labels.
    let collectors = &jobs["collectors"];
    assert_eq!(
        get(collectors, "honor_labels").and_then(Yaml::as_bool),
        Some(true),
        "collectors job sets a `collector` target label: honor_labels must be true"
    );
    // Every scraped host is a compose service (or Prometheus itself).
    for (name, job) in &jobs {
        for (t, _) in job_targets(job) {
            let host = t.split(':').next().unwrap_or_default();
            assert!(
                all.contains_key(host) || host == "localhost",
                "job {name}: target {t} is not a compose service"
            );
        }
    }
}

#[test]
fn promtool_accepts_the_scrape_config() {
    if !command_exists("promtool") {
        println!("SKIPPED: promtool not installed; prometheus.yml not validated");
        return;
    }
    let path = repo_root().join("deploy/prometheus/prometheus.yml");
    let (ok, out, err) = run(Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&path));
    assert!(ok, "promtool check config failed:\n{out}\n{err}");
}

/// The alert rules are valid, pass their unit tests, and are where both
/// prometheus.yml and the compose mount say they are.
#[test]
fn alert_rules_are_valid_tested_and_mounted() {
    let cfg = load_yaml("deploy/prometheus/prometheus.yml");
    let files: Vec<String> = get(&cfg, "rule_files")
        .and_then(Yaml::as_sequence)
        .expect("prometheus.yml rule_files")
        .iter()
        .filter_map(scalar)
        .collect();
    assert_eq!(files, ["alerts.yml"]);
    let c = compose();
    let all = services(&c);
    let mounts = strings(get(service(&all, "prometheus"), "volumes"));
    assert!(
        mounts
            .iter()
            .any(|m| m == "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"),
        "prometheus does not mount the rules next to its config: {mounts:?}"
    );
    if !command_exists("promtool") {
        println!("SKIPPED: promtool not installed; alert rules not validated");
        return;
    }
    let dir = repo_root().join("deploy/prometheus");
    let (ok, out, err) =
        run(Command::new("promtool")
            .current_dir(&dir)
            .args(["check", "rules", "alerts.yml"]));
    assert!(ok, "promtool check rules failed:\n{out}\n{err}");
    let (ok, out, err) =
        run(Command::new("promtool")
            .current_dir(&dir)
            .args(["test", "rules", "alerts_test.yml"]));
    assert!(ok, "promtool test rules failed:\n{out}\n{err}");
    // Every rule has a unit test.
    let rules = read("deploy/prometheus/alerts.yml");
    let tests = read("deploy/prometheus/alerts_test.yml");
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}")),
                "alert {name} has no unit test"
            );
        }
    }
}
