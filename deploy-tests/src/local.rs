//! Helpers for running the services natively in the end-to-end tests:
//! environment knobs, skipping, scratch directories, ports, processes, and
//! the fresh PostgreSQL databases and JetStream streams a run owns.

use std::{
    future::Future,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// The variable `name`, or `default` when unset or blank.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Prints `SKIPPED: test: why`, or fails under DEPLOY_E2E_REQUIRED=1.
pub fn skip(test: &str, why: &str) {
    assert!(
        env_or("DEPLOY_E2E_REQUIRED", "0") != "1",
        "{test}: DEPLOY_E2E_REQUIRED=1 but {why}"
    );
    println!("SKIPPED: {test}: {why}");
}

/// True (after printing `SKIPPED: TOOL not installed; WHAT not validated`)
/// when `tool` is not on `PATH`.
pub fn lacks_tool(tool: &str, what: &str) -> bool {
    let lacks = !crate::command_exists(tool);
    if lacks {
        println!("SKIPPED: {tool} not installed; {what} not validated");
    }
    lacks
}

/// The directory of the debug binaries: EVENTS_BIN_DIR, default
/// /var/cache/events-target/debug.
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env_or("EVENTS_BIN_DIR", "/var/cache/events-target/debug"))
}

/// Why `bins` cannot run from `dir`, or `None` when all are built.
pub fn missing_binaries(dir: &Path, bins: &[&str]) -> Option<String> {
    let missing: Vec<&str> = bins
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "binaries not built in {}: {} (cargo build --workspace --bins, or set EVENTS_BIN_DIR)",
            dir.display(),
            missing.join(", ")
        )
    })
}

/// Twelve hex digits, fresh each call.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// A fresh directory `name` under the temp dir (mode 0755: PostgreSQL's
/// user must enter it).
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Distinct ports nothing listens on right now.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free local port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// True when something accepts connections on local `port`.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// Sends `signal` (`INT`, `TERM`, `KILL`...) to `pid`.
pub fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A live, non-zombie process.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// True when `GET /health/ready` on local `port` answers 200.
pub async fn ready(http: &reqwest::Client, port: u16) -> bool {
    http.get(format!("http://127.0.0.1:{port}/health/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}

/// Runs `f` (for at most 15 s) on a thread with a runtime of its own: for
/// clean-ups in `Drop`, which may run inside a test's runtime.
pub fn block_on_thread<F: Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), f).await.ok() });
    })
    .join();
}

/// Creates database `name` through `admin_url`, panicking when it cannot.
pub async fn create_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {admin_url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
}

/// Drops database `name` (its sessions too), quietly.
pub async fn drop_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// Deletes every JetStream stream whose name `matches`, quietly.
pub async fn delete_streams(nats_url: &str, matches: impl Fn(&str) -> bool) {
    use futures::StreamExt;
    let Ok(client) = async_nats::connect(nats_url).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    let mut names = js.stream_names();
    let mut found = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        if matches(&name) {
            found.push(name);
        }
    }
    for name in found {
        let _ = js.delete_stream(&name).await;
    }
}
