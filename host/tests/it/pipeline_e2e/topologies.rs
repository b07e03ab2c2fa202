//! The exact ledger, the answers and the counters with every role in one
//! host, and with a gateway and one collector per source.

use super::{assert_metrics, gen_config, sum};
use crate::support::pipeline::{post, spawn_load, Bad, Host, Ledger, LoadSpec, Pipeline};
use events_publisher::{CorruptionKind, Generator, GeneratorConfig};
use serde_json::{json, Value};
use std::time::Duration;

/// One POST with every corruption kind plus envelope failures the generator
/// does not make; returns the POST's expected answer.
async fn send_every_corruption(p: &Pipeline, gw: &Host, ledger: &mut Ledger) {
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(99),
        ..Default::default()
    });
    let mut events: Vec<Value> = Vec::new();
    for kind in CorruptionKind::ALL {
        let ev = g.corrupted_event(kind);
        ledger.corrupted.push(Bad::of(&ev, kind));
        events.push(ev);
    }
    let alien = json!({"eventId": "myspace-1", "source": "myspace", "funnelStage": "top"});
    ledger.corrupted.push(Bad {
        raw: alien.to_string(),
        stage: "gateway",
        field: "source".into(),
    });
    ledger.corrupted.push(Bad {
        raw: "42".into(),
        stage: "gateway",
        field: "$".into(),
    });
    events.push(alien);
    events.push(json!(42));
    let (status, reply) = post(
        &p.http,
        &gw.url("/webhook"),
        serde_json::to_vec(&events).unwrap(),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (
            reply["accepted"].as_u64(),
            reply["rejected"].as_u64(),
            reply["duplicates"].as_u64()
        ),
        (Some(12), Some(3), Some(0)),
        "{reply}"
    );
    let errors = reply["errors"].as_array().unwrap();
    let missing_id = CorruptionKind::ALL
        .iter()
        .position(|k| *k == CorruptionKind::MissingEventId)
        .unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [missing_id as u64, 13, 14], "{reply}");
    assert!(
        errors[0]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("eventId"),
        "{reply}"
    );
    assert!(
        errors[1]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("source"),
        "{reply}"
    );
    ledger.sent += events.len();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_exact_ledger_answers_and_metrics() {
    let p = Pipeline::shared("e2e_all").await;
    let host = p.start("all", "all", &[]).await;
    // One POST at a time, so each answer is exactly predictable (a re-send
    // in a concurrent POST could be the one JetStream stores).
    let spec = LoadSpec {
        batches: 24,
        batch_size: 500,
        concurrency: 1,
        pause: Duration::ZERO,
        gen: gen_config(1),
        targets: vec![host.url("/webhook")],
    };
    let load = spawn_load(p.http.clone(), spec).await.unwrap();
    for post in &load.posts {
        assert_eq!(post.status, Some(200), "{:?}", post.reply);
        let got = ["accepted", "rejected", "duplicates"]
            .map(|k| post.reply[k].as_u64().unwrap() as usize);
        assert_eq!((got[0], got[1], got[2]), post.expected, "{}", post.reply);
    }
    let totals = load.totals();
    let mut ledger = load.ledger;
    assert!(
        ledger.duplicates > 0 && ledger.corrupted.len() > 5,
        "the load must carry duplicates and corruptions"
    );
    send_every_corruption(&p, &host, &mut ledger).await;

    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
    let (a, r, d) = totals;
    assert_metrics(
        &p,
        &[&host],
        &[&host],
        ledger.sent as f64,
        (a + 12.0, r + 3.0, d),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_one_collector_per_source_exact_ledger() {
    let p = Pipeline::shared("e2e_roles").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let fb = p
        .start(
            "collector-facebook",
            "collector",
            &[("COLLECTOR_TYPE", "facebook")],
        )
        .await;
    let tt = p
        .start(
            "collector-tiktok",
            "collector",
            &[("COLLECTOR_TYPE", "tiktok")],
        )
        .await;
    let spec = LoadSpec {
        batches: 20,
        batch_size: 600,
        concurrency: 2,
        pause: Duration::ZERO,
        gen: gen_config(2),
        targets: vec![gw.url("/webhook")],
    };
    let load = spawn_load(p.http.clone(), spec).await.unwrap();
    assert_eq!(load.ok_posts(), 20);
    let totals = load.totals();
    let mut ledger = load.ledger;
    send_every_corruption(&p, &gw, &mut ledger).await;

    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
    let (a, r, d) = totals;
    assert_eq!(d, 0.0, "no body was sent twice: JetStream dropped nothing");
    // Every re-sent event was accepted, and dropped by the database instead.
    let start = std::time::Instant::now();
    loop {
        let db_dups = sum(&[&fb, &tt], "collector_events_db_duplicates_total", &[]).await;
        if db_dups as usize == ledger.duplicates {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "database duplicates {db_dups} != re-sent events {}",
            ledger.duplicates
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_metrics(
        &p,
        &[&gw],
        &[&fb, &tt],
        ledger.sent as f64,
        (a + 12.0, r + 3.0, d),
    )
    .await;
    // Each collector only handled its own source.
    for (h, other) in [(&fb, "tiktok"), (&tt, "facebook")] {
        assert_eq!(
            h.metrics()
                .await
                .sum("collector_events_accepted_total", &[("collector", other)]),
            0.0
        );
    }
}
