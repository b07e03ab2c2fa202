//! Per-plugin Prometheus metrics, labelled by plugin name, version and source
//! so a hot swap shows up as a new series.
use super::types::Identity;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

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
        let calls = IntCounterVec::new(
            Opts::new("plugin_calls_total", "normalize-batch calls per plugin"),
            &LABELS,
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "plugin_events_total",
                "Events through a plugin by outcome (in, ok, rejected)",
            ),
            &["plugin", "version", "source", "outcome"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new("plugin_failures_total", "Failed plugin calls by kind"),
            &["plugin", "version", "source", "kind"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "plugin_call_duration_seconds",
                "normalize-batch call latency",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14)?),
            &LABELS,
        )?;
        let loaded = IntGauge::new("plugins_loaded", "Plugins currently active")?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "plugin_reloads_total",
                "Plugin files picked up while running, by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
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
