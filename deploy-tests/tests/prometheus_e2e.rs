//! End to end: the real services, scraped by a real Prometheus with the
//! repository's scrape configuration, must give data for EVERY PromQL
//! expression of EVERY provisioned Grafana dashboard panel.
//!
//! Starts natively (no Docker): `events-host gateway`, `events-host collector`
//! (facebook) and (tiktok), `events-reporter`, against the local PostgreSQL
//! (a fresh database `deploy_<id>`) and NATS (unique JetStream stream names),
//! then Prometheus with `deploy/prometheus/prometheus.yml` rewritten to the
//! local ports. Drives traffic with `events-publisher` and a few reporter
//! requests, waits for scrapes, and evaluates every expression through
//! `/api/v1/query`, with Grafana's built-in interval variables (`$__range`,
//! `$__rate_interval`, `$__interval`) replaced by durations first.
//!
//! Needs the binaries (EVENTS_BIN_DIR, default /var/cache/events-target/debug)
//! and the plugins (dist/plugins/*.wasm); without them it prints `SKIPPED:`
//! and passes, unless DEPLOY_E2E_REQUIRED=1 (CI) makes that a failure.
//!
//! Knobs (environment):
//!   EVENTS_BIN_DIR                    where events-host / -reporter / -publisher are
//!   PROMETHEUS_BIN                    prometheus binary (default: `prometheus` on PATH)
//!   DEPLOY_E2E_ADMIN_DATABASE_URL     default postgres://postgres@127.0.0.1:5432/postgres
//!   DEPLOY_E2E_NATS_URL               default nats://127.0.0.1:4222
//!   DEPLOY_E2E_PUBLISHER_ARGS         default `--count 20000 --rate 10000 --no-progress`
//!   DEPLOY_E2E_REPORT_QUERY           query string for report requests
//!                                     (default from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z)
//!   DEPLOY_E2E_SCRAPE_INTERVAL        default 2s (the repository config says 5s)
//!   DEPLOY_E2E_READY_TIMEOUT_SECS     default 180
//!   DEPLOY_E2E_PUBLISHER_TIMEOUT_SECS default 300
//!   DEPLOY_E2E_METRICS_TIMEOUT_SECS   default 120
//!   DEPLOY_E2E_ENV_<NAME>=<value>     passed to every service as <NAME>=<value>
//!   DEPLOY_E2E_KEEP=1                 keep the temp dir (logs, TSDB) afterwards

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use deploy_tests::{
    all_exprs, block_on_thread, create_database, delete_streams, drop_database, env_or, free_port,
    get, load_yaml, prometheus_expr, read, readme_commands, repo_root, scalar, strings,
};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        env_or(name, &default.to_string())
            .parse()
            .unwrap_or(default),
    )
}

/// The last `n` lines of a file (for error messages).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Everything the test started; Drop kills the processes and removes the
/// database, the JetStream streams and (unless kept) the temp dir, even when
/// the test panics.
struct Stack {
    dir: PathBuf,
    procs: Vec<Proc>,
    admin_url: String,
    db_name: Option<String>,
    nats_url: String,
    stream_token: String,
    keep: bool,
}

impl Stack {
    fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &BTreeMap<String, String>,
    ) -> usize {
        let stdout = self.dir.join(format!("{name}.stdout.log"));
        let stderr = self.dir.join(format!("{name}.stderr.log"));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(env)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("log file"))
            .stderr(File::create(&stderr).expect("log file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        });
        self.procs.len() - 1
    }

    /// Output of one process, for messages.
    fn logs(&self, i: usize) -> String {
        let p = &self.procs[i];
        format!(
            "--- {} stderr (tail) ---\n{}\n--- {} stdout (tail) ---\n{}",
            p.name,
            tail(&p.stderr, 40),
            p.name,
            tail(&p.stdout, 20)
        )
    }

    /// Output of every process.
    fn all_logs(&self) -> String {
        (0..self.procs.len())
            .map(|i| self.logs(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Panics (with its output) if process `i` has exited.
    fn assert_running(&mut self, i: usize) {
        if let Ok(Some(status)) = self.procs[i].child.try_wait() {
            panic!(
                "{} exited early ({status})\n{}",
                self.procs[i].name,
                self.logs(i)
            );
        }
    }

    /// Waits until `url` answers 200, failing early when the process dies.
    async fn wait_ready(&mut self, i: usize, url: &str, timeout: Duration) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let start = Instant::now();
        let mut last;
        loop {
            self.assert_running(i);
            match client.get(url).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => {
                    let status = r.status();
                    last = format!("{status}: {}", r.text().await.unwrap_or_default());
                }
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} not ready at {url} after {timeout:?} (last: {last})\n{}",
                    self.procs[i].name,
                    self.logs(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits for process `i` to exit; kills it after `timeout`.
    async fn wait_exit(&mut self, i: usize, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.procs[i].child.try_wait() {
                return status.to_string();
            }
            if start.elapsed() > timeout {
                let _ = self.procs[i].child.kill();
                let _ = self.procs[i].child.wait();
                return format!("killed after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let admin_url = self.admin_url.clone();
        let db_name = self.db_name.take();
        let nats_url = self.nats_url.clone();
        let token = self.stream_token.clone();
        block_on_thread(async move {
            if let Some(db) = db_name {
                drop_database(&admin_url, &db).await;
            }
            // The event and dead-letter streams, and KV buckets named after them.
            delete_streams(&nats_url, |name| name.contains(&token)).await;
        });
        if self.keep || std::thread::panicking() {
            eprintln!("deploy e2e: logs and TSDB kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `admin_url` with its database replaced by `db`.
fn database_url(admin_url: &str, db: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

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

/// Evaluates `expr` now; Ok(the value of each series, NaN when unreadable)
/// or Err(reason).
async fn query(client: &reqwest::Client, prom: &str, expr: &str) -> Result<Vec<f64>, String> {
    let resp = client
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let body: Json = resp
        .json()
        .await
        .map_err(|e| format!("{status}: bad JSON: {e}"))?;
    if body.get("status").and_then(Json::as_str) != Some("success") {
        return Err(format!(
            "{status}: {} {}",
            body.get("errorType")
                .and_then(Json::as_str)
                .unwrap_or_default(),
            body.get("error").and_then(Json::as_str).unwrap_or_default()
        ));
    }
    let data = body.get("data").cloned().unwrap_or_default();
    match data.get("resultType").and_then(Json::as_str) {
        Some("vector") | Some("matrix") => {
            let values: Vec<f64> = data
                .get("result")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|series| {
                    series
                        .pointer("/value/1")
                        .and_then(Json::as_str)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN)
                })
                .collect();
            if values.is_empty() {
                Err("no data (empty result)".into())
            } else {
                Ok(values)
            }
        }
        Some(_) => Ok(vec![f64::NAN]),
        None => Err(format!("no resultType: {body}")),
    }
}

/// Extra service environment from DEPLOY_E2E_ENV_<NAME>=<value>.
/// Whether a report answer holds data: events counted, transactions, or a
/// demographics section; other answers (the OpenAPI document) just parse.
fn has_data(url: &str, body: &Json) -> bool {
    let positive = |key: &str| {
        body.get(key)
            .and_then(Json::as_f64)
            .is_some_and(|n| n > 0.0)
    };
    if url.contains("/reports/events") {
        positive("totalEvents")
    } else if url.contains("/reports/revenue") {
        positive("transactions")
    } else if url.contains("/reports/demographics") {
        body.as_object()
            .is_some_and(|o| o.keys().any(|k| k != "from" && k != "to"))
    } else {
        body.is_object()
    }
}

/// Runs the README's "API examples" literally (sh + curl), pointed at this
/// test's ports, after the simulator's traffic: the webhook example is
/// accepted and every report example returns data, the dated one included
/// once the example event is stored.
async fn readme_api_examples_return_data(gateway: u16, reporter: u16) {
    let since_midnight = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() % 86_400)
        .unwrap_or_default();
    if since_midnight < 600 {
        println!("SKIPPED: README examples query today's date; the traffic may be from yesterday");
        return;
    }
    let commands = readme_commands(&read("README.md"), "## API examples");
    assert!(commands.len() >= 5, "README API examples: {commands:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = commands.len();
    for cmd in commands {
        let local = cmd
            .replace("localhost:3000", &format!("127.0.0.1:{gateway}"))
            .replace("localhost:3003", &format!("127.0.0.1:{reporter}"));
        loop {
            let out = Command::new("sh")
                .args(["-c", &local])
                .output()
                .expect("sh");
            let body: Json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
            let ok = if cmd.contains("/webhook") {
                body.get("accepted").and_then(Json::as_u64) == Some(1)
            } else {
                has_data(&cmd, &body)
            };
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "README example returned no data: {cmd}\n-> {}",
                String::from_utf8_lossy(&out.stdout)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    eprintln!("prometheus_e2e: all {count} README API examples returned data");
}

fn extra_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("DEPLOY_E2E_ENV_")?.to_string(), v)))
        .collect()
}

/// The binaries, the plugins directory and the Prometheus binary, or why
/// the live checks are skipped (a failure under DEPLOY_E2E_REQUIRED=1).
fn preconditions() -> Option<(BTreeMap<&'static str, PathBuf>, PathBuf, String)> {
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

/// Every dashboard expression: (file, panel, expr as in the dashboard,
/// expr as sent to Prometheus).
type Exprs = Vec<(String, String, String, String)>;

fn dashboard_exprs() -> Exprs {
    all_exprs()
        .into_iter()
        .map(|(file, panel, expr)| {
            let sent = prometheus_expr(&expr)
                .unwrap_or_else(|why| panic!("{file} / {panel}: {why}: {expr}"));
            (file, panel, expr, sent)
        })
        .collect()
}

/// The live check below evaluates every panel, the ones this suite cares
/// most about included.
#[test]
fn dashboard_exprs_cover_the_range_stats_and_key_panels() {
    let exprs = dashboard_exprs();
    assert!(!exprs.is_empty(), "no dashboard expressions");
    // The range stats and the stream-fill, DB-retry, plugins-loaded and
    // dead-letter-lag panels
    // are among what gets evaluated.
    for needle in [
        "[$__range]",
        "jetstream_stream_fill_ratio",
        "collector_db_retries_total",
        "plugins_loaded",
        "dead_letters_oldest_unwritten_age_seconds",
    ] {
        assert!(
            exprs.iter().any(|(_, _, expr, _)| expr.contains(needle)),
            "no dashboard expression uses {needle}"
        );
    }
}

/// The running stack: the services, Prometheus and where they listen.
struct Live {
    stack: Stack,
    bins: BTreeMap<&'static str, PathBuf>,
    ports: BTreeMap<&'static str, u16>,
    /// Stack indices of the services and Prometheus, checked while waiting.
    watched: [usize; 5],
    prom_url: String,
    target_count: usize,
    interval_secs: u64,
    client: reqwest::Client,
}

/// What the traffic step did, for the failure messages.
struct Traffic {
    publisher_args: String,
    pub_status: String,
    report_results: Vec<String>,
}

impl Live {
    /// Starts the services against a fresh database and streams, waits for
    /// them, then starts Prometheus on the repository's scrape configuration.
    async fn start(
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

    /// Every target scraped successfully at least once (60 s at most).
    async fn scrape_targets_up(&self) -> Result<(), String> {
        let (client, prom_url, target_count) = (&self.client, &self.prom_url, self.target_count);
        let start = Instant::now();
        loop {
            let up = client
                .get(format!("{prom_url}/api/v1/query"))
                .query(&[("query", "count(up == 1)")])
                .send()
                .await
                .ok();
            let up = match up {
                Some(r) => r.json::<Json>().await.ok(),
                None => None,
            };
            let up = up
                .as_ref()
                .and_then(|b| b.pointer("/data/result/0/value/1"))
                .and_then(Json::as_str)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if up as usize >= target_count {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let body = match client
                    .get(format!("{prom_url}/api/v1/targets"))
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                return Err(format!(
                    "only {up} of {target_count} scrape targets up after 60s: {body}\n{}",
                    self.stack.all_logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        Ok(())
    }

    /// The alert rules loaded and evaluate without error on real series.
    async fn alert_rules_healthy(&self) -> Result<(), String> {
        let (client, prom_url) = (&self.client, &self.prom_url);
        let start = Instant::now();
        loop {
            let rules: Option<Json> =
                match client.get(format!("{prom_url}/api/v1/rules")).send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
            let health: Vec<(String, String)> = rules
                .as_ref()
                .and_then(|b| b.pointer("/data/groups"))
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .map(|r| {
                    let name = r["name"].as_str().unwrap_or("?").to_string();
                    let h = r["health"].as_str().unwrap_or("?").to_string();
                    let err = r["lastError"].as_str().unwrap_or("").to_string();
                    (name, format!("{h} {err}").trim().to_string())
                })
                .collect();
            let bad: Vec<_> = health.iter().filter(|(_, h)| h != "ok").collect();
            if !health.is_empty() && bad.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("alert rules not all healthy after 60s: {health:?}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        Ok(())
    }

    /// The publisher's traffic, then reporter requests (good and bad).
    async fn drive_traffic(&mut self) -> Traffic {
        let (client, ports, stack, bins) = (&self.client, &self.ports, &mut self.stack, &self.bins);
        let prom_env: BTreeMap<String, String> = [(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        )]
        .into();
        let publisher_args = env_or(
            "DEPLOY_E2E_PUBLISHER_ARGS",
            "--count 20000 --rate 10000 --no-progress",
        );
        let args: Vec<&str> = publisher_args.split_whitespace().collect();
        let mut pub_env = prom_env.clone();
        pub_env.insert(
            "EVENT_ENDPOINT".into(),
            format!("http://127.0.0.1:{}/webhook", ports["gateway"]),
        );
        pub_env.insert("RUST_BACKTRACE".into(), "1".into());
        let publisher = stack.spawn(
            "publisher",
            &bins["events-publisher"].clone(),
            &args,
            &pub_env,
        );
        let pub_status = stack
            .wait_exit(publisher, secs("DEPLOY_E2E_PUBLISHER_TIMEOUT_SECS", 300))
            .await;
        eprintln!(
            "deploy e2e: publisher {publisher_args:?} finished: {pub_status}\n{}",
            stack.logs(publisher)
        );

        let report_query = env_or(
            "DEPLOY_E2E_REPORT_QUERY",
            "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        );
        let rep_base = format!("http://127.0.0.1:{}", ports["reporter"]);
        let mut report_results = Vec::new();
        for round in 0..2 {
            for report in ["events", "revenue", "demographics"] {
                let url = format!("{rep_base}/api/v1/reports/{report}?{report_query}");
                let status = client.get(&url).send().await.map(|r| r.status().as_u16());
                if round == 0 {
                    report_results.push(format!("GET {url} -> {status:?}"));
                }
            }
        }
        for bad in [
            format!("{rep_base}/api/v1/reports/events?from=not-a-date"),
            format!("{rep_base}/api/v1/openapi.json"),
        ] {
            let status = client.get(&bad).send().await.map(|r| r.status().as_u16());
            report_results.push(format!("GET {bad} -> {status:?}"));
        }
        eprintln!(
            "deploy e2e: reporter requests:\n  {}",
            report_results.join("\n  ")
        );

        Traffic {
            publisher_args,
            pub_status,
            report_results,
        }
    }

    /// Every dashboard expression returns data (retried until
    /// DEPLOY_E2E_METRICS_TIMEOUT_SECS).
    async fn every_dashboard_expr_returns_data(
        &mut self,
        exprs: &Exprs,
        traffic: &Traffic,
    ) -> Result<(), String> {
        let (client, prom_url, interval_secs) = (&self.client, &self.prom_url, self.interval_secs);
        let Traffic {
            publisher_args,
            pub_status,
            report_results,
        } = traffic;
        let substituted = exprs.iter().filter(|(_, _, e, s)| e != s).count();
        let deadline = Instant::now() + secs("DEPLOY_E2E_METRICS_TIMEOUT_SECS", 120);
        let failures = loop {
            for i in self.watched {
                self.stack.assert_running(i);
            }
            let mut failures = Vec::new();
            for (file, panel, expr, sent) in exprs {
                // The gateway stats over the range must count the traffic just
                // sent (increase() alone misses series first seen in the range).
                let counts_traffic = expr.contains("[$__range]")
                    && [
                        "gateway_events_accepted_total",
                        "gateway_events_processed_total",
                    ]
                    .iter()
                    .any(|m| expr.contains(m));
                let result = match query(client, prom_url, sent).await {
                    Ok(values) if counts_traffic && !values.iter().any(|v| *v > 0.0) => {
                        Err(format!(
                        "{values:?}: no events counted in the range after the publisher's traffic"
                    ))
                    }
                    other => other,
                };
                if let Err(why) = result {
                    let sent = if sent == expr {
                        String::new()
                    } else {
                        format!("\n      sent as {sent}")
                    };
                    failures.push(format!(
                        "{file} / {panel}:\n      {expr}{sent}\n      -> {why}"
                    ));
                }
            }
            if failures.is_empty() || Instant::now() > deadline {
                break failures;
            }
            tokio::time::sleep(Duration::from_secs(interval_secs.max(1))).await;
        };
        if !failures.is_empty() {
            // The metric names our services exported (Prometheus' own left out),
            // to spot a renamed metric at a glance.
            let names_body = match client
                .get(format!("{prom_url}/api/v1/label/__name__/values"))
                .send()
                .await
            {
                Ok(r) => match r.json::<Json>().await {
                    Ok(body) => body
                        .get("data")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Json::as_str)
                        .filter(|n| {
                            !["prometheus_", "go_", "net_", "promhttp_", "scrape_"]
                                .iter()
                                .any(|p| n.starts_with(p))
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            return Err(format!(
                "{} of {} dashboard expressions returned no data:\n  {}\n\n\
                 metric names scraped: {names_body}\n\n\
                 publisher {publisher_args:?}: {pub_status}\nreporter requests:\n  {}\n\n{}",
                failures.len(),
                exprs.len(),
                failures.join("\n  "),
                report_results.join("\n  "),
                self.stack.all_logs()
            ));
        }
        println!(
            "prometheus_e2e: all {} dashboard expressions returned data \
             ({substituted} with Grafana interval variables substituted)",
            exprs.len()
        );
        Ok(())
    }
}

/// One started stack (about a minute to start) serves every live check;
/// each check is reported by name and a failure lists the ones that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stack_checks() {
    let Some((bins, plugins_dir, prometheus)) = preconditions() else {
        return;
    };
    let exprs = dashboard_exprs();
    let mut live = Live::start(bins, plugins_dir, prometheus).await;
    let mut failed = Vec::new();
    check(
        &mut failed,
        "every scrape target is up",
        live.scrape_targets_up().await,
    );
    check(
        &mut failed,
        "alert rules are healthy",
        live.alert_rules_healthy().await,
    );
    let traffic = live.drive_traffic().await;
    let (gateway, reporter) = (live.ports["gateway"], live.ports["reporter"]);
    let readme = tokio::spawn(readme_api_examples_return_data(gateway, reporter))
        .await
        .map_err(panic_message);
    check(&mut failed, "README API examples return data", readme);
    // At least two scrapes after the traffic.
    tokio::time::sleep(Duration::from_secs(2 * live.interval_secs + 1)).await;
    let every = live
        .every_dashboard_expr_returns_data(&exprs, &traffic)
        .await;
    check(
        &mut failed,
        "every dashboard expression returns data",
        every,
    );
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n\n"));
}

/// Reports one named check; a failure is kept with its reason.
fn check(failed: &mut Vec<String>, name: &str, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => println!("prometheus_e2e: {name}: ok"),
        Err(why) => {
            eprintln!("prometheus_e2e: {name}: FAILED");
            failed.push(format!("{name}: {why}"));
        }
    }
}

/// The message of a check that panicked.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => e.to_string(),
    }
}
