//! A host under test, in-process (the default) or a subprocess (for the
//! tests about a process), behind one API. Either is killed on drop and
//! its log printed when the test panics.
use super::{
    in_process::InProcess,
    process::{bound_port, Process},
    Metrics,
};
use crate::support::services::signal;
use serde_json::Value;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitStatus,
    time::{Duration, Instant},
};

/// How long a start may take (plugins compiled, streams created).
const START: Duration = Duration::from_secs(60);

enum Run {
    InProcess {
        env: BTreeMap<String, String>,
        app: Option<InProcess>,
    },
    Process(Process),
}

pub struct Host {
    pub label: String,
    /// The `events-host` role; empty for the reporter.
    pub role: String,
    pub port: u16,
    log: PathBuf,
    run: Run,
}

impl Host {
    /// `events-host <role>` in this process, on a port of its own; returns
    /// before it is ready.
    pub fn in_process(
        label: &str,
        role: &str,
        env: BTreeMap<String, String>,
        logdir: &Path,
    ) -> Self {
        let log = logdir.join(format!("{label}.log"));
        let app = InProcess::start(role, &env, 0, &log);
        Self {
            label: label.into(),
            role: role.into(),
            port: app.port,
            log,
            run: Run::InProcess {
                env,
                app: Some(app),
            },
        }
    }

    /// `events-host <role>` as a subprocess on `PORT=0`; returns once its
    /// startup line says where it listens.
    pub async fn subprocess(
        label: &str,
        role: &str,
        env: BTreeMap<String, String>,
        logdir: &Path,
    ) -> Self {
        Self::start_process(label, Process::host(role, env), logdir).await
    }

    /// `events-reporter` as a subprocess, ready.
    pub async fn reporter(label: &str, env: BTreeMap<String, String>, logdir: &Path) -> Self {
        let mut h = Self::start_process(label, Process::reporter(env), logdir).await;
        h.ready(START).await;
        h
    }

    async fn start_process(label: &str, mut process: Process, logdir: &Path) -> Self {
        let log = logdir.join(format!("{label}.log"));
        process.start(0, &log);
        let logs = || std::fs::read_to_string(&log).unwrap_or_default();
        let port = bound_port(logs, || process.try_exited(), START).await;
        Self {
            label: label.into(),
            role: process.role.clone(),
            port,
            log,
            run: Run::Process(process),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The subprocess; panics for an in-process host.
    fn process(&mut self) -> &mut Process {
        match &mut self.run {
            Run::Process(p) => p,
            Run::InProcess { .. } => panic!(
                "{} runs in-process: start it with Pipeline::start_process",
                self.label
            ),
        }
    }

    pub fn pid(&mut self) -> u32 {
        self.process().pid().expect("running")
    }

    /// Why the host stopped by itself, if it did.
    fn ended(&mut self) -> Option<String> {
        match &mut self.run {
            Run::Process(p) => p.try_exited().map(|st| format!("exited with {st}")),
            Run::InProcess { app, .. } => {
                app.as_ref().map_or(Some("stopped".into()), |a| a.ended())
            }
        }
    }

    /// Waits for `/health/ready` to say ready; panics if the host stops.
    pub async fn ready(&mut self, timeout: Duration) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let start = Instant::now();
        loop {
            if let Some(why) = self.ended() {
                panic!("{} {why} before ready:\n{}", self.label, self.logs());
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
        self.process().kill9();
    }

    pub fn sigterm(&mut self) {
        let pid = self.pid();
        signal(pid, "TERM");
    }

    /// Waits for the subprocess to exit by itself.
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.process().try_exited() {
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

    /// Starts again on the same port (a subprocess after a kill or exit; an
    /// in-process host is stopped gracefully first) and waits until ready.
    pub async fn restart(&mut self) {
        match &mut self.run {
            Run::Process(p) => {
                p.kill9();
                p.start(self.port, &self.log);
            }
            Run::InProcess { env, app } => {
                if let Some(mut a) = app.take() {
                    a.stop().await;
                }
                *app = Some(InProcess::start(&self.role, env, self.port, &self.log));
            }
        }
        self.ready(START).await;
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
        match &mut self.run {
            Run::Process(p) => p.kill9(),
            Run::InProcess { app, .. } => drop(app.take()),
        }
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
