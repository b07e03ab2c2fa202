//! One statement per batch that claims and inserts: the rows travel as
//! parallel arrays through `UNNEST`; their keys go into `event_claims`
//! (`ON CONFLICT (source, event_id) DO NOTHING`) and only the rows whose claim
//! is new go into `events`, so the first valid write wins across months,
//! batches and collectors (`events` is partitioned by month and cannot carry
//! the unique key itself). Report rollups are maintained by a trigger on
//! `events` from the rows actually inserted (see `migrations/`), in the same
//! transaction; a row the database refuses takes its claim down with it.
//! The months' partitions must exist first: see [`super::ensure_partitions`].
use crate::plugins::{Identity, NormalizedEvent};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

/// A normalized event with where it came from.
pub struct EventRow<'a> {
    pub event: &'a NormalizedEvent,
    /// The event's exact bytes as the gateway received them.
    pub raw: &'a str,
    pub plugin: &'a Identity,
    pub correlation_id: Option<&'a str>,
}

/// Inserts the rows; returns how many were new (the rest were duplicates,
/// of stored events or of an earlier row of `rows`).
pub async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[EventRow<'_>],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    // Claimed in key order: two batches holding the same events (a re-sent
    // event, a redelivery) then wait on each other's keys in one order and
    // cannot deadlock; arrival order would. The sort is stable and only the
    // first of equal keys is kept, so within a batch the first arrival wins.
    fn key<'a>(r: &EventRow<'a>) -> (&'a str, &'a str) {
        (r.event.source.as_str(), r.event.event_id.as_str())
    }
    let mut rows: Vec<&EventRow<'_>> = rows.iter().collect();
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
    rows.dedup_by(|later, first| key(later) == key(first));
    let n = rows.len();
    let mut event_id = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    let mut funnel = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut occurred: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut user_id = Vec::with_capacity(n);
    let mut revenue = Vec::with_capacity(n);
    let mut campaign = Vec::with_capacity(n);
    let mut age: Vec<Option<i32>> = Vec::with_capacity(n);
    let mut gender = Vec::with_capacity(n);
    let mut country = Vec::with_capacity(n);
    let mut city = Vec::with_capacity(n);
    let mut followers: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut device = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    let mut plugin_name = Vec::with_capacity(n);
    let mut plugin_version = Vec::with_capacity(n);
    let mut correlation = Vec::with_capacity(n);
    for r in rows {
        let e = r.event;
        event_id.push(e.event_id.as_str());
        source.push(e.source.as_str());
        funnel.push(e.funnel_stage.as_str());
        event_type.push(e.event_type.as_str());
        occurred.push(e.occurred_at);
        user_id.push(e.user_id.as_str());
        revenue.push(e.revenue.as_deref());
        campaign.push(e.campaign_id.as_deref());
        // Ranges were checked when the plugin output was converted.
        age.push(e.age.and_then(|a| i32::try_from(a).ok()));
        gender.push(e.gender.as_deref());
        country.push(e.country.as_deref());
        city.push(e.city.as_deref());
        followers.push(e.followers.and_then(|f| i64::try_from(f).ok()));
        device.push(e.device.as_deref());
        raw.push(r.raw);
        plugin_name.push(r.plugin.name.as_str());
        plugin_version.push(r.plugin.version.as_str());
        correlation.push(r.correlation_id);
    }
    let result = sqlx::query(
        "WITH batch AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                                  $6::text[], $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[],
                                  $12::text[], $13::int8[], $14::text[], $15::text[], $16::text[],
                                  $17::text[], $18::text[])
                  AS t(event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue,
                       campaign_id, age, gender, country, city, followers, device, raw,
                       plugin_name, plugin_version, correlation_id)
         ), claimed AS (
             INSERT INTO event_claims (source, event_id, occurred_at)
             SELECT source, event_id, occurred_at FROM batch
             ON CONFLICT (source, event_id) DO NOTHING
             RETURNING source, event_id
         )
         INSERT INTO events (event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue,
                             campaign_id, age, gender, country, city, followers, device, raw,
                             plugin_name, plugin_version, correlation_id)
         SELECT b.event_id, b.source, b.funnel_stage, b.event_type, b.occurred_at, b.user_id,
                b.revenue::numeric, b.campaign_id, b.age, b.gender, b.country, b.city, b.followers,
                b.device, b.raw::json, b.plugin_name, b.plugin_version, b.correlation_id
         FROM batch b JOIN claimed c USING (source, event_id)",
    )
    .bind(&event_id)
    .bind(&source)
    .bind(&funnel)
    .bind(&event_type)
    .bind(&occurred)
    .bind(&user_id)
    .bind(&revenue)
    .bind(&campaign)
    .bind(&age)
    .bind(&gender)
    .bind(&country)
    .bind(&city)
    .bind(&followers)
    .bind(&device)
    .bind(&raw)
    .bind(&plugin_name)
    .bind(&plugin_version)
    .bind(&correlation)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}
