//! The WebAssembly component glue (wasm32 only). Nothing to edit here: the macro generates the
//! WIT bindings (world `source-plugin`, from `wit_path` relative to Cargo.toml) and exports
//! `identity` and `normalize-batch` by calling the two functions named below.
events_plugin_kit::export_source_plugin! {
    wit_path: "../../wit",
    identity: crate::identity,
    normalize: crate::normalize,
}
