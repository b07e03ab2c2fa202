//! `scripts/cluster-local.sh`: the same topology natively, end to end, and
//! what it says when something it needs is missing.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use deploy_tests::{
    accepts, assert_names_missing_binaries, bin_dir, command_exists, env_or, kill,
    missing_binaries, ready, repo_root, running, skip, ScriptRun,
};

use super::{temp_dir, COLLECTORS, GATEWAYS, NATS_NODES, PG_BIN, SCRIPT};

/// Generous: debug binaries on a busy machine.
const DEADLINE: Duration = Duration::from_secs(150);

/// A base port whose 72 ports (see the script's header) are all free,
/// below the usual ephemeral range.
fn free_base_port() -> u16 {
    let seed = uuid::Uuid::new_v4().as_u128();
    for i in 0..200u128 {
        let base = 12000 + (((seed >> 8) + i * 7) % 200) as u16 * 100;
        let all_free = (base..=base + 71).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free range of 72 ports between 12000 and 32000");
}

/// The state file: `status`, and `process NAME PID PORTS` records.
#[derive(Debug, Default)]
struct State {
    status: String,
    processes: BTreeMap<String, (u32, Vec<u16>)>,
}

fn read_state(path: &Path) -> State {
    let mut state = State::default();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["status", s] => state.status = s.to_string(),
            ["process", name, pid, ports] => {
                let ports = ports.split(',').filter_map(|p| p.parse().ok()).collect();
                if let Ok(pid) = pid.parse() {
                    state.processes.insert(name.to_string(), (pid, ports));
                }
            }
            _ => {}
        }
    }
    state
}

/// The state file of a run.
fn state_of(run: &ScriptRun) -> State {
    read_state(&run.dir.join("work/cluster.state"))
}

/// Runs the script on a free range of ports (the first one, HAProxy's
/// webhook port, returned too). Drop kills what is left (the script, then
/// every process the state file names) and removes the work dir.
fn start(bins: &Path, args: &[&str]) -> (ScriptRun, u16) {
    let dir = temp_dir("local");
    let base = free_base_port();
    let env: Vec<(&str, String)> = vec![
        // nats-server and haproxy live in /usr/sbin.
        (
            "PATH",
            format!("{}:/usr/sbin:/sbin", env_or("PATH", "/usr/bin:/bin")),
        ),
        ("EVENTS_BIN_DIR", bins.display().to_string()),
        ("CLUSTER_BASE_PORT", base.to_string()),
        ("CLUSTER_WORK_DIR", dir.join("work").display().to_string()),
        (
            "CLUSTER_START_TIMEOUT_SECS",
            (DEADLINE.as_secs() - 10).to_string(),
        ),
        ("CLUSTER_STOP_TIMEOUT_SECS", "30".into()),
        ("PLUGINS_DIR", plugins_dir().display().to_string()),
        // Compiled once by gateway-1, then loaded by the others.
        (
            "PLUGINS_CACHE_DIR",
            dir.join("plugin-cache").display().to_string(),
        ),
        ("SHUTDOWN_TIMEOUT_MS", "10000".into()),
        ("LOG_LEVEL", "info".into()),
    ];
    let run = ScriptRun::start(SCRIPT, dir, args, env, DEADLINE, 60).on_drop(|run| {
        for (pid, _) in state_of(run).processes.values() {
            if running(*pid) {
                kill(*pid, "KILL");
            }
        }
        if !std::thread::panicking() {
            // The PostgreSQL backends exit with their postmaster.
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    (run, base)
}

fn plugins_dir() -> PathBuf {
    repo_root().join("dist/plugins")
}

/// The binaries' directory, or `None` (after saying why) to skip.
fn prerequisites(test: &str) -> Option<PathBuf> {
    let dir = bin_dir();
    let mut why: Vec<String> = missing_binaries(&dir, &["events-host", "events-reporter"])
        .into_iter()
        .collect();
    for plugin in ["facebook.wasm", "tiktok.wasm"] {
        if !plugins_dir().join(plugin).is_file() {
            why.push(format!(
                "dist/plugins/{plugin} missing (scripts/build-plugins.sh)"
            ));
        }
    }
    for tool in ["nats-server", "haproxy"] {
        if !command_exists(tool) && !Path::new("/usr/sbin").join(tool).is_file() {
            why.push(format!("{tool} not installed (apt-get install {tool})"));
        }
    }
    if !Path::new(PG_BIN).join("pg_basebackup").is_file() {
        why.push("PostgreSQL 15 server binaries missing (apt-get install postgresql-15)".into());
    }
    if why.is_empty() {
        return Some(dir);
    }
    skip(test, &why.join("; "));
    None
}

/// The whole topology from one script: up, one batch through HAProxy into
/// the reporter on the replica, and everything gone after SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_local_runs_the_topology_and_stops_it_on_sigterm() {
    let test = "cluster_local_runs_the_topology_and_stops_it_on_sigterm";
    let Some(bins) = prerequisites(test) else {
        return;
    };
    let started = Instant::now();
    let (mut run, base) = start(&bins, &[]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");

    run.wait_for("status ready in the state file", async |r| {
        state_of(r).status == "ready"
    })
    .await;
    let state = state_of(&run);
    let names: BTreeSet<&str> = state.processes.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = NATS_NODES
        .into_iter()
        .chain(GATEWAYS)
        .chain(COLLECTORS)
        .chain(["pg-primary", "pg-replica", "haproxy", "reporter"])
        .collect();
    assert_eq!(names, want, "{}", run.logs());
    // Every service answers ready on the port the state file gives, and the
    // webhook port is HAProxy's.
    assert_eq!(state.processes["haproxy"].1.first(), Some(&base));
    for name in GATEWAYS.into_iter().chain(COLLECTORS).chain(["reporter"]) {
        let port = state.processes[name].1[0];
        assert!(
            ready(&http, port).await,
            "{name} (:{port}) not ready\n{}",
            run.logs()
        );
    }
    // HAProxy sees both gateways pass their checks.
    let stats_port = state.processes["haproxy"].1[1];
    let csv = http
        .get(format!("http://127.0.0.1:{stats_port}/stats;csv"))
        .send()
        .await
        .expect("HAProxy stats")
        .text()
        .await
        .expect("stats body");
    for gw in GATEWAYS {
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("gateways,{gw},"))
                    && l.split(',').nth(17) == Some("UP")),
            "{gw} not UP in HAProxy:\n{csv}"
        );
    }
    // The reporter reads a replica.
    let health: serde_json::Value = http
        .get(format!(
            "http://127.0.0.1:{}/health/ready",
            state.processes["reporter"].1[0]
        ))
        .send()
        .await
        .expect("reporter health")
        .json()
        .await
        .expect("health JSON");
    assert_eq!(health["replica"]["inRecovery"], true, "{health}");

    // One small batch, one event per source, through HAProxy.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let batch = serde_json::json!([
        {"eventId": format!("fb-{id}"), "timestamp": "2024-03-01T12:00:00Z", "source": "facebook",
         "funnelStage": "top", "eventType": "ad.view",
         "data": {"user": {"userId": "u1", "name": "Ann", "age": 30, "gender": "female",
                           "location": {"country": "Ukraine", "city": "Kyiv"}},
                  "engagement": {"actionTime": "2024-03-01T12:00:01Z", "referrer": "newsfeed",
                                 "videoId": null}}},
        {"eventId": format!("ttk-{id}"), "timestamp": "2024-03-01T12:00:00Z", "source": "tiktok",
         "funnelStage": "top", "eventType": "video.view",
         "data": {"user": {"userId": "t1", "username": "ann", "followers": 1200},
                  "engagement": {"watchTime": 12.5, "percentageWatched": 87.5, "device": "iOS",
                                 "country": "FR", "videoId": "v-7"}}}
    ]);
    let webhook = format!("http://127.0.0.1:{base}/webhook");
    let response = http
        .post(&webhook)
        .json(&batch)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {webhook}: {e}\n{}", run.logs()));
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("webhook JSON");
    assert_eq!(body["accepted"], 2, "{body}");

    let report = format!(
        "http://127.0.0.1:{}/api/v1/reports/events?from=2024-03-01&to=2024-03-31&granularity=day",
        state.processes["reporter"].1[0]
    );
    run.wait_for(
        "the reporter (on the replica) to count both events",
        async |_| {
            let Ok(r) = http.get(&report).send().await else {
                return false;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                return false;
            };
            v["totalEvents"] == 2 && v["bySource"]["facebook"] == 1 && v["bySource"]["tiktok"] == 1
        },
    )
    .await;
    drop(http);

    run.signal("TERM");
    let status = run.wait_exit().await;
    assert!(
        status.success(),
        "cluster-local.sh: {status}\n{}",
        run.logs()
    );
    let state = state_of(&run);
    assert_eq!(state.status, "stopped", "{}", run.logs());
    for (name, (pid, ports)) in &state.processes {
        assert!(
            !running(*pid),
            "{name} (pid {pid}) still runs\n{}",
            run.logs()
        );
        for port in ports {
            assert!(!accepts(*port), "{name}'s port {port} still accepts");
        }
    }
    let out = run.stdout();
    for prefix in ["[gateway-1] ", "[haproxy] ", "[pg-replica] ", "[nats-3] "] {
        assert!(
            out.lines().any(|l| l.starts_with(prefix)),
            "no {prefix}lines\n{}",
            run.logs()
        );
    }
    println!(
        "cluster_local: up, one batch and down in {:?}",
        started.elapsed()
    );
}

#[test]
fn cluster_local_names_what_is_missing() {
    let script = repo_root().join(SCRIPT);
    assert_names_missing_binaries(SCRIPT);
    // haproxy: a PATH with everything the script needs before that check
    // except haproxy.
    let dir = temp_dir("no-haproxy");
    let (bins, path, plugins) = (dir.join("bin"), dir.join("path"), dir.join("plugins"));
    for d in [&bins, &path, &plugins] {
        std::fs::create_dir_all(d).unwrap();
    }
    for b in ["events-host", "events-reporter"] {
        std::fs::write(bins.join(b), "#!/bin/sh\nexit 0\n").unwrap();
        let ok = Command::new("chmod").arg("755").arg(bins.join(b)).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
    std::fs::write(plugins.join("facebook.wasm"), b"").unwrap();
    std::os::unix::fs::symlink("/bin/true", path.join("nats-server")).unwrap();
    for tool in ["dirname", "bash", "env"] {
        if let Some(p) = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(p, path.join(tool)).unwrap();
        }
    }
    let out = Command::new(&script)
        .env_clear()
        .env("PATH", &path)
        .env("EVENTS_BIN_DIR", &bins)
        .env("PLUGINS_DIR", &plugins)
        .output()
        .expect("run the script");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("haproxy not found: apt-get install haproxy"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
