//! `events-host`: the webhook gateway and the WASM collector runtime.
//!
//! Read in this order: `config` (what can be set), `startup` (how the parts
//! are wired), `gateway` (HTTP → JetStream), `collector` (JetStream → plugin →
//! PostgreSQL), `plugins` (the WebAssembly runtime), `nats` and `db`.
pub mod check;
pub mod collector;
pub mod config;
pub mod db;
pub mod gateway;
pub mod jetstream_admin;
pub mod nats;
pub mod plugin_test;
pub mod plugins;
pub mod startup;
pub mod wire;
