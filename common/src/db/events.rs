//! The one statement that stores events, for the collectors and for the
//! tests that stand in for them.
//!
//! One statement per batch claims and inserts: the rows travel as parallel
//! arrays through `UNNEST`; their keys go into `event_claims`
//! (`ON CONFLICT (source, event_id) DO NOTHING`) and only the rows whose claim
//! is new go into `events`, so the first valid write wins across months,
//! batches and collectors (`events` is partitioned by month and cannot carry
//! the unique key itself). Report rollups are maintained by a trigger on
//! `events` from the rows actually inserted (see `migrations/`), in the same
//! transaction; a row the database refuses takes its claim down with it.
//! The months' partitions must exist first (`events_ensure_partitions`).
use crate::funnel::FunnelStage;
use chrono::{DateTime, Utc};
use sqlx::{postgres::PgArguments, query::Query, PgExecutor, Postgres};

/// One row of `events`, borrowed from whoever holds the event.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub source: &'a str,
    pub funnel_stage: FunnelStage,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub user_id: &'a str,
    /// Exact decimal text: amounts past a Rust decimal's 28 digits stay exact.
    pub revenue: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub age: Option<i32>,
    pub gender: Option<&'a str>,
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub followers: Option<i64>,
    pub device: Option<&'a str>,
    /// The event's exact JSON as it was received.
    pub raw: &'a str,
    pub plugin_name: &'a str,
    pub plugin_version: &'a str,
    /// Lowercase hex SHA-256 of the plugin's component file; `None` only
    /// for rows not written by a plugin (tests standing in for one).
    pub plugin_digest: Option<&'a str>,
    /// The WIT contract version the plugin spoke (`0.2.0`, `0.1.0`).
    pub wit_version: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
}

impl NewEvent<'_> {
    fn key(&self) -> (&str, &str) {
        (self.source, self.event_id)
    }
}

/// Claims and inserts `$1..$20` as bound by [`EventColumns::bind`].
const INSERT_EVENTS: &str = "WITH batch AS (
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                              $6::text[], $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[],
                              $12::text[], $13::int8[], $14::text[], $15::text[], $16::text[],
                              $17::text[], $18::text[], $19::text[], $20::text[])
              AS t(event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue,
                   campaign_id, age, gender, country, city, followers, device, raw,
                   plugin_name, plugin_version, plugin_digest, wit_version, correlation_id)
     ), claimed AS (
         INSERT INTO event_claims (source, event_id, occurred_at)
         SELECT source, event_id, occurred_at FROM batch
         ON CONFLICT (source, event_id) DO NOTHING
         RETURNING source, event_id
     )
     INSERT INTO events (event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue,
                         campaign_id, age, gender, country, city, followers, device, raw,
                         plugin_name, plugin_version, plugin_digest, wit_version, correlation_id)
     SELECT b.event_id, b.source, b.funnel_stage, b.event_type, b.occurred_at, b.user_id,
            b.revenue::numeric, b.campaign_id, b.age, b.gender, b.country, b.city, b.followers,
            b.device, b.raw::json, b.plugin_name, b.plugin_version, b.plugin_digest,
            b.wit_version, b.correlation_id
     FROM batch b JOIN claimed c USING (source, event_id)";

/// Inserts the rows; returns how many were new (the rest were duplicates,
/// of stored events or of an earlier row of `rows`).
pub async fn insert_events<'e>(
    executor: impl PgExecutor<'e>,
    rows: &[NewEvent<'_>],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns = EventColumns::new(first_of_each_key(rows));
    let result = columns
        .bind(sqlx::query(INSERT_EVENTS))
        .execute(executor)
        .await?;
    Ok(result.rows_affected())
}

/// The rows in key order, the first arrival of each key only. Two batches
/// holding the same events (a re-sent event, a redelivery) then claim their
/// keys in one order and cannot deadlock; arrival order could. The sort is
/// stable, so within a batch the first arrival wins.
fn first_of_each_key<'r, 'a>(rows: &'r [NewEvent<'a>]) -> Vec<&'r NewEvent<'a>> {
    let mut rows: Vec<&NewEvent<'a>> = rows.iter().collect();
    rows.sort_by(|a, b| a.key().cmp(&b.key()));
    rows.dedup_by(|later, first| later.key() == first.key());
    rows
}

/// The rows as the statement's parallel arrays, in the column order of
/// `events`. Public for the tests that write older statements (a database
/// at an earlier migration) with the same parameters.
#[derive(Default)]
pub struct EventColumns<'a> {
    event_id: Vec<&'a str>,
    source: Vec<&'a str>,
    funnel_stage: Vec<&'static str>,
    event_type: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    user_id: Vec<&'a str>,
    revenue: Vec<Option<&'a str>>,
    campaign_id: Vec<Option<&'a str>>,
    age: Vec<Option<i32>>,
    gender: Vec<Option<&'a str>>,
    country: Vec<Option<&'a str>>,
    city: Vec<Option<&'a str>>,
    followers: Vec<Option<i64>>,
    device: Vec<Option<&'a str>>,
    raw: Vec<&'a str>,
    plugin_name: Vec<&'a str>,
    plugin_version: Vec<&'a str>,
    plugin_digest: Vec<Option<&'a str>>,
    wit_version: Vec<Option<&'a str>>,
    correlation_id: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    /// The columns of `rows`, in their order.
    pub fn new<'r>(rows: impl IntoIterator<Item = &'r NewEvent<'a>>) -> Self
    where
        'a: 'r,
    {
        let mut c = Self::default();
        for r in rows {
            c.event_id.push(r.event_id);
            c.source.push(r.source);
            c.funnel_stage.push(r.funnel_stage.as_str());
            c.event_type.push(r.event_type);
            c.occurred_at.push(r.occurred_at);
            c.user_id.push(r.user_id);
            c.revenue.push(r.revenue);
            c.campaign_id.push(r.campaign_id);
            c.age.push(r.age);
            c.gender.push(r.gender);
            c.country.push(r.country);
            c.city.push(r.city);
            c.followers.push(r.followers);
            c.device.push(r.device);
            c.raw.push(r.raw);
            c.plugin_name.push(r.plugin_name);
            c.plugin_version.push(r.plugin_version);
            c.plugin_digest.push(r.plugin_digest);
            c.wit_version.push(r.wit_version);
            c.correlation_id.push(r.correlation_id);
        }
        c
    }

    /// Binds the columns as `$1..$20`: text arrays except `occurred_at`
    /// (`timestamptz[]`), `age` (`int4[]`) and `followers` (`int8[]`);
    /// `revenue` and `raw` are text for the statement to cast.
    pub fn bind(self, query: Query<'a, Postgres, PgArguments>) -> Query<'a, Postgres, PgArguments> {
        query
            .bind(self.event_id)
            .bind(self.source)
            .bind(self.funnel_stage)
            .bind(self.event_type)
            .bind(self.occurred_at)
            .bind(self.user_id)
            .bind(self.revenue)
            .bind(self.campaign_id)
            .bind(self.age)
            .bind(self.gender)
            .bind(self.country)
            .bind(self.city)
            .bind(self.followers)
            .bind(self.device)
            .bind(self.raw)
            .bind(self.plugin_name)
            .bind(self.plugin_version)
            .bind(self.plugin_digest)
            .bind(self.wit_version)
            .bind(self.correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(source: &'a str, event_id: &'a str, event_type: &'a str) -> NewEvent<'a> {
        NewEvent {
            event_id,
            source,
            funnel_stage: FunnelStage::Top,
            event_type,
            occurred_at: DateTime::UNIX_EPOCH,
            user_id: "u",
            revenue: None,
            campaign_id: None,
            age: None,
            gender: None,
            country: None,
            city: None,
            followers: None,
            device: None,
            raw: "{}",
            plugin_name: "p",
            plugin_version: "1.0.0",
            plugin_digest: None,
            wit_version: None,
            correlation_id: None,
        }
    }

    #[test]
    fn the_first_arrival_of_each_key_in_key_order() {
        let rows = [
            row("tiktok", "1", "first"),
            row("facebook", "2", "first"),
            row("tiktok", "1", "second"),
            row("facebook", "1", "first"),
            row("facebook", "2", "second"),
        ];
        let kept: Vec<_> = first_of_each_key(&rows)
            .iter()
            .map(|r| (r.source, r.event_id, r.event_type))
            .collect();
        assert_eq!(
            kept,
            [
                ("facebook", "1", "first"),
                ("facebook", "2", "first"),
                ("tiktok", "1", "first"),
            ]
        );
    }
}
