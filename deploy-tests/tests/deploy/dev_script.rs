//! `scripts/dev.sh`, the native run: it starts the gateway, one collector
//! and the reporter (and with `--simulator` the publisher, aimed at the
//! gateway), prefixes every output line with the process name, stops them
//! all on SIGINT, and stops the others when one exits on its own.
//!
//! Runs the debug binaries (EVENTS_BIN_DIR, default
//! /var/cache/events-target/debug) against the local PostgreSQL (a fresh
//! database) and NATS (stream names and a subject prefix of its own), on
//! free ports. Without the binaries it prints `SKIPPED:` and passes, unless
//! DEPLOY_E2E_REQUIRED=1 (CI) makes that a failure.
use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use deploy_tests::{
    accepts, assert_names_missing_binaries, bin_dir, block_on_thread, create_database,
    delete_streams, drop_database, env_or, free_ports, kill, missing_binaries, ready, running,
    scratch_dir, skip, unique_id, ScriptRun,
};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// Generous: debug binaries on a busy machine.
const DEADLINE: Duration = Duration::from_secs(90);

/// The directory of the binaries, or `None` (after saying why) to skip.
fn bins() -> Option<PathBuf> {
    let dir = bin_dir();
    match missing_binaries(
        &dir,
        &["events-host", "events-reporter", "events-publisher"],
    ) {
        None => Some(dir),
        Some(why) => {
            skip("dev_script", &why);
            None
        }
    }
}

/// The services' names, in the order of their ports.
const SERVICES: [&str; 3] = ["gateway", "collector", "reporter"];

/// Runs the script with `args` on `ports` (gateway, collector, reporter),
/// with its own database and streams. Drop kills what is left (the script
/// and the children it named), drops the database and deletes the streams.
async fn start(
    bins: &Path,
    ports: [u16; 3],
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> ScriptRun {
    let id = unique_id();
    let dir = scratch_dir(&format!("dev-script-{id}"));
    std::fs::create_dir_all(dir.join("plugins")).expect("temp dir");
    let db = format!("dev_script_{id}");
    create_database(ADMIN_URL, &db).await;
    let [gateway, collector, reporter] = ports;
    let stream = format!("DEV_SCRIPT_{}", id.to_ascii_uppercase());
    let streams = [stream.clone(), format!("{stream}_DLQ")];
    let mut env: BTreeMap<String, String> = [
        ("PATH", env_or("PATH", "/usr/bin:/bin")),
        ("EVENTS_BIN_DIR", bins.display().to_string()),
        ("PLUGINS_DIR", dir.join("plugins").display().to_string()),
        ("PLUGINS_CACHE_DIR", "off".into()),
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        ),
        ("NATS_URL", NATS_URL.into()),
        ("NATS_NAME", format!("dev-script-{id}")),
        ("JETSTREAM_STREAM", streams[0].clone()),
        ("JETSTREAM_DLQ_STREAM", streams[1].clone()),
        ("JETSTREAM_SUBJECT_PREFIX", format!("dev_script_{id}")),
        ("GATEWAY_PORT", gateway.to_string()),
        ("COLLECTOR_PORT", collector.to_string()),
        ("REPORTER_PORT", reporter.to_string()),
        ("SHUTDOWN_TIMEOUT_MS", "10000".into()),
        ("LOG_LEVEL", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    ScriptRun::start("scripts/dev.sh", dir, args, &env, DEADLINE, 40).on_drop(move |run| {
        for pid in children(run).into_values().filter(|p| running(*p)) {
            kill(pid, "KILL");
        }
        block_on_thread(async move {
            drop_database(ADMIN_URL, &db).await;
            delete_streams(NATS_URL, |name| streams.iter().any(|s| s == name)).await;
        });
    })
}

/// `[dev] started NAME (pid N)` lines: the children's pids by name.
fn children(run: &ScriptRun) -> BTreeMap<String, u32> {
    run.stderr()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("[dev] started ")?;
            let (name, pid) = rest.split_once(" (pid ")?;
            Some((name.to_string(), pid.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

/// After the script exited: every child is gone and its port (of `ports`)
/// closed.
fn assert_all_stopped(run: &ScriptRun, ports: [u16; 3]) {
    let children = children(run);
    assert!(
        children.len() >= 3,
        "children: {children:?}\n{}",
        run.logs()
    );
    for (name, pid) in &children {
        assert!(
            !running(*pid),
            "{name} (pid {pid}) still runs\n{}",
            run.logs()
        );
    }
    for (name, port) in SERVICES.into_iter().zip(ports) {
        assert!(!accepts(port), "{name}'s port {port} still accepts");
    }
}

fn has_line(out: &str, prefix: &str, containing: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with(prefix) && l.contains(containing))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_every_service_with_prefixed_output_and_stops_them_all_on_sigint() {
    let Some(bins) = bins() else { return };
    let small_posts = [
        ("PUBLISHER_MIN_EVENTS", "5"),
        ("PUBLISHER_MAX_EVENTS", "10"),
        ("PUBLISHER_INTERVAL_MS", "500"),
    ];
    let ports = free_ports();
    let mut run = start(&bins, ports, &["--simulator"], &small_posts).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    run.wait_for("every /health/ready to answer 200", async |_| {
        for port in ports {
            if !ready(&http, port).await {
                return false;
            }
        }
        true
    })
    .await;
    // The simulator posts to the gateway; every process's lines are prefixed.
    run.wait_for("prefixed lines of every process", async |r| {
        let out = r.stdout();
        has_line(&out, "[gateway] ", "webhook handled")
            && has_line(&out, "[collector] ", "events-host started")
            && has_line(&out, "[reporter] ", "")
            && has_line(&out, "[simulator] ", "")
    })
    .await;
    let children = children(&run);
    assert_eq!(
        children.keys().collect::<Vec<_>>(),
        ["collector", "gateway", "reporter", "simulator"],
        "{}",
        run.logs()
    );

    run.signal("INT");
    let status = run.wait_exit().await;
    assert!(status.success(), "dev.sh: {status}\n{}", run.logs());
    assert_all_stopped(&run, ports);
    assert!(
        run.stderr().contains("[dev] SIGINT: stopping"),
        "{}",
        run.logs()
    );
    // The children's own shutdown logs got through.
    assert!(
        has_line(&run.stdout(), "[gateway] ", "shutdown complete"),
        "{}",
        run.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_exiting_stops_the_others_with_a_failure() {
    let Some(bins) = bins() else { return };
    // The reporter cannot listen: it exits, and the script stops the rest.
    let ports = free_ports();
    let taken = TcpListener::bind(("0.0.0.0", ports[2])).expect("hold the reporter's port");
    let mut run = start(&bins, ports, &[], &[]).await;
    let status = run.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{}", run.logs());
    assert!(
        run.stderr().contains("reporter exited on its own"),
        "{}",
        run.logs()
    );
    drop(taken);
    assert_all_stopped(&run, ports);
}

#[test]
fn missing_binaries_are_named_with_the_build_command() {
    assert_names_missing_binaries("scripts/dev.sh");
}
