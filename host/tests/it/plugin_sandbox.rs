//! The sandbox against a hostile plugin (`dist/test-plugins/chaos-v1.wasm`):
//! every misbehaviour becomes a classified `CallError` within the limits, is
//! counted in the metrics, and the same runtime keeps serving the good
//! plugins (and the hostile one's well-behaved calls) afterwards.

use crate::support::plugins::{
    chaos, chaos_ok_batch, counter, facebook_wasm, fb_bottom, fb_top, runtime_in, test_limits,
    test_wasm, tight_limits, PluginDir,
};
use events_host::plugins::{CallError, EventResult, Limits, PluginError, PluginRuntime};
use prometheus::Registry;
use std::time::{Duration, Instant};

/// facebook + chaos-v1 loaded in a fresh runtime with the short test limits.
struct Setup {
    _dir: PluginDir,
    runtime: PluginRuntime,
    registry: Registry,
}

fn setup() -> Setup {
    setup_with(test_limits())
}

fn setup_with(limits: Limits) -> Setup {
    let dir = PluginDir::new();
    dir.install(&facebook_wasm(), "facebook.wasm");
    dir.install(&test_wasm("chaos-v1"), "chaos.wasm");
    let (runtime, registry) = runtime_in(dir.path(), limits);
    let ids = runtime.load_dir().expect("load facebook + chaos");
    assert_eq!(ids.len(), 2);
    Setup {
        _dir: dir,
        runtime,
        registry,
    }
}

/// The good plugins still work: facebook normalizes, chaos answers ok calls.
fn still_serving(runtime: &PluginRuntime) {
    let fb = runtime.get("facebook").expect("facebook still active");
    let docs = [
        fb_top("ad.view").to_string(),
        fb_bottom("checkout.complete").to_string(),
    ];
    let out = fb.normalize_batch_blocking(&docs).expect("facebook call");
    assert!(matches!(&out[..], [EventResult::Ok(a), EventResult::Ok(b)]
        if a.event_type == "ad.view" && b.revenue.as_deref() == Some("123.45")));
    let ok = runtime
        .get("chaos")
        .expect("chaos still active")
        .normalize_batch_blocking(&chaos_ok_batch(3))
        .expect("a well-behaved chaos call after a hostile one");
    assert!(ok.iter().all(|r| matches!(r, EventResult::Ok(_))));
}

/// Runs one hostile call (`mode` in the middle of ok events) and checks its
/// classification, the failure metric and that the host keeps serving.
fn hostile(mode: &str, kind: &str) -> (CallError, Duration) {
    // Only the timeout test races the clock: the others keep a time limit no
    // busy machine reaches, so they fail for their own reason.
    let s = match kind {
        "timeout" => setup_with(tight_limits()),
        _ => setup(),
    };
    let plugin = s.runtime.get("chaos").unwrap();
    let batch = vec![chaos("ok", 0), chaos(mode, 1), chaos("ok", 2)];
    let start = Instant::now();
    let err = plugin
        .normalize_batch_blocking(&batch)
        .expect_err("a hostile call must fail");
    let took = start.elapsed();
    assert_eq!(err.kind(), kind, "{mode}: {err}");
    still_serving(&s.runtime);

    let failures = |k: &str| {
        let labels = [("plugin", "chaos"), ("source", "chaos"), ("kind", k)];
        counter(&s.registry, "plugin_failures_total", &labels)
    };
    assert_eq!(failures(kind), 1.0, "{mode} counted as {kind}");
    let others = ["timeout", "memory", "panic", "trap", "bad_output"];
    let total: f64 = others.iter().map(|k| failures(k)).sum();
    assert_eq!(total, 1.0, "exactly one failure recorded");
    let events_in = [("plugin", "chaos"), ("outcome", "in")];
    assert_eq!(counter(&s.registry, "plugin_events_total", &events_in), 6.0);
    let calls = [("plugin", "chaos")];
    assert_eq!(counter(&s.registry, "plugin_calls_total", &calls), 2.0);
    (err, took)
}

#[test]
fn spin_times_out_at_the_deadline() {
    let limit = tight_limits().call_timeout;
    let (err, took) = hostile("spin", "timeout");
    assert!(matches!(err, CallError::Timeout), "{err:?}");
    // interrupted at the deadline (epoch ticks never come early), not much later
    assert!(took >= limit.mul_f32(0.9), "stopped after {took:?}");
    assert!(
        took < limit + Duration::from_secs(2),
        "stopped after {took:?}"
    );
}

#[test]
fn alloc_hits_the_memory_limit() {
    let (err, _) = hostile("alloc", "memory");
    assert!(matches!(err, CallError::MemoryLimit(_)), "{err:?}");
}

#[test]
fn panic_is_a_panic() {
    let (err, _) = hostile("panic", "panic");
    assert!(matches!(err, CallError::Panic(_)), "{err:?}");
}

#[test]
fn wrong_count_is_bad_output() {
    let (err, _) = hostile("wrong-count", "bad_output");
    assert!(
        matches!(&err, CallError::BadOutput(m) if m.contains("2 results for 3")),
        "{err:?}"
    );
}

#[test]
fn lying_output_is_bad_output() {
    // every result claims source "not-chaos" with 2e9 nanoseconds
    let (err, _) = hostile("bad-output", "bad_output");
    assert!(
        matches!(&err, CallError::BadOutput(m) if m.contains("not-chaos")),
        "{err:?}"
    );
}

#[test]
fn rejections_are_not_failures() {
    let s = setup();
    let chaos_plugin = s.runtime.get("chaos").unwrap();
    let out = chaos_plugin
        .normalize_batch_blocking(&[chaos("ok", 0), chaos("reject", 1), "[]".to_owned()])
        .expect("rejections are results, not failures");
    assert!(matches!(out[0], EventResult::Ok(_)));
    assert!(matches!(&out[1], EventResult::Rejected(i) if i[0].field == "mode"));
    assert!(matches!(&out[2], EventResult::Rejected(i) if i[0].field == "$"));
    let failures = counter(&s.registry, "plugin_failures_total", &[]);
    assert_eq!(failures, 0.0);
    for (outcome, n) in [("in", 3.0), ("ok", 1.0), ("rejected", 2.0)] {
        let labels = [("plugin", "chaos"), ("outcome", outcome)];
        assert_eq!(counter(&s.registry, "plugin_events_total", &labels), n);
    }
}

#[test]
fn host_serves_good_plugins_while_one_spins() {
    // The spin ends at a 5 s deadline; the good calls beside it take far less.
    let s = setup_with(Limits {
        call_timeout: Duration::from_secs(5),
        ..test_limits()
    });
    let chaos_plugin = s.runtime.get("chaos").unwrap();
    let spinner =
        std::thread::spawn(move || chaos_plugin.normalize_batch_blocking(&[chaos("spin", 0)]));
    // While the hostile call burns its budget, other calls are unaffected.
    let fb = s.runtime.get("facebook").unwrap();
    let docs = vec![fb_top("comment").to_string(); 50];
    for _ in 0..5 {
        let out = fb.normalize_batch_blocking(&docs).expect("facebook call");
        assert!(out.iter().all(|r| matches!(r, EventResult::Ok(_))));
    }
    let spun = spinner.join().expect("spinner thread");
    assert!(matches!(spun, Err(CallError::Timeout)), "{spun:?}");
    still_serving(&s.runtime);
}

#[test]
fn reused_instances_keep_calls_apart() {
    // Instances are reused across calls: concurrent and successive calls on
    // one plugin must each get exactly their own results, and a failed call
    // must not poison the instances the others use.
    let s = setup();
    let plugin = s.runtime.get("chaos").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for call in 0..40 {
                    let ids: Vec<usize> = (0..1 + (t + call) % 7)
                        .map(|i| t * 10_000 + call * 10 + i)
                        .collect();
                    let batch: Vec<String> = ids.iter().map(|i| chaos("ok", *i)).collect();
                    if call % 13 == 5 {
                        let err = plugin.normalize_batch_blocking(&[chaos("panic", 0)]);
                        assert!(matches!(err, Err(CallError::Panic(_))), "{err:?}");
                    }
                    let out = plugin.normalize_batch_blocking(&batch).expect("call");
                    let got: Vec<String> = out
                        .into_iter()
                        .map(|r| match r {
                            EventResult::Ok(e) => e.event_id,
                            EventResult::Rejected(i) => panic!("rejected: {i:?}"),
                        })
                        .collect();
                    let want: Vec<String> = ids.iter().map(|i| format!("c-{i}")).collect();
                    assert_eq!(got, want);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("caller thread");
    }
    still_serving(&s.runtime);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_fail_the_same_way() {
    let s = setup();
    let chaos_plugin = s.runtime.get("chaos").unwrap();
    let err = chaos_plugin
        .normalize_batch(vec![chaos("panic", 0).into()])
        .await
        .expect_err("panic");
    assert_eq!(err.kind(), "panic");
    let batch = chaos_ok_batch(10).into_iter().map(Into::into).collect();
    let out = chaos_plugin.normalize_batch(batch).await;
    assert_eq!(out.expect("ok call").len(), 10);
    // Bytes that are not UTF-8 never reach the guest.
    let err = chaos_plugin
        .normalize_batch(vec![bytes::Bytes::from_static(b"{\"a\":\"\xff\"}")])
        .await
        .expect_err("not UTF-8");
    assert_eq!(err.kind(), "input");
}

#[test]
fn a_plugin_claiming_another_source_is_a_conflict() {
    let dir = PluginDir::new();
    let fb = dir.install(&facebook_wasm(), "facebook.wasm");
    let impostor = dir.install(
        &test_wasm("chaos-claims-facebook"),
        "chaos-claims-facebook.wasm",
    );
    let (runtime, _) = runtime_in(dir.path(), test_limits());
    let err = runtime.load_dir().expect_err("two plugins for facebook");
    let PluginError::Conflict {
        claimed,
        first,
        second,
    } = &err
    else {
        panic!("expected a conflict, got {err}");
    };
    assert_eq!(claimed, "facebook");
    let mut named = [first.clone(), second.clone()];
    named.sort();
    let mut both = [fb, impostor];
    both.sort();
    assert_eq!(named, both);
    let msg = err.to_string();
    assert!(
        msg.contains("facebook.wasm") && msg.contains("chaos-claims-facebook.wasm"),
        "{msg}"
    );
    assert!(
        runtime.sources().is_empty(),
        "nothing activated on a failed load_dir"
    );
}

#[test]
fn broken_files_do_not_load() {
    let dir = PluginDir::new();
    let junk = dir.file("junk.wasm");
    std::fs::write(&junk, b"\0asm\x0d\0\x01\0 definitely not a component").unwrap();
    let (runtime, _) = runtime_in(dir.path(), test_limits());
    assert!(matches!(
        runtime.load_file(&junk),
        Err(PluginError::Compile { .. })
    ));
    assert!(matches!(
        runtime.load_dir(),
        Err(PluginError::Compile { .. })
    ));
    let missing = dir.file("missing.wasm");
    assert!(matches!(
        runtime.load_file(&missing),
        Err(PluginError::Read { .. })
    ));
}

#[test]
fn template_runs_with_no_capabilities() {
    // No plugin here tries to reach WASI capabilities (files, env, clock,
    // network): the check is that a component linked against WASI loads and
    // runs in the empty context the host gives it. The template is the plugin
    // a new source starts from.
    let dir = PluginDir::new();
    let path = dir.install(&test_wasm("template"), "template.wasm");
    let (runtime, _) = runtime_in(dir.path(), test_limits());
    let plugin = runtime.load_file(&path).expect("template loads");
    assert_eq!(plugin.identity().source, "example");
    let out = plugin
        .normalize_batch_blocking(&["{}".to_owned()])
        .expect("call");
    assert!(matches!(&out[0], EventResult::Rejected(_)));
}

#[test]
fn sleeping_in_a_call_fails_at_once_instead_of_outliving_the_deadline() {
    // The plugin sleeps for an hour; the call has a 60 s limit (see
    // `hostile`). A trap, not a timeout, proves the host did not wait.
    let (err, took) = hostile("sleep", "trap");
    assert!(err.to_string().contains("may not block"), "{err}");
    assert!(took < Duration::from_secs(30), "waited {took:?}");
}

#[test]
fn a_plugin_sleeping_in_identity_is_refused_at_load() {
    let dir = PluginDir::new();
    let path = dir.install(&test_wasm("chaos-sleepy"), "sleepy.wasm");
    let (runtime, _) = runtime_in(dir.path(), test_limits());
    let start = Instant::now();
    let err = runtime
        .load_file(&path)
        .expect_err("a plugin that sleeps in identity must be refused");
    assert!(err.to_string().contains("may not block"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(runtime.get("sleepy").is_none());
}

#[test]
fn inflated_output_is_bad_output() {
    // Three small events answered with 1 MiB each: far past 4 bytes out per
    // byte in (plus 16 KiB per event).
    let (err, _) = hostile("inflate", "bad_output");
    assert!(err.to_string().contains("bytes of input"), "{err}");
}
