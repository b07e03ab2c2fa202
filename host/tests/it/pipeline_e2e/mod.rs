//! End to end with the real services: generated batches (duplicates,
//! corruptions, shuffled timestamps) through the gateway and collectors into
//! PostgreSQL, checked against the exact ledger field by field, the gateway's
//! answers and the Prometheus counters. Shared here: the generator's settings
//! and the counters' check.
mod corrupted_variants;
mod exclude;
mod lineage;
mod topologies;

use crate::support::pipeline::{Host, Pipeline};
use events_publisher::GeneratorConfig;
use std::time::{Duration, Instant};

fn gen_config(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed: Some(seed),
        duplicate_rate: 0.05,
        corrupt_post_rate: 0.6,
        shuffle_timestamps: true,
        ..Default::default()
    }
}

/// Sums a counter over several hosts.
async fn sum(hosts: &[&Host], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for h in hosts {
        total += h.metrics().await.sum(name, labels);
    }
    total
}

/// Gateway and collector counters agree with the answers and the tables.
async fn assert_metrics(
    p: &Pipeline,
    gateways: &[&Host],
    collectors: &[&Host],
    sent: f64,
    totals: (f64, f64, f64),
) {
    let start = Instant::now();
    loop {
        let stored = p.db.count("events").await as f64;
        let dead = p.db.count("dead_letters").await as f64;
        let gw_dead: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE stage = 'gateway'")
                .fetch_one(&p.db.pool)
                .await
                .unwrap();
        let actual = (
            sum(gateways, "gateway_events_processed_total", &[]).await,
            sum(gateways, "gateway_events_accepted_total", &[]).await,
            sum(
                gateways,
                "gateway_events_failed_total",
                &[("reason", "envelope")],
            )
            .await,
            sum(gateways, "gateway_events_duplicate_total", &[]).await,
            sum(collectors, "collector_events_processed_total", &[]).await
                - sum(collectors, "collector_events_db_duplicates_total", &[]).await,
            sum(collectors, "dead_letters_total", &[]).await,
            sum(collectors, "dead_letters_total", &[("stage", "gateway")]).await,
        );
        let expected = (
            sent,
            totals.0,
            totals.1,
            totals.2,
            stored,
            dead,
            gw_dead as f64,
        );
        if actual == expected {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "metrics (processed, accepted, rejected, duplicates, collector stored, dead letters, gateway dead letters) {actual:?} != ledger {expected:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
