//! Grafana provisioning (dashboard provider, datasource) against its mounts.

use deploy_tests::{get, load_yaml, scalar, strings};
use serde_yaml::Value as Yaml;

use super::{compose, service, services, str_of};

#[test]
fn grafana_provisioning_matches_the_mounts() {
    let c = compose();
    let all = services(&c);
    let mounts = strings(get(service(&all, "grafana"), "volumes"));
    let target_of = |src: &str| -> String {
        mounts
            .iter()
            .find_map(|m| {
                let mut parts = m.split(':');
                let (s, d) = (parts.next()?, parts.next()?);
                (s.trim_start_matches("./") == src).then(|| d.to_string())
            })
            .unwrap_or_else(|| panic!("grafana does not mount {src}: {mounts:?}"))
    };
    assert_eq!(
        target_of("deploy/grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let dash_dir = target_of("deploy/grafana/dashboards");

    let providers = load_yaml("deploy/grafana/provisioning/dashboards/dashboards.yml");
    let paths: Vec<String> = get(&providers, "providers")
        .and_then(Yaml::as_sequence)
        .expect("dashboards.yml providers")
        .iter()
        .filter_map(|p| {
            get(p, "options")
                .and_then(|o| get(o, "path"))
                .and_then(scalar)
        })
        .collect();
    assert_eq!(
        paths,
        vec![dash_dir],
        "dashboard provider path vs compose mount"
    );

    let ds = load_yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let list = get(&ds, "datasources")
        .and_then(Yaml::as_sequence)
        .expect("datasources");
    let prom = list
        .iter()
        .find(|d| str_of(d, "uid") == "prometheus")
        .expect("a datasource with uid prometheus");
    assert_eq!(str_of(prom, "type"), "prometheus");
    assert_eq!(str_of(prom, "url"), "http://prometheus:9090");
}
