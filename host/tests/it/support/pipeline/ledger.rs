//! The exact ledger: what the tables must hold after a run.
use events_publisher::{Batch, CorruptionKind};
use serde_json::Value;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet};

/// A refused event the ledger expects in `dead_letters`.
#[derive(Debug, Clone)]
pub struct Bad {
    pub raw: String,
    pub stage: &'static str,
    pub field: String,
}

impl Bad {
    pub fn of(event: &Value, kind: CorruptionKind) -> Self {
        let stage = if kind == CorruptionKind::MissingEventId {
            "gateway"
        } else {
            "plugin"
        };
        Self {
            raw: event.to_string(),
            stage,
            field: kind.field().to_string(),
        }
    }
}

/// What the database must hold: `valid`/`corrupted` for events in POSTs
/// answered 200, `uncertain_*` for POSTs that failed (they may or may not
/// have been stored, but never twice).
#[derive(Debug, Default)]
pub struct Ledger {
    pub valid: BTreeMap<String, Value>,
    pub corrupted: Vec<Bad>,
    pub uncertain_valid: BTreeMap<String, Value>,
    pub uncertain_corrupted: Vec<Bad>,
    pub sent: usize,
    pub duplicates: usize,
}

/// The exact 200 answer for `batch` (a body not sent before): (accepted,
/// rejected, duplicates). Every event passing the envelope check is
/// accepted, re-sent ones too (the database drops those); only an identical
/// body sent again is answered with duplicates.
pub fn expected_counts(batch: &Batch) -> (usize, usize, usize) {
    let gw = batch
        .corruptions
        .iter()
        .filter(|c| c.kind == CorruptionKind::MissingEventId)
        .count();
    (batch.len() - gw, gw, 0)
}

/// Asserts `reply` is the exact 200 answer for `batch` (see
/// [`expected_counts`]).
pub fn assert_exact_answer(status: u16, reply: &Value, batch: &Batch) {
    assert_eq!(status, 200, "{reply}");
    let (a, r, d) = expected_counts(batch);
    assert_eq!(
        (
            reply["accepted"].as_u64(),
            reply["rejected"].as_u64(),
            reply["duplicates"].as_u64()
        ),
        (Some(a as u64), Some(r as u64), Some(d as u64)),
        "{reply}"
    );
}

impl Ledger {
    /// Adds the ledger of another run (with other event ids).
    pub fn merge(&mut self, other: Ledger) {
        self.valid.extend(other.valid);
        self.corrupted.extend(other.corrupted);
        self.uncertain_valid.extend(other.uncertain_valid);
        self.uncertain_corrupted.extend(other.uncertain_corrupted);
        self.sent += other.sent;
        self.duplicates += other.duplicates;
    }

    /// Records the batches; delivered ones first, so that an event re-sent
    /// in a delivered POST counts as certain.
    pub fn record(&mut self, batches: &[(Batch, bool)]) {
        for delivered in [true, false] {
            for (batch, _) in batches.iter().filter(|(_, d)| *d == delivered) {
                self.sent += batch.len();
                self.duplicates += batch.duplicates();
                let bad: BTreeSet<usize> = batch.corruptions.iter().map(|c| c.index).collect();
                for c in &batch.corruptions {
                    let b = Bad::of(&batch.events[c.index], c.kind);
                    if delivered {
                        self.corrupted.push(b)
                    } else {
                        self.uncertain_corrupted.push(b)
                    }
                }
                for (_, ev) in batch
                    .events
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !bad.contains(i))
                {
                    let id = ev["eventId"]
                        .as_str()
                        .expect("valid events have ids")
                        .to_string();
                    if delivered {
                        self.uncertain_valid.remove(&id);
                        self.valid.insert(id, ev.clone());
                    } else if !self.valid.contains_key(&id) {
                        self.uncertain_valid.insert(id, ev.clone());
                    }
                }
            }
        }
    }

    /// Asserts the exact ledger: every certain valid event stored once with
    /// the fields its JSON says, nothing else but uncertain ones; every
    /// certain corrupted event dead-lettered exactly once at its stage with
    /// a reason naming its field; no dead letter twice or for a valid event.
    pub async fn check(&self, pool: &PgPool) {
        let rows = sqlx::query(
            "SELECT event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue::text AS revenue, campaign_id,
                    age, gender, country, city, followers, device, raw::text AS raw FROM events",
        )
        .fetch_all(pool)
        .await
        .expect("read events");
        let mut stored = BTreeSet::new();
        for r in &rows {
            let id: String = r.get("event_id");
            let ev = self
                .valid
                .get(&id)
                .or_else(|| self.uncertain_valid.get(&id));
            let ev = ev.unwrap_or_else(|| panic!("stored event {id} was never sent as valid"));
            assert_eq!(stored_row(r), expected_row(ev), "fields of {id}");
            stored.insert(id);
        }
        let missing: Vec<_> = self
            .valid
            .keys()
            .filter(|id| !stored.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} valid events missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );

        let dead = sqlx::query("SELECT stage, raw, reasons FROM dead_letters")
            .fetch_all(pool)
            .await
            .expect("read dead letters");
        let mut by_raw: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
        for r in &dead {
            by_raw.entry(r.get("raw")).or_default().push((
                r.get("stage"),
                r.get::<sqlx::types::Json<Value>, _>("reasons").0,
            ));
        }
        for (raw, letters) in &by_raw {
            assert_eq!(
                letters.len(),
                1,
                "dead letter stored {} times: {raw}",
                letters.len()
            );
        }
        let known: BTreeSet<&str> = self
            .corrupted
            .iter()
            .chain(&self.uncertain_corrupted)
            .map(|b| b.raw.as_str())
            .collect();
        for raw in by_raw.keys() {
            assert!(
                known.contains(raw.as_str()),
                "unexpected dead letter: {raw}"
            );
        }
        for b in &self.corrupted {
            let (stage, reasons) = &by_raw
                .get(&b.raw)
                .unwrap_or_else(|| panic!("corrupted event not dead-lettered: {}", b.raw))[0];
            assert_eq!(stage, b.stage, "stage of {}", b.raw);
            let names_field = reasons.as_array().is_some_and(|a| {
                a.iter().any(|r| {
                    r["field"].as_str().is_some_and(|f| {
                        f == b.field || f.starts_with(&b.field) || b.field.starts_with(f)
                    })
                })
            });
            assert!(
                names_field,
                "reasons {reasons} do not name {} for {}",
                b.field, b.raw
            );
        }
    }
}

type RowFields = (
    String,
    String,
    String,
    String,
    chrono::DateTime<chrono::Utc>,
    String,
    Option<String>,
    Option<String>,
    Demo,
    String,
);
type Demo = (
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn stored_row(r: &sqlx::postgres::PgRow) -> RowFields {
    (
        r.get("event_id"),
        r.get("source"),
        r.get("funnel_stage"),
        r.get("event_type"),
        r.get("occurred_at"),
        r.get("user_id"),
        r.get("revenue"),
        r.get("campaign_id"),
        (
            r.get("age"),
            r.get("gender"),
            r.get("country"),
            r.get("city"),
            r.get("followers"),
            r.get("device"),
        ),
        r.get("raw"),
    )
}

/// What the spec says an event's row holds.
fn expected_row(ev: &Value) -> RowFields {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let (user, eng) = (&ev["data"]["user"], &ev["data"]["engagement"]);
    let (source, stage, kind) = (
        s(&ev["source"]).unwrap(),
        s(&ev["funnelStage"]).unwrap(),
        s(&ev["eventType"]).unwrap(),
    );
    let occurred = chrono::DateTime::parse_from_rfc3339(ev["timestamp"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let top = stage == "top";
    let (revenue, campaign, demo) = if source == "facebook" {
        let loc = &user["location"];
        let demo = (
            user["age"].as_i64().map(|a| a as i32),
            s(&user["gender"]),
            s(&loc["country"]),
            s(&loc["city"]),
            None,
            None,
        );
        (
            s(&eng["purchaseAmount"]).filter(|_| kind == "checkout.complete"),
            s(&eng["campaignId"]).filter(|_| !top),
            demo,
        )
    } else {
        let demo = (
            None,
            None,
            s(&eng["country"]).filter(|_| top),
            None,
            user["followers"].as_i64(),
            s(&eng["device"]).filter(|_| top),
        );
        (
            s(&eng["purchaseAmount"]).filter(|_| kind == "purchase"),
            None,
            demo,
        )
    };
    (
        s(&ev["eventId"]).unwrap(),
        source,
        stage,
        kind,
        occurred,
        s(&user["userId"]).unwrap(),
        revenue,
        campaign,
        demo,
        ev.to_string(),
    )
}
