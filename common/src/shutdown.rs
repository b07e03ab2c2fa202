//! Graceful shutdown: one token cancelled on SIGTERM/SIGINT, then a
//! pre-stop delay (not ready, still serving) before the service drains.
use crate::health::Health;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Cancels `token` when the process receives SIGTERM or SIGINT. The handlers
/// are registered before this returns, so a signal sent as soon as the
/// service reports ready is never lost (nor taken by the default action).
pub fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{signal, SignalKind};
        let register = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| tracing::error!(error = %e, "cannot listen for {name}"))
                .ok()
        };
        (
            register(SignalKind::interrupt(), "SIGINT"),
            register(SignalKind::terminate(), "SIGTERM"),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = recv(&mut int) => {},
            _ = recv(&mut term) => {},
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received, draining");
        token.cancel();
    });
}

/// The next delivery of `signal`; never when it could not be registered.
#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    let delivered = match signal {
        Some(s) => s.recv().await.is_some(),
        None => false,
    };
    if !delivered {
        std::future::pending::<()>().await
    }
}

/// Once `signalled` is cancelled: readiness goes false at once, requests are
/// still served for `pre_stop` (load balancers see "not ready" and stop
/// routing here first), then `stop` is cancelled and the service drains.
pub fn stop_after_pre_stop(
    signalled: CancellationToken,
    health: Health,
    pre_stop: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        signalled.cancelled().await;
        health.start_draining();
        if !pre_stop.is_zero() {
            tracing::info!(
                pre_stop_ms = pre_stop.as_millis() as u64,
                "not ready; still serving for the pre-stop delay"
            );
            tokio::select! {
                _ = tokio::time::sleep(pre_stop) => {}
                _ = stop.cancelled() => {}
            }
        }
        stop.cancel();
    });
}
