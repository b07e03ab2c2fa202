//! The reporter on a streaming replica (`REPORTER_DATABASE_URL`): private
//! primary + hot standby instances (`events_testkit::Postgres`), migrations and
//! inserts on the primary only.

use crate::support::Event;
use events_reporter::{
    config::Config,
    startup::{self, App, StartupError},
};
use events_testkit::Postgres;
use serde_json::Value;
use sqlx::{postgres::PgPoolOptions, PgPool};
use std::{
    future::Future,
    time::{Duration, Instant},
};

const PATHS: [&str; 3] = [
    "/api/v1/reports/events?from=2024-01-01&to=2024-02-01",
    "/api/v1/reports/revenue?from=2024-01-01&to=2024-02-01",
    "/api/v1/reports/demographics?from=2024-01-01&to=2024-02-01",
];

async fn start(env: &[(&str, &str)]) -> Result<App, StartupError> {
    let mut vars = std::collections::HashMap::from([
        ("DB_MAX_CONNECTIONS".to_string(), "3".to_string()),
        ("LOG_LEVEL".to_string(), "warn".to_string()),
        ("SHUTDOWN_TIMEOUT_MS".to_string(), "5000".to_string()),
    ]);
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_source(&vars).expect("config");
    events_common::telemetry::init(&config.common.log_level);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    startup::spawn(config, listener).await
}

async fn get(app: &App, path: &str) -> (u16, Value) {
    let res = reqwest::get(format!("http://{}{path}", app.addr))
        .await
        .expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `probe` until it answers `Some`, or panics naming `what` (with
/// the last `Err`).
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!("{what}: gave up; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect")
}

async fn create_database(instance: &Postgres, name: &str) {
    let admin = pool(&instance.url("postgres")).await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create database");
    admin.close().await;
}

/// The replica's answers to every report once they equal the primary's.
async fn replica_catches_up(on_replica: &App, on_primary: &App) -> Vec<Value> {
    let mut bodies = Vec::new();
    for path in PATHS {
        let (_, want) = get(on_primary, path).await;
        let got = eventually(path, Duration::from_secs(15), || async {
            let (status, body) = get(on_replica, path).await;
            if status == 200 && body == want {
                Ok(body)
            } else {
                Err(format!("{status} {body}, want {want}"))
            }
        })
        .await;
        bodies.push(got);
    }
    bodies
}

fn batch(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let t = format!("2024-01-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60);
            if i % 2 == 0 {
                Event::new(&format!("{prefix}{i}"), "facebook", "top", "ad.view", &t).person(
                    20 + (i % 40) as i32,
                    "female",
                    "Poland",
                    "Warsaw",
                )
            } else {
                Event::new(&format!("{prefix}{i}"), "tiktok", "bottom", "purchase", &t)
                    .revenue("12.34")
                    .campaign("cmp_1")
                    .audience(1_500, Some("Spain"), Some("ios"))
            }
        })
        .collect()
}

/// `reporter_replica_lag_seconds` from `/metrics`.
async fn lag_gauge(app: &App) -> f64 {
    let (_, text) = get(app, "/metrics").await;
    let text = text.as_str().expect("text").to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("reporter_replica_lag_seconds "))
        .unwrap_or_else(|| panic!("no gauge in {text}"))
        .parse()
        .expect("a number")
}

/// Lag and readiness as `/health/ready` shows them.
async fn readiness(app: &App) -> (u16, Value) {
    get(app, "/health/ready").await
}

#[tokio::test]
async fn a_reporter_on_a_replica_reports_the_primarys_data_and_its_lag() {
    let started = Instant::now();
    let primary = Postgres::start();
    create_database(&primary, "events").await;
    // The production shape: a role that may only read (and, unlike a
    // superuser, sees no details in pg_stat_wal_receiver), created on the
    // primary like everything else.
    let admin = pool(&primary.url("events")).await;
    for sql in [
        "CREATE ROLE reporter_ro LOGIN",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO reporter_ro",
    ] {
        sqlx::query(sql).execute(&admin).await.expect(sql);
    }
    admin.close().await;
    let replica = Postgres::replica_of(&primary);
    let primary_url = primary.url("events");
    let replica_url = replica.url("events");
    let read_only_url = replica_url.replace("postgres@", "reporter_ro@");

    // Started before anything is migrated: it waits for the replica to
    // replay the migrations rather than failing or migrating anything.
    // (DATABASE_URL names the primary: REPORTER_DATABASE_URL wins.)
    let (p, r) = (primary_url.clone(), read_only_url.clone());
    let starting = tokio::spawn(async move {
        start(&[
            ("DATABASE_URL", p.as_str()),
            ("REPORTER_DATABASE_URL", r.as_str()),
            ("MIGRATION_TIMEOUT_MS", "20000"),
            ("REPORTER_MAX_REPLICA_LAG_MS", "1500"),
        ])
        .await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !starting.is_finished(),
        "started before the replica had the schema"
    );
    let writer = pool(&primary_url).await;
    events_common::db::migrate(&writer).await.expect("migrate");
    let on_replica = starting
        .await
        .expect("join")
        .expect("starts once the replica has replayed the migrations");
    let on_primary = start(&[("DATABASE_URL", primary_url.as_str())])
        .await
        .expect("reporter on the primary");

    crate::support::insert(&writer, &batch("a", 200)).await;
    let bodies = replica_catches_up(&on_replica, &on_primary).await;
    assert_eq!(bodies[0]["totalEvents"], 200, "{}", bodies[0]);
    assert_eq!(bodies[1]["transactions"], 100, "{}", bodies[1]);

    // Caught up and streaming: ready, lag 0.
    let (_, ready) = eventually("ready on the replica", Duration::from_secs(15), || async {
        match readiness(&on_replica).await {
            (200, body) if body["replica"]["lagSeconds"] == 0.0 => Ok((200, body)),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    assert_eq!(ready["checks"]["replica_lag"], true, "{ready}");
    assert_eq!(ready["checks"]["database"], true, "{ready}");
    assert_eq!(ready["replica"]["inRecovery"], true, "{ready}");
    assert_eq!(ready["replica"]["maxLagSeconds"], 1.5, "{ready}");
    let (_, ready) = eventually("ready on the primary", Duration::from_secs(15), || async {
        match readiness(&on_primary).await {
            (200, body) => Ok((200, body)),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    assert_eq!(ready["checks"]["replica_lag"], true, "{ready}");
    assert_eq!(ready["replica"]["inRecovery"], false, "{ready}");
    assert_eq!(ready["replica"]["lagSeconds"], 0.0, "{ready}");
    assert_eq!(lag_gauge(&on_replica).await, 0.0);

    // Replay stops: reports go stale, lag grows past the maximum, readiness
    // fails; replay resumes: fresh and ready again.
    let standby = pool(&replica_url).await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&standby)
        .await
        .expect("pause replay");
    crate::support::insert(&writer, &batch("b", 50)).await;
    let (_, lagging) = eventually(
        "not ready while lagging",
        Duration::from_secs(15),
        || async {
            match readiness(&on_replica).await {
                (503, body) => Ok((503, body)),
                (status, body) => Err(format!("{status} {body}")),
            }
        },
    )
    .await;
    assert_eq!(lagging["checks"]["replica_lag"], false, "{lagging}");
    assert_eq!(lagging["checks"]["database"], true, "{lagging}");
    assert!(
        lagging["replica"]["lagSeconds"]
            .as_f64()
            .is_some_and(|lag| lag > 1.5),
        "{lagging}"
    );
    let gauge = lag_gauge(&on_replica).await;
    assert!(gauge > 1.5, "{gauge}");
    let (_, stale) = get(&on_replica, PATHS[0]).await;
    assert_eq!(stale["totalEvents"], 200, "stale while paused: {stale}");
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&standby)
        .await
        .expect("resume replay");
    let bodies = replica_catches_up(&on_replica, &on_primary).await;
    assert_eq!(bodies[0]["totalEvents"], 250, "{}", bodies[0]);
    eventually("ready again", Duration::from_secs(15), || async {
        match readiness(&on_replica).await {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;

    // It never tried to write to the replica (migrations would have logged
    // "cannot execute ... in a read-only transaction" there).
    let log = replica.log();
    assert!(!log.contains("read-only transaction"), "{log}");

    on_replica.stop().await.expect("stop");
    on_primary.stop().await.expect("stop");
    standby.close().await;
    writer.close().await;
    eprintln!("replica test took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_replica_lacking_migrations_fails_startup_clearly() {
    let primary = Postgres::start();
    create_database(&primary, "events").await;
    // The primary has only the first migration (as if run by an older host).
    let dir = std::env::temp_dir().join(format!("reporter-mig-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let all = &events_common::db::MIGRATOR;
    let first = all.iter().next().expect("a migration");
    let latest = all.iter().last().expect("a migration").version;
    let name = format!(
        "{}_{}.sql",
        first.version,
        first.description.replace(' ', "_")
    );
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(&name),
        dir.join(&name),
    )
    .expect("copy the first migration");
    let writer = pool(&primary.url("events")).await;
    sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .expect("migrator")
        .run(&writer)
        .await
        .expect("first migration");
    std::fs::remove_dir_all(&dir).ok();
    let replica = Postgres::replica_of(&primary);

    let replica_url = replica.url("events");
    let t = Instant::now();
    let err = start(&[
        ("REPORTER_DATABASE_URL", replica_url.as_str()),
        ("MIGRATION_TIMEOUT_MS", "1000"),
    ])
    .await
    .err()
    .expect("must not start");
    let waited = t.elapsed();
    let msg = err.to_string();
    eprintln!("startup error: {msg}");
    assert!(matches!(err, StartupError::ReplicaBehind { .. }), "{msg}");
    for needle in [
        "the replica still lacks migration(s)",
        &latest.to_string(),
        "MIGRATION_TIMEOUT_MS",
        "never migrates a replica",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert!(
        !msg.contains(&first.version.to_string()),
        "lists only missing versions: {msg}"
    );
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(10)).contains(&waited),
        "{waited:?}"
    );
    // Nothing was migrated anywhere, and nothing attempted on the replica.
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&writer)
        .await
        .expect("count");
    assert_eq!(applied, 1);
    let log = replica.log();
    assert!(!log.contains("read-only transaction"), "{log}");
    writer.close().await;
}
