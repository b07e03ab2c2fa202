//! Test harness: a fresh database per test, the app on a random port, and
//! events inserted through the collectors' own statement.
pub mod model;
pub mod recount;

use chrono::{DateTime, Utc};
use events_common::db::events::{EventColumns, NewEvent};
use events_reporter::{config::Config, startup};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use std::{collections::HashMap, str::FromStr};

pub fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
        .trim_end_matches('/')
        .to_string()
}

/// A new, empty database named for the test; [`TestApp::cleanup`] drops it.
pub async fn create_database() -> String {
    let db_name = format!("reporter_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", base_url()))
        .await
        .expect("connect to the postgres database");
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    admin.close().await.ok();
    db_name
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A pool on the test's database, for inserting and checking.
    pub pool: PgPool,
    pub db_name: String,
    app: Option<startup::App>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the app with extra environment variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_in(create_database().await, extra).await
    }

    /// Starts the app on an existing database (from [`create_database`]),
    /// which its start-up migrates.
    pub async fn spawn_in(db_name: String, extra: &[(&str, &str)]) -> Self {
        let url = format!("{}/{db_name}", base_url());
        let mut env: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".to_string(), url.clone()),
            ("DB_MAX_CONNECTIONS".to_string(), "3".to_string()),
            ("LOG_LEVEL".to_string(), "warn".to_string()),
            ("SHUTDOWN_TIMEOUT_MS".to_string(), "5000".to_string()),
        ]);
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_source(&env).expect("config");
        events_common::telemetry::init(&config.common.log_level);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = startup::spawn(config, listener).await.expect("spawn app");
        // The writers' sessions use an odd time zone (+05:45): bucketing must
        // not depend on the session's TimeZone.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET TIME ZONE 'Asia/Kathmandu'")
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .connect(&url)
            .await
            .expect("test pool");
        Self {
            address: format!("http://{}", app.addr),
            client: reqwest::Client::new(),
            pool,
            db_name,
            app: Some(app),
        }
    }

    /// GET `path` (with query); status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(path, None).await
    }

    pub async fn get_with(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{path}", self.address));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// GET that must succeed.
    pub async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Inserts like the collectors do (the months' partitions first, then
    /// one statement claiming and inserting); returns how many rows were
    /// new.
    pub async fn insert(&self, events: &[Event]) -> u64 {
        insert(&self.pool, events).await
    }

    /// Stops the app and drops the database.
    pub async fn cleanup(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("clean stop");
        }
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", base_url())).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            ))
            .execute(&mut admin)
            .await;
            admin.close().await.ok();
        }
    }
}

/// One event as the collectors store it (the columns the reports read).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub source: String,
    pub funnel_stage: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub revenue: Option<Decimal>,
    pub campaign_id: Option<String>,
    pub age: Option<i32>,
    pub gender: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub followers: Option<i64>,
    pub device: Option<String>,
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
        .with_timezone(&Utc)
}

impl Event {
    pub fn new(id: &str, source: &str, stage: &str, event_type: &str, occurred_at: &str) -> Self {
        Self::at(id, source, stage, event_type, at(occurred_at))
    }

    pub fn at(id: &str, source: &str, stage: &str, event_type: &str, t: DateTime<Utc>) -> Self {
        Self {
            event_id: id.to_string(),
            source: source.to_string(),
            funnel_stage: stage.to_string(),
            event_type: event_type.to_string(),
            occurred_at: t,
            revenue: None,
            campaign_id: None,
            age: None,
            gender: None,
            country: None,
            city: None,
            followers: None,
            device: None,
        }
    }

    pub fn revenue(mut self, amount: &str) -> Self {
        self.revenue = Some(Decimal::from_str(amount).expect("decimal"));
        self
    }

    pub fn campaign(mut self, id: &str) -> Self {
        self.campaign_id = Some(id.to_string());
        self
    }

    /// Facebook-style user: age, gender, location.
    pub fn person(mut self, age: i32, gender: &str, country: &str, city: &str) -> Self {
        self.age = Some(age);
        self.gender = Some(gender.to_string());
        self.country = Some(country.to_string());
        self.city = Some(city.to_string());
        self
    }

    /// TikTok-style: followers, and optionally engagement country and device.
    pub fn audience(mut self, followers: i64, country: Option<&str>, device: Option<&str>) -> Self {
        self.followers = Some(followers);
        self.country = country.map(str::to_string);
        self.device = device.map(str::to_string);
        self
    }
}

/// Makes sure the months of `times` have their partitions of `events`, as
/// the collectors do before a batch (in a transaction of its own).
pub async fn ensure_partitions(pool: &PgPool, times: &[DateTime<Utc>]) {
    sqlx::query("SELECT events_ensure_partitions($1)")
        .bind(times)
        .execute(pool)
        .await
        .expect("ensure partitions");
}

/// The collectors' statement ([`events_common::db::events`]): claims the
/// keys in `event_claims` and inserts the rows whose claim is new; the first
/// row of a key wins.
pub async fn insert(pool: &PgPool, events: &[Event]) -> u64 {
    ensure_partitions(
        pool,
        &events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(),
    )
    .await;
    let texts = events.iter().map(EventTexts::of).collect::<Vec<_>>();
    let rows = rows(events, &texts);
    events_common::db::events::insert_events(pool, &rows)
        .await
        .expect("insert events")
}

/// How the collectors inserted before `events` was partitioned (the unique
/// key was on `events` itself), for databases at that version.
pub async fn insert_before_partitioning(pool: &PgPool, events: &[Event]) -> u64 {
    let texts = events.iter().map(EventTexts::of).collect::<Vec<_>>();
    let rows = rows(events, &texts);
    EventColumns::new(&rows)
        .bind(sqlx::query(PRE_PARTITIONING_INSERT))
        .execute(pool)
        .await
        .expect("insert events")
        .rows_affected()
}

/// The parameters are [`EventColumns`]' (`plugin_digest`, `wit_version` and
/// `correlation_id`, `$18..$20`, are left out as the collectors then did).
const PRE_PARTITIONING_INSERT: &str =
    "INSERT INTO events (event_id, source, funnel_stage, event_type, occurred_at, user_id, \
     revenue, campaign_id, age, gender, country, city, followers, device, raw, plugin_name, \
     plugin_version) \
     SELECT event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue::numeric, \
     campaign_id, age, gender, country, city, followers, device, raw::json, plugin_name, \
     plugin_version \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], \
     $6::text[], $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[], $12::text[], \
     $13::int8[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], \
     $19::text[], $20::text[]) \
     AS t(event_id, source, funnel_stage, event_type, occurred_at, user_id, revenue, \
     campaign_id, age, gender, country, city, followers, device, raw, plugin_name, \
     plugin_version, plugin_digest, wit_version, correlation_id) \
     ON CONFLICT (source, event_id) DO NOTHING";

/// What a test event stores beyond its own fields, derived from it.
struct EventTexts {
    user_id: String,
    revenue: Option<String>,
    raw: String,
    plugin_name: String,
}

impl EventTexts {
    fn of(e: &Event) -> Self {
        Self {
            user_id: format!("user-{}", e.event_id),
            revenue: e.revenue.map(|r| r.to_string()),
            raw: serde_json::json!({ "eventId": e.event_id, "source": e.source }).to_string(),
            plugin_name: format!("{}-plugin", e.source),
        }
    }
}

fn rows<'a>(events: &'a [Event], texts: &'a [EventTexts]) -> Vec<NewEvent<'a>> {
    events
        .iter()
        .zip(texts)
        .map(|(e, t)| NewEvent {
            event_id: &e.event_id,
            source: &e.source,
            funnel_stage: e.funnel_stage.parse().expect("funnel stage"),
            event_type: &e.event_type,
            occurred_at: e.occurred_at,
            user_id: &t.user_id,
            revenue: t.revenue.as_deref(),
            campaign_id: e.campaign_id.as_deref(),
            age: e.age,
            gender: e.gender.as_deref(),
            country: e.country.as_deref(),
            city: e.city.as_deref(),
            followers: e.followers,
            device: e.device.as_deref(),
            raw: &t.raw,
            plugin_name: &t.plugin_name,
            plugin_version: "1.0.0",
            plugin_digest: None,
            wit_version: None,
            correlation_id: None,
        })
        .collect()
}

/// What the database keeps of `batches` inserted in order: the first event
/// of each id.
pub fn stored(batches: &[&[Event]]) -> Vec<Event> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for batch in batches {
        for e in *batch {
            if seen.insert(e.event_id.clone()) {
                out.push(e.clone());
            }
        }
    }
    out
}
