//! `marketing:events@0.2.0` (wit/source-plugin.wit): the current contract.
//! A normalized event carries no raw JSON; the host pairs results with the
//! bytes it sent, by index.
wasmtime::component::bindgen!({
    path: "../wit",
    world: "source-plugin",
});

pub use marketing::events::types as wit;
