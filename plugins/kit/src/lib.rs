//! `events-plugin-kit`: what every marketing-event source plugin shares.
//!
//! * Rust types mirroring `wit/source-plugin.wit` (`marketing:events@0.2.0`), so plugin logic is
//!   plain Rust that compiles natively (tests, host-side benchmarks) and to wasm. Since 0.2.0 a
//!   normalized event carries no `raw` echo: the host pairs each result with the bytes it sent
//!   (by index) and stores exactly those.
//! * [`json`]: a zero-copy JSON tree parsed once per event (serde_json does the parsing).
//! * [`time`]: an exact RFC 3339 parser normalizing to UTC.
//! * [`Validator`]: exact field checks that collect *every* issue of an event, each naming the
//!   field by its JSON path (`data.user.age`) and saying why.
//! * [`export_source_plugin!`]: the wit-bindgen glue for a plugin's `component` module.
//! * On wasm32, the guest's `#[global_allocator]` (talc; feature `wasm-allocator`, default on):
//!   every plugin depending on the kit gets it without code of its own.

/// The guest's global allocator: talc, growing wasm memory as needed (single-threaded wasm only;
/// wasm32-wasip2 has no threads). Measurably faster than the default dlmalloc for the many small,
/// short-lived allocations of a batch. Feature `wasm-allocator` (default); native builds keep
/// the system allocator.
#[cfg(all(
    feature = "wasm-allocator",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static GUEST_ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub mod json;
pub mod time;
mod validate;

pub use validate::{is_amount, Envelope, EventTypes, Validator};

/// Who a plugin is (WIT `identity`). `source` must match `^[a-z0-9_-]{1,32}$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub version: String,
    pub source: String,
}

/// WIT `funnel-stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunnelStage {
    Top,
    Bottom,
}

impl FunnelStage {
    /// The wire spelling (`"top"` / `"bottom"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FunnelStage::Top => "top",
            FunnelStage::Bottom => "bottom",
        }
    }
}

/// WIT `timestamp`: UTC seconds since the Unix epoch plus `0..1_000_000_000` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanoseconds: u32,
}

/// WIT `demographics`: every field optional, a source reports what it knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Demographics {
    pub age: Option<u32>,
    pub gender: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub followers: Option<u64>,
    pub device: Option<String>,
}

/// WIT `normalized-event`: the source-independent shape every report is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedEvent {
    pub event_id: String,
    pub source: String,
    pub occurred_at: Timestamp,
    pub funnel_stage: FunnelStage,
    pub event_type: String,
    pub user_id: String,
    /// Exact decimal `^[0-9]+(\.[0-9]{1,2})?$`, only on revenue events.
    pub revenue: Option<String>,
    pub campaign_id: Option<String>,
    pub demographics: Demographics,
}

/// WIT `validation-issue`: `field` is a JSON path (`data.user.age`, or `$` for the whole
/// document), `message` says why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

impl Issue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// WIT `event-result`: `Ok` = normalized, `Err` = every reason the event is invalid (non-empty).
pub type EventResult = Result<NormalizedEvent, Vec<Issue>>;

/// Implements the WIT world `source-plugin` (`marketing:events@0.2.0`) for the calling crate.
/// Invoke it inside a `#[cfg(target_arch = "wasm32")] mod component;` of a crate that depends on
/// `wit-bindgen` (as a wasm32-only dependency):
///
/// ```ignore
/// events_plugin_kit::export_source_plugin! {
///     wit_path: "../../wit",                 // relative to the crate's Cargo.toml
///     identity: crate::identity,             // fn() -> events_plugin_kit::Identity
///     normalize: crate::normalize,           // fn(&str) -> events_plugin_kit::EventResult
/// }
/// ```
///
/// A plugin that needs the whole batch at once passes `normalize_batch: path`
/// (`fn(&[&str]) -> Vec<EventResult>`, exactly one result per input, in order) instead of
/// `normalize`.
#[macro_export]
macro_rules! export_source_plugin {
    (wit_path: $path:tt, identity: $identity:path, normalize: $normalize:path $(,)?) => {
        $crate::export_source_plugin!(@glue $path, $identity, |events: &[String]| {
            events
                .iter()
                .map(|e| to_wit($normalize(e.as_str())))
                .collect::<Vec<wit::EventResult>>()
        });
    };
    (wit_path: $path:tt, identity: $identity:path, normalize_batch: $batch:path $(,)?) => {
        $crate::export_source_plugin!(@glue $path, $identity, |events: &[String]| {
            let borrowed: Vec<&str> = events.iter().map(String::as_str).collect();
            let results: Vec<$crate::EventResult> = $batch(&borrowed);
            results.into_iter().map(to_wit).collect::<Vec<wit::EventResult>>()
        });
    };
    (@glue $path:tt, $identity:path, $batch:expr) => {
        ::wit_bindgen::generate!({ world: "source-plugin", path: $path });

        use marketing::events::types as wit;

        struct Plugin;

        impl Guest for Plugin {
            fn identity() -> wit::Identity {
                let id: $crate::Identity = $identity();
                wit::Identity {
                    name: id.name,
                    version: id.version,
                    source: id.source,
                }
            }

            fn normalize_batch(events: Vec<String>) -> Vec<wit::EventResult> {
                ($batch)(&events)
            }
        }

        fn to_wit(result: $crate::EventResult) -> wit::EventResult {
            match result {
                Ok(e) => wit::EventResult::Ok(wit::NormalizedEvent {
                    event_id: e.event_id,
                    source: e.source,
                    occurred_at: wit::Timestamp {
                        seconds: e.occurred_at.seconds,
                        nanoseconds: e.occurred_at.nanoseconds,
                    },
                    funnel_stage: match e.funnel_stage {
                        $crate::FunnelStage::Top => wit::FunnelStage::Top,
                        $crate::FunnelStage::Bottom => wit::FunnelStage::Bottom,
                    },
                    event_type: e.event_type,
                    user_id: e.user_id,
                    revenue: e.revenue,
                    campaign_id: e.campaign_id,
                    demographics: wit::Demographics {
                        age: e.demographics.age,
                        gender: e.demographics.gender,
                        country: e.demographics.country,
                        city: e.demographics.city,
                        followers: e.demographics.followers,
                        device: e.demographics.device,
                    },
                }),
                Err(issues) => wit::EventResult::Rejected(
                    issues
                        .into_iter()
                        .map(|i| wit::ValidationIssue {
                            field: i.field,
                            message: i.message,
                        })
                        .collect(),
                ),
            }
        }

        export!(Plugin);
    };
}
