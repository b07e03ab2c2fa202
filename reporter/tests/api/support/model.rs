//! Independent expectations: the three reports computed in plain Rust from
//! the events a test stored (no SQL, no code shared with the crate).
use super::Event;
use chrono::{DateTime, Days, NaiveDate, SecondsFormat, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A report request: the query string and what it means.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub funnel_stage: Option<String>,
    pub event_type: Option<String>,
    pub campaign_id: Option<String>,
    pub granularity: Option<String>,
    pub limit: Option<usize>,
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    fn pair(mut self, k: &str, v: &str) -> Self {
        self.pairs.push((k.to_string(), v.to_string()));
        self
    }

    /// A date-time `from` (any RFC 3339 offset).
    pub fn start(mut self, s: &str) -> Self {
        self.from = Some(ceil_micros(super::at(s)));
        self.pair("from", s)
    }

    pub fn start_date(mut self, d: &str) -> Self {
        self.from = Some(midnight(date(d)));
        self.pair("from", d)
    }

    /// A date-time `to` (exclusive).
    pub fn end(mut self, s: &str) -> Self {
        self.to = Some(ceil_micros(super::at(s)));
        self.pair("to", s)
    }

    /// A bare-date `to`: the whole day.
    pub fn end_date(mut self, d: &str) -> Self {
        self.to = Some(midnight(
            date(d).checked_add_days(Days::new(1)).expect("date"),
        ));
        self.pair("to", d)
    }

    pub fn source(mut self, s: &str) -> Self {
        self.source = Some(s.to_string());
        self.pair("source", s)
    }

    pub fn stage(mut self, s: &str) -> Self {
        self.funnel_stage = Some(s.to_string());
        self.pair("funnelStage", s)
    }

    pub fn event_type(mut self, s: &str) -> Self {
        self.event_type = Some(s.to_string());
        self.pair("eventType", s)
    }

    pub fn campaign(mut self, s: &str) -> Self {
        self.campaign_id = Some(s.to_string());
        self.pair("campaignId", s)
    }

    pub fn granularity(mut self, g: &str) -> Self {
        self.granularity = Some(g.to_string());
        self.pair("granularity", g)
    }

    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self.pair("limit", &n.to_string())
    }

    /// `path?query`, percent-encoded (`+` becomes `%2B`).
    pub fn url(&self, path: &str) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            s.append_pair(k, v);
        }
        format!("{path}?{}", s.finish())
    }

    fn in_window(&self, e: &Event) -> bool {
        self.from.is_none_or(|f| e.occurred_at >= f)
            && self.to.is_none_or(|t| e.occurred_at < t)
            && self.source.as_ref().is_none_or(|s| *s == e.source)
    }
}

fn date(d: &str) -> NaiveDate {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("test date")
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// PostgreSQL keeps microseconds; a nanosecond bound selects what the next
/// microsecond does.
fn ceil_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let ns = t.timestamp_subsec_nanos() % 1000;
    if ns == 0 {
        t
    } else {
        t + TimeDelta::nanoseconds(i64::from(1000 - ns))
    }
}

pub fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(fmt(t))).unwrap_or(Value::Null)
}

fn money(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

fn floor_to(t: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    let w = secs * 1_000_000;
    DateTime::from_timestamp_micros(t.timestamp_micros().div_euclid(w) * w).expect("time")
}

/// The granularity rule, written out independently.
fn granularity(stored: &[Event], q: &Query) -> (String, i64) {
    let secs = |g: &str| match g {
        "minute" => 60,
        "hour" => 3600,
        _ => 86_400,
    };
    if let Some(g) = &q.granularity {
        return (g.clone(), secs(g));
    }
    let first = stored.iter().map(|e| e.occurred_at).min();
    let last = stored.iter().map(|e| e.occurred_at).max();
    let start = q.from.or(first);
    let end = q.to.or(last.map(|l| l + TimeDelta::microseconds(1)));
    let (Some(start), Some(end)) = (start, end) else {
        return ("minute".into(), 60);
    };
    for g in ["minute", "hour", "day"] {
        let w = secs(g);
        let n = if end <= start {
            0
        } else {
            let first = floor_to(start, w);
            let last = floor_to(end - TimeDelta::microseconds(1), w);
            (last - first).num_seconds() / w + 1
        };
        if n <= 500 {
            return (g.to_string(), w);
        }
    }
    ("day".into(), 86_400)
}

pub fn events_report(stored: &[Event], q: &Query) -> Value {
    let rows: Vec<&Event> = stored
        .iter()
        .filter(|e| q.in_window(e))
        .filter(|e| q.funnel_stage.as_ref().is_none_or(|s| *s == e.funnel_stage))
        .filter(|e| q.event_type.as_ref().is_none_or(|t| *t == e.event_type))
        .collect();
    let mut by_source: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_stage: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_type: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut buckets: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
    let (g, secs) = granularity(stored, q);
    for e in &rows {
        *by_source.entry(e.source.clone()).or_default() += 1;
        *by_stage.entry(e.funnel_stage.clone()).or_default() += 1;
        *by_type
            .entry((e.source.clone(), e.event_type.clone()))
            .or_default() += 1;
        *buckets.entry(floor_to(e.occurred_at, secs)).or_default() += 1;
    }
    let mut types: Vec<_> = by_type.into_iter().collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    json!({
        "from": opt_time(q.from),
        "to": opt_time(q.to),
        "totalEvents": rows.len(),
        "bySource": by_source,
        "byFunnelStage": by_stage,
        "byEventType": types.into_iter().map(|((s, t), n)| json!({"source": s, "eventType": t, "count": n})).collect::<Vec<_>>(),
        "timeline": {
            "granularity": g,
            "buckets": buckets.into_iter().map(|(t, n)| json!({"start": fmt(t), "count": n})).collect::<Vec<_>>(),
        }
    })
}

pub fn revenue_report(stored: &[Event], q: &Query) -> Value {
    let rows: Vec<&Event> = stored
        .iter()
        .filter(|e| e.revenue.is_some() && q.in_window(e))
        .filter(|e| {
            q.campaign_id
                .as_ref()
                .is_none_or(|c| e.campaign_id.as_ref() == Some(c))
        })
        .collect();
    let (g, secs) = granularity(stored, q);
    let mut total = Decimal::ZERO;
    let mut by_source: BTreeMap<String, (Decimal, i64)> = BTreeMap::new();
    let mut by_campaign: BTreeMap<String, (Decimal, i64)> = BTreeMap::new();
    let mut buckets: BTreeMap<DateTime<Utc>, (Decimal, i64)> = BTreeMap::new();
    for e in &rows {
        let r = e.revenue.unwrap_or_default();
        total += r;
        let add = |slot: &mut (Decimal, i64)| {
            slot.0 += r;
            slot.1 += 1;
        };
        add(by_source.entry(e.source.clone()).or_default());
        if let Some(c) = &e.campaign_id {
            add(by_campaign.entry(c.clone()).or_default());
        }
        add(buckets.entry(floor_to(e.occurred_at, secs)).or_default());
    }
    let ranked = |m: BTreeMap<String, (Decimal, i64)>| {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
        v
    };
    let mut campaigns = ranked(by_campaign);
    campaigns.truncate(q.limit.unwrap_or(20));
    json!({
        "from": opt_time(q.from),
        "to": opt_time(q.to),
        "totalRevenue": money(total),
        "transactions": rows.len(),
        "bySource": ranked(by_source).into_iter().map(|(s, (r, n))| json!({"source": s, "revenue": money(r), "transactions": n})).collect::<Vec<_>>(),
        "byCampaign": campaigns.into_iter().map(|(c, (r, n))| json!({"campaignId": c, "revenue": money(r), "transactions": n})).collect::<Vec<_>>(),
        "timeline": {
            "granularity": g,
            "buckets": buckets.into_iter().map(|(t, (r, n))| json!({"start": fmt(t), "revenue": money(r), "transactions": n})).collect::<Vec<_>>(),
        }
    })
}

fn age_bucket(age: i32) -> &'static str {
    match age {
        i32::MIN..=17 => "<18",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        45..=54 => "45-54",
        55..=64 => "55-64",
        _ => "65+",
    }
}

fn followers_bucket(f: i64) -> &'static str {
    match f {
        i64::MIN..=999 => "0-999",
        1_000..=9_999 => "1K-9.9K",
        10_000..=99_999 => "10K-99.9K",
        100_000..=999_999 => "100K-999.9K",
        _ => "1M+",
    }
}

const AGES: [&str; 7] = ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"];
const FOLLOWERS: [&str; 5] = ["0-999", "1K-9.9K", "10K-99.9K", "100K-999.9K", "1M+"];

pub fn demographics_report(stored: &[Event], q: &Query) -> Value {
    #[derive(Default)]
    struct T {
        age: BTreeMap<&'static str, i64>,
        gender: BTreeMap<String, i64>,
        locations: BTreeMap<(String, String), i64>,
        countries: BTreeMap<String, i64>,
        followers: BTreeMap<&'static str, i64>,
        devices: BTreeMap<String, i64>,
    }
    let mut per: BTreeMap<String, T> = BTreeMap::new();
    for e in stored.iter().filter(|e| q.in_window(e)) {
        let t = per.entry(e.source.clone()).or_default();
        if let Some(a) = e.age {
            *t.age.entry(age_bucket(a)).or_default() += 1;
        }
        if let Some(g) = &e.gender {
            *t.gender.entry(g.clone()).or_default() += 1;
        }
        if let Some(c) = &e.country {
            *t.countries.entry(c.clone()).or_default() += 1;
            if let Some(city) = &e.city {
                *t.locations.entry((c.clone(), city.clone())).or_default() += 1;
            }
        }
        if let Some(f) = e.followers {
            *t.followers.entry(followers_bucket(f)).or_default() += 1;
        }
        if let Some(d) = &e.device {
            *t.devices.entry(d.clone()).or_default() += 1;
        }
    }
    let limit = q.limit.unwrap_or(10);
    fn top<K: Ord>(m: BTreeMap<K, i64>, limit: usize) -> Vec<(K, i64)> {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(limit);
        v
    }
    let buckets = |labels: &[&str], m: &BTreeMap<&'static str, i64>| {
        labels
            .iter()
            .filter_map(|l| m.get(l).map(|n| json!({"bucket": l, "count": n})))
            .collect::<Vec<_>>()
    };
    let mut out = Map::new();
    out.insert("from".into(), opt_time(q.from));
    out.insert("to".into(), opt_time(q.to));
    for (source, t) in per {
        let section = if !t.age.is_empty() || !t.gender.is_empty() || !t.locations.is_empty() {
            json!({
                "age": buckets(&AGES, &t.age),
                "gender": t.gender,
                "topLocations": top(t.locations, limit).into_iter().map(|((c, city), n)| json!({"country": c, "city": city, "count": n})).collect::<Vec<_>>(),
            })
        } else if !t.followers.is_empty() || !t.countries.is_empty() || !t.devices.is_empty() {
            json!({
                "followers": buckets(&FOLLOWERS, &t.followers),
                "topCountries": top(t.countries, limit).into_iter().map(|(c, n)| json!({"country": c, "count": n})).collect::<Vec<_>>(),
                "devices": t.devices,
            })
        } else {
            continue;
        };
        out.insert(source, section);
    }
    Value::Object(out)
}
