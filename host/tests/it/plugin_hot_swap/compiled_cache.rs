//! The compiled-artifact cache: it serves a second runtime, a damaged
//! artifact is recompiled, and it cannot be used to plant code.

use crate::support::plugins::{
    chaos_ok_batch, runtime_with, test_limits, test_wasm, tiktok_wasm, PluginDir,
};
use events_host::plugins::{EventResult, RuntimeConfig};

#[test]
fn the_compiled_cache_serves_a_second_runtime() {
    let dir = PluginDir::new();
    let path = dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().join("compiled")),
        limits: test_limits(),
        ..RuntimeConfig::for_dir(dir.path())
    };
    let (first, _) = runtime_with(config.clone());
    assert!(
        !first.load_file(&path).unwrap().from_cache,
        "compiled the first time"
    );
    let artifacts: Vec<_> = std::fs::read_dir(cache.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1, "one artifact: {artifacts:?}");

    let (second, _) = runtime_with(config.clone());
    second.load_dir().unwrap();
    let plugin = second.get("chaos").unwrap();
    assert!(plugin.from_cache, "the second runtime uses the artifact");
    let out = plugin.normalize_batch_blocking(&chaos_ok_batch(4)).unwrap();
    assert!(out.iter().all(|r| matches!(r, EventResult::Ok(_))));

    // a damaged artifact is recompiled, not trusted
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let (third, _) = runtime_with(config);
    let plugin = third.load_file(&path).unwrap();
    assert!(!plugin.from_cache);
    let out = plugin.normalize_batch_blocking(&chaos_ok_batch(2));
    assert_eq!(out.unwrap().len(), 2);
    let still = second.get("chaos").unwrap();
    assert_eq!(
        still
            .normalize_batch_blocking(&chaos_ok_batch(2))
            .unwrap()
            .len(),
        2
    );
}

/// The cache file of `component` in `dir` (named by its SHA-256).
fn cached_file(dir: &std::path::Path, component: &[u8]) -> std::path::PathBuf {
    use sha2::Digest;
    let prefix = hex::encode(sha2::Sha256::digest(component));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .unwrap_or_else(|| panic!("no cache entry for {prefix}"))
}

#[test]
fn the_compiled_cache_cannot_be_used_to_plant_code() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = PluginDir::new();
    let chaos = dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let tiktok = dir.install(&tiktok_wasm(), "tiktok.wasm");
    let cache = tempfile::tempdir().unwrap();
    let compiled = cache.path().join("compiled");
    let config = RuntimeConfig {
        cache_dir: Some(compiled.clone()),
        limits: test_limits(),
        ..RuntimeConfig::for_dir(dir.path())
    };
    let (first, _) = runtime_with(config.clone());
    first.load_file(&chaos).unwrap();
    first.load_file(&tiktok).unwrap();
    assert_eq!(mode(&compiled), 0o700, "created private");
    let chaos_entry = cached_file(&compiled, &std::fs::read(&chaos).unwrap());
    let tiktok_entry = cached_file(&compiled, &std::fs::read(&tiktok).unwrap());
    assert_eq!(mode(&chaos_entry), 0o600);

    // A well-formed artifact of another component under chaos's name.
    std::fs::copy(&tiktok_entry, &chaos_entry).unwrap();
    let (second, _) = runtime_with(config.clone());
    let plugin = second.load_file(&chaos).unwrap();
    assert!(!plugin.from_cache, "the planted artifact was used");
    assert_eq!(plugin.identity().source, "chaos");
    let (third, _) = runtime_with(config.clone());
    assert!(
        third.load_file(&chaos).unwrap().from_cache,
        "rewritten properly"
    );

    // An entry others may write to is refused; a directory others may
    // write to is made private again.
    std::fs::set_permissions(&chaos_entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (fourth, _) = runtime_with(config);
    assert_eq!(mode(&compiled), 0o700);
    let plugin = fourth.load_file(&chaos).unwrap();
    assert!(!plugin.from_cache, "a writable-by-others artifact was used");
    assert_eq!(plugin.identity().source, "chaos");
}
