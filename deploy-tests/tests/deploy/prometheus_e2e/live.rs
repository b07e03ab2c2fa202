//! Starting the stack: the preconditions (binaries, plugins, Prometheus),
//! the services on a fresh database and streams, then Prometheus on the
//! repository's scrape configuration rewritten to the local ports.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use deploy_tests::{
    create_database, env_or, free_port, get, load_yaml, repo_root, scalar, strings,
};
use serde_yaml::Value as Yaml;

use super::{
    stack::{database_url, secs, Stack},
    Live,
};

/// The repository's scrape configuration with every compose target replaced
/// by the local port of the same service and a faster scrape interval; also
/// returns the number of targets.
fn local_prometheus_config(
    ports: &BTreeMap<&str, u16>,
    prom_port: u16,
    interval: &str,
) -> (String, usize) {
    let mut count = 0;
    let mut cfg = load_yaml("deploy/prometheus/prometheus.yml");
    let map = cfg.as_mapping_mut().expect("prometheus.yml is a mapping");
    let mut global = map
        .get("global")
        .cloned()
        .unwrap_or(Yaml::Mapping(Default::default()));
    let g = global.as_mapping_mut().expect("global is a mapping");
    g.insert("scrape_interval".into(), interval.into());
    g.insert("scrape_timeout".into(), interval.into());
    g.insert("evaluation_interval".into(), interval.into());
    map.insert("global".into(), global);
    let jobs = map
        .get_mut("scrape_configs")
        .and_then(Yaml::as_sequence_mut)
        .expect("scrape_configs");
    for job in jobs.iter_mut() {
        let job = job.as_mapping_mut().expect("job is a mapping");
        job.remove("scrape_interval");
        job.remove("scrape_timeout");
        let job_name = job.get("job_name").and_then(scalar).unwrap_or_default();
        for sc in job
            .get_mut("static_configs")
            .and_then(Yaml::as_sequence_mut)
            .into_iter()
            .flatten()
        {
            let targets: Vec<Yaml> = strings(get(sc, "targets"))
                .into_iter()
                .map(|t| {
                    let host = t.split(':').next().unwrap_or_default();
                    let port = match host {
                        "localhost" | "127.0.0.1" | "prometheus" => prom_port,
                        _ => *ports.get(host).unwrap_or_else(|| {
                            panic!("job {job_name}: target {t} is not a service this test starts")
                        }),
                    };
                    count += 1;
                    Yaml::from(format!("127.0.0.1:{port}"))
                })
                .collect();
            sc.as_mapping_mut()
                .expect("static_config")
                .insert("targets".into(), Yaml::Sequence(targets));
        }
    }
    (
        serde_yaml::to_string(&cfg).expect("serialize prometheus config"),
        count,
    )
}

/// Extra service environment from DEPLOY_E2E_ENV_<NAME>=<value>.
fn extra_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("DEPLOY_E2E_ENV_")?.to_string(), v)))
        .collect()
}

/// The binaries, the plugins directory and the Prometheus binary, or why
/// the live checks are skipped (a failure under DEPLOY_E2E_REQUIRED=1).
pub(super) fn preconditions() -> Option<(BTreeMap<&'static str, PathBuf>, PathBuf, String)> {
    let required = env_or("DEPLOY_E2E_REQUIRED", "0") == "1";
    let skip = |why: String| {
        if required {
            panic!("DEPLOY_E2E_REQUIRED=1 but {why}");
        }
        println!("SKIPPED: prometheus_e2e: {why}");
        None
    };
    let root = repo_root();
    let bin_dir = PathBuf::from(env_or("EVENTS_BIN_DIR", "/var/cache/events-target/debug"));
    let bins: BTreeMap<&'static str, PathBuf> =
        ["events-host", "events-reporter", "events-publisher"]
            .into_iter()
            .map(|b| (b, bin_dir.join(b)))
            .collect();
    let missing: Vec<String> = bins
        .values()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return skip(format!(
            "binaries not built: {} (cargo build -p events-host -p events-reporter -p events-publisher, or set EVENTS_BIN_DIR)",
            missing.join(", ")
        ));
    }
    let plugins_dir = root.join("dist/plugins");
    let wasm = std::fs::read_dir(&plugins_dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
                .count()
        })
        .unwrap_or(0);
    if wasm == 0 {
        return skip(format!(
            "no plugins in {} (run scripts/build-plugins.sh)",
            plugins_dir.display()
        ));
    }
    let prometheus = env_or("PROMETHEUS_BIN", "prometheus");
    assert!(
        deploy_tests::command_exists(&prometheus),
        "Prometheus not found ({prometheus}); install it (apt-get install prometheus) or set PROMETHEUS_BIN"
    );
    Some((bins, plugins_dir, prometheus))
}

impl Live {
    /// Starts the services against a fresh database and streams, waits for
    /// them, then starts Prometheus on the repository's scrape configuration.
    pub(super) async fn start(
        bins: BTreeMap<&'static str, PathBuf>,
        plugins_dir: PathBuf,
        prometheus: String,
    ) -> Self {
        // --- the stack -------------------------------------------------------------
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let dir = std::env::temp_dir().join(format!("deploy-e2e-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let admin_url = env_or(
            "DEPLOY_E2E_ADMIN_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let nats_url = env_or("DEPLOY_E2E_NATS_URL", "nats://127.0.0.1:4222");
        let stream_token = format!("DEPLOY_{}", id.to_ascii_uppercase());
        let mut stack = Stack {
            dir: dir.clone(),
            procs: Vec::new(),
            admin_url: admin_url.clone(),
            db_name: None,
            nats_url: nats_url.clone(),
            stream_token: stream_token.clone(),
            keep: env_or("DEPLOY_E2E_KEEP", "0") == "1",
        };
        let db_name = format!("deploy_{id}");
        create_database(&admin_url, &db_name).await;
        stack.db_name = Some(db_name.clone());
        let db_url = database_url(&admin_url, &db_name);

        let ports: BTreeMap<&str, u16> = [
            ("gateway", free_port()),
            ("fb-collector", free_port()),
            ("ttk-collector", free_port()),
            ("collector", free_port()),
            ("reporter", free_port()),
        ]
        .into_iter()
        .collect();
        let prom_port = free_port();

        let base_env = |port: u16, nats_name: &str| -> BTreeMap<String, String> {
            let mut env: BTreeMap<String, String> = [
                ("PATH", std::env::var("PATH").unwrap_or_default()),
                ("RUST_BACKTRACE", "1".into()),
                ("APP_ENV", "development".into()),
                ("LOG_LEVEL", "info".into()),
                ("PORT", port.to_string()),
                ("DATABASE_URL", db_url.clone()),
                ("NATS_URL", nats_url.clone()),
                ("NATS_NAME", nats_name.into()),
                ("PLUGINS_DIR", plugins_dir.display().to_string()),
                ("JETSTREAM_STREAM", stream_token.clone()),
                ("JETSTREAM_DLQ_STREAM", format!("{stream_token}_DLQ")),
                ("JETSTREAM_SUBJECT_PREFIX", format!("deploy_{id}")),
                ("SHUTDOWN_TIMEOUT_MS", "2000".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            env.extend(extra_env());
            env
        };

        let host = bins["events-host"].clone();
        let gw = stack.spawn(
            "gateway",
            &host,
            &["gateway"],
            &base_env(ports["gateway"], "deploy-e2e-gateway"),
        );
        let mut fb_env = base_env(ports["fb-collector"], "deploy-e2e-fb");
        fb_env.insert("COLLECTOR_TYPE".into(), "facebook".into());
        let fb = stack.spawn("fb-collector", &host, &["collector"], &fb_env);
        let mut ttk_env = base_env(ports["ttk-collector"], "deploy-e2e-ttk");
        ttk_env.insert("COLLECTOR_TYPE".into(), "tiktok".into());
        let ttk = stack.spawn("ttk-collector", &host, &["collector"], &ttk_env);
        // As in compose: one collector for every source the two above leave.
        let mut rest_env = base_env(ports["collector"], "deploy-e2e-rest");
        rest_env.insert("COLLECTOR_TYPE".into(), "all".into());
        rest_env.insert("COLLECTOR_EXCLUDE".into(), "facebook,tiktok".into());
        let rest = stack.spawn("collector", &host, &["collector"], &rest_env);
        let rep = stack.spawn(
            "reporter",
            &bins["events-reporter"].clone(),
            &[],
            &base_env(ports["reporter"], "deploy-e2e-reporter"),
        );

        let ready = secs("DEPLOY_E2E_READY_TIMEOUT_SECS", 180);
        for (i, svc) in [
            (gw, "gateway"),
            (fb, "fb-collector"),
            (ttk, "ttk-collector"),
            (rest, "collector"),
            (rep, "reporter"),
        ] {
            let url = format!("http://127.0.0.1:{}/health/ready", ports[svc]);
            stack.wait_ready(i, &url, ready).await;
        }

        // --- Prometheus ----------------------------------------------------------------
        let interval = env_or("DEPLOY_E2E_SCRAPE_INTERVAL", "2s");
        let interval_secs: u64 = interval
            .trim_end_matches('s')
            .parse()
            .expect("DEPLOY_E2E_SCRAPE_INTERVAL like 2s");
        let cfg_path = dir.join("prometheus.yml");
        let (prom_cfg, target_count) = local_prometheus_config(&ports, prom_port, &interval);
        std::fs::write(&cfg_path, prom_cfg).expect("write prometheus.yml");
        // The rules file sits next to the config, as in the compose mount: the
        // live Prometheus loads the real alert rules too.
        std::fs::copy(
            repo_root().join("deploy/prometheus/alerts.yml"),
            dir.join("alerts.yml"),
        )
        .expect("copy alerts.yml");
        let tsdb = dir.join("tsdb");
        let prom_env: BTreeMap<String, String> = [(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        )]
        .into();
        let prom = stack.spawn(
            "prometheus",
            Path::new(&prometheus),
            &[
                &format!("--config.file={}", cfg_path.display()),
                &format!("--storage.tsdb.path={}", tsdb.display()),
                &format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--log.level=warn",
            ],
            &prom_env,
        );
        let prom_url = format!("http://127.0.0.1:{prom_port}");
        stack
            .wait_ready(
                prom,
                &format!("{prom_url}/-/ready"),
                Duration::from_secs(60),
            )
            .await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");

        Live {
            stack,
            bins,
            ports,
            watched: [gw, fb, ttk, rep, prom],
            prom_url,
            target_count,
            interval_secs,
            client,
        }
    }
}
