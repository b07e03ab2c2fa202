//! What the plugins directory holds: its `*.wasm` files, and a stamp of each
//! (size and mtime) that tells a changed file from one already loaded.
use super::error::PluginError;
use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

/// What a file looked like: size and modification time.
pub type Stamp = (u64, Option<SystemTime>);

/// The file's stamp now; `None` when it cannot be read.
pub fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

/// The `*.wasm` files of `dir`, sorted for deterministic conflict reports.
pub fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    let read_err = |source: std::io::Error| PluginError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
