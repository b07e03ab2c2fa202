//! One batch: the events of a few fetched slices, plugin once, one
//! transaction, commit, then ack every message.
use super::{Collector, Metrics};
use crate::{
    db::{DeadLetter, EventRow},
    nats::CORRELATION_HEADER,
    plugins::{CallError, EventResult, Lineage, Plugin},
    wire::{self, FramingError, COUNT_HEADER},
};
use async_nats::jetstream::{message::AckKind, Message};
use bytes::Bytes;
use std::{
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

/// A fetched message, split into its events once.
pub struct Incoming {
    pub msg: Message,
    pub correlation_id: Option<String>,
    /// The message's `Nats-Msg-Id` (a hash of the payload when it has none):
    /// names its dead letters, `<id>:<index in the slice>`, so a redelivery
    /// or an identical re-send is not recorded twice, and a re-created
    /// stream cannot make a new dead letter collide with an old one.
    pub msg_id: String,
    /// Where each event's bytes are in the payload, or why it cannot be split.
    pub events: Result<Vec<Range<usize>>, FramingError>,
    /// How many times JetStream has delivered it, this time included.
    pub delivered: i64,
}

impl Incoming {
    pub fn new(msg: Message) -> Self {
        let (correlation_id, msg_id, events) = parse(msg.headers.as_ref(), &msg.payload);
        let delivered = msg.info().map_or(1, |i| i.delivered);
        Self {
            msg,
            correlation_id,
            msg_id,
            events,
            delivered,
        }
    }

    /// Events in this message (a corrupt slice counts as one).
    pub fn len(&self) -> usize {
        self.events.as_ref().map_or(1, Vec::len)
    }
}

/// A message's correlation id, dead-letter key and event ranges.
pub(super) fn parse(
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> (
    Option<String>,
    String,
    Result<Vec<Range<usize>>, FramingError>,
) {
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let correlation_id = header(CORRELATION_HEADER);
    let msg_id = header(async_nats::header::NATS_MESSAGE_ID.as_ref())
        .unwrap_or_else(|| format!("xxh3:{:032x}", xxhash_rust::xxh3::xxh3_128(payload)));
    // No count header: one event per message, as earlier versions wrote.
    let events = wire::split(payload, header(COUNT_HEADER).as_deref());
    (correlation_id, msg_id, events)
}

/// Every event of a message that will not be processed again (delivered
/// `COLLECTOR_MAX_DELIVER` times) as a `delivery` dead letter saying why.
/// `correlation_id`, `msg_id` and `events` are the message's, from [`parse`].
pub(super) fn exhausted_letters(
    source: &str,
    payload: &Bytes,
    correlation_id: Option<&str>,
    msg_id: &str,
    events: &Result<Vec<Range<usize>>, FramingError>,
    delivered: i64,
) -> Vec<DeadLetter> {
    let why = format!(
        "delivered {delivered} times (COLLECTOR_MAX_DELIVER) without being stored: every attempt \
         was interrupted (a crash, kill or shutdown mid-write); dead-lettered instead of left \
         stranded in the stream"
    );
    let reasons = serde_json::json!([{"field": "$", "message": why}]);
    match events {
        Ok(ranges) => ranges
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let raw = String::from_utf8_lossy(&payload[r.clone()]).into_owned();
                DeadLetter {
                    stage: "delivery".into(),
                    source: Some(source.to_string()),
                    event_id: event_id_of(&raw),
                    reasons: reasons.clone(),
                    raw,
                    plugin_name: None,
                    plugin_version: None,
                    plugin_digest: None,
                    wit_version: None,
                    correlation_id: correlation_id.map(str::to_string),
                    dedup_key: Some(format!("{msg_id}:{index}")),
                }
            })
            .collect(),
        Err(e) => vec![corrupt_slice_letter(
            source,
            payload,
            correlation_id.map(str::to_string),
            msg_id,
            e,
        )],
    }
}

/// A slice that cannot be split, kept whole (hex-encoded: the framing is
/// binary) so nothing is lost.
fn corrupt_slice_letter(
    source: &str,
    payload: &[u8],
    correlation_id: Option<String>,
    msg_id: &str,
    e: &FramingError,
) -> DeadLetter {
    DeadLetter {
        stage: "delivery".into(),
        source: Some(source.to_string()),
        event_id: None,
        reasons: serde_json::json!([{"field": "$", "message": format!("slice cannot be split: {e}; kept whole, hex-encoded")}]),
        raw: format!("hex:{}", hex::encode(payload)),
        plugin_name: None,
        plugin_version: None,
        plugin_digest: None,
        wit_version: None,
        correlation_id,
        dedup_key: Some(format!("{msg_id}:slice")),
    }
}

/// One event of the batch: its bytes and where it came from.
struct Event<'a> {
    from: &'a Incoming,
    index: usize,
    bytes: Bytes,
}

impl Event<'_> {
    fn dead_letter(&self, source: &str, stage: &str, reasons: serde_json::Value) -> DeadLetter {
        let raw = String::from_utf8_lossy(&self.bytes).into_owned();
        DeadLetter {
            stage: stage.into(),
            source: Some(source.to_string()),
            event_id: event_id_of(&raw),
            reasons,
            raw,
            plugin_name: None,
            plugin_version: None,
            plugin_digest: None,
            wit_version: None,
            correlation_id: self.from.correlation_id.clone(),
            dedup_key: Some(format!("{}:{}", self.from.msg_id, self.index)),
        }
    }
}

fn event_id_of(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "eventId")]
        event_id: Option<String>,
    }
    serde_json::from_str::<Id>(raw)
        .ok()
        .and_then(|i| i.event_id)
}

/// Splits the batch into events. Corrupt slices become one dead letter
/// each; a message on its last delivery becomes dead letters unprocessed
/// (see [`exhausted_letters`]).
fn unpack<'a>(
    source: &str,
    batch: &'a [Incoming],
    max_deliver: i64,
) -> (Vec<Event<'a>>, Vec<DeadLetter>, usize) {
    let mut events = Vec::with_capacity(batch.iter().map(Incoming::len).sum());
    let mut dead = Vec::new();
    let mut exhausted = 0;
    for m in batch {
        if max_deliver > 0 && m.delivered >= max_deliver {
            exhausted += 1;
            dead.extend(exhausted_letters(
                source,
                &m.msg.payload,
                m.correlation_id.as_deref(),
                &m.msg_id,
                &m.events,
                m.delivered,
            ));
            continue;
        }
        match &m.events {
            Ok(ranges) => events.extend(ranges.iter().enumerate().map(|(index, r)| Event {
                from: m,
                index,
                bytes: m.msg.payload.slice(r.clone()),
            })),
            Err(e) => dead.push(corrupt_slice_letter(
                source,
                &m.msg.payload,
                m.correlation_id.clone(),
                &m.msg_id,
                e,
            )),
        }
    }
    (events, dead, exhausted)
}

/// The plugin's verdicts for the events. A failed call is retried event by
/// event so that one poisonous event cannot take its neighbours down; an
/// event that fails alone is dead-lettered with the failure as its reason.
async fn normalize(plugin: &Arc<Plugin>, events: &[Bytes]) -> Vec<Result<EventResult, CallError>> {
    match plugin.normalize_batch(events.to_vec()).await {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(plugin = %plugin.identity(), error = %e, events = events.len(), "batch call failed, retrying event by event");
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                let r = plugin.normalize_batch(vec![event.clone()]).await;
                out.push(r.and_then(|mut v| {
                    v.pop()
                        .ok_or_else(|| CallError::BadOutput("no result".into()))
                }));
            }
            out
        }
    }
}

pub async fn process(c: &Collector, source: &str, plugin: Arc<Plugin>, batch: Vec<Incoming>) {
    let started = Instant::now();
    let m: &Metrics = &c.metrics;
    let (events, mut dead, exhausted) = unpack(source, &batch, c.cfg.max_deliver);
    if exhausted > 0 {
        tracing::warn!(
            source,
            messages = exhausted,
            "messages on their last delivery dead-lettered"
        );
        m.max_deliveries
            .with_label_values(&[source, "last_delivery"])
            .inc_by(exhausted as u64);
    }
    let n = events.len() + dead.len();
    m.accepted.with_label_values(&[source]).inc_by(n as u64);
    m.batch_size.with_label_values(&[source]).observe(n as f64);

    let texts = readable(source, &events, &mut dead);
    let bytes: Vec<Bytes> = texts.iter().map(|(e, _)| e.bytes.clone()).collect();
    let verdicts = normalize(&plugin, &bytes).await;
    let rows = sort_verdicts(source, plugin.lineage(), &texts, &verdicts, &mut dead);

    let Some(written) = super::write::write(c, source, &batch, &rows, &dead).await else {
        // Shutting down mid-retry: hand the batch back for redelivery.
        for i in &batch {
            let _ = i
                .msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
        return;
    };
    ack_all(source, &batch).await;
    let inserted = written.inserted;
    let stored = (rows.len() - written.refused.len()) as u64;
    dead.extend(written.refused);
    count_stored(m, source, stored, inserted, &dead);
    m.batch_duration
        .with_label_values(&[source])
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(
        source,
        messages = batch.len(),
        events = n,
        inserted,
        dead = dead.len(),
        "batch committed"
    );
}

/// The events as text; one that is not UTF-8 (only a hand-made message can
/// be) becomes a dead letter: no plugin can read it.
fn readable<'a>(
    source: &str,
    events: &'a [Event<'a>],
    dead: &mut Vec<DeadLetter>,
) -> Vec<(&'a Event<'a>, &'a str)> {
    let mut texts = Vec::with_capacity(events.len());
    for e in events {
        match std::str::from_utf8(&e.bytes) {
            Ok(text) => texts.push((e, text)),
            Err(_) => dead.push(e.dead_letter(
                source,
                "delivery",
                serde_json::json!([{"field": "$", "message": "event is not valid UTF-8"}]),
            )),
        }
    }
    texts
}

/// The rows to store for the events the plugin normalized; the events it
/// rejected or failed on go to `dead`.
fn sort_verdicts<'a>(
    source: &str,
    id: &'a Lineage,
    texts: &[(&'a Event<'a>, &'a str)],
    verdicts: &'a [Result<EventResult, CallError>],
    dead: &mut Vec<DeadLetter>,
) -> Vec<EventRow<'a>> {
    let mut rows = Vec::with_capacity(texts.len());
    for ((event, text), verdict) in texts.iter().zip(verdicts) {
        let (stage, reasons) = match verdict {
            Ok(EventResult::Ok(normalized)) => {
                rows.push(EventRow {
                    event: normalized,
                    raw: text,
                    plugin: id,
                    correlation_id: event.from.correlation_id.as_deref(),
                });
                continue;
            }
            Ok(EventResult::Rejected(issues)) => {
                ("plugin", serde_json::to_value(issues).unwrap_or_default())
            }
            Err(e) => (
                "delivery",
                serde_json::json!([{"field": "$", "message": format!("plugin {} failed on this event ({}): {e}", id.identity, e.kind())}]),
            ),
        };
        let mut letter = event.dead_letter(source, stage, reasons);
        letter.plugin_name = Some(id.identity.name.clone());
        letter.plugin_version = Some(id.identity.version.clone());
        letter.plugin_digest = Some(id.digest.clone());
        letter.wit_version = Some(id.wit_version.clone());
        dead.push(letter);
    }
    rows
}

async fn ack_all(source: &str, batch: &[Incoming]) {
    let acks = futures::future::join_all(batch.iter().map(|i| i.msg.ack())).await;
    let ack_failures = acks.iter().filter(|a| a.is_err()).count();
    if ack_failures > 0 {
        // Committed but not acked: the redelivery is a harmless duplicate.
        tracing::warn!(
            source,
            ack_failures,
            "acks failed after commit; the events will be redelivered and deduplicated"
        );
    }
}

/// Rows stored (new or duplicates) are processed; every dead letter,
/// rows the database refused included, is a failed event.
fn count_stored(m: &Metrics, source: &str, stored: u64, inserted: u64, dead: &[DeadLetter]) {
    m.processed.with_label_values(&[source]).inc_by(stored);
    m.inserted.with_label_values(&[source]).inc_by(inserted);
    m.db_duplicates
        .with_label_values(&[source])
        .inc_by(stored - inserted.min(stored));
    for d in dead {
        m.failed.with_label_values(&[source, &d.stage]).inc();
        m.dead_letters.with_label_values(&[&d.stage, source]).inc();
    }
}
