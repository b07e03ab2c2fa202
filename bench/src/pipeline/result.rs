//! What a phase measured: the rows of `results.json` and of the table.
use serde::Serialize;
use std::collections::BTreeMap;

/// The publisher's POST latencies.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One process over the phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcResult {
    pub name: String,
    /// `VmHWM` just before the process was stopped.
    pub peak_rss_mb: f64,
    pub cpu_secs: f64,
    /// Mean CPU over the phase, percent of one core.
    pub cpu_pct: f64,
}

/// The collectors' own histograms and counters, summed.
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

/// Everything one phase measured.
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
