//! docker-compose.yml, its overrides, the env files, the Prometheus scrape
//! configuration, Grafana provisioning and the Dockerfile agree with each
//! other and with the README's ports table.
//!
//! Where `docker-compose` / `promtool` are installed they validate the files
//! too; without them those checks print `SKIPPED:` and the structural checks
//! still run.

//!
//! The checks are grouped by what they read: [`services`] the services'
//! healthchecks, dependencies, images and roles, [`volumes`] the named
//! volumes, [`env`] the environment and env files, [`ports`] the published
//! ports against the README, [`overrides`] the staging / production /
//! simulator overrides and the merged configs, [`prometheus`] the scrape
//! configuration and alert rules, [`grafana`] Grafana provisioning,
//! [`image`] the Dockerfile, [`readme`] the README's compose commands.

mod env;
mod grafana;
mod image;
mod overrides;
mod ports;
mod prometheus;
mod readme;
mod services;
mod volumes;

use std::{collections::BTreeMap, process::Command};

use deploy_tests::{command_exists, get, load_yaml, repo_root, run, scalar, service_env};
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
