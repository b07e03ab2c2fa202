//! The WebAssembly component glue (wasm32 only): WIT world `marketing:events/source-plugin`.
events_plugin_kit::export_source_plugin! {
    wit_path: "../../wit",
    identity: crate::identity,
    normalize: crate::normalize,
}
