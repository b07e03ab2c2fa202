//! The in-flight budget (`GATEWAY_MAX_INFLIGHT_BYTES`), counted in MiB
//! permits: what a request holds while it is read, checked and published.
use super::error::WebhookError;
use crate::config::GatewayConfig;
use std::sync::Arc;
use tokio::sync::{Semaphore, SemaphorePermit};

pub const MIB: usize = 1 << 20;

/// Gateway memory per accepted element beyond its bytes (its range, its
/// envelope's strings), as counted against the in-flight budget.
const ELEMENT_STATE_BYTES: usize = 320;

/// The whole budget for `cfg`, in MiB permits.
pub fn semaphore(cfg: &GatewayConfig) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(cfg.max_inflight_bytes.div_ceil(MIB)))
}

/// Permits a body reserves before it is read: its declared length, or the
/// body limit when it declares none; never more than the whole budget.
pub fn body_units(cfg: &GatewayConfig, declared: Option<usize>) -> usize {
    declared
        .unwrap_or(cfg.body_limit_bytes)
        .div_ceil(MIB)
        .clamp(1, cfg.max_inflight_bytes.div_ceil(MIB))
}

/// Shows a reservation of the in-flight budget in the gauge while it lives.
pub struct Reserved<'a>(&'a prometheus::IntGauge, i64);

impl<'a> Reserved<'a> {
    pub fn new(gauge: &'a prometheus::IntGauge, units: usize) -> Self {
        let bytes = (units * MIB) as i64;
        gauge.add(bytes);
        Self(gauge, bytes)
    }

    fn add(&mut self, units: usize) {
        let bytes = (units * MIB) as i64;
        self.0.add(bytes);
        self.1 += bytes;
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.sub(self.1);
    }
}

/// Adds the elements' own state (ranges, envelopes) to what the request
/// holds: a body of many tiny elements costs far more than its bytes.
pub async fn add_elements<'a>(
    cfg: &GatewayConfig,
    inflight: &'a Semaphore,
    mut permit: SemaphorePermit<'a>,
    reserved: &mut Reserved<'_>,
    elements: usize,
) -> Result<SemaphorePermit<'a>, WebhookError> {
    let units = permit.num_permits();
    let all = cfg.max_inflight_bytes.div_ceil(MIB);
    let extra = (elements * ELEMENT_STATE_BYTES)
        .div_ceil(MIB)
        .min(all.saturating_sub(units));
    if extra == 0 {
        return Ok(permit);
    }
    reserved.add(extra);
    match inflight.try_acquire_many(extra as u32) {
        Ok(more) => {
            permit.merge(more);
            Ok(permit)
        }
        // Not there now: give back what is held and wait for all of it at
        // once, so requests holding part of the budget never wait on each
        // other.
        Err(_) => {
            drop(permit);
            inflight
                .acquire_many((units + extra) as u32)
                .await
                .map_err(|_| WebhookError::ShuttingDown)
        }
    }
}
