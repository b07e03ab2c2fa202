//! Generated bindings of every supported WIT version, side by side, and
//! their conversion into host types.
//!
//! A component is linked against the newest version it fits
//! ([`PluginPre::new`]); older versions' results are converted to the
//! current shape, so the rest of the host sees one contract.
//!
//! The conversion is also where a plugin's output is checked: the host never
//! trusts a guest to respect the contract (source, timestamp, amount format,
//! integer ranges), because a bad value would otherwise fail a whole database
//! batch later.
mod v0_1;
mod v0_2;

use super::limits::StoreState;
use super::types::{EventResult, FunnelStage, Identity, Issue, NormalizedEvent};
use v0_2::wit;
use wasmtime::{
    component::{Func, InstancePre},
    Store,
};

/// A component pre-linked against the contract version it implements.
pub enum PluginPre {
    V0_2(v0_2::SourcePluginPre<StoreState>),
    V0_1(v0_1::SourcePluginPre<StoreState>),
}

/// A live instance: its `normalize-batch` export, called with borrowed
/// strings so a batch's events are not copied on the host side.
pub struct Bound {
    normalize: Func,
    version: Version,
}

#[derive(Clone, Copy)]
enum Version {
    V0_2,
    V0_1,
}

type Batch<'a> = (&'a [&'a str],);

impl PluginPre {
    /// Links `pre` against the newest contract it implements; `Err` says why
    /// it fits none.
    pub fn new(pre: InstancePre<StoreState>) -> Result<Self, String> {
        let newest = match v0_2::SourcePluginPre::new(pre.clone()) {
            Ok(p) => return Ok(Self::V0_2(p)),
            Err(e) => e,
        };
        v0_1::SourcePluginPre::new(pre)
            .map(Self::V0_1)
            .map_err(|old| {
                format!(
                    "{newest:#} (as marketing:events@0.2.0); {old:#} (as marketing:events@0.1.0)"
                )
            })
    }

    /// The contract version, e.g. `0.2.0`.
    pub fn version(&self) -> &'static str {
        match self {
            Self::V0_2(_) => "0.2.0",
            Self::V0_1(_) => "0.1.0",
        }
    }

    pub fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Bound> {
        let (instance, version) = match self {
            Self::V0_2(p) => (p.instance_pre().instantiate(&mut *store)?, Version::V0_2),
            Self::V0_1(p) => (p.instance_pre().instantiate(&mut *store)?, Version::V0_1),
        };
        let normalize = instance
            .get_func(&mut *store, "normalize-batch")
            .ok_or_else(|| wasmtime::format_err!("no normalize-batch export"))?;
        Ok(Bound { normalize, version })
    }

    /// Instantiates and asks the plugin who it is.
    pub fn identity(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Identity> {
        let id: wit::Identity = match self {
            Self::V0_2(p) => p.instantiate(&mut *store)?.call_identity(&mut *store)?,
            Self::V0_1(p) => p
                .instantiate(&mut *store)?
                .call_identity(&mut *store)?
                .into(),
        };
        Ok(Identity {
            name: id.name,
            version: id.version,
            source: id.source,
        })
    }
}

impl Bound {
    /// Calls `normalize-batch`; results in the current contract's shape.
    pub fn normalize(
        &self,
        store: &mut Store<StoreState>,
        events: &[&str],
    ) -> wasmtime::Result<Vec<wit::EventResult>> {
        match self.version {
            Version::V0_2 => {
                let f = self
                    .normalize
                    .typed::<Batch, (Vec<wit::EventResult>,)>(&*store)?;
                Ok(f.call(&mut *store, (events,))?.0)
            }
            Version::V0_1 => {
                let f = self
                    .normalize
                    .typed::<Batch, (Vec<v0_1::marketing::events::types::EventResult>,)>(&*store)?;
                let (results,) = f.call(&mut *store, (events,))?;
                Ok(results.into_iter().map(Into::into).collect())
            }
        }
    }
}

/// The bytes a result carries (its strings), for the output bound.
pub fn output_bytes(r: &wit::EventResult) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    match r {
        wit::EventResult::Rejected(issues) => {
            issues.iter().map(|i| i.field.len() + i.message.len()).sum()
        }
        wit::EventResult::Ok(e) => {
            let d = &e.demographics;
            e.event_id.len()
                + e.source.len()
                + e.event_type.len()
                + e.user_id.len()
                + opt(&e.revenue)
                + opt(&e.campaign_id)
                + opt(&d.gender)
                + opt(&d.country)
                + opt(&d.city)
                + opt(&d.device)
        }
    }
}

/// Converts one result, checking it against the contract. `Err` names the
/// violation; the caller fails the whole call (a plugin that breaks the
/// contract once cannot be trusted for the rest of the batch).
pub fn convert_result(r: wit::EventResult, source: &str) -> Result<EventResult, String> {
    match r {
        wit::EventResult::Rejected(issues) => {
            if issues.is_empty() {
                return Err("a rejection carries no issue".into());
            }
            Ok(EventResult::Rejected(
                issues
                    .into_iter()
                    .map(|i| Issue {
                        field: i.field,
                        message: i.message,
                    })
                    .collect(),
            ))
        }
        wit::EventResult::Ok(e) => {
            // Valid WIT values the database cannot hold (age > i32::MAX,
            // followers > i64::MAX, NUL in a string, amounts beyond 15
            // integer digits) reject that event only: they must not fail the
            // whole batch, nor overflow a report's sums later.
            if let Some(issue) = unstorable(&e) {
                return Ok(EventResult::Rejected(vec![issue]));
            }
            convert_event(e, source).map(|e| EventResult::Ok(Box::new(e)))
        }
    }
}

/// Most integer digits of a stored amount (sums stay exact in the reports).
pub const MAX_AMOUNT_DIGITS: usize = 15;

fn unstorable(e: &wit::NormalizedEvent) -> Option<Issue> {
    let d = &e.demographics;
    let too_big = |field: &str, got: u64, max: u64| Issue {
        field: field.into(),
        message: format!("is {got}, more than the host can store ({max})"),
    };
    if let Some(age) = d.age.filter(|a| *a > i32::MAX as u32) {
        return Some(too_big("demographics.age", age.into(), i32::MAX as u64));
    }
    if let Some(f) = d.followers.filter(|f| *f > i64::MAX as u64) {
        return Some(too_big("demographics.followers", f, i64::MAX as u64));
    }
    if let Some(r) = &e.revenue {
        let digits = r.split('.').next().map_or(0, str::len);
        if digits > MAX_AMOUNT_DIGITS {
            return Some(Issue::new(
                "revenue",
                format!("has {digits} integer digits, more than {MAX_AMOUNT_DIGITS}"),
            ));
        }
    }
    let strings = [
        ("eventId", Some(&e.event_id)),
        ("eventType", Some(&e.event_type)),
        ("userId", Some(&e.user_id)),
        ("campaignId", e.campaign_id.as_ref()),
        ("demographics.gender", d.gender.as_ref()),
        ("demographics.country", d.country.as_ref()),
        ("demographics.city", d.city.as_ref()),
        ("demographics.device", d.device.as_ref()),
    ];
    strings
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| v.contains('\0')))
        .map(|(field, _)| Issue::new(field, "contains NUL, which the database cannot store"))
}

fn convert_event(e: wit::NormalizedEvent, source: &str) -> Result<NormalizedEvent, String> {
    if e.source != source {
        return Err(format!(
            "event {:?} has source {:?} but the plugin owns {:?}",
            e.event_id, e.source, source
        ));
    }
    if e.event_id.is_empty() || e.event_type.is_empty() {
        return Err("event id and event type must not be empty".into());
    }
    let occurred_at =
        chrono::DateTime::from_timestamp(e.occurred_at.seconds, e.occurred_at.nanoseconds)
            .filter(|_| e.occurred_at.nanoseconds < 1_000_000_000)
            .ok_or_else(|| {
                format!(
                    "event {:?}: timestamp {}s {}ns is out of range",
                    e.event_id, e.occurred_at.seconds, e.occurred_at.nanoseconds
                )
            })?;
    if let Some(r) = &e.revenue {
        if !super::types::is_valid_amount(r) {
            return Err(format!(
                "event {:?}: revenue {r:?} is not an exact decimal",
                e.event_id
            ));
        }
    }
    let d = e.demographics;
    Ok(NormalizedEvent {
        event_id: e.event_id,
        source: e.source,
        occurred_at,
        funnel_stage: match e.funnel_stage {
            wit::FunnelStage::Top => FunnelStage::Top,
            wit::FunnelStage::Bottom => FunnelStage::Bottom,
        },
        event_type: e.event_type,
        user_id: e.user_id,
        revenue: e.revenue,
        campaign_id: e.campaign_id,
        age: d.age,
        gender: d.gender,
        country: d.country,
        city: d.city,
        followers: d.followers,
        device: d.device,
    })
}
