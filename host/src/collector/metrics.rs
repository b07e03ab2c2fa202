//! Collector metrics, labelled by collector type (the source).
use events_common::metrics;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

#[derive(Clone)]
pub struct CollectorMetrics {
    /// Events received from JetStream.
    pub accepted: IntCounterVec,
    /// Events stored or recognised as duplicates, and acked.
    pub processed: IntCounterVec,
    /// Events dead-lettered, by stage.
    pub failed: IntCounterVec,
    pub inserted: IntCounterVec,
    pub db_duplicates: IntCounterVec,
    pub batch_size: HistogramVec,
    pub batch_duration: HistogramVec,
    pub db_write: HistogramVec,
    pub pending: IntGaugeVec,
    pub dead_letters: IntCounterVec,
    pub db_retries: IntCounterVec,
    /// Messages dead-lettered because they reached `max_deliver`, by path:
    /// `last_delivery` (seen by a worker) or `advisory` (the backstop).
    pub max_deliveries: IntCounterVec,
}

impl CollectorMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let c = |name: &str, help: &str, labels: &[&str]| {
            metrics::int_counter_vec(registry, name, help, labels)
        };
        let h = |name: &str, help: &str, buckets: Vec<f64>| {
            metrics::histogram_vec(registry, name, help, &["collector"], buckets)
        };
        let secs = prometheus::exponential_buckets(0.001, 2.0, 14)?;
        Ok(Self {
            accepted: c(
                "collector_events_accepted_total",
                "Events received from JetStream",
                &["collector"],
            )?,
            processed: c(
                "collector_events_processed_total",
                "Events stored or recognised as duplicates, then acked",
                &["collector"],
            )?,
            failed: c(
                "collector_events_failed_total",
                "Events dead-lettered by the collector",
                &["collector", "stage"],
            )?,
            inserted: c(
                "collector_events_inserted_total",
                "New rows written to the events table",
                &["collector"],
            )?,
            db_duplicates: c(
                "collector_events_db_duplicates_total",
                "Valid events whose event id was already stored",
                &["collector"],
            )?,
            batch_size: h(
                "collector_batch_size",
                "Events per processed batch",
                prometheus::exponential_buckets(1.0, 2.0, 14)?,
            )?,
            batch_duration: h(
                "collector_batch_duration_seconds",
                "Fetch-to-ack time of a batch",
                secs.clone(),
            )?,
            db_write: h(
                "collector_db_write_duration_seconds",
                "Insert + commit time of a batch",
                secs,
            )?,
            pending: metrics::int_gauge_vec(
                registry,
                "collector_consumer_pending",
                "JetStream consumer lag: messages not yet delivered plus delivered but unacked",
                &["collector"],
            )?,
            dead_letters: c(
                "dead_letters_total",
                "Dead letters written, by stage and source",
                &["stage", "source"],
            )?,
            db_retries: c(
                "collector_db_retries_total",
                "Batch writes retried after a database error",
                &["collector"],
            )?,
            max_deliveries: c(
                "collector_max_deliveries_total",
                "Messages dead-lettered after reaching COLLECTOR_MAX_DELIVER, by path",
                &["collector", "path"],
            )?,
        })
    }
}
