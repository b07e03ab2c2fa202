//! What `finish` derives from the measurements: ratios to the COPY
//! floors, before/after comparisons and the (informational) targets.
use super::{CompareRow, Comparison, Report, Target};
use crate::pipeline::PhaseResult;
use crate::procfs;

impl Report {
    /// Ratios, before/after comparisons and targets.
    pub fn finish(&mut self) {
        self.machine.loadavg_end = procfs::loadavg();
        self.set_ratios();
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
        let mut t = self.capacity_targets();
        t.extend(self.every(
            "nats-server CPU <= 2 µs/event (every phase)",
            &|p| format!("{:.1}", cpu(p, "nats-server")),
            &|p| cpu(p, "nats-server") <= 2.0,
        ));
        t.extend(self.baseline_cpu_target());
        if let Some(p) = self.phase("post50k") {
            t.push(Target {
                name: "post50k: 50,000-event POST p99 <= 1 s".into(),
                value: format!("{:.0} ms", p.post_latency.p99_ms),
                met: Some(p.post_latency.p99_ms <= 1000.0),
            });
        }
        t.extend(self.health_targets());
        self.targets = t;
    }

    /// The stream phase's E2E rate and the load phase's backlogged commit
    /// rate (its E2E rate if it never fell behind).
    fn stream_e2e_and_max_sustained(&self) -> (Option<f64>, Option<f64>) {
        let stream_e2e = self.phase("stream").map(|p| p.e2e_events_per_sec);
        let max_sustained = self
            .phase("load")
            .map(|p| p.backlogged_commit_per_sec.unwrap_or(p.e2e_events_per_sec));
        (stream_e2e, max_sustained)
    }

    fn set_ratios(&mut self) {
        let ratio_to = |floor: Option<f64>, x: f64| {
            floor
                .filter(|c| *c > 0.0)
                .map(|c| (x / c * 1000.0).round() / 1000.0)
        };
        let bare = self.copy.as_ref().map(|c| c.median_rows_per_sec);
        let real = self.copy_real.as_ref().map(|c| c.median_rows_per_sec);
        let (stream_e2e, max_sustained) = self.stream_e2e_and_max_sustained();
        self.ratio_stream_e2e_to_copy_real = stream_e2e.and_then(|x| ratio_to(real, x));
        self.ratio_max_sustained_to_copy_real = max_sustained.and_then(|x| ratio_to(real, x));
        self.ratio_stream_e2e_to_copy = stream_e2e.and_then(|x| ratio_to(bare, x));
        self.ratio_max_sustained_to_copy = max_sustained.and_then(|x| ratio_to(bare, x));
    }

    /// Sustained E2E against the real-schema COPY floor, and whether the
    /// stream phase kept up.
    fn capacity_targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let real = self.copy_real.as_ref().map(|c| c.median_rows_per_sec);
        let (stream_e2e, max_sustained) = self.stream_e2e_and_max_sustained();
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
        t
    }

    /// One line per target over every current phase: "stream 1.2 / load 3.4".
    fn every(
        &self,
        name: &str,
        value: &dyn Fn(&PhaseResult) -> String,
        ok: &dyn Fn(&PhaseResult) -> bool,
    ) -> Option<Target> {
        let current: Vec<&PhaseResult> = self.current().collect();
        (!current.is_empty()).then(|| Target {
            name: name.into(),
            value: current
                .iter()
                .map(|p| format!("{} {}", p.name, value(p)))
                .collect::<Vec<_>>()
                .join(" / "),
            met: Some(current.iter().all(|p| ok(p))),
        })
    }

    /// With a baseline: the pipeline's CPU per event at most half the baseline's.
    fn baseline_cpu_target(&self) -> Option<Target> {
        self.baseline.as_ref()?;
        let with_base: Vec<(&PhaseResult, &PhaseResult)> = self
            .current()
            .filter_map(|p| Some((self.baseline_of(&p.name)?, p)))
            .collect();
        if with_base.is_empty() {
            return None;
        }
        Some(Target {
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
        })
    }

    /// Gateway memory, no 5xx and an exact ledger, in every phase.
    fn health_targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        t.extend(self.every(
            "gateway peak RSS <= 300 MB (every phase)",
            &|p| format!("{:.0} MB", peak_rss(p, "gateway")),
            &|p| peak_rss(p, "gateway") <= 300.0,
        ));
        t.extend(self.every(
            "no 5xx (every phase, incl. max rate)",
            &|p| p.http_5xx.to_string(),
            &|p| p.http_5xx == 0,
        ));
        t.extend(self.every(
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
        t
    }
}

/// CPU µs per event of component `k` (0 when not measured).
fn cpu(p: &PhaseResult, k: &str) -> f64 {
    p.cpu_us_per_event.get(k).copied().unwrap_or(0.0)
}

/// Peak RSS of process `name` in MB (0 when absent).
fn peak_rss(p: &PhaseResult, name: &str) -> f64 {
    p.processes
        .iter()
        .find(|x| x.name == name)
        .map_or(0.0, |x| x.peak_rss_mb)
}

/// The numbers compared before/after, with after ÷ before.
fn compare(before: &PhaseResult, after: &PhaseResult) -> Vec<CompareRow> {
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
        peak_rss(before, "gateway"),
        peak_rss(after, "gateway"),
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
