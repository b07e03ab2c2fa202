//! The processes the live checks start, their logs, and the cleanup of
//! everything (processes, database, streams, temp dir) on drop.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use deploy_tests::{block_on_thread, delete_streams, drop_database, env_or};

pub(super) fn secs(name: &str, default: u64) -> Duration {
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

pub(super) struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Everything the test started; Drop kills the processes and removes the
/// database, the JetStream streams and (unless kept) the temp dir, even when
/// the test panics.
pub(super) struct Stack {
    pub(super) dir: PathBuf,
    pub(super) procs: Vec<Proc>,
    pub(super) admin_url: String,
    pub(super) db_name: Option<String>,
    pub(super) nats_url: String,
    pub(super) stream_token: String,
    pub(super) keep: bool,
}

impl Stack {
    pub(super) fn spawn(
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
    pub(super) fn logs(&self, i: usize) -> String {
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
    pub(super) fn all_logs(&self) -> String {
        (0..self.procs.len())
            .map(|i| self.logs(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Panics (with its output) if process `i` has exited.
    pub(super) fn assert_running(&mut self, i: usize) {
        if let Ok(Some(status)) = self.procs[i].child.try_wait() {
            panic!(
                "{} exited early ({status})\n{}",
                self.procs[i].name,
                self.logs(i)
            );
        }
    }

    /// Waits until `url` answers 200, failing early when the process dies.
    pub(super) async fn wait_ready(&mut self, i: usize, url: &str, timeout: Duration) {
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
    pub(super) async fn wait_exit(&mut self, i: usize, timeout: Duration) -> String {
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
pub(super) fn database_url(admin_url: &str, db: &str) -> String {
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
