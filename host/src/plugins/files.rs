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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasm_files_sorted_and_a_rewrite_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.wasm", "a.wasm", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("dir.wasm")).unwrap();
        let files = wasm_files(dir.path()).unwrap();
        assert_eq!(
            files,
            [dir.path().join("a.wasm"), dir.path().join("b.wasm")]
        );
        let before = stamp(&files[0]).unwrap();
        std::fs::write(&files[0], b"longer").unwrap();
        assert_ne!(stamp(&files[0]), Some(before));
        assert_eq!(stamp(&dir.path().join("missing.wasm")), None);
        assert!(matches!(
            wasm_files(&dir.path().join("missing")),
            Err(PluginError::Read { .. })
        ));
    }
}
