//! Per-plugin Prometheus metrics, labelled by plugin name, version and source
//! so a hot swap shows up as a new series.
use super::types::Identity;
use events_common::metrics::{histogram_vec, int_counter_vec, int_gauge};
use prometheus::{HistogramVec, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct PluginMetrics {
    calls: IntCounterVec,
    events: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    pub loaded: IntGauge,
    pub reloads: IntCounterVec,
}

const LABELS: [&str; 3] = ["plugin", "version", "source"];

impl PluginMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let calls = int_counter_vec(
            registry,
            "plugin_calls_total",
            "normalize-batch calls per plugin",
            &LABELS,
        )?;
        let events = int_counter_vec(
            registry,
            "plugin_events_total",
            "Events through a plugin by outcome (in, ok, rejected)",
            &["plugin", "version", "source", "outcome"],
        )?;
        let failures = int_counter_vec(
            registry,
            "plugin_failures_total",
            "Failed plugin calls by kind",
            &["plugin", "version", "source", "kind"],
        )?;
        let duration = histogram_vec(
            registry,
            "plugin_call_duration_seconds",
            "normalize-batch call latency",
            &LABELS,
            prometheus::exponential_buckets(0.0005, 2.0, 14)?,
        )?;
        let loaded = int_gauge(registry, "plugins_loaded", "Plugins currently active")?;
        let reloads = int_counter_vec(
            registry,
            "plugin_reloads_total",
            "Plugin files picked up while running, by result",
            &["result"],
        )?;
        Ok(Self {
            calls,
            events,
            failures,
            duration,
            loaded,
            reloads,
        })
    }

    /// Metrics not registered anywhere (for `plugin check` and benches).
    pub fn unregistered() -> Self {
        // Registering into a throwaway registry cannot collide.
        match Self::new(&Registry::new()) {
            Ok(m) => m,
            Err(e) => unreachable!("fresh registry rejected plugin metrics: {e}"),
        }
    }

    pub fn record_call(
        &self,
        id: &Identity,
        seconds: f64,
        events_in: usize,
        ok: usize,
        rejected: usize,
    ) {
        let l = [id.name.as_str(), id.version.as_str(), id.source.as_str()];
        self.calls.with_label_values(&l).inc();
        self.duration.with_label_values(&l).observe(seconds);
        for (outcome, n) in [("in", events_in), ("ok", ok), ("rejected", rejected)] {
            self.events
                .with_label_values(&[l[0], l[1], l[2], outcome])
                .inc_by(n as u64);
        }
    }

    pub fn record_failure(&self, id: &Identity, seconds: f64, events_in: usize, kind: &str) {
        let l = [id.name.as_str(), id.version.as_str(), id.source.as_str()];
        self.calls.with_label_values(&l).inc();
        self.duration.with_label_values(&l).observe(seconds);
        self.events
            .with_label_values(&[l[0], l[1], l[2], "in"])
            .inc_by(events_in as u64);
        self.failures
            .with_label_values(&[l[0], l[1], l[2], kind])
            .inc();
    }
}
