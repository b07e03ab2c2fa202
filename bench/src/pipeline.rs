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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};
use tokio::process::{Child, Command};

use crate::metrics::{self, Scrape};
use crate::{db, procfs};

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

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcResult {
    pub name: String,
    /// `VmHWM` just before the process was stopped.
    pub peak_rss_mb: f64,
    pub cpu_secs: f64,
    /// Mean CPU over the phase, percent of one core.
    pub cpu_pct: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostMetrics {
    pub db_writes: u64,
    pub db_write_mean_ms: f64,
    /// Seconds spent in DB writes (all collectors) per 1000 committed rows, in ms.
    pub db_write_ms_per_1k_events: f64,
    pub plugin_calls: u64,
    pub plugin_call_mean_ms: f64,
    pub plugin_call_ms_per_1k_events: f64,
    pub batches: u64,
    pub batch_mean_ms: f64,
    pub events_per_db_write: f64,
    pub db_retries: u64,
    pub collector_failed_events: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseResult {
    pub name: String,
    /// "current", or "baseline" (the before-side of a before/after run).
    pub variant: String,
    pub host_bin: String,
    pub plugins_dir: String,
    pub label: String,
    pub publisher_args: String,
    /// Publisher's sending time (its summary's elapsed_secs).
    pub publisher_elapsed_secs: f64,
    /// Seconds from the publisher's spawn to its first POST (load mode
    /// builds every body first). Every other time is counted from the first POST.
    pub publisher_start_secs: f64,
    pub posts: u64,
    pub posts_ok: u64,
    pub events_sent: u64,
    pub gateway_accepted: u64,
    pub gateway_rejected: u64,
    pub http_5xx: u64,
    pub http_errors: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub post_latency: Latency,
    pub publisher_events_per_sec: f64,
    /// Distinct valid eventIds the publisher delivered (its ledger), not
    /// the webhook answers' counts.
    pub rows_expected: u64,
    pub rows_committed: u64,
    /// Ledger ids not in `events` (None when the check failed).
    pub ledger_missing: Option<u64>,
    /// Rows in `events` whose id is not in the ledger (a POST that failed
    /// or timed out at the publisher but was stored anyway).
    pub ledger_extra: Option<u64>,
    /// Every ledger id is in `events` exactly once and rows = expected.
    pub ledger_exact: bool,
    pub dead_letters: u64,
    pub first_commit_secs: f64,
    pub last_commit_secs: f64,
    /// rows committed / (last commit − publisher start).
    pub e2e_events_per_sec: f64,
    /// Events/s stored in JetStream and rows/s committed between warm-up and the publisher's end.
    pub steady_offered_per_sec: f64,
    pub steady_commit_per_sec: f64,
    /// In JetStream but not yet committed when the publisher stopped.
    pub lag_at_publisher_end_events: i64,
    /// Last commit − publisher end.
    pub drain_secs: f64,
    pub max_lag_events: i64,
    /// Commit rate over the seconds with ≥ 20,000 events waiting: the
    /// pipeline's ceiling (None when it never fell that far behind).
    pub backlogged_commit_per_sec: Option<f64>,
    pub best_10s_commit_per_sec: f64,
    pub processes: Vec<ProcResult>,
    /// CPU of the PostgreSQL backends serving the hosts' connections.
    pub pg_backends_cpu_secs: f64,
    /// Once a second, the hosts' active PostgreSQL backends by wait event
    /// ("on CPU" = no wait); "(samples)" is the number of samples.
    pub pg_active_backends: BTreeMap<String, u64>,
    /// CPU of PostgreSQL's walwriter, checkpointer and background writer over the phase.
    pub pg_aux_cpu_secs: f64,
    /// CPU of nats-server over the phase (shared server).
    pub nats_server_cpu_secs: f64,
    pub machine_cpu_busy_pct: f64,
    /// Machine CPU not used by this phase's processes, PostgreSQL or NATS
    /// (other users of the machine, kernel), percent of all cores.
    pub other_cpu_pct: f64,
    /// CPU microseconds per committed row, by component (every process,
    /// "postgres" = the hosts' backends, "nats-server"), "pipeline" = all but
    /// the publisher, "total" = all.
    pub cpu_us_per_event: BTreeMap<String, f64>,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub metrics: HostMetrics,
    pub samples_csv: String,
}

#[derive(Debug, Clone, Default)]
struct Sample {
    t: f64,
    /// Events the gateway has stored in JetStream (see [`Published`]).
    published: f64,
    inserted: f64,
    pending: f64,
    rss_mb: Vec<f64>,
    cpu_secs: Vec<f64>,
    /// CPU seconds so far of nats-server and PostgreSQL's aux processes.
    nats_cpu: f64,
    pg_aux_cpu: f64,
    machine: (u64, u64),
}

struct Proc {
    name: String,
    port: u16,
    pid: u32,
    child: Child,
    log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn record_pid(env: &Env, pid: u32) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.work_dir.join("pids"))
    {
        let _ = writeln!(f, "{pid}");
    }
}

fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

struct Names {
    /// Phase name, plus `_<variant>` unless current.
    key: String,
    db: String,
    stream: String,
    dlq: String,
    subjects: String,
}

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

/// Events the gateway has stored in JetStream so far. A gateway that
/// publishes one message per event (no `gateway_slices_published_total`)
/// moves its counters only when a whole POST is acked, so the events
/// stream's last sequence is used. A gateway that publishes slices of many
/// events counts `gateway_events_accepted_total` per slice acked: that is used.
#[derive(Default)]
struct Published {
    sliced: bool,
    last: f64,
}

impl Published {
    fn update(&mut self, gateway: Option<&Scrape>, last_sequence: Option<u64>) -> f64 {
        if let Some(g) = gateway {
            self.sliced |= g.0.contains_key("gateway_slices_published_total");
        }
        let now = if self.sliced {
            gateway.map(|g| g.get("gateway_events_accepted_total"))
        } else {
            last_sequence.map(|s| s as f64)
        };
        // A failed scrape keeps the previous value.
        self.last = now.unwrap_or(self.last);
        self.last
    }
}

async fn take_sample(
    http: &reqwest::Client,
    js: &async_nats::jetstream::Context,
    stream: &str,
    ports: &[u16],
    pids: &[u32],
    t0: Instant,
    published: &mut Published,
) -> Sample {
    let mut col = Scrape::default();
    // ports[0] is the gateway, the rest are collectors.
    for port in &ports[1..] {
        if let Some(s) = metrics::scrape(http, *port).await {
            col.merge(&s);
        }
    }
    let gateway = metrics::scrape(http, ports[0]).await;
    let last_sequence = js
        .get_stream(stream)
        .await
        .ok()
        .map(|s| s.cached_info().state.last_sequence);
    let published = published.update(gateway.as_ref(), last_sequence);
    let procs: Vec<procfs::ProcSample> = pids
        .iter()
        .map(|p| procfs::process(*p).unwrap_or_default())
        .collect();
    let services = procfs::service_cpu();
    Sample {
        nats_cpu: service_sum(&services, "nats-server"),
        pg_aux_cpu: service_sum(&services, "postgres-aux"),
        t: t0.elapsed().as_secs_f64(),
        published,
        inserted: col.get("collector_events_inserted_total"),
        pending: col.get("collector_consumer_pending"),
        rss_mb: procs.iter().map(|p| p.rss_kb as f64 / 1024.0).collect(),
        cpu_secs: procs.iter().map(|p| p.cpu_secs).collect(),
        machine: procfs::machine_cpu().unwrap_or_default(),
    }
}

fn service_sum(v: &[(String, f64)], name: &str) -> f64 {
    v.iter().filter(|(n, _)| n == name).map(|(_, c)| c).sum()
}

/// `f` at time `t`, linearly interpolated between the samples around it
/// (the first or last sample outside their range).
fn value_at(samples: &[Sample], t: f64, f: impl Fn(&Sample) -> f64) -> f64 {
    let Some(first) = samples.first() else {
        return 0.0;
    };
    if t <= first.t {
        return f(first);
    }
    for w in samples.windows(2) {
        if w[1].t >= t {
            let span = (w[1].t - w[0].t).max(1e-9);
            return f(&w[0]) + (f(&w[1]) - f(&w[0])) * (t - w[0].t) / span;
        }
    }
    samples.last().map(f).unwrap_or(0.0)
}

fn cpu_per_event(procs: &[ProcResult], pg: f64, nats: f64, rows: u64) -> BTreeMap<String, f64> {
    let per = |secs: f64| round(secs * 1e6 / rows.max(1) as f64, 1);
    let mut m: BTreeMap<String, f64> = procs
        .iter()
        .map(|p| (p.name.clone(), per(p.cpu_secs)))
        .collect();
    m.insert("postgres".into(), per(pg));
    m.insert("nats-server".into(), per(nats));
    let hosts: f64 = procs
        .iter()
        .filter(|p| p.name != "publisher")
        .map(|p| p.cpu_secs)
        .sum();
    m.insert("pipeline".into(), per(hosts + pg + nats));
    m.insert(
        "total".into(),
        per(procs.iter().map(|p| p.cpu_secs).sum::<f64>() + pg + nats),
    );
    m
}

/// CPU seconds so far of every backend connected to `db` but this one.
async fn pg_backends_cpu(conn: &mut PgConnection, db: &str) -> Result<BTreeMap<i32, f64>> {
    let pids: Vec<i32> = sqlx::query(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    Ok(pids
        .into_iter()
        .filter_map(|p| Some((p, procfs::cpu_secs(p as u32)?)))
        .collect())
}

/// Ledger ids missing from `events`, and `events` rows not in the ledger.
async fn check_ledger(conn: &mut PgConnection, ledger: &Path) -> Result<(u64, u64)> {
    let ids = std::fs::read(ledger).with_context(|| format!("read {}", ledger.display()))?;
    sqlx::Executor::execute(
        &mut *conn,
        "CREATE TEMP TABLE bench_ledger (event_id text NOT NULL)",
    )
    .await?;
    let mut copy = conn
        .copy_in_raw("COPY bench_ledger (event_id) FROM STDIN")
        .await?;
    for chunk in ids.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM (SELECT DISTINCT event_id FROM bench_ledger) l
                 WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = l.event_id)),
                (SELECT count(*) FROM events e
                 WHERE NOT EXISTS (SELECT 1 FROM bench_ledger l WHERE l.event_id = e.event_id))",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64))
}

fn secs_since(t0: DateTime<Utc>, t: Option<DateTime<Utc>>) -> f64 {
    t.map(|t| (t - t0).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .unwrap_or(0.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

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

async fn phase_inner(env: &Env, spec: &PhaseSpec, names: &Names) -> Result<PhaseResult> {
    let tag = format!("[{}]", names.key);
    eprintln!(
        "{tag} host {}, plugins {}",
        env.host_bin.display(),
        env.plugins_dir.display()
    );
    let http = metrics::client();
    let mut procs = vec![
        spawn_host(env, names, "gateway", "gateway", None)?,
        spawn_host(env, names, "fb-collector", "collector", Some("facebook"))?,
        spawn_host(env, names, "ttk-collector", "collector", Some("tiktok"))?,
    ];
    wait_ready(&http, &mut procs).await?;
    eprintln!(
        "{tag} gateway :{}, collectors :{} :{} ready",
        procs[0].port, procs[1].port, procs[2].port
    );

    let ports: Vec<u16> = procs.iter().map(|p| p.port).collect();
    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await?);
    // The hosts' PostgreSQL backends so far (startup, migrations): subtracted.
    let mut pg = PgConnection::connect(&db::url(&env.server_url, &names.db)).await?;
    let pg_start = pg_backends_cpu(&mut pg, &names.db).await?;
    let mut pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let loadavg_start = procfs::loadavg();
    let ledger = env.work_dir.join(format!("{}.ids", names.key));
    let pub_log = env.work_dir.join(format!("{}.publisher.log", names.key));
    let mut cmd = Command::new(&env.publisher_bin);
    cmd.args(&spec.publisher_args)
        .arg("--endpoint")
        .arg(format!("http://127.0.0.1:{}/webhook", procs[0].port))
        .arg("--seed")
        .arg(env.seed.to_string())
        .arg("--ledger")
        .arg(&ledger)
        .arg("--json")
        .arg("--no-progress")
        .env_remove("WEBHOOK_SECRET")
        .env_remove("EVENT_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(File::create(
            env.work_dir.join(format!("{}.publisher.json", names.key)),
        )?)
        .stderr(File::create(&pub_log)?)
        .kill_on_drop(true);

    // Sampler: once a second until told to stop.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let waits: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let t0_wall = Utc::now();
    let mut publisher = cmd.spawn().context("spawn events-publisher")?;
    let pub_pid = publisher.id().context("no pid")?;
    record_pid(env, pub_pid);
    pids.push(pub_pid);
    let sampler = {
        let (samples, stop, http, ports, pids) = (
            samples.clone(),
            stop.clone(),
            http.clone(),
            ports.clone(),
            pids.clone(),
        );
        let (js, stream) = (js.clone(), names.stream.clone());
        let (waits, db_name) = (waits.clone(), names.db.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut published = Published::default();
            loop {
                tick.tick().await;
                let s = take_sample(&http, &js, &stream, &ports, &pids, t0, &mut published).await;
                samples.lock().unwrap().push(s);
                // What the hosts' PostgreSQL backends are doing right now.
                if let Ok(rows) = sqlx::query(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'",
                )
                .bind(&db_name)
                .fetch_all(&mut pg)
                .await
                {
                    let mut w = waits.lock().unwrap();
                    *w.entry("(samples)".to_string()).or_insert(0) += 1;
                    for r in rows {
                        *w.entry(r.get::<String, _>(0)).or_insert(0) += 1;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        })
    };
    eprintln!("{tag} publisher: {}", spec.publisher_args.join(" "));

    // Peak RSS of the publisher must be read before it is reaped.
    let mut pub_proc = procfs::ProcSample::default();
    let status = loop {
        // A zombie has no VmHWM any more: keep the last live reading.
        if let Some(s) = procfs::process(pub_pid).filter(|s| s.hwm_kb > 0) {
            pub_proc = s;
        }
        tokio::select! {
            st = publisher.wait() => break st?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    let t_pub_end = t0.elapsed().as_secs_f64();
    let summary_path = PathBuf::from(format!("{}.summary.json", ledger.display()));
    let summary: events_publisher::Summary =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).with_context(|| {
            format!("read {}:\n{}", summary_path.display(), log_tail(&pub_log))
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

    // Drain: until every delivered valid event is committed, or no progress.
    let drain_start = Instant::now();
    let mut last_progress = (0.0f64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let last = samples.lock().unwrap().last().cloned().unwrap_or_default();
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
        for p in procs.iter_mut() {
            if let Some(st) = p.child.try_wait()? {
                bail!(
                    "{} exited while draining ({st}):\n{}",
                    p.name,
                    log_tail(&p.log)
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let samples = std::mem::take(&mut *samples.lock().unwrap());

    // Final numbers from the hosts, /proc and the database.
    let mut col = Scrape::default();
    for p in &procs[1..] {
        if let Some(s) = metrics::scrape(&http, p.port).await {
            col.merge(&s);
        }
    }
    // CPU from the first POST (interpolated between samples) to now.
    let mut proc_results = Vec::new();
    let t_end = samples.last().map(|s| s.t).unwrap_or(t_start);
    let span = (t_end - t_start).max(1.0);
    let cpu_then = |i: usize| {
        value_at(&samples, t_start, |s| {
            s.cpu_secs.get(i).copied().unwrap_or(0.0)
        })
    };
    for (i, p) in procs.iter().enumerate() {
        let s = procfs::process(p.pid).unwrap_or_default();
        let cpu = (s.cpu_secs - cpu_then(i)).max(0.0);
        proc_results.push(ProcResult {
            name: p.name.clone(),
            peak_rss_mb: round(s.hwm_kb as f64 / 1024.0, 1),
            cpu_secs: round(cpu, 2),
            cpu_pct: round(cpu / span * 100.0, 0),
        });
    }
    // The publisher: its last live reading, less what building bodies took.
    let pub_cpu = (pub_proc.cpu_secs - cpu_then(procs.len())).max(0.0);
    proc_results.push(ProcResult {
        name: "publisher".into(),
        peak_rss_mb: round(pub_proc.hwm_kb as f64 / 1024.0, 1),
        cpu_secs: round(pub_cpu, 2),
        cpu_pct: round(pub_cpu / (t_pub_end - t_start).max(1.0) * 100.0, 0),
    });
    let mut conn = PgConnection::connect(&db::url(&env.server_url, &names.db)).await?;
    let pg_end = pg_backends_cpu(&mut conn, &names.db).await?;
    let pg_cpu: f64 = pg_end
        .iter()
        .map(|(pid, c)| (c - pg_start.get(pid).copied().unwrap_or(0.0)).max(0.0))
        .sum();
    // Shared services (other users' load included), from the first POST.
    let services_end = procfs::service_cpu();
    let row = sqlx::query("SELECT count(*), min(received_at), max(received_at) FROM events")
        .fetch_one(&mut conn)
        .await?;
    let rows: i64 = row.get(0);
    let first: Option<DateTime<Utc>> = row.get(1);
    let last: Option<DateTime<Utc>> = row.get(2);
    let dead: i64 = sqlx::query("SELECT count(*) FROM dead_letters")
        .fetch_one(&mut conn)
        .await?
        .get(0);
    // Not timed: every ledger id in `events`, and nothing else.
    let ledger_check = match check_ledger(&mut conn, &ledger).await {
        Ok(x) => Some(x),
        Err(e) => {
            eprintln!("{tag} ledger check failed: {e:#}");
            None
        }
    };
    conn.close().await?;
    let loadavg_end = procfs::loadavg();
    let nats_cpu = round(
        service_sum(&services_end, "nats-server") - value_at(&samples, t_start, |s| s.nats_cpu),
        2,
    );
    let pg_aux_cpu = round(
        service_sum(&services_end, "postgres-aux") - value_at(&samples, t_start, |s| s.pg_aux_cpu),
        2,
    );
    for p in procs.iter_mut() {
        let _ = p.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
    }

    // Derived numbers.
    let rows = rows as u64;
    // From the first POST.
    let first_commit = secs_since(t0_wall, first) - t_start;
    let last_commit = secs_since(t0_wall, last) - t_start;
    let pub_end = t_pub_end - t_start;
    let lag = |s: &Sample| (s.published - s.inserted) as i64;
    let at_or_after = |t: f64| samples.iter().find(|s| s.t >= t).or(samples.last());
    let at_or_before = |t: f64| samples.iter().rev().find(|s| s.t <= t).or(samples.first());
    let (a, b) = (
        at_or_after(t_start + spec.warmup_secs.min(pub_end / 2.0)),
        at_or_before(t_pub_end),
    );
    let (steady_offered, steady_commit, lag_end) = match (a, b) {
        (Some(a), Some(b)) if b.t > a.t => (
            (b.published - a.published) / (b.t - a.t),
            (b.inserted - a.inserted) / (b.t - a.t),
            lag(b),
        ),
        _ => (0.0, 0.0, 0),
    };
    let (mut bl_events, mut bl_secs, mut best10) = (0.0, 0.0, 0.0f64);
    for (i, w) in samples.windows(2).enumerate() {
        if lag(&w[0]) >= 20_000 {
            bl_events += w[1].inserted - w[0].inserted;
            bl_secs += w[1].t - w[0].t;
        }
        if let Some(j) = samples[i..].iter().find(|s| s.t - w[0].t >= 10.0) {
            best10 = best10.max((j.inserted - w[0].inserted) / (j.t - w[0].t));
        }
    }
    let machine_busy = match (at_or_before(t_start), samples.last()) {
        (Some(a), Some(b)) if b.machine.1 > a.machine.1 => {
            (b.machine.0 - a.machine.0) as f64 / (b.machine.1 - a.machine.1) as f64 * 100.0
        }
        _ => 0.0,
    };
    // CPU the machine spent on anything but this phase's processes and the
    // services' share (other engineers' builds and tests, the kernel).
    let ours: f64 =
        proc_results.iter().map(|p| p.cpu_secs).sum::<f64>() + pg_cpu + pg_aux_cpu + nats_cpu;
    let capacity = span * procfs::nproc() as f64;
    let other_cpu_pct = ((machine_busy / 100.0 * capacity - ours) / capacity * 100.0).max(0.0);
    let (db_mean, db_n) = col.hist_mean_ms("collector_db_write_duration_seconds");
    let (pl_mean, pl_n) = col.hist_mean_ms("plugin_call_duration_seconds");
    let (bt_mean, bt_n) = col.hist_mean_ms("collector_batch_duration_seconds");
    let per_1k = |sum_secs: f64| {
        if rows > 0 {
            round(sum_secs * 1e6 / rows as f64, 2)
        } else {
            0.0
        }
    };
    let host_metrics = HostMetrics {
        db_writes: db_n,
        db_write_mean_ms: round(db_mean, 2),
        db_write_ms_per_1k_events: per_1k(col.hist_sum("collector_db_write_duration_seconds")),
        plugin_calls: pl_n,
        plugin_call_mean_ms: round(pl_mean, 2),
        plugin_call_ms_per_1k_events: per_1k(col.hist_sum("plugin_call_duration_seconds")),
        batches: bt_n,
        batch_mean_ms: round(bt_mean, 2),
        events_per_db_write: if db_n > 0 {
            round(rows as f64 / db_n as f64, 0)
        } else {
            0.0
        },
        db_retries: col.get("collector_db_retries_total") as u64,
        collector_failed_events: col.get("collector_events_failed_total") as u64,
    };

    // Per-second series for later inspection (not part of the results file).
    let csv = env.work_dir.join(format!("{}.samples.csv", names.key));
    let mut f = File::create(&csv)?;
    writeln!(f, "t,published,inserted,lag,pending,rss_gateway_mb,rss_fb_mb,rss_ttk_mb,rss_publisher_mb,cpu_gateway_s,cpu_fb_s,cpu_ttk_s,cpu_publisher_s,cpu_nats_s")?;
    for s in &samples {
        let v = |v: &Vec<f64>, i: usize| v.get(i).copied().unwrap_or(0.0);
        writeln!(
            f,
            "{:.1},{},{},{},{},{:.0},{:.0},{:.0},{:.0},{:.1},{:.1},{:.1},{:.1},{:.1}",
            s.t,
            s.published,
            s.inserted,
            lag(s),
            s.pending,
            v(&s.rss_mb, 0),
            v(&s.rss_mb, 1),
            v(&s.rss_mb, 2),
            v(&s.rss_mb, 3),
            v(&s.cpu_secs, 0),
            v(&s.cpu_secs, 1),
            v(&s.cpu_secs, 2),
            v(&s.cpu_secs, 3),
            s.nats_cpu
        )?;
    }

    let http_5xx = summary
        .http_errors
        .iter()
        .filter(|(k, _)| k.starts_with('5'))
        .map(|(_, v)| v)
        .sum();
    let result = PhaseResult {
        name: spec.name.clone(),
        variant: env.variant.clone(),
        host_bin: env.host_bin.display().to_string(),
        plugins_dir: env.plugins_dir.display().to_string(),
        label: spec.label.clone(),
        publisher_args: spec.publisher_args.join(" "),
        publisher_elapsed_secs: round(summary.elapsed_secs, 1),
        publisher_start_secs: round(t_start, 1),
        posts: summary.posts,
        posts_ok: summary.posts_ok,
        events_sent: summary.sent,
        gateway_accepted: summary.accepted,
        gateway_rejected: summary.rejected,
        http_5xx,
        http_errors: summary.http_errors.clone(),
        transport_errors: summary.transport_errors,
        post_latency: Latency {
            p50_ms: summary.latency.p50_ms,
            p90_ms: summary.latency.p90_ms,
            p99_ms: summary.latency.p99_ms,
            max_ms: summary.latency.max_ms,
        },
        publisher_events_per_sec: round(summary.events_per_sec, 0),
        rows_expected: expected,
        rows_committed: rows,
        ledger_missing: ledger_check.map(|c| c.0),
        ledger_extra: ledger_check.map(|c| c.1),
        ledger_exact: ledger_check.is_some_and(|c| c.0 == 0) && rows == expected,
        dead_letters: dead as u64,
        first_commit_secs: round(first_commit, 2),
        last_commit_secs: round(last_commit, 2),
        e2e_events_per_sec: if last_commit > 0.0 {
            round(rows as f64 / last_commit, 0)
        } else {
            0.0
        },
        steady_offered_per_sec: round(steady_offered, 0),
        steady_commit_per_sec: round(steady_commit, 0),
        lag_at_publisher_end_events: lag_end,
        drain_secs: round((last_commit - pub_end).max(0.0), 1),
        max_lag_events: samples.iter().map(lag).max().unwrap_or(0),
        backlogged_commit_per_sec: (bl_secs >= 5.0).then(|| round(bl_events / bl_secs, 0)),
        best_10s_commit_per_sec: round(best10, 0),
        cpu_us_per_event: cpu_per_event(&proc_results, pg_cpu, nats_cpu, rows),
        processes: proc_results,
        pg_backends_cpu_secs: round(pg_cpu, 1),
        pg_aux_cpu_secs: pg_aux_cpu,
        pg_active_backends: std::mem::take(&mut *waits.lock().unwrap()),
        nats_server_cpu_secs: nats_cpu,
        machine_cpu_busy_pct: round(machine_busy, 0),
        other_cpu_pct: round(other_cpu_pct, 0),
        loadavg_start,
        loadavg_end,
        metrics: host_metrics,
        samples_csv: csv.display().to_string(),
    };
    eprintln!(
        "{tag} {rows}/{expected} rows (ledger missing {:?}, extra {:?}), e2e {:.0} ev/s, steady {:.0} offered / {:.0} committed ev/s, POST p50 {} ms p99 {} ms, 5xx {}, CPU µs/event pipeline {:?}",
        result.ledger_missing, result.ledger_extra, result.e2e_events_per_sec, steady_offered, steady_commit, result.post_latency.p50_ms, result.post_latency.p99_ms, http_5xx,
        result.cpu_us_per_event.get("pipeline")
    );
    Ok(result)
}
