//! Times every report over HTTP against one or more loaded databases and
//! prints p50/p95 per scenario, plus p95 ratios between the first and the
//! last database. Not a CI test: numbers are printed, not asserted.
//!
//! ```text
//! cargo run --release -p events-reporter --example report-bench -- \
//!     100k=postgres://postgres@127.0.0.1:5432/events_bench_100k \
//!     10M=postgres://postgres@127.0.0.1:5432/events_bench_10m
//! ```
//!
//! The app runs in-process (`startup::spawn` on 127.0.0.1:0) and requests
//! go one at a time over a keep-alive connection, so each number is one
//! report's full latency: parsing, SQL, JSON.
use chrono::{DateTime, Days, SecondsFormat, TimeDelta, Utc};
use events_reporter::{config::Config, startup};
use std::{collections::HashMap, time::Instant};

const REQUESTS: usize = 100;
const WARMUP: usize = 3;

struct Scenario {
    report: &'static str,
    filter: &'static str,
    window: &'static str,
    query: String,
}

fn scenarios(first: DateTime<Utc>, last: DateTime<Utc>) -> Vec<Scenario> {
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    // Whole days inside the data: the 30-day window is the full span by
    // dates; the 1-day windows are the day before the last one, as a date
    // and as a ragged 24 h that starts and ends mid-minute.
    let last_full = last
        .date_naive()
        .checked_sub_days(Days::new(1))
        .unwrap_or(last.date_naive());
    let ragged_from = last - TimeDelta::hours(36) + TimeDelta::milliseconds(1_023_456);
    let ragged_to = ragged_from + TimeDelta::hours(24);
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let windows: Vec<(&'static str, String)> = vec![
        ("all time", String::new()),
        ("30 days", format!("from={}&to={}", day(first), day(last))),
        (
            "1 day",
            format!("from={0}&to={0}", last_full.format("%Y-%m-%d")),
        ),
        (
            "ragged 24h",
            format!("from={}&to={}", rfc(ragged_from), rfc(ragged_to)),
        ),
    ];
    let filters: &[(&str, &str, &str)] = &[
        ("events", "none", ""),
        ("events", "source", "source=facebook"),
        ("events", "funnelStage", "funnelStage=top"),
        ("events", "eventType", "eventType=video.view"),
        (
            "events",
            "all three",
            "source=tiktok&funnelStage=top&eventType=comment",
        ),
        ("events", "granularity=hour", "granularity=hour"),
        ("revenue", "none", ""),
        ("revenue", "source", "source=tiktok"),
        ("revenue", "campaignId", "campaignId=cmp_black_friday"),
        ("revenue", "limit=5", "limit=5"),
        ("demographics", "none", ""),
        ("demographics", "source=facebook", "source=facebook"),
        ("demographics", "source=tiktok", "source=tiktok"),
        ("demographics", "limit=3", "limit=3"),
    ];
    let mut out = Vec::new();
    for (report, filter, fq) in filters {
        for (window, wq) in &windows {
            let query = [*fq, wq.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("&");
            out.push(Scenario {
                report,
                filter,
                window,
                query,
            });
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Target {
    label: String,
    app: startup::App,
    base: String,
    count: i64,
}

/// One scenario's timings on one database: key, p50, p95, max (ms).
type Row = (String, f64, f64, f64);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<(String, String)> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(l, u)| (l.to_string(), u.to_string()))
        })
        .collect();
    anyhow::ensure!(
        !args.is_empty(),
        "usage: report-bench LABEL=DATABASE_URL ..."
    );
    let (targets, span) = start_targets(args).await?;
    let (first, last) = span.ok_or_else(|| anyhow::anyhow!("no events"))?;
    let results = measure(&targets, first, last).await?;
    print_results(&targets, &results);
    for t in targets {
        t.app.stop().await?;
    }
    Ok(())
}

/// A reporter in-process per database, and the first database's time span
/// (every database is queried over the same windows).
async fn start_targets(
    args: Vec<(String, String)>,
) -> anyhow::Result<(Vec<Target>, Option<(DateTime<Utc>, DateTime<Utc>)>)> {
    let mut targets = Vec::new();
    let mut span = None;
    for (label, url) in args {
        let env = HashMap::from([
            ("DATABASE_URL".to_string(), url.clone()),
            ("LOG_LEVEL".to_string(), "warn".to_string()),
        ]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let app = startup::spawn(Config::from_source(&env)?, listener).await?;
        let base = format!("http://{}/api/v1/reports", app.addr);
        let pool = sqlx::PgPool::connect(&url).await?;
        let (count, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT count(*), min(occurred_at), max(occurred_at) FROM events")
                .fetch_one(&pool)
                .await?;
        pool.close().await;
        println!("{label}: {count} events, {first:?} .. {last:?}");
        if span.is_none() {
            span = first.zip(last);
        }
        targets.push(Target {
            label,
            app,
            base,
            count,
        });
    }
    Ok((targets, span))
}

/// Every scenario on every target. Requests alternate between the
/// databases, so that noise from other work on the machine hits every
/// dataset alike and the ratios compare like with like.
async fn measure(
    targets: &[Target],
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> anyhow::Result<Vec<Vec<Row>>> {
    let client = reqwest::Client::new();
    let mut results: Vec<Vec<Row>> = vec![Vec::new(); targets.len()];
    for s in scenarios(first, last) {
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(REQUESTS); targets.len()];
        for i in 0..WARMUP + REQUESTS {
            for (t, target) in targets.iter().enumerate() {
                let url = format!("{}/{}?{}", target.base, s.report, s.query);
                let start = Instant::now();
                let res = client.get(&url).send().await?;
                let status = res.status();
                let _body = res.bytes().await?;
                anyhow::ensure!(status.is_success(), "{url}: {status}");
                if i >= WARMUP {
                    times[t].push(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        let key = format!("{:<13} {:<17} {:<11}", s.report, s.filter, s.window);
        for (t, mut v) in times.into_iter().enumerate() {
            v.sort_by(f64::total_cmp);
            let stats = (percentile(&v, 0.5), percentile(&v, 0.95), v[v.len() - 1]);
            results[t].push((key.clone(), stats.0, stats.1, stats.2));
        }
    }
    Ok(results)
}

/// A table per database, then the p95 ratios of the last to the first.
fn print_results(targets: &[Target], results: &[Vec<Row>]) {
    for (target, rows) in targets.iter().zip(results) {
        println!(
            "\n== {}: {} events, {REQUESTS} requests each ==",
            target.label, target.count
        );
        println!(
            "{:<43} {:>8} {:>8} {:>8}",
            "report        filter            window", "p50 ms", "p95 ms", "max ms"
        );
        for (key, p50, p95, max) in rows {
            println!("{key} {p50:>8.2} {p95:>8.2} {max:>8.2}");
        }
    }
    if let ([small, .., big], [a, .., b]) = (targets, results) {
        println!("\n== p95({}) / p95({}) ==", big.label, small.label);
        let mut worst: f64 = 0.0;
        for ((key, _, pa, _), (_, _, pb, _)) in a.iter().zip(b) {
            let r = pb / pa;
            worst = worst.max(r);
            println!("{key} {r:>6.2}");
        }
        println!("worst ratio: {worst:.2}");
    }
}
