//! PostgreSQL 15 primaries and hot standbys in temp dirs.
use crate::{free_port, tail};
use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
};
use tempfile::TempDir;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL 15 cluster in a temp dir on a free port, run as user
/// `postgres` (the tests run as root, which PostgreSQL refuses to run as).
/// Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`):
/// the data is thrown away with the test.
pub struct Postgres {
    pub port: u16,
    dir: TempDir,
    running: bool,
}

fn as_postgres(bin: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{PG_BIN}/{bin}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

/// `as_postgres`, panicking with `bin`'s stderr unless it succeeds.
fn as_postgres_ok(bin: &str, args: &[&str]) {
    let out = as_postgres(bin, args);
    assert!(
        out.status.success(),
        "{bin} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// A fresh primary. `initdb`'s default `pg_hba.conf` trusts local and
    /// 127.0.0.1 connections, replication included, and `wal_level=replica`
    /// is PostgreSQL 15's default, so `replica_of` works on it as is.
    pub fn start() -> Self {
        let mut pg = Self::empty();
        as_postgres_ok(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
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
        pg.start_again();
        pg
    }

    /// A hot standby streaming from `primary` (`pg_basebackup -R` writes
    /// `primary_conninfo` and `standby.signal`); every database of the
    /// primary, including ones created later, is replayed on it.
    pub fn replica_of(primary: &Postgres) -> Self {
        let mut pg = Self::empty();
        let port = primary.port.to_string();
        as_postgres_ok(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                pg.data().to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg
    }

    /// An empty temp dir owned by `postgres` (initdb and pg_basebackup
    /// create `data/` in it; the server writes its socket and log there).
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

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pg.log")
    }

    /// The server log so far (e.g. to assert nothing tried to write to a
    /// replica).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:<port>` (append `/<database>`).
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base_url())
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres("pg_ctl", &all)
    }

    /// Starts (again, after `stop`) on the same port and data directory.
    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.log_path();
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
    /// Immediate shutdown (no checkpoint: the data is discarded anyway);
    /// `TempDir` then removes the directory.
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
    }
}
