//! The results: one JSON document and a plain-text table.

use serde::Serialize;

use crate::copy::CopyResult;
use crate::copyreal::CopyRealResult;
use crate::jsfloor::JsFloorResult;
use crate::pipeline::PhaseResult;
use crate::procfs;

mod table;
mod targets;

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

    /// The current host's runs (not the baseline's).
    fn current(&self) -> impl Iterator<Item = &PhaseResult> {
        self.phases.iter().filter(|p| p.variant == "current")
    }

    /// The baseline host's run of phase `name`.
    fn baseline_of(&self, name: &str) -> Option<&PhaseResult> {
        self.phases
            .iter()
            .find(|p| p.name == name && p.variant == "baseline")
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
