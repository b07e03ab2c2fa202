//! The sandbox: what a plugin instance may use, and the per-call store that
//! enforces it.
//!
//! Nothing is granted through WASI (no preopened directories, no sockets, no
//! environment, no arguments); memory is capped per instance by a
//! `ResourceLimiter`; time is capped per call by epoch interruption.
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Limits applied to every plugin call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory an instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Wall-clock budget of one `normalize-batch` call.
    pub call_timeout: Duration,
    /// Epoch tick: the granularity of `call_timeout`.
    pub epoch_tick: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 * 1024 * 1024,
            call_timeout: Duration::from_secs(5),
            epoch_tick: Duration::from_millis(10),
        }
    }
}

impl Limits {
    /// Epoch ticks a call may run before it is interrupted (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_micros().max(1);
        (self.call_timeout.as_micros() / tick).max(1) as u64
    }
}

/// Per-call store data: an empty WASI context and the memory limiter.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    max_memory_bytes: usize,
    /// Linear memory the instance has grown to, in bytes.
    pub memory_bytes: usize,
    /// Set when the guest asked for more memory than allowed, so that the
    /// trap that follows is reported as a memory blow-up, not a panic.
    pub memory_denied: bool,
}

impl StoreState {
    pub fn new(limits: &Limits) -> Self {
        Self {
            // Nothing inherited, nothing preopened: the guest sees an empty
            // environment, no arguments, no files and no network.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            max_memory_bytes: limits.max_memory_bytes,
            memory_bytes: 0,
            memory_denied: false,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory_bytes;
        if ok {
            self.memory_bytes = self.memory_bytes.max(desired);
        } else {
            self.memory_denied = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
