//! The webhook gateway: `POST /webhook` takes a JSON array of events (or one
//! event object), checks each envelope natively, publishes the accepted ones
//! to JetStream as slices of one source's events (see [`crate::wire`]) and the
//! rejected ones to the dead-letter stream, and answers only once every
//! publish of the request is acked.
//!
//! - `upload`: reading the body at a minimum rate;
//! - `auth`: bearer token and body signature;
//! - `budget`: the in-flight budget a request holds;
//! - `elements`, `envelope`: splitting the body and checking each element;
//! - `dispatch`, `slices`, `publish`: slices and dead letters to JetStream,
//!   then the answer;
//! - `error`: every error answer.
mod auth;
mod budget;
mod dispatch;
mod elements;
mod envelope;
mod error;
mod metrics;
mod publish;
mod slices;
mod upload;

pub use auth::SIGNATURE_HEADER;
pub use dispatch::{ErrorEntry, WebhookResponse};
use error::WebhookError;
pub use metrics::GatewayMetrics;

use crate::{
    config::{GatewayConfig, NatsConfig},
    plugins::PluginRuntime,
};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    routing::post,
    Extension, Json, Router,
};
use events_common::{health::Health, http::CorrelationId};
use std::sync::Arc;

pub struct Gateway {
    pub js: async_nats::jetstream::Context,
    pub plugins: PluginRuntime,
    pub cfg: GatewayConfig,
    pub nats: NatsConfig,
    pub metrics: GatewayMetrics,
    pub health: Health,
    /// Largest message NATS takes (minus room for headers).
    pub max_event_bytes: usize,
    /// Body bytes in flight, in MiB permits (`GATEWAY_MAX_INFLIGHT_BYTES`).
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the gateway drains: new requests are refused.
    pub stop: tokio_util::sync::CancellationToken,
}

impl Gateway {
    /// The in-flight budget for `cfg`, in MiB permits.
    pub fn inflight_budget(cfg: &GatewayConfig) -> Arc<tokio::sync::Semaphore> {
        budget::semaphore(cfg)
    }

    fn unauthorized(&self) -> WebhookError {
        self.metrics.auth_failures.inc();
        WebhookError::Unauthorized
    }
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/webhook", post(webhook))
        .with_state(gateway)
}

async fn webhook(
    State(gw): State<Arc<Gateway>>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookResponse>, WebhookError> {
    // Not `health.is_draining()`: during the pre-stop delay the gateway is
    // already not ready but still takes requests.
    if gw.stop.is_cancelled() {
        return Err(WebhookError::ShuttingDown);
    }
    check_content_type(&headers)?;
    let limit = gw.cfg.body_limit_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Up to twice the limit: the client gets its 413, not a reset.
        upload::discard(body, limit.saturating_mul(2)).await;
        return Err(WebhookError::DeclaredTooLarge(limit));
    }
    // A bearer token needs no body: a wrong one costs no upload.
    let bearer = gw
        .cfg
        .webhook_secret
        .as_ref()
        .and_then(|secret| auth::bearer(secret.expose(), &headers));
    if bearer == Some(false) {
        return Err(gw.unauthorized());
    }
    let mut reader = upload::Reader::new(body, limit, gw.cfg.min_body_rate, declared);
    reader.fill(upload::FIRST_BYTES).await?;
    // Then wait for room: overlapping POSTs queue here (the rest of their
    // bytes stay in the socket) instead of piling up in memory.
    let units = budget::body_units(&gw.cfg, declared);
    let permit = gw
        .inflight
        .acquire_many(units as u32)
        .await
        .map_err(|_| WebhookError::ShuttingDown)?;
    let mut reserved = budget::Reserved::new(&gw.metrics.inflight_reserved, units);
    reader.resume();
    let bytes = reader.finish().await?;
    gw.metrics.body_bytes.observe(bytes.len() as f64);
    // From here on the request is ours: it is answered by this deadline.
    let deadline = tokio::time::Instant::now() + gw.cfg.request_timeout;
    if let (Some(secret), None) = (&gw.cfg.webhook_secret, bearer) {
        if !auth::verify_signature(secret.expose(), &headers, &bytes) {
            return Err(gw.unauthorized());
        }
    }
    let checked = elements::check(bytes.clone(), gw.plugins.clone(), gw.cfg.max_events).await?;
    let total = checked.len();
    let _permit = budget::add_elements(&gw.cfg, &gw.inflight, permit, &mut reserved, total).await?;
    match dispatch::publish_checked(&gw, &bytes, checked, &cid.0, deadline).await {
        Ok(resp) => {
            tracing::info!(
                events = total,
                accepted = resp.accepted,
                rejected = resp.rejected,
                duplicates = resp.duplicates,
                "webhook handled"
            );
            Ok(Json(resp))
        }
        Err(failed) => {
            gw.health.set("jetstream", false);
            tracing::error!(events = total, failed, "JetStream did not ack every event");
            Err(WebhookError::NotAcknowledged { failed, total })
        }
    }
}

/// JSON or plain text; a request without the header is taken as JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), WebhookError> {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let ct = ct.to_ascii_lowercase();
    if ct.contains("json") || ct.starts_with("text/plain") {
        Ok(())
    } else {
        Err(WebhookError::ContentType(ct))
    }
}
