//! `events-host plugin test <component.wasm> <FIXTURES_DIR|fixture.json>...`: fixture tests
//! for plugin authors. Each fixture is one JSON file naming an input event and the verdict
//! expected for it (format: `plugins/README.md`, "Fixture tests"). The component is loaded
//! exactly as the host loads it ([`crate::check::Loaded`]); every fixture is run and reported
//! (`ok` / `FAIL` plus a diff per failure).
use crate::check::Loaded;
use crate::plugins::{EventResult, NormalizedEvent};
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The normalized-event fields a fixture may expect (the host's [`NormalizedEvent`] names).
pub const FIELDS: &[&str] = &[
    "event_id",
    "source",
    "occurred_at",
    "funnel_stage",
    "event_type",
    "user_id",
    "revenue",
    "campaign_id",
    "age",
    "gender",
    "country",
    "city",
    "followers",
    "device",
];

/// One fixture file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    name: Option<String>,
    /// The event as JSON, sent exactly as written in the file (number literals such as
    /// `30.0` or `1e3` and duplicate keys are kept).
    input: Option<Box<serde_json::value::RawValue>>,
    /// Or the exact text sent (for inputs that are not JSON, e.g. `"{"`).
    raw: Option<String>,
    expect: Expect,
}

#[derive(Debug, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "lowercase", deny_unknown_fields)]
enum Expect {
    /// Accepted; `fields` is a subset of the normalized event (absent = not checked,
    /// `null` = must be none).
    Accepted {
        #[serde(default)]
        fields: Map<String, Value>,
    },
    /// Rejected with issues on exactly these fields (JSON paths; order-insensitive).
    Rejected { fields: Vec<String> },
}

/// A parsed fixture.
#[derive(Debug)]
pub struct Fixture {
    pub path: PathBuf,
    pub name: Option<String>,
    pub text: String,
    expect: Expect,
}

/// The run's counts; the exit code is 0 only when `failed == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// Loads the fixtures (`Err` names the bad file), loads the component, runs every fixture
/// and prints one line per fixture plus a diff per failure and a summary line.
pub fn run(component: &Path, fixtures: &[PathBuf]) -> anyhow::Result<Summary> {
    let fixtures = load_fixtures(fixtures)?;
    let loaded = Loaded::new(component)?;
    loaded.print_header();
    let mut summary = Summary {
        passed: 0,
        failed: 0,
    };
    for f in &fixtures {
        let label = match &f.name {
            Some(n) => format!("{} ({n})", f.path.display()),
            None => f.path.display().to_string(),
        };
        let diff = match loaded.plugin.normalize_batch_blocking(&[f.text.as_str()]) {
            Ok(mut results) if results.len() == 1 => compare(&f.expect, &results.remove(0)),
            Ok(results) => vec![format!(
                "the plugin returned {} results for 1 event",
                results.len()
            )],
            Err(e) => vec![format!("plugin call failed: {e}")],
        };
        if diff.is_empty() {
            summary.passed += 1;
            println!("ok    {label}");
        } else {
            summary.failed += 1;
            println!("FAIL  {label}");
            for line in diff {
                println!("        {line}");
            }
        }
    }
    println!(
        "{} fixtures: {} passed, {} failed",
        fixtures.len(),
        summary.passed,
        summary.failed
    );
    Ok(summary)
}

/// Every `*.json` file under the given directories (recursively, sorted by path) and every
/// file given directly. An unreadable or malformed fixture is an error naming the file.
pub fn load_fixtures(paths: &[PathBuf]) -> anyhow::Result<Vec<Fixture>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_json(p, &mut files)?;
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        bail!(
            "no fixtures (*.json) found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    files
        .into_iter()
        .map(|path| parse_fixture(&path).with_context(|| format!("bad fixture {}", path.display())))
        .collect()
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read fixture directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read fixture directory {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_json(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// What a fixture file must look like, said when one does not parse.
const FIXTURE_SHAPE: &str = r#"expected {"name"?, "input" | "raw", "expect": {"verdict": "accepted", "fields"?: {..}} | {"verdict": "rejected", "fields": [..]}}"#;

fn parse_fixture(path: &Path) -> anyhow::Result<Fixture> {
    let text = std::fs::read_to_string(path).context("cannot read it")?;
    let file: FixtureFile = serde_json::from_str(&text).context(FIXTURE_SHAPE)?;
    let text = match (file.input, file.raw) {
        (Some(v), None) => v.get().to_owned(),
        (None, Some(raw)) => raw,
        _ => bail!("exactly one of \"input\" (the event JSON) or \"raw\" (its text) is needed"),
    };
    check_expect(&file.expect)?;
    Ok(Fixture {
        path: path.to_owned(),
        name: file.name,
        text,
        expect: file.expect,
    })
}

/// An accepted fixture names only normalized fields; a rejected one at
/// least one field.
fn check_expect(expect: &Expect) -> anyhow::Result<()> {
    match expect {
        Expect::Accepted { fields } => {
            if let Some(k) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                bail!(
                    "unknown normalized field {k:?} in expect.fields (known: {})",
                    FIELDS.join(", ")
                );
            }
        }
        Expect::Rejected { fields } => {
            if fields.is_empty() {
                bail!("a rejected fixture names at least one field in expect.fields");
            }
        }
    }
    Ok(())
}

/// The normalized event as the JSON object fixtures compare against (`occurred_at` as RFC 3339
/// UTC, `Z`, fraction only when non-zero).
pub fn normalized_fields(e: &NormalizedEvent) -> Map<String, Value> {
    let mut m = match serde_json::to_value(e) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.insert(
        "occurred_at".into(),
        Value::String(
            e.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
    );
    m
}

/// The differences between what a fixture expects and what the plugin returned (empty = pass).
fn compare(expect: &Expect, got: &EventResult) -> Vec<String> {
    let mut diff = Vec::new();
    match (expect, got) {
        (Expect::Accepted { fields }, EventResult::Ok(e)) => {
            let actual = normalized_fields(e);
            for (k, want) in fields {
                let have = actual.get(k).unwrap_or(&Value::Null);
                if !same_value(k, want, have) {
                    diff.push(format!("{k}: expected {want}, got {have}"));
                }
            }
        }
        (Expect::Accepted { .. }, EventResult::Rejected(issues)) => {
            diff.push("expected accepted, got rejected:".into());
            diff.extend(issues.iter().map(|i| format!("  - {i}")));
        }
        (Expect::Rejected { fields }, EventResult::Ok(e)) => {
            diff.push(format!(
                "expected rejected on [{}], got accepted:",
                fields.join(", ")
            ));
            diff.extend(
                normalized_fields(e)
                    .iter()
                    .map(|(k, v)| format!("  {k} = {v}")),
            );
        }
        (Expect::Rejected { fields }, EventResult::Rejected(issues)) => {
            let want: BTreeSet<&str> = fields.iter().map(String::as_str).collect();
            let have: BTreeSet<&str> = issues.iter().map(|i| i.field.as_str()).collect();
            for f in want.difference(&have) {
                diff.push(format!("missing rejection field: {f}"));
            }
            for i in issues.iter().filter(|i| !want.contains(i.field.as_str())) {
                diff.push(format!("extra rejection field: {i}"));
            }
        }
    }
    diff
}

/// Equal JSON values; `occurred_at` also matches the same instant written with an offset.
fn same_value(field: &str, want: &Value, have: &Value) -> bool {
    if want == have {
        return true;
    }
    if field == "occurred_at" {
        if let (Some(w), Some(h)) = (want.as_str(), have.as_str()) {
            let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
            return parse(w).is_some_and(|w| parse(h) == Some(w));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{FunnelStage, Issue};

    fn event() -> NormalizedEvent {
        NormalizedEvent {
            event_id: "e-1".into(),
            source: "example".into(),
            occurred_at: chrono::DateTime::parse_from_rfc3339("2024-03-01T12:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            funnel_stage: FunnelStage::Top,
            event_type: "view".into(),
            user_id: "u".into(),
            revenue: None,
            campaign_id: None,
            age: Some(30),
            gender: None,
            country: None,
            city: None,
            followers: None,
            device: None,
        }
    }

    fn accepted(v: Value) -> Expect {
        Expect::Accepted {
            fields: v.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn every_field_name_is_a_normalized_field() {
        let m = normalized_fields(&event());
        assert_eq!(m.keys().collect::<BTreeSet<_>>().len(), FIELDS.len());
        assert!(FIELDS.iter().all(|f| m.contains_key(*f)));
    }

    #[test]
    fn accepted_fields_compare() {
        let ok = EventResult::Ok(Box::new(event()));
        let e = accepted(serde_json::json!({
            "age": 30, "revenue": null, "occurred_at": "2024-03-01T14:00:00+02:00"
        }));
        assert!(compare(&e, &ok).is_empty());
        let e = accepted(serde_json::json!({"age": 31, "revenue": "1"}));
        assert_eq!(
            compare(&e, &ok),
            [
                "age: expected 31, got 30",
                "revenue: expected \"1\", got null"
            ]
        );
    }

    #[test]
    fn rejection_fields_compare() {
        let got = EventResult::Rejected(vec![
            Issue::new("source", "is required"),
            Issue::new("data.user.age", "must be an integer, got 30.0"),
        ]);
        let e = Expect::Rejected {
            fields: vec!["data.user.age".into(), "eventId".into()],
        };
        assert_eq!(
            compare(&e, &got),
            [
                "missing rejection field: eventId",
                "extra rejection field: source: is required"
            ]
        );
    }
}
