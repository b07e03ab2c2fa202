//! Gateway counters, by source (`unknown` for sources without a plugin, so
//! input cannot explode label cardinality).
use events_common::metrics::{histogram, int_counter, int_counter_vec, int_gauge};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct GatewayMetrics {
    pub accepted: IntCounterVec,
    pub processed: IntCounterVec,
    pub failed: IntCounterVec,
    pub duplicates: IntCounterVec,
    /// JetStream messages published, one per slice of a source's events.
    pub slices: IntCounterVec,
    pub body_bytes: Histogram,
    pub auth_failures: IntCounter,
    /// Publishes retried (same message id) after an error or a lost ack.
    pub publish_retries: IntCounter,
    /// Bytes of the in-flight budget reserved by requests being read or
    /// processed (`GATEWAY_MAX_INFLIGHT_BYTES` is the ceiling).
    pub inflight_reserved: IntGauge,
}

impl GatewayMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let by_source = |name: &str, help: &str| int_counter_vec(registry, name, help, &["source"]);
        let accepted = by_source(
            "gateway_events_accepted_total",
            "Events acked by JetStream (new)",
        )?;
        let processed = by_source(
            "gateway_events_processed_total",
            "Events handled (accepted, rejected or duplicate)",
        )?;
        let failed = int_counter_vec(
            registry,
            "gateway_events_failed_total",
            "Events rejected at the envelope check or not published",
            &["source", "reason"],
        )?;
        let duplicates = by_source(
            "gateway_events_duplicate_total",
            "Events of slices JetStream dropped as exact re-sends",
        )?;
        let slices = by_source(
            "gateway_slices_published_total",
            "JetStream messages published, each a slice of one source's events",
        )?;
        let body_bytes = histogram(
            registry,
            "gateway_request_body_bytes",
            "Webhook body size",
            prometheus::exponential_buckets(1024.0, 4.0, 10)?,
        )?;
        let auth_failures = int_counter(
            registry,
            "gateway_webhook_auth_failures_total",
            "Webhook requests with a bad or missing signature",
        )?;
        let publish_retries = int_counter(
            registry,
            "gateway_publish_retries_total",
            "JetStream publishes retried with the same message id (a lost ack, a broker restart or election)",
        )?;
        let inflight_reserved = int_gauge(
            registry,
            "gateway_inflight_reserved_bytes",
            "Bytes of the in-flight budget (GATEWAY_MAX_INFLIGHT_BYTES) reserved by requests now",
        )?;
        Ok(Self {
            accepted,
            processed,
            failed,
            duplicates,
            slices,
            body_bytes,
            auth_failures,
            publish_retries,
            inflight_reserved,
        })
    }
}
