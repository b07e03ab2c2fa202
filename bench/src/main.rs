//! `ingest-bench`: the ingest benchmark (see bench/README.md). Numbers are
//! printed and written as JSON, never asserted.
//!
//! ```text
//! ingest-bench run --host-bin ... --publisher-bin ... [--phases copy,copyreal,jsfloor,stream,post50k,load]
//!                   [--baseline-host-bin OLD --baseline-plugins-dir OLD_PLUGINS]
//! ingest-bench gen --events N --out FILE   # COPY text for ad-hoc psql experiments
//! ingest-bench cleanup --run-id ID     # drop the run's databases and streams
//! ingest-bench failover --nats-url A,B,C --stream S --node n0=PID ... --gateway-port P
//!                                      # kill the stream leader under probe POSTs (bench-cluster.sh)
//! ```

mod copy;
mod copyreal;
mod db;
mod failover;
mod jsfloor;
mod metrics;
mod pipeline;
mod procfs;
mod report;
mod run;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ingest-bench",
    about = "Bare COPY floor vs. full-pipeline ingest benchmark"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark phases and report.
    Run(Box<RunArgs>),
    /// Drop the databases and delete the JetStream streams of a run.
    Cleanup(Common),
    /// Write N generated events as COPY text (`event_id<TAB>raw`) to a file,
    /// for ad-hoc psql experiments: `\copy bare(event_id, raw) FROM FILE`.
    Gen {
        #[arg(long, default_value_t = 300_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Kill a JetStream cluster's events-stream leader while a gateway gets
    /// one-event POSTs; print the time until a publish is acked again
    /// (scripts/bench-cluster.sh).
    Failover(Box<failover::FailoverArgs>),
}

#[derive(Args, Clone)]
struct Common {
    /// Names of scratch databases (`bench_ingest_<id>_*`) and streams (`BENCH_INGEST_<ID>_*`).
    #[arg(long)]
    run_id: String,
    /// PostgreSQL server, without a database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Comma list of: copy, copyreal, jsfloor, stream, post50k, load.
    #[arg(
        long,
        default_value = "copy,copyreal,jsfloor,stream,post50k,load",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(PHASES),
    )]
    phases: Vec<String>,
    /// events-host (needed by the pipeline phases only).
    #[arg(long)]
    host_bin: Option<PathBuf>,
    /// events-publisher (needed by the pipeline phases only).
    #[arg(long)]
    publisher_bin: Option<PathBuf>,
    #[arg(long, default_value = "dist/plugins")]
    plugins_dir: PathBuf,
    /// Before/after: run every pipeline phase also with this host binary
    /// (first, on its own database and streams). Defaults to --host-bin
    /// when only --baseline-plugins-dir is given.
    #[arg(long)]
    baseline_host_bin: Option<PathBuf>,
    /// Before/after: the baseline's plugins (defaults to --plugins-dir when
    /// only --baseline-host-bin is given).
    #[arg(long)]
    baseline_plugins_dir: Option<PathBuf>,
    /// copyreal: the migrations to apply (default: ./migrations, else the
    /// source tree's).
    #[arg(long)]
    migrations_dir: Option<PathBuf>,
    /// Logs, ledgers and per-second samples go here.
    #[arg(long)]
    work_dir: PathBuf,
    /// Results file (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// (a) events per COPY run (bare and real-schema; also the jsfloor phase's events).
    #[arg(long, default_value_t = 300_000)]
    copy_events: usize,
    /// jsfloor: JetStream publishes in flight (the gateway's GATEWAY_PUBLISH_CONCURRENCY default).
    #[arg(long, default_value_t = 4096)]
    jsfloor_in_flight: usize,
    /// (a) COPY runs, bare and real-schema (the median is the reference).
    #[arg(long, default_value_t = 3)]
    copy_runs: usize,
    /// (b) stream phase: seconds of real-publisher-like traffic (1 POST/s, 1000..50000 events).
    #[arg(long, default_value_t = 60)]
    stream_secs: u64,
    #[arg(long, default_value_t = 1000)]
    stream_min_events: u64,
    #[arg(long, default_value_t = 50_000)]
    stream_max_events: u64,
    /// post50k phase: milliseconds between 50,000-event POSTs. 2000 = 25,000
    /// events/s, the real publisher's mean rate; 1000 doubles it (overload).
    #[arg(long, default_value_t = 2000)]
    post50k_interval_ms: u64,
    /// post50k phase: seconds of 50,000-event POSTs.
    #[arg(long, default_value_t = 30)]
    post50k_secs: u64,
    /// load phase: events in total, target rate, POSTs in flight.
    #[arg(long, default_value_t = 1_000_000)]
    load_count: u64,
    #[arg(long, default_value_t = 40_000)]
    load_rate: u64,
    #[arg(long, default_value_t = 4)]
    load_concurrency: u64,
    /// Longest wait for the pipeline to drain after the publisher stops.
    #[arg(long, default_value_t = 600)]
    drain_timeout_secs: u64,
    /// Extra environment for the host processes, NAME=value (repeatable),
    /// e.g. COLLECTOR_BATCH_SIZE=5000.
    #[arg(long = "host-env", value_parser = parse_kv)]
    host_env: Vec<(String, String)>,
}

const PHASES: [&str; 6] = ["copy", "copyreal", "jsfloor", "stream", "post50k", "load"];

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not NAME=value"))
}

#[tokio::main]
async fn main() {
    if let Err(e) = real_main().await {
        eprintln!("ingest-bench: {e:#}");
        let interrupted = e.to_string() == "interrupted" || e.to_string() == "terminated";
        std::process::exit(if interrupted { 130 } else { 1 });
    }
}

async fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Cleanup(c) => db::cleanup(&c.pg_url, &c.nats_url, &c.run_id).await,
        Cmd::Gen { events, seed, out } => {
            let (buf, _) = copy::copy_text(&copy::generate(events, seed)?);
            Ok(std::fs::write(out, buf)?)
        }
        Cmd::Failover(args) => failover::run(*args).await,
        Cmd::Run(args) => {
            let c = args.common.clone();
            anyhow::ensure!(
                !c.run_id.is_empty()
                    && c.run_id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "--run-id must be lowercase letters and digits"
            );
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            // On a signal the run future is dropped, which kills the children
            // (kill_on_drop); then the scratch databases and streams go.
            let outcome = tokio::select! {
                r = run::run(*args) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
                _ = term.recv() => Err(anyhow::anyhow!("terminated")),
            };
            if let Err(e) = db::cleanup(&c.pg_url, &c.nats_url, &c.run_id).await {
                eprintln!("[cleanup] {e}");
            }
            outcome
        }
    }
}
