//! The WebAssembly component glue (wasm32 only), with batch-level control.
events_plugin_kit::export_source_plugin! {
    wit_path: "../../../wit",
    identity: crate::identity,
    normalize_batch: crate::run,
}
