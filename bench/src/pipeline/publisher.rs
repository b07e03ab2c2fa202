//! The publisher's side of a phase: `events-publisher` spawned against the
//! gateway, then its exit and summary.
use super::{hosts, Env, PhaseFiles, PhaseSpec};
use crate::procfs;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::{
    fs::File,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// The publisher, just spawned.
pub(super) struct StartedPublisher {
    child: Child,
    pub(super) pid: u32,
    /// The phase's clock: every time is counted from here.
    pub(super) t0: Instant,
    t0_wall: DateTime<Utc>,
}

/// Spawns `events-publisher` against the gateway on `port`, writing its
/// ledger, JSON summary and log into the phase's files.
pub(super) fn start_publisher(
    env: &Env,
    spec: &PhaseSpec,
    files: &PhaseFiles,
    port: u16,
) -> Result<StartedPublisher> {
    let mut cmd = Command::new(&env.publisher_bin);
    cmd.args(&spec.publisher_args)
        .arg("--endpoint")
        .arg(format!("http://127.0.0.1:{port}/webhook"))
        .arg("--seed")
        .arg(env.seed.to_string())
        .arg("--ledger")
        .arg(&files.ledger)
        .arg("--json")
        .arg("--no-progress")
        .env_remove("WEBHOOK_SECRET")
        .env_remove("EVENT_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(File::create(&files.publisher_json)?)
        .stderr(File::create(&files.publisher_log)?)
        .kill_on_drop(true);
    let t0 = Instant::now();
    let t0_wall = Utc::now();
    let child = cmd.spawn().context("spawn events-publisher")?;
    let pid = child.id().context("no pid")?;
    hosts::record_pid(env, pid);
    Ok(StartedPublisher {
        child,
        pid,
        t0,
        t0_wall,
    })
}

/// The publisher's run, once it has exited.
pub(super) struct PublisherRun {
    pub(super) summary: events_publisher::Summary,
    /// Its last live /proc reading (peak RSS, CPU).
    pub(super) proc: procfs::ProcSample,
    pub(super) t0_wall: DateTime<Utc>,
    /// Its first POST and its exit, in seconds from `t0`.
    pub(super) t_start: f64,
    pub(super) t_pub_end: f64,
    /// Rows the pipeline should commit: the ledger's ids.
    pub(super) expected: u64,
}

/// Waits for the publisher to exit and reads its summary.
pub(super) async fn wait_publisher(
    mut started: StartedPublisher,
    files: &PhaseFiles,
    tag: &str,
) -> Result<PublisherRun> {
    // Peak RSS of the publisher must be read before it is reaped.
    let mut proc = procfs::ProcSample::default();
    let status = loop {
        // A zombie has no VmHWM any more: keep the last live reading.
        if let Some(s) = procfs::process(started.pid).filter(|s| s.hwm_kb > 0) {
            proc = s;
        }
        tokio::select! {
            st = started.child.wait() => break st?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    let t_pub_end = started.t0.elapsed().as_secs_f64();
    let summary_path = PathBuf::from(format!("{}.summary.json", files.ledger.display()));
    let summary: events_publisher::Summary =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).with_context(|| {
            format!(
                "read {}:\n{}",
                summary_path.display(),
                hosts::log_tail(&files.publisher_log)
            )
        })?)?;
    // The first POST: the publisher's clock runs from then until its exit.
    let t_start = (t_pub_end - summary.elapsed_secs).clamp(0.0, t_pub_end);
    eprintln!(
        "{tag} publisher exited ({status}) after {t_pub_end:.1}s (first POST at {t_start:.1}s); draining"
    );
    let expected = summary
        .ledger
        .as_ref()
        .map(|l| l.ids_written)
        .unwrap_or(summary.sent_valid_unique);
    Ok(PublisherRun {
        summary,
        proc,
        t0_wall: started.t0_wall,
        t_start,
        t_pub_end,
        expected,
    })
}
