//! The `events-publisher` binary against a tiny in-test gateway.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use events_publisher::Summary;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_events-publisher");

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("events-publisher-{}-{name}", std::process::id()))
}

async fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("EVENT_ENDPOINT")
        .env_remove("WEBHOOK_SECRET")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("publisher finished in time")
        .expect("publisher ran")
}

fn summary(out: &Output) -> Summary {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ledger_ids(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_summary_matches_what_the_gateway_saw() {
    let gw = common::server::start(None, Some("s3cret")).await;
    let ledger = temp_path("load.ledger");
    let out = run(&[
        "--endpoint",
        &gw.url(),
        "--count",
        "2000",
        "--batch-size",
        "300",
        "--concurrency",
        "3",
        "--corrupt-rate",
        "0.5",
        "--duplicate-rate",
        "0.05",
        "--shuffle",
        "--seed",
        "11",
        "--webhook-secret",
        "s3cret",
        "--correlation-id-prefix",
        "run1",
        "--ledger",
        ledger.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let s = summary(&out);
    let seen = gw.seen.lock().unwrap();

    assert_eq!(s.mode, "load");
    assert_eq!(s.seed, 11);
    assert_eq!(s.sent, 2000);
    assert_eq!(s.posts, 7); // ceil(2000 / 300)
    assert_eq!(s.posts_ok, 7);
    assert_eq!(seen.posts, 7);
    assert_eq!(seen.events, 2000);
    assert_eq!(seen.bad_signatures, 0);
    let corr: HashSet<_> = seen.correlation_ids.iter().cloned().collect();
    let want: HashSet<_> = (1..=7).map(|i| format!("run1-{i}")).collect();
    assert_eq!(corr, want);

    // The summary repeats the gateway's counts...
    assert_eq!(s.rejected, seen.rejected);
    assert_eq!(s.duplicates, seen.duplicates);
    assert_eq!(s.accepted + s.rejected + s.duplicates, 2000);
    // ...which match the generator's own ledger exactly: no body is sent
    // twice, so re-sent events are accepted (the database drops them).
    assert_eq!(seen.accepted_ids.len() as u64, s.sent_valid_unique);
    assert_eq!(s.accepted, s.sent_valid_unique + s.sent_duplicates);
    assert_eq!(s.rejected, s.sent_corrupted);
    assert_eq!(s.duplicates, 0);
    assert!(s.sent_corrupted > 0 && s.sent_duplicates > 0);
    assert!(s.http_errors.is_empty());
    assert_eq!(s.transport_errors, 0);
    assert!(s.latency.max_ms >= s.latency.p50_ms && s.latency.p50_ms > 0.0);
    assert!(s.events_per_sec > 0.0);

    // The ledger file holds exactly the ids the gateway accepted.
    let ids = ledger_ids(&ledger);
    assert_eq!(ids.len() as u64, s.sent_valid_unique);
    assert_eq!(
        ids.iter().cloned().collect::<HashSet<_>>(),
        seen.accepted_set
    );
    let totals = s.ledger.as_ref().unwrap();
    assert_eq!(totals.ids_written, s.sent_valid_unique);
    assert_eq!(totals.ids_not_delivered, 0);
    let file_summary: Summary = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.summary.json", ledger.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(file_summary.accepted, s.accepted);
    // Human text goes to stderr with --json.
    assert!(String::from_utf8_lossy(&out.stderr).contains("load run: 2000 events in 7 POSTs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_counted_and_failed_posts_stay_out_of_the_ledger() {
    let gw = common::server::start(Some(2), None).await;
    let ledger = temp_path("errors.ledger");
    let out = run(&[
        "--endpoint",
        &gw.url(),
        "--count",
        "1000",
        "--batch-size",
        "100",
        "--concurrency",
        "1",
        "--corrupt-rate",
        "0",
        "--ledger",
        ledger.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert!(
        out.status.success(),
        "failures are reported, not fatal: {out:?}"
    );
    let s = summary(&out);
    let seen = gw.seen.lock().unwrap();
    assert_eq!(s.posts, 10);
    assert_eq!(s.http_errors.get("503"), Some(&5));
    assert_eq!(s.posts_ok, 5);
    assert_eq!(s.accepted, 500);
    assert_eq!(seen.failed_posts, 5);
    let ids: HashSet<String> = ledger_ids(&ledger).into_iter().collect();
    assert_eq!(ids, seen.accepted_set);
    assert_eq!(s.ledger.as_ref().unwrap().ids_not_delivered, 500);
    assert!(s.error_samples.iter().any(|e| e.starts_with("HTTP 503")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_gateway_means_transport_errors_not_a_crash() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/webhook");
    let out = run(&[
        "--endpoint",
        &url,
        "--count",
        "100",
        "--batch-size",
        "10",
        "--json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let s = summary(&out);
    assert_eq!(s.posts, 10);
    assert_eq!(s.transport_errors, 10);
    assert_eq!(s.posts_ok, 0);
    assert_eq!(s.sent, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_keeps_to_the_rate() {
    let gw = common::server::start(None, None).await;
    let started = Instant::now();
    let out = run(&[
        "--endpoint",
        &gw.url(),
        "--count",
        "500",
        "--rate",
        "1000",
        "--batch-size",
        "100",
        "--json",
    ])
    .await;
    let s = summary(&out);
    assert_eq!(s.sent, 500);
    // POST k starts at k*100/1000 s: the 5th at 0.4 s.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert!(s.events_per_sec < 1300.0, "{}", s.events_per_sec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_posts_random_sizes_and_writes_the_ledger() {
    let gw = common::server::start(None, None).await;
    let ledger = temp_path("stream.ledger");
    let out = run(&[
        "--endpoint",
        &gw.url(),
        "--posts",
        "4",
        "--interval-ms",
        "50",
        "--min-events",
        "10",
        "--max-events",
        "40",
        "--corrupt-rate",
        "1",
        "--duplicate-rate",
        "0.1",
        "--ledger",
        ledger.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let s = summary(&out);
    let seen = gw.seen.lock().unwrap();
    assert_eq!(s.mode, "stream");
    assert_eq!((s.posts, seen.posts), (4, 4));
    assert!((40..=160).contains(&s.sent), "{}", s.sent);
    assert_eq!(s.sent_corrupted, 4);
    assert_eq!(s.rejected, 4);
    assert_eq!(s.accepted, s.sent_valid_unique + s.sent_duplicates);
    let ids: HashSet<String> = ledger_ids(&ledger).into_iter().collect();
    assert_eq!(ids, seen.accepted_set);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_with_a_summary() {
    let gw = common::server::start(None, None).await;
    let child = Command::new(BIN)
        .args([
            "--endpoint",
            &gw.url(),
            "--interval-ms",
            "50",
            "--min-events",
            "5",
        ])
        .args(["--max-events", "10", "--json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Running (and its handlers installed) once it has POSTed twice.
    let start = std::time::Instant::now();
    while gw.seen.lock().unwrap().posts < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no POST arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("stopped after SIGINT")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let s = summary(&out);
    assert!(s.posts >= 2, "{s:?}");
    assert_eq!(s.posts, gw.seen.lock().unwrap().posts);
}

#[tokio::test]
async fn bad_arguments_exit_non_zero() {
    for args in [
        &["--min-events", "10", "--max-events", "5"][..],
        &["--corrupt-rate", "2"],
        &["--endpoint", "https://example.invalid/webhook"],
        &["--endpoint", "not a url"],
        &["--rate", "10"], // needs --count
        &["--count", "10", "--posts", "3"],
        &["--ledger", "/nonexistent-dir/ledger"],
    ] {
        let out = run(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

/// LOG_LEVEL is read like every service's (a bad one is named in one line,
/// exit 2), and logs written to a pipe carry no ANSI colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_is_read_and_piped_logs_have_no_colour() {
    let out = Command::new(BIN)
        .args(["--count", "1"])
        .env("LOG_LEVEL", "no=such=[level")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LOG_LEVEL"), "{err}");

    // A gateway nobody listens on: the publisher logs a warning per failed POST.
    let out = Command::new(BIN)
        .args([
            "--endpoint",
            "http://127.0.0.1:9/webhook",
            "--count",
            "10",
            "--no-progress",
        ])
        .env_remove("RUST_LOG")
        .env("LOG_LEVEL", "debug")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.trim().is_empty(), "nothing logged at debug");
    assert!(!err.contains('\u{1b}'), "ANSI codes in piped logs: {err:?}");
}
