//! End to end: the real services, scraped by a real Prometheus with the
//! repository's scrape configuration, must give data for EVERY PromQL
//! expression of EVERY provisioned Grafana dashboard panel.
//!
//! Starts natively (no Docker): `events-host gateway`, `events-host collector`
//! (facebook) and (tiktok), `events-reporter`, against the local PostgreSQL
//! (a fresh database `deploy_<id>`) and NATS (unique JetStream stream names),
//! then Prometheus with `deploy/prometheus/prometheus.yml` rewritten to the
//! local ports. Drives traffic with `events-publisher` and a few reporter
//! requests, waits for scrapes, and evaluates every expression through
//! `/api/v1/query`, with Grafana's built-in interval variables (`$__range`,
//! `$__rate_interval`, `$__interval`) replaced by durations first.
//!
//! Needs the binaries (EVENTS_BIN_DIR, default /var/cache/events-target/debug)
//! and the plugins (dist/plugins/*.wasm); without them it prints `SKIPPED:`
//! and passes, unless DEPLOY_E2E_REQUIRED=1 (CI) makes that a failure.
//!
//! Knobs (environment):
//!   EVENTS_BIN_DIR                    where events-host / -reporter / -publisher are
//!   PROMETHEUS_BIN                    prometheus binary (default: `prometheus` on PATH)
//!   DEPLOY_E2E_ADMIN_DATABASE_URL     default postgres://postgres@127.0.0.1:5432/postgres
//!   DEPLOY_E2E_NATS_URL               default nats://127.0.0.1:4222
//!   DEPLOY_E2E_PUBLISHER_ARGS         default `--count 20000 --rate 10000 --no-progress`
//!   DEPLOY_E2E_REPORT_QUERY           query string for report requests
//!                                     (default from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z)
//!   DEPLOY_E2E_SCRAPE_INTERVAL        default 2s (the repository config says 5s)
//!   DEPLOY_E2E_READY_TIMEOUT_SECS     default 180
//!   DEPLOY_E2E_PUBLISHER_TIMEOUT_SECS default 300
//!   DEPLOY_E2E_METRICS_TIMEOUT_SECS   default 120
//!   DEPLOY_E2E_ENV_<NAME>=<value>     passed to every service as <NAME>=<value>
//!   DEPLOY_E2E_KEEP=1                 keep the temp dir (logs, TSDB) afterwards
//!
//! The stack is started once ([`stack`] the processes and their cleanup,
//! [`live`] the services and Prometheus, [`traffic`] the load); each named
//! check has its own module: [`scrape_targets`], [`alert_rules`],
//! [`readme_examples`], [`dashboard_exprs`].

mod alert_rules;
mod dashboard_exprs;
mod live;
mod readme_examples;
mod scrape_targets;
mod stack;
mod traffic;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use dashboard_exprs::dashboard_exprs;
use live::preconditions;
use readme_examples::readme_api_examples_return_data;
use stack::Stack;

/// The running stack: the services, Prometheus and where they listen.
struct Live {
    stack: Stack,
    bins: BTreeMap<&'static str, PathBuf>,
    ports: BTreeMap<&'static str, u16>,
    /// Stack indices of the services and Prometheus, checked while waiting.
    watched: [usize; 5],
    prom_url: String,
    target_count: usize,
    interval_secs: u64,
    client: reqwest::Client,
}

/// What the traffic step did, for the failure messages.
struct Traffic {
    publisher_args: String,
    pub_status: String,
    report_results: Vec<String>,
}

/// One started stack (about a minute to start) serves every live check;
/// each check is reported by name and a failure lists the ones that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stack_checks() {
    let Some((bins, plugins_dir, prometheus)) = preconditions() else {
        return;
    };
    let exprs = dashboard_exprs();
    let mut live = Live::start(bins, plugins_dir, prometheus).await;
    let mut failed = Vec::new();
    check(
        &mut failed,
        "every scrape target is up",
        live.scrape_targets_up().await,
    );
    check(
        &mut failed,
        "alert rules are healthy",
        live.alert_rules_healthy().await,
    );
    let traffic = live.drive_traffic().await;
    let (gateway, reporter) = (live.ports["gateway"], live.ports["reporter"]);
    let readme = tokio::spawn(readme_api_examples_return_data(gateway, reporter))
        .await
        .map_err(panic_message);
    check(&mut failed, "README API examples return data", readme);
    // At least two scrapes after the traffic.
    tokio::time::sleep(Duration::from_secs(2 * live.interval_secs + 1)).await;
    let every = live
        .every_dashboard_expr_returns_data(&exprs, &traffic)
        .await;
    check(
        &mut failed,
        "every dashboard expression returns data",
        every,
    );
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n\n"));
}

/// Reports one named check; a failure is kept with its reason.
fn check(failed: &mut Vec<String>, name: &str, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => println!("prometheus_e2e: {name}: ok"),
        Err(why) => {
            eprintln!("prometheus_e2e: {name}: FAILED");
            failed.push(format!("{name}: {why}"));
        }
    }
}

/// The message of a check that panicked.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => e.to_string(),
    }
}
