//! The sandbox: what a plugin instance may use, and the per-call store that
//! enforces it.
//!
//! Nothing is granted through WASI (no preopened directories, no sockets, no
//! environment, no arguments); memory is capped per instance by a
//! `ResourceLimiter`; time is capped per call by epoch interruption; and
//! nothing may block (see [`forbid_blocking`]).
use std::time::Duration;
use wasmtime::component::{Linker, ResourceTable};
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

/// The WASI interface whose functions wait (the version `wasmtime-wasi`
/// provides; a component importing an older 0.2 version links to it too).
const POLL: &str = "wasi:io/poll@0.2.12";

/// Replaces the two WASI functions that block — `poll` and
/// `pollable.block`, behind `sleep`, clock waits and blocking stream reads
/// — with traps. Epoch interruption only stops guest code, never a host call,
/// so a plugin that could wait inside one would outlive its call deadline;
/// a plugin has nothing to wait for anyway (no files, no network). A
/// non-blocking `pollable.ready` stays.
pub fn forbid_blocking(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    for name in ["poll", "[method]pollable.block"] {
        poll.func_new(name, move |_, _, _, _| {
            Err(wasmtime::format_err!(
                "plugins may not block ({POLL}#{name}): no sleeping or waiting inside a call"
            ))
        })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Per-call store data: an empty WASI context and the memory limiter.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    max_memory_bytes: usize,
    /// Linear memory of the instance, all memories together, in bytes.
    pub memory_bytes: usize,
    /// Table elements of the instance, all tables together.
    table_elements: usize,
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
            table_elements: 0,
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

/// Per instance of a plugin: the core instances, tables and memories its
/// component may create. A wasip2 component is a few core modules (its code,
/// the adapter, shims); these leave room for that and no more.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;
/// Table elements, summed over all tables.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for StoreState {
    /// The cap holds for the sum of all linear memories, so a component with
    /// many memories gets no more than one with a single memory.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_bytes + desired.saturating_sub(current);
        let ok = total <= self.max_memory_bytes;
        if ok {
            self.memory_bytes = total;
        } else {
            self.memory_denied = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements + desired.saturating_sub(current);
        let ok = total <= MAX_TABLE_ELEMENTS;
        if ok {
            self.table_elements = total;
        }
        Ok(ok)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_capped_over_all_memories_together() {
        let limits = Limits {
            max_memory_bytes: 10 << 20,
            ..Limits::default()
        };
        let mut s = StoreState::new(&limits);
        // Two memories of 4 MiB each: 8 MiB in all, allowed.
        assert!(s.memory_growing(0, 4 << 20, None).unwrap());
        assert!(s.memory_growing(0, 4 << 20, None).unwrap());
        // A third 4 MiB would make 12: refused, though each alone fits.
        assert!(!s.memory_growing(0, 4 << 20, None).unwrap());
        assert!(s.memory_denied);
        // Growing the first by 2 MiB (4 → 6) fits exactly.
        assert!(s.memory_growing(4 << 20, 6 << 20, None).unwrap());
        assert_eq!(s.memory_bytes, 10 << 20);
    }

    #[test]
    fn table_elements_are_capped_over_all_tables() {
        let mut s = StoreState::new(&Limits::default());
        assert!(s.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(s.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(!s.table_growing(0, 1, None).unwrap());
    }
}
