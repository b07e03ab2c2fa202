//! Gateway counters, by source (`unknown` for sources without a plugin, so
//! input cannot explode label cardinality).
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
        let accepted = IntCounterVec::new(
            Opts::new(
                "gateway_events_accepted_total",
                "Events acked by JetStream (new)",
            ),
            &["source"],
        )?;
        let processed = IntCounterVec::new(
            Opts::new(
                "gateway_events_processed_total",
                "Events handled (accepted, rejected or duplicate)",
            ),
            &["source"],
        )?;
        let failed = IntCounterVec::new(
            Opts::new(
                "gateway_events_failed_total",
                "Events rejected at the envelope check or not published",
            ),
            &["source", "reason"],
        )?;
        let duplicates = IntCounterVec::new(
            Opts::new(
                "gateway_events_duplicate_total",
                "Events of slices JetStream dropped as exact re-sends",
            ),
            &["source"],
        )?;
        let slices = IntCounterVec::new(
            Opts::new(
                "gateway_slices_published_total",
                "JetStream messages published, each a slice of one source's events",
            ),
            &["source"],
        )?;
        let body_bytes = Histogram::with_opts(
            HistogramOpts::new("gateway_request_body_bytes", "Webhook body size")
                .buckets(prometheus::exponential_buckets(1024.0, 4.0, 10)?),
        )?;
        let auth_failures = IntCounter::new(
            "gateway_webhook_auth_failures_total",
            "Webhook requests with a bad or missing signature",
        )?;
        registry.register(Box::new(accepted.clone()))?;
        registry.register(Box::new(processed.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(slices.clone()))?;
        registry.register(Box::new(body_bytes.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        let publish_retries = IntCounter::new(
            "gateway_publish_retries_total",
            "JetStream publishes retried with the same message id (a lost ack, a broker restart or election)",
        )?;
        registry.register(Box::new(publish_retries.clone()))?;
        let inflight_reserved = IntGauge::new(
            "gateway_inflight_reserved_bytes",
            "Bytes of the in-flight budget (GATEWAY_MAX_INFLIGHT_BYTES) reserved by requests now",
        )?;
        registry.register(Box::new(inflight_reserved.clone()))?;
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
