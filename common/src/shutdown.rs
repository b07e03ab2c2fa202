//! Graceful shutdown: one token cancelled on SIGTERM/SIGINT.
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
