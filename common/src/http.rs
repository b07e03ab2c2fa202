//! HTTP plumbing shared by every service: the ops endpoints (`/health/*`,
//! `/metrics`), correlation ids, request metrics, and serving with graceful
//! shutdown.
use crate::health::Health;
use crate::metrics;
use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use prometheus::{Encoder, HistogramVec, IntCounterVec, IntGaugeVec, Registry, TextEncoder};
use std::{sync::Arc, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn ops_router(health: Health, registry: Registry) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(serde_json::json!({"status": "alive"})) }),
        )
        .route("/health/ready", get(ready).with_state(health))
        .route("/metrics", get(render_metrics).with_state(registry))
}

async fn ready(State(health): State<Health>) -> Response {
    let r = health.readiness();
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

async fn render_metrics(State(registry): State<Registry>) -> Response {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut buf) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            buf,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The correlation id of a request, in its extensions.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

/// Middleware: takes the correlation id from `header` (or makes one), puts it
/// in the request extensions and a tracing span, and echoes it in the
/// response.
pub async fn correlation_id(
    State(header): State<HeaderName>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!(
        "request",
        correlation_id = %id,
        method = %req.method(),
        path = %req.uri().path()
    );
    let mut res = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(header, v);
    }
    res
}

/// Request count, latency and in-flight gauge, labelled by route.
#[derive(Clone)]
pub struct HttpMetrics {
    inner: Arc<HttpMetricsInner>,
}

struct HttpMetricsInner {
    service: String,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
}

impl HttpMetrics {
    pub fn new(registry: &Registry, service: &str) -> prometheus::Result<Self> {
        let requests = metrics::int_counter_vec(
            registry,
            "http_requests_total",
            "HTTP requests by route, method and status",
            &["service", "route", "method", "status"],
        )?;
        let duration = metrics::histogram_vec(
            registry,
            "http_request_duration_seconds",
            "HTTP request latency",
            &["service", "route"],
            vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?;
        let in_flight = metrics::int_gauge_vec(
            registry,
            "http_requests_in_flight",
            "HTTP requests being served",
            &["service"],
        )?;
        Ok(Self {
            inner: Arc::new(HttpMetricsInner {
                service: service.to_string(),
                requests,
                duration,
                in_flight,
            }),
        })
    }

    /// Middleware recording every request.
    pub async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "unmatched".to_string());
        let method = req.method().as_str().to_string();
        let m = &m.inner;
        let gauge = m.in_flight.with_label_values(&[m.service.as_str()]);
        gauge.inc();
        let start = Instant::now();
        let res = next.run(req).await;
        gauge.dec();
        m.duration
            .with_label_values(&[m.service.as_str(), route.as_str()])
            .observe(start.elapsed().as_secs_f64());
        m.requests
            .with_label_values(&[
                m.service.as_str(),
                route.as_str(),
                method.as_str(),
                res.status().as_str(),
            ])
            .inc();
        res
    }
}

/// Adds correlation ids, request metrics and JSON 404/405 answers to
/// `router`.
pub fn instrument(router: Router, metrics: HttpMetrics, correlation_header: HeaderName) -> Router {
    router
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            HttpMetrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            correlation_header,
            correlation_id,
        ))
}

/// How long a client may take to send a request's headers, unless a service
/// configures otherwise (the gateway: `GATEWAY_HEADER_TIMEOUT_MS`).
pub const DEFAULT_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` is cancelled, then finishes the
/// requests in flight. A connection that does not deliver a request's
/// headers within `header_timeout` is closed (a slow-headers client cannot
/// hold a connection open forever; `axum::serve` sets no such bound).
pub fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: CancellationToken,
    header_timeout: std::time::Duration,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };
    use tower::ServiceExt;
    tokio::spawn(async move {
        // HTTP/1.1 only: what the publisher, Prometheus and browsers use here.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let graceful = GracefulShutdown::new();
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let service =
                TowerToHyperService::new(router.clone().map_request(
                    |req: Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
                ));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    })
}

/// A JSON error body `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}
