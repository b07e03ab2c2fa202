//! `events-host` subprocesses.
use super::Metrics;
use crate::common::services::signal;
use serde_json::Value;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// An `events-host` (or `events-reporter`) subprocess; killed (SIGKILL) on
/// drop; its log is printed when the test panics.
pub struct Host {
    pub label: String,
    /// The `events-host` role; empty for the reporter.
    pub role: String,
    pub port: u16,
    bin: PathBuf,
    env: BTreeMap<String, String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Host {
    pub fn spawn(label: &str, role: &str, env: BTreeMap<String, String>, logdir: &Path) -> Self {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_events-host"));
        Self::spawn_bin(bin, label, role, env, logdir)
    }

    /// `events-reporter`, built next to `events-host` (`cargo build
    /// --workspace --bins`).
    pub fn spawn_reporter(label: &str, env: BTreeMap<String, String>, logdir: &Path) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_events-host")).with_file_name("events-reporter");
        assert!(
            bin.is_file(),
            "{} missing: run cargo build --workspace --bins first",
            bin.display()
        );
        Self::spawn_bin(bin, label, "", env, logdir)
    }

    fn spawn_bin(
        bin: PathBuf,
        label: &str,
        role: &str,
        env: BTreeMap<String, String>,
        logdir: &Path,
    ) -> Self {
        let port = env.get("PORT").and_then(|p| p.parse().ok()).expect("PORT");
        let mut h = Self {
            label: label.into(),
            role: role.into(),
            port,
            bin,
            env,
            child: None,
            log: logdir.join(format!("{label}.log")),
        };
        h.start();
        h
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.label);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(&self.bin)
            .args((!self.role.is_empty()).then_some(&self.role))
            .env_clear()
            .envs(&self.env)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `/health/ready` to say ready; panics if the process exits.
    pub async fn ready(&mut self, timeout: Duration) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let start = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited with {st} before ready:\n{}",
                    self.label,
                    self.logs()
                );
            }
            if let Ok(r) = http.get(self.url("/health/ready")).send().await {
                if r.json::<Value>().await.is_ok_and(|v| v["ready"] == true) {
                    return;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "{} not ready after {timeout:?}:\n{}",
                self.label,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn sigterm(&self) {
        signal(self.pid(), "TERM");
    }

    /// Waits for the process to exit by itself.
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait")
            {
                self.child = None;
                return st;
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not exit within {timeout:?}:\n{}",
                self.label,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts again (same port and env) after a kill or exit, waits ready.
    pub async fn restart(&mut self) {
        self.kill9();
        self.start();
        self.ready(Duration::from_secs(60)).await;
    }

    pub async fn metrics(&self) -> Metrics {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text");
        Metrics(text)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let logs = self.logs();
            let lines: Vec<&str> = logs.lines().collect();
            eprintln!(
                "---- {} ({}) log tail ----\n{}",
                self.label,
                self.role,
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}
