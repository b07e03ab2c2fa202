//! Harness for pipeline tests against real PostgreSQL and NATS: a database and
//! stream names per test, hosts in-process or as subprocesses (killed on
//! drop), HTTP and metrics helpers, a background load generator and the
//! exact ledger.
mod held;
mod host;
mod in_process;
mod ledger;
mod load;
mod process;

pub use super::services::free_port;
pub use held::{held_post, raw_response};
pub use host::Host;
pub use ledger::{assert_exact_answer, expected_counts, Bad, Ledger};
pub use load::{spawn_load, LoadResult, LoadSpec};
use serde_json::Value;
use sqlx::{Connection, Executor, PgPool};
use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use tempfile::TempDir;

pub const SHARED_PG: &str = "postgres://postgres@127.0.0.1:5432";
pub const SHARED_NATS: &str = "nats://127.0.0.1:4222";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The built production plugins (`$EVENTS_PLUGINS_DIST/plugins`, else `dist/plugins`).
pub fn plugins_dir() -> PathBuf {
    match std::env::var_os("EVENTS_PLUGINS_DIST") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("plugins"),
        _ => repo().join("dist/plugins"),
    }
}

/// Runs `f` on a fresh runtime in its own thread (for async cleanup in `Drop`).
fn block_in_thread<F: Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), f).await.ok() });
    })
    .join();
}

/// Polls `check` every 100 ms; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database of its own, dropped (with force) on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin: String,
}

impl TestDb {
    pub async fn create(base_url: &str, label: &str) -> Self {
        let name = format!(
            "{label}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = format!("{base_url}/postgres");
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the admin database");
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let url = format!("{base_url}/{name}");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&url)
            .expect("pool");
        Self {
            name,
            url,
            pool,
            admin,
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        block_in_thread(async move {
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = c
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
            }
        });
    }
}

/// The servers of a `NATS_URL` (a comma-separated list for a cluster).
pub fn servers(nats_url: &str) -> Vec<&str> {
    nats_url.split(',').map(str::trim).collect()
}

/// JetStream names of one test, deleted on drop.
pub struct Streams {
    pub stream: String,
    pub dlq: String,
    pub prefix: String,
    pub nats_url: String,
}

impl Streams {
    pub fn new(nats_url: &str, label: &str) -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        Self {
            stream: format!("T_{label}_{id}"),
            dlq: format!("T_{label}_{id}_DLQ"),
            prefix: format!("t_{label}_{id}"),
            nats_url: nats_url.to_string(),
        }
    }

    pub async fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(
            async_nats::connect(servers(&self.nats_url))
                .await
                .expect("connect to NATS"),
        )
    }

    /// Messages left in both streams (work queues: 0 means all acked).
    pub async fn backlog(&self) -> Option<u64> {
        let js = self.js().await;
        let mut total = 0;
        for name in [&self.stream, &self.dlq] {
            total += js
                .get_stream(name)
                .await
                .ok()?
                .info()
                .await
                .ok()?
                .state
                .messages;
        }
        Some(total)
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        let (url, names) = (
            self.nats_url.clone(),
            [self.stream.clone(), self.dlq.clone()],
        );
        block_in_thread(async move {
            if let Ok(c) = async_nats::connect(servers(&url)).await {
                let js = async_nats::jetstream::new(c);
                for n in names {
                    let _ = js.delete_stream(&n).await;
                }
            }
        });
    }
}

/// A Prometheus text exposition.
pub struct Metrics(pub String);

impl Metrics {
    /// Sum of `name` over the series whose labels contain every `k="v"`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(series, _)| series == &name || series.starts_with(&format!("{name}{{")))
            .filter(|(series, _)| {
                labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .sum()
    }
}

/// One test's database, streams, log dir and common host environment.
pub struct Pipeline {
    pub db: TestDb,
    pub streams: Streams,
    pub http: reqwest::Client,
    pub logdir: TempDir,
    pub env: BTreeMap<String, String>,
}

impl Pipeline {
    pub async fn shared(label: &str) -> Self {
        Self::new(label, SHARED_PG, SHARED_NATS).await
    }

    pub async fn new(label: &str, pg_base: &str, nats_url: &str) -> Self {
        let db = TestDb::create(pg_base, label).await;
        let streams = Streams::new(nats_url, label);
        let cache = std::env::temp_dir().join("events-host-test-plugin-cache");
        let env: BTreeMap<String, String> = [
            ("DATABASE_URL", db.url.clone()),
            ("NATS_URL", nats_url.to_string()),
            ("PLUGINS_DIR", plugins_dir().display().to_string()),
            ("PLUGINS_CACHE_DIR", cache.display().to_string()),
            ("JETSTREAM_STREAM", streams.stream.clone()),
            ("JETSTREAM_DLQ_STREAM", streams.dlq.clone()),
            ("JETSTREAM_SUBJECT_PREFIX", streams.prefix.clone()),
            // Streams reserve max_bytes on the shared server: keep it small.
            ("JETSTREAM_MAX_BYTES", (256 << 20).to_string()),
            ("SHUTDOWN_TIMEOUT_MS", "20000".into()),
            // No pre-stop delay unless a test is about it: stops stay quick.
            ("SHUTDOWN_PRE_STOP_MS", "0".into()),
            ("COLLECTOR_BATCH_SIZE", "500".into()),
            ("COLLECTOR_FETCH_WAIT_MS", "100".into()),
            ("LOG_LEVEL", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Self {
            db,
            streams,
            http,
            logdir: tempfile::tempdir().expect("tempdir"),
            env,
        }
    }

    /// Starts `events-host <role>` in-process and waits until ready.
    pub async fn start(&self, label: &str, role: &str, extra: &[(&str, &str)]) -> Host {
        let mut h = self.spawn(label, role, extra);
        h.ready(Duration::from_secs(60)).await;
        h
    }

    /// Starts `events-host <role>` in-process, not waiting until ready.
    pub fn spawn(&self, label: &str, role: &str, extra: &[(&str, &str)]) -> Host {
        Host::in_process(label, role, self.env_with(extra), self.logdir.path())
    }

    /// Starts `events-host <role>` as a subprocess (for the tests about a
    /// process: signals, SIGKILL, its memory) and waits until ready.
    pub async fn start_process(&self, label: &str, role: &str, extra: &[(&str, &str)]) -> Host {
        let env = self.env_with(extra);
        let mut h = Host::subprocess(label, role, env, self.logdir.path()).await;
        h.ready(Duration::from_secs(60)).await;
        h
    }

    /// The common environment with `extra` on top.
    pub fn env_with(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// Waits until both streams are drained and the tables hold at least
    /// what `ledger` says is certain.
    pub async fn settle(&self, ledger: &Ledger, timeout: Duration) {
        let (events, dead) = (ledger.valid.len() as i64, ledger.corrupted.len() as i64);
        wait_until("the pipeline to drain", timeout, || async {
            self.streams.backlog().await == Some(0)
                && self.db.count("events").await >= events
                && self.db.count("dead_letters").await >= dead
        })
        .await;
    }
}

/// POSTs `body` to `url`; `(status, JSON body)` (`Null` if not JSON).
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> reqwest::Result<(u16, Value)> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let bytes = r.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
