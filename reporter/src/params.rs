//! Query-string parsing and validation shared by the reports.
//!
//! Each report declares its parameters once, as a struct deriving both
//! `Deserialize` and `utoipa::IntoParams`: the same struct feeds the parser
//! and the OpenAPI document, so the two cannot drift. Values arrive as
//! strings and are validated here into typed values; every problem is
//! collected so one 400 response lists them all.
use chrono::{DateTime, Days, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{openapi::path::ParameterIn, IntoParams, ToSchema};

/// One invalid parameter, as listed in a 400 response's `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ParamError {
    /// The query parameter, e.g. `from`.
    pub param: String,
    /// Why its value was refused.
    pub message: String,
}

/// Collects parameter errors while validating.
#[derive(Debug, Default)]
pub struct Checker {
    errors: Vec<ParamError>,
}

impl Checker {
    pub fn add(&mut self, param: &str, message: impl Into<String>) {
        self.errors.push(ParamError {
            param: param.to_string(),
            message: message.into(),
        });
    }

    /// Keeps the value of `result`, or records its error under `param`.
    pub fn check<T>(&mut self, param: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.add(param, m)).ok()
    }

    /// Validates an optional value with `parse`.
    pub fn optional<T>(
        &mut self,
        param: &str,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        value.and_then(|v| self.check(param, parse(v)))
    }

    pub fn finish(self) -> Result<(), Vec<ParamError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// Parses the query string into `T`. Parameters `T` does not declare are
/// ignored; a declared one given more than once is an error (which value
/// was meant is unknowable).
pub fn extract<T: DeserializeOwned + IntoParams>(
    query: Option<&str>,
) -> Result<T, Vec<ParamError>> {
    let declared: Vec<String> = T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if declared.iter().any(|d| *d == name) {
            values
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
    }
    let mut checker = Checker::default();
    let mut object = serde_json::Map::new();
    for name in &declared {
        match values.remove(name).as_deref() {
            None => {}
            Some([one]) => {
                object.insert(name.clone(), serde_json::Value::String(one.clone()));
            }
            Some(_) => checker.add(name, "given more than once"),
        }
    }
    checker.finish()?;
    // Every field is an `Option<String>`, so this cannot fail on user input;
    // the mapping keeps a broken declaration from panicking.
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        vec![ParamError {
            param: String::new(),
            message: e.to_string(),
        }]
    })
}

/// A half-open time window `[from, to)`; `None` is unbounded on that side.
/// Bounds carry microseconds at most, like PostgreSQL's `timestamptz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Window {
    pub const ALL: Window = Window {
        from: None,
        to: None,
    };

    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.to), (Some(f), Some(t)) if f >= t)
    }
}

const TIME_HINT: &str = "expected an RFC 3339 date-time such as 2024-01-01T10:00:00Z \
     (percent-encode '+' as %2B) or a date such as 2024-01-31";

/// Validates `from` and `to` into a window: a bare-date `from` starts at that
/// day's midnight (UTC), a bare-date `to` ends at the next midnight.
pub fn window(checker: &mut Checker, from: Option<&str>, to: Option<&str>) -> Option<Window> {
    let from_at = checker.optional("from", from, |v| {
        parse_instant(v, Some).and_then(in_supported_range)
    });
    let to_at = checker.optional("to", to, |v| {
        parse_instant(v, |d| d.checked_add_days(Days::new(1))).and_then(in_supported_range)
    });
    if (from.is_some() && from_at.is_none()) || (to.is_some() && to_at.is_none()) {
        return None;
    }
    if let (Some(f), Some(t)) = (from_at, to_at) {
        if f > t {
            checker.add(
                "from",
                format!(
                    "is after the end of the window ({}); use a from before to",
                    format_time(t)
                ),
            );
            return None;
        }
    }
    Some(Window {
        from: from_at,
        to: to_at,
    })
}

/// A date-time, rounded up to whole microseconds (so `>= from` and `< to`
/// select exactly the stored microsecond timestamps they would select at
/// nanosecond precision), or a bare date mapped through `date_bound`.
fn parse_instant(
    value: &str,
    date_bound: impl FnOnce(NaiveDate) -> Option<NaiveDate>,
) -> Result<DateTime<Utc>, String> {
    if value.len() == 10 && value.as_bytes()[4] == b'-' && value.as_bytes()[7] == b'-' {
        let date =
            NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| TIME_HINT.to_string())?;
        let bound = date_bound(date).ok_or_else(|| "date out of range".to_string())?;
        return Ok(Utc.from_utc_datetime(&bound.and_time(chrono::NaiveTime::MIN)));
    }
    let parsed = DateTime::parse_from_rfc3339(value).map_err(|_| TIME_HINT.to_string())?;
    ceil_micros(parsed.with_timezone(&Utc)).ok_or_else(|| "date-time out of range".to_string())
}

fn ceil_micros(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let sub_micro = i64::from(t.timestamp_subsec_nanos() % 1_000);
    if sub_micro == 0 {
        Some(t)
    } else {
        t.checked_add_signed(chrono::TimeDelta::nanoseconds(1_000 - sub_micro))
    }
}

/// Years 0001–9999: what RFC 3339 can write back and PostgreSQL can store.
fn in_supported_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    use chrono::Datelike;
    if (1..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err("out of the supported range (years 0001 to 9999)".to_string())
    }
}

/// UTC RFC 3339 with as many fraction digits as needed (none for whole
/// seconds): `2024-01-01T00:00:00Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `source`: `^[a-z0-9_-]{1,32}$`, the rule plugins' sources follow.
pub fn source(value: &str) -> Result<String, String> {
    if events_common::names::is_valid_source_name(value) {
        Ok(value.to_string())
    } else {
        Err("must match ^[a-z0-9_-]{1,32}$".to_string())
    }
}

/// Free-form identifiers (event types, campaign ids): 1 to 128 characters,
/// no control characters. They are only ever bound as query parameters.
pub fn identifier(value: &str) -> Result<String, String> {
    let len = value.chars().count();
    if (1..=128).contains(&len) && !value.chars().any(char::is_control) {
        Ok(value.to_string())
    } else {
        Err("must be 1 to 128 characters without control characters".to_string())
    }
}

/// `limit`: an integer in `1..=1000`.
pub fn limit(value: &str) -> Result<i64, String> {
    let message = || "must be an integer from 1 to 1000".to_string();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(message());
    }
    match value.parse::<i64>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(message()),
    }
}

/// A funnel stage (`funnelStage`), shared with the collectors.
pub use events_common::funnel::FunnelStage;

/// Timeline bucket size. Buckets are aligned on UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

/// At most this many buckets when the granularity is left to the reporter.
pub const MAX_DEFAULT_BUCKETS: i64 = 500;

impl Granularity {
    pub const ALL: [Granularity; 3] = [Self::Minute, Self::Hour, Self::Day];

    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "minute" => Ok(Self::Minute),
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            _ => Err("must be minute, hour or day".to_string()),
        }
    }

    /// The finest granularity giving at most [`MAX_DEFAULT_BUCKETS`] aligned
    /// buckets over `[start, end)` (day when none does).
    pub fn finest_for(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self::ALL
            .into_iter()
            .find(|g| g.buckets(start, end) <= MAX_DEFAULT_BUCKETS)
            .unwrap_or(Self::Day)
    }

    /// How many aligned buckets `[start, end)` touches.
    pub fn buckets(self, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
        if end <= start {
            return 0;
        }
        let width = self.seconds() * 1_000_000;
        let first = start.timestamp_micros().div_euclid(width);
        let last = (end.timestamp_micros() - 1).div_euclid(width);
        last - first + 1
    }
}

#[cfg(test)]
mod tests;
