//! Private NATS and PostgreSQL instances for fault tests (never the shared
//! ones): own ports, own temp dirs, stopped and removed on drop.
#![allow(dead_code)]
use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tempfile::TempDir;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Sends `sig` (`TERM`, `KILL`, ...) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Blocks until `port` accepts TCP connections.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits for `child` to exit; kills it after `timeout`.
pub fn stop_child(child: &mut Child, sig: &str, timeout: Duration) {
    signal(child.id(), sig);
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `nats-server -js` on a free port with its store in a temp dir.
pub struct NatsServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// Starts with extra server configuration (e.g. `max_payload: 16384`).
    pub fn start_with_config(config: &str) -> Self {
        let mut s = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::write(s.dir.path().join("nats.conf"), config).expect("write nats.conf");
        s.start_again();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// Starts (again) on the same port and store.
    pub fn start_again(&mut self) {
        let store = self.dir.path().join("store");
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .arg("-l")
            .arg(self.log())
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(15)),
            "nats-server did not listen:\n{}",
            tail(&self.log())
        );
    }

    /// Graceful stop (SIGTERM): JetStream flushes its store.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, "TERM", Duration::from_secs(15));
        }
    }

    /// Starts again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGKILL: the server dies without flushing anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A JetStream cluster of `nats-server` processes on free ports (node `i`
/// has `server_name: n<i>`), each with its own store.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub fn start(size: usize) -> Self {
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let name = format!("test-cluster-{}", routes[0]);
        let nodes = routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::start_with_config(&format!(
                    "server_name: n{i}\ncluster {{\n  name: {name}\n  listen: 127.0.0.1:{port}\n  routes: [{all_routes}]\n}}\n"
                ))
            })
            .collect();
        Self { nodes }
    }

    /// Every node's client URL, comma-separated (as `NATS_URL` takes them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node whose `server_name` is `name`.
    pub fn node(&mut self, name: &str) -> &mut NatsServer {
        let i: usize = name
            .strip_prefix('n')
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a node of this cluster: {name}"));
        &mut self.nodes[i]
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A PostgreSQL 15 cluster in a temp dir, run as user `postgres`.
pub struct Postgres {
    pub port: u16,
    dir: TempDir,
    running: bool,
}

fn as_postgres(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{PG_BIN}/{bin}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

impl Postgres {
    fn empty() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "chown of the PostgreSQL temp dir failed"
        );
        Self {
            port: free_port(),
            dir,
            running: false,
        }
    }

    /// A hot standby streaming from `primary` (`pg_basebackup -R` writes
    /// `primary_conninfo` and `standby.signal`); every database of the
    /// primary, including ones created later, is replayed on it.
    pub fn replica_of(primary: &Postgres) -> Self {
        let mut pg = Self::empty();
        let data = pg.dir.path().join("data");
        let port = primary.port.to_string();
        let out = as_postgres(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        pg
    }

    pub fn start() -> Self {
        let mut pg = Self::empty();
        let data = pg.dir.path().join("data");
        let out = as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>` (append `/<database>`).
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres("pg_ctl", &all)
    }

    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log");
        let out = self.pg_ctl(&[
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "-t",
            "60",
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&log)
        );
        self.running = true;
    }

    /// Fast shutdown: open connections are terminated.
    pub fn stop(&mut self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
    }
}
