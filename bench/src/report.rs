//! The results: one JSON document and a plain-text table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::copy::CopyResult;
use crate::copyreal::CopyRealResult;
use crate::jsfloor::JsFloorResult;
use crate::pipeline::PhaseResult;
use crate::procfs;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub mem_mb: u64,
    pub loadavg_start: String,
    pub loadavg_end: String,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub value: String,
    pub met: Option<bool>,
}

/// The before-side of a before/after run.
#[derive(Debug, Serialize)]
pub struct Baseline {
    pub host_bin: String,
    pub plugins_dir: String,
    pub current_host_bin: String,
    pub current_plugins_dir: String,
}

/// One number of a phase, before (baseline) and after (current).
#[derive(Debug, Serialize)]
pub struct CompareRow {
    pub metric: String,
    pub before: f64,
    pub after: f64,
    /// after ÷ before (None when before is 0).
    pub ratio: Option<f64>,
}

/// A pipeline phase run with both the baseline and the current host.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub phase: String,
    pub rows: Vec<CompareRow>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    /// (a) bare COPY
    pub copy: Option<CopyResult>,
    /// (a″) COPY into the real `events` schema (indexes, constraints, rollup triggers).
    pub copy_real: Option<CopyRealResult>,
    /// Bare JetStream publish rate (the gateway's own ceiling).
    pub jsfloor: Option<JsFloorResult>,
    /// (b) every pipeline phase; with a baseline, each phase twice
    /// (`variant` "baseline", then "current").
    pub phases: Vec<PhaseResult>,
    /// Set when the pipeline phases also ran with a baseline host.
    pub baseline: Option<Baseline>,
    /// (d) baseline vs current, per phase.
    pub comparisons: Vec<Comparison>,
    /// (c) stream-phase e2e events/s ÷ median real-schema COPY rows/s.
    pub ratio_stream_e2e_to_copy_real: Option<f64>,
    /// Load-phase commit rate while backlogged ÷ median real-schema COPY rows/s.
    pub ratio_max_sustained_to_copy_real: Option<f64>,
    /// stream-phase e2e events/s ÷ median bare COPY rows/s.
    pub ratio_stream_e2e_to_copy: Option<f64>,
    /// Load-phase commit rate while backlogged ÷ median bare COPY rows/s.
    pub ratio_max_sustained_to_copy: Option<f64>,
    pub targets: Vec<Target>,
    pub errors: Vec<String>,
}

/// The numbers compared before/after, with after ÷ before.
fn compare(before: &PhaseResult, after: &PhaseResult) -> Vec<CompareRow> {
    let cpu = |p: &PhaseResult, k: &str| p.cpu_us_per_event.get(k).copied().unwrap_or(0.0);
    let rss = |p: &PhaseResult, name: &str| {
        p.processes
            .iter()
            .find(|x| x.name == name)
            .map_or(0.0, |x| x.peak_rss_mb)
    };
    let mut v: Vec<(String, f64, f64)> = vec![
        (
            "E2E events/s".into(),
            before.e2e_events_per_sec,
            after.e2e_events_per_sec,
        ),
        (
            "commit ev/s while backlogged".into(),
            before.backlogged_commit_per_sec.unwrap_or(0.0),
            after.backlogged_commit_per_sec.unwrap_or(0.0),
        ),
        (
            "POST p50 ms".into(),
            before.post_latency.p50_ms,
            after.post_latency.p50_ms,
        ),
        (
            "POST p99 ms".into(),
            before.post_latency.p99_ms,
            after.post_latency.p99_ms,
        ),
    ];
    for (k, label) in [
        ("pipeline", "CPU µs/event gw+col+nats+pg"),
        ("total", "CPU µs/event total (+publisher)"),
        ("gateway", "CPU µs/event gateway"),
        ("fb-collector", "CPU µs/event fb-collector"),
        ("ttk-collector", "CPU µs/event ttk-collector"),
        ("nats-server", "CPU µs/event nats-server"),
        ("postgres", "CPU µs/event PostgreSQL"),
        ("publisher", "CPU µs/event publisher"),
    ] {
        v.push((label.into(), cpu(before, k), cpu(after, k)));
    }
    v.push((
        "gateway peak RSS MB".into(),
        rss(before, "gateway"),
        rss(after, "gateway"),
    ));
    v.push((
        "HTTP 5xx".into(),
        before.http_5xx as f64,
        after.http_5xx as f64,
    ));
    v.push((
        "rows committed".into(),
        before.rows_committed as f64,
        after.rows_committed as f64,
    ));
    v.push((
        "rows expected (ledger)".into(),
        before.rows_expected as f64,
        after.rows_expected as f64,
    ));
    v.into_iter()
        .map(|(metric, before, after)| CompareRow {
            metric,
            before,
            after,
            ratio: (before != 0.0).then(|| (after / before * 1000.0).round() / 1000.0),
        })
        .collect()
}

impl Report {
    pub fn new() -> Self {
        Self {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine: Machine {
                cores: procfs::nproc(),
                mem_mb: procfs::mem_total_mb(),
                loadavg_start: procfs::loadavg(),
                loadavg_end: String::new(),
            },
            copy: None,
            copy_real: None,
            jsfloor: None,
            phases: Vec::new(),
            baseline: None,
            comparisons: Vec::new(),
            ratio_stream_e2e_to_copy_real: None,
            ratio_max_sustained_to_copy_real: None,
            ratio_stream_e2e_to_copy: None,
            ratio_max_sustained_to_copy: None,
            targets: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The current host's run of phase `name`.
    fn phase(&self, name: &str) -> Option<&PhaseResult> {
        self.current().find(|p| p.name == name)
    }

    fn current(&self) -> impl Iterator<Item = &PhaseResult> {
        self.phases.iter().filter(|p| p.variant == "current")
    }

    fn baseline_of(&self, name: &str) -> Option<&PhaseResult> {
        self.phases
            .iter()
            .find(|p| p.name == name && p.variant == "baseline")
    }

    /// Ratios, before/after comparisons and targets.
    pub fn finish(&mut self) {
        self.machine.loadavg_end = procfs::loadavg();
        let ratio_to = |floor: Option<f64>, x: f64| {
            floor
                .filter(|c| *c > 0.0)
                .map(|c| (x / c * 1000.0).round() / 1000.0)
        };
        let bare = self.copy.as_ref().map(|c| c.median_rows_per_sec);
        let real = self.copy_real.as_ref().map(|c| c.median_rows_per_sec);
        let stream_e2e = self.phase("stream").map(|p| p.e2e_events_per_sec);
        let max_sustained = self
            .phase("load")
            .map(|p| p.backlogged_commit_per_sec.unwrap_or(p.e2e_events_per_sec));
        self.ratio_stream_e2e_to_copy_real = stream_e2e.and_then(|x| ratio_to(real, x));
        self.ratio_max_sustained_to_copy_real = max_sustained.and_then(|x| ratio_to(real, x));
        self.ratio_stream_e2e_to_copy = stream_e2e.and_then(|x| ratio_to(bare, x));
        self.ratio_max_sustained_to_copy = max_sustained.and_then(|x| ratio_to(bare, x));

        self.comparisons = self
            .current()
            .filter_map(|after| {
                let before = self.baseline_of(&after.name)?;
                Some(Comparison {
                    phase: after.name.clone(),
                    rows: compare(before, after),
                })
            })
            .collect();

        let mut t = Vec::new();
        // Sustained capacity is the load phase's (offered above capacity);
        // the stream phase is bounded by what the publisher offers.
        let sustained = max_sustained
            .zip(self.ratio_max_sustained_to_copy_real)
            .map(|(x, r)| ("load", x, r))
            .or_else(|| {
                stream_e2e
                    .zip(self.ratio_stream_e2e_to_copy_real)
                    .map(|(x, r)| ("stream", x, r))
            });
        if let (Some((phase, x, r)), Some(c)) = (sustained, real) {
            t.push(Target {
                name: "sustained E2E >= 0.5 x real-schema COPY floor".into(),
                value: format!("{phase}: {x:.0} ev/s = {r:.2} x {c:.0} rows/s"),
                met: Some(r >= 0.5),
            });
        }
        if let Some(p) = self.phase("stream") {
            t.push(Target {
                name: "stream: pipeline kept up (lag at publisher end < 1 s of traffic)".into(),
                value: format!(
                    "lag {} events, drained {:.1} s after",
                    p.lag_at_publisher_end_events, p.drain_secs
                ),
                met: Some(
                    (p.lag_at_publisher_end_events as f64) < p.steady_offered_per_sec.max(1.0),
                ),
            });
        }
        let current: Vec<&PhaseResult> = self.current().collect();
        // One line per target over every current phase: "stream 1.2 / load 3.4".
        let every = |name: &str,
                     value: &dyn Fn(&PhaseResult) -> String,
                     ok: &dyn Fn(&PhaseResult) -> bool| {
            (!current.is_empty()).then(|| Target {
                name: name.into(),
                value: current
                    .iter()
                    .map(|p| format!("{} {}", p.name, value(p)))
                    .collect::<Vec<_>>()
                    .join(" / "),
                met: Some(current.iter().all(|p| ok(p))),
            })
        };
        let cpu = |p: &PhaseResult, k: &str| p.cpu_us_per_event.get(k).copied().unwrap_or(0.0);
        t.extend(every(
            "nats-server CPU <= 2 µs/event (every phase)",
            &|p| format!("{:.1}", cpu(p, "nats-server")),
            &|p| cpu(p, "nats-server") <= 2.0,
        ));
        if self.baseline.is_some() {
            let with_base: Vec<(&PhaseResult, &PhaseResult)> = current
                .iter()
                .filter_map(|p| Some((self.baseline_of(&p.name)?, *p)))
                .collect();
            if !with_base.is_empty() {
                t.push(Target {
                    name: "CPU/event (gateway+collectors+nats-server+PostgreSQL) <= 0.5 x baseline (every phase)".into(),
                    value: with_base
                        .iter()
                        .map(|(b, a)| {
                            format!(
                                "{} {:.1}/{:.1} µs = {:.2}",
                                a.name,
                                cpu(a, "pipeline"),
                                cpu(b, "pipeline"),
                                cpu(a, "pipeline") / cpu(b, "pipeline").max(1e-9)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" / "),
                    met: Some(
                        with_base
                            .iter()
                            .all(|(b, a)| cpu(a, "pipeline") <= 0.5 * cpu(b, "pipeline")),
                    ),
                });
            }
        }
        if let Some(p) = self.phase("post50k") {
            t.push(Target {
                name: "post50k: 50,000-event POST p99 <= 1 s".into(),
                value: format!("{:.0} ms", p.post_latency.p99_ms),
                met: Some(p.post_latency.p99_ms <= 1000.0),
            });
        }
        let gw_rss = |p: &PhaseResult| {
            p.processes
                .iter()
                .find(|x| x.name == "gateway")
                .map_or(0.0, |x| x.peak_rss_mb)
        };
        t.extend(every(
            "gateway peak RSS <= 300 MB (every phase)",
            &|p| format!("{:.0} MB", gw_rss(p)),
            &|p| gw_rss(p) <= 300.0,
        ));
        t.extend(every(
            "no 5xx (every phase, incl. max rate)",
            &|p| p.http_5xx.to_string(),
            &|p| p.http_5xx == 0,
        ));
        t.extend(every(
            "ledger exact: every delivered valid eventId in events once, rows = expected (every phase)",
            &|p| {
                format!(
                    "{}/{} missing {} extra {}",
                    p.rows_committed,
                    p.rows_expected,
                    p.ledger_missing.map_or("?".into(), |m| m.to_string()),
                    p.ledger_extra.map_or("?".into(), |m| m.to_string())
                )
            },
            &|p| p.ledger_exact,
        ));
        self.targets = t;
    }

    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\n== ingest benchmark {} — {} cores, {} MB RAM, loadavg start {} / end {}",
            self.date,
            self.machine.cores,
            self.machine.mem_mb,
            self.machine.loadavg_start,
            self.machine.loadavg_end
        );
        if let Some(c) = &self.copy {
            let runs: Vec<String> = c
                .runs_rows_per_sec
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect();
            let _ = writeln!(
                o,
                "(a) bare COPY -> bare(event_id text UNIQUE, raw jsonb): {} events ({} B avg JSON), runs {} rows/s -> median {:.0}, best {:.0} rows/s (loadavg {})",
                c.events,
                c.avg_event_json_bytes,
                runs.join(" / "),
                c.median_rows_per_sec,
                c.best_rows_per_sec,
                c.loadavg
            );
        }
        if let Some(c) = &self.copy_real {
            let runs: Vec<String> = c
                .runs_rows_per_sec
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect();
            let _ = writeln!(
                o,
                "(a\") real-schema COPY -> events (all indexes, constraints, rollup triggers; fresh database per run): {} normalized rows, runs {} rows/s -> median {:.0}, best {:.0} rows/s (native normalize {:.1} µs/event, not timed; loadavg {})",
                c.events,
                runs.join(" / "),
                c.median_rows_per_sec,
                c.best_rows_per_sec,
                c.normalize_us_per_event,
                c.loadavg
            );
        }
        if let Some(j) = &self.jsfloor {
            let _ = writeln!(
                o,
                "(a') bare JetStream publish, 1 msg/event, {} in flight: {:.0}/s with Nats-Msg-Id, {:.0}/s without; one 50,000-event body {:.0} ms (loadavg {})",
                j.in_flight, j.with_msg_id_per_sec, j.without_msg_id_per_sec, j.body_50k_ms, j.loadavg
            );
        }
        if !self.phases.is_empty() {
            let _ = writeln!(
                o,
                "(b) full pipeline (gateway + fb-collector + ttk-collector, release):"
            );
            let mut rows: Vec<(String, Vec<String>)> = Vec::new();
            let mut add = |label: &str, f: &dyn Fn(&PhaseResult) -> String| {
                rows.push((label.to_string(), self.phases.iter().map(f).collect()));
            };
            let proc =
                |p: &PhaseResult, name: &str| p.processes.iter().find(|x| x.name == name).cloned();
            add("phase", &|p| {
                if p.variant == "current" {
                    p.name.clone()
                } else {
                    format!("{} ({})", p.name, p.variant)
                }
            });
            add("publisher", &|p| p.label.clone());
            add("publisher elapsed s / POSTs", &|p| {
                format!("{:.0} / {}", p.publisher_elapsed_secs, p.posts)
            });
            add("events sent (publisher ev/s)", &|p| {
                format!("{} ({:.0})", p.events_sent, p.publisher_events_per_sec)
            });
            add("POST latency p50 / p99 / max ms", &|p| {
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    p.post_latency.p50_ms, p.post_latency.p99_ms, p.post_latency.max_ms
                )
            });
            add("HTTP 5xx / other errors", &|p| {
                let other: u64 = p
                    .http_errors
                    .iter()
                    .filter(|(k, _)| !k.starts_with('5'))
                    .map(|(_, v)| v)
                    .sum::<u64>()
                    + p.transport_errors;
                format!("{} / {}", p.http_5xx, other)
            });
            add("rows committed / expected (ledger)", &|p| {
                format!("{} / {}", p.rows_committed, p.rows_expected)
            });
            add("ledger ids missing / extra", &|p| {
                let f = |x: Option<u64>| x.map_or("?".into(), |v| v.to_string());
                format!("{} / {}", f(p.ledger_missing), f(p.ledger_extra))
            });
            add("dead letters", &|p| p.dead_letters.to_string());
            add("E2E events/s (rows / last commit)", &|p| {
                format!("{:.0}", p.e2e_events_per_sec)
            });
            add("steady offered / committed ev/s", &|p| {
                format!(
                    "{:.0} / {:.0}",
                    p.steady_offered_per_sec, p.steady_commit_per_sec
                )
            });
            add("lag at publisher end (events)", &|p| {
                p.lag_at_publisher_end_events.to_string()
            });
            add("drain after publisher end s", &|p| {
                format!("{:.1}", p.drain_secs)
            });
            add("max lag (events)", &|p| p.max_lag_events.to_string());
            add("commit ev/s while backlogged", &|p| {
                p.backlogged_commit_per_sec
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "-".into())
            });
            add("best 10 s commit ev/s", &|p| {
                format!("{:.0}", p.best_10s_commit_per_sec)
            });
            for name in ["gateway", "fb-collector", "ttk-collector", "publisher"] {
                add(&format!("{name} peak RSS MB / CPU %"), &|p| {
                    proc(p, name)
                        .map(|x| format!("{:.0} / {:.0}", x.peak_rss_mb, x.cpu_pct))
                        .unwrap_or_default()
                });
            }
            add("PG backends / PG aux / nats-server CPU s", &|p| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    p.pg_backends_cpu_secs, p.pg_aux_cpu_secs, p.nats_server_cpu_secs
                )
            });
            add("machine CPU busy % (others %)", &|p| {
                format!("{:.0} ({:.0})", p.machine_cpu_busy_pct, p.other_cpu_pct)
            });
            for (k, label) in [
                ("gateway", "gateway"),
                ("fb-collector", "fb-collector"),
                ("ttk-collector", "ttk-collector"),
                ("postgres", "PostgreSQL backends"),
                ("nats-server", "nats-server"),
                ("pipeline", "= pipeline (all but publisher)"),
                ("publisher", "publisher"),
                ("total", "= total"),
            ] {
                add(&format!("CPU µs/event {label}"), &|p| {
                    format!("{:.1}", p.cpu_us_per_event.get(k).copied().unwrap_or(0.0))
                });
            }
            add("db write mean ms (rows/write)", &|p| {
                format!(
                    "{:.1} ({:.0})",
                    p.metrics.db_write_mean_ms, p.metrics.events_per_db_write
                )
            });
            add("db write ms per 1k rows", &|p| {
                format!("{:.1}", p.metrics.db_write_ms_per_1k_events)
            });
            add("plugin call ms per 1k rows", &|p| {
                format!("{:.1}", p.metrics.plugin_call_ms_per_1k_events)
            });
            add("PG active backends (avg) by wait", &|p| {
                let n = p
                    .pg_active_backends
                    .get("(samples)")
                    .copied()
                    .unwrap_or(0)
                    .max(1) as f64;
                let mut v: Vec<(&String, &u64)> = p
                    .pg_active_backends
                    .iter()
                    .filter(|(k, _)| *k != "(samples)")
                    .collect();
                v.sort_by(|a, b| b.1.cmp(a.1));
                v.iter()
                    .take(3)
                    .map(|(k, c)| format!("{k} {:.1}", **c as f64 / n))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            add("loadavg at end", &|p| {
                p.loadavg_end
                    .split(' ')
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            let ws: Vec<usize> = (0..self.phases.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r.1[i].chars().count())
                        .max()
                        .unwrap_or(0)
                        .max(8)
                })
                .collect();
            for (label, cells) in &rows {
                let _ = write!(o, "  {label:<w0$}");
                for (c, w) in cells.iter().zip(&ws) {
                    let _ = write!(o, " | {c:>w$}");
                }
                let _ = writeln!(o);
            }
        }
        if let Some(r) = self.ratio_stream_e2e_to_copy_real {
            let _ = writeln!(
                o,
                "(c) stream E2E / real-schema COPY = {r:.2} (target >= 0.5)"
            );
        }
        if let Some(r) = self.ratio_max_sustained_to_copy_real {
            let _ = writeln!(
                o,
                "    max sustained (load phase, backlogged) / real-schema COPY = {r:.2}"
            );
        }
        if let Some(r) = self.ratio_stream_e2e_to_copy {
            let _ = writeln!(o, "    stream E2E / bare COPY = {:.0} %", r * 100.0);
        }
        if let Some(r) = self.ratio_max_sustained_to_copy {
            let _ = writeln!(
                o,
                "    max sustained (load phase, backlogged) / bare COPY = {:.0} %",
                r * 100.0
            );
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                o,
                "(d) before/after: baseline {} + {}  vs  current {} + {}",
                b.host_bin, b.plugins_dir, b.current_host_bin, b.current_plugins_dir
            );
            for c in &self.comparisons {
                let w0 = c
                    .rows
                    .iter()
                    .map(|r| r.metric.chars().count())
                    .max()
                    .unwrap_or(0);
                let _ = writeln!(
                    o,
                    "  {:<w0$} | {:>10} | {:>10} | after/before",
                    c.phase, "before", "after"
                );
                for r in &c.rows {
                    let num = |x: f64| {
                        if x.fract() == 0.0 || x.abs() >= 100.0 {
                            format!("{x:.0}")
                        } else {
                            format!("{x:.1}")
                        }
                    };
                    let _ = writeln!(
                        o,
                        "  {:<w0$} | {:>10} | {:>10} | {}",
                        r.metric,
                        num(r.before),
                        num(r.after),
                        r.ratio.map_or("-".into(), |x| format!("{x:.2}"))
                    );
                }
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(o, "targets (informational, not asserted):");
            for t in &self.targets {
                let mark = match t.met {
                    Some(true) => "met   ",
                    Some(false) => "MISSED",
                    None => "?     ",
                };
                let _ = writeln!(o, "  [{mark}] {}: {}", t.name, t.value);
            }
        }
        for e in &self.errors {
            let _ = writeln!(o, "ERROR {e}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Latency, ProcResult};

    fn phase(name: &str, variant: &str, cpu: &[(&str, f64)], p99: f64, rss: f64) -> PhaseResult {
        PhaseResult {
            name: name.into(),
            variant: variant.into(),
            e2e_events_per_sec: if variant == "current" {
                40_000.0
            } else {
                20_000.0
            },
            post_latency: Latency {
                p50_ms: p99 / 2.0,
                p99_ms: p99,
                ..Default::default()
            },
            rows_expected: 1000,
            rows_committed: 1000,
            ledger_missing: Some(0),
            ledger_extra: Some(0),
            ledger_exact: true,
            processes: vec![ProcResult {
                name: "gateway".into(),
                peak_rss_mb: rss,
                ..Default::default()
            }],
            cpu_us_per_event: cpu.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn before_after_comparisons_and_targets() {
        let mut r = Report::new();
        r.copy_real = Some(CopyRealResult {
            events: 1000,
            copy_bytes: 1,
            normalize_us_per_event: 1.0,
            runs_rows_per_sec: vec![60_000.0],
            median_rows_per_sec: 60_000.0,
            best_rows_per_sec: 60_000.0,
            rollups_checked: true,
            loadavg: String::new(),
        });
        r.baseline = Some(Baseline {
            host_bin: "old".into(),
            plugins_dir: "old-plugins".into(),
            current_host_bin: "new".into(),
            current_plugins_dir: "plugins".into(),
        });
        let base = [("nats-server", 20.0), ("pipeline", 55.0)];
        let cur = [("nats-server", 1.5), ("pipeline", 25.0)];
        r.phases = vec![
            phase("stream", "baseline", &base, 4000.0, 200.0),
            phase("stream", "current", &cur, 500.0, 150.0),
            phase("post50k", "baseline", &base, 2000.0, 150.0),
            phase("post50k", "current", &cur, 900.0, 310.0),
        ];
        r.finish();
        assert_eq!(r.comparisons.len(), 2);
        let e2e = &r.comparisons[0].rows[0];
        assert_eq!(
            (e2e.before, e2e.after, e2e.ratio),
            (20_000.0, 40_000.0, Some(2.0))
        );
        assert_eq!(r.ratio_stream_e2e_to_copy_real, Some(0.667));
        let met = |prefix: &str| {
            r.targets
                .iter()
                .find(|t| t.name.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}"))
                .met
        };
        assert_eq!(met("sustained E2E >= 0.5 x real-schema"), Some(true));
        assert_eq!(met("nats-server CPU"), Some(true));
        assert_eq!(met("CPU/event"), Some(true));
        assert_eq!(met("post50k"), Some(true));
        // Only the current runs count: 310 MB in post50k misses, baseline ignored.
        assert_eq!(met("gateway peak RSS"), Some(false));
        assert_eq!(met("no 5xx"), Some(true));
        assert_eq!(met("ledger exact"), Some(true));
        let table = r.table();
        println!("{table}"); // cargo test -p events-bench -- --nocapture
        assert!(table.contains("stream (baseline)"), "{table}");
        assert!(table.contains("(d) before/after"), "{table}");
    }
}
