//! From checked elements to the answer, in three steps: partition them into
//! slices of accepted events and dead letters, publish both, and tally the
//! acks into the metrics and the response.
use super::{
    elements::Checked,
    envelope,
    metrics::GatewayMetrics,
    publish::{self, Acked, Outgoing},
    slices::{self, Slice},
    Gateway,
};
use crate::{db::DeadLetter, nats, wire};
use bytes::Bytes;

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

/// An element refused at the envelope check: its index in the body, its
/// envelope (with the reasons) and its bytes.
struct Rejected {
    index: usize,
    env: envelope::Envelope,
    payload: Bytes,
}

/// Publishes accepted events (as slices) and dead letters; `Err(n)` when
/// the publishes of `n` events were not acked.
pub async fn publish_checked(
    gw: &Gateway,
    body: &Bytes,
    checked: Vec<Checked>,
    cid: &str,
    deadline: tokio::time::Instant,
) -> Result<WebhookResponse, usize> {
    let (accepted, rejected) = partition(gw.max_event_bytes, body, checked);
    let slices = slices::build(
        body,
        accepted,
        gw.cfg.slice_events,
        gw.max_event_bytes + wire::FRAME_OVERHEAD,
    );
    let budget = publish::Budget {
        concurrency: gw.cfg.publish_concurrency,
        deadline,
        retries: &gw.metrics.publish_retries,
    };
    let (acks, dead_acks) = tokio::join!(
        publish::publish_all(&gw.js, slice_messages(gw, &slices), cid, &budget),
        publish::publish_all(
            &gw.js,
            dead_letter_messages(gw, &rejected, cid),
            cid,
            &budget
        ),
    );
    let mut tally = tally_slices(&gw.metrics, &slices, &acks);
    tally.failed += tally_dead_letters(&gw.metrics, &rejected, &dead_acks);
    if tally.failed > 0 {
        return Err(tally.failed);
    }
    let errors = rejected
        .into_iter()
        .take(gw.cfg.max_errors)
        .map(|Rejected { index, env, .. }| ErrorEntry {
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
        accepted: tally.accepted,
        rejected: dead_acks.len(),
        duplicates: tally.duplicates,
        errors,
    })
}

/// Splits the elements into accepted events and rejected ones; an event
/// too large for one message is rejected here.
fn partition(
    max_event_bytes: usize,
    body: &Bytes,
    checked: Vec<Checked>,
) -> (Vec<slices::Accepted>, Vec<Rejected>) {
    let mut accepted = Vec::with_capacity(checked.len());
    let mut rejected = Vec::new();
    for (index, Checked { range, mut env }) in checked.into_iter().enumerate() {
        if env.reasons.is_empty() && range.len() > max_event_bytes {
            env.reasons.push((
                "$".into(),
                format!(
                    "event is {} bytes, more than the {max_event_bytes}-byte limit of one message",
                    range.len(),
                ),
            ));
        }
        match env.source.take() {
            Some(source) if env.reasons.is_empty() => {
                accepted.push(slices::Accepted { source, range })
            }
            source => {
                env.source = source;
                let payload = body.slice(range);
                rejected.push(Rejected {
                    index,
                    env,
                    payload,
                });
            }
        }
    }
    (accepted, rejected)
}

/// One message per slice; its index is its position in `slices`.
fn slice_messages(gw: &Gateway, slices: &[Slice]) -> Vec<Outgoing> {
    slices
        .iter()
        .enumerate()
        .map(|(index, s)| Outgoing {
            index,
            subject: nats::slice_subject(&gw.nats.subject_prefix, &s.source),
            msg_id: wire::slice_id(&s.source, &s.payload),
            payload: s.payload.clone(),
            events: Some(s.count),
        })
        .collect()
}

/// One dead letter per rejected element; its index is its position in
/// `rejected`.
fn dead_letter_messages(gw: &Gateway, rejected: &[Rejected], cid: &str) -> Vec<Outgoing> {
    rejected
        .iter()
        .enumerate()
        .map(|(position, r)| {
            let letter = dead_letter(&r.env, &r.payload, gw.max_event_bytes, cid);
            let json = serde_json::to_vec(&letter).unwrap_or_default();
            Outgoing {
                index: position,
                subject: gw.nats.dlq_subject("gateway"),
                msg_id: nats::message_id("dlq", &json),
                payload: Bytes::from(json),
                events: None,
            }
        })
        .collect()
}

/// Events by what JetStream said about their slice.
#[derive(Default)]
struct Tally {
    accepted: usize,
    duplicates: usize,
    failed: usize,
}

fn tally_slices(m: &GatewayMetrics, slices: &[Slice], acks: &[(usize, Acked)]) -> Tally {
    let mut tally = Tally::default();
    for (index, ack) in acks {
        let slice = &slices[*index];
        let (source, n) = (slice.source.as_str(), slice.count);
        m.processed.with_label_values(&[source]).inc_by(n as u64);
        m.slices.with_label_values(&[source]).inc();
        match ack {
            Acked::Stored => {
                tally.accepted += n;
                m.accepted.with_label_values(&[source]).inc_by(n as u64);
            }
            Acked::Duplicate => {
                tally.duplicates += n;
                m.duplicates.with_label_values(&[source]).inc_by(n as u64);
            }
            Acked::Failed(e) => {
                tally.failed += n;
                tracing::warn!(source, events = n, error = %e, "slice publish failed");
                m.failed
                    .with_label_values(&[source, "publish"])
                    .inc_by(n as u64);
            }
        }
    }
    tally
}

/// Counts the rejected events; returns how many dead letters were not acked.
fn tally_dead_letters(m: &GatewayMetrics, rejected: &[Rejected], acks: &[(usize, Acked)]) -> usize {
    let mut failed = 0;
    for (position, ack) in acks {
        let Rejected { index, env, .. } = &rejected[*position];
        let source = known_source(env).unwrap_or("unknown");
        m.processed.with_label_values(&[source]).inc();
        m.failed.with_label_values(&[source, "envelope"]).inc();
        if let Acked::Failed(e) = ack {
            failed += 1;
            tracing::warn!(index, error = %e, "dead-letter publish failed");
        }
    }
    failed
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
        plugin_digest: None,
        wit_version: None,
        correlation_id: Some(cut(cid, 256)),
        dedup_key: None,
    }
}
