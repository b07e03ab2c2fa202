//! Faults under load, each ending with the exact ledger: every valid event
//! of a POST answered 200 stored once with its fields, nothing stored that
//! was not sent, every corrupted event dead-lettered once. NATS and
//! PostgreSQL outages use private instances (see `common::services`).
mod common;

use common::{
    pipeline::{
        assert_exact_answer, held_post, post, spawn_load, wait_until, Host, Ledger, LoadResult,
        LoadSpec, Pipeline, SHARED_NATS, SHARED_PG,
    },
    services::{NatsServer, Postgres},
};
use events_publisher::{Batch, Generator, GeneratorConfig};
use futures::StreamExt;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

fn spec(
    seed: u64,
    batches: usize,
    concurrency: usize,
    pause_ms: u64,
    targets: Vec<String>,
) -> LoadSpec {
    LoadSpec {
        batches,
        batch_size: 500,
        concurrency,
        pause: Duration::from_millis(pause_ms),
        gen: GeneratorConfig {
            seed: Some(seed),
            duplicate_rate: 0.02,
            corrupt_post_rate: 0.5,
            shuffle_timestamps: true,
            ..Default::default()
        },
        targets,
    }
}

/// Waits until the pipeline drained, then checks the exact ledger.
async fn finish(p: &Pipeline, load: &LoadResult) {
    p.settle(&load.ledger, Duration::from_secs(90)).await;
    load.ledger.check(&p.db.pool).await;
}

async fn wait_stored(p: &Pipeline, n: i64) {
    wait_until(
        &format!("{n} stored events"),
        Duration::from_secs(60),
        || async { p.db.count("events").await >= n },
    )
    .await;
}

fn all_ok(load: &LoadResult) {
    let bad: Vec<_> = load
        .posts
        .iter()
        .filter(|p| p.status != Some(200))
        .map(|p| (p.status, p.reply.clone()))
        .collect();
    assert!(bad.is_empty(), "POSTs not answered 200: {bad:?}");
}

/// Only 200 and 503 (event store unavailable) are acceptable answers.
fn ok_or_503(load: &LoadResult) -> usize {
    let other: Vec<_> = load
        .posts
        .iter()
        .filter(|p| !matches!(p.status, Some(200 | 503)))
        .map(|p| (p.status, p.reply.clone()))
        .collect();
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    load.posts.len() - load.ok_posts()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_with_sigkill_mid_stream_and_restarted() {
    let p = Pipeline::shared("fault_kill").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let extra = [
        ("COLLECTOR_ACK_WAIT_MS", "3000"),
        ("COLLECTOR_BATCH_SIZE", "200"),
    ];
    let mut col = p.start("collector", "collector", &extra).await;
    let load = spawn_load(
        p.http.clone(),
        spec(11, 50, 2, 100, vec![gw.url("/webhook")]),
    );
    for at in [3_000, 12_000] {
        wait_stored(&p, at).await;
        col.kill9();
        tokio::time::sleep(Duration::from_millis(500)).await;
        col.restart().await;
    }
    let load = load.await.unwrap();
    all_ok(&load);
    assert!(load.ledger.valid.len() > 12_000);
    finish(&p, &load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_under_load() {
    let mut nats = NatsServer::start();
    let p = Pipeline::new("fault_nats", SHARED_PG, &nats.url()).await;
    let gw = p
        .start(
            "gateway",
            "gateway",
            &[("GATEWAY_PUBLISH_TIMEOUT_MS", "3000")],
        )
        .await;
    let _col = p.start("collector", "collector", &[]).await;
    let load = spawn_load(
        p.http.clone(),
        spec(12, 40, 2, 150, vec![gw.url("/webhook")]),
    );
    wait_stored(&p, 2_000).await;
    nats.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.start_again();
    let load = load.await.unwrap();
    let failed = ok_or_503(&load);
    eprintln!(
        "{failed} of {} POSTs answered 503 during the outage",
        load.posts.len()
    );
    assert!(
        load.ok_posts() >= 20,
        "the gateway recovers after the restart"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_and_two_collectors_for_one_source_split_the_work() {
    let p = Pipeline::shared("fault_split").await;
    // Small slices: many messages, so both replicas certainly fetch some.
    let small = [("GATEWAY_SLICE_EVENTS", "10")];
    let gw1 = p.start("gateway-1", "gateway", &small).await;
    let gw2 = p.start("gateway-2", "gateway", &small).await;
    let fb1 = p
        .start(
            "collector-facebook-1",
            "collector",
            &[
                ("COLLECTOR_TYPE", "facebook"),
                ("COLLECTOR_BATCH_SIZE", "100"),
            ],
        )
        .await;
    let fb2 = p
        .start(
            "collector-facebook-2",
            "collector",
            &[
                ("COLLECTOR_TYPE", "facebook"),
                ("COLLECTOR_BATCH_SIZE", "100"),
            ],
        )
        .await;
    let _tt = p
        .start(
            "collector-tiktok",
            "collector",
            &[("COLLECTOR_TYPE", "tiktok")],
        )
        .await;
    let load = spawn_load(
        p.http.clone(),
        spec(14, 50, 4, 0, vec![gw1.url("/webhook"), gw2.url("/webhook")]),
    )
    .await
    .unwrap();
    all_ok(&load);
    finish(&p, &load).await;

    let stored_fb: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE source = 'facebook'")
            .fetch_one(&p.db.pool)
            .await
            .unwrap();
    let mut processed = Vec::new();
    for h in [&fb1, &fb2] {
        processed.push(h.metrics().await.sum(
            "collector_events_processed_total",
            &[("collector", "facebook")],
        ));
    }
    assert!(
        processed.iter().all(|n| *n > 0.0),
        "both facebook collectors took work: {processed:?}"
    );
    let dups = fb1
        .metrics()
        .await
        .sum("collector_events_db_duplicates_total", &[])
        + fb2
            .metrics()
            .await
            .sum("collector_events_db_duplicates_total", &[]);
    assert_eq!(
        processed.iter().sum::<f64>() - dups,
        stored_fb as f64,
        "facebook work split without overlap"
    );
    for gw in [&gw1, &gw2] {
        assert!(gw.metrics().await.sum("gateway_events_accepted_total", &[]) > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_hot_swapped_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["facebook.wasm", "tiktok.wasm"] {
        std::fs::copy(common::pipeline::plugins_dir().join(f), dir.path().join(f)).unwrap();
    }
    let p = Pipeline::shared("fault_swap").await;
    let plugins = dir.path().display().to_string();
    let host = p
        .start(
            "all",
            "all",
            &[
                ("PLUGINS_DIR", &plugins),
                ("PLUGINS_POLL_INTERVAL_MS", "100"),
            ],
        )
        .await;
    let load = spawn_load(
        p.http.clone(),
        spec(15, 40, 2, 100, vec![host.url("/webhook")]),
    );
    let bytes = std::fs::read(dir.path().join("facebook.wasm")).unwrap();
    let mut swaps = 0;
    while !load.is_finished() {
        // Same component, new file: written aside, renamed over atomically.
        let tmp = dir.path().join(".facebook.wasm.new");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, dir.path().join("facebook.wasm")).unwrap();
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let load = load.await.unwrap();
    all_ok(&load);
    assert!(swaps >= 5, "only {swaps} swaps during the load");
    finish(&p, &load).await;

    let m = host.metrics().await;
    let activated = m.sum("plugin_reloads_total", &[("result", "activated")]);
    assert!(
        activated >= (swaps - 1) as f64,
        "{activated} activations for {swaps} swaps"
    );
    assert_eq!(m.sum("plugin_reloads_total", &[("result", "refused")]), 0.0);
    assert_eq!(
        m.sum("plugin_failures_total", &[]),
        0.0,
        "no failed plugin call"
    );
    assert_eq!(
        m.sum("collector_events_failed_total", &[("stage", "delivery")]),
        0.0,
        "no event failed delivery"
    );
}

/// Messages delivered to collectors but not acked.
async fn unacked(p: &Pipeline) -> i64 {
    let js = p.streams.js().await;
    let stream = js.get_stream(&p.streams.stream).await.unwrap();
    let mut n = 0;
    for source in ["facebook", "tiktok"] {
        n += stream
            .consumer_info(format!("collector-{source}"))
            .await
            .map_or(0, |i| i.num_ack_pending as i64);
    }
    n
}

/// The stream sequences the collectors nak from now on, as JetStream's
/// advisories report them.
async fn watch_naks(p: &Pipeline) -> Arc<Mutex<HashSet<u64>>> {
    let client = async_nats::connect(&p.streams.nats_url).await.unwrap();
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.{}.*",
        p.streams.stream
    );
    let mut sub = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let naked = Arc::new(Mutex::new(HashSet::new()));
    let seen = naked.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Some(m) = sub.next().await {
            let advisory: serde_json::Value =
                serde_json::from_slice(&m.payload).unwrap_or_default();
            if let (Some(seq), Ok(mut seen)) = (advisory["stream_seq"].as_u64(), seen.lock()) {
                seen.insert(seq);
            }
        }
    });
    naked
}

/// Waits until `h` serves at least `n` webhook requests at once.
async fn wait_in_flight(h: &Host, n: f64) {
    wait_until("requests in flight", Duration::from_secs(30), || async {
        // The scrape itself is one of the requests in flight.
        h.metrics().await.sum("http_requests_in_flight", &[]) - 1.0 >= n
    })
    .await;
}

/// Four big POSTs held half-sent, so that a SIGTERM certainly finds them in
/// flight; `release` lets their bodies finish.
struct HeldPosts {
    batches: Vec<Batch>,
    handles: Vec<tokio::task::JoinHandle<std::io::Result<(u16, serde_json::Value)>>>,
    release: tokio::sync::watch::Sender<bool>,
}

impl HeldPosts {
    fn start(seed: u64, url: &str) -> Self {
        let mut generator = Generator::new(spec(seed, 0, 0, 0, vec![]).gen);
        let batches: Vec<Batch> = (0..4).map(|_| generator.next_batch(3000)).collect();
        let (release, rx) = tokio::sync::watch::channel(false);
        let handles = batches
            .iter()
            .map(|b| held_post(url, b.body(), rx.clone()))
            .collect();
        Self {
            batches,
            handles,
            release,
        }
    }

    /// Lets the bodies finish; checks every answer is the exact 200 and
    /// returns the ledger of the four requests.
    async fn finish(self) -> Ledger {
        let _ = self.release.send(true);
        let mut ledger = Ledger::default();
        for (handle, batch) in self.handles.into_iter().zip(self.batches) {
            let (status, reply) = handle.await.unwrap().unwrap();
            assert_exact_answer(status, &reply, &batch);
            ledger.record(&[(batch, true)]);
        }
        ledger
    }
}

/// SIGTERM while four requests are in flight: waits until the host stops
/// taking new requests, lets the held bodies finish, and checks the host
/// answered them all before exiting cleanly.
async fn sigterm_with_held_posts(h: &mut Host, posts: HeldPosts) -> Ledger {
    wait_in_flight(h, 4.0).await;
    h.sigterm();
    let ready = h.url("/health/ready");
    let http = reqwest::Client::new();
    wait_until(
        "the host to start draining",
        Duration::from_secs(30),
        || async {
            match http.get(&ready).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .map_or(true, |v| v["ready"] != true),
                Err(_) => true,
            }
        },
    )
    .await;
    let ledger = posts.finish().await;
    wait_exit(h).await;
    ledger
}

async fn sigterm_and_wait(h: &mut Host) -> Instant {
    let at = Instant::now();
    h.sigterm();
    wait_exit(h).await;
    at
}

/// Waits for a clean exit after a SIGTERM.
async fn wait_exit(h: &mut Host) {
    let status = h.exited(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "{} exited with {status}:\n{}",
        h.label,
        h.logs()
    );
    assert!(
        h.logs().contains("shutdown complete"),
        "{} did not shut down gracefully:\n{}",
        h.label,
        h.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigterm_completes_in_flight_requests() {
    let p = Pipeline::shared("term_gateway").await;
    let mut gw = p.start("gateway", "gateway", &[]).await;
    let _col = p.start("collector", "collector", &[]).await;
    let posts = HeldPosts::start(21, &gw.url("/webhook"));
    let held = sigterm_with_held_posts(&mut gw, posts).await;
    assert!(
        post(&p.http, &gw.url("/webhook"), b"[]".to_vec(), &[])
            .await
            .is_err(),
        "nothing listens after exit"
    );

    gw.restart().await;
    let more = spawn_load(p.http.clone(), spec(22, 6, 2, 0, vec![gw.url("/webhook")]))
        .await
        .unwrap();
    all_ok(&more);
    let mut ledger = held;
    ledger.merge(more.ledger);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_sigterm_acks_its_batch_and_the_rest_waits_for_the_restart() {
    let p = Pipeline::shared("term_collector").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    // The backlog first, then a collector that is stopped in the middle of it.
    let load = spawn_load(p.http.clone(), spec(23, 30, 2, 0, vec![gw.url("/webhook")]))
        .await
        .unwrap();
    all_ok(&load);
    let mut col = p
        .start("collector", "collector", &[("COLLECTOR_BATCH_SIZE", "200")])
        .await;
    wait_stored(&p, 2_000).await;
    let naked = watch_naks(&p).await;
    sigterm_and_wait(&mut col).await;
    let stored = p.db.count("events").await;
    assert!(
        stored < load.ledger.valid.len() as i64,
        "stopped mid-stream"
    );
    // Acked, or handed back: a batch interrupted mid-retry (a deadlock or
    // another retried error) is nak'ed, and JetStream keeps a nak'ed message
    // in the consumer's pending count until it is delivered again.
    wait_until(
        "every delivered message acked or handed back",
        Duration::from_secs(10),
        || async { unacked(&p).await <= naked.lock().map_or(0, |n| n.len()) as i64 },
    )
    .await;
    assert_eq!(
        p.db.count("events").await,
        stored,
        "nothing is written after exit"
    );
    col.restart().await;
    finish(&p, &load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_sigterm_finishes_requests_and_batches() {
    let p = Pipeline::shared("term_all").await;
    let mut host = p
        .start("all", "all", &[("COLLECTOR_BATCH_SIZE", "200")])
        .await;
    let first = spawn_load(
        p.http.clone(),
        spec(24, 16, 2, 0, vec![host.url("/webhook")]),
    )
    .await
    .unwrap();
    all_ok(&first);
    let posts = HeldPosts::start(25, &host.url("/webhook"));
    let held = sigterm_with_held_posts(&mut host, posts).await;
    wait_until(
        "every delivered message acked or handed back",
        Duration::from_secs(10),
        || async { unacked(&p).await == 0 },
    )
    .await;
    host.restart().await;
    let mut ledger = first.ledger;
    ledger.merge(held);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}
