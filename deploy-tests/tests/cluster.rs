//! The cluster setup: `deploy/compose/docker-compose.cluster.yml` (3 NATS
//! nodes, 2 gateways behind HAProxy, 2 collectors per source, a PostgreSQL
//! primary and its streaming replica, the reporter on the replica), the
//! files it mounts (`deploy/haproxy/haproxy.cfg`, `deploy/nats/cluster/`,
//! `deploy/postgres/`, `deploy/prometheus/prometheus.cluster.yml`), and
//! `scripts/cluster-local.sh`, which starts the same topology natively.
//!
//! The structural checks always run; `docker-compose`, `haproxy`,
//! `nats-server` and `promtool`, where installed, validate the files too.
//! The end-to-end test runs the script with the debug binaries
//! (EVENTS_BIN_DIR, default /var/cache/events-target/debug) on free ports,
//! posts a batch through HAProxy and reads it back from the reporter on the
//! replica. Without the binaries, the plugins, haproxy, nats-server or
//! PostgreSQL 15 it prints `SKIPPED:` and passes, unless DEPLOY_E2E_REQUIRED=1
//! (CI) makes that a failure.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use deploy_tests::{
    command_exists, get, keys, load_yaml, parse_yaml, read, repo_root, run, scalar, service_env,
    service_ports, strings,
};
use serde_yaml::Value as Yaml;

const CLUSTER: &str = "deploy/compose/docker-compose.cluster.yml";
const HAPROXY_CFG: &str = "deploy/haproxy/haproxy.cfg";
const NATS_CONF: &str = "deploy/nats/cluster/nats.conf";
const PRIMARY_INIT: &str = "deploy/postgres/primary-init.sh";
const REPLICA_ENTRYPOINT: &str = "deploy/postgres/replica-entrypoint.sh";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.cluster.yml";
const SCRIPT: &str = "scripts/cluster-local.sh";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

const NATS_NODES: [&str; 3] = ["nats-1", "nats-2", "nats-3"];
const GATEWAYS: [&str; 2] = ["gateway-1", "gateway-2"];

/// Every service of the cluster file.
const SERVICES: &[&str] = &[
    "nats-1",
    "nats-2",
    "nats-3",
    "haproxy",
    "gateway-1",
    "gateway-2",
    "fb-1",
    "fb-2",
    "ttk-1",
    "ttk-2",
    "collector",
    "postgres",
    "postgres-replica",
    "reporter",
    "simulator",
    "prometheus",
    "grafana",
];

// --- the compose file ---------------------------------------------------------

fn compose_dir() -> PathBuf {
    repo_root().join("deploy/compose")
}

fn services() -> BTreeMap<String, Yaml> {
    let c = load_yaml(CLUSTER);
    get(&c, "services")
        .and_then(Yaml::as_mapping)
        .expect("the cluster file has services")
        .iter()
        .filter_map(|(k, v)| Some((scalar(k)?, v.clone())))
        .collect()
}

fn service<'a>(all: &'a BTreeMap<String, Yaml>, name: &str) -> &'a Yaml {
    all.get(name)
        .unwrap_or_else(|| panic!("{CLUSTER} has no service {name:?}"))
}

/// A service's environment, env files read relative to the compose file.
fn env_of(all: &BTreeMap<String, Yaml>, name: &str) -> BTreeMap<String, String> {
    service_env(service(all, name), &compose_dir())
}

/// Bind mounts `(host path relative to the repository, container path)`.
fn bind_mounts(svc: &Yaml) -> Vec<(String, String)> {
    strings(get(svc, "volumes"))
        .into_iter()
        .filter_map(|m| {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            let rel = src.strip_prefix("../")?;
            Some((format!("deploy/{rel}"), dst.to_string()))
        })
        .collect()
}

/// Named volumes `(volume, container path)`.
fn named_volumes(svc: &Yaml) -> Vec<(String, String)> {
    strings(get(svc, "volumes"))
        .into_iter()
        .filter_map(|m| {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (!src.starts_with('.') && !src.starts_with('/'))
                .then(|| (src.to_string(), dst.to_string()))
        })
        .collect()
}

fn depends_on(svc: &Yaml) -> BTreeMap<String, String> {
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
fn url_list(urls: &str) -> BTreeSet<String> {
    urls.split(',')
        .map(|u| u.trim().trim_start_matches("nats://").to_string())
        .collect()
}

fn nats_client_addrs() -> BTreeSet<String> {
    NATS_NODES.iter().map(|n| format!("{n}:4222")).collect()
}

/// The host of a `postgres://user@host:port/db` URL.
fn pg_host(url: &str) -> String {
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
    let want: BTreeSet<&str> = SERVICES.iter().copied().collect();
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

/// Debian's nats-server (2.9) accepts the cluster config, except
/// `sync_interval`, which arrived in 2.10.
#[test]
fn nats_server_accepts_the_cluster_config() {
    if !command_exists("nats-server") {
        println!("SKIPPED: nats-server not installed; {NATS_CONF} not validated");
        return;
    }
    let dir = temp_dir("nats-conf");
    let conf = read(NATS_CONF)
        .lines()
        .filter(|l| !l.contains("sync_interval"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("nats.conf");
    std::fs::write(&path, conf).expect("write config");
    let (ok, out, err) = run(Command::new("nats-server")
        .arg("-c")
        .arg(&path)
        .arg("-t")
        .env("NATS_SERVER_NAME", "nats-1"));
    assert!(ok, "nats-server -t: {out}{err}");
    // Without its name the node does not start.
    let (ok, _, _) = run(Command::new("nats-server")
        .arg("-c")
        .arg(&path)
        .arg("-t")
        .env_remove("NATS_SERVER_NAME"));
    assert!(!ok, "NATS_SERVER_NAME must be required");
    let _ = std::fs::remove_dir_all(dir);
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

/// `server NAME "${VAR-host:port}" ...` lines of a backend: (name, default).
fn haproxy_servers(cfg: &str, backend: &str) -> Vec<(String, String)> {
    let mut in_backend = false;
    let mut out = Vec::new();
    for line in cfg.lines() {
        let l = line.trim();
        if !line.starts_with(' ') && !l.is_empty() && !l.starts_with('#') {
            in_backend = l == format!("backend {backend}");
            continue;
        }
        if !in_backend {
            continue;
        }
        if let Some(rest) = l.strip_prefix("server ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let addr = words.next().unwrap_or_default().trim_matches('"');
            let default = addr
                .strip_prefix("${")
                .and_then(|a| a.strip_suffix('}'))
                .and_then(|a| a.split_once('-'))
                .map_or(addr, |(_, d)| d);
            out.push((name, default.to_string()));
        }
    }
    out
}

/// The lines of one section (`backend gateways`), trimmed, comments dropped.
fn haproxy_section(cfg: &str, header: &str) -> Vec<String> {
    cfg.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.trim().is_empty() || l.trim().starts_with('#'))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn haproxy_balances_both_gateways_with_health_checks() {
    let all = services();
    let svc = service(&all, "haproxy");
    assert!(
        get(svc, "image")
            .and_then(scalar)
            .is_some_and(|i| i.starts_with("haproxy:")),
        "haproxy image"
    );
    assert!(
        bind_mounts(svc)
            .iter()
            .any(|(src, dst)| src == HAPROXY_CFG && dst == "/usr/local/etc/haproxy/haproxy.cfg"),
        "haproxy does not mount {HAPROXY_CFG}"
    );
    assert_eq!(
        get(svc, "stop_signal").and_then(scalar).as_deref(),
        Some("SIGUSR1")
    );
    let public: Vec<_> = service_ports(svc)
        .into_iter()
        .filter(|p| p.host.is_some() && p.host_ip.is_none())
        .collect();
    assert_eq!(public.len(), 1, "haproxy publishes the webhook: {public:?}");
    assert_eq!((public[0].host, public[0].container), (Some(3000), 3000));

    let cfg = read(HAPROXY_CFG);
    let frontend = haproxy_section(&cfg, "frontend webhook");
    assert!(
        frontend
            .iter()
            .any(|l| l == "bind \"${HAPROXY_WEBHOOK_BIND-:3000}\""),
        "{frontend:?}"
    );
    assert!(frontend.iter().any(|l| l == "default_backend gateways"));
    let backend = haproxy_section(&cfg, "backend gateways");
    for want in [
        "option httpchk GET /health/ready",
        "http-check expect status 200",
        "option redispatch",
    ] {
        assert!(
            backend.iter().any(|l| l == want),
            "backend lacks {want}: {backend:?}"
        );
    }
    let default_server = backend
        .iter()
        .find(|l| l.starts_with("default-server "))
        .expect("default-server line");
    assert!(
        default_server.split_whitespace().any(|w| w == "check"),
        "servers are health-checked: {default_server}"
    );
    let servers = haproxy_servers(&cfg, "gateways");
    let want: Vec<(String, String)> = GATEWAYS
        .iter()
        .map(|g| (g.to_string(), format!("{g}:3000")))
        .collect();
    assert_eq!(servers, want, "backend gateways");
    for gw in GATEWAYS {
        assert_eq!(env_of(&all, gw)["PORT"], "3000");
    }
}

#[test]
fn haproxy_accepts_its_config() {
    if !command_exists("haproxy") {
        println!("SKIPPED: haproxy not installed; {HAPROXY_CFG} not validated");
        return;
    }
    let path = repo_root().join(HAPROXY_CFG);
    // With the compose defaults (names that do not resolve here: warnings).
    let (ok, out, err) = run(Command::new("haproxy").arg("-c").arg("-f").arg(&path));
    assert!(ok, "haproxy -c: {out}{err}");
    // And as cluster-local.sh runs it.
    let (ok, out, err) = run(Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(&path)
        .env("HAPROXY_WEBHOOK_BIND", "127.0.0.1:7000")
        .env("HAPROXY_STATS_BIND", "127.0.0.1:7001")
        .env("GATEWAY_1_ADDR", "127.0.0.1:7010")
        .env("GATEWAY_2_ADDR", "127.0.0.1:7011"));
    assert!(ok, "haproxy -c with local addresses: {out}{err}");
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
fn replica_is_made_from_the_primary_and_serves_the_reporter() {
    let all = services();
    let primary = service(&all, "postgres");
    let replica = service(&all, "postgres-replica");
    let image = |s: &Yaml| get(s, "image").and_then(scalar).unwrap_or_default();
    assert_eq!(image(primary), "postgres:15");
    assert_eq!(image(replica), "postgres:15");

    // The primary creates the replication role and slot on first start.
    assert!(
        bind_mounts(primary)
            .iter()
            .any(|(src, dst)| src == PRIMARY_INIT
                && dst.starts_with("/docker-entrypoint-initdb.d/")
                && dst.ends_with(".sh")),
        "postgres does not mount {PRIMARY_INIT} into /docker-entrypoint-initdb.d"
    );
    // The image sources a non-executable *.sh into its own shell.
    assert!(
        executable(&repo_root().join(PRIMARY_INIT)),
        "{PRIMARY_INIT} is executable"
    );
    let init = read(PRIMARY_INIT);
    for want in [
        "REPLICATION LOGIN",
        "pg_create_physical_replication_slot('replica_1')",
        "host replication replicator all scram-sha-256",
    ] {
        assert!(init.contains(want), "{PRIMARY_INIT} lacks {want}");
    }

    // The replica: pg_basebackup -R from `postgres` in its entrypoint.
    let entrypoint = strings(get(replica, "entrypoint")).join(" ");
    let (src, dst) = bind_mounts(replica)
        .into_iter()
        .find(|(src, _)| src == REPLICA_ENTRYPOINT)
        .unwrap_or_else(|| panic!("postgres-replica does not mount {REPLICA_ENTRYPOINT}"));
    assert!(
        entrypoint.contains(&dst),
        "entrypoint {entrypoint} does not run {src}"
    );
    let script = read(REPLICA_ENTRYPOINT);
    assert!(
        script.contains("pg_basebackup -h \"$PRIMARY_HOST\"")
            && script.contains("-R -X stream -S \"$SLOT\""),
        "{REPLICA_ENTRYPOINT} does not pg_basebackup -R from the primary"
    );
    assert!(script.contains("exec docker-entrypoint.sh postgres"));
    let renv = env_of(&all, "postgres-replica");
    let penv = env_of(&all, "postgres");
    assert_eq!(renv["PRIMARY_HOST"], "postgres");
    assert_eq!(renv["REPLICATION_SLOT"], "replica_1");
    assert_eq!(
        renv["POSTGRES_REPLICATION_PASSWORD"], penv["POSTGRES_REPLICATION_PASSWORD"],
        "primary and replica share the replication password"
    );
    assert_eq!(
        depends_on(replica).get("postgres").map(String::as_str),
        Some("service_healthy")
    );
    let data = |s: &Yaml| {
        named_volumes(s)
            .into_iter()
            .find(|(_, dst)| dst == "/var/lib/postgresql/data")
            .map(|(v, _)| v)
    };
    assert!(data(primary).is_some() && data(replica).is_some());
    assert_ne!(
        data(primary),
        data(replica),
        "the replica has its own volume"
    );
    let health = strings(get(get(replica, "healthcheck").unwrap(), "test")).join(" ");
    assert!(health.contains("pg_is_in_recovery()"), "{health}");

    // The reporter reads the replica; DATABASE_URL stays on the primary.
    let env = env_of(&all, "reporter");
    assert_eq!(pg_host(&env["REPORTER_DATABASE_URL"]), "postgres-replica");
    assert_eq!(pg_host(&env["DATABASE_URL"]), "postgres");
    assert!(env.contains_key("DATABASE_PASSWORD"));
    assert_eq!(
        depends_on(service(&all, "reporter"))
            .get("postgres-replica")
            .map(String::as_str),
        Some("service_healthy")
    );
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

#[test]
fn prometheus_scrapes_every_instance() {
    let all = services();
    let prom = service(&all, "prometheus");
    assert!(
        bind_mounts(prom)
            .iter()
            .any(|(src, dst)| src == PROMETHEUS && dst == "/etc/prometheus/prometheus.yml"),
        "prometheus does not mount {PROMETHEUS}"
    );
    let cfg = load_yaml(PROMETHEUS);
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in get(&cfg, "scrape_configs")
        .and_then(Yaml::as_sequence)
        .expect("scrape_configs")
    {
        let name = get(job, "job_name").and_then(scalar).unwrap_or_default();
        for sc in get(job, "static_configs")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            for t in strings(get(sc, "targets")) {
                targets.entry(name.clone()).or_default().push(t);
            }
        }
    }
    let want = |job: &str, svcs: &[&str]| {
        let have: BTreeSet<String> = targets
            .get(job)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let expected: BTreeSet<String> = svcs
            .iter()
            .map(|s| {
                let port = if *s == "haproxy" {
                    "8404".to_string()
                } else {
                    env_of(&all, s)["PORT"].clone()
                };
                format!("{s}:{port}")
            })
            .collect();
        assert_eq!(have, expected, "job {job}");
    };
    want("gateway", &GATEWAYS);
    want(
        "collectors",
        &["fb-1", "fb-2", "ttk-1", "ttk-2", "collector"],
    );
    want("reporter", &["reporter"]);
    want("haproxy", &["haproxy"]);
    if !command_exists("promtool") {
        println!("SKIPPED: promtool not installed; {PROMETHEUS} not validated");
        return;
    }
    let (ok, out, err) = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(repo_root().join(PROMETHEUS)));
    assert!(ok, "promtool check config: {out}{err}");
}

/// `docker-compose config` accepts the file with the command lines that
/// deploy/README.md documents, and the merged result keeps the topology.
#[test]
fn docker_compose_accepts_the_documented_commands() {
    if !command_exists("docker-compose") {
        println!("SKIPPED: docker-compose not installed; {CLUSTER} not validated");
        return;
    }
    let readme = read("deploy/README.md");
    let commands: Vec<String> = readme
        .lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_string())
        .filter(|l| l.starts_with("docker-compose") && l.contains("docker-compose.cluster.yml"))
        .collect();
    assert!(
        commands.iter().any(|c| c.contains(" up -d")),
        "deploy/README.md documents no `docker-compose ... -f {CLUSTER} up -d`: {commands:?}"
    );
    for cmd in &commands {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let mut args = Vec::new();
        for w in words.windows(2) {
            if ["-f", "-p", "--profile"].contains(&w[0]) {
                args.extend([w[0], w[1]]);
            }
        }
        assert!(
            args.contains(&CLUSTER),
            "{cmd}: not the repository-relative path"
        );
        let (ok, out, err) = run(Command::new("docker-compose")
            .current_dir(repo_root())
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROFILES")
            .args(&args)
            .args(["config"]));
        assert!(ok, "{cmd}: docker-compose config failed: {err}");
        let merged = parse_yaml(&out, "merged cluster config");
        let svcs = get(&merged, "services").expect("services");
        let env = |name: &str| service_env(get(svcs, name).expect(name), Path::new("/nonexistent"));
        for gw in GATEWAYS {
            assert_eq!(url_list(&env(gw)["NATS_URL"]), nats_client_addrs());
            assert_eq!(env(gw)["JETSTREAM_REPLICAS"], "3");
        }
        assert_eq!(
            pg_host(&env("reporter")["REPORTER_DATABASE_URL"]),
            "postgres-replica"
        );
    }
    let (ok, _, err) = run(Command::new("docker-compose")
        .current_dir(repo_root())
        .args(["-f", CLUSTER, "config", "-q"]));
    assert!(ok, "docker-compose -f {CLUSTER} config -q: {err}");
}

// --- the PostgreSQL scripts, natively -------------------------------------------

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Prints `SKIPPED: test: why`, or fails under DEPLOY_E2E_REQUIRED=1.
fn skip(test: &str, why: &str) {
    assert!(
        env_or("DEPLOY_E2E_REQUIRED", "0") != "1",
        "{test}: DEPLOY_E2E_REQUIRED=1 but {why}"
    );
    println!("SKIPPED: {test}: {why}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A fresh directory under the temp dir (mode 0755: PostgreSQL's user must
/// enter it).
fn temp_dir(what: &str) -> PathBuf {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("cluster-{what}-{}", &id[..12]));
    std::fs::create_dir_all(&dir).expect("temp dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// PostgreSQL commands as the `postgres` user (we are root).
fn as_postgres(dir: &Path, cmd: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut c = Command::new("runuser");
    c.current_dir(dir)
        .args(["-u", "postgres", "--", "env"])
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(cmd)
        .args(args)
        .stdin(Stdio::null());
    let (ok, out, err) = run(&mut c);
    (ok, format!("{out}{err}"))
}

/// Stops the PostgreSQL servers of a data directory list and removes `dir`.
struct PgScratch {
    dir: PathBuf,
    running: Vec<PathBuf>,
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        for data in &self.running {
            let _ = as_postgres(
                &self.dir,
                &format!("{PG_BIN}/pg_ctl"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                &[],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the postgres image does with them, without Docker: a primary
/// initialised like the image's (host connections need a password, the
/// default `host replication` lines removed), `primary-init.sh` run against
/// it, then `replica-entrypoint.sh` with stand-ins for `gosu` and the image's
/// `docker-entrypoint.sh` (which records the server command line). The
/// replica started with that command line streams from the primary through
/// the slot, authenticated from the passfile.
#[test]
fn compose_postgres_scripts_make_a_streaming_replica() {
    let test = "compose_postgres_scripts_make_a_streaming_replica";
    if !Path::new(PG_BIN).join("initdb").is_file() {
        return skip(
            test,
            "PostgreSQL 15 server binaries missing (apt-get install postgresql-15)",
        );
    }
    if !is_root() {
        return skip(test, "needs root (runs PostgreSQL as user postgres)");
    }
    let dir = temp_dir("pg-scripts");
    let mut scratch = PgScratch {
        dir: dir.clone(),
        running: Vec::new(),
    };
    let primary = dir.join("primary");
    let replica = dir.join("replica");
    let shim = dir.join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    let ok = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&dir)
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    let sock = dir.to_str().unwrap();
    let (pport, rport) = (free_port().to_string(), free_port().to_string());
    // A password with the characters a passfile must escape.
    let password = r#"re:pl\ic"a"#;

    let (ok, out) = as_postgres(
        &dir,
        &format!("{PG_BIN}/initdb"),
        &[
            "-D",
            primary.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ],
        &[],
    );
    assert!(ok, "initdb: {out}");
    let hba = primary.join("pg_hba.conf");
    let text: String = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .filter(|l| !(l.starts_with("host") && l.contains("replication")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&hba, text + "host all all all scram-sha-256\n").unwrap();
    let start = |data: &Path, port: &str, extra: &str| {
        as_postgres(
            &dir,
            &format!("{PG_BIN}/pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                data.with_extension("log").to_str().unwrap(),
                "-o",
                &format!("-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off {extra}"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            &[],
        )
    };
    let (ok, out) = start(&primary, &pport, "");
    assert!(ok, "start the primary: {out}");
    scratch.running.push(primary.clone());

    let (ok, out) = as_postgres(
        &dir,
        "bash",
        &[repo_root().join(PRIMARY_INIT).to_str().unwrap()],
        &[
            ("PGHOST", sock),
            ("PGPORT", &pport),
            ("PGDATA", primary.to_str().unwrap()),
            ("POSTGRES_USER", "postgres"),
            ("POSTGRES_REPLICATION_PASSWORD", password),
        ],
    );
    assert!(ok, "{PRIMARY_INIT}: {out}");
    let (ok, out) = as_postgres(
        &dir,
        &format!("{PG_BIN}/pg_ctl"),
        &["-D", primary.to_str().unwrap(), "reload"],
        &[],
    );
    assert!(ok, "reload: {out}");

    std::fs::write(
        shim.join("gosu"),
        "#!/bin/sh\nu=\"$1\"; shift; exec runuser -u \"$u\" -- \"$@\"\n",
    )
    .unwrap();
    let recorded = dir.join("server-args");
    std::fs::write(
        shim.join("docker-entrypoint.sh"),
        format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > {}\n",
            recorded.display()
        ),
    )
    .unwrap();
    for f in ["gosu", "docker-entrypoint.sh"] {
        let ok = Command::new("chmod").arg("755").arg(shim.join(f)).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
    let entrypoint = |pw: &str| {
        run(Command::new("bash")
            .arg(repo_root().join(REPLICA_ENTRYPOINT))
            .current_dir(&dir)
            .env(
                "PATH",
                format!(
                    "{}:{PG_BIN}:{}",
                    shim.display(),
                    env_or("PATH", "/usr/bin:/bin")
                ),
            )
            .env("PGDATA", &replica)
            .env("REPLICA_PASSFILE", dir.join("replica.pgpass"))
            .env("PRIMARY_HOST", "127.0.0.1")
            .env("PRIMARY_PORT", &pport)
            .env("REPLICATION_SLOT", "replica_1")
            .env("POSTGRES_REPLICATION_PASSWORD", pw))
    };
    // A wrong password fails and leaves no half copy behind.
    let (ok, _, err) = entrypoint("wrong");
    assert!(!ok, "pg_basebackup with a wrong password must fail");
    assert!(err.contains("password authentication failed"), "{err}");
    assert_eq!(
        std::fs::read_dir(&replica).map(|d| d.count()).unwrap_or(0),
        0
    );

    let (ok, out, err) = entrypoint(password);
    assert!(ok, "{REPLICA_ENTRYPOINT}: {out}{err}");
    assert!(
        replica.join("standby.signal").is_file(),
        "pg_basebackup -R writes standby.signal"
    );
    let args: Vec<String> = std::fs::read_to_string(&recorded)
        .expect("the entrypoint hands over to docker-entrypoint.sh")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        args.first().map(String::as_str),
        Some("postgres"),
        "{args:?}"
    );
    // The recorded `-c name=value` pairs, as the server will get them.
    let settings: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "-c")
        .map(|w| w[1].clone())
        .collect();
    let extra = settings
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap();
            assert!(!v.contains('\''), "{s}");
            format!("-c {k}='{v}'")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let (ok, out) = start(&replica, &rport, &extra);
    assert!(ok, "start the replica: {out}");
    scratch.running.push(replica.clone());

    let psql = |port: &str, sql: &str| {
        as_postgres(
            &dir,
            &format!("{PG_BIN}/psql"),
            &[
                "-h", sock, "-p", port, "-U", "postgres", "-d", "postgres", "-tAc", sql,
            ],
            &[],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out) = psql(
            &pport,
            "SELECT s.application_name || ' ' || s.state || ' ' || r.slot_name \
             FROM pg_stat_replication s JOIN pg_replication_slots r ON r.active_pid = s.pid",
        );
        if out.trim() == "postgres-replica streaming replica_1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica does not stream through slot replica_1: {out}\n{}",
            std::fs::read_to_string(replica.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, out) = psql(&rport, "SELECT pg_is_in_recovery()");
    assert_eq!(out.trim(), "t", "the replica's healthcheck query");
}

// --- scripts/cluster-local.sh ---------------------------------------------------

/// Generous: debug binaries on a busy machine.
const DEADLINE: Duration = Duration::from_secs(150);

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A live, non-zombie process.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// A base port whose 72 ports (see the script's header) are all free,
/// below the usual ephemeral range.
fn free_base_port() -> u16 {
    let seed = uuid::Uuid::new_v4().as_u128();
    for i in 0..200u128 {
        let base = 12000 + (((seed >> 8) + i * 7) % 200) as u16 * 100;
        let all_free = (base..=base + 71).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free range of 72 ports between 12000 and 32000");
}

/// The state file: `status`, and `process NAME PID PORTS` records.
#[derive(Debug, Default)]
struct State {
    status: String,
    processes: BTreeMap<String, (u32, Vec<u16>)>,
}

fn read_state(path: &Path) -> State {
    let mut state = State::default();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["status", s] => state.status = s.to_string(),
            ["process", name, pid, ports] => {
                let ports = ports.split(',').filter_map(|p| p.parse().ok()).collect();
                if let Ok(pid) = pid.parse() {
                    state.processes.insert(name.to_string(), (pid, ports));
                }
            }
            _ => {}
        }
    }
    state
}

/// One run of the script. Drop kills what is left (the script, then every
/// process the state file names) and removes the work dir.
struct ClusterRun {
    dir: PathBuf,
    base: u16,
    script: Child,
}

impl ClusterRun {
    fn start(bins: &Path, args: &[&str]) -> Self {
        let dir = temp_dir("local");
        let base = free_base_port();
        let env: Vec<(&str, String)> = vec![
            // nats-server and haproxy live in /usr/sbin.
            (
                "PATH",
                format!("{}:/usr/sbin:/sbin", env_or("PATH", "/usr/bin:/bin")),
            ),
            ("EVENTS_BIN_DIR", bins.display().to_string()),
            ("CLUSTER_BASE_PORT", base.to_string()),
            ("CLUSTER_WORK_DIR", dir.join("work").display().to_string()),
            (
                "CLUSTER_START_TIMEOUT_SECS",
                (DEADLINE.as_secs() - 10).to_string(),
            ),
            ("CLUSTER_STOP_TIMEOUT_SECS", "30".into()),
            ("PLUGINS_DIR", plugins_dir().display().to_string()),
            // Compiled once by gateway-1, then loaded by the others.
            (
                "PLUGINS_CACHE_DIR",
                dir.join("plugin-cache").display().to_string(),
            ),
            ("SHUTDOWN_TIMEOUT_MS", "10000".into()),
            ("LOG_LEVEL", "info".into()),
        ];
        let script = Command::new(repo_root().join(SCRIPT))
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout.log")).expect("log file"))
            .stderr(File::create(dir.join("stderr.log")).expect("log file"))
            .spawn()
            .expect("run scripts/cluster-local.sh");
        Self { dir, base, script }
    }

    fn state(&self) -> State {
        read_state(&self.dir.join("work/cluster.state"))
    }

    fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        let lines: Vec<&str> = out.lines().collect();
        format!(
            "--- script stderr ---\n{}\n--- stdout (last 60 lines) ---\n{}",
            std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default(),
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.script.try_wait().expect("try_wait")
    }

    /// Polls `check` until it holds; panics with the logs after `DEADLINE`
    /// or when the script exits first.
    async fn wait_for(&mut self, what: &str, mut check: impl AsyncFnMut(&Self) -> bool) {
        let start = Instant::now();
        while !check(self).await {
            if let Some(status) = self.exited() {
                panic!(
                    "cluster-local.sh exited ({status}) before {what}\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "cluster-local.sh still running {DEADLINE:?} later\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ClusterRun {
    fn drop(&mut self) {
        if self.exited().is_none() {
            kill(self.script.id(), "KILL");
            let _ = self.script.wait();
        }
        for (pid, _) in self.state().processes.values() {
            if running(*pid) {
                kill(*pid, "KILL");
            }
        }
        if std::thread::panicking() {
            eprintln!("cluster-local.sh: logs kept in {}", self.dir.display());
        } else {
            // The PostgreSQL backends exit with their postmaster.
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn plugins_dir() -> PathBuf {
    repo_root().join("dist/plugins")
}

/// The binaries' directory, or `None` (after saying why) to skip.
fn prerequisites(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env_or("EVENTS_BIN_DIR", "/var/cache/events-target/debug"));
    let missing: Vec<&str> = ["events-host", "events-reporter"]
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!(
            "binaries not built in {}: {} (cargo build --workspace --bins, or set EVENTS_BIN_DIR)",
            dir.display(),
            missing.join(", ")
        ));
    }
    for plugin in ["facebook.wasm", "tiktok.wasm"] {
        if !plugins_dir().join(plugin).is_file() {
            why.push(format!(
                "dist/plugins/{plugin} missing (scripts/build-plugins.sh)"
            ));
        }
    }
    for tool in ["nats-server", "haproxy"] {
        if !command_exists(tool) && !Path::new("/usr/sbin").join(tool).is_file() {
            why.push(format!("{tool} not installed (apt-get install {tool})"));
        }
    }
    if !Path::new(PG_BIN).join("pg_basebackup").is_file() {
        why.push("PostgreSQL 15 server binaries missing (apt-get install postgresql-15)".into());
    }
    if why.is_empty() {
        return Some(dir);
    }
    skip(test, &why.join("; "));
    None
}

async fn ready(http: &reqwest::Client, port: u16) -> bool {
    http.get(format!("http://127.0.0.1:{port}/health/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}

/// The whole topology from one script: up, one batch through HAProxy into
/// the reporter on the replica, and everything gone after SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_local_runs_the_topology_and_stops_it_on_sigterm() {
    let test = "cluster_local_runs_the_topology_and_stops_it_on_sigterm";
    let Some(bins) = prerequisites(test) else {
        return;
    };
    let started = Instant::now();
    let mut run = ClusterRun::start(&bins, &[]);
    let base = run.base;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");

    run.wait_for("status ready in the state file", async |r| {
        r.state().status == "ready"
    })
    .await;
    let state = run.state();
    let names: BTreeSet<&str> = state.processes.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "nats-1",
        "nats-2",
        "nats-3",
        "pg-primary",
        "pg-replica",
        "gateway-1",
        "gateway-2",
        "haproxy",
        "fb-1",
        "fb-2",
        "ttk-1",
        "ttk-2",
        "collector",
        "reporter",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, want, "{}", run.logs());
    // Every service answers ready on the port the state file gives, and the
    // webhook port is HAProxy's.
    assert_eq!(state.processes["haproxy"].1.first(), Some(&base));
    for name in [
        "gateway-1",
        "gateway-2",
        "fb-1",
        "fb-2",
        "ttk-1",
        "ttk-2",
        "collector",
        "reporter",
    ] {
        let port = state.processes[name].1[0];
        assert!(
            ready(&http, port).await,
            "{name} (:{port}) not ready\n{}",
            run.logs()
        );
    }
    // HAProxy sees both gateways pass their checks.
    let stats_port = state.processes["haproxy"].1[1];
    let csv = http
        .get(format!("http://127.0.0.1:{stats_port}/stats;csv"))
        .send()
        .await
        .expect("HAProxy stats")
        .text()
        .await
        .expect("stats body");
    for gw in GATEWAYS {
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("gateways,{gw},"))
                    && l.split(',').nth(17) == Some("UP")),
            "{gw} not UP in HAProxy:\n{csv}"
        );
    }
    // The reporter reads a replica.
    let health: serde_json::Value = http
        .get(format!(
            "http://127.0.0.1:{}/health/ready",
            state.processes["reporter"].1[0]
        ))
        .send()
        .await
        .expect("reporter health")
        .json()
        .await
        .expect("health JSON");
    assert_eq!(health["replica"]["inRecovery"], true, "{health}");

    // One small batch, one event per source, through HAProxy.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let batch = serde_json::json!([
        {"eventId": format!("fb-{id}"), "timestamp": "2024-03-01T12:00:00Z", "source": "facebook",
         "funnelStage": "top", "eventType": "ad.view",
         "data": {"user": {"userId": "u1", "name": "Ann", "age": 30, "gender": "female",
                           "location": {"country": "Ukraine", "city": "Kyiv"}},
                  "engagement": {"actionTime": "2024-03-01T12:00:01Z", "referrer": "newsfeed",
                                 "videoId": null}}},
        {"eventId": format!("ttk-{id}"), "timestamp": "2024-03-01T12:00:00Z", "source": "tiktok",
         "funnelStage": "top", "eventType": "video.view",
         "data": {"user": {"userId": "t1", "username": "ann", "followers": 1200},
                  "engagement": {"watchTime": 12.5, "percentageWatched": 87.5, "device": "iOS",
                                 "country": "FR", "videoId": "v-7"}}}
    ]);
    let webhook = format!("http://127.0.0.1:{base}/webhook");
    let response = http
        .post(&webhook)
        .json(&batch)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {webhook}: {e}\n{}", run.logs()));
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("webhook JSON");
    assert_eq!(body["accepted"], 2, "{body}");

    let report = format!(
        "http://127.0.0.1:{}/api/v1/reports/events?from=2024-03-01&to=2024-03-31&granularity=day",
        state.processes["reporter"].1[0]
    );
    run.wait_for(
        "the reporter (on the replica) to count both events",
        async |_| {
            let Ok(r) = http.get(&report).send().await else {
                return false;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                return false;
            };
            v["totalEvents"] == 2 && v["bySource"]["facebook"] == 1 && v["bySource"]["tiktok"] == 1
        },
    )
    .await;
    drop(http);

    kill(run.script.id(), "TERM");
    let status = run.wait_exit().await;
    assert!(
        status.success(),
        "cluster-local.sh: {status}\n{}",
        run.logs()
    );
    let state = run.state();
    assert_eq!(state.status, "stopped", "{}", run.logs());
    for (name, (pid, ports)) in &state.processes {
        assert!(
            !running(*pid),
            "{name} (pid {pid}) still runs\n{}",
            run.logs()
        );
        for port in ports {
            assert!(!accepts(*port), "{name}'s port {port} still accepts");
        }
    }
    let out = std::fs::read_to_string(run.dir.join("stdout.log")).unwrap_or_default();
    for prefix in ["[gateway-1] ", "[haproxy] ", "[pg-replica] ", "[nats-3] "] {
        assert!(
            out.lines().any(|l| l.starts_with(prefix)),
            "no {prefix}lines\n{}",
            run.logs()
        );
    }
    println!(
        "cluster_local: up, one batch and down in {:?}",
        started.elapsed()
    );
}

#[test]
fn cluster_local_names_what_is_missing() {
    let script = repo_root().join(SCRIPT);
    // Binaries.
    let out = Command::new(&script)
        .env("EVENTS_BIN_DIR", "/nonexistent/bin")
        .output()
        .expect("run the script");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/bin/events-host")
            && err.contains("run cargo build --release --bins first"),
        "{err}"
    );
    // haproxy: a PATH with everything the script needs before that check
    // except haproxy.
    let dir = temp_dir("no-haproxy");
    let (bins, path, plugins) = (dir.join("bin"), dir.join("path"), dir.join("plugins"));
    for d in [&bins, &path, &plugins] {
        std::fs::create_dir_all(d).unwrap();
    }
    for b in ["events-host", "events-reporter"] {
        std::fs::write(bins.join(b), "#!/bin/sh\nexit 0\n").unwrap();
        let ok = Command::new("chmod").arg("755").arg(bins.join(b)).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
    std::fs::write(plugins.join("facebook.wasm"), b"").unwrap();
    std::os::unix::fs::symlink("/bin/true", path.join("nats-server")).unwrap();
    for tool in ["dirname", "bash", "env"] {
        if let Some(p) = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(p, path.join(tool)).unwrap();
        }
    }
    let out = Command::new(&script)
        .env_clear()
        .env("PATH", &path)
        .env("EVENTS_BIN_DIR", &bins)
        .env("PLUGINS_DIR", &plugins)
        .output()
        .expect("run the script");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("haproxy not found: apt-get install haproxy"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
