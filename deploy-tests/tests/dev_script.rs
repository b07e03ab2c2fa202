//! `scripts/dev.sh`, the native run: it starts the gateway, one collector
//! and the reporter (and with `--simulator` the publisher, aimed at the
//! gateway), prefixes every output line with the process name, stops them
//! all on SIGINT, and stops the others when one exits on its own.
//!
//! Runs the debug binaries (EVENTS_BIN_DIR, default
//! /var/cache/events-target/debug) against the local PostgreSQL (a fresh
//! database) and NATS (stream names and a subject prefix of its own), on
//! free ports. Without the binaries it prints `SKIPPED:` and passes, unless
//! DEPLOY_E2E_REQUIRED=1 (CI) makes that a failure.
use std::{
    collections::BTreeMap,
    fs::File,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// Generous: debug binaries on a busy machine.
const DEADLINE: Duration = Duration::from_secs(90);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The directory of the binaries, or `None` (after saying why) to skip.
fn bin_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env_or("EVENTS_BIN_DIR", "/var/cache/events-target/debug"));
    let missing: Vec<&str> = ["events-host", "events-reporter", "events-publisher"]
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let why = format!(
        "binaries not built in {}: {} (cargo build --workspace --bins, or set EVENTS_BIN_DIR)",
        dir.display(),
        missing.join(", ")
    );
    assert!(
        env_or("DEPLOY_E2E_REQUIRED", "0") != "1",
        "DEPLOY_E2E_REQUIRED=1 but {why}"
    );
    println!("SKIPPED: dev_script: {why}");
    None
}

/// Distinct ports nothing listens on right now.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free local port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

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

fn block_on_thread<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), f).await.ok() });
    })
    .join();
}

/// One run of the script with its own database, streams and ports. Drop
/// kills what is left (the script and the children it named), drops the
/// database and deletes the streams.
struct DevRun {
    id: String,
    dir: PathBuf,
    ports: BTreeMap<&'static str, u16>,
    script: Child,
    db: String,
    streams: [String; 2],
}

impl DevRun {
    /// Runs the script with `args` on `ports` (gateway, collector, reporter).
    async fn start(
        bins: &Path,
        ports: [u16; 3],
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let dir = std::env::temp_dir().join(format!("dev-script-{id}"));
        std::fs::create_dir_all(dir.join("plugins")).expect("temp dir");
        let db = format!("dev_script_{id}");
        create_database(&db).await;
        let [gateway, collector, reporter] = ports;
        let ports = BTreeMap::from([
            ("gateway", gateway),
            ("collector", collector),
            ("reporter", reporter),
        ]);
        let stream = format!("DEV_SCRIPT_{}", id.to_ascii_uppercase());
        let streams = [stream.clone(), format!("{stream}_DLQ")];
        let mut env: BTreeMap<String, String> = [
            ("PATH", env_or("PATH", "/usr/bin:/bin")),
            ("EVENTS_BIN_DIR", bins.display().to_string()),
            ("PLUGINS_DIR", dir.join("plugins").display().to_string()),
            ("PLUGINS_CACHE_DIR", "off".into()),
            (
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{db}"),
            ),
            ("NATS_URL", NATS_URL.into()),
            ("NATS_NAME", format!("dev-script-{id}")),
            ("JETSTREAM_STREAM", streams[0].clone()),
            ("JETSTREAM_DLQ_STREAM", streams[1].clone()),
            ("JETSTREAM_SUBJECT_PREFIX", format!("dev_script_{id}")),
            ("GATEWAY_PORT", gateway.to_string()),
            ("COLLECTOR_PORT", collector.to_string()),
            ("REPORTER_PORT", reporter.to_string()),
            ("SHUTDOWN_TIMEOUT_MS", "10000".into()),
            ("LOG_LEVEL", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let script = Command::new(deploy_tests::repo_root().join("scripts/dev.sh"))
            .args(args)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout.log")).expect("log file"))
            .stderr(File::create(dir.join("stderr.log")).expect("log file"))
            .spawn()
            .expect("run scripts/dev.sh");
        Self {
            id,
            dir,
            ports,
            script,
            db,
            streams,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The output so far, for failure messages.
    fn logs(&self) -> String {
        let out = self.stdout();
        let lines: Vec<&str> = out.lines().collect();
        format!(
            "--- script stderr ---\n{}\n--- stdout (last 40 lines) ---\n{}",
            self.stderr(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// `[dev] started NAME (pid N)` lines: the children's pids by name.
    fn children(&self) -> BTreeMap<String, u32> {
        self.stderr()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("[dev] started ")?;
                let (name, pid) = rest.split_once(" (pid ")?;
                Some((name.to_string(), pid.trim_end_matches(')').parse().ok()?))
            })
            .collect()
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
                panic!("dev.sh exited ({status}) before {what}\n{}", self.logs());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the script to exit.
    async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "dev.sh still running {DEADLINE:?} later\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// After the script exited: every child is gone and its port closed.
    fn assert_all_stopped(&self) {
        let children = self.children();
        assert!(
            children.len() >= 3,
            "children: {children:?}\n{}",
            self.logs()
        );
        for (name, pid) in &children {
            assert!(
                !running(*pid),
                "{name} (pid {pid}) still runs\n{}",
                self.logs()
            );
        }
        for (name, port) in &self.ports {
            assert!(!accepts(*port), "{name}'s port {port} still accepts");
        }
    }
}

impl Drop for DevRun {
    fn drop(&mut self) {
        if self.exited().is_none() {
            kill(self.script.id(), "KILL");
            let _ = self.script.wait();
        }
        for pid in self.children().into_values().filter(|p| running(*p)) {
            kill(pid, "KILL");
        }
        let (db, streams) = (self.db.clone(), self.streams.clone());
        block_on_thread(async move {
            drop_database(&db).await;
            if let Ok(client) = async_nats::connect(NATS_URL).await {
                let js = async_nats::jetstream::new(client);
                for name in streams {
                    let _ = js.delete_stream(&name).await;
                }
            }
        });
        if std::thread::panicking() {
            eprintln!(
                "dev_script {}: logs kept in {}",
                self.id,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn create_database(name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(ADMIN_URL)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {ADMIN_URL}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
}

async fn drop_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(ADMIN_URL).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

async fn ready(http: &reqwest::Client, port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/health/ready");
    http.get(url)
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}

fn has_line(out: &str, prefix: &str, containing: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with(prefix) && l.contains(containing))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_every_service_with_prefixed_output_and_stops_them_all_on_sigint() {
    let Some(bins) = bin_dir() else { return };
    let small_posts = [
        ("PUBLISHER_MIN_EVENTS", "5"),
        ("PUBLISHER_MAX_EVENTS", "10"),
        ("PUBLISHER_INTERVAL_MS", "500"),
    ];
    let mut run = DevRun::start(&bins, free_ports(), &["--simulator"], &small_posts).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let ports = run.ports.clone();
    run.wait_for("every /health/ready to answer 200", async |_| {
        for port in ports.values() {
            if !ready(&http, *port).await {
                return false;
            }
        }
        true
    })
    .await;
    // The simulator posts to the gateway; every process's lines are prefixed.
    run.wait_for("prefixed lines of every process", async |r| {
        let out = r.stdout();
        has_line(&out, "[gateway] ", "webhook handled")
            && has_line(&out, "[collector] ", "events-host started")
            && has_line(&out, "[reporter] ", "")
            && has_line(&out, "[simulator] ", "")
    })
    .await;
    let children = run.children();
    assert_eq!(
        children.keys().collect::<Vec<_>>(),
        ["collector", "gateway", "reporter", "simulator"],
        "{}",
        run.logs()
    );

    kill(run.script.id(), "INT");
    let status = run.wait_exit().await;
    assert!(status.success(), "dev.sh: {status}\n{}", run.logs());
    run.assert_all_stopped();
    assert!(
        run.stderr().contains("[dev] SIGINT: stopping"),
        "{}",
        run.logs()
    );
    // The children's own shutdown logs got through.
    assert!(
        has_line(&run.stdout(), "[gateway] ", "shutdown complete"),
        "{}",
        run.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_exiting_stops_the_others_with_a_failure() {
    let Some(bins) = bin_dir() else { return };
    // The reporter cannot listen: it exits, and the script stops the rest.
    let ports = free_ports();
    let taken = TcpListener::bind(("0.0.0.0", ports[2])).expect("hold the reporter's port");
    let mut run = DevRun::start(&bins, ports, &[], &[]).await;
    let status = run.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{}", run.logs());
    assert!(
        run.stderr().contains("reporter exited on its own"),
        "{}",
        run.logs()
    );
    drop(taken);
    run.assert_all_stopped();
}

#[test]
fn missing_binaries_are_named_with_the_build_command() {
    let out = Command::new(deploy_tests::repo_root().join("scripts/dev.sh"))
        .env("EVENTS_BIN_DIR", "/nonexistent/bin")
        .output()
        .expect("run scripts/dev.sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/bin/events-host")
            && err.contains("run cargo build --release --bins first"),
        "{err}"
    );
}
