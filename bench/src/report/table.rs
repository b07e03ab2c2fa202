//! The plain-text table printed at the end of a run (its numbers are
//! quoted in the README: keep the layout).
use super::Report;
use crate::pipeline::{PhaseResult, ProcResult};
use std::fmt::Write as _;

impl Report {
    pub fn table(&self) -> String {
        let mut o = String::new();
        self.floors(&mut o);
        if !self.phases.is_empty() {
            let _ = writeln!(
                o,
                "(b) full pipeline (gateway + fb-collector + ttk-collector, release):"
            );
            let mut rows = Rows {
                phases: &self.phases,
                rows: Vec::new(),
            };
            publisher_rows(&mut rows);
            commit_rows(&mut rows);
            cpu_rows(&mut rows);
            database_rows(&mut rows);
            rows.write(&mut o);
        }
        self.ratios(&mut o);
        self.before_after(&mut o);
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

    /// The header line and the floors: (a) bare COPY, (a") real-schema
    /// COPY, (a') bare JetStream publish.
    fn floors(&self, o: &mut String) {
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
    }

    /// (c) the pipeline's rates against the COPY floors.
    fn ratios(&self, o: &mut String) {
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
    }

    /// (d) baseline against current, per phase.
    fn before_after(&self, o: &mut String) {
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
    }
}

/// The (b) table: one row per measure, one column per phase.
struct Rows<'a> {
    phases: &'a [PhaseResult],
    rows: Vec<(String, Vec<String>)>,
}

impl Rows<'_> {
    fn add(&mut self, label: &str, f: &dyn Fn(&PhaseResult) -> String) {
        self.rows
            .push((label.to_string(), self.phases.iter().map(f).collect()));
    }

    /// Labels left-aligned, cells right-aligned, columns as wide as their
    /// widest cell (8 at least).
    fn write(&self, o: &mut String) {
        let rows = &self.rows;
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
        for (label, cells) in rows {
            let _ = write!(o, "  {label:<w0$}");
            for (c, w) in cells.iter().zip(&ws) {
                let _ = write!(o, " | {c:>w$}");
            }
            let _ = writeln!(o);
        }
    }
}

fn proc(p: &PhaseResult, name: &str) -> Option<ProcResult> {
    p.processes.iter().find(|x| x.name == name).cloned()
}

/// Which phase, what the publisher did and how the gateway answered.
fn publisher_rows(rows: &mut Rows) {
    rows.add("phase", &|p| {
        if p.variant == "current" {
            p.name.clone()
        } else {
            format!("{} ({})", p.name, p.variant)
        }
    });
    rows.add("publisher", &|p| p.label.clone());
    rows.add("publisher elapsed s / POSTs", &|p| {
        format!("{:.0} / {}", p.publisher_elapsed_secs, p.posts)
    });
    rows.add("events sent (publisher ev/s)", &|p| {
        format!("{} ({:.0})", p.events_sent, p.publisher_events_per_sec)
    });
    rows.add("POST latency p50 / p99 / max ms", &|p| {
        format!(
            "{:.0} / {:.0} / {:.0}",
            p.post_latency.p50_ms, p.post_latency.p99_ms, p.post_latency.max_ms
        )
    });
    rows.add("HTTP 5xx / other errors", &|p| {
        let other: u64 = p
            .http_errors
            .iter()
            .filter(|(k, _)| !k.starts_with('5'))
            .map(|(_, v)| v)
            .sum::<u64>()
            + p.transport_errors;
        format!("{} / {}", p.http_5xx, other)
    });
}

/// What was committed, how fast, and how far behind the pipeline fell.
fn commit_rows(rows: &mut Rows) {
    rows.add("rows committed / expected (ledger)", &|p| {
        format!("{} / {}", p.rows_committed, p.rows_expected)
    });
    rows.add("ledger ids missing / extra", &|p| {
        let f = |x: Option<u64>| x.map_or("?".into(), |v| v.to_string());
        format!("{} / {}", f(p.ledger_missing), f(p.ledger_extra))
    });
    rows.add("dead letters", &|p| p.dead_letters.to_string());
    rows.add("E2E events/s (rows / last commit)", &|p| {
        format!("{:.0}", p.e2e_events_per_sec)
    });
    rows.add("steady offered / committed ev/s", &|p| {
        format!(
            "{:.0} / {:.0}",
            p.steady_offered_per_sec, p.steady_commit_per_sec
        )
    });
    rows.add("lag at publisher end (events)", &|p| {
        p.lag_at_publisher_end_events.to_string()
    });
    rows.add("drain after publisher end s", &|p| {
        format!("{:.1}", p.drain_secs)
    });
    rows.add("max lag (events)", &|p| p.max_lag_events.to_string());
    rows.add("commit ev/s while backlogged", &|p| {
        p.backlogged_commit_per_sec
            .map(|x| format!("{x:.0}"))
            .unwrap_or_else(|| "-".into())
    });
    rows.add("best 10 s commit ev/s", &|p| {
        format!("{:.0}", p.best_10s_commit_per_sec)
    });
}

/// Memory and CPU of every process and service.
fn cpu_rows(rows: &mut Rows) {
    for name in ["gateway", "fb-collector", "ttk-collector", "publisher"] {
        rows.add(&format!("{name} peak RSS MB / CPU %"), &|p| {
            proc(p, name)
                .map(|x| format!("{:.0} / {:.0}", x.peak_rss_mb, x.cpu_pct))
                .unwrap_or_default()
        });
    }
    rows.add("PG backends / PG aux / nats-server CPU s", &|p| {
        format!(
            "{:.1} / {:.1} / {:.1}",
            p.pg_backends_cpu_secs, p.pg_aux_cpu_secs, p.nats_server_cpu_secs
        )
    });
    rows.add("machine CPU busy % (others %)", &|p| {
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
        rows.add(&format!("CPU µs/event {label}"), &|p| {
            format!("{:.1}", p.cpu_us_per_event.get(k).copied().unwrap_or(0.0))
        });
    }
}

/// Where the collectors' time went, PostgreSQL's waits and the machine's load.
fn database_rows(rows: &mut Rows) {
    rows.add("db write mean ms (rows/write)", &|p| {
        format!(
            "{:.1} ({:.0})",
            p.metrics.db_write_mean_ms, p.metrics.events_per_db_write
        )
    });
    rows.add("db write ms per 1k rows", &|p| {
        format!("{:.1}", p.metrics.db_write_ms_per_1k_events)
    });
    rows.add("plugin call ms per 1k rows", &|p| {
        format!("{:.1}", p.metrics.plugin_call_ms_per_1k_events)
    });
    rows.add("PG active backends (avg) by wait", &|p| {
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
    rows.add("loadavg at end", &|p| {
        p.loadavg_end
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    });
}
