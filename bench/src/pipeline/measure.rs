//! The phase's final numbers, from /proc, the database, the samples and
//! the collectors' metrics: CPU per process and per event, what was
//! committed, the commit rates.
use super::result::{HostMetrics, ProcResult};
use super::sampler::{lag, service_sum, value_at, Sample};
use super::{hosts::Proc, PublisherRun};
use crate::{metrics::Scrape, procfs};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use std::{collections::BTreeMap, path::Path};

/// Seconds from the first POST to the last sample (at least 1).
pub(super) fn span(samples: &[Sample], t_start: f64) -> f64 {
    let t_end = samples.last().map(|s| s.t).unwrap_or(t_start);
    (t_end - t_start).max(1.0)
}

/// CPU and peak RSS of every host, then the publisher, from the first POST
/// (the CPU then interpolated between samples) to now.
pub(super) fn processes(procs: &[Proc], run: &PublisherRun, samples: &[Sample]) -> Vec<ProcResult> {
    let span = span(samples, run.t_start);
    let cpu_then = |i: usize| {
        value_at(samples, run.t_start, |s| {
            s.cpu_secs.get(i).copied().unwrap_or(0.0)
        })
    };
    let mut results = Vec::new();
    for (i, p) in procs.iter().enumerate() {
        let s = procfs::process(p.pid).unwrap_or_default();
        let cpu = (s.cpu_secs - cpu_then(i)).max(0.0);
        results.push(ProcResult {
            name: p.name.clone(),
            peak_rss_mb: round(s.hwm_kb as f64 / 1024.0, 1),
            cpu_secs: round(cpu, 2),
            cpu_pct: round(cpu / span * 100.0, 0),
        });
    }
    // The publisher: its last live reading, less what building bodies took.
    let pub_cpu = (run.proc.cpu_secs - cpu_then(procs.len())).max(0.0);
    results.push(ProcResult {
        name: "publisher".into(),
        peak_rss_mb: round(run.proc.hwm_kb as f64 / 1024.0, 1),
        cpu_secs: round(pub_cpu, 2),
        cpu_pct: round(pub_cpu / (run.t_pub_end - run.t_start).max(1.0) * 100.0, 0),
    });
    results
}

/// CPU seconds the hosts' PostgreSQL backends used since `start`.
pub(super) async fn pg_cpu_since(
    conn: &mut PgConnection,
    db: &str,
    start: &BTreeMap<i32, f64>,
) -> Result<f64> {
    let end = pg_backends_cpu(conn, db).await?;
    Ok(end
        .iter()
        .map(|(pid, c)| (c - start.get(pid).copied().unwrap_or(0.0)).max(0.0))
        .sum())
}

/// CPU seconds of the shared services over the phase (other users' load
/// included), from the first POST.
pub(super) struct ServiceCpu {
    pub(super) nats: f64,
    pub(super) pg_aux: f64,
}

impl ServiceCpu {
    pub(super) fn since(samples: &[Sample], t_start: f64) -> Self {
        let end = procfs::service_cpu();
        Self {
            nats: round(
                service_sum(&end, "nats-server") - value_at(samples, t_start, |s| s.nats_cpu),
                2,
            ),
            pg_aux: round(
                service_sum(&end, "postgres-aux") - value_at(samples, t_start, |s| s.pg_aux_cpu),
                2,
            ),
        }
    }
}

/// What the database holds at the end.
pub(super) struct Stored {
    pub(super) rows: u64,
    pub(super) first: Option<DateTime<Utc>>,
    pub(super) last: Option<DateTime<Utc>>,
    pub(super) dead_letters: u64,
    /// (ledger ids missing, rows not in the ledger); `None` when the check failed.
    pub(super) ledger_check: Option<(u64, u64)>,
}

pub(super) async fn stored(conn: &mut PgConnection, ledger: &Path, tag: &str) -> Result<Stored> {
    let row = sqlx::query("SELECT count(*), min(received_at), max(received_at) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    let rows: i64 = row.get(0);
    let dead: i64 = sqlx::query("SELECT count(*) FROM dead_letters")
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    // Not timed: every ledger id in `events`, and nothing else.
    let ledger_check = match check_ledger(conn, ledger).await {
        Ok(x) => Some(x),
        Err(e) => {
            eprintln!("{tag} ledger check failed: {e:#}");
            None
        }
    };
    Ok(Stored {
        rows: rows as u64,
        first: row.get(1),
        last: row.get(2),
        dead_letters: dead as u64,
        ledger_check,
    })
}

/// Commit rates and lags, from the samples.
pub(super) struct Rates {
    /// Between warm-up and the publisher's end.
    pub(super) steady_offered: f64,
    pub(super) steady_commit: f64,
    pub(super) lag_end: i64,
    /// Over the seconds with >= 20,000 events waiting (5 s of them at least).
    pub(super) backlogged: Option<f64>,
    pub(super) best_10s: f64,
    pub(super) max_lag: i64,
}

impl Rates {
    pub(super) fn of(samples: &[Sample], warmup_secs: f64, run: &PublisherRun) -> Self {
        let pub_end = run.t_pub_end - run.t_start;
        let at_or_after = |t: f64| samples.iter().find(|s| s.t >= t).or(samples.last());
        let (a, b) = (
            at_or_after(run.t_start + warmup_secs.min(pub_end / 2.0)),
            at_or_before(samples, run.t_pub_end),
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
        Self {
            steady_offered,
            steady_commit,
            lag_end,
            backlogged: (bl_secs >= 5.0).then(|| round(bl_events / bl_secs, 0)),
            best_10s: best10,
            max_lag: samples.iter().map(lag).max().unwrap_or(0),
        }
    }
}

fn at_or_before(samples: &[Sample], t: f64) -> Option<&Sample> {
    samples.iter().rev().find(|s| s.t <= t).or(samples.first())
}

/// Machine CPU busy from the first POST to the last sample, percent of all cores.
pub(super) fn machine_busy(samples: &[Sample], t_start: f64) -> f64 {
    match (at_or_before(samples, t_start), samples.last()) {
        (Some(a), Some(b)) if b.machine.1 > a.machine.1 => {
            (b.machine.0 - a.machine.0) as f64 / (b.machine.1 - a.machine.1) as f64 * 100.0
        }
        _ => 0.0,
    }
}

/// CPU the machine spent on anything but `ours` (this phase's processes and
/// the services' share): other engineers' builds and tests, the kernel.
pub(super) fn other_cpu_pct(machine_busy: f64, ours: f64, span: f64) -> f64 {
    let capacity = span * procfs::nproc() as f64;
    ((machine_busy / 100.0 * capacity - ours) / capacity * 100.0).max(0.0)
}

/// The collectors' histograms and counters, per committed row where it helps.
pub(super) fn host_metrics(col: &Scrape, rows: u64) -> HostMetrics {
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
    HostMetrics {
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
    }
}

/// CPU microseconds per committed row, by component.
pub(super) fn cpu_per_event(
    procs: &[ProcResult],
    pg: f64,
    nats: f64,
    rows: u64,
) -> BTreeMap<String, f64> {
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
pub(super) async fn pg_backends_cpu(
    conn: &mut PgConnection,
    db: &str,
) -> Result<BTreeMap<i32, f64>> {
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

/// Seconds from `t0` to `t` (0 without `t`).
pub(super) fn secs_since(t0: DateTime<Utc>, t: Option<DateTime<Utc>>) -> f64 {
    t.map(|t| (t - t0).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .unwrap_or(0.0)
}

/// `x` rounded to `digits` decimals.
pub(super) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
