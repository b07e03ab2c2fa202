//! The files the cluster mounts (the HAProxy, NATS and Prometheus configs)
//! as the compose file uses them, and the tools that validate them where
//! installed: `nats-server`, `haproxy`, `promtool`, `docker-compose`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use deploy_tests::{
    get, lacks_tool, load_yaml, parse_yaml, read, repo_root, run, scalar, service_env,
    service_ports, strings,
};
use serde_yaml::Value as Yaml;

use super::{
    compose::{bind_mounts, env_of, nats_client_addrs, pg_host, service, services, url_list},
    temp_dir, CLUSTER, COLLECTORS, GATEWAYS, HAPROXY_CFG, NATS_CONF, PROMETHEUS,
};

/// Debian's nats-server (2.9) accepts the cluster config, except
/// `sync_interval`, which arrived in 2.10.
#[test]
fn nats_server_accepts_the_cluster_config() {
    if lacks_tool("nats-server", NATS_CONF) {
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
    if lacks_tool("haproxy", HAPROXY_CFG) {
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
    want("collectors", &COLLECTORS);
    want("reporter", &["reporter"]);
    want("haproxy", &["haproxy"]);
    if lacks_tool("promtool", PROMETHEUS) {
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
    if lacks_tool("docker-compose", CLUSTER) {
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
