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

use std::path::PathBuf;
use std::time::Duration;

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
const PIPELINE_PHASES: [&str; 3] = ["stream", "post50k", "load"];

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
                r = run(*args) => r,
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

async fn run(a: RunArgs) -> Result<()> {
    std::fs::create_dir_all(&a.work_dir)?;
    let mut rep = report::Report::new();
    eprintln!(
        "ingest-bench run {}: {} cores, {} MB RAM, loadavg {}",
        a.common.run_id, rep.machine.cores, rep.machine.mem_mb, rep.machine.loadavg_start
    );
    let want = |p: &str| a.phases.iter().any(|x| x == p);
    let pipeline_wanted = PIPELINE_PHASES.iter().any(|p| want(p));
    anyhow::ensure!(
        !pipeline_wanted || (a.host_bin.is_some() && a.publisher_bin.is_some()),
        "the pipeline phases need --host-bin and --publisher-bin"
    );

    if want("copy") || want("copyreal") || want("jsfloor") {
        let t = std::time::Instant::now();
        let events = copy::generate(a.copy_events, a.seed)?;
        eprintln!(
            "generated {} events in {:.1}s",
            events.len(),
            t.elapsed().as_secs_f64()
        );
        if want("copy") {
            let db = format!("{}copy", db::db_prefix(&a.common.run_id));
            match copy::run(&a.common.pg_url, &db, &events, a.copy_runs).await {
                Ok(r) => rep.copy = Some(r),
                Err(e) => {
                    eprintln!("[copy] FAILED: {e:#}");
                    rep.errors.push(format!("copy: {e:#}"));
                }
            }
        }
        if want("copyreal") {
            let db = format!("{}copyreal", db::db_prefix(&a.common.run_id));
            let migrations = copyreal::migrations_dir(a.migrations_dir.as_deref());
            match copyreal::run(&a.common.pg_url, &db, &migrations, &events, a.copy_runs).await {
                Ok(r) => rep.copy_real = Some(r),
                Err(e) => {
                    eprintln!("[copyreal] FAILED: {e:#}");
                    rep.errors.push(format!("copyreal: {e:#}"));
                }
            }
        }
        if want("jsfloor") {
            match jsfloor::run(
                &a.common.nats_url,
                &a.common.run_id,
                &events,
                a.jsfloor_in_flight,
            )
            .await
            {
                Ok(r) => rep.jsfloor = Some(r),
                Err(e) => {
                    eprintln!("[jsfloor] FAILED: {e:#}");
                    rep.errors.push(format!("jsfloor: {e:#}"));
                }
            }
        }
    }

    let (true, Some(host_bin), Some(publisher_bin)) =
        (pipeline_wanted, a.host_bin.clone(), a.publisher_bin.clone())
    else {
        return finish(rep, a.out.as_deref());
    };
    let env = pipeline::Env {
        server_url: a.common.pg_url.clone(),
        nats_url: a.common.nats_url.clone(),
        host_bin: host_bin.clone(),
        publisher_bin,
        plugins_dir: a.plugins_dir.clone(),
        work_dir: a.work_dir.clone(),
        run_id: a.common.run_id.clone(),
        seed: a.seed,
        drain_timeout: Duration::from_secs(a.drain_timeout_secs),
        host_env: a.host_env.clone(),
        variant: "current".into(),
    };
    // Before/after: the baseline runs first, then the current host, phase by phase.
    let baseline = (a.baseline_host_bin.is_some() || a.baseline_plugins_dir.is_some()).then(|| {
        pipeline::Env {
            host_bin: a.baseline_host_bin.clone().unwrap_or(host_bin),
            plugins_dir: a
                .baseline_plugins_dir
                .clone()
                .unwrap_or_else(|| a.plugins_dir.clone()),
            variant: "baseline".into(),
            ..env.clone()
        }
    });
    if let Some(b) = &baseline {
        rep.baseline = Some(report::Baseline {
            host_bin: b.host_bin.display().to_string(),
            plugins_dir: b.plugins_dir.display().to_string(),
            current_host_bin: env.host_bin.display().to_string(),
            current_plugins_dir: env.plugins_dir.display().to_string(),
        });
    }
    let envs: Vec<&pipeline::Env> = baseline.iter().chain(std::iter::once(&env)).collect();
    let s = |v: &[String]| v.to_vec();
    let specs = [
        pipeline::PhaseSpec {
            name: "stream".into(),
            label: format!(
                "{}..{} ev/POST, 1 POST/s, {} s",
                a.stream_min_events, a.stream_max_events, a.stream_secs
            ),
            // The real publisher: a POST per second of 1000..50000 events,
            // overlapping, 10 % of POSTs with one corrupted event.
            publisher_args: s(&[
                "--interval-ms".into(),
                "1000".into(),
                "--min-events".into(),
                a.stream_min_events.to_string(),
                "--max-events".into(),
                a.stream_max_events.to_string(),
                "--duration-secs".into(),
                a.stream_secs.to_string(),
            ]),
            warmup_secs: 10.0,
        },
        pipeline::PhaseSpec {
            name: "post50k".into(),
            label: format!(
                "50000 ev/POST every {} ms, {} s",
                a.post50k_interval_ms, a.post50k_secs
            ),
            publisher_args: s(&[
                "--interval-ms".into(),
                a.post50k_interval_ms.to_string(),
                "--min-events".into(),
                "50000".into(),
                "--max-events".into(),
                "50000".into(),
                "--duration-secs".into(),
                a.post50k_secs.to_string(),
            ]),
            warmup_secs: 5.0,
        },
        pipeline::PhaseSpec {
            name: "load".into(),
            label: format!(
                "{} ev at {}/s, {} in flight",
                a.load_count, a.load_rate, a.load_concurrency
            ),
            publisher_args: s(&[
                "--count".into(),
                a.load_count.to_string(),
                "--rate".into(),
                a.load_rate.to_string(),
                "--concurrency".into(),
                a.load_concurrency.to_string(),
            ]),
            warmup_secs: 5.0,
        },
    ];
    for spec in specs.iter().filter(|s| want(&s.name)) {
        for env in &envs {
            match pipeline::run_phase(env, spec).await {
                Ok(r) => rep.phases.push(r),
                Err(e) => {
                    eprintln!("[{} {}] FAILED: {e:#}", spec.name, env.variant);
                    rep.errors
                        .push(format!("{} ({}): {e:#}", spec.name, env.variant));
                }
            }
        }
    }
    finish(rep, a.out.as_deref())
}

/// Ratios and targets, the table on stdout, the JSON file.
fn finish(mut rep: report::Report, out: Option<&std::path::Path>) -> Result<()> {
    rep.finish();
    println!("{}", rep.table());
    if let Some(out) = out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_string_pretty(&rep)? + "\n")?;
        eprintln!("results: {}", out.display());
    }
    Ok(())
}
