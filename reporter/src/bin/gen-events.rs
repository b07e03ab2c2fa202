//! Loads realistic generated events into PostgreSQL for benchmarks and
//! demos, in the same shape as the collectors' insert (the months' partitions
//! first, then one statement claiming the keys in `event_claims` and
//! inserting the new rows), so the rollup triggers maintain the rollups as
//! in production.
//!
//! ```text
//! gen-events --database-url postgres://postgres@127.0.0.1:5432/events_bench \
//!            --events 10000000 --days 30 --end 2024-02-01T00:00:00Z
//! ```
//!
//! Events are generated in SQL (`gen-events.sql`) in time-ordered chunks,
//! like live traffic: each chunk covers the next time slice, shuffled, with
//! 1 % late arrivals up to two days old.
use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use events_common::db;
use sqlx::PgPool;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Load generated events into PostgreSQL (through the rollup triggers)")]
struct Args {
    /// Target database (created beforehand; migrations are applied).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// How many events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Over how many days, ending at `--end`.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// End of the generated period (default: now).
    #[arg(long)]
    end: Option<DateTime<Utc>>,
    /// Events per INSERT statement (one transaction each).
    #[arg(long, default_value_t = 50_000)]
    chunk: u64,
    /// Concurrent connections inserting.
    #[arg(long, default_value_t = 2)]
    jobs: u64,
}

const CHUNK_SQL: &str = include_str!("gen-events.sql");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.events > 0 && args.chunk > 0 && args.jobs > 0 && args.days > 0);
    let options: sqlx::postgres::PgConnectOptions =
        args.database_url.parse().context("bad --database-url")?;
    let pool = db::pool(&options, u32::try_from(args.jobs)?.saturating_add(1));
    db::migrate(&pool).await.context("migrations")?;

    let end = args.end.unwrap_or_else(Utc::now);
    let start = end - TimeDelta::days(i64::from(args.days));
    let chunks = args.events.div_ceil(args.chunk);
    let slice_secs = (end - start).num_milliseconds() as f64 / 1000.0 / chunks as f64;
    println!(
        "generating {} events from {start} to {end} in {chunks} chunks of {} ({} jobs)",
        args.events, args.chunk, args.jobs
    );

    let began = Instant::now();
    let mut workers = Vec::new();
    for job in 0..args.jobs {
        let pool = pool.clone();
        let (events, chunk, jobs) = (args.events, args.chunk, args.jobs);
        workers.push(tokio::spawn(async move {
            let mut inserted = 0u64;
            // Chunks in time order, interleaved across jobs.
            for k in (job..chunks).step_by(usize::try_from(jobs)?) {
                let n = chunk.min(events - k * chunk);
                let slice_start =
                    start + TimeDelta::milliseconds((slice_secs * 1000.0 * k as f64) as i64);
                inserted += insert_chunk(&pool, n, slice_start, slice_secs, start).await?;
                if job == 0 && k % (jobs * 10) == 0 {
                    let done = (k + 1) * chunk;
                    let secs = began.elapsed().as_secs_f64();
                    println!(
                        "  ~{done} events, {:.0} s, {:.0} events/s",
                        secs,
                        done as f64 / secs
                    );
                }
            }
            anyhow::Ok(inserted)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "inserted {total} events in {secs:.1} s ({:.0} events/s)",
        total as f64 / secs
    );
    sqlx::raw_sql(
        "ANALYZE events; ANALYZE rollup_events; ANALYZE rollup_revenue; \
         ANALYZE rollup_revenue_campaigns; ANALYZE rollup_demographics",
    )
    .execute(&pool)
    .await?;
    println!("analyzed");
    Ok(())
}

async fn insert_chunk(
    pool: &PgPool,
    n: u64,
    slice_start: DateTime<Utc>,
    slice_secs: f64,
    data_start: DateTime<Utc>,
) -> anyhow::Result<u64> {
    // Every month the chunk can touch: late arrivals go back up to two days.
    let first = (slice_start - TimeDelta::days(2)).max(data_start);
    let last = slice_start + TimeDelta::milliseconds((slice_secs * 1000.0) as i64);
    sqlx::query(
        "SELECT events_ensure_partitions(ARRAY(
             SELECT generate_series(events_month($1), $2, interval '1 month')) || $2)",
    )
    .bind(first)
    .bind(last)
    .execute(pool)
    .await
    .context("ensure partitions")?;
    let result = sqlx::query(CHUNK_SQL)
        .bind(i32::try_from(n)?)
        .bind(slice_start)
        .bind(slice_secs)
        .bind(data_start)
        .execute(pool)
        .await
        .context("insert chunk")?;
    Ok(result.rows_affected())
}
