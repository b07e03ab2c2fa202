//! The phase's host processes: a gateway and one collector per source,
//! started on free ports against this phase's database and streams.
use super::Env;
use crate::{
    db,
    metrics::{self, Scrape},
};
use anyhow::{bail, Context, Result};
use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// Starts the gateway and both collectors (like docker-compose) and waits
/// until they are ready. The gateway comes first.
pub(super) async fn start(env: &Env, names: &Names, http: &reqwest::Client) -> Result<Vec<Proc>> {
    let mut procs = vec![
        spawn_host(env, names, "gateway", "gateway", None)?,
        spawn_host(env, names, "fb-collector", "collector", Some("facebook"))?,
        spawn_host(env, names, "ttk-collector", "collector", Some("tiktok"))?,
    ];
    wait_ready(http, &mut procs).await?;
    Ok(procs)
}

/// Fails when a host process has exited (`while` says during what).
pub(super) fn check_running(procs: &mut [Proc], while_: &str) -> Result<()> {
    for p in procs.iter_mut() {
        if let Some(st) = p.child.try_wait()? {
            bail!("{} exited {while_} ({st}):\n{}", p.name, log_tail(&p.log));
        }
    }
    Ok(())
}

/// The collectors' metrics, summed (a failed scrape counts nothing).
pub(super) async fn scrape_collectors(http: &reqwest::Client, procs: &[Proc]) -> Scrape {
    let mut col = Scrape::default();
    for p in &procs[1..] {
        if let Some(s) = metrics::scrape(http, p.port).await {
            col.merge(&s);
        }
    }
    col
}

/// Kills every host process and waits (10 s at most each) for it to exit.
pub(super) async fn stop(procs: &mut [Proc]) {
    for p in procs.iter_mut() {
        let _ = p.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
    }
}

/// A running host process and where its output goes.
pub(super) struct Proc {
    pub(super) name: String,
    pub(super) port: u16,
    pub(super) pid: u32,
    pub(super) child: Child,
    pub(super) log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Appends `pid` to the run's `pids` file (for cleanup after a crash).
pub(super) fn record_pid(env: &Env, pid: u32) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.work_dir.join("pids"))
    {
        let _ = writeln!(f, "{pid}");
    }
}

/// The last 15 lines of a log, for error messages.
pub(super) fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// This phase's database, streams and subjects.
pub(super) struct Names {
    /// Phase name, plus `_<variant>` unless current.
    pub(super) key: String,
    pub(super) db: String,
    pub(super) stream: String,
    pub(super) dlq: String,
    pub(super) subjects: String,
}

/// Starts one host process (`role`, optionally limited to `sources`).
fn spawn_host(
    env: &Env,
    names: &Names,
    name: &str,
    role: &str,
    sources: Option<&str>,
) -> Result<Proc> {
    let port = free_port()?;
    let log = env.work_dir.join(format!("{}.{name}.log", names.key));
    let out = File::create(&log)?;
    let mut cmd = Command::new(&env.host_bin);
    cmd.arg(role)
        .env_remove("METRICS_PORT")
        .env_remove("WEBHOOK_SECRET")
        .env("APP_ENV", "development")
        .env("LOG_LEVEL", "warn")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", db::url(&env.server_url, &names.db))
        .env("NATS_URL", &env.nats_url)
        .env("NATS_NAME", format!("bench-{name}"))
        .env("JETSTREAM_STREAM", &names.stream)
        .env("JETSTREAM_DLQ_STREAM", &names.dlq)
        .env("JETSTREAM_SUBJECT_PREFIX", &names.subjects)
        .env("PLUGINS_DIR", &env.plugins_dir)
        .env(
            "PLUGINS_CACHE_DIR",
            env.work_dir.join(format!("plugin-cache-{}", env.variant)),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    if let Some(s) = sources {
        cmd.env("COLLECTOR_TYPE", s);
    }
    for (k, v) in &env.host_env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {}", env.host_bin.display()))?;
    let pid = child.id().context("no pid")?;
    record_pid(env, pid);
    Ok(Proc {
        name: name.into(),
        port,
        pid,
        child,
        log,
    })
}

/// Waits until every process answers its readiness probe (120 s at most).
async fn wait_ready(http: &reqwest::Client, procs: &mut [Proc]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for p in procs.iter_mut() {
        loop {
            if let Some(st) = p.child.try_wait()? {
                bail!(
                    "{} exited during startup ({st}):\n{}",
                    p.name,
                    log_tail(&p.log)
                );
            }
            if metrics::ready(http, p.port).await {
                break;
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 120 s:\n{}", p.name, log_tail(&p.log));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}
