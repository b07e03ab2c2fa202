//! The host's integration tests: one binary (one link of wasmtime), one
//! module per area, and the shared `support` harness.
mod support;

mod pipeline_bad_input;
mod pipeline_budgets;
mod pipeline_compat;
mod pipeline_e2e;
mod pipeline_faults;
mod pipeline_partitions;
mod pipeline_refusals;
mod pipeline_slices;
mod plugin_conformance;
mod plugin_hot_swap;
mod plugin_sandbox;
