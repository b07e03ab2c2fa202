//! (b) The full pipeline: gateway + facebook collector + tiktok collector
//! (like docker-compose), fed by `events-publisher`, measured from outside.
//!
//! Every phase gets a fresh database, fresh JetStream streams and fresh host
//! processes (so each phase's peak RSS is its own). While the publisher runs
//! and until the pipeline has drained, a sampler records once a second: the
//! gateway's accepted-event counter, the collectors' inserted-row counter
//! (incremented after commit; cheaper than `count(*)` on a growing table),
//! JetStream pending, RSS/CPU of every process and machine CPU.
//!
//! The clock starts at the publisher's first POST, not at its spawn: load
//! mode builds all its bodies first. That moment is the publisher's exit
//! minus its summary's `elapsed_secs` (its clock starts when sending does).
//! CPU figures are deltas from then to the end of the drain.
//!
//! With a baseline (`Env::variant == "baseline"`), the same phase runs with
//! another host binary and plugins; databases, streams and files get a
//! `_baseline` suffix.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use sqlx::{Connection, PgConnection};

use crate::{db, metrics, procfs};

mod hosts;
mod measure;
mod publisher;
mod result;
mod sampler;

use hosts::{Names, Proc};
use measure::{round, secs_since, Rates, ServiceCpu, Stored};
use publisher::{start_publisher, wait_publisher, PublisherRun};
pub use result::{HostMetrics, Latency, PhaseResult, ProcResult};
use sampler::{Sample, Sampler};

/// Where things are and how long to wait.
#[derive(Debug, Clone)]
pub struct Env {
    pub server_url: String,
    pub nats_url: String,
    pub host_bin: PathBuf,
    pub publisher_bin: PathBuf,
    pub plugins_dir: PathBuf,
    pub work_dir: PathBuf,
    pub run_id: String,
    pub seed: u64,
    pub drain_timeout: Duration,
    pub host_env: Vec<(String, String)>,
    /// "current", or "baseline" for the before-side of a before/after run.
    pub variant: String,
}

impl Env {
    /// Names this phase's databases, streams and files.
    fn key(&self, phase: &str) -> String {
        if self.variant == "current" {
            phase.to_string()
        } else {
            format!("{phase}_{}", self.variant)
        }
    }
}

/// One publisher run against a fresh pipeline.
#[derive(Debug, Clone)]
pub struct PhaseSpec {
    pub name: String,
    /// Short description for the table.
    pub label: String,
    pub publisher_args: Vec<String>,
    /// The steady-state window starts here (seconds after the publisher starts).
    pub warmup_secs: f64,
}

/// Runs one phase on its own database and streams, and removes them after.
pub async fn run_phase(env: &Env, spec: &PhaseSpec) -> Result<PhaseResult> {
    let key = env.key(&spec.name);
    let names = Names {
        db: format!("{}{}", db::db_prefix(&env.run_id), key),
        stream: format!(
            "{}{}_EVENTS",
            db::stream_prefix(&env.run_id),
            key.to_uppercase()
        ),
        dlq: format!(
            "{}{}_DLQ",
            db::stream_prefix(&env.run_id),
            key.to_uppercase()
        ),
        subjects: format!("bench_ingest_{}_{}", env.run_id, key),
        key,
    };
    db::create_database(&env.server_url, &names.db).await?;
    let result = phase_inner(env, spec, &names).await;
    if let Err(e) = db::drop_database(&env.server_url, &names.db).await {
        eprintln!("[{}] drop database: {e}", names.key);
    }
    // Every stream of this phase (the host may create more than these two).
    let _ = db::delete_streams(
        &env.nats_url,
        &format!(
            "{}{}_",
            db::stream_prefix(&env.run_id),
            names.key.to_uppercase()
        ),
    )
    .await;
    result
}

/// The files a phase leaves in the work directory.
struct PhaseFiles {
    /// The valid event ids the publisher delivered.
    ledger: PathBuf,
    publisher_log: PathBuf,
    publisher_json: PathBuf,
    samples_csv: PathBuf,
}

impl PhaseFiles {
    fn new(env: &Env, names: &Names) -> Self {
        let file = |suffix: &str| env.work_dir.join(format!("{}.{suffix}", names.key));
        Self {
            ledger: file("ids"),
            publisher_log: file("publisher.log"),
            publisher_json: file("publisher.json"),
            samples_csv: file("samples.csv"),
        }
    }
}

async fn phase_inner(env: &Env, spec: &PhaseSpec, names: &Names) -> Result<PhaseResult> {
    let tag = format!("[{}]", names.key);
    eprintln!(
        "{tag} host {}, plugins {}",
        env.host_bin.display(),
        env.plugins_dir.display()
    );
    let http = metrics::client();
    let mut procs = hosts::start(env, names, &http).await?;
    eprintln!(
        "{tag} gateway :{}, collectors :{} :{} ready",
        procs[0].port, procs[1].port, procs[2].port
    );
    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await?);
    // The hosts' PostgreSQL backends so far (startup, migrations): subtracted.
    let mut pg = PgConnection::connect(&db::url(&env.server_url, &names.db)).await?;
    let pg_start = measure::pg_backends_cpu(&mut pg, &names.db).await?;
    let loadavg_start = procfs::loadavg();
    let files = PhaseFiles::new(env, names);

    let started = start_publisher(env, spec, &files, procs[0].port)?;
    let mut pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    pids.push(started.pid);
    let targets = sampler::Targets {
        http: http.clone(),
        js,
        stream: names.stream.clone(),
        db: names.db.clone(),
        ports: procs.iter().map(|p| p.port).collect(),
        pids,
    };
    let sampler = Sampler::start(targets, pg, started.t0);
    eprintln!("{tag} publisher: {}", spec.publisher_args.join(" "));
    let run = wait_publisher(started, &files, &tag).await?;
    drain(env, &tag, &sampler, run.expected, &mut procs).await?;
    let (samples, waits) = sampler.stop().await;

    // Final numbers from the hosts, /proc and the database.
    let col = hosts::scrape_collectors(&http, &procs).await;
    let processes = measure::processes(&procs, &run, &samples);
    let mut conn = PgConnection::connect(&db::url(&env.server_url, &names.db)).await?;
    let pg_cpu = measure::pg_cpu_since(&mut conn, &names.db, &pg_start).await?;
    let services = ServiceCpu::since(&samples, run.t_start);
    let stored = measure::stored(&mut conn, &files.ledger, &tag).await?;
    conn.close().await?;
    let loadavg_end = procfs::loadavg();
    hosts::stop(&mut procs).await;

    sampler::write_csv(&files.samples_csv, &samples)?;
    let measured = Measured {
        rates: Rates::of(&samples, spec.warmup_secs, &run),
        machine_busy: measure::machine_busy(&samples, run.t_start),
        span: measure::span(&samples, run.t_start),
        metrics: measure::host_metrics(&col, stored.rows),
        run,
        stored,
        processes,
        pg_cpu,
        services,
        waits,
        loadavg: (loadavg_start, loadavg_end),
    };
    let result = phase_result(env, spec, measured, &files);
    eprintln!(
        "{tag} {}/{} rows (ledger missing {:?}, extra {:?}), e2e {:.0} ev/s, steady {:.0} offered / {:.0} committed ev/s, POST p50 {} ms p99 {} ms, 5xx {}, CPU µs/event pipeline {:?}",
        result.rows_committed, result.rows_expected, result.ledger_missing, result.ledger_extra, result.e2e_events_per_sec, result.steady_offered_per_sec, result.steady_commit_per_sec, result.post_latency.p50_ms, result.post_latency.p99_ms, result.http_5xx,
        result.cpu_us_per_event.get("pipeline")
    );
    Ok(result)
}

/// Waits until every delivered valid event is committed, or no progress
/// for 30 s, or the drain timeout; fails if a host exits meanwhile.
async fn drain(
    env: &Env,
    tag: &str,
    sampler: &Sampler,
    expected: u64,
    procs: &mut [Proc],
) -> Result<()> {
    let drain_start = Instant::now();
    let mut last_progress = (0.0f64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let last: Sample = sampler.last();
        if last.inserted as u64 >= expected {
            break;
        }
        if last.inserted > last_progress.0 {
            last_progress = (last.inserted, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "{tag} WARNING: no commits for 30 s with {} of {expected} rows",
                last.inserted
            );
            break;
        }
        if drain_start.elapsed() > env.drain_timeout {
            eprintln!(
                "{tag} WARNING: drain timeout with {} of {expected} rows",
                last.inserted
            );
            break;
        }
        hosts::check_running(procs, "while draining")?;
    }
    Ok(())
}

/// Everything measured once the pipeline has drained.
struct Measured {
    run: PublisherRun,
    stored: Stored,
    rates: Rates,
    processes: Vec<ProcResult>,
    pg_cpu: f64,
    services: ServiceCpu,
    machine_busy: f64,
    /// Seconds from the first POST to the last sample.
    span: f64,
    waits: std::collections::BTreeMap<String, u64>,
    loadavg: (String, String),
    metrics: HostMetrics,
}

fn phase_result(env: &Env, spec: &PhaseSpec, m: Measured, files: &PhaseFiles) -> PhaseResult {
    let (summary, rows) = (&m.run.summary, m.stored.rows);
    // From the first POST.
    let first_commit = secs_since(m.run.t0_wall, m.stored.first) - m.run.t_start;
    let last_commit = secs_since(m.run.t0_wall, m.stored.last) - m.run.t_start;
    let pub_end = m.run.t_pub_end - m.run.t_start;
    let ours: f64 = m.processes.iter().map(|p| p.cpu_secs).sum::<f64>()
        + m.pg_cpu
        + m.services.pg_aux
        + m.services.nats;
    let ledger_check = m.stored.ledger_check;
    PhaseResult {
        name: spec.name.clone(),
        variant: env.variant.clone(),
        host_bin: env.host_bin.display().to_string(),
        plugins_dir: env.plugins_dir.display().to_string(),
        label: spec.label.clone(),
        publisher_args: spec.publisher_args.join(" "),
        publisher_elapsed_secs: round(summary.elapsed_secs, 1),
        publisher_start_secs: round(m.run.t_start, 1),
        posts: summary.posts,
        posts_ok: summary.posts_ok,
        events_sent: summary.sent,
        gateway_accepted: summary.accepted,
        gateway_rejected: summary.rejected,
        http_5xx: http_5xx(summary),
        http_errors: summary.http_errors.clone(),
        transport_errors: summary.transport_errors,
        post_latency: Latency {
            p50_ms: summary.latency.p50_ms,
            p90_ms: summary.latency.p90_ms,
            p99_ms: summary.latency.p99_ms,
            max_ms: summary.latency.max_ms,
        },
        publisher_events_per_sec: round(summary.events_per_sec, 0),
        rows_expected: m.run.expected,
        rows_committed: rows,
        ledger_missing: ledger_check.map(|c| c.0),
        ledger_extra: ledger_check.map(|c| c.1),
        ledger_exact: ledger_check.is_some_and(|c| c.0 == 0) && rows == m.run.expected,
        dead_letters: m.stored.dead_letters,
        first_commit_secs: round(first_commit, 2),
        last_commit_secs: round(last_commit, 2),
        e2e_events_per_sec: if last_commit > 0.0 {
            round(rows as f64 / last_commit, 0)
        } else {
            0.0
        },
        steady_offered_per_sec: round(m.rates.steady_offered, 0),
        steady_commit_per_sec: round(m.rates.steady_commit, 0),
        lag_at_publisher_end_events: m.rates.lag_end,
        drain_secs: round((last_commit - pub_end).max(0.0), 1),
        max_lag_events: m.rates.max_lag,
        backlogged_commit_per_sec: m.rates.backlogged,
        best_10s_commit_per_sec: round(m.rates.best_10s, 0),
        cpu_us_per_event: measure::cpu_per_event(&m.processes, m.pg_cpu, m.services.nats, rows),
        processes: m.processes,
        pg_backends_cpu_secs: round(m.pg_cpu, 1),
        pg_aux_cpu_secs: m.services.pg_aux,
        pg_active_backends: m.waits,
        nats_server_cpu_secs: m.services.nats,
        machine_cpu_busy_pct: round(m.machine_busy, 0),
        other_cpu_pct: round(measure::other_cpu_pct(m.machine_busy, ours, m.span), 0),
        loadavg_start: m.loadavg.0,
        loadavg_end: m.loadavg.1,
        metrics: m.metrics,
        samples_csv: files.samples_csv.display().to_string(),
    }
}

/// POSTs answered with a 5xx status.
fn http_5xx(summary: &events_publisher::Summary) -> u64 {
    summary
        .http_errors
        .iter()
        .filter(|(k, _)| k.starts_with('5'))
        .map(|(_, v)| v)
        .sum()
}
