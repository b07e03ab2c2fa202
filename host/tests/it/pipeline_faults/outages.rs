//! Outages under load: NATS down, PostgreSQL down, the events stream
//! deleted.
use super::{all_ok, finish, spec, wait_stored};
use crate::support::{
    pipeline::{spawn_load, wait_until, Pipeline, SHARED_NATS, SHARED_PG},
    services::{NatsServer, Postgres},
};
use std::time::{Duration, Instant};

/// NATS down for a while under load, shorter than the request deadline:
/// the gateway reports not ready meanwhile, retries its unacked publishes
/// (same message ids) and answers every POST 200 within the deadline; every
/// event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_under_load_is_ridden_through_within_the_deadline() {
    let deadline = Duration::from_secs(20);
    let mut nats = NatsServer::start();
    let p = Pipeline::new("fault_nats", SHARED_PG, &nats.url()).await;
    let gw = p
        .start(
            "gateway",
            "gateway",
            &[("GATEWAY_REQUEST_TIMEOUT_MS", "20000")],
        )
        .await;
    let _col = p.start("collector", "collector", &[]).await;
    let load = spawn_load(
        p.http.clone(),
        spec(12, 80, 2, 150, vec![gw.url("/webhook")]),
    );
    wait_stored(&p, 2_000).await;
    nats.stop();
    wait_until("gateway not ready", Duration::from_secs(30), || async {
        p.http
            .get(gw.url("/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    nats.start_again();
    let load = load.await.unwrap();
    all_ok(&load);
    let slowest = load
        .posts
        .iter()
        .map(|p| p.ended - p.started)
        .max()
        .unwrap();
    eprintln!("slowest POST across the outage: {slowest:?}");
    // The deadline starts once the body is read; allow for that and for
    // the answer's way back on a busy machine.
    assert!(slowest < deadline + Duration::from_secs(5), "{slowest:?}");
    assert!(
        gw.metrics().await.sum("gateway_publish_retries_total", &[]) > 0.0,
        "the outage was ridden through by retries"
    );
    finish(&p, &load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_20_seconds_under_load() {
    let mut pg = Postgres::start();
    let p = Pipeline::new("fault_pg", &pg.base_url(), SHARED_NATS).await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let _col = p.start("collector", "collector", &[]).await;
    let load = spawn_load(
        p.http.clone(),
        spec(13, 30, 1, 700, vec![gw.url("/webhook")]),
    );
    wait_stored(&p, 1_000).await;
    pg.stop();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    pg.start_again();
    eprintln!("PostgreSQL was down for {:?}", down.elapsed());
    let load = load.await.unwrap();
    all_ok(&load);
    finish(&p, &load).await;
}

/// The events stream deleted between two loads (an operator's mistake, a
/// lost store): the gateway re-creates it and retries its publishes within
/// the request deadline, so every POST of the second load is answered 200;
/// the collectors re-create their consumer and store everything, dead
/// letters included. A collector never creates a stream itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_is_recreated_and_nothing_after_it_is_lost() {
    let p = Pipeline::shared("stream_deleted").await;
    // A collector alone waits for the gateway to create the streams.
    let col = p.spawn("collector", "collector", &[]);
    wait_until(
        "the collector waits for the streams",
        Duration::from_secs(60),
        || async {
            col.logs()
                .contains("waiting for the gateway to create the stream")
        },
    )
    .await;
    let js = p.streams.js().await;
    assert!(
        js.get_stream(&p.streams.stream).await.is_err(),
        "a collector created the stream"
    );
    let gw = p.start("gateway", "gateway", &[]).await;
    let mut col = col;
    col.ready(Duration::from_secs(60)).await;
    let first = spawn_load(p.http.clone(), spec(61, 6, 2, 0, vec![gw.url("/webhook")]))
        .await
        .unwrap();
    all_ok(&first);
    p.settle(&first.ledger, Duration::from_secs(60)).await;

    js.delete_stream(&p.streams.stream).await.unwrap();
    let second = spawn_load(p.http.clone(), spec(62, 6, 2, 0, vec![gw.url("/webhook")]))
        .await
        .unwrap();
    all_ok(&second);
    let mut ledger = first.ledger;
    ledger.merge(second.ledger);
    p.settle(&ledger, Duration::from_secs(90)).await;
    ledger.check(&p.db.pool).await;
}
