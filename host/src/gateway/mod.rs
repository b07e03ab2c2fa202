//! The webhook gateway: `POST /webhook` takes a JSON array of events (or one
//! event object), checks each envelope natively, publishes the accepted ones
//! to JetStream as slices of one source's events (see [`crate::wire`]) and the
//! rejected ones to the dead-letter stream, and answers only once every
//! publish of the request is acked.
mod auth;
mod envelope;
mod metrics;
mod publish;
mod slices;
mod upload;

pub use auth::SIGNATURE_HEADER;
pub use metrics::GatewayMetrics;

use crate::{
    config::{GatewayConfig, NatsConfig},
    db::DeadLetter,
    nats,
    plugins::PluginRuntime,
};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Extension, Json, Router,
};
use bytes::Bytes;
use events_common::{
    health::Health,
    http::{json_error, CorrelationId},
};
use publish::{Acked, Outgoing};
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
        Arc::new(tokio::sync::Semaphore::new(
            cfg.max_inflight_bytes.div_ceil(MIB),
        ))
    }
}

const MIB: usize = 1 << 20;

#[derive(Debug, serde::Serialize)]
pub struct WebhookResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub duplicates: usize,
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, serde::Serialize)]
pub struct ErrorEntry {
    pub index: usize,
    #[serde(rename = "eventId")]
    pub event_id: Option<String>,
    pub reasons: Vec<String>,
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/webhook", post(webhook))
        .with_state(gateway)
}

/// One checked element of the body.
struct Checked {
    range: std::ops::Range<usize>,
    env: envelope::Envelope,
}

async fn webhook(
    State(gw): State<Arc<Gateway>>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Not `health.is_draining()`: during the pre-stop delay the gateway is
    // already not ready but still takes requests.
    if gw.stop.is_cancelled() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ct = ct.to_ascii_lowercase();
        if !(ct.contains("json") || ct.starts_with("text/plain")) {
            return json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-type must be application/json, got {ct:?}"),
            );
        }
    }
    let limit = gw.cfg.body_limit_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Read and discard the upload (up to twice the limit) so the client
        // gets its 413 rather than a connection reset halfway through.
        discard(body, limit.saturating_mul(2)).await;
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the {limit}-byte limit"),
        );
    }
    // A bearer token needs no body: a wrong one costs no upload.
    let bearer = gw
        .cfg
        .webhook_secret
        .as_ref()
        .and_then(|secret| auth::bearer(secret.expose(), &headers));
    if bearer == Some(false) {
        return unauthorized(&gw);
    }
    let mut reader = upload::Reader::new(body, limit, gw.cfg.min_body_rate, declared);
    if let Err(e) = reader.fill(upload::FIRST_BYTES).await {
        return body_error(e);
    }
    // Then wait for room: overlapping POSTs queue here (the rest of their
    // bytes stay in the socket) instead of piling up in memory. A body of
    // unknown length reserves the limit; nothing reserves more than all.
    let units = declared
        .unwrap_or(limit)
        .div_ceil(MIB)
        .clamp(1, gw.cfg.max_inflight_bytes.div_ceil(MIB));
    let Ok(mut permit) = gw.inflight.acquire_many(units as u32).await else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let mut reserved = Reserved::new(&gw.metrics.inflight_reserved, (units * MIB) as i64);
    reader.resume();
    let bytes = match reader.finish().await {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    gw.metrics.body_bytes.observe(bytes.len() as f64);
    // From here on the request is ours: it is answered by this deadline.
    let deadline = tokio::time::Instant::now() + gw.cfg.request_timeout;
    if let (Some(secret), None) = (&gw.cfg.webhook_secret, bearer) {
        if !auth::verify_signature(secret.expose(), &headers, &bytes) {
            return unauthorized(&gw);
        }
    }

    // Parsing 25 MB is CPU work: keep it off the async workers.
    let plugins = gw.plugins.clone();
    let body = bytes.clone();
    let max_events = gw.cfg.max_events;
    let checked =
        match tokio::task::spawn_blocking(move || check_body(&body, &plugins, max_events)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e @ envelope::BodyError::TooManyElements { .. })) => {
                return json_error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            Ok(Err(e)) => return json_error(StatusCode::BAD_REQUEST, e.to_string()),
            Err(e) => {
                return json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("body check failed: {e}"),
                )
            }
        };
    let total = checked.len();
    // The elements' own state (ranges, envelopes) counts against the budget
    // too: a body of many tiny elements costs far more than its bytes.
    let all = gw.cfg.max_inflight_bytes.div_ceil(MIB);
    let extra = (total * ELEMENT_STATE_BYTES)
        .div_ceil(MIB)
        .min(all.saturating_sub(units));
    let _permit = if extra == 0 {
        permit
    } else {
        reserved.add((extra * MIB) as i64);
        match gw.inflight.try_acquire_many(extra as u32) {
            Ok(more) => {
                permit.merge(more);
                permit
            }
            // Not there now: give back what is held and wait for all of it at
            // once, so requests holding part of the budget never wait on
            // each other.
            Err(_) => {
                drop(permit);
                match gw.inflight.acquire_many((units + extra) as u32).await {
                    Ok(all_of_it) => all_of_it,
                    Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
                }
            }
        }
    };
    match publish_checked(&gw, &bytes, checked, &cid.0, deadline).await {
        Ok(resp) => {
            tracing::info!(
                events = total,
                accepted = resp.accepted,
                rejected = resp.rejected,
                duplicates = resp.duplicates,
                "webhook handled"
            );
            (StatusCode::OK, Json(resp)).into_response()
        }
        Err(failed) => {
            gw.health.set("jetstream", false);
            tracing::error!(events = total, failed, "JetStream did not ack every event");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("event store unavailable: {failed} of {total} events were not acknowledged; retry later"),
            )
        }
    }
}

/// Gateway memory per accepted element beyond its bytes (its range, its
/// envelope's strings), as counted against the in-flight budget.
const ELEMENT_STATE_BYTES: usize = 320;

/// Shows a reservation of the in-flight budget in the gauge while it lives.
struct Reserved<'a>(&'a prometheus::IntGauge, i64);

impl<'a> Reserved<'a> {
    fn new(gauge: &'a prometheus::IntGauge, bytes: i64) -> Self {
        gauge.add(bytes);
        Self(gauge, bytes)
    }

    fn add(&mut self, bytes: i64) {
        self.0.add(bytes);
        self.1 += bytes;
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.sub(self.1);
    }
}

fn unauthorized(gw: &Gateway) -> Response {
    gw.metrics.auth_failures.inc();
    json_error(
        StatusCode::UNAUTHORIZED,
        format!("missing or bad webhook signature ({SIGNATURE_HEADER} or bearer token)"),
    )
}

fn body_error(e: upload::BodyError) -> Response {
    let status = match e {
        upload::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        upload::BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        upload::BodyError::Read(_) => StatusCode::BAD_REQUEST,
    };
    json_error(status, e.to_string())
}

async fn discard(mut body: Body, max: usize) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

fn check_body(
    body: &Bytes,
    plugins: &PluginRuntime,
    max_events: usize,
) -> Result<Vec<Checked>, envelope::BodyError> {
    let base = body.as_ptr() as usize;
    let sources = plugins.sources();
    let elements = envelope::split(body, max_events)?;
    Ok(elements
        .into_iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            Checked {
                range: start..start + raw.get().len(),
                env: envelope::check(raw, |s| sources.iter().any(|k| k == s)),
            }
        })
        .collect())
}

/// Publishes accepted events (as slices) and dead letters; `Err(n)` when
/// the publishes of `n` events were not acked.
async fn publish_checked(
    gw: &Gateway,
    body: &Bytes,
    checked: Vec<Checked>,
    cid: &str,
    deadline: tokio::time::Instant,
) -> Result<WebhookResponse, usize> {
    let mut accepted_events = Vec::with_capacity(checked.len());
    let mut rejected = Vec::new();
    for (index, Checked { range, mut env }) in checked.into_iter().enumerate() {
        if env.reasons.is_empty() && range.len() > gw.max_event_bytes {
            env.reasons.push((
                "$".into(),
                format!(
                    "event is {} bytes, more than the {}-byte limit of one message",
                    range.len(),
                    gw.max_event_bytes
                ),
            ));
        }
        match env.source.take() {
            Some(source) if env.reasons.is_empty() => {
                accepted_events.push(slices::Accepted { source, range })
            }
            source => {
                env.source = source;
                rejected.push((index, env, body.slice(range)));
            }
        }
    }
    let slices = slices::build(
        body,
        accepted_events,
        gw.cfg.slice_events,
        gw.max_event_bytes + crate::wire::FRAME_OVERHEAD,
    );
    let outgoing: Vec<Outgoing> = slices
        .iter()
        .enumerate()
        .map(|(index, s)| Outgoing {
            index,
            subject: nats::slice_subject(&gw.nats.subject_prefix, &s.source),
            msg_id: crate::wire::slice_id(&s.source, &s.payload),
            payload: s.payload.clone(),
            events: Some(s.count),
        })
        .collect();
    let mut dead = Vec::with_capacity(rejected.len());
    // A dead letter's index is its position in `rejected`.
    for (position, (_, env, payload)) in rejected.iter().enumerate() {
        let letter = dead_letter(env, payload, gw.max_event_bytes, cid);
        let json = serde_json::to_vec(&letter).unwrap_or_default();
        dead.push(Outgoing {
            index: position,
            subject: gw.nats.dlq_subject("gateway"),
            msg_id: nats::message_id("dlq", &json),
            payload: Bytes::from(json),
            events: None,
        });
    }
    let budget = publish::Budget {
        concurrency: gw.cfg.publish_concurrency,
        deadline,
        retries: &gw.metrics.publish_retries,
    };
    let (acks, dead_acks) = tokio::join!(
        publish::publish_all(&gw.js, outgoing, cid, &budget),
        publish::publish_all(&gw.js, dead, cid, &budget),
    );

    let m = &gw.metrics;
    let (mut accepted, mut duplicates, mut failed) = (0, 0, 0);
    for (index, ack) in &acks {
        let slice = &slices[*index];
        let (source, n) = (slice.source.as_str(), slice.count);
        m.processed.with_label_values(&[source]).inc_by(n as u64);
        m.slices.with_label_values(&[source]).inc();
        match ack {
            Acked::Stored => {
                accepted += n;
                m.accepted.with_label_values(&[source]).inc_by(n as u64);
            }
            Acked::Duplicate => {
                duplicates += n;
                m.duplicates.with_label_values(&[source]).inc_by(n as u64);
            }
            Acked::Failed(e) => {
                failed += n;
                tracing::warn!(source, events = n, error = %e, "slice publish failed");
                m.failed
                    .with_label_values(&[source, "publish"])
                    .inc_by(n as u64);
            }
        }
    }
    for (position, ack) in &dead_acks {
        let (index, env, _) = &rejected[*position];
        let source = known_source(env).unwrap_or("unknown");
        m.processed.with_label_values(&[source]).inc();
        m.failed.with_label_values(&[source, "envelope"]).inc();
        if let Acked::Failed(e) = ack {
            failed += 1;
            tracing::warn!(index, error = %e, "dead-letter publish failed");
        }
    }
    if failed > 0 {
        return Err(failed);
    }
    let errors = rejected
        .into_iter()
        .take(gw.cfg.max_errors)
        .map(|(index, env, _)| ErrorEntry {
            index,
            event_id: env.event_id,
            reasons: env
                .reasons
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect(),
        })
        .collect();
    Ok(WebhookResponse {
        accepted,
        rejected: dead_acks.len(),
        duplicates,
        errors,
    })
}

/// The source label of a rejected event: its source when that one is known.
fn known_source(env: &envelope::Envelope) -> Option<&str> {
    env.source
        .as_deref()
        .filter(|_| env.reasons.iter().all(|r| r.0 != "source"))
}

fn dead_letter(env: &envelope::Envelope, payload: &[u8], max: usize, cid: &str) -> DeadLetter {
    // A dead letter must fit in one NATS message whatever the element held:
    // the raw event is kept up to a quarter of a message (JSON escaping can
    // double it; a reason says when it was cut) and every other field is
    // bounded.
    let keep = payload.len().min(max / 4);
    let raw = String::from_utf8_lossy(&payload[..keep]).into_owned();
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let mut reasons: Vec<serde_json::Value> = env
        .reasons
        .iter()
        .take(16)
        .map(|(field, message)| serde_json::json!({"field": cut(field, 256), "message": cut(message, 1024)}))
        .collect();
    if keep < payload.len() {
        reasons.push(serde_json::json!({"field": "$", "message": format!("raw cut to its first {keep} of {} bytes", payload.len())}));
    }
    DeadLetter {
        stage: "gateway".into(),
        source: env.source.as_deref().map(|s| cut(s, 64)),
        event_id: env
            .event_id
            .as_deref()
            .map(|s| cut(s, envelope::MAX_EVENT_ID_BYTES)),
        reasons: serde_json::Value::Array(reasons),
        raw,
        plugin_name: None,
        plugin_version: None,
        correlation_id: Some(cut(cid, 256)),
        dedup_key: None,
    }
}
