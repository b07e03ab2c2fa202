//! The services of docker-compose.yml: exactly the pipeline's, each with a
//! healthcheck and restart policy, waiting for healthy dependencies, on one
//! image with a role command each.

use std::collections::BTreeSet;

use deploy_tests::{get, keys, scalar, strings};
use serde_yaml::Value as Yaml;

use super::{compose, service, services, str_of, APP_PORTS, SERVICES};

#[test]
fn services_are_exactly_the_pipeline() {
    let c = compose();
    let names: BTreeSet<String> = services(&c).into_keys().collect();
    let want: BTreeSet<String> = SERVICES.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, want, "docker-compose.yml services");
}

#[test]
fn every_service_has_a_healthcheck_and_restarts() {
    let c = compose();
    for (name, svc) in services(&c) {
        let hc = get(&svc, "healthcheck").unwrap_or_else(|| panic!("{name}: no healthcheck"));
        assert_ne!(
            get(hc, "disable").and_then(Yaml::as_bool),
            Some(true),
            "{name}: healthcheck disabled"
        );
        let test = strings(get(hc, "test"));
        assert!(
            test.len() >= 2 && (test[0] == "CMD" || test[0] == "CMD-SHELL"),
            "{name}: healthcheck.test must be [CMD, ...] or [CMD-SHELL, ...], got {test:?}"
        );
        assert!(
            get(hc, "interval").is_some(),
            "{name}: healthcheck has no interval"
        );
        assert_eq!(
            str_of(&svc, "restart"),
            "unless-stopped",
            "{name}: restart policy"
        );
    }
}

#[test]
fn app_healthchecks_probe_readiness_on_their_port() {
    let c = compose();
    let all = services(&c);
    for (name, port) in APP_PORTS {
        let test =
            strings(get(service(&all, name), "healthcheck").and_then(|h| get(h, "test"))).join(" ");
        assert!(
            test.contains(&format!("127.0.0.1:{port}/health/ready"))
                || test.contains(&format!("localhost:{port}/health/ready")),
            "{name}: healthcheck should GET /health/ready on port {port}: {test}"
        );
    }
}

#[test]
fn depends_on_waits_for_healthy_services() {
    let c = compose();
    let all = services(&c);
    for (name, svc) in &all {
        let Some(deps) = get(svc, "depends_on") else {
            continue;
        };
        let map = deps.as_mapping().unwrap_or_else(|| {
            panic!("{name}: depends_on must be a mapping with condition: service_healthy")
        });
        for (dep, spec) in map {
            let dep = scalar(dep).unwrap_or_default();
            assert_eq!(
                get(spec, "condition").and_then(scalar).as_deref(),
                Some("service_healthy"),
                "{name} -> {dep}: condition"
            );
            let target = all
                .get(&dep)
                .unwrap_or_else(|| panic!("{name} depends on unknown service {dep}"));
            assert!(
                get(target, "healthcheck").is_some(),
                "{name} waits for {dep}, which has no healthcheck"
            );
        }
    }
    let expect: &[(&str, &[&str])] = &[
        ("gateway", &["nats", "postgres"]),
        ("fb-collector", &["nats", "postgres"]),
        ("ttk-collector", &["nats", "postgres"]),
        ("collector", &["nats", "postgres"]),
        ("reporter", &["postgres"]),
        ("publisher", &["gateway"]),
        ("simulator", &["gateway"]),
        ("grafana", &["prometheus"]),
    ];
    for (name, deps) in expect {
        let have: BTreeSet<String> = keys(get(service(&all, name), "depends_on"))
            .into_iter()
            .collect();
        for d in *deps {
            assert!(
                have.contains(*d),
                "{name} should depend on {d} (has {have:?})"
            );
        }
    }
}

#[test]
fn images_roles_and_profiles() {
    let c = compose();
    let all = services(&c);
    assert_eq!(str_of(service(&all, "postgres"), "image"), "postgres:15");
    let nats = str_of(service(&all, "nats"), "image");
    // 2.12 or newer: the 2.10 line can ack a message lost in a leader change.
    let minor: u32 = nats
        .strip_prefix("nats:2.")
        .and_then(|v| v.split(['.', '-']).next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(minor >= 12, "nats image {nats}: want nats:2.12 or newer");
    let publisher = service(&all, "publisher");
    assert_eq!(str_of(publisher, "image"), "andriiuni/events");
    assert_eq!(str_of(publisher, "platform"), "linux/arm64");
    assert!(
        strings(get(publisher, "profiles")).is_empty(),
        "the external publisher must start with a plain `docker-compose up`"
    );
    let sim = service(&all, "simulator");
    assert_eq!(strings(get(sim, "profiles")), vec!["simulator".to_string()]);
    assert!(
        get(sim, "platform").is_none(),
        "the simulator runs on any architecture"
    );

    let roles = [
        ("gateway", "events-host gateway"),
        ("fb-collector", "events-host collector"),
        ("ttk-collector", "events-host collector"),
        ("collector", "events-host collector"),
        ("reporter", "events-reporter"),
        ("simulator", "events-publisher"),
    ];
    let image = str_of(service(&all, "gateway"), "image");
    assert!(!image.is_empty(), "gateway has no image name");
    for (name, cmd) in roles {
        let svc = service(&all, name);
        assert_eq!(
            strings(get(svc, "command")).join(" "),
            cmd,
            "{name}: command"
        );
        assert_eq!(
            str_of(svc, "image"),
            image,
            "{name}: one image for every role"
        );
        let build = get(svc, "build").unwrap_or_else(|| panic!("{name}: no build section"));
        assert_eq!(
            str_of(build, "dockerfile"),
            "Dockerfile",
            "{name}: dockerfile"
        );
    }
}
