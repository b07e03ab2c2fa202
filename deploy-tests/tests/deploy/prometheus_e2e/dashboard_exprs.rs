//! Check: every dashboard expression returns data from the live Prometheus.

use std::time::{Duration, Instant};

use deploy_tests::{all_exprs, prometheus_expr};
use serde_json::Value as Json;

use super::{stack::secs, Live, Traffic};

/// Evaluates `expr` now; Ok(the value of each series, NaN when unreadable)
/// or Err(reason).
async fn query(client: &reqwest::Client, prom: &str, expr: &str) -> Result<Vec<f64>, String> {
    let resp = client
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let body: Json = resp
        .json()
        .await
        .map_err(|e| format!("{status}: bad JSON: {e}"))?;
    if body.get("status").and_then(Json::as_str) != Some("success") {
        return Err(format!(
            "{status}: {} {}",
            body.get("errorType")
                .and_then(Json::as_str)
                .unwrap_or_default(),
            body.get("error").and_then(Json::as_str).unwrap_or_default()
        ));
    }
    let data = body.get("data").cloned().unwrap_or_default();
    match data.get("resultType").and_then(Json::as_str) {
        Some("vector") | Some("matrix") => {
            let values: Vec<f64> = data
                .get("result")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|series| {
                    series
                        .pointer("/value/1")
                        .and_then(Json::as_str)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN)
                })
                .collect();
            if values.is_empty() {
                Err("no data (empty result)".into())
            } else {
                Ok(values)
            }
        }
        Some(_) => Ok(vec![f64::NAN]),
        None => Err(format!("no resultType: {body}")),
    }
}

/// Every dashboard expression: (file, panel, expr as in the dashboard,
/// expr as sent to Prometheus).
pub(super) type Exprs = Vec<(String, String, String, String)>;

pub(super) fn dashboard_exprs() -> Exprs {
    all_exprs()
        .into_iter()
        .map(|(file, panel, expr)| {
            let sent = prometheus_expr(&expr)
                .unwrap_or_else(|why| panic!("{file} / {panel}: {why}: {expr}"));
            (file, panel, expr, sent)
        })
        .collect()
}

/// The live check below evaluates every panel, the ones this suite cares
/// most about included.
#[test]
pub(super) fn dashboard_exprs_cover_the_range_stats_and_key_panels() {
    let exprs = dashboard_exprs();
    assert!(!exprs.is_empty(), "no dashboard expressions");
    // The range stats and the stream-fill, DB-retry, plugins-loaded and
    // dead-letter-lag panels
    // are among what gets evaluated.
    for needle in [
        "[$__range]",
        "jetstream_stream_fill_ratio",
        "collector_db_retries_total",
        "plugins_loaded",
        "dead_letters_oldest_unwritten_age_seconds",
    ] {
        assert!(
            exprs.iter().any(|(_, _, expr, _)| expr.contains(needle)),
            "no dashboard expression uses {needle}"
        );
    }
}

impl Live {
    /// Every dashboard expression returns data (retried until
    /// DEPLOY_E2E_METRICS_TIMEOUT_SECS).
    pub(super) async fn every_dashboard_expr_returns_data(
        &mut self,
        exprs: &Exprs,
        traffic: &Traffic,
    ) -> Result<(), String> {
        let (client, prom_url, interval_secs) = (&self.client, &self.prom_url, self.interval_secs);
        let Traffic {
            publisher_args,
            pub_status,
            report_results,
        } = traffic;
        let substituted = exprs.iter().filter(|(_, _, e, s)| e != s).count();
        let deadline = Instant::now() + secs("DEPLOY_E2E_METRICS_TIMEOUT_SECS", 120);
        let failures = loop {
            for i in self.watched {
                self.stack.assert_running(i);
            }
            let mut failures = Vec::new();
            for (file, panel, expr, sent) in exprs {
                // The gateway stats over the range must count the traffic just
                // sent (increase() alone misses series first seen in the range).
                let counts_traffic = expr.contains("[$__range]")
                    && [
                        "gateway_events_accepted_total",
                        "gateway_events_processed_total",
                    ]
                    .iter()
                    .any(|m| expr.contains(m));
                let result = match query(client, prom_url, sent).await {
                    Ok(values) if counts_traffic && !values.iter().any(|v| *v > 0.0) => {
                        Err(format!(
                        "{values:?}: no events counted in the range after the publisher's traffic"
                    ))
                    }
                    other => other,
                };
                if let Err(why) = result {
                    let sent = if sent == expr {
                        String::new()
                    } else {
                        format!("\n      sent as {sent}")
                    };
                    failures.push(format!(
                        "{file} / {panel}:\n      {expr}{sent}\n      -> {why}"
                    ));
                }
            }
            if failures.is_empty() || Instant::now() > deadline {
                break failures;
            }
            tokio::time::sleep(Duration::from_secs(interval_secs.max(1))).await;
        };
        if !failures.is_empty() {
            // The metric names our services exported (Prometheus' own left out),
            // to spot a renamed metric at a glance.
            let names_body = match client
                .get(format!("{prom_url}/api/v1/label/__name__/values"))
                .send()
                .await
            {
                Ok(r) => match r.json::<Json>().await {
                    Ok(body) => body
                        .get("data")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Json::as_str)
                        .filter(|n| {
                            !["prometheus_", "go_", "net_", "promhttp_", "scrape_"]
                                .iter()
                                .any(|p| n.starts_with(p))
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            return Err(format!(
                "{} of {} dashboard expressions returned no data:\n  {}\n\n\
                 metric names scraped: {names_body}\n\n\
                 publisher {publisher_args:?}: {pub_status}\nreporter requests:\n  {}\n\n{}",
                failures.len(),
                exprs.len(),
                failures.join("\n  "),
                report_results.join("\n  "),
                self.stack.all_logs()
            ));
        }
        println!(
            "prometheus_e2e: all {} dashboard expressions returned data \
             ({substituted} with Grafana interval variables substituted)",
            exprs.len()
        );
        Ok(())
    }
}
