//! Exact field checks that collect every issue of an event.
//!
//! Each check takes the parent object and the field's full JSON path (`"data.user.age"`); the
//! key looked up is the path's last segment. A check returns the typed value when the field is
//! valid and otherwise records an [`Issue`] on that path and returns `None`, so a plugin runs
//! all its checks and then either assembles the event or returns all the issues.
//!
//! Conventions (shared by all plugins):
//! * missing → `is required`; for nullable fields `is required (null is allowed)`;
//! * wrong type or value → `must be …, got <value>` (`got 30.0`, `got "30"`, `got an array`);
//! * the whole document (invalid JSON, not an object) → field `$`.

use crate::json::{short_eq, Object, Value};
use crate::time::parse_rfc3339;
use crate::{FunnelStage, Issue, Timestamp};

/// Collects the issues of one event.
#[derive(Debug, Default)]
pub struct Validator {
    issues: Vec<Issue>,
}

/// The event types a source allows at each funnel stage.
#[derive(Debug, Clone, Copy)]
pub struct EventTypes {
    pub top: &'static [&'static str],
    pub bottom: &'static [&'static str],
}

/// The common envelope, as far as it is valid (`None` = missing or invalid, issue recorded).
#[derive(Debug)]
pub struct Envelope<'v, 'a> {
    pub event_id: Option<&'v str>,
    pub occurred_at: Option<Timestamp>,
    pub funnel_stage: Option<FunnelStage>,
    /// The event type, valid for the source and (if the stage is valid) for the stage.
    pub event_type: Option<&'static str>,
    pub user: Option<&'v Object<'a>>,
    pub engagement: Option<&'v Object<'a>>,
}

/// The path's last segment. A plain backwards byte loop: `rfind('.')` goes through `memrchr`,
/// whose setup cost dominated for these short paths in guest profiles.
#[inline]
fn key_of(path: &str) -> &str {
    let bytes = path.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        if bytes[i] == b'.' {
            return &path[i + 1..];
        }
    }
    path
}

fn one_of(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    quoted.join(", ")
}

impl Validator {
    pub fn new() -> Self {
        Validator { issues: Vec::new() }
    }

    /// Records an issue.
    pub fn issue(&mut self, field: &str, message: impl Into<String>) {
        self.issues.push(Issue::new(field, message));
    }

    /// `true` while no issue has been recorded.
    pub fn is_ok(&self) -> bool {
        self.issues.is_empty()
    }

    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    pub fn into_issues(self) -> Vec<Issue> {
        self.issues
    }

    /// `Ok` when no issue was recorded, else all the issues.
    pub fn finish(self) -> Result<(), Vec<Issue>> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(self.issues)
        }
    }

    /// For a plugin's "cannot happen" branch: all checks passed but a value is missing.
    /// Returned instead of panicking so a plugin bug rejects the event rather than trapping.
    pub fn inconsistent() -> Vec<Issue> {
        vec![Issue::new(
            "$",
            "internal plugin error: a validated field is missing",
        )]
    }

    /// Parses the event text; the root must be a JSON object. Problems are reported on `$`.
    pub fn parse_root(raw: &str) -> Result<Object<'_>, Vec<Issue>> {
        match crate::json::parse(raw) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(other) => Err(vec![Issue::new(
                "$",
                format!("must be a JSON object, got {}", other.describe()),
            )]),
            Err(e) => Err(vec![Issue::new("$", format!("is not valid JSON: {e}"))]),
        }
    }

    /// The field, which must be present (any type, including null).
    pub fn present<'v, 'a>(&mut self, obj: &'v Object<'a>, path: &str) -> Option<&'v Value<'a>> {
        let v = obj.get(key_of(path));
        if v.is_none() {
            self.issue(path, "is required");
        }
        v
    }

    /// Like [`Self::present`], but `Some(None)` when the field is null, `None` when missing.
    fn nullable<'v, 'a>(
        &mut self,
        obj: &'v Object<'a>,
        path: &str,
    ) -> Option<Option<&'v Value<'a>>> {
        match obj.get(key_of(path)) {
            None => {
                self.issue(path, "is required (null is allowed)");
                None
            }
            Some(Value::Null) => Some(None),
            Some(v) => Some(Some(v)),
        }
    }

    fn type_issue(&mut self, path: &str, expected: &str, got: &Value<'_>) {
        self.issue(path, format!("must be {expected}, got {}", got.describe()));
    }

    /// A required JSON object.
    pub fn object<'v, 'a>(&mut self, obj: &'v Object<'a>, path: &str) -> Option<&'v Object<'a>> {
        match self.present(obj, path)? {
            Value::Object(o) => Some(o),
            other => {
                self.type_issue(path, "an object", other);
                None
            }
        }
    }

    fn as_str<'v>(&mut self, path: &str, v: &'v Value<'_>) -> Option<&'v str> {
        match v {
            // PostgreSQL text cannot hold NUL: refused here, with its field.
            Value::String(s) if s.contains('\0') => {
                self.issue(path, "must not contain NUL characters (\\u0000)");
                None
            }
            Value::String(s) => Some(s.as_ref()),
            other => {
                self.type_issue(path, "a string", other);
                None
            }
        }
    }

    /// A required string (any string, including empty).
    pub fn string<'v>(&mut self, obj: &'v Object<'_>, path: &str) -> Option<&'v str> {
        let v = self.present(obj, path)?;
        self.as_str(path, v)
    }

    /// A required, non-empty string.
    pub fn non_empty_string<'v>(&mut self, obj: &'v Object<'_>, path: &str) -> Option<&'v str> {
        let s = self.string(obj, path)?;
        if s.is_empty() {
            self.issue(path, "must be a non-empty string");
            return None;
        }
        Some(s)
    }

    /// A present field that is a string or null: `Some(None)` for null.
    pub fn nullable_string<'v>(
        &mut self,
        obj: &'v Object<'_>,
        path: &str,
    ) -> Option<Option<&'v str>> {
        match self.nullable(obj, path)? {
            None => Some(None),
            Some(v) => self.as_str(path, v).map(Some),
        }
    }

    /// A required string that is exactly one of `allowed` (case-sensitive).
    pub fn enumeration(
        &mut self,
        obj: &Object<'_>,
        path: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let v = self.present(obj, path)?;
        let s = self.as_str(path, v)?;
        let found = allowed.iter().copied().find(|a| short_eq(a, s));
        if found.is_none() {
            self.type_issue(path, &format!("one of {}", one_of(allowed)), v);
        }
        found
    }

    /// A required JSON integer (`30`; not `30.0`, `1e3`, `"30"` or `true`) within `min..=max`.
    pub fn integer(&mut self, obj: &Object<'_>, path: &str, min: i128, max: i128) -> Option<i128> {
        let v = self.present(obj, path)?;
        let Some(n) = (match v {
            Value::Number(n) => n.as_integer(),
            _ => None,
        }) else {
            self.type_issue(path, "an integer", v);
            return None;
        };
        if n < min || n > max {
            self.range_issue(path, min as f64, Some(max as f64), v);
            return None;
        }
        Some(n)
    }

    /// A required JSON number (fractions allowed, booleans are not numbers) within
    /// `min..=max` (`max = None`: no upper bound).
    pub fn number(
        &mut self,
        obj: &Object<'_>,
        path: &str,
        min: f64,
        max: Option<f64>,
    ) -> Option<f64> {
        let v = self.present(obj, path)?;
        let Value::Number(n) = v else {
            self.type_issue(path, "a number", v);
            return None;
        };
        let x = n.as_f64();
        if x < min || max.is_some_and(|m| x > m) {
            self.range_issue(path, min, max, v);
            return None;
        }
        Some(x)
    }

    fn range_issue(&mut self, path: &str, min: f64, max: Option<f64>, got: &Value<'_>) {
        let bounds = match max {
            Some(m) if m < 1e15 => format!("between {min} and {m}"),
            _ => format!(">= {min}"),
        };
        self.issue(path, format!("must be {bounds}, got {}", got.describe()));
    }

    /// A required RFC 3339 date-time string, normalized to UTC (see [`crate::time`]).
    pub fn datetime(&mut self, obj: &Object<'_>, path: &str) -> Option<Timestamp> {
        let v = self.present(obj, path)?;
        let s = self.as_str(path, v)?;
        match parse_rfc3339(s) {
            Ok(t) => Some(t),
            Err(why) => {
                self.issue(path, format!("{why}, got {}", v.describe()));
                None
            }
        }
    }

    /// A present decimal-amount string (`^[0-9]+(\.[0-9]{1,2})?$`) or null. JSON numbers are
    /// never amounts. Returns the string exactly as given.
    pub fn nullable_amount<'v>(
        &mut self,
        obj: &'v Object<'_>,
        path: &str,
    ) -> Option<Option<&'v str>> {
        let v = self.nullable(obj, path)?;
        let Some(v) = v else { return Some(None) };
        let s = match v {
            Value::String(s) => s.as_ref(),
            other => {
                self.type_issue(path, "a decimal string like \"123.45\"", other);
                return None;
            }
        };
        if !is_amount(s) {
            self.type_issue(
                path,
                "a decimal string matching ^[0-9]{1,15}(\\.[0-9]{1,2})?$",
                v,
            );
            return None;
        }
        Some(Some(s))
    }

    /// The common envelope: `eventId` (non-empty string), `timestamp`, `source` (must be
    /// `source`), `funnelStage`, `eventType` (valid for the source and the stage), and the
    /// objects `data`, `data.user`, `data.engagement`.
    pub fn envelope<'v, 'a>(
        &mut self,
        root: &'v Object<'a>,
        source: &str,
        types: &EventTypes,
    ) -> Envelope<'v, 'a> {
        let event_id = self.non_empty_string(root, "eventId");
        let occurred_at = self.datetime(root, "timestamp");
        if let Some(s) = self.string(root, "source") {
            if !short_eq(s, source) {
                self.issue(
                    "source",
                    format!("must be \"{source}\" (the source this plugin owns), got \"{s}\""),
                );
            }
        }
        let funnel_stage = self
            .enumeration(root, "funnelStage", &["top", "bottom"])
            .map(|s| {
                if s == "top" {
                    FunnelStage::Top
                } else {
                    FunnelStage::Bottom
                }
            });
        let event_type = self.event_type(root, types, funnel_stage);
        let (user, engagement) = match self.object(root, "data") {
            Some(data) => (
                self.object(data, "data.user"),
                self.object(data, "data.engagement"),
            ),
            None => (None, None),
        };
        Envelope {
            event_id,
            occurred_at,
            funnel_stage,
            event_type,
            user,
            engagement,
        }
    }

    fn event_type(
        &mut self,
        root: &Object<'_>,
        types: &EventTypes,
        stage: Option<FunnelStage>,
    ) -> Option<&'static str> {
        let v = self.present(root, "eventType")?;
        let s = self.as_str("eventType", v)?;
        let top = types.top.iter().copied().find(|t| short_eq(t, s));
        let bottom = types.bottom.iter().copied().find(|t| short_eq(t, s));
        let (found, its_stage) = match (top, bottom) {
            (Some(t), _) => (t, FunnelStage::Top),
            (None, Some(b)) => (b, FunnelStage::Bottom),
            (None, None) => {
                let all: Vec<&str> = types.top.iter().chain(types.bottom).copied().collect();
                self.type_issue("eventType", &format!("one of {}", one_of(&all)), v);
                return None;
            }
        };
        match stage {
            Some(st) if st != its_stage && !(top.is_some() && bottom.is_some()) => {
                self.issue(
                    "eventType",
                    format!(
                        "\"{s}\" is a {}-funnel event type but funnelStage is \"{}\"",
                        its_stage.as_str(),
                        st.as_str()
                    ),
                );
                None
            }
            _ => Some(found),
        }
    }
}

/// Most integer digits of an amount: sums of many stay exact in the reports' decimals.
pub const MAX_AMOUNT_DIGITS: usize = 15;

/// `^[0-9]{1,15}(\.[0-9]{1,2})?$` on ASCII digits, exactly (no sign, exponent or whitespace).
pub fn is_amount(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let all_digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    !int.is_empty()
        && int.len() <= MAX_AMOUNT_DIGITS
        && all_digits(int)
        && frac.is_none_or(|f| (1..=2).contains(&f.len()) && all_digits(f))
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn key_of_is_the_last_segment() {
        assert_eq!(key_of("data.user.age"), "age");
        assert_eq!(key_of("eventId"), "eventId");
        assert_eq!(key_of("a."), "");
        assert_eq!(key_of(".a"), "a");
        assert_eq!(key_of(""), "");
    }
}
