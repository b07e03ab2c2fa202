//! `events-host` and `events-reporter` subprocesses, for the tests about a
//! process (signals, SIGKILL, exit codes, its memory, the reporter). They
//! start on `PORT=0` and say where they listen in their startup log line.
use serde_json::Value;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// One binary, its environment and log; the child while it runs.
pub struct Process {
    pub bin: PathBuf,
    /// The `events-host` role; empty for the reporter.
    pub role: String,
    env: BTreeMap<String, String>,
    child: Option<Child>,
}

impl Process {
    pub fn host(role: &str, env: BTreeMap<String, String>) -> Self {
        Self::new(PathBuf::from(env!("CARGO_BIN_EXE_events-host")), role, env)
    }

    /// `events-reporter`, built next to `events-host` (`cargo build
    /// --workspace --bins`).
    pub fn reporter(env: BTreeMap<String, String>) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_events-host")).with_file_name("events-reporter");
        assert!(
            bin.is_file(),
            "{} missing: run cargo build --workspace --bins first",
            bin.display()
        );
        Self::new(bin, "", env)
    }

    fn new(bin: PathBuf, role: &str, env: BTreeMap<String, String>) -> Self {
        Self {
            bin,
            role: role.into(),
            env,
            child: None,
        }
    }

    /// Starts the binary on `port` (0: the system picks one), appending its
    /// output to `log`.
    pub fn start(&mut self, port: u16, log: &Path) {
        assert!(self.child.is_none(), "{} is running", self.bin.display());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(&self.bin)
            .args((!self.role.is_empty()).then_some(&self.role))
            .env_clear()
            .envs(&self.env)
            .env("PORT", port.to_string())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, once the process has exited by itself.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The port in the binary's startup log line: the host's `events-host
/// started`, the reporter's `events-reporter listening`, with the address
/// in a field `addr` (or `address`). `logs` is read again until the line
/// appears; panics with the log after `timeout` or if `exited` says the
/// process is gone.
pub async fn bound_port(
    logs: impl Fn() -> String,
    mut exited: impl FnMut() -> Option<ExitStatus>,
    timeout: Duration,
) -> u16 {
    let start = Instant::now();
    loop {
        if let Some(port) = logs().lines().rev().find_map(startup_port) {
            return port;
        }
        if let Some(st) = exited() {
            panic!("exited with {st} before listening:\n{}", logs());
        }
        assert!(
            start.elapsed() < timeout,
            "no startup line after {timeout:?}:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The port of a startup line: JSON (`events_common::telemetry`, the
/// default) or text (`addr=0.0.0.0:3000`).
fn startup_port(line: &str) -> Option<u16> {
    const STARTED: [&str; 2] = ["events-host started", "events-reporter listening"];
    const FIELDS: [&str; 2] = ["addr", "address"];
    if !STARTED.iter().any(|msg| line.contains(msg)) {
        return None;
    }
    let addr = match serde_json::from_str::<Value>(line) {
        Ok(v) => FIELDS
            .iter()
            .find_map(|f| v["fields"][f].as_str())?
            .to_string(),
        Err(_) => FIELDS.iter().find_map(|f| {
            let (_, rest) = line.split_once(&format!(" {f}="))?;
            Some(
                rest.split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_string(),
            )
        })?,
    };
    addr.parse::<SocketAddr>().ok().map(|a| a.port())
}

#[cfg(test)]
mod tests {
    use super::startup_port;

    #[test]
    fn reads_the_port_of_json_and_text_startup_lines() {
        let json = r#"{"timestamp":"t","level":"INFO","fields":{"message":"events-host started","addr":"0.0.0.0:41234","role":"all"},"target":"events_host::startup"}"#;
        assert_eq!(startup_port(json), Some(41234));
        let reporter =
            r#"{"fields":{"message":"events-reporter listening","address":"0.0.0.0:5000"}}"#;
        assert_eq!(startup_port(reporter), Some(5000));
        let reporter =
            r#"{"fields":{"message":"events-reporter listening","addr":"0.0.0.0:5001"}}"#;
        assert_eq!(startup_port(reporter), Some(5001));
        let text = "2026-01-01T00:00:00Z  INFO events_host::startup: events-host started addr=0.0.0.0:3000 role=\"all\"";
        assert_eq!(startup_port(text), Some(3000));
        assert_eq!(
            startup_port(r#"{"fields":{"message":"plugins loaded"}}"#),
            None
        );
    }
}
