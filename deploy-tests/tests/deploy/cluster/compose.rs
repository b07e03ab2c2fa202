//! The topology of the cluster compose file: services, NATS nodes,
//! gateways, collectors, published ports and volumes; and the helpers that
//! read it, for the other modules too.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use deploy_tests::{
    get, keys, load_yaml, read, repo_root, scalar, service_env, service_ports, strings,
};
use serde_yaml::Value as Yaml;

use super::{CLUSTER, COLLECTORS, GATEWAYS, NATS_CONF, NATS_NODES};

/// The services of the cluster file besides NATS, gateways and collectors.
const OTHER_SERVICES: [&str; 7] = [
    "haproxy",
    "postgres",
    "postgres-replica",
    "reporter",
    "simulator",
    "prometheus",
    "grafana",
];

fn compose_dir() -> PathBuf {
    repo_root().join("deploy/compose")
}

pub(crate) fn services() -> BTreeMap<String, Yaml> {
    let c = load_yaml(CLUSTER);
    get(&c, "services")
        .and_then(Yaml::as_mapping)
        .expect("the cluster file has services")
        .iter()
        .filter_map(|(k, v)| Some((scalar(k)?, v.clone())))
        .collect()
}

pub(crate) fn service<'a>(all: &'a BTreeMap<String, Yaml>, name: &str) -> &'a Yaml {
    all.get(name)
        .unwrap_or_else(|| panic!("{CLUSTER} has no service {name:?}"))
}

/// A service's environment, env files read relative to the compose file.
pub(crate) fn env_of(all: &BTreeMap<String, Yaml>, name: &str) -> BTreeMap<String, String> {
    service_env(service(all, name), &compose_dir())
}

/// The `volumes` of a service as `(source, container path)`.
fn volumes(svc: &Yaml) -> impl Iterator<Item = (String, String)> {
    strings(get(svc, "volumes")).into_iter().filter_map(|m| {
        let mut parts = m.split(':');
        Some((parts.next()?.to_string(), parts.next()?.to_string()))
    })
}

/// Bind mounts `(host path relative to the repository, container path)`.
pub(crate) fn bind_mounts(svc: &Yaml) -> Vec<(String, String)> {
    volumes(svc)
        .filter_map(|(src, dst)| Some((format!("deploy/{}", src.strip_prefix("../")?), dst)))
        .collect()
}

/// Named volumes `(volume, container path)`.
pub(crate) fn named_volumes(svc: &Yaml) -> Vec<(String, String)> {
    volumes(svc)
        .filter(|(src, _)| !src.starts_with('.') && !src.starts_with('/'))
        .collect()
}

pub(crate) fn depends_on(svc: &Yaml) -> BTreeMap<String, String> {
    get(svc, "depends_on")
        .and_then(Yaml::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((scalar(k)?, get(v, "condition").and_then(scalar)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// `nats://a:4222,nats://b:4222` → hosts with ports.
pub(crate) fn url_list(urls: &str) -> BTreeSet<String> {
    urls.split(',')
        .map(|u| u.trim().trim_start_matches("nats://").to_string())
        .collect()
}

pub(crate) fn nats_client_addrs() -> BTreeSet<String> {
    NATS_NODES.iter().map(|n| format!("{n}:4222")).collect()
}

/// The host of a `postgres://user@host:port/db` URL.
pub(crate) fn pg_host(url: &str) -> String {
    url.split_once('@')
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split([':', '/'])
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn cluster_services_are_the_topology() {
    let all = services();
    let names: BTreeSet<&str> = all.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = NATS_NODES
        .into_iter()
        .chain(GATEWAYS)
        .chain(COLLECTORS)
        .chain(OTHER_SERVICES)
        .collect();
    assert_eq!(names, want, "{CLUSTER} services");
    for (name, svc) in &all {
        assert!(
            get(svc, "healthcheck").is_some(),
            "{name} has no healthcheck"
        );
        assert!(
            get(svc, "restart").and_then(scalar).as_deref() == Some("unless-stopped"),
            "{name}: restart: unless-stopped"
        );
        for (dep, condition) in depends_on(svc) {
            assert!(all.contains_key(&dep), "{name} depends on unknown {dep}");
            assert!(
                ["service_healthy", "service_started"].contains(&condition.as_str()),
                "{name} -> {dep}: {condition}"
            );
        }
    }
    // Only the simulator is opt-in.
    for (name, svc) in &all {
        let profiles = strings(get(svc, "profiles"));
        if name == "simulator" {
            assert_eq!(profiles, ["simulator"]);
        } else {
            assert!(profiles.is_empty(), "{name} has profiles {profiles:?}");
        }
    }
}

#[test]
fn three_nats_nodes_route_to_each_other_with_their_own_stores() {
    let all = services();
    let mut stores = BTreeSet::new();
    for node in NATS_NODES {
        let svc = service(&all, node);
        let image = get(svc, "image").and_then(scalar).unwrap_or_default();
        assert_eq!(image, "nats:2.12-alpine", "{node}: image");
        let cmd = strings(get(svc, "command")).join(" ");
        assert!(cmd.contains("-c /etc/nats/nats.conf"), "{node}: {cmd}");
        assert!(
            bind_mounts(svc)
                .iter()
                .any(|(src, dst)| src == NATS_CONF && dst == "/etc/nats/nats.conf"),
            "{node} does not mount {NATS_CONF}"
        );
        let env = env_of(&all, node);
        assert_eq!(
            env.get("NATS_SERVER_NAME").map(String::as_str),
            Some(node),
            "{node}: NATS_SERVER_NAME"
        );
        let data: Vec<_> = named_volumes(svc)
            .into_iter()
            .filter(|(_, dst)| dst == "/data")
            .collect();
        assert_eq!(data.len(), 1, "{node}: one volume on /data");
        assert!(stores.insert(data[0].0.clone()), "{node} shares a store");
        let exposed: BTreeSet<u16> = service_ports(svc).iter().map(|p| p.container).collect();
        for port in [4222, 6222, 8222] {
            assert!(exposed.contains(&port), "{node} does not expose {port}");
        }
        let health = strings(get(get(svc, "healthcheck").unwrap(), "test")).join(" ");
        assert!(health.contains("8222/healthz"), "{node}: {health}");
    }

    let conf = read(NATS_CONF);
    let line = |key: &str| {
        conf.lines()
            .map(str::trim)
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{NATS_CONF}: no {key}"))
            .to_string()
    };
    assert_eq!(line("server_name:"), "server_name: $NATS_SERVER_NAME");
    assert_eq!(line("store_dir:"), "store_dir: /data");
    // Clients on 4222, routes on 6222 (the port the routes name).
    for listen in ["listen: 0.0.0.0:4222", "listen: 0.0.0.0:6222"] {
        assert!(
            conf.lines().any(|l| l.trim() == listen),
            "{NATS_CONF}: no `{listen}`"
        );
    }
    for node in NATS_NODES {
        assert!(
            conf.contains(&format!("nats-route://{node}:6222")),
            "{NATS_CONF}: no route to {node}"
        );
    }
    assert!(conf.contains("sync_interval: always"), "{conf}");
}

#[test]
fn gateways_use_every_node_and_three_replicas() {
    let all = services();
    for gw in GATEWAYS {
        let svc = service(&all, gw);
        assert_eq!(
            strings(get(svc, "command")),
            ["events-host", "gateway"],
            "{gw}"
        );
        let env = env_of(&all, gw);
        assert_eq!(url_list(&env["NATS_URL"]), nats_client_addrs(), "{gw}");
        assert_eq!(env["JETSTREAM_REPLICAS"], "3", "{gw}");
        assert_eq!(env.get("PORT").map(String::as_str), Some("3000"), "{gw}");
        assert_eq!(pg_host(&env["DATABASE_URL"]), "postgres", "{gw}");
        let pre_stop: u64 = env["SHUTDOWN_PRE_STOP_MS"].parse().unwrap();
        assert!(
            pre_stop >= 2000,
            "{gw}: HAProxy needs 2 failed checks 1 s apart to route around a stopping gateway"
        );
        let deps = depends_on(svc);
        for dep in NATS_NODES.iter().chain(&["postgres"]) {
            assert_eq!(
                deps.get(*dep).map(String::as_str),
                Some("service_healthy"),
                "{gw} -> {dep}"
            );
        }
        assert!(
            named_volumes(svc)
                .iter()
                .any(|(v, dst)| v == "plugins" && dst == "/plugins"),
            "{gw} mounts the plugins volume"
        );
    }
    let names: BTreeSet<String> = GATEWAYS
        .iter()
        .map(|g| env_of(&all, g)["NATS_NAME"].clone())
        .collect();
    assert_eq!(names.len(), 2, "distinct NATS_NAME per gateway");
}

#[test]
fn two_collectors_per_source_on_every_node() {
    let all = services();
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut nats_names = BTreeSet::new();
    for (name, svc) in &all {
        if strings(get(svc, "command")) != ["events-host", "collector"] {
            continue;
        }
        let env = env_of(&all, name);
        assert_eq!(url_list(&env["NATS_URL"]), nats_client_addrs(), "{name}");
        assert_eq!(pg_host(&env["DATABASE_URL"]), "postgres", "{name}");
        assert_eq!(env["JETSTREAM_REPLICAS"], "3", "{name}");
        assert!(
            nats_names.insert(env["NATS_NAME"].clone()),
            "{name}: NATS_NAME"
        );
        let kind = match env["COLLECTOR_TYPE"].as_str() {
            "all" => {
                assert_eq!(env["COLLECTOR_EXCLUDE"], "facebook,tiktok", "{name}");
                "others".to_string()
            }
            t => t.to_string(),
        };
        by_type.entry(kind).or_default().push(name.clone());
    }
    assert_eq!(by_type["facebook"], ["fb-1", "fb-2"]);
    assert_eq!(by_type["tiktok"], ["ttk-1", "ttk-2"]);
    assert_eq!(by_type["others"], ["collector"]);
}

#[test]
fn only_the_webhook_is_public_and_volumes_are_the_clusters_own() {
    let c = load_yaml(CLUSTER);
    let all = services();
    let mut host_ports = BTreeMap::new();
    for (name, svc) in &all {
        for p in service_ports(svc) {
            let Some(host) = p.host else { continue };
            if let Some(other) = host_ports.insert(host, name.clone()) {
                panic!("{name} and {other} both publish {host}");
            }
            if name == "haproxy" && p.container == 3000 {
                assert_eq!(
                    p.host_ip, None,
                    "the webhook is published on every interface"
                );
            } else {
                assert_eq!(
                    p.host_ip.as_deref(),
                    Some("127.0.0.1"),
                    "{name} publishes {host} beyond 127.0.0.1"
                );
            }
        }
    }
    let declared = get(&c, "volumes").expect("volumes");
    let mut used = BTreeSet::new();
    for svc in all.values() {
        used.extend(named_volumes(svc).into_iter().map(|(v, _)| v));
    }
    assert_eq!(
        used,
        keys(Some(declared)).into_iter().collect::<BTreeSet<_>>(),
        "declared volumes"
    );
    for v in &used {
        let name = get(declared, v)
            .and_then(|d| get(d, "name"))
            .and_then(scalar);
        assert!(
            name.as_deref() == Some(&format!("events-cluster-{v}")),
            "volume {v}: name {name:?}"
        );
    }
    // Every host service mounts the shared plugins volume.
    for (name, svc) in &all {
        if strings(get(svc, "command")).first().map(String::as_str) == Some("events-host") {
            assert!(
                named_volumes(svc)
                    .iter()
                    .any(|(v, d)| v == "plugins" && d == "/plugins"),
                "{name}"
            );
        }
    }
}
