//! `events-publisher`: POSTs generated marketing events to the gateway.
//! See `publisher/README.md` and `--help`.

mod cli;
mod driver;
mod load;
mod stream;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use events_publisher::{Generator, GeneratorConfig, Ledger, Poster, Stats};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::Args;
use crate::driver::{Driver, Shutdown};

/// Exit status for unusable arguments (as clap uses).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = init_tracing() {
        eprintln!("error: {msg}");
        return ExitCode::from(USAGE);
    }
    if let Err(msg) = args.validate() {
        eprintln!("error: {msg}");
        return ExitCode::from(USAGE);
    }
    let poster = match Poster::new(
        &args.endpoint,
        args.webhook_secret.as_deref(),
        args.correlation_id_prefix.as_deref(),
        Duration::from_secs_f64(args.timeout_secs),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let ledger = match args.ledger.as_deref().map(Ledger::create).transpose() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot create the ledger file: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let summary = runtime.block_on(run(&args, poster, ledger));
    if args.json {
        eprint!("{}", summary.human());
        println!("{}", summary.to_json_line());
    } else {
        print!("{}", summary.human());
    }
    // Dropping the runtime could wait on the generator thread's channel; it
    // is not needed any more.
    runtime.shutdown_background();
    ExitCode::SUCCESS
}

async fn run(args: &Args, poster: Poster, ledger: Option<Ledger>) -> events_publisher::Summary {
    let gen = Generator::new(GeneratorConfig {
        seed: args.seed,
        facebook_share: args.facebook_share,
        duplicate_rate: args.duplicate_rate,
        corrupt_post_rate: args.corrupt_rate,
        shuffle_timestamps: args.shuffle,
        ..GeneratorConfig::default()
    });
    let mode = if args.count.is_some() {
        "load"
    } else {
        "stream"
    };
    let seed = gen.seed();
    let mut shutdown = Shutdown::install();
    match args.count {
        Some(count) => {
            load::announce(args, count);
            // All bodies first; the summary's clock starts at the first POST.
            let bodies = load::prepare(args, count, gen, &mut shutdown).await;
            let stats = Stats::new(mode, seed);
            let progress = progress_bar(args, count);
            let mut driver = Driver::new(poster, stats, ledger, progress, false);
            if let Some(bodies) = bodies {
                load::run(args, count, bodies, &mut driver, &mut shutdown).await;
            }
            driver.finish()
        }
        None => {
            let stats = Stats::new(mode, seed);
            let mut driver = Driver::new(poster, stats, ledger, ProgressBar::hidden(), true);
            stream::run(args, gen, &mut driver, &mut shutdown).await;
            driver.finish()
        }
    }
}

fn progress_bar(args: &Args, count: u64) -> ProgressBar {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(count);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({rate}, eta {eta})",
    ) {
        pb.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} events/s", state.per_sec());
            },
        ));
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Logs to stderr at `LOG_LEVEL` (like every service; `RUST_LOG` is still
/// read when `LOG_LEVEL` is unset), in colour only on a terminal.
fn init_tracing() -> Result<(), String> {
    let (name, level) = match (std::env::var("LOG_LEVEL"), std::env::var("RUST_LOG")) {
        (Ok(l), _) if !l.trim().is_empty() => ("LOG_LEVEL", l),
        (_, Ok(l)) if !l.trim().is_empty() => ("RUST_LOG", l),
        _ => ("LOG_LEVEL", "info".to_string()),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level.trim()).map_err(|e| {
        format!("{name}={level:?} is not a log filter such as `info` or `warn`: {e}")
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    Ok(())
}
