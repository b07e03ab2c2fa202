//! The PostgreSQL primary and its streaming replica: how the compose file
//! wires them, and the scripts it mounts (`primary-init.sh`,
//! `replica-entrypoint.sh`) run natively, without Docker.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use deploy_tests::{env_or, free_port, get, read, repo_root, run, scalar, skip, strings};
use serde_yaml::Value as Yaml;

use super::{
    compose::{bind_mounts, depends_on, env_of, named_volumes, pg_host, service, services},
    temp_dir, PG_BIN, PRIMARY_INIT, REPLICA_ENTRYPOINT,
};

#[test]
fn replica_is_made_from_the_primary_and_serves_the_reporter() {
    let all = services();
    let primary = service(&all, "postgres");
    let replica = service(&all, "postgres-replica");
    let image = |s: &Yaml| get(s, "image").and_then(scalar).unwrap_or_default();
    assert_eq!(image(primary), "postgres:15");
    assert_eq!(image(replica), "postgres:15");

    // The primary creates the replication role and slot on first start.
    assert!(
        bind_mounts(primary)
            .iter()
            .any(|(src, dst)| src == PRIMARY_INIT
                && dst.starts_with("/docker-entrypoint-initdb.d/")
                && dst.ends_with(".sh")),
        "postgres does not mount {PRIMARY_INIT} into /docker-entrypoint-initdb.d"
    );
    // The image sources a non-executable *.sh into its own shell.
    assert!(
        executable(&repo_root().join(PRIMARY_INIT)),
        "{PRIMARY_INIT} is executable"
    );
    let init = read(PRIMARY_INIT);
    for want in [
        "REPLICATION LOGIN",
        "pg_create_physical_replication_slot('replica_1')",
        "host replication replicator all scram-sha-256",
    ] {
        assert!(init.contains(want), "{PRIMARY_INIT} lacks {want}");
    }

    // The replica: pg_basebackup -R from `postgres` in its entrypoint.
    let entrypoint = strings(get(replica, "entrypoint")).join(" ");
    let (src, dst) = bind_mounts(replica)
        .into_iter()
        .find(|(src, _)| src == REPLICA_ENTRYPOINT)
        .unwrap_or_else(|| panic!("postgres-replica does not mount {REPLICA_ENTRYPOINT}"));
    assert!(
        entrypoint.contains(&dst),
        "entrypoint {entrypoint} does not run {src}"
    );
    let script = read(REPLICA_ENTRYPOINT);
    assert!(
        script.contains("pg_basebackup -h \"$PRIMARY_HOST\"")
            && script.contains("-R -X stream -S \"$SLOT\""),
        "{REPLICA_ENTRYPOINT} does not pg_basebackup -R from the primary"
    );
    assert!(script.contains("exec docker-entrypoint.sh postgres"));
    let renv = env_of(&all, "postgres-replica");
    let penv = env_of(&all, "postgres");
    assert_eq!(renv["PRIMARY_HOST"], "postgres");
    assert_eq!(renv["REPLICATION_SLOT"], "replica_1");
    assert_eq!(
        renv["POSTGRES_REPLICATION_PASSWORD"], penv["POSTGRES_REPLICATION_PASSWORD"],
        "primary and replica share the replication password"
    );
    assert_eq!(
        depends_on(replica).get("postgres").map(String::as_str),
        Some("service_healthy")
    );
    let data = |s: &Yaml| {
        named_volumes(s)
            .into_iter()
            .find(|(_, dst)| dst == "/var/lib/postgresql/data")
            .map(|(v, _)| v)
    };
    assert!(data(primary).is_some() && data(replica).is_some());
    assert_ne!(
        data(primary),
        data(replica),
        "the replica has its own volume"
    );
    let health = strings(get(get(replica, "healthcheck").unwrap(), "test")).join(" ");
    assert!(health.contains("pg_is_in_recovery()"), "{health}");

    // The reporter reads the replica; DATABASE_URL stays on the primary.
    let env = env_of(&all, "reporter");
    assert_eq!(pg_host(&env["REPORTER_DATABASE_URL"]), "postgres-replica");
    assert_eq!(pg_host(&env["DATABASE_URL"]), "postgres");
    assert!(env.contains_key("DATABASE_PASSWORD"));
    assert_eq!(
        depends_on(service(&all, "reporter"))
            .get("postgres-replica")
            .map(String::as_str),
        Some("service_healthy")
    );
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// PostgreSQL commands as the `postgres` user (we are root).
fn as_postgres(dir: &Path, cmd: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut c = Command::new("runuser");
    c.current_dir(dir)
        .args(["-u", "postgres", "--", "env"])
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(cmd)
        .args(args)
        .stdin(Stdio::null());
    let (ok, out, err) = run(&mut c);
    (ok, format!("{out}{err}"))
}

/// Stops the PostgreSQL servers of a data directory list and removes `dir`.
struct PgScratch {
    dir: PathBuf,
    running: Vec<PathBuf>,
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        for data in &self.running {
            let _ = as_postgres(
                &self.dir,
                &format!("{PG_BIN}/pg_ctl"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                &[],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the postgres image does with them, without Docker: a primary
/// initialised like the image's (host connections need a password, the
/// default `host replication` lines removed), `primary-init.sh` run against
/// it, then `replica-entrypoint.sh` with stand-ins for `gosu` and the image's
/// `docker-entrypoint.sh` (which records the server command line). The
/// replica started with that command line streams from the primary through
/// the slot, authenticated from the passfile.
#[test]
fn compose_postgres_scripts_make_a_streaming_replica() {
    let test = "compose_postgres_scripts_make_a_streaming_replica";
    if !Path::new(PG_BIN).join("initdb").is_file() {
        return skip(
            test,
            "PostgreSQL 15 server binaries missing (apt-get install postgresql-15)",
        );
    }
    if !is_root() {
        return skip(test, "needs root (runs PostgreSQL as user postgres)");
    }
    let dir = temp_dir("pg-scripts");
    let mut scratch = PgScratch {
        dir: dir.clone(),
        running: Vec::new(),
    };
    let primary = dir.join("primary");
    let replica = dir.join("replica");
    let shim = dir.join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    let ok = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&dir)
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    let sock = dir.to_str().unwrap();
    let (pport, rport) = (free_port().to_string(), free_port().to_string());
    // A password with the characters a passfile must escape.
    let password = r#"re:pl\ic"a"#;

    let (ok, out) = as_postgres(
        &dir,
        &format!("{PG_BIN}/initdb"),
        &[
            "-D",
            primary.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ],
        &[],
    );
    assert!(ok, "initdb: {out}");
    let hba = primary.join("pg_hba.conf");
    let text: String = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .filter(|l| !(l.starts_with("host") && l.contains("replication")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&hba, text + "host all all all scram-sha-256\n").unwrap();
    let start = |data: &Path, port: &str, extra: &str| {
        as_postgres(
            &dir,
            &format!("{PG_BIN}/pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                data.with_extension("log").to_str().unwrap(),
                "-o",
                &format!("-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off {extra}"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            &[],
        )
    };
    let (ok, out) = start(&primary, &pport, "");
    assert!(ok, "start the primary: {out}");
    scratch.running.push(primary.clone());

    // Run from a copy in the scratch dir: the postgres user may not be
    // able to traverse the checkout (a clone in a 0700 temp dir, say).
    let init = dir.join("primary-init.sh");
    std::fs::copy(repo_root().join(PRIMARY_INIT), &init).expect("copy primary-init.sh");
    let (ok, out) = as_postgres(
        &dir,
        "bash",
        &[init.to_str().unwrap()],
        &[
            ("PGHOST", sock),
            ("PGPORT", &pport),
            ("PGDATA", primary.to_str().unwrap()),
            ("POSTGRES_USER", "postgres"),
            ("POSTGRES_REPLICATION_PASSWORD", password),
        ],
    );
    assert!(ok, "{PRIMARY_INIT}: {out}");
    let (ok, out) = as_postgres(
        &dir,
        &format!("{PG_BIN}/pg_ctl"),
        &["-D", primary.to_str().unwrap(), "reload"],
        &[],
    );
    assert!(ok, "reload: {out}");

    std::fs::write(
        shim.join("gosu"),
        "#!/bin/sh\nu=\"$1\"; shift; exec runuser -u \"$u\" -- \"$@\"\n",
    )
    .unwrap();
    let recorded = dir.join("server-args");
    std::fs::write(
        shim.join("docker-entrypoint.sh"),
        format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > {}\n",
            recorded.display()
        ),
    )
    .unwrap();
    for f in ["gosu", "docker-entrypoint.sh"] {
        let ok = Command::new("chmod").arg("755").arg(shim.join(f)).status();
        assert!(ok.is_ok_and(|s| s.success()));
    }
    let entrypoint = |pw: &str| {
        run(Command::new("bash")
            .arg(repo_root().join(REPLICA_ENTRYPOINT))
            .current_dir(&dir)
            .env(
                "PATH",
                format!(
                    "{}:{PG_BIN}:{}",
                    shim.display(),
                    env_or("PATH", "/usr/bin:/bin")
                ),
            )
            .env("PGDATA", &replica)
            .env("REPLICA_PASSFILE", dir.join("replica.pgpass"))
            .env("PRIMARY_HOST", "127.0.0.1")
            .env("PRIMARY_PORT", &pport)
            .env("REPLICATION_SLOT", "replica_1")
            .env("POSTGRES_REPLICATION_PASSWORD", pw))
    };
    // A wrong password fails and leaves no half copy behind.
    let (ok, _, err) = entrypoint("wrong");
    assert!(!ok, "pg_basebackup with a wrong password must fail");
    assert!(err.contains("password authentication failed"), "{err}");
    assert_eq!(
        std::fs::read_dir(&replica).map(|d| d.count()).unwrap_or(0),
        0
    );

    let (ok, out, err) = entrypoint(password);
    assert!(ok, "{REPLICA_ENTRYPOINT}: {out}{err}");
    assert!(
        replica.join("standby.signal").is_file(),
        "pg_basebackup -R writes standby.signal"
    );
    let args: Vec<String> = std::fs::read_to_string(&recorded)
        .expect("the entrypoint hands over to docker-entrypoint.sh")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        args.first().map(String::as_str),
        Some("postgres"),
        "{args:?}"
    );
    // The recorded `-c name=value` pairs, as the server will get them.
    let settings: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "-c")
        .map(|w| w[1].clone())
        .collect();
    let extra = settings
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap();
            assert!(!v.contains('\''), "{s}");
            format!("-c {k}='{v}'")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let (ok, out) = start(&replica, &rport, &extra);
    assert!(ok, "start the replica: {out}");
    scratch.running.push(replica.clone());

    let psql = |port: &str, sql: &str| {
        as_postgres(
            &dir,
            &format!("{PG_BIN}/psql"),
            &[
                "-h", sock, "-p", port, "-U", "postgres", "-d", "postgres", "-tAc", sql,
            ],
            &[],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out) = psql(
            &pport,
            "SELECT s.application_name || ' ' || s.state || ' ' || r.slot_name \
             FROM pg_stat_replication s JOIN pg_replication_slots r ON r.active_pid = s.pid",
        );
        if out.trim() == "postgres-replica streaming replica_1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica does not stream through slot replica_1: {out}\n{}",
            std::fs::read_to_string(replica.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, out) = psql(&rport, "SELECT pg_is_in_recovery()");
    assert_eq!(out.trim(), "t", "the replica's healthcheck query");
}
