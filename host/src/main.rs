use clap::{Parser, Subcommand};
use events_common::config::{Env, Vars};
use events_host::{
    config::{HostConfig, Role},
    jetstream_admin::JetstreamCommand,
};
use std::{path::PathBuf, process::ExitCode};

/// Marketing events host: webhook gateway and WASM collector runtime.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook gateway (port 3000).
    Gateway,
    /// Run collectors for COLLECTOR_TYPE (facebook 3001, tiktok 3002).
    Collector,
    /// Run the gateway and every collector in one process (the default).
    All,
    /// Operator tools for this deployment's JetStream streams
    /// (JETSTREAM_STREAM, JETSTREAM_DLQ_STREAM), configured like the gateway.
    Jetstream {
        #[command(subcommand)]
        command: JetstreamCommand,
    },
    /// Plugin author tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component, print its identity, and run it on sample files
    /// (each a JSON event or array of events).
    Check {
        component: PathBuf,
        samples: Vec<PathBuf>,
        /// One JSON line per verdict.
        #[arg(long)]
        json: bool,
    },
    /// Run fixture tests: each fixture (a JSON file: input event + expected
    /// verdict, normalized fields or rejection fields; see plugins/README.md)
    /// is run and reported ok/FAIL with a diff. Exit 0 all pass, 1 any
    /// failure, 2 load or fixture errors.
    Test {
        component: PathBuf,
        /// Fixture directories (every *.json under them) or fixture files.
        #[arg(required = true)]
        fixtures: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let role = match Cli::parse().command.unwrap_or(Command::All) {
        Command::Gateway => Role::Gateway,
        Command::Collector => Role::Collector,
        Command::All => Role::All,
        Command::Jetstream { command } => {
            return ExitCode::from(events_host::jetstream_admin::run(
                &command,
                &Vars::new(&Env),
            ));
        }
        Command::Plugin { command } => return plugin(command),
    };
    let config = match HostConfig::from_vars(role, &Vars::new(&Env)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    events_common::telemetry::init(&config.common.log_level);
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The plugin author tools: exit 0 all pass, 1 any failure, 2 errors.
fn plugin(command: PluginCommand) -> ExitCode {
    let outcome = match command {
        PluginCommand::Test {
            component,
            fixtures,
        } => events_host::plugin_test::run(&component, &fixtures).map(|s| s.failed),
        PluginCommand::Check {
            component,
            samples,
            json,
        } => events_host::check::run(&component, &samples, json),
    };
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the host until a stop signal, then drains it.
async fn serve(config: HostConfig) -> ExitCode {
    let pre_stop = config.common.pre_stop_delay;
    let start = events_host::startup::bind_and_build(config);
    events_common::service::run_until_signalled(start, pre_stop).await
}
