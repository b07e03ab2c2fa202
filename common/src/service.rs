//! The skeleton every service shares: a metrics registry (with process
//! metrics), health, the stop token, the ops routes, serving with graceful
//! drain under a timeout, and one [`App`] handle to stop and wait for it.
//!
//! A service creates a [`Service`], builds its own parts from it, then calls
//! [`Service::start`] with its router and the drain steps only it knows
//! (e.g. finish the collectors, drain NATS, close the pool).
use crate::{health::Health, http, metrics, shutdown};
use axum::{http::HeaderName, Router};
use prometheus::Registry;
use std::{future::Future, net::SocketAddr, process::ExitCode, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// The parts every service has, before it starts serving.
pub struct Service {
    pub health: Health,
    pub registry: Registry,
    stop: CancellationToken,
}

/// How a service serves: its name (the `service` label of the `http_*`
/// metrics), the correlation id header, how long a client may take to send
/// headers, and how long the graceful shutdown may take.
pub struct Serving {
    pub name: String,
    pub correlation_header: HeaderName,
    pub header_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Where a service listens: the main listener, and optionally a separate
/// one for the ops routes alone (e.g. `METRICS_PORT`).
pub struct Listeners {
    pub main: TcpListener,
    pub metrics: Option<TcpListener>,
}

/// A running service.
pub struct App {
    /// Where it listens (the real port when started on port 0).
    pub addr: SocketAddr,
    /// Where the separate ops listener is, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Readiness; the pre-stop delay makes it false before the stop.
    pub health: Health,
    pub registry: Registry,
    stop: CancellationToken,
    done: JoinHandle<std::io::Result<()>>,
}

impl Service {
    pub fn new() -> prometheus::Result<Self> {
        Ok(Self {
            health: Health::new(),
            registry: metrics::registry()?,
            stop: CancellationToken::new(),
        })
    }

    /// Cancelled when the service stops; background tasks watch it.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// `/health/*` and `/metrics` for this service's health and registry.
    pub fn ops_router(&self) -> Router {
        http::ops_router(self.health.clone(), self.registry.clone())
    }

    /// Serves `router` (instrumented: correlation ids, `http_*` metrics,
    /// JSON 404/405) and the ops routes on the metrics listener. Once the
    /// stop token is cancelled: not ready, the servers finish the requests in
    /// flight, then `drain` runs; all of it within the shutdown timeout.
    pub fn start(
        self,
        listeners: Listeners,
        router: Router,
        serving: Serving,
        drain: impl Future<Output = ()> + Send + 'static,
    ) -> Result<App, ServiceError> {
        let addr = listeners.main.local_addr()?;
        let http_metrics = http::HttpMetrics::new(&self.registry, &serving.name)?;
        let router = http::instrument(router, http_metrics, serving.correlation_header);
        let main = http::serve(
            listeners.main,
            router,
            self.stop.clone(),
            serving.header_timeout,
        );
        let (metrics_addr, ops) = match listeners.metrics {
            Some(l) => {
                let addr = l.local_addr()?;
                let server = http::serve(
                    l,
                    self.ops_router(),
                    self.stop.clone(),
                    http::DEFAULT_HEADER_TIMEOUT,
                );
                (Some(addr), Some(server))
            }
            None => (None, None),
        };
        let shutdown = Shutdown {
            health: self.health.clone(),
            stop: self.stop.clone(),
            timeout: serving.shutdown_timeout,
        };
        let done = tokio::spawn(shutdown.run(main, ops, drain));
        Ok(App {
            addr,
            metrics_addr,
            health: self.health,
            registry: self.registry,
            stop: self.stop,
            done,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

type Server = JoinHandle<std::io::Result<()>>;

struct Shutdown {
    health: Health,
    stop: CancellationToken,
    timeout: Duration,
}

impl Shutdown {
    /// Waits for the stop, then drains. A timeout is logged, not an error:
    /// the process exits anyway. A server that failed is.
    async fn run(
        self,
        main: Server,
        ops: Option<Server>,
        drain: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.stop.cancelled().await;
        self.health.start_draining();
        tracing::info!("draining: finishing requests in flight");
        let graceful = async {
            let main = joined(main).await;
            let ops = match ops {
                Some(s) => joined(s).await,
                None => Ok(()),
            };
            drain.await;
            main.and(ops)
        };
        match tokio::time::timeout(self.timeout, graceful).await {
            Ok(result) => {
                tracing::info!("shutdown complete");
                result
            }
            Err(_) => {
                tracing::error!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "graceful shutdown timed out"
                );
                Ok(())
            }
        }
    }
}

async fn joined(server: Server) -> std::io::Result<()> {
    server
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

impl App {
    /// The token that stops the service (e.g. for the pre-stop delay).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops the service gracefully and waits until it has.
    pub async fn stop(self) -> std::io::Result<()> {
        self.stop.cancel();
        self.wait().await
    }

    /// Waits until the service has stopped (after its stop token is
    /// cancelled); an error when a server failed.
    pub async fn wait(self) -> std::io::Result<()> {
        joined(self.done).await
    }
}

/// How both binaries run a service: signal handlers first (a signal during
/// startup stops it, one sent as soon as it reports ready is never lost),
/// then `start`, then serving until a signal, the pre-stop delay and the
/// drain. The exit code says whether startup or a server failed.
pub async fn run_until_signalled<E: std::error::Error>(
    start: impl Future<Output = Result<App, E>>,
    pre_stop: Duration,
) -> ExitCode {
    let signalled = CancellationToken::new();
    shutdown::cancel_on_signal(signalled.clone());
    let app = tokio::select! {
        started = start => match started {
            Ok(app) => app,
            Err(e) => {
                let chain = error_chain(&e);
                tracing::error!(error = %chain, "startup failed");
                eprintln!("startup failed: {chain}");
                return ExitCode::FAILURE;
            }
        },
        _ = signalled.cancelled() => {
            tracing::info!("stopped during startup");
            return ExitCode::SUCCESS;
        }
    };
    shutdown::stop_after_pre_stop(signalled, app.health.clone(), pre_stop, app.stop_token());
    match app.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// `e: its source: its source…`, the way `anyhow` prints `{:#}`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(
        drain: impl Future<Output = ()> + Send + 'static,
        metrics: bool,
        timeout: Duration,
    ) -> App {
        let service = Service::new().unwrap();
        let router = service.ops_router();
        let bind = || TcpListener::bind("127.0.0.1:0");
        let listeners = Listeners {
            main: bind().await.unwrap(),
            metrics: if metrics {
                Some(bind().await.unwrap())
            } else {
                None
            },
        };
        let serving = Serving {
            name: "test".into(),
            correlation_header: HeaderName::from_static("x-correlation-id"),
            header_timeout: http::DEFAULT_HEADER_TIMEOUT,
            shutdown_timeout: timeout,
        };
        service.start(listeners, router, serving, drain).unwrap()
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_ops_routes_then_stops_after_draining() {
        let drained = Arc::new(AtomicBool::new(false));
        let flag = drained.clone();
        let drain = async move { flag.store(true, Ordering::SeqCst) };
        let app = start(drain, true, Duration::from_secs(5)).await;
        let live = get(app.addr, "/health/live").await;
        assert!(live.starts_with("HTTP/1.1 200"), "{live}");
        assert!(live.contains("alive"), "{live}");
        let metrics_addr = app.metrics_addr.unwrap();
        let metrics = get(metrics_addr, "/metrics").await;
        assert!(metrics.contains("http_requests_total"), "{metrics}");
        let missing = get(app.addr, "/nope").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let health = app.health.clone();
        app.stop().await.unwrap();
        assert!(drained.load(Ordering::SeqCst), "the drain step ran");
        assert!(health.is_draining());
    }

    #[tokio::test]
    async fn a_drain_past_the_timeout_is_cut_short() {
        let app = start(std::future::pending(), false, Duration::from_millis(100)).await;
        assert_eq!(app.metrics_addr, None);
        let stopped = tokio::time::timeout(Duration::from_secs(5), app.stop()).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "stop returns after the timeout"
        );
    }

    #[tokio::test]
    async fn the_stop_token_stops_it() {
        let app = start(async {}, false, Duration::from_secs(5)).await;
        app.stop_token().cancel();
        tokio::time::timeout(Duration::from_secs(5), app.wait())
            .await
            .unwrap()
            .unwrap();
    }
}
