//! End to end with the real services: generated batches (duplicates,
//! corruptions, shuffled timestamps) through the gateway and collectors into
//! PostgreSQL, checked against the exact ledger field by field, the gateway's
//! answers and the Prometheus counters.

use crate::support::pipeline::{post, spawn_load, Bad, Host, Ledger, LoadSpec, Pipeline};
use events_publisher::{CorruptionKind, FunnelStage, Generator, GeneratorConfig, Source};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn gen_config(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed: Some(seed),
        duplicate_rate: 0.05,
        corrupt_post_rate: 0.6,
        shuffle_timestamps: true,
        ..Default::default()
    }
}

/// Sums a counter over several hosts.
async fn sum(hosts: &[&Host], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for h in hosts {
        total += h.metrics().await.sum(name, labels);
    }
    total
}

/// Gateway and collector counters agree with the answers and the tables.
async fn assert_metrics(
    p: &Pipeline,
    gateways: &[&Host],
    collectors: &[&Host],
    sent: f64,
    totals: (f64, f64, f64),
) {
    let start = Instant::now();
    loop {
        let stored = p.db.count("events").await as f64;
        let dead = p.db.count("dead_letters").await as f64;
        let gw_dead: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE stage = 'gateway'")
                .fetch_one(&p.db.pool)
                .await
                .unwrap();
        let actual = (
            sum(gateways, "gateway_events_processed_total", &[]).await,
            sum(gateways, "gateway_events_accepted_total", &[]).await,
            sum(
                gateways,
                "gateway_events_failed_total",
                &[("reason", "envelope")],
            )
            .await,
            sum(gateways, "gateway_events_duplicate_total", &[]).await,
            sum(collectors, "collector_events_processed_total", &[]).await
                - sum(collectors, "collector_events_db_duplicates_total", &[]).await,
            sum(collectors, "dead_letters_total", &[]).await,
            sum(collectors, "dead_letters_total", &[("stage", "gateway")]).await,
        );
        let expected = (
            sent,
            totals.0,
            totals.1,
            totals.2,
            stored,
            dead,
            gw_dead as f64,
        );
        if actual == expected {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "metrics (processed, accepted, rejected, duplicates, collector stored, dead letters, gateway dead letters) {actual:?} != ledger {expected:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_variant_sent_first_does_not_suppress_the_valid_event() {
    let p = Pipeline::shared("e2e_variant").await;
    let host = p.start("all", "all", &[]).await;
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(5),
        ..Default::default()
    });
    let mut ledger = Ledger::default();
    let cases = [
        (
            Source::Facebook,
            FunnelStage::Top,
            "ad.view",
            CorruptionKind::AlienGender,
        ),
        (
            Source::Facebook,
            FunnelStage::Bottom,
            "checkout.complete",
            CorruptionKind::MissingAdId,
        ),
        (
            Source::Tiktok,
            FunnelStage::Top,
            "video.view",
            CorruptionKind::NegativeWatchTime,
        ),
        (
            Source::Tiktok,
            FunnelStage::Bottom,
            "purchase",
            CorruptionKind::InvalidTimestamp,
        ),
    ];
    let url = host.url("/webhook");
    for (source, stage, kind_name, corruption) in cases {
        let valid = g.event(source, stage, kind_name).unwrap();
        let mut bad = valid.clone();
        assert!(corruption.apply(&mut bad), "{corruption} applies");
        assert_eq!(bad["eventId"], valid["eventId"]);
        let answer = |body: &Value| {
            let (p, url) = (&p, url.clone());
            let body = serde_json::to_vec(&[body]).unwrap();
            async move {
                let (s, r) = post(&p.http, &url, body, &[]).await.unwrap();
                assert_eq!(s, 200, "{r}");
                (
                    r["accepted"].as_u64().unwrap(),
                    r["duplicates"].as_u64().unwrap(),
                )
            }
        };
        assert_eq!(answer(&bad).await, (1, 0), "corrupted variant first");
        assert_eq!(
            answer(&valid).await,
            (1, 0),
            "the valid event is not a JetStream duplicate of its corrupted variant"
        );
        assert_eq!(answer(&valid).await, (0, 1), "an exact re-send is");
        assert_eq!(answer(&bad).await, (0, 1));
        ledger.corrupted.push(Bad::of(&bad, corruption));
        ledger
            .valid
            .insert(valid["eventId"].as_str().unwrap().to_string(), valid);
    }
    p.settle(&ledger, Duration::from_secs(30)).await;
    ledger.check(&p.db.pool).await;
}

/// Rows stored for `source`.
async fn stored(p: &Pipeline, source: &str) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE source = $1")
        .bind(source)
        .fetch_one(&p.db.pool)
        .await
        .expect("count") as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_for_all_except_leaves_excluded_sources_to_their_own() {
    let p = Pipeline::shared("e2e_except").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let rest = p
        .start(
            "collector-rest",
            "collector",
            &[("COLLECTOR_TYPE", "all"), ("COLLECTOR_EXCLUDE", "facebook")],
        )
        .await;
    let spec = LoadSpec {
        batches: 4,
        batch_size: 300,
        concurrency: 1,
        pause: Duration::ZERO,
        gen: gen_config(7),
        targets: vec![gw.url("/webhook")],
    };
    let load = spawn_load(p.http.clone(), spec).await.unwrap();
    assert_eq!(load.ok_posts(), 4);
    let ledger = load.ledger;
    let want = |source: &str| {
        ledger
            .valid
            .values()
            .filter(|e| e["source"] == source)
            .count()
    };
    let (tiktok, facebook) = (want("tiktok"), want("facebook"));
    assert!(tiktok > 0 && facebook > 0, "{tiktok} / {facebook}");
    let start = Instant::now();
    while stored(&p, "tiktok").await < tiktok {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tiktok: {} of {tiktok} stored; logs: {}",
            stored(&p, "tiktok").await,
            rest.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored(&p, "tiktok").await, tiktok);
    // Facebook is left in the stream for a collector that serves it.
    assert_eq!(stored(&p, "facebook").await, 0);
    assert!(p.streams.backlog().await.unwrap_or(0) > 0);
    assert_eq!(
        rest.metrics().await.sum(
            "collector_events_accepted_total",
            &[("collector", "facebook")]
        ),
        0.0
    );
    let _fb = p
        .start(
            "collector-fb",
            "collector",
            &[("COLLECTOR_TYPE", "facebook")],
        )
        .await;
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}
