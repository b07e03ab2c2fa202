//! One way to create a Prometheus metric and register it, so every service's
//! metrics module is a list of names, helps and labels.
use prometheus::{
    core::Collector, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// A registry with the process collector (CPU, RSS, open fds) on Linux.
pub fn registry() -> prometheus::Result<Registry> {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// Registers `metric` and hands it back.
pub fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

pub fn int_counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(registry, IntCounter::new(name, help)?)
}

pub fn int_counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

pub fn int_gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(registry, IntGauge::new(name, help)?)
}

pub fn int_gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<Gauge> {
    register(registry, Gauge::new(name, help)?)
}

pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(registry, Histogram::with_opts(opts)?)
}

pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(registry, HistogramVec::new(opts, labels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_register_what_they_return() {
        let r = Registry::new();
        let c = int_counter_vec(&r, "things_total", "Things", &["kind"]).unwrap();
        c.with_label_values(&["a"]).inc_by(3);
        let h = histogram(&r, "took_seconds", "Took", vec![0.1, 1.0]).unwrap();
        h.observe(0.5);
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("things_total{kind=\"a\"} 3"), "{text}");
        assert!(text.contains("took_seconds_count 1"), "{text}");
        // The same name twice is the registry's error, not a panic.
        assert!(int_counter(&r, "things_total", "again").is_err());
    }
}
