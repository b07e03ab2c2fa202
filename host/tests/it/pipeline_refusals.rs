//! Zero loss when the database refuses: a refusal of the database's state
//! (disk full) acks nothing until it clears; a refusal of one row's data
//! turns that row into a dead letter; values PostgreSQL cannot hold (NUL,
//! oversized ids) are refused with a reason or stored sanitized, never lost;
//! a huge refused element never costs its request a 503. Also the operator's
//! `events-host jetstream setup|info|delete`, which refuses to delete without
//! `--yes`.

use crate::support::pipeline::{
    post, wait_until, Bad, Host, Ledger, Pipeline, Streams, SHARED_NATS,
};
use async_nats::jetstream::{
    consumer,
    stream::{DiscardPolicy, RetentionPolicy},
};
use events_common::config::Vars;
use events_host::{
    config::{HostConfig, NatsConfig, Role},
    jetstream_admin::{self, render_info, JetstreamCommand, SetupChange, StreamReport},
};
use events_publisher::{Generator, GeneratorConfig};
use serde_json::{json, Value};
use std::{collections::HashMap, time::Duration};

fn batch(seed: u64, n: usize) -> events_publisher::Batch {
    Generator::new(GeneratorConfig {
        seed: Some(seed),
        corrupt_post_rate: 1.0,
        ..Default::default()
    })
    .next_batch(n)
}

async fn post_ok(p: &Pipeline, h: &Host, body: Vec<u8>) -> Value {
    let (status, reply) = post(&p.http, &h.url("/webhook"), body, &[]).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    reply
}

async fn ready(p: &Pipeline, h: &Host) -> Value {
    p.http
        .get(h.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn exec(p: &Pipeline, sql: &str) {
    sqlx::raw_sql(sql).execute(&p.db.pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_both_tables_acks_nothing_and_loses_nothing() {
    let p = Pipeline::shared("refuse_disk").await;
    let host = p.start("all", "all", &[]).await;
    exec(
        &p,
        "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'simulated disk full' USING ERRCODE = '53100'; END $$;
         CREATE TRIGGER full_events BEFORE INSERT ON events
           FOR EACH STATEMENT EXECUTE FUNCTION disk_full();
         CREATE TRIGGER full_dead BEFORE INSERT ON dead_letters
           FOR EACH STATEMENT EXECUTE FUNCTION disk_full();",
    )
    .await;
    let b = batch(41, 50);
    assert!(!b.corruptions.is_empty(), "dead letters are refused too");
    post_ok(&p, &host, b.body()).await;

    wait_until(
        "the collector to retry",
        Duration::from_secs(60),
        || async { host.metrics().await.sum("collector_db_retries_total", &[]) >= 3.0 },
    )
    .await;
    let r = ready(&p, &host).await;
    assert_eq!(r["checks"]["database_writes"], false, "{r}");
    assert_eq!(
        p.db.count("events").await + p.db.count("dead_letters").await,
        0
    );
    assert!(
        p.streams.backlog().await.unwrap_or(0) > 0,
        "nothing acked while the database refuses"
    );

    exec(
        &p,
        "DROP TRIGGER full_events ON events; DROP TRIGGER full_dead ON dead_letters;",
    )
    .await;
    let mut ledger = Ledger::default();
    ledger.record(&[(b, true)]);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
    wait_until("ready again", Duration::from_secs(30), || async {
        ready(&p, &host).await["ready"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_database_refuses_becomes_a_dead_letter() {
    let p = Pipeline::shared("refuse_row").await;
    let host = p.start("all", "all", &[]).await;
    let b = Generator::new(GeneratorConfig {
        seed: Some(42),
        corrupt_post_rate: 0.0,
        ..Default::default()
    })
    .next_batch(40);
    let poison = b.events[7]["eventId"].as_str().unwrap().to_string();
    exec(
        &p,
        &format!(
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN IF NEW.event_id = '{poison}' THEN
                    RAISE EXCEPTION 'value out of range' USING ERRCODE = '22003';
                  END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_one BEFORE INSERT ON events
               FOR EACH ROW EXECUTE FUNCTION refuse_one();"
        ),
    )
    .await;
    post_ok(&p, &host, b.body()).await;
    let mut ledger = Ledger::default();
    let poisoned = b.events[7].clone();
    ledger.record(&[(b, true)]);
    ledger.valid.remove(&poison);
    ledger.corrupted.push(Bad {
        raw: poisoned.to_string(),
        stage: "delivery",
        field: "$".into(),
    });
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
    let m = host.metrics().await;
    assert_eq!(
        m.sum("collector_events_failed_total", &[("stage", "delivery")]),
        1.0,
        "a refused row counts as failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_postgres_cannot_hold_are_refused_or_sanitized_never_lost() {
    let p = Pipeline::shared("refuse_values").await;
    let host = p.start("all", "all", &[]).await;
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(43),
        ..Default::default()
    });
    let fb = |g: &mut Generator| {
        g.event(
            events_publisher::Source::Facebook,
            events_publisher::FunnelStage::Top,
            "ad.view",
        )
        .unwrap()
    };
    let mut nul_id = fb(&mut g);
    nul_id["eventId"] = json!("fb-nul-\u{0}-1");
    let mut long_id = fb(&mut g);
    long_id["eventId"] = json!(format!("fb-{}", "x".repeat(8000)));
    // A plugin's reason quoting a NUL (jsonb cannot hold it): sanitized.
    let mut nul_gender = fb(&mut g);
    nul_gender["data"]["user"]["gender"] = json!("\u{0}");
    let valid = fb(&mut g);
    let events = [
        nul_id.clone(),
        long_id.clone(),
        nul_gender.clone(),
        valid.clone(),
    ];
    let reply = post_ok(&p, &host, serde_json::to_vec(&events).unwrap()).await;
    assert_eq!(
        (reply["accepted"].as_u64(), reply["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{reply}"
    );
    let fields: Vec<&str> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reasons"][0].as_str().unwrap())
        .collect();
    assert!(
        fields.iter().all(|f| f.starts_with("eventId:")),
        "{fields:?}"
    );

    let mut ledger = Ledger::default();
    ledger
        .valid
        .insert(valid["eventId"].as_str().unwrap().into(), valid);
    for (ev, stage, field) in [
        (&nul_id, "gateway", "eventId"),
        (&long_id, "gateway", "eventId"),
        (&nul_gender, "plugin", "data.user.gender"),
    ] {
        ledger.corrupted.push(Bad {
            raw: ev.to_string(),
            stage,
            field: field.into(),
        });
    }
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_refused_element_costs_its_siblings_nothing() {
    let p = Pipeline::shared("refuse_huge").await;
    let host = p.start("all", "all", &[]).await;
    let b = batch(44, 3);
    let valid: Vec<&Value> = (0..b.len())
        .filter(|i| !b.corruptions.iter().any(|c| c.index == *i))
        .map(|i| &b.events[i])
        .collect();
    // 700 KB of envelope failure: an unknown source and a huge id.
    let huge = json!({"eventId": "y".repeat(350_000), "source": "z".repeat(350_000)});
    let mut events: Vec<Value> = valid.iter().map(|v| (*v).clone()).collect();
    events.push(huge);
    let reply = post_ok(&p, &host, serde_json::to_vec(&events).unwrap()).await;
    assert_eq!(reply["rejected"], 1, "{reply}");
    assert_eq!(reply["accepted"].as_u64(), Some(valid.len() as u64));
    wait_until("stored", Duration::from_secs(60), || async {
        p.db.count("events").await == valid.len() as i64 && p.db.count("dead_letters").await == 1
    })
    .await;
    let (raw_len, reasons): (i32, Value) =
        sqlx::query_as("SELECT length(raw), reasons FROM dead_letters")
            .fetch_one(&p.db.pool)
            .await
            .map(|(l, r): (i32, sqlx::types::Json<Value>)| (l, r.0))
            .unwrap();
    assert!(
        raw_len > 100_000 && raw_len < 700_000,
        "kept, cut: {raw_len}"
    );
    assert!(reasons.to_string().contains("raw cut"), "{reasons}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_events_never_expire_and_their_age_and_size_are_shown() {
    let p = Pipeline::shared("refuse_age").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let js = p.streams.js().await;
    let mut stream = js.get_stream(&p.streams.stream).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.max_age,
        Duration::ZERO,
        "no age limit by default"
    );

    // No collector yet: the backlog waits, and its age is visible.
    let b = batch(45, 200);
    post_ok(&p, &gw, b.body()).await;
    let gauge = |h: &Host, name: &'static str| {
        let url = h.url("/metrics");
        let http = p.http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            crate::support::pipeline::Metrics(text).sum(name, &[])
        }
    };
    let age = |h: &Host| gauge(h, "jetstream_oldest_unprocessed_age_seconds");
    let fill = |h: &Host| gauge(h, "jetstream_stream_fill_ratio");
    wait_until(
        "the backlog's age to show",
        Duration::from_secs(60),
        || async { age(&gw).await >= 2.0 },
    )
    .await;
    // How full the stream is: the backlog's bytes over max_bytes.
    let held = stream.info().await.unwrap().state.bytes as f64;
    let ratio = fill(&gw).await;
    let expected = held / (256u64 << 20) as f64;
    assert!(
        ratio > 0.0 && (ratio - expected).abs() < expected * 0.01,
        "fill {ratio} for {held} bytes of 256 MiB"
    );

    let _collector = p.start("collector", "collector", &[]).await;
    let mut ledger = Ledger::default();
    ledger.record(&[(b, true)]);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
    wait_until("the age to drop to 0", Duration::from_secs(30), || async {
        age(&gw).await == 0.0 && fill(&gw).await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_may_use_the_same_event_id() {
    let p = Pipeline::shared("refuse_shared_id").await;
    let host = p.start("all", "all", &[]).await;
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(46),
        ..Default::default()
    });
    let mut fb = g
        .event(
            events_publisher::Source::Facebook,
            events_publisher::FunnelStage::Top,
            "ad.view",
        )
        .unwrap();
    let mut tt = g
        .event(
            events_publisher::Source::Tiktok,
            events_publisher::FunnelStage::Top,
            "video.view",
        )
        .unwrap();
    fb["eventId"] = json!("shared-1");
    tt["eventId"] = json!("shared-1");
    let reply = post_ok(&p, &host, serde_json::to_vec(&[&fb, &tt]).unwrap()).await;
    assert_eq!(reply["accepted"], 2, "{reply}");
    // The same event again is still a duplicate within its source.
    post_ok(&p, &host, serde_json::to_vec(&[&fb]).unwrap()).await;
    wait_until("both stored", Duration::from_secs(60), || async {
        p.db.count("events").await == 2 && p.streams.backlog().await == Some(0)
    })
    .await;
    let sources: Vec<(String,)> =
        sqlx::query_as("SELECT source FROM events WHERE event_id = 'shared-1' ORDER BY source")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    assert_eq!(
        sources,
        [("facebook".to_string(),), ("tiktok".to_string(),)]
    );
    assert_eq!(p.db.count("dead_letters").await, 0);
}

/// Two batches holding the same events in opposite orders (a re-sent event,
/// a redelivery) must not deadlock. Deterministic: batch B inserts `y` and
/// then waits on `x`, which A holds uncommitted; A then inserts `y`. In
/// arrival order that is a cycle PostgreSQL breaks with "deadlock detected";
/// in key order B waits on `x` before taking `y`, and both commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_the_same_events_in_opposite_orders_do_not_deadlock() {
    use events_host::{
        db::{insert_events, EventRow},
        plugins::{FunnelStage, Identity, NormalizedEvent},
    };
    let p = Pipeline::shared("insert_order").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let event = |id: &str| NormalizedEvent {
        event_id: id.into(),
        source: "facebook".into(),
        occurred_at: chrono::Utc::now(),
        funnel_stage: FunnelStage::Top,
        event_type: "ad.view".into(),
        user_id: "u".into(),
        revenue: None,
        campaign_id: None,
        age: None,
        gender: None,
        country: None,
        city: None,
        followers: None,
        device: None,
    };
    let (x, y) = (event("x"), event("y"));
    events_host::db::ensure_partitions(&p.db.pool, [x.occurred_at, y.occurred_at])
        .await
        .unwrap();
    let plugin = Identity {
        name: "facebook".into(),
        version: "1.0.0".into(),
        source: "facebook".into(),
    };
    let row = |e| EventRow {
        event: e,
        raw: "{}",
        plugin: &plugin,
        correlation_id: None,
    };
    let mut a = p.db.pool.begin().await.unwrap();
    assert_eq!(insert_events(&mut a, &[row(&x)]).await.unwrap(), 1);
    let pool = p.db.pool.clone();
    let (x2, y2) = (x.clone(), y.clone());
    let plugin2 = plugin.clone();
    let b = tokio::spawn(async move {
        let mut b = pool.begin().await?;
        let rows = [&y2, &x2].map(|e| EventRow {
            event: e,
            raw: "{}",
            plugin: &plugin2,
            correlation_id: None,
        });
        let n = insert_events(&mut b, &rows).await?;
        b.commit().await?;
        Ok::<u64, sqlx::Error>(n)
    });
    wait_until(
        "batch B waits on a lock",
        Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&p.db.pool)
            .await
            .is_ok_and(|n| n == 1)
        },
    )
    .await;
    let a_second = insert_events(&mut a, &[row(&y)]).await;
    let a_done = match a_second {
        Ok(n) => a.commit().await.map(|()| n),
        Err(e) => Err(e),
    };
    let b_done = b.await.unwrap();
    assert!(
        a_done.is_ok() && b_done.is_ok(),
        "A: {a_done:?}, B: {b_done:?}"
    );
    // A stored x and y; B found both stored (it waited on x, then on y).
    assert_eq!(a_done.unwrap(), 1);
    assert_eq!(b_done.unwrap(), 0);
    assert_eq!(p.db.count("events").await, 2);
}

// --- `events-host jetstream setup|info|delete` --------------------------------
// Against the shared NATS with stream names and a subject prefix of their own.

fn admin_vars(s: &Streams, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("NATS_URL", s.nats_url.as_str()),
        ("JETSTREAM_STREAM", &s.stream),
        ("JETSTREAM_DLQ_STREAM", &s.dlq),
        ("JETSTREAM_SUBJECT_PREFIX", &s.prefix),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    vars
}

fn admin_config(vars: &HashMap<String, String>) -> NatsConfig {
    HostConfig::from_vars(Role::Gateway, &Vars::new(vars))
        .expect("valid configuration")
        .nats
}

fn changes(done: &[(StreamReport, SetupChange)]) -> Vec<SetupChange> {
    done.iter().map(|(_, c)| *c).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_setup_creates_updates_reports_and_deletes_the_streams() {
    let s = Streams::new(SHARED_NATS, "admin_lib");
    let cfg = admin_config(&admin_vars(&s, &[("JETSTREAM_MAX_BYTES", "3000000")]));
    let js = jetstream_admin::connect(&cfg).await.unwrap();
    let before = jetstream_admin::info(&js, &cfg).await.unwrap();
    assert!(before.iter().all(|r| !r.exists), "{before:?}");
    assert!(render_info(&before).contains(&format!("stream {} (events): not created", s.stream)));

    // setup: both streams, with the gateway's settings.
    let done = jetstream_admin::setup(&js, &cfg).await.unwrap();
    assert_eq!(changes(&done), [SetupChange::Created; 2]);
    let raw = s.js().await;
    for (name, subject) in [
        (&s.stream, &s.prefix),
        (&s.dlq, &format!("{}_dlq", s.prefix)),
    ] {
        let mut stream = raw.get_stream(name).await.unwrap();
        let c = stream.info().await.unwrap().config.clone();
        assert_eq!(c.subjects, [format!("{subject}.>")]);
        assert_eq!(c.max_bytes, 3_000_000);
        assert_eq!(c.duplicate_window, Duration::from_secs(120));
        assert_eq!(c.retention, RetentionPolicy::WorkQueue);
        assert_eq!(c.discard, DiscardPolicy::New);
    }

    // Idempotent; a changed setting is applied.
    let again = jetstream_admin::setup(&js, &cfg).await.unwrap();
    assert_eq!(changes(&again), [SetupChange::Unchanged; 2]);
    let bigger = admin_config(&admin_vars(&s, &[("JETSTREAM_MAX_BYTES", "4000000")]));
    let updated = jetstream_admin::setup(&js, &bigger).await.unwrap();
    assert_eq!(changes(&updated), [SetupChange::Updated; 2]);

    // info: messages, limits and consumers.
    raw.publish(format!("{}.facebook.batch", s.prefix), "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    raw.get_stream(&s.stream)
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("collector-facebook".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let reports = jetstream_admin::info(&js, &bigger).await.unwrap();
    let events = reports[0].state.as_ref().expect("events stream reported");
    assert_eq!((events.messages, events.max_bytes), (1, 4_000_000));
    assert!(events.fill_percent.is_some_and(|p| p > 0.0), "{events:?}");
    assert_eq!(events.consumers.len(), 1);
    assert_eq!(events.consumers[0].name, "collector-facebook");
    assert_eq!(events.consumers[0].pending, 1);
    assert!(reports[1].state.as_ref().is_some_and(|d| d.messages == 0));
    let text = render_info(&reports);
    for line in ["max bytes         4000000", "collector-facebook  pending 1"] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }

    // delete: refused without --yes, then both streams go; missing is fine.
    let refused = jetstream_admin::execute_on(&js, &cfg, &JetstreamCommand::Delete { yes: false })
        .await
        .unwrap();
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused
        .stdout
        .contains(&format!("would delete stream {}", s.stream)));
    assert!(jetstream_admin::info(&js, &cfg)
        .await
        .unwrap()
        .iter()
        .all(|r| r.exists));
    let deleted = jetstream_admin::delete(&js, &cfg).await.unwrap();
    assert_eq!(deleted, [(s.stream.clone(), true), (s.dlq.clone(), true)]);
    assert!(jetstream_admin::info(&js, &cfg)
        .await
        .unwrap()
        .iter()
        .all(|r| !r.exists));
    let none = jetstream_admin::delete(&js, &cfg).await.unwrap();
    assert!(none.iter().all(|(_, existed)| !existed), "{none:?}");
}

/// Runs `events-host jetstream <args>` with only `vars` in its environment.
fn jetstream_cli(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_events-host"))
        .arg("jetstream")
        .args(args)
        .env_clear()
        .envs(vars)
        .output()
        .expect("run events-host");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_cli_exit_codes() {
    let s = Streams::new(SHARED_NATS, "admin_cli");
    let vars = admin_vars(&s, &[]);
    let (code, out, _) = jetstream_cli(&vars, &["info", "--json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(json["streams"][0]["name"], s.stream.as_str());
    assert_eq!(json["streams"][0]["exists"], false);

    let (code, out, err) = jetstream_cli(&vars, &["setup"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("stream {} (events): created", s.stream)),
        "{out}"
    );
    let (code, out, err) = jetstream_cli(&vars, &["delete"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(s.backlog().await.is_some(), "both streams are still there");
    let (code, out, _) = jetstream_cli(&vars, &["delete", "--yes"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("stream {}: deleted", s.dlq)), "{out}");
    assert!(s.backlog().await.is_none(), "the streams are gone");

    // Errors: one line; 2 for the configuration, 1 at run time.
    let bad = admin_vars(&s, &[("JETSTREAM_MAX_BYTES", "5")]);
    let (code, _, err) = jetstream_cli(&bad, &["info"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    assert!(err.contains("JETSTREAM_MAX_BYTES"), "{err}");
    let down = format!("nats://127.0.0.1:{}", crate::support::pipeline::free_port());
    let (code, _, err) = jetstream_cli(&admin_vars(&s, &[("NATS_URL", &down)]), &["setup"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("cannot connect to NATS"), "{err}");
}
