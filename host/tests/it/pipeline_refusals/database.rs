//! Refusals by the database: disk full acks nothing until it clears, a
//! refused row becomes a dead letter, values PostgreSQL cannot hold are
//! refused or sanitized, a huge refused element costs its siblings nothing.

use super::{batch, post_ok};
use crate::support::pipeline::{wait_until, Bad, Host, Ledger, Pipeline};
use events_publisher::{Generator, GeneratorConfig};
use serde_json::{json, Value};
use std::time::Duration;

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
