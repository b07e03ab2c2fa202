//! The collectors' events, stored with the shared statement
//! ([`events_common::db::events`]: claims in `event_claims`, first valid
//! write wins). The months' partitions must exist first: see
//! [`super::ensure_partitions`].
use crate::plugins::{Lineage, NormalizedEvent};
use events_common::db::events::{self as shared, NewEvent};
use sqlx::{Postgres, Transaction};

/// A normalized event with where it came from.
pub struct EventRow<'a> {
    pub event: &'a NormalizedEvent,
    /// The event's exact bytes as the gateway received them.
    pub raw: &'a str,
    /// The plugin that normalized it: name, version, file digest, contract.
    pub plugin: &'a Lineage,
    pub correlation_id: Option<&'a str>,
}

impl<'a> EventRow<'a> {
    fn to_new_event(&self) -> NewEvent<'a> {
        let e = self.event;
        NewEvent {
            event_id: &e.event_id,
            source: &e.source,
            funnel_stage: e.funnel_stage,
            event_type: &e.event_type,
            occurred_at: e.occurred_at,
            user_id: &e.user_id,
            revenue: e.revenue.as_deref(),
            campaign_id: e.campaign_id.as_deref(),
            // Ranges were checked when the plugin output was converted.
            age: e.age.and_then(|a| i32::try_from(a).ok()),
            gender: e.gender.as_deref(),
            country: e.country.as_deref(),
            city: e.city.as_deref(),
            followers: e.followers.and_then(|f| i64::try_from(f).ok()),
            device: e.device.as_deref(),
            raw: self.raw,
            plugin_name: &self.plugin.identity.name,
            plugin_version: &self.plugin.identity.version,
            plugin_digest: Some(&self.plugin.digest),
            wit_version: Some(&self.plugin.wit_version),
            correlation_id: self.correlation_id,
        }
    }
}

/// Inserts the rows; returns how many were new (the rest were duplicates,
/// of stored events or of an earlier row of `rows`).
pub async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[EventRow<'_>],
) -> Result<u64, sqlx::Error> {
    let rows: Vec<NewEvent<'_>> = rows.iter().map(EventRow::to_new_event).collect();
    shared::insert_events(&mut **tx, &rows).await
}
