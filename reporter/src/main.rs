use events_common::telemetry;
use events_reporter::{config::Config, startup};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(&config.common.log_level);
    tracing::info!(?config, "starting events-reporter");
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, port = config.port, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let pre_stop = config.common.pre_stop_delay;
    events_common::service::run_until_signalled(startup::spawn(config, listener), pre_stop).await
}
