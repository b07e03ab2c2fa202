//! (a) The floor: bare `COPY` of the same raw events into
//! `bare(event_id text UNIQUE, raw jsonb)` and nothing else.

use std::time::Instant;

use anyhow::{Context, Result};
use events_publisher::{Generator, GeneratorConfig};
use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection};

use crate::db;

#[derive(Debug, Clone, Serialize)]
pub struct CopyResult {
    pub events: u64,
    pub copy_bytes: u64,
    pub avg_event_json_bytes: u64,
    /// rows/s of every run, in order.
    pub runs_rows_per_sec: Vec<f64>,
    pub median_rows_per_sec: f64,
    pub best_rows_per_sec: f64,
    pub loadavg: String,
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// `n` valid, unique events as `(eventId, compact JSON)`, like a POST body's elements.
pub fn generate(n: usize, seed: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let mut gen = Generator::new(GeneratorConfig {
        seed: Some(seed),
        corrupt_post_rate: 0.0,
        ..Default::default()
    });
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = (n - out.len()).min(50_000);
        for ev in gen.next_batch(k).events {
            let id = ev
                .get("eventId")
                .and_then(|v| v.as_str())
                .context("event without eventId")?
                .to_owned();
            out.push((id, serde_json::to_vec(&ev)?));
        }
    }
    Ok(out)
}

/// COPY text rows `event_id \t raw` and the mean JSON size.
pub fn copy_text(events: &[(String, Vec<u8>)]) -> (Vec<u8>, u64) {
    let mut buf = Vec::with_capacity(events.len() * 700);
    let mut json_bytes = 0u64;
    for (id, raw) in events {
        json_bytes += raw.len() as u64;
        escape_into(&mut buf, id.as_bytes());
        buf.push(b'\t');
        escape_into(&mut buf, raw);
        buf.push(b'\n');
    }
    (buf, json_bytes / events.len().max(1) as u64)
}

/// Median of an ascending slice (0 when empty).
pub fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

pub async fn run(
    server_url: &str,
    db_name: &str,
    events: &[(String, Vec<u8>)],
    runs: usize,
) -> Result<CopyResult> {
    let n = events.len();
    let (buf, avg) = copy_text(events);
    eprintln!(
        "[copy] {n} events: {:.1} MB COPY text, avg {avg} B/event",
        buf.len() as f64 / 1e6
    );
    db::create_database(server_url, db_name).await?;
    let result = async {
        let mut conn = PgConnection::connect(&db::url(server_url, db_name)).await?;
        let mut rates = Vec::new();
        for i in 0..runs.max(1) {
            conn.execute("DROP TABLE IF EXISTS bare").await?;
            conn.execute("CREATE TABLE bare (event_id text UNIQUE, raw jsonb)")
                .await?;
            // Start every run from a clean checkpoint (less noise from the
            // previous run's dirty buffers); needs superuser, ignore if not.
            let _ = conn.execute("CHECKPOINT").await;
            let t = Instant::now();
            let mut copy = conn
                .copy_in_raw("COPY bare (event_id, raw) FROM STDIN")
                .await?;
            for chunk in buf.chunks(1 << 20) {
                copy.send(chunk).await?;
            }
            let rows = copy.finish().await?;
            let secs = t.elapsed().as_secs_f64();
            anyhow::ensure!(rows as usize == n, "COPY wrote {rows} rows, expected {n}");
            let rate = rows as f64 / secs;
            eprintln!(
                "[copy] run {}: {rows} rows in {secs:.2}s = {rate:.0} rows/s",
                i + 1
            );
            rates.push(rate.round());
        }
        conn.close().await?;
        let mut sorted = rates.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = median(&sorted);
        Ok::<_, anyhow::Error>(CopyResult {
            events: n as u64,
            copy_bytes: buf.len() as u64,
            avg_event_json_bytes: avg,
            best_rows_per_sec: *sorted.last().unwrap_or(&0.0),
            median_rows_per_sec: median,
            runs_rows_per_sec: rates,
            loadavg: crate::procfs::loadavg(),
        })
    }
    .await;
    db::drop_database(server_url, db_name).await?;
    result
}
