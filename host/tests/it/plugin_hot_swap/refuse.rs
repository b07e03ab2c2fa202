//! Refusals: a broken replacement or a second file for a served source is
//! refused (once) while the old version keeps serving.

use super::{chaos_dir, let_it_run, version, Load};
use crate::support::plugins::test_wasm;

#[test]
fn a_broken_replacement_is_refused_and_the_old_version_stays() {
    let (dir, runtime) = chaos_dir();
    let mut watcher = runtime.watcher();
    let load = Load::start(&runtime);
    let garbage = dir.file("garbage");
    std::fs::write(&garbage, b"this is not a webassembly component").unwrap();
    dir.replace_atomically(&garbage, "chaos.wasm");

    let report = watcher.scan();
    assert!(report.activated.is_empty(), "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].0, dir.file("chaos.wasm"));
    assert_eq!(version(&runtime, "chaos"), "1.0.0");
    let_it_run(&runtime, 5);
    assert_eq!(
        watcher.scan(),
        Default::default(),
        "refused once, not on every scan"
    );

    // fixing the file activates it
    dir.replace_atomically(&test_wasm("chaos-v2"), "chaos.wasm");
    assert_eq!(watcher.scan().activated.len(), 1);
    assert_eq!(version(&runtime, "chaos"), "2.0.0");
    let r = load.finish();
    assert_eq!(r.failures, Vec::<String>::new(), "{} calls", r.calls);
}

#[test]
fn a_second_file_for_a_served_source_is_refused() {
    let (dir, runtime) = chaos_dir();
    let mut watcher = runtime.watcher();
    let mut rx = runtime.subscribe();
    rx.borrow_and_update();
    let impostor = dir.install(&test_wasm("chaos-v2"), "another-chaos.wasm");

    let report = watcher.scan();
    assert!(report.activated.is_empty(), "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let (path, why) = &report.refused[0];
    assert_eq!(path, &impostor);
    assert!(
        why.contains("already served") && why.contains("chaos.wasm"),
        "{why}"
    );
    let active = runtime.get("chaos").unwrap();
    assert_eq!(active.path(), dir.file("chaos.wasm"));
    assert_eq!(active.identity().version, "1.0.0");
    assert!(!rx.has_changed().unwrap());
}
