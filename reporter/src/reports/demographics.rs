//! `GET /api/v1/reports/demographics`: who interacted, per source.
//!
//! Two section shapes exist, chosen per source from the demographic columns
//! its events in the window fill (so a new source needs no code here):
//! - *profile* (Facebook's shape: `age`, `gender`, `topLocations`) when any
//!   event has an age, a gender or a city;
//! - otherwise *audience* (TikTok's shape: `followers`, `topCountries`,
//!   `devices`) when any event has followers, a country or a device.
//!
//! A source whose events fill none of these has no section.
use super::{by_count_then_name, snapshot, AppState, Common};
use crate::{
    error::{ApiError, ErrorBody},
    params::{self, Checker},
    rollups,
};
use axum::{
    extract::{RawQuery, State},
    Json,
};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, QueryBuilder};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Query parameters of the demographics report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DemographicsQuery {
    /// Window start, inclusive, on the event's own time: an RFC 3339
    /// date-time (`2024-01-01T10:00:00Z`; percent-encode `+` as `%2B`) or a
    /// date (`2024-01-31`, from its start, UTC). Default: all time.
    #[param(example = "2024-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// Window end: a date-time is exclusive; a date covers that whole day
    /// (UTC). Default: all time.
    #[param(example = "2024-01-31")]
    pub to: Option<String>,
    /// Only this source's section.
    #[param(pattern = "^[a-z0-9_-]{1,32}$", example = "facebook")]
    pub source: Option<String>,
    /// How many entries `topLocations` and `topCountries` list.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000, default = 10)]
    pub limit: Option<String>,
}

/// The demographics report: the window plus one section per source with
/// demographic data in it, keyed by source name.
#[derive(Debug, Serialize, ToSchema)]
pub struct DemographicsReport {
    /// Window start (inclusive), UTC; null when open.
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Window end (exclusive), UTC; null when open.
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// Sections keyed by source name (e.g. `facebook`, `tiktok`).
    #[serde(flatten)]
    pub sections: BTreeMap<String, Section>,
}

/// A source's section: profile-shaped or audience-shaped.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Section {
    Profile(ProfileSection),
    Audience(AudienceSection),
}

/// Facebook-shaped section. Counts are events; values with no events are
/// absent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSection {
    /// Age buckets in order `<18`, `18-24`, `25-34`, `35-44`, `45-54`,
    /// `55-64`, `65+`.
    pub age: Vec<BucketCount>,
    /// Events per gender value (e.g. `male`, `female`, `non-binary`).
    pub gender: BTreeMap<String, i64>,
    /// Top (country, city) pairs by count descending, then country and city.
    pub top_locations: Vec<LocationCount>,
}

/// TikTok-shaped section. Counts are events; values with no events are
/// absent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceSection {
    /// Follower buckets in order `0-999`, `1K-9.9K`, `10K-99.9K`,
    /// `100K-999.9K`, `1M+`.
    pub followers: Vec<BucketCount>,
    /// Top countries by count descending, then name.
    pub top_countries: Vec<CountryCount>,
    /// Events per device value (e.g. `Android`, `iOS`, `Desktop`).
    pub devices: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BucketCount {
    pub bucket: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LocationCount {
    pub country: String,
    pub city: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountryCount {
    pub country: String,
    pub count: i64,
}

pub const AGE_BUCKETS: [&str; 7] = ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"];
pub const FOLLOWER_BUCKETS: [&str; 5] = ["0-999", "1K-9.9K", "10K-99.9K", "100K-999.9K", "1M+"];
const DEFAULT_LIMIT: i64 = 10;

#[derive(Debug)]
struct Filters {
    common: Common,
    limit: i64,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let q: DemographicsQuery = params::extract(query)?;
        let mut c = Checker::default();
        let common = Common::check(
            &mut c,
            q.from.as_deref(),
            q.to.as_deref(),
            q.source.as_deref(),
        );
        let limit = c.optional("limit", q.limit.as_deref(), params::limit);
        c.finish()?;
        let common = common.ok_or_else(|| ApiError::InvalidParams(Vec::new()))?;
        Ok(Self {
            common,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/demographics",
    tag = "reports",
    params(DemographicsQuery),
    responses(
        (status = 200, description = "The report", body = DemographicsReport),
        (status = 400, description = "An invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when required)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<DemographicsReport>, ApiError> {
    let filters = Filters::parse(query.as_deref())?;
    let mut tx = snapshot(&state.pool).await?;
    let facts = facts(&mut tx, &filters).await?;
    tx.commit().await?;
    let (from, to) = filters.common.bounds();
    Ok(Json(DemographicsReport {
        from,
        to,
        sections: sections(facts, filters.limit),
    }))
}

/// `(source, dimension, value, detail, events)`; see
/// `reporter_demographic_facts_sql` in the migration for the dimensions.
type Fact = (String, String, String, String, i64);

async fn facts(conn: &mut PgConnection, f: &Filters) -> Result<Vec<Fact>, sqlx::Error> {
    let pieces = rollups::plan(f.common.window, &rollups::DEMOGRAPHICS.widths_for(None));
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let source = f.common.source.clone();
    let mut qb =
        QueryBuilder::new("SELECT source, dimension, value, detail, sum(n)::bigint FROM (");
    rollups::push_union(
        &mut qb,
        &pieces,
        |qb, width, span| {
            qb.push(
                "SELECT source, dimension, value, detail, events AS n \
                 FROM rollup_demographics WHERE width = ",
            )
            .push_bind(width);
            rollups::push_range(qb, "bucket", span);
            if let Some(s) = &source {
                qb.push(" AND source = ").push_bind(s.clone());
            }
        },
        |qb, span| {
            qb.push(
                "SELECT source, dimension, value, detail, count(*) AS n \
                 FROM events_demographic_facts WHERE true",
            );
            rollups::push_range(qb, "occurred_at", span);
            if let Some(s) = &source {
                qb.push(" AND source = ").push_bind(s.clone());
            }
            qb.push(" GROUP BY 1, 2, 3, 4");
        },
    );
    qb.push(") AS p GROUP BY 1, 2, 3, 4 HAVING sum(n) > 0");
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// Everything one source's facts say, before choosing its shape.
#[derive(Default)]
struct Tally {
    age: BTreeMap<String, i64>,
    gender: BTreeMap<String, i64>,
    locations: BTreeMap<(String, String), i64>,
    countries: BTreeMap<String, i64>,
    followers: BTreeMap<String, i64>,
    devices: BTreeMap<String, i64>,
}

fn sections(facts: Vec<Fact>, limit: i64) -> BTreeMap<String, Section> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (source, dimension, value, detail, n) in facts {
        let t = tallies.entry(source).or_default();
        match dimension.as_str() {
            "age" => *t.age.entry(value).or_default() += n,
            "gender" => *t.gender.entry(value).or_default() += n,
            "followers" => *t.followers.entry(value).or_default() += n,
            "device" => *t.devices.entry(value).or_default() += n,
            "location" => {
                *t.countries.entry(value.clone()).or_default() += n;
                if !detail.is_empty() {
                    *t.locations.entry((value, detail)).or_default() += n;
                }
            }
            other => tracing::warn!(dimension = other, "unknown demographic dimension ignored"),
        }
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = BTreeMap::new();
    for (source, t) in tallies {
        if source == "from" || source == "to" {
            // A section under these names would clash with the window fields.
            tracing::warn!(%source, "demographics section skipped: source name clashes with a report field");
            continue;
        }
        let section = if !t.age.is_empty() || !t.gender.is_empty() || !t.locations.is_empty() {
            Section::Profile(ProfileSection {
                age: ordered(&AGE_BUCKETS, t.age),
                gender: t.gender,
                top_locations: top(t.locations, limit)
                    .into_iter()
                    .map(|((country, city), count)| LocationCount {
                        country,
                        city,
                        count,
                    })
                    .collect(),
            })
        } else if !t.followers.is_empty() || !t.countries.is_empty() || !t.devices.is_empty() {
            Section::Audience(AudienceSection {
                followers: ordered(&FOLLOWER_BUCKETS, t.followers),
                top_countries: top(t.countries, limit)
                    .into_iter()
                    .map(|(country, count)| CountryCount { country, count })
                    .collect(),
                devices: t.devices,
            })
        } else {
            continue;
        };
        out.insert(source, section);
    }
    out
}

/// Buckets in their natural order (labels come from the migration's
/// bucketing functions).
fn ordered(labels: &[&str], mut counts: BTreeMap<String, i64>) -> Vec<BucketCount> {
    labels
        .iter()
        .filter_map(|l| {
            counts.remove(*l).map(|count| BucketCount {
                bucket: l.to_string(),
                count,
            })
        })
        .collect()
}

/// The `limit` largest entries, count descending then key (byte order).
fn top<K: Ord>(counts: BTreeMap<K, i64>, limit: usize) -> Vec<(K, i64)> {
    let mut v: Vec<(K, i64)> = counts.into_iter().collect();
    v.sort_by(by_count_then_name);
    v.truncate(limit);
    v
}
