//! Private services for integration tests: NATS servers and clusters,
//! PostgreSQL primaries and streaming replicas, each on its own free port
//! with its own temp dir, stopped and removed on drop.
//!
//! Tests that stop, kill or re-point a service must never touch the shared
//! PostgreSQL (5432) and NATS (4222) other tests run against, so they start
//! their own here. One crate, used as a dev-dependency by every package
//! that needs it, so the process plumbing exists once.
use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

mod nats;
mod postgres;

pub use nats::{NatsCluster, NatsServer};
pub use postgres::Postgres;

/// A port nothing listens on right now. (Another process may take it before
/// the caller binds it; good enough for tests, which start at once.)
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Sends `sig` (`TERM`, `KILL`, `STOP`, ...) to `pid`. Through `kill(1)`
/// rather than libc so the crate needs no unsafe code.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Blocks until `port` accepts TCP connections; `false` after `timeout`.
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

/// Sends `sig` to `child` and waits for it to exit; kills it after
/// `timeout` so a hung process never hangs the test.
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

/// The last 30 lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
