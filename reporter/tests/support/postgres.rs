//! Private PostgreSQL 15 instances: a primary and its streaming replicas,
//! each in a temp dir on a free port, run as the `postgres` user (the tests
//! run as root), stopped and removed on drop. The shared server on 5432 is
//! never touched.
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Instance {
    pub port: u16,
    dir: PathBuf,
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

fn check(what: &str, out: &Output, log: Option<&Path>) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        log.map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .unwrap_or_default()
    );
}

impl Instance {
    /// A fresh primary (`initdb`'s default `pg_hba.conf` trusts local and
    /// 127.0.0.1 connections, replication included; `wal_level=replica` is
    /// PostgreSQL 15's default).
    pub fn primary() -> Self {
        let mut pg = Self::empty();
        let out = as_postgres(
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
        check("initdb", &out, None);
        pg.start();
        pg
    }

    /// A hot standby streaming from `primary` (`pg_basebackup -R` writes
    /// `primary_conninfo` and `standby.signal`).
    pub fn replica_of(primary: &Instance) -> Self {
        let mut pg = Self::empty();
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
                pg.data().to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        check("pg_basebackup", &out, None);
        pg.start();
        pg
    }

    fn empty() -> Self {
        let dir =
            std::env::temp_dir().join(format!("reporter-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "chown {}", dir.display());
        Self {
            port: free_port(),
            dir,
            running: false,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("pg.log")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres("pg_ctl", &all)
    }

    fn start(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.display()
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
        check("pg_ctl start", &out, Some(&log));
        self.running = true;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}
