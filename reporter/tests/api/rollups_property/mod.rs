//! Property-style: on randomized data (duplicates, out-of-order batches,
//! microsecond edges, deletes and updates), every report equals the raw
//! computation and every rollup row equals a recount of the raw events.
//! Replay a failure with the `seed = …` it printed in `PROPTEST_SEED`.
mod generators;
mod migration;
mod monthly_partitions;
mod properties;
mod tables;

use crate::support::model::{demographics_report, events_report, revenue_report};
use crate::support::{Event, TestApp};
use generators::random_query;
use rand::{rngs::StdRng, Rng};

/// Random queries of each report, each answer compared with the model's.
async fn check_reports(app: &TestApp, rng: &mut StdRng, stored: &[Event], rounds: usize) {
    for _ in 0..rounds {
        let base = random_query(rng);
        let mut q = base.clone();
        if rng.gen_bool(0.3) {
            q = q.stage(["top", "bottom"][rng.gen_range(0..2)]);
        }
        if rng.gen_bool(0.3) {
            q = q.event_type(["comment", "video.view", "purchase", "order"][rng.gen_range(0..4)]);
        }
        let url = q.url("/api/v1/reports/events");
        assert_eq!(app.ok(&url).await, events_report(stored, &q), "{url}");

        let mut q = base.clone();
        if rng.gen_bool(0.3) {
            q = q.campaign(&format!("camp-{}", rng.gen_range(0..9)));
        }
        if rng.gen_bool(0.3) {
            q = q.limit(rng.gen_range(1..6));
        }
        let url = q.url("/api/v1/reports/revenue");
        assert_eq!(app.ok(&url).await, revenue_report(stored, &q), "{url}");

        let mut q = base;
        if rng.gen_bool(0.3) {
            q = q.limit(rng.gen_range(1..6));
        }
        let url = q.url("/api/v1/reports/demographics");
        assert_eq!(app.ok(&url).await, demographics_report(stored, &q), "{url}");
    }
}
