//! The results: one JSON document and a plain-text table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::copy::CopyResult;
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

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    /// (a)
    pub copy: Option<CopyResult>,
    /// Bare JetStream publish rate (the gateway's own ceiling).
    pub jsfloor: Option<JsFloorResult>,
    /// (b)
    pub phases: Vec<PhaseResult>,
    /// (c) stream-phase e2e events/s ÷ median bare COPY rows/s.
    pub ratio_stream_e2e_to_copy: Option<f64>,
    /// Load-phase commit rate while backlogged ÷ median bare COPY rows/s.
    pub ratio_max_sustained_to_copy: Option<f64>,
    pub targets: Vec<Target>,
    pub errors: Vec<String>,
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
            jsfloor: None,
            phases: Vec::new(),
            ratio_stream_e2e_to_copy: None,
            ratio_max_sustained_to_copy: None,
            targets: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn phase(&self, name: &str) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Ratios and targets.
    pub fn finish(&mut self) {
        self.machine.loadavg_end = procfs::loadavg();
        let copy = self
            .copy
            .as_ref()
            .map(|c| c.median_rows_per_sec)
            .filter(|c| *c > 0.0);
        let ratio = |x: f64| copy.map(|c| (x / c * 1000.0).round() / 1000.0);
        self.ratio_stream_e2e_to_copy = self
            .phase("stream")
            .and_then(|p| ratio(p.e2e_events_per_sec));
        self.ratio_max_sustained_to_copy = self
            .phase("load")
            .and_then(|p| ratio(p.backlogged_commit_per_sec.unwrap_or(p.e2e_events_per_sec)));
        let mut t = Vec::new();
        if let Some(r) = self.ratio_stream_e2e_to_copy {
            t.push(Target {
                name: "stream e2e >= 50 % of bare COPY".into(),
                value: format!("{:.0} %", r * 100.0),
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
        if let Some(p) = self.phase("post50k") {
            t.push(Target {
                name: "50,000-event POST p99 <= 1000 ms".into(),
                value: format!("{:.0} ms", p.post_latency.p99_ms),
                met: Some(p.post_latency.p99_ms <= 1000.0),
            });
        }
        let gw_rss = self
            .phases
            .iter()
            .flat_map(|p| p.processes.iter().filter(|x| x.name == "gateway"))
            .map(|x| x.peak_rss_mb)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        if let Some(r) = gw_rss {
            t.push(Target {
                name: "gateway peak RSS <= 300 MB".into(),
                value: format!("{r:.0} MB"),
                met: Some(r <= 300.0),
            });
        }
        let fivexx: u64 = self.phases.iter().map(|p| p.http_5xx).sum();
        if !self.phases.is_empty() {
            t.push(Target {
                name: "no 5xx (all phases, incl. max rate)".into(),
                value: format!("{fivexx}"),
                met: Some(fivexx == 0),
            });
        }
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
            add("phase", &|p| p.name.clone());
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
            add("rows committed / expected", &|p| {
                format!("{} / {}", p.rows_committed, p.rows_expected)
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
            add("CPU µs/event gw/col/pub/pg/nats", &|p| {
                let g = |k: &str| p.cpu_us_per_event.get(k).copied().unwrap_or(0.0);
                format!(
                    "{:.0}/{:.0}/{:.0}/{:.0}/{:.0} = {:.0}",
                    g("gateway"),
                    g("fb-collector") + g("ttk-collector"),
                    g("publisher"),
                    g("postgres"),
                    g("nats-server"),
                    g("total")
                )
            });
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
        if let Some(r) = self.ratio_stream_e2e_to_copy {
            let _ = writeln!(o, "(c) stream E2E / bare COPY = {:.0} %", r * 100.0);
        }
        if let Some(r) = self.ratio_max_sustained_to_copy {
            let _ = writeln!(
                o,
                "    max sustained (load phase, backlogged) / bare COPY = {:.0} %",
                r * 100.0
            );
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
