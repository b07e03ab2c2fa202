//! NATS JetStream: connection, idempotent stream/consumer setup, subjects and
//! message ids.
//!
//! Subjects: the gateway publishes slices of one source's events (see
//! [`crate::wire`]) on `<prefix>.<source>.batch`. Collectors filter on
//! `<prefix>.<source>.>`, which also matches the per-event subjects
//! (`<prefix>.<source>.<funnel>.<type>`) earlier versions wrote, so a backlog
//! left by them is still consumed.
use crate::config::{CollectorConfig, NatsConfig};
use async_nats::jetstream::{self, consumer, context::GetStreamErrorKind, stream, ErrorCode};
use events_common::backoff::Backoff;
use events_common::health::Health;
use std::time::Duration;

pub const CORRELATION_HEADER: &str = "Correlation-Id";

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to NATS: {0}")]
    Connect(#[source] async_nats::ConnectError),
    #[error("JetStream setup failed: stream {name}: {source}")]
    CreateStream {
        name: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("JetStream setup failed: stream {name}: {source}")]
    GetStream {
        name: String,
        #[source]
        source: jetstream::context::GetStreamError,
    },
    #[error("JetStream setup failed: consumer {name}: {source}")]
    Consumer {
        name: String,
        #[source]
        source: stream::ConsumerError,
    },
    /// `stop` fired while waiting for NATS; the text says for what.
    #[error("JetStream setup failed: shutdown before {0}")]
    Stopped(&'static str),
}

/// Connects, reporting connection state to the `nats` readiness check.
/// Retries the first connection too, so a service can start before NATS.
pub async fn connect(cfg: &NatsConfig, health: &Health) -> Result<async_nats::Client, NatsError> {
    health.register("nats");
    let h = health.clone();
    let wait = cfg.reconnect_time_wait;
    let client = async_nats::ConnectOptions::new()
        .name(&cfg.name)
        .max_reconnects(cfg.max_reconnect_attempts)
        .reconnect_delay_callback(move |attempts| {
            wait.min(Duration::from_millis(100) * attempts.max(1) as u32)
        })
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let h = h.clone();
            async move {
                match event {
                    async_nats::Event::Connected => h.set("nats", true),
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        h.set("nats", false)
                    }
                    other => tracing::warn!(event = %other, "nats event"),
                }
            }
        })
        .connect(cfg.servers.as_slice())
        .await
        .map_err(NatsError::Connect)?;
    if client.connection_state() == async_nats::connection::State::Connected {
        health.set("nats", true);
    }
    Ok(client)
}

/// A JetStream context with bounded in-flight publish acks (backpressure
/// instead of errors when the bound is reached).
pub fn jetstream(client: async_nats::Client, max_inflight: usize) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .max_ack_inflight(max_inflight)
        .backpressure_on_inflight(true)
        .timeout(Duration::from_secs(10))
        .build(client)
}

/// The events and dead-letter streams as configured. Work-queue retention:
/// a message leaves the stream once a collector acked it, so the stream
/// holds exactly the backlog. `discard: new` makes a full stream refuse
/// publishes (the gateway answers 503) instead of silently dropping the
/// oldest unprocessed events.
fn stream_configs(cfg: &NatsConfig) -> [stream::Config; 2] {
    [
        (&cfg.stream, format!("{}.>", cfg.subject_prefix)),
        (&cfg.dlq_stream, format!("{}_dlq.>", cfg.subject_prefix)),
    ]
    .map(|(name, subjects)| stream::Config {
        name: name.clone(),
        subjects: vec![subjects],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        duplicate_window: cfg.duplicate_window,
        max_bytes: cfg.max_bytes,
        max_age: cfg.max_age,
        num_replicas: cfg.replicas,
        ..Default::default()
    })
}

/// Creates or updates the events and dead-letter streams. Only the gateway
/// does this (at startup, and when a stream went missing): one role owns the
/// stream settings, so a collector started with other defaults cannot change
/// them.
pub async fn ensure_streams(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), NatsError> {
    for config in stream_configs(cfg) {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|source| NatsError::CreateStream { name, source })?;
    }
    Ok(())
}

/// For collectors: waits until the gateway has created both streams, then
/// warns about every setting that differs from this process's configuration
/// (the gateway's settings stay in force).
pub async fn wait_for_streams(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(), NatsError> {
    for wanted in stream_configs(cfg) {
        let mut backoff = Backoff::new(Duration::from_millis(200));
        let actual = loop {
            match js.get_stream(&wanted.name).await {
                Ok(mut s) => match s.info().await {
                    Ok(info) => break info.config.clone(),
                    Err(e) => {
                        tracing::warn!(stream = %wanted.name, error = %e, "stream info unavailable, retrying")
                    }
                },
                Err(e) => {
                    tracing::warn!(stream = %wanted.name, error = %e, "waiting for the gateway to create the stream")
                }
            }
            if !backoff.sleep(stop).await {
                return Err(NatsError::Stopped("the streams existed"));
            }
        };
        for (setting, theirs, ours) in [
            (
                "subjects",
                format!("{:?}", actual.subjects),
                format!("{:?}", wanted.subjects),
            ),
            (
                "JETSTREAM_MAX_BYTES",
                actual.max_bytes.to_string(),
                wanted.max_bytes.to_string(),
            ),
            (
                "JETSTREAM_MAX_AGE_SECS",
                actual.max_age.as_secs().to_string(),
                wanted.max_age.as_secs().to_string(),
            ),
            (
                "JETSTREAM_DUPLICATE_WINDOW_SECS",
                actual.duplicate_window.as_secs().to_string(),
                wanted.duplicate_window.as_secs().to_string(),
            ),
            (
                "JETSTREAM_REPLICAS",
                actual.num_replicas.to_string(),
                wanted.num_replicas.to_string(),
            ),
        ] {
            if theirs != ours {
                tracing::warn!(stream = %wanted.name, setting, in_force = %theirs, configured_here = %ours, "stream setting differs from this collector's configuration; the gateway's stays in force");
            }
        }
    }
    Ok(())
}

/// Retries [`ensure_streams`] until it succeeds or `stop` fires.
pub async fn ensure_streams_with_retry(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(), NatsError> {
    let mut backoff = Backoff::new(Duration::from_millis(200));
    loop {
        match ensure_streams(js, cfg).await {
            Ok(()) => return Ok(()),
            Err(e) if !stop.is_cancelled() => {
                tracing::warn!(error = %e, "JetStream not ready, retrying");
            }
            Err(e) => return Err(e),
        }
        if !backoff.sleep(stop).await {
            return Err(NatsError::Stopped("JetStream was ready"));
        }
    }
}

/// The durable pull consumer shared by every collector replica of `source`.
pub async fn source_consumer(
    js: &jetstream::Context,
    nats: &NatsConfig,
    cfg: &CollectorConfig,
    source: &str,
) -> Result<consumer::PullConsumer, NatsError> {
    durable(
        js,
        &nats.stream,
        &format!("collector-{source}"),
        format!("{}.{source}.>", nats.subject_prefix),
        cfg,
        cfg.max_deliver,
    )
    .await
}

/// The durable consumer that moves dead letters into PostgreSQL. Unlimited
/// deliveries: a dead letter has nowhere further to go, and a limit would
/// strand it in the work queue (nats-server keeps such a message, unseen).
pub async fn dlq_consumer(
    js: &jetstream::Context,
    nats: &NatsConfig,
    cfg: &CollectorConfig,
) -> Result<consumer::PullConsumer, NatsError> {
    durable(
        js,
        &nats.dlq_stream,
        "dead-letter-writer",
        format!("{}_dlq.>", nats.subject_prefix),
        cfg,
        -1,
    )
    .await
}

async fn durable(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: String,
    cfg: &CollectorConfig,
    max_deliver: i64,
) -> Result<consumer::PullConsumer, NatsError> {
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|source| NatsError::GetStream {
            name: stream.to_string(),
            source,
        })?;
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.to_string()),
            filter_subject: filter,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            max_deliver,
            max_ack_pending: cfg.max_ack_pending,
            max_batch: cfg.batch_size as i64,
            ..Default::default()
        })
        .await
        .map_err(|source| NatsError::Consumer {
            name: name.to_string(),
            source,
        })
}

/// The advisory nats-server publishes when a consumer's message reached its
/// `max_deliver` and will not be delivered again.
pub fn max_deliveries_subject(stream: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.*")
}

/// Gauges of the streams, set by the readiness probe.
#[derive(Clone)]
pub struct StreamGauges {
    oldest: prometheus::Gauge,
    fill: prometheus::Gauge,
    dead_letters_oldest: prometheus::Gauge,
}

impl StreamGauges {
    pub fn new(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| events_common::metrics::gauge(registry, name, help);
        Ok(Self {
            oldest: gauge(
                "jetstream_oldest_unprocessed_age_seconds",
                "Age of the oldest unprocessed message in the events stream (0 when empty)",
            )?,
            fill: gauge(
                "jetstream_stream_fill_ratio",
                "Bytes in the events stream over its max_bytes (0 when unlimited); at 1 publishes are refused",
            )?,
            dead_letters_oldest: gauge(
                "dead_letters_oldest_unwritten_age_seconds",
                "Age of the oldest refused event not yet written to dead_letters (0 when none)",
            )?,
        })
    }

    fn observe(&self, info: &stream::Info) {
        self.oldest.set(oldest_age(info));
        let max = info.config.max_bytes;
        self.fill.set(if max > 0 {
            info.state.bytes as f64 / max as f64
        } else {
            0.0
        });
    }
}

/// Seconds since the oldest message in the stream was stored (0 if empty).
fn oldest_age(info: &stream::Info) -> f64 {
    let state = &info.state;
    if state.messages == 0 {
        return 0.0;
    }
    let first_ms = (state.first_timestamp.unix_timestamp_nanos() / 1_000_000) as i64;
    (chrono::Utc::now().timestamp_millis() - first_ms).max(0) as f64 / 1000.0
}

/// One readiness probe of both streams: sets the gauges and, for the owner
/// of the streams (the gateway), re-creates a missing one. Ready while the
/// events stream exists and is under 99% full.
pub async fn probe_streams(
    js: &jetstream::Context,
    cfg: &NatsConfig,
    gauges: &StreamGauges,
    owns_streams: bool,
) -> bool {
    let events = js.get_stream(&cfg.stream).await;
    let dead_letters = js.get_stream(&cfg.dlq_stream).await;
    if let Ok(s) = &dead_letters {
        gauges.dead_letters_oldest.set(oldest_age(s.cached_info()));
    }
    let missing = [&events, &dead_letters].into_iter().any(|r| {
        matches!(r, Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
            if j.error_code() == ErrorCode::STREAM_NOT_FOUND))
    });
    if owns_streams && missing {
        tracing::warn!("a stream is missing, re-creating it");
        if let Err(e) = ensure_streams(js, cfg).await {
            tracing::warn!(error = %e, "cannot re-create the streams yet");
        }
    }
    match events {
        Ok(s) => {
            let info = s.cached_info();
            gauges.observe(info);
            info.config.max_bytes < 0
                || (info.state.bytes as i64) < info.config.max_bytes / 100 * 99
        }
        Err(_) => false,
    }
}

/// The subject a slice of `source`'s events is published on.
pub fn slice_subject(prefix: &str, source: &str) -> String {
    format!("{prefix}.{source}.batch")
}

/// `Nats-Msg-Id` of a one-event message (a gateway dead letter; earlier
/// versions' events): a label plus a hash of the exact bytes, so an exact
/// re-send is dropped by JetStream and different bytes never are.
pub fn message_id(event_id: &str, bytes: &[u8]) -> String {
    let hash = xxhash_rust::xxh3::xxh3_128(bytes);
    // NATS header values must not contain CR/LF; ids are bounded and escaped.
    let id: String = event_id
        .chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!("{id}:{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_subjects_match_the_collector_filter() {
        assert_eq!(slice_subject("events", "facebook"), "events.facebook.batch");
    }

    #[test]
    fn message_ids_differ_by_body_not_only_id() {
        let a = message_id("fb-1", br#"{"eventId":"fb-1","x":1}"#);
        let b = message_id("fb-1", br#"{"eventId":"fb-1","x":2}"#);
        assert_ne!(a, b);
        assert_eq!(a, message_id("fb-1", br#"{"eventId":"fb-1","x":1}"#));
        assert!(a.starts_with("fb-1:"));
        assert!(!message_id("a\r\nb", b"{}").contains('\n'));
    }
}
