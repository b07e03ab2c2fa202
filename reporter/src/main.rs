use events_common::{shutdown::cancel_on_signal, telemetry};
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
    // Handlers before startup: a signal sent as soon as the reporter answers
    // is never lost, and one during startup stops it.
    let signalled = tokio_util::sync::CancellationToken::new();
    cancel_on_signal(signalled.clone());
    let pre_stop = config.common.pre_stop_delay;
    let started = tokio::select! {
        started = startup::spawn(config, listener) => started,
        _ = signalled.cancelled() => return ExitCode::SUCCESS,
    };
    let app = match started {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            return ExitCode::FAILURE;
        }
    };
    events_common::shutdown::stop_after_pre_stop(
        signalled,
        app.health.clone(),
        pre_stop,
        app.stop_token(),
    );
    match app.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
