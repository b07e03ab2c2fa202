//! `GET /api/v1/reports/revenue`: revenue and transactions (events with a
//! non-null `revenue`) by source, top campaigns, and a timeline.
use super::{granularity, money_sql, snapshot, AppState, Common};
use crate::{
    error::{ApiError, ErrorBody},
    params::{self, Checker, Granularity, Window},
    rollups::{self, Family},
};
use axum::{
    extract::{RawQuery, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

/// Query parameters of the revenue report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RevenueQuery {
    /// Window start, inclusive, on the event's own time: an RFC 3339
    /// date-time (`2024-01-01T10:00:00Z`; percent-encode `+` as `%2B`) or a
    /// date (`2024-01-31`, from its start, UTC). Default: all time.
    #[param(example = "2024-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// Window end: a date-time is exclusive; a date covers that whole day
    /// (UTC). Default: all time.
    #[param(example = "2024-01-31")]
    pub to: Option<String>,
    /// Only this source.
    #[param(pattern = "^[a-z0-9_-]{1,32}$", example = "facebook")]
    pub source: Option<String>,
    /// Only this campaign (1 to 128 characters).
    #[param(example = "cmp_spring_sale_2024")]
    pub campaign_id: Option<String>,
    /// Timeline bucket size. Default: the finest of minute, hour, day giving
    /// at most 500 buckets over the window (over the stored events' span when
    /// the window is open).
    #[param(value_type = Option<Granularity>)]
    pub granularity: Option<String>,
    /// How many campaigns `byCampaign` lists.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000, default = 20)]
    pub limit: Option<String>,
}

/// The revenue report. Money is a decimal string with two decimals.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevenueReport {
    /// Window start (inclusive), UTC; null when open.
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Window end (exclusive), UTC; null when open.
    #[schema(format = DateTime)]
    pub to: Option<String>,
    #[schema(example = "12345.67")]
    pub total_revenue: String,
    pub transactions: i64,
    /// Per source with revenue, by revenue descending, then source.
    pub by_source: Vec<SourceRevenue>,
    /// Top campaigns by revenue descending, then campaign id (`limit`);
    /// revenue without a campaign is not listed.
    pub by_campaign: Vec<CampaignRevenue>,
    pub timeline: RevenueTimeline,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceRevenue {
    pub source: String,
    #[schema(example = "6000.00")]
    pub revenue: String,
    pub transactions: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignRevenue {
    pub campaign_id: String,
    #[schema(example = "150.25")]
    pub revenue: String,
    pub transactions: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueTimeline {
    pub granularity: Granularity,
    /// UTC-aligned buckets in time order; buckets without transactions are
    /// omitted.
    pub buckets: Vec<RevenueBucket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueBucket {
    /// Bucket start, UTC.
    #[schema(format = DateTime)]
    pub start: String,
    pub revenue: String,
    pub transactions: i64,
}

const DEFAULT_LIMIT: i64 = 20;

#[derive(Debug)]
struct Filters {
    common: Common,
    campaign_id: Option<String>,
    granularity: Option<Granularity>,
    limit: i64,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let q: RevenueQuery = params::extract(query)?;
        let mut c = Checker::default();
        let common = Common::check(
            &mut c,
            q.from.as_deref(),
            q.to.as_deref(),
            q.source.as_deref(),
        );
        let campaign_id = c.optional("campaignId", q.campaign_id.as_deref(), params::identifier);
        let granularity = c.optional("granularity", q.granularity.as_deref(), Granularity::parse);
        let limit = c.optional("limit", q.limit.as_deref(), params::limit);
        c.finish()?;
        let common = common.ok_or_else(|| ApiError::InvalidParams(Vec::new()))?;
        Ok(Self {
            common,
            campaign_id,
            granularity,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        })
    }

    /// With a campaign filter every figure comes from the campaign rollup
    /// (revenue without a campaign cannot match it).
    fn family(&self) -> Family {
        if self.campaign_id.is_some() {
            rollups::CAMPAIGNS
        } else {
            rollups::REVENUE
        }
    }

    fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if let Some(s) = &self.common.source {
            qb.push(" AND source = ").push_bind(s.clone());
        }
        if let Some(c) = &self.campaign_id {
            qb.push(" AND campaign_id = ").push_bind(c.clone());
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/revenue",
    tag = "reports",
    params(RevenueQuery),
    responses(
        (status = 200, description = "The report", body = RevenueReport),
        (status = 400, description = "An invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token (when required)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<RevenueReport>, ApiError> {
    let filters = Filters::parse(query.as_deref())?;
    let mut tx = snapshot(&state.pool).await?;
    let report = build(&mut tx, &filters).await?;
    tx.commit().await?;
    Ok(Json(report))
}

/// Key, revenue as money, transactions, and the revenue of every group
/// (the same on each row). Money is summed and formatted by PostgreSQL
/// (`numeric`), so no stored amount can overflow a Rust decimal type.
type Sums = (String, String, i64, String);

async fn build(conn: &mut PgConnection, f: &Filters) -> Result<RevenueReport, sqlx::Error> {
    let window = f.common.window;
    let granularity = granularity(conn, f.granularity, window).await?;
    let by_source = grouped(conn, f, f.family(), Grouping::Source).await?;
    let by_campaign = grouped(conn, f, rollups::CAMPAIGNS, Grouping::Campaign(f.limit)).await?;
    let buckets = timeline(conn, f, window, granularity).await?;

    let total_revenue = by_source
        .first()
        .map_or_else(|| "0.00".to_string(), |(_, _, _, total)| total.clone());
    let transactions = by_source.iter().map(|(_, _, t, _)| *t).sum();
    let (from, to) = f.common.bounds();
    Ok(RevenueReport {
        from,
        to,
        total_revenue,
        transactions,
        by_source: by_source
            .into_iter()
            .map(|(source, revenue, transactions, _)| SourceRevenue {
                source,
                revenue,
                transactions,
            })
            .collect(),
        by_campaign: by_campaign
            .into_iter()
            .map(|(campaign_id, revenue, transactions, _)| CampaignRevenue {
                campaign_id,
                revenue,
                transactions,
            })
            .collect(),
        timeline: RevenueTimeline {
            granularity,
            buckets: buckets
                .into_iter()
                .map(|(start, revenue, transactions)| RevenueBucket {
                    start: params::format_time(start),
                    revenue,
                    transactions,
                })
                .collect(),
        },
    })
}

#[derive(Debug, Clone, Copy)]
enum Grouping {
    Source,
    /// Top campaigns, at most this many.
    Campaign(i64),
}

/// Revenue and transactions per source or per campaign, ordered by revenue
/// descending then name (byte order, `COLLATE "C"`, independent of the
/// database's locale).
async fn grouped(
    conn: &mut PgConnection,
    f: &Filters,
    family: Family,
    grouping: Grouping,
) -> Result<Vec<Sums>, sqlx::Error> {
    let pieces = rollups::plan(f.common.window, &family.widths_for(None));
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let key = match grouping {
        Grouping::Source => "source",
        Grouping::Campaign(_) => "campaign_id",
    };
    let raw_filter = if family.table == rollups::CAMPAIGNS.table {
        "revenue IS NOT NULL AND campaign_id IS NOT NULL"
    } else {
        "revenue IS NOT NULL"
    };
    let mut qb = QueryBuilder::new(format!(
        "SELECT {key}, {}, sum(transactions)::bigint, {} FROM (",
        money_sql("sum(revenue)"),
        money_sql("sum(sum(revenue)) OVER ()"),
    ));
    rollups::push_union(
        &mut qb,
        &pieces,
        |qb, width, span| {
            qb.push(format_args!(
                "SELECT {key}, revenue, transactions FROM {} WHERE width = ",
                family.table
            ))
            .push_bind(width);
            rollups::push_range(qb, "bucket", span);
            f.push(qb);
        },
        |qb, span| {
            qb.push(format_args!(
                "SELECT {key}, sum(revenue) AS revenue, count(*) AS transactions \
                 FROM events WHERE {raw_filter}"
            ));
            rollups::push_range(qb, "occurred_at", span);
            f.push(qb);
            qb.push(" GROUP BY 1");
        },
    );
    qb.push(format_args!(
        ") AS p GROUP BY 1 HAVING sum(transactions) > 0 \
         ORDER BY sum(revenue) DESC, {key} COLLATE \"C\""
    ));
    if let Grouping::Campaign(limit) = grouping {
        qb.push(" LIMIT ").push_bind(limit);
    }
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// Revenue per timeline bucket. Campaign-filtered minute buckets have no
/// rollup and come from `events_revenue_campaign_idx`.
async fn timeline(
    conn: &mut PgConnection,
    f: &Filters,
    window: Window,
    granularity: Granularity,
) -> Result<Vec<(DateTime<Utc>, String, i64)>, sqlx::Error> {
    let g = granularity.seconds();
    let family = f.family();
    let pieces = rollups::plan(window, &family.widths_for(Some(g)));
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::new(format!(
        "SELECT start, {}, sum(transactions)::bigint FROM (",
        money_sql("sum(revenue)")
    ));
    rollups::push_union(
        &mut qb,
        &pieces,
        |qb, width, span| {
            qb.push("SELECT ");
            rollups::push_bucket(qb, g, "bucket");
            qb.push(format_args!(
                " AS start, revenue, transactions FROM {} WHERE width = ",
                family.table
            ))
            .push_bind(width);
            rollups::push_range(qb, "bucket", span);
            f.push(qb);
        },
        |qb, span| {
            qb.push("SELECT ");
            rollups::push_bucket(qb, g, "occurred_at");
            qb.push(
                " AS start, sum(revenue) AS revenue, count(*) AS transactions \
                 FROM events WHERE revenue IS NOT NULL",
            );
            rollups::push_range(qb, "occurred_at", span);
            f.push(qb);
            qb.push(" GROUP BY 1");
        },
    );
    qb.push(") AS p GROUP BY 1 HAVING sum(transactions) > 0 ORDER BY 1");
    qb.build_query_as().fetch_all(&mut *conn).await
}
