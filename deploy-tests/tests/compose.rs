//! docker-compose.yml, its overrides, the env files, the Prometheus scrape
//! configuration, Grafana provisioning and the Dockerfile agree with each
//! other and with the README's ports table.
//!
//! Where `docker-compose` / `promtool` are installed they validate the files
//! too; without them those checks print `SKIPPED:` and the structural checks
//! still run.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use deploy_tests::{
    all_ports, command_exists, get, keys, load_yaml, parse_yaml, read, repo_root, run, scalar,
    service_env, service_ports, strings,
};
use serde_yaml::Value as Yaml;

const COMPOSE: &str = "docker-compose.yml";
const SIMULATOR_OVERRIDE: &str = "docker-compose.simulator.yml";
const STAGING: &str = "deploy/compose/docker-compose.staging.yml";
const PRODUCTION: &str = "deploy/compose/docker-compose.production.yml";

/// Every service docker-compose.yml must define.
const SERVICES: &[&str] = &[
    "postgres",
    "nats",
    "publisher",
    "gateway",
    "fb-collector",
    "ttk-collector",
    "collector",
    "reporter",
    "prometheus",
    "grafana",
    "simulator",
];

/// Application services, their role command and port.
const APP_PORTS: &[(&str, u16)] = &[
    ("gateway", 3000),
    ("fb-collector", 3001),
    ("ttk-collector", 3002),
    ("reporter", 3003),
    ("collector", 3005),
];

/// Services of the host binary: they read plugins from the shared volume.
const HOST_SERVICES: &[&str] = &["gateway", "fb-collector", "ttk-collector", "collector"];

/// Secrets the production override requires, for `docker-compose config`.
const PRODUCTION_SECRETS: &[(&str, &str)] = &[
    ("POSTGRES_PASSWORD", "pg-secret"),
    ("REPORTER_API_TOKEN", "reporter-token"),
    ("GRAFANA_ADMIN_PASSWORD", "grafana-secret"),
];

fn compose() -> Yaml {
    load_yaml(COMPOSE)
}

fn services(c: &Yaml) -> BTreeMap<String, Yaml> {
    get(c, "services")
        .and_then(Yaml::as_mapping)
        .expect("docker-compose.yml has services")
        .iter()
        .filter_map(|(k, v)| Some((scalar(k)?, v.clone())))
        .collect()
}

fn service<'a>(all: &'a BTreeMap<String, Yaml>, name: &str) -> &'a Yaml {
    all.get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

fn env_of(all: &BTreeMap<String, Yaml>, name: &str) -> BTreeMap<String, String> {
    service_env(service(all, name), &repo_root())
}

fn str_of(v: &Yaml, key: &str) -> String {
    get(v, key).and_then(scalar).unwrap_or_default()
}

/// `docker-compose [-f file]... config` with extra environment; `None` when
/// docker-compose is not installed.
fn compose_config(
    files: &[&str],
    env: &[(&str, &str)],
    quiet: bool,
) -> Option<(bool, String, String)> {
    if !command_exists("docker-compose") {
        return None;
    }
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(repo_root());
    // Compose reads variables from the environment: the tests' own values
    // only, so a developer's shell cannot change the outcome.
    for (k, _) in PRODUCTION_SECRETS {
        cmd.env_remove(k);
    }
    for k in [
        "COMPOSE_FILE",
        "COMPOSE_PROFILES",
        "EVENTS_IMAGE",
        "WEBHOOK_SECRET",
    ] {
        cmd.env_remove(k);
    }
    for f in files {
        cmd.arg("-f").arg(f);
    }
    cmd.arg("config");
    if quiet {
        cmd.arg("-q");
    }
    cmd.envs(env.iter().copied());
    Some(run(&mut cmd))
}

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
fn named_volumes_are_declared_and_mounted() {
    let c = compose();
    let all = services(&c);
    let declared: BTreeSet<String> = keys(get(&c, "volumes")).into_iter().collect();
    let want = [
        ("postgres", "/var/lib/postgresql/data"),
        ("nats", "/data"),
        ("prometheus", "/prometheus"),
        ("grafana", "/var/lib/grafana"),
    ];
    for (name, target) in want {
        let mounts = strings(get(service(&all, name), "volumes"));
        let named = mounts.iter().find_map(|m| {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (dst == target && !src.starts_with('.') && !src.starts_with('/')).then_some(src)
        });
        let named = named.unwrap_or_else(|| {
            panic!("{name}: no named volume mounted on {target} (volumes: {mounts:?})")
        });
        assert!(
            declared.contains(named),
            "{name}: volume {named} is not declared under top-level volumes: {declared:?}"
        );
    }
    // One plugins volume for the gateway and every collector: a .wasm
    // copied in is seen by all of them.
    assert!(
        declared.contains("plugins"),
        "no plugins volume: {declared:?}"
    );
    for name in HOST_SERVICES {
        let mounts = strings(get(service(&all, name), "volumes"));
        assert!(
            mounts.iter().any(|m| m == "plugins:/plugins"),
            "{name}: does not mount the plugins volume on /plugins: {mounts:?}"
        );
        assert_eq!(env_of(&all, name)["PLUGINS_DIR"], "/plugins", "{name}");
    }
    // NATS must keep JetStream on the volume.
    let cmd = strings(get(service(&all, "nats"), "command")).join(" ");
    for flag in ["-js", "-sd /data", "-m 8222"] {
        assert!(cmd.contains(flag), "nats command lacks {flag}: {cmd}");
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

#[test]
fn every_service_gets_the_environment_it_needs() {
    let c = compose();
    let all = services(&c);
    let postgres_env = env_of(&all, "postgres");
    let db_name = postgres_env.get("POSTGRES_DB").cloned().unwrap_or_default();
    assert_eq!(db_name, "events", "postgres: POSTGRES_DB");

    let host_vars = [
        "APP_ENV",
        "LOG_LEVEL",
        "PORT",
        "NATS_URL",
        "DATABASE_URL",
        "PLUGINS_DIR",
        "CORRELATION_ID_HEADER",
    ];
    for (name, port) in APP_PORTS {
        let env = env_of(&all, name);
        let required: &[&str] = if *name == "reporter" {
            &[
                "APP_ENV",
                "LOG_LEVEL",
                "PORT",
                "DATABASE_URL",
                "CORRELATION_ID_HEADER",
            ]
        } else {
            &host_vars
        };
        for var in required {
            let v = env.get(*var).map(String::as_str).unwrap_or_default();
            assert!(
                !v.trim().is_empty(),
                "{name}: {var} is not set (env: {env:?})"
            );
        }
        assert_eq!(env["PORT"], port.to_string(), "{name}: PORT");
        assert!(
            ["development", "staging", "production"].contains(&env["APP_ENV"].as_str()),
            "{name}: APP_ENV={}",
            env["APP_ENV"]
        );
        let db = &env["DATABASE_URL"];
        assert_eq!(
            db, "postgres://postgres@postgres:5432/events",
            "{name}: DATABASE_URL points at the postgres service, without a password"
        );
        // The password PostgreSQL was given, not a copy pasted into a URL.
        assert_eq!(
            env.get("DATABASE_PASSWORD").map(String::as_str),
            Some("${POSTGRES_PASSWORD:-postgres}"),
            "{name}: DATABASE_PASSWORD"
        );
        if *name != "reporter" {
            assert_eq!(env["NATS_URL"], "nats://nats:4222", "{name}: NATS_URL");
            assert_eq!(env["PLUGINS_DIR"], "/plugins", "{name}: PLUGINS_DIR");
        }
        // published on the same port
        let ports = service_ports(service(&all, name));
        assert!(
            ports
                .iter()
                .any(|p| p.container == *port && p.host == Some(*port)),
            "{name}: should publish {port}:{port}, has {ports:?}"
        );
    }
    assert_eq!(env_of(&all, "fb-collector")["COLLECTOR_TYPE"], "facebook");
    assert_eq!(env_of(&all, "ttk-collector")["COLLECTOR_TYPE"], "tiktok");
    // One collector takes every source the dedicated ones do not.
    let rest = env_of(&all, "collector");
    assert_eq!(rest["COLLECTOR_TYPE"], "all");
    assert_eq!(rest["COLLECTOR_EXCLUDE"], "facebook,tiktok");
    let names: BTreeSet<String> = HOST_SERVICES
        .iter()
        .map(|n| {
            env_of(&all, n)
                .get("NATS_NAME")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names.len(),
        HOST_SERVICES.len(),
        "each host role has its own NATS_NAME: {names:?}"
    );

    for name in ["publisher", "simulator"] {
        assert_eq!(
            env_of(&all, name).get("EVENT_ENDPOINT").map(String::as_str),
            Some("http://gateway:3000/webhook"),
            "{name}: EVENT_ENDPOINT"
        );
    }

    let grafana = env_of(&all, "grafana");
    assert_eq!(
        grafana.get("GF_SERVER_HTTP_PORT").map(String::as_str),
        Some("3004")
    );
    assert!(grafana["GF_SECURITY_ADMIN_USER"].contains("admin"));
    assert!(grafana["GF_SECURITY_ADMIN_PASSWORD"].contains("admin"));
}

#[test]
fn env_files_are_the_documented_ones() {
    let c = compose();
    let all = services(&c);
    let want = [
        ("gateway", "deploy/gateway/env.example"),
        ("fb-collector", "deploy/collectors/env.example"),
        ("ttk-collector", "deploy/collectors/env.example"),
        ("collector", "deploy/collectors/env.example"),
        ("reporter", "deploy/reporter/env.example"),
        ("publisher", "deploy/publisher/env.example"),
        ("simulator", "deploy/publisher/env.example"),
    ];
    for (name, file) in want {
        assert_eq!(
            strings(get(service(&all, name), "env_file")),
            vec![file.to_string()],
            "{name}: env_file"
        );
        assert!(repo_root().join(file).is_file(), "{file} missing");
    }
}

#[test]
fn infrastructure_ports() {
    let c = compose();
    let all = services(&c);
    let want = [
        ("prometheus", 9090u16),
        ("grafana", 3004),
        ("postgres", 5432),
        ("nats", 4222),
    ];
    for (name, port) in want {
        let svc = service(&all, name);
        let ports = all_ports(svc, &env_of(&all, name));
        assert!(
            ports.contains(&port),
            "{name}: port {port} not in {ports:?}"
        );
    }
}

/// The README's ports table (`| service | port | ... |`, service names as in
/// docker-compose.yml) must agree with docker-compose.yml.
#[test]
fn ports_match_the_readme_table() {
    let readme = repo_root().join("README.md");
    if !readme.is_file() {
        println!("SKIPPED: README.md not found; ports table not checked");
        return;
    }
    let text = std::fs::read_to_string(&readme).expect("read README.md");
    let c = compose();
    let all = services(&c);
    let names: BTreeSet<String> = all.keys().cloned().collect();
    let rows = deploy_tests::readme_ports(&text, &names);
    assert!(
        !rows.is_empty(),
        "README.md has no ports table: expected rows like `| gateway | 3000 | ... |` \
         with docker-compose service names in the first column"
    );
    for (name, port) in &rows {
        let ports = all_ports(service(&all, name), &env_of(&all, name));
        assert!(
            ports.contains(port),
            "README.md says {name} uses port {port}; docker-compose.yml has {ports:?}"
        );
    }
    let listed: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    for (name, _) in APP_PORTS {
        assert!(listed.contains(name), "README.md ports table lacks {name}");
    }
}

#[test]
fn overrides_only_touch_known_services() {
    let base: BTreeSet<String> = services(&compose()).into_keys().collect();
    for file in [SIMULATOR_OVERRIDE, STAGING, PRODUCTION] {
        let o = load_yaml(file);
        for name in keys(get(&o, "services")) {
            assert!(base.contains(&name), "{file}: unknown service {name}");
        }
    }
    // The simulator override disables the external publisher.
    let sim = load_yaml(SIMULATOR_OVERRIDE);
    let publisher = get(&sim, "services").and_then(|s| get(s, "publisher"));
    assert_eq!(
        strings(publisher.and_then(|p| get(p, "profiles"))),
        vec!["external".to_string()]
    );
    // Staging / production set APP_ENV on every app service.
    for (file, app_env) in [(STAGING, "staging"), (PRODUCTION, "production")] {
        let o = load_yaml(file);
        for (name, _) in APP_PORTS {
            let svc = get(&o, "services")
                .and_then(|s| get(s, name))
                .unwrap_or_else(|| panic!("{file}: no {name}"));
            let env = service_env(svc, &repo_root());
            assert_eq!(
                env.get("APP_ENV").map(String::as_str),
                Some(app_env),
                "{file}: {name}"
            );
        }
    }
    let prod = load_yaml(PRODUCTION);
    let reporter = get(&prod, "services")
        .and_then(|s| get(s, "reporter"))
        .unwrap();
    let token = service_env(reporter, &repo_root())
        .get("REPORTER_API_TOKEN")
        .cloned()
        .unwrap_or_default();
    assert!(
        token.contains("${REPORTER_API_TOKEN:?"),
        "production must require REPORTER_API_TOKEN from the environment: {token}"
    );
}

#[test]
fn docker_compose_accepts_every_combination() {
    type Env<'a> = &'a [(&'a str, &'a str)];
    let combos: &[(&[&str], Env)] = &[
        (&[COMPOSE], &[]),
        (&[COMPOSE, SIMULATOR_OVERRIDE], &[]),
        (&[COMPOSE, STAGING], &[]),
        (&[COMPOSE, PRODUCTION], PRODUCTION_SECRETS),
        (
            &[COMPOSE, SIMULATOR_OVERRIDE, PRODUCTION],
            PRODUCTION_SECRETS,
        ),
    ];
    for (files, env) in combos {
        let Some((ok, _out, err)) = compose_config(files, env, true) else {
            println!("SKIPPED: docker-compose not installed; compose files not validated");
            return;
        };
        assert!(ok, "docker-compose {files:?} config -q failed:\n{err}");
    }
    // Production refuses to start without its secrets.
    let (ok, _, err) = compose_config(&[COMPOSE, PRODUCTION], &[], true).unwrap();
    assert!(!ok, "production override must fail without secrets");
    assert!(
        err.contains("POSTGRES_PASSWORD") || err.contains("REPORTER_API_TOKEN"),
        "{err}"
    );
}

#[test]
fn merged_configs_have_the_right_settings() {
    let Some((ok, out, err)) = compose_config(&[COMPOSE, PRODUCTION], PRODUCTION_SECRETS, false)
    else {
        println!("SKIPPED: docker-compose not installed; merged configs not checked");
        return;
    };
    assert!(ok, "{err}");
    let merged = parse_yaml(&out, "merged production config");
    let all = services(&merged);
    for (name, _) in APP_PORTS {
        let env = service_env(service(&all, name), Path::new("/nonexistent"));
        assert_eq!(
            env.get("APP_ENV").map(String::as_str),
            Some("production"),
            "{name}"
        );
        assert_eq!(
            env.get("DATABASE_PASSWORD").map(String::as_str),
            Some("pg-secret"),
            "{name}: DATABASE_PASSWORD must be POSTGRES_PASSWORD"
        );
        assert!(
            env.get("DATABASE_URL")
                .is_some_and(|u| !u.contains("pg-secret") && u.contains("@postgres:5432/")),
            "{name}: DATABASE_URL points at postgres and carries no password"
        );
        let limits = get(service(&all, name), "deploy")
            .and_then(|d| get(d, "resources"))
            .and_then(|r| get(r, "limits"));
        assert!(limits.is_some(), "{name}: production sets resource limits");
    }
    let reporter = service_env(service(&all, "reporter"), Path::new("/nonexistent"));
    assert_eq!(reporter["REPORTER_API_TOKEN"], "reporter-token");
    // Production NATS fsyncs before acking: an acked event survives a crash.
    let nats = service(&all, "nats");
    let cmd = strings(get(nats, "command")).join(" ");
    for flag in ["-c /etc/nats/nats.conf", "-js", "-sd /data", "-m 8222"] {
        assert!(
            cmd.contains(flag),
            "production nats command lacks {flag}: {cmd}"
        );
    }
    let mounts = strings(get(nats, "volumes"));
    assert!(
        mounts
            .iter()
            .any(|m| m.ends_with("deploy/nats/production.conf:/etc/nats/nats.conf:ro")),
        "production nats does not mount its config: {mounts:?}"
    );
    let conf = read("deploy/nats/production.conf");
    assert!(
        conf.lines().any(|l| l.trim() == "sync_interval: always"),
        "{conf}"
    );
    let pg = service_env(service(&all, "postgres"), Path::new("/nonexistent"));
    assert_eq!(pg["POSTGRES_PASSWORD"], "pg-secret");
    assert_only_the_webhook_is_public(&all);
    assert_own_volume_names(&merged, "events-production-");

    let (ok, out, err) = compose_config(&[COMPOSE, STAGING], &[], false).unwrap();
    assert!(ok, "{err}");
    assert_own_volume_names(
        &parse_yaml(&out, "merged staging config"),
        "events-staging-",
    );

    let (ok, out, err) = compose_config(&[COMPOSE, SIMULATOR_OVERRIDE], &[], false).unwrap();
    assert!(ok, "{err}");
    let merged = parse_yaml(&out, "merged simulator config");
    let all = services(&merged);
    assert_eq!(
        strings(get(service(&all, "publisher"), "profiles")),
        vec!["external".to_string()],
        "the simulator override must switch the external publisher off"
    );
    assert_eq!(
        strings(get(service(&all, "simulator"), "profiles")),
        vec!["simulator".to_string()]
    );
}

/// Every published port is bound to 127.0.0.1, except the gateway's
/// webhook: nothing else (Prometheus, Grafana, the reporter, collectors) is
/// reachable from outside the host.
fn assert_only_the_webhook_is_public(all: &BTreeMap<String, Yaml>) {
    for (name, svc) in all {
        for p in service_ports(svc).into_iter().filter(|p| p.host.is_some()) {
            let public = p.host_ip.as_deref().is_none_or(|ip| ip != "127.0.0.1");
            let webhook = name == "gateway" && p.container == 3000;
            assert_eq!(public, webhook, "{name}: port {p:?}");
        }
    }
}

/// Every named volume has its own name, so that an environment never starts
/// on another's data (and the passwords stored in it).
fn assert_own_volume_names(merged: &Yaml, prefix: &str) {
    let volumes = get(merged, "volumes").expect("volumes");
    let names = keys(Some(volumes));
    assert!(names.len() >= 5, "{names:?}");
    for v in names {
        let name = get(volumes, &v).map(|spec| str_of(spec, "name"));
        assert!(
            name.as_deref().is_some_and(|n| n.starts_with(prefix)),
            "volume {v}: name {name:?}, want {prefix}*"
        );
    }
}

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

#[test]
fn dockerfile_builds_one_image_for_every_role() {
    let df = read("Dockerfile");
    let must = [
        "rust:1.95-bookworm",
        "rustup target add wasm32-wasip2",
        "cargo-chef",
        "scripts/build-plugins.sh",
        "debian:bookworm-slim",
        "/plugins",
        "/usr/local/bin",
        "HEALTHCHECK",
        "curl",
        "events-host",
        "events-reporter",
        "events-publisher",
    ];
    for m in must {
        assert!(df.contains(m), "Dockerfile lacks {m:?}");
    }
    let users: Vec<&str> = df
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .collect();
    let last_user = users.last().expect("Dockerfile sets USER").trim();
    assert!(
        !last_user.starts_with("root") && !last_user.starts_with('0'),
        "runtime user must not be root: {last_user}"
    );
    let ignore = read(".dockerignore");
    let lines: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for entry in [".git", "target", "dist"] {
        assert!(lines.contains(entry), ".dockerignore lacks {entry}");
    }
    if !repo_root().join("scripts/build-plugins.sh").is_file() {
        println!("WARNING: scripts/build-plugins.sh is missing; the image build needs it");
    }
}

/// Every `docker-compose … up` command in the README starts the pipeline and
/// a load source. docker-compose 1.29's `config --services` ignores
/// profiles, so compose's rule is applied here to the merged config: a
/// service with `profiles:` starts only when one of them is passed.
#[test]
fn readme_compose_commands_start_the_pipeline_and_a_load_source() {
    let readme = read("README.md");
    // Lines that are (or quote) a compose `up` command; comments dropped.
    let lines: Vec<String> = readme
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").replace('`', ""))
        .filter(|l| l.trim_start().starts_with("docker-compose") && l.contains("up -d"))
        .collect();
    assert!(lines.len() >= 2, "README compose commands: {lines:?}");
    for cmd in lines {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let (mut files, mut profiles) = (Vec::new(), BTreeSet::new());
        for w in words.windows(2) {
            match w[0] {
                "-f" => files.push(w[1]),
                "--profile" => {
                    profiles.insert(w[1].to_string());
                }
                _ => {}
            }
        }
        if files.is_empty() {
            files.push(COMPOSE);
        }
        let Some((ok, out, err)) = compose_config(&files, &[], false) else {
            println!("SKIPPED: docker-compose not installed; {cmd} not checked");
            return;
        };
        assert!(ok, "{cmd}: docker-compose config failed: {err}");
        let merged = parse_yaml(&out, "merged compose config");
        let started: BTreeSet<String> = services(&merged)
            .into_iter()
            .filter(|(_, s)| {
                let own = strings(get(s, "profiles"));
                own.is_empty() || own.iter().any(|p| profiles.contains(p))
            })
            .map(|(name, _)| name)
            .collect();
        let load_sources = ["publisher", "simulator"];
        for core in SERVICES.iter().filter(|s| !load_sources.contains(*s)) {
            assert!(
                started.contains(*core),
                "{cmd}: does not start {core}: {started:?}"
            );
        }
        let sources: Vec<_> = load_sources
            .into_iter()
            .filter(|s| started.contains(*s))
            .collect();
        assert_eq!(sources.len(), 1, "{cmd}: load sources started: {sources:?}");
    }
}
