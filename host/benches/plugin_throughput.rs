//! Plugin throughput: 100,000 realistic events (the publisher's generator,
//! ~10 % of batches with one corrupted event) normalized
//!   (i)  through the WebAssembly plugins (`dist/plugins`), batches of 1,000 and 10,000;
//!   (ii) through the same Rust code natively (`facebook_plugin::normalize_batch`, tiktok);
//! plus the per-call overhead and the cold start (load + first call) with and
//! without the compiled-artifact cache. One thread: the numbers are per core
//! (measured in thread CPU time on Linux; cold starts in wall time).
//!
//! `cargo bench -p events-host --bench plugin_throughput` (build the plugins
//! first: `scripts/build-plugins.sh`; `EVENTS_PLUGINS_DIST` overrides `dist/`).
//! `BENCH_EVENTS=n` changes the event count, `BENCH_ROUNDS=n` the repetitions
//! (the best round is reported); `BENCH_ONLY=wasm|native` (with `BENCH_BATCH`)
//! only loops one path, for profilers.
use chrono::{TimeZone, Utc};
use events_host::plugins::{EventResult, Plugin, PluginMetrics, PluginRuntime, RuntimeConfig};
use events_publisher::{Generator, GeneratorConfig};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

const TARGET_EVENTS_PER_SEC: f64 = 300_000.0;
const TARGET_RATIO: f64 = 1.5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dist() -> PathBuf {
    match std::env::var_os("EVENTS_PLUGINS_DIST") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"),
    }
}

fn component(name: &str) -> PathBuf {
    let path = dist().join("plugins").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

/// `n` generated events split by source, as JSON texts.
fn events(n: usize) -> (Vec<String>, Vec<String>) {
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(42),
        start_time: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
        ..Default::default()
    });
    let (mut fb, mut tt) = (Vec::new(), Vec::new());
    while fb.len() + tt.len() < n {
        let take = (n - fb.len() - tt.len()).min(1000);
        for ev in g.next_batch(take).events {
            let text = ev.to_string();
            match ev.get("source").and_then(|s| s.as_str()) {
                Some("tiktok") => tt.push(text),
                _ => fb.push(text),
            }
        }
    }
    (fb, tt)
}

fn runtime(cache_dir: Option<PathBuf>) -> PluginRuntime {
    let config = RuntimeConfig {
        cache_dir,
        ..RuntimeConfig::for_dir(dist().join("plugins"))
    };
    PluginRuntime::new(config, PluginMetrics::unregistered()).expect("runtime")
}

/// CPU time of the calling thread (Linux), so that the per-core numbers do
/// not depend on what else the machine runs; wall time elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Best-of-`rounds` time of `f`: thread CPU time where available, else wall.
fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds.max(1))
        .map(|_| {
            let (start, cpu) = (Instant::now(), thread_cpu());
            f();
            match (cpu, thread_cpu()) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => start.elapsed(),
            }
        })
        .min()
        .unwrap_or_default()
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn wasm_pass(plugins: &[(Arc<Plugin>, &Vec<String>)], batch: usize) -> usize {
    let mut ok = 0;
    for (plugin, events) in plugins {
        for chunk in events.chunks(batch) {
            let out = plugin.normalize_batch_blocking(chunk).expect("plugin call");
            ok += out
                .iter()
                .filter(|r| matches!(r, EventResult::Ok(_)))
                .count();
        }
    }
    ok
}

fn native_pass(fb: &[String], tt: &[String], batch: usize) -> usize {
    let mut ok = 0;
    // Borrowed slices, as the host passes them to a component.
    fn texts(chunk: &[String]) -> Vec<&str> {
        chunk.iter().map(String::as_str).collect()
    }
    for chunk in fb.chunks(batch) {
        ok += facebook_plugin::normalize_batch(&texts(chunk))
            .iter()
            .filter(|r| r.is_ok())
            .count();
    }
    for chunk in tt.chunks(batch) {
        ok += tiktok_plugin::normalize_batch(&texts(chunk))
            .iter()
            .filter(|r| r.is_ok())
            .count();
    }
    ok
}

/// Time of `load_file` + the first call of one batch, on a fresh runtime.
fn cold_start(
    cache_dir: Option<PathBuf>,
    path: &Path,
    batch: &[String],
) -> (Duration, Duration, bool) {
    let start = Instant::now();
    let runtime = runtime(cache_dir);
    let plugin = runtime.load_file(path).expect("load");
    let loaded = start.elapsed();
    plugin.normalize_batch_blocking(batch).expect("first call");
    (loaded, start.elapsed(), plugin.from_cache)
}

/// The generated events and how often each measurement is repeated.
struct Workload {
    n: usize,
    rounds: usize,
    fb_events: Vec<String>,
    tt_events: Vec<String>,
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments (no filters here).
    let n = env_usize("BENCH_EVENTS", 100_000);
    let rounds = env_usize("BENCH_ROUNDS", 5);
    let (fb_events, tt_events) = events(n);
    let w = Workload {
        n,
        rounds,
        fb_events,
        tt_events,
    };
    let bytes: usize = w
        .fb_events
        .iter()
        .chain(&w.tt_events)
        .map(String::len)
        .sum();
    println!(
        "plugin_throughput: {n} events ({} facebook, {} tiktok, avg {} bytes), best of {rounds}, one thread",
        w.fb_events.len(),
        w.tt_events.len(),
        bytes / n.max(1)
    );

    let rt = runtime(None);
    let fb = rt.load_file(&component("facebook")).expect("facebook");
    let tt = rt.load_file(&component("tiktok")).expect("tiktok");
    let plugins = [(fb.clone(), &w.fb_events), (tt, &w.tt_events)];

    // Profiling aid: `BENCH_ONLY=wasm|native` just loops that path.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        profile_only(&w, &plugins, &only);
        return;
    }

    let native_ok = native_pass(&w.fb_events, &w.tt_events, 1000);
    let wasm_ok = wasm_pass(&plugins, 1000);
    assert_eq!(
        wasm_ok, native_ok,
        "WASM and native disagree on valid events"
    );
    println!("  valid events: {wasm_ok} (WASM and native agree)");

    let (worst_ratio, worst_rate) = throughput(&w, &plugins);
    per_call_overhead(&w, &fb);
    cold_starts(&w.fb_events);

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "  targets: WASM <= {TARGET_RATIO}x native: {} (worst {worst_ratio:.2}x); >= {TARGET_EVENTS_PER_SEC:.0} events/s per core: {} (worst {worst_rate:.0})",
        verdict(worst_ratio <= TARGET_RATIO),
        verdict(worst_rate >= TARGET_EVENTS_PER_SEC),
    );
}

/// Loops one path (`native`, else WASM) and prints only its rate.
fn profile_only(w: &Workload, plugins: &[(Arc<Plugin>, &Vec<String>)], only: &str) {
    let batch = env_usize("BENCH_BATCH", 1000);
    let start = Instant::now();
    for _ in 0..w.rounds {
        match only {
            "native" => native_pass(&w.fb_events, &w.tt_events, batch),
            _ => wasm_pass(plugins, batch),
        };
    }
    println!(
        "  {only}: {:.0} events/s",
        per_sec(w.n * w.rounds, start.elapsed())
    );
}

/// WASM against native for batches of 1,000 and 10,000: the worst
/// WASM/native ratio and the worst WASM rate.
fn throughput(w: &Workload, plugins: &[(Arc<Plugin>, &Vec<String>)]) -> (f64, f64) {
    let mut worst_ratio: f64 = 0.0;
    let mut worst_rate = f64::INFINITY;
    for batch in [1_000, 10_000] {
        let native = best(w.rounds, || {
            native_pass(&w.fb_events, &w.tt_events, batch);
        });
        let wasm = best(w.rounds, || {
            wasm_pass(plugins, batch);
        });
        let (rate, nat) = (per_sec(w.n, wasm), per_sec(w.n, native));
        let ratio = wasm.as_secs_f64() / native.as_secs_f64();
        worst_ratio = worst_ratio.max(ratio);
        worst_rate = worst_rate.min(rate);
        println!(
            "  batch {batch:>6}: WASM {rate:>10.0} events/s ({:>6.1} ms)   native {nat:>10.0} events/s ({:>6.1} ms)   WASM/native {ratio:.2}x",
            wasm.as_secs_f64() * 1e3,
            native.as_secs_f64() * 1e3,
        );
    }
    (worst_ratio, worst_rate)
}

/// Fixed cost of a call: a 1-event batch, many times.
fn per_call_overhead(w: &Workload, fb: &Plugin) {
    let one = vec![w.fb_events[0].clone()];
    let calls = 2_000;
    let t = best(w.rounds, || {
        for _ in 0..calls {
            fb.normalize_batch_blocking(&one).expect("call");
        }
    });
    println!(
        "  per-call overhead (1-event batch): {:.1} µs",
        t.as_secs_f64() * 1e6 / calls as f64
    );
}

/// Load + first call on a fresh runtime, without and then with the
/// compiled-artifact cache.
fn cold_starts(fb_events: &[String]) {
    let path = component("facebook");
    let first: Vec<String> = fb_events.iter().take(1000).cloned().collect();
    let (load, total, _) = cold_start(None, &path, &first);
    println!(
        "  cold start, no cache:   load {:>7.1} ms, load + first call (1,000 events) {:>7.1} ms",
        load.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
    let cache = tempfile::tempdir().expect("temp dir");
    let cache_dir = Some(cache.path().to_path_buf());
    let _ = cold_start(cache_dir.clone(), &path, &first); // fills the cache
    let (load, total, hit) = cold_start(cache_dir, &path, &first);
    assert!(hit, "the second runtime should load from the cache");
    println!(
        "  cold start, with cache: load {:>7.1} ms, load + first call (1,000 events) {:>7.1} ms",
        load.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
}
