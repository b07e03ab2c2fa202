//! (a″) The real-schema floor: `COPY` of the rows the pipeline would store
//! into the real `events` table — every index, constraint and rollup trigger
//! of `migrations/` — in a fresh database per run.
//!
//! The rows are the bare COPY's generated events normalized by the native
//! source plugins (`facebook-plugin`, `tiktok-plugin`, the same code the
//! wasm components run), with every column the collector writes:
//! `raw` is the event's JSON text as it appears in the POST body, plugin
//! name/version come from the plugin's identity, and the correlation id is
//! one UUID-shaped id per 50,000 events (the gateway sets one per POST).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::copy::escape_into;
use crate::db;

/// Columns in the order of the COPY text (`host/src/db/events.rs`'s list).
const COLUMNS: &str = "event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue, \
     campaign_id, age, gender, country, city, followers, device, raw, plugin_name, \
     plugin_version, correlation_id";

/// Events per correlation id (one id per POST in the pipeline).
const EVENTS_PER_CORRELATION_ID: usize = 50_000;

#[derive(Debug, Clone, Serialize)]
pub struct CopyRealResult {
    pub events: u64,
    pub copy_bytes: u64,
    /// Native plugin normalize time per event (not part of the floor).
    pub normalize_us_per_event: f64,
    /// rows/s of every run, in order (COPY only, not database creation or migrations).
    pub runs_rows_per_sec: Vec<f64>,
    pub median_rows_per_sec: f64,
    pub best_rows_per_sec: f64,
    /// After each run: rollup_events' daily total equalled the row count
    /// (the insert trigger saw every row).
    pub rollups_checked: bool,
    pub loadavg: String,
}

#[derive(serde::Deserialize)]
struct SourceOnly<'a> {
    source: &'a str,
}

/// Appends one COPY text field: `\N` for NULL, else the escaped text.
fn field(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(s) => escape_into(out, s.as_bytes()),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
}

/// Normalizes `events` with the native plugins and returns the COPY text
/// (18 tab-separated columns, see [`COLUMNS`]).
pub fn copy_text(events: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let fb = facebook_plugin::identity();
    let ttk = tiktok_plugin::identity();
    let mut buf = Vec::with_capacity(events.len() * 800);
    for (i, (id, raw)) in events.iter().enumerate() {
        let raw = std::str::from_utf8(raw).context("event JSON is not UTF-8")?;
        // The gateway routes on `source`, so does this.
        let source: SourceOnly =
            serde_json::from_str(raw).with_context(|| format!("event {id}: no string `source`"))?;
        let (result, plugin) = match source.source {
            "facebook" => (facebook_plugin::normalize(raw), &fb),
            "tiktok" => (tiktok_plugin::normalize(raw), &ttk),
            other => bail!("event {id}: no plugin for source {other:?}"),
        };
        let e = match result {
            Ok(e) => e,
            Err(issues) => bail!("event {id} rejected by {}: {issues:?}", plugin.name),
        };
        anyhow::ensure!(e.event_id == *id, "event {id}: plugin says {}", e.event_id);
        let occurred =
            chrono::DateTime::from_timestamp(e.occurred_at.seconds, e.occurred_at.nanoseconds)
                .with_context(|| format!("event {id}: timestamp out of range"))?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let d = &e.demographics;
        field(&mut buf, Some(&e.event_id));
        field(&mut buf, Some(&e.source));
        field(&mut buf, Some(e.funnel_stage.as_str()));
        field(&mut buf, Some(&e.event_type));
        field(&mut buf, Some(&occurred));
        field(&mut buf, Some(&e.user_id));
        field(&mut buf, e.revenue.as_deref());
        field(&mut buf, e.campaign_id.as_deref());
        let age = d.age.map(|a| a.to_string());
        field(&mut buf, age.as_deref());
        field(&mut buf, d.gender.as_deref());
        field(&mut buf, d.country.as_deref());
        field(&mut buf, d.city.as_deref());
        let followers = d.followers.map(|f| f.to_string());
        field(&mut buf, followers.as_deref());
        field(&mut buf, d.device.as_deref());
        field(&mut buf, Some(raw));
        field(&mut buf, Some(&plugin.name));
        field(&mut buf, Some(&plugin.version));
        let chunk = (i / EVENTS_PER_CORRELATION_ID) as u64;
        field(
            &mut buf,
            Some(&format!("00000000-0000-4000-8000-{chunk:012x}")),
        );
        // Replace the last tab with the row's newline.
        buf.pop();
        buf.push(b'\n');
    }
    Ok(buf)
}

/// `--migrations-dir`, or `migrations/` of the source tree this binary was built from.
pub fn migrations_dir(given: Option<&Path>) -> std::path::PathBuf {
    match given {
        Some(p) => p.to_owned(),
        None => {
            let cwd = Path::new("migrations");
            if cwd.is_dir() {
                cwd.to_owned()
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
            }
        }
    }
}

pub async fn run(
    server_url: &str,
    db_name: &str,
    migrations: &Path,
    events: &[(String, Vec<u8>)],
    runs: usize,
) -> Result<CopyRealResult> {
    let n = events.len();
    let t = Instant::now();
    let buf = copy_text(events)?;
    let normalize_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "[copyreal] {n} events normalized in {normalize_secs:.2}s: {:.1} MB COPY text; migrations from {}",
        buf.len() as f64 / 1e6,
        migrations.display()
    );
    let migrator = sqlx::migrate::Migrator::new(migrations)
        .await
        .with_context(|| format!("read migrations from {}", migrations.display()))?;
    let mut rates = Vec::new();
    for i in 0..runs.max(1) {
        // A fresh database per run: empty table, indexes and rollups.
        db::create_database(server_url, db_name).await?;
        let run = async {
            let mut conn = PgConnection::connect(&db::url(server_url, db_name)).await?;
            migrator.run(&mut conn).await.context("migrations")?;
            // Needs superuser; ignore if not (as the bare COPY does).
            let _ = conn.execute("CHECKPOINT").await;
            let t = Instant::now();
            let mut copy = conn
                .copy_in_raw(&format!("COPY events ({COLUMNS}) FROM STDIN"))
                .await?;
            for chunk in buf.chunks(1 << 20) {
                copy.send(chunk).await?;
            }
            let rows = copy.finish().await?;
            let secs = t.elapsed().as_secs_f64();
            anyhow::ensure!(rows as usize == n, "COPY wrote {rows} rows, expected {n}");
            // Not timed: the rollup trigger saw every row.
            let rolled: i64 = sqlx::query(
                "SELECT coalesce(sum(events), 0)::int8 FROM rollup_events WHERE width = 86400",
            )
            .fetch_one(&mut conn)
            .await?
            .get(0);
            anyhow::ensure!(
                rolled as usize == n,
                "rollup_events counts {rolled} events, expected {n}"
            );
            conn.close().await?;
            Ok::<_, anyhow::Error>((rows, secs))
        }
        .await;
        db::drop_database(server_url, db_name).await?;
        let (rows, secs) = run?;
        let rate = rows as f64 / secs;
        eprintln!(
            "[copyreal] run {}: {rows} rows in {secs:.2}s = {rate:.0} rows/s",
            i + 1
        );
        rates.push(rate.round());
    }
    let mut sorted = rates.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Ok(CopyRealResult {
        events: n as u64,
        copy_bytes: buf.len() as u64,
        normalize_us_per_event: (normalize_secs * 1e6 / n.max(1) as f64 * 10.0).round() / 10.0,
        best_rows_per_sec: *sorted.last().unwrap_or(&0.0),
        median_rows_per_sec: crate::copy::median(&sorted),
        runs_rows_per_sec: rates,
        rollups_checked: true,
        loadavg: crate::procfs::loadavg(),
    })
}
