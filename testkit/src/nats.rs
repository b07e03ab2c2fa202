//! `nats-server -js` processes: single servers and JetStream clusters.
use crate::{free_port, stop_child, tail, wait_port};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tempfile::TempDir;

/// `nats-server -js` on a free port with its store in a temp dir. The port
/// and store survive `stop`/`start_again`, so clients reconnect to the
/// same address and find their streams again.
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

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A JetStream cluster of `nats-server` processes on free ports (node `i`
/// has `server_name: n<i>`, which is how JetStream names stream leaders, so
/// a test can stop "the leader" by the name the server reports).
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
        // Unique per cluster so concurrently running tests never join up.
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
