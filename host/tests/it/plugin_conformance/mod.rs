//! Conformance of the production plugins (`dist/plugins/*.wasm`), through the
//! host's real runtime: every valid shape of shared/spec/events.md and its
//! canonical fields, every rejection rule naming its field, batches keeping
//! order and count, and the fixture sets shipped with the plugins.
mod batches;
mod fixtures;
mod rejections;
mod shapes;
