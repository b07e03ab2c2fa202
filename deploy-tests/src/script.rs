//! [`ScriptRun`]: one run of a repository script (`scripts/dev.sh`,
//! `scripts/cluster-local.sh`) with an environment of its own, its output
//! in log files, and polling with a deadline.

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::{kill, repo_root};

/// What a run does on drop besides stopping the script: see
/// [`ScriptRun::on_drop`].
type Cleanup = Box<dyn FnOnce(&ScriptRun) + Send>;

/// A script running in the background, stdout and stderr in `dir`
/// (`stdout.log`, `stderr.log`). Drop kills it if it still runs, runs the
/// [`ScriptRun::on_drop`] clean-up, then removes `dir`, or keeps it (and
/// says where) when the test panicked.
pub struct ScriptRun {
    /// The scratch directory: logs, and whatever the caller puts there.
    pub dir: PathBuf,
    script: Child,
    /// The script's file name, for messages.
    name: String,
    /// How long [`ScriptRun::wait_for`] and [`ScriptRun::wait_exit`] wait.
    deadline: Duration,
    /// How many stdout lines [`ScriptRun::logs`] shows.
    log_lines: usize,
    cleanup: Option<Cleanup>,
}

impl ScriptRun {
    /// Runs `script` (relative to the repository) with `args` and only the
    /// variables of `env`, stdin closed.
    pub fn start<K, V>(
        script: &str,
        dir: PathBuf,
        args: &[&str],
        env: impl IntoIterator<Item = (K, V)>,
        deadline: Duration,
        log_lines: usize,
    ) -> Self
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let child = Command::new(repo_root().join(script))
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout.log")).expect("log file"))
            .stderr(File::create(dir.join("stderr.log")).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        let name = script.rsplit('/').next().unwrap_or(script).to_string();
        Self {
            dir,
            script: child,
            name,
            deadline,
            log_lines,
            cleanup: None,
        }
    }

    /// Runs `cleanup` on drop, once the script is stopped and before `dir`
    /// goes: for what the script started and the resources the run owns.
    pub fn on_drop(mut self, cleanup: impl FnOnce(&ScriptRun) + Send + 'static) -> Self {
        self.cleanup = Some(Box::new(cleanup));
        self
    }

    /// The script's stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// The script's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The output so far, for failure messages.
    pub fn logs(&self) -> String {
        let out = self.stdout();
        let lines: Vec<&str> = out.lines().collect();
        format!(
            "--- script stderr ---\n{}\n--- stdout (last {} lines) ---\n{}",
            self.stderr(),
            self.log_lines,
            lines[lines.len().saturating_sub(self.log_lines)..].join("\n")
        )
    }

    /// The exit status, once the script has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.script.try_wait().expect("try_wait")
    }

    /// Sends `signal` (`INT`, `TERM`...) to the script.
    pub fn signal(&self, signal: &str) {
        kill(self.script.id(), signal);
    }

    /// Kills the script if it still runs, and reaps it.
    pub fn stop(&mut self) {
        if self.exited().is_none() {
            self.signal("KILL");
            let _ = self.script.wait();
        }
    }

    /// Polls `check` until it holds; panics with the logs after the
    /// deadline or when the script exits first.
    pub async fn wait_for(&mut self, what: &str, mut check: impl AsyncFnMut(&Self) -> bool) {
        let start = Instant::now();
        while !check(self).await {
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) before {what}\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < self.deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the script to exit; panics with the logs after the deadline.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                start.elapsed() < self.deadline,
                "{} still running {:?} later\n{}",
                self.name,
                self.deadline,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ScriptRun {
    fn drop(&mut self) {
        self.stop();
        if let Some(cleanup) = self.cleanup.take() {
            cleanup(self);
        }
        if std::thread::panicking() {
            eprintln!("{}: logs kept in {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `script` (relative to the repository) with EVENTS_BIN_DIR pointing
/// nowhere: it must exit 2 naming the missing binary and the build command.
pub fn assert_names_missing_binaries(script: &str) {
    let out = Command::new(repo_root().join(script))
        .env("EVENTS_BIN_DIR", "/nonexistent/bin")
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/bin/events-host")
            && err.contains("run cargo build --release --bins first"),
        "{err}"
    );
}
