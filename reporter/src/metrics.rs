//! Report metrics (dashboards depend on these names):
//! - `reporter_report_duration_seconds{report}`: latency histogram;
//! - `reporter_requests_total{report, outcome}`: outcome is `success` (2xx),
//!   `client_error` (4xx, including 401) or `server_error` (5xx);
//! - `reporter_requests_in_flight{report}`: requests being served, labelled
//!   by report like the other two so one dashboard variable filters all.
//!
//! `report` is `events`, `revenue`, `demographics`, `dead_letters` (the
//! dead-letters list) or `dead_letters_summary`. The common
//! `http_*{service="reporter"}` metrics are recorded too, by
//! `events_common::http::instrument`.
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use events_common::metrics;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};
use std::time::Instant;

/// A report category, the `report` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Events,
    Revenue,
    Demographics,
    DeadLetters,
    DeadLettersSummary,
}

impl Report {
    pub const ALL: [Report; 5] = [
        Self::Events,
        Self::Revenue,
        Self::Demographics,
        Self::DeadLetters,
        Self::DeadLettersSummary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Revenue => "revenue",
            Self::Demographics => "demographics",
            Self::DeadLetters => "dead_letters",
            Self::DeadLettersSummary => "dead_letters_summary",
        }
    }
}

#[derive(Clone)]
pub struct ReportMetrics {
    duration: HistogramVec,
    requests: IntCounterVec,
    in_flight: IntGaugeVec,
}

impl ReportMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let duration = metrics::histogram_vec(
            registry,
            "reporter_report_duration_seconds",
            "Report latency, by report",
            &["report"],
            // Finer at the low end: the target is tens of milliseconds.
            vec![
                0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        )?;
        let requests = metrics::int_counter_vec(
            registry,
            "reporter_requests_total",
            "Report requests, by report and outcome",
            &["report", "outcome"],
        )?;
        let in_flight = metrics::int_gauge_vec(
            registry,
            "reporter_requests_in_flight",
            "Report requests being served, by report",
            &["report"],
        )?;
        // Pre-create every series so dashboards show zeros, not gaps.
        for r in Report::ALL {
            duration.with_label_values(&[r.as_str()]);
            in_flight.with_label_values(&[r.as_str()]);
            for o in ["success", "client_error", "server_error"] {
                requests.with_label_values(&[r.as_str(), o]);
            }
        }
        Ok(Self {
            duration,
            requests,
            in_flight,
        })
    }

    /// Middleware for one report's route.
    pub async fn track(
        State((metrics, report)): State<(ReportMetrics, Report)>,
        req: Request,
        next: Next,
    ) -> Response {
        let label = report.as_str();
        let gauge = metrics.in_flight.with_label_values(&[label]);
        // Decrements even if the request future is dropped mid-way (client
        // gone, shutdown), so the gauge cannot drift upwards.
        let _in_flight = InFlight::new(gauge);
        let start = Instant::now();
        let res = next.run(req).await;
        metrics
            .duration
            .with_label_values(&[label])
            .observe(start.elapsed().as_secs_f64());
        let status = res.status();
        let outcome = if status.is_server_error() {
            "server_error"
        } else if status.is_client_error() {
            "client_error"
        } else {
            "success"
        };
        metrics.requests.with_label_values(&[label, outcome]).inc();
        res
    }
}

struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
