//! Faults under load, each ending with the exact ledger: every valid event
//! of a POST answered 200 stored once with its fields, nothing stored that
//! was not sent, every corrupted event dead-lettered once. NATS and
//! PostgreSQL outages use private instances (see `crate::support::services`).

use crate::support::{
    pipeline::{
        assert_exact_answer, held_post, post, spawn_load, wait_until, Host, Ledger, LoadResult,
        LoadSpec, Pipeline, SHARED_NATS, SHARED_PG,
    },
    services::{free_port, NatsCluster, NatsServer, Postgres},
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_with_sigkill_mid_stream_and_restarted() {
    let p = Pipeline::shared("fault_kill").await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let extra = [
        ("COLLECTOR_ACK_WAIT_MS", "3000"),
        ("COLLECTOR_BATCH_SIZE", "200"),
    ];
    let mut col = p.start_process("collector", "collector", &extra).await;
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

/// The events stream's leader and replica count, as the cluster reports it.
async fn stream_leader(p: &Pipeline) -> Option<(String, usize)> {
    let js = p.streams.js().await;
    let mut s = js.get_stream(&p.streams.stream).await.ok()?;
    let info = s.info().await.ok()?;
    let leader = info.cluster.as_ref()?.leader.clone()?;
    Some((leader, info.config.num_replicas))
}

/// A 3-node JetStream cluster, R3 streams, the events stream's leader
/// killed with SIGKILL under load: every POST is still answered 200 (the
/// gateway rides the election inside its request deadline) and the ledger
/// is exact. `NATS_URL` starts with an address nothing listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_stream_leader_killed_under_load() {
    let mut cluster = NatsCluster::start(3);
    let nats_url = format!("nats://127.0.0.1:{},{}", free_port(), cluster.urls());
    let p = Pipeline::new("fault_cluster", SHARED_PG, &nats_url).await;
    let replicas = [("JETSTREAM_REPLICAS", "3")];
    let gw = p.start("gateway", "gateway", &replicas).await;
    let _col = p.start("collector", "collector", &replicas).await;
    let (leader, count) = stream_leader(&p).await.expect("clustered stream");
    assert_eq!(count, 3, "the events stream is created with 3 replicas");
    let load = spawn_load(
        p.http.clone(),
        spec(21, 60, 2, 150, vec![gw.url("/webhook")]),
    );
    wait_stored(&p, 2_000).await;
    cluster.node(&leader).kill9();
    wait_until("a new stream leader", Duration::from_secs(60), || async {
        stream_leader(&p).await.is_some_and(|(l, _)| l != leader)
    })
    .await;
    let load = load.await.unwrap();
    all_ok(&load);
    eprintln!(
        "publish retries across the election: {}",
        gw.metrics().await.sum("gateway_publish_retries_total", &[])
    );
    finish(&p, &load).await;
}

/// `totalEvents` of the all-time events report served by `reporter`.
async fn reported_total(p: &Pipeline, reporter: &Host) -> Option<i64> {
    let url = reporter.url("/api/v1/reports/events?from=2000-01-01&to=2100-01-01");
    let body: serde_json::Value = p.http.get(url).send().await.ok()?.json().await.ok()?;
    body["totalEvents"].as_i64()
}

/// The scale-out proof: 3 NATS nodes with R3 streams, 2 gateways, 2
/// collectors per source, a PostgreSQL primary and a streaming replica with
/// the reporter on it. Under steady load from clients that never retry, one
/// fault at a time: SIGKILL the events stream's leader, later SIGKILL a
/// gateway, later restart the killed NATS node. Every POST to a surviving
/// gateway is answered 200 within the deadline, the ledger on the primary is
/// exact, and the reporter on the replica reports the same total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_survives_a_leader_kill_a_gateway_kill_and_a_node_restart() {
    let deadline = Duration::from_secs(20);
    let mut cluster = NatsCluster::start(3);
    let primary = Postgres::start();
    let p = Pipeline::new("scale_out", &primary.base_url(), &cluster.urls()).await;
    let replica = Postgres::replica_of(&primary);
    let r3 = [("JETSTREAM_REPLICAS", "3")];
    let mut gw1 = p.start_process("gateway-1", "gateway", &r3).await;
    let gw2 = p.start("gateway-2", "gateway", &r3).await;
    let mut collectors = Vec::new();
    for (i, source) in [
        (1, "facebook"),
        (2, "facebook"),
        (1, "tiktok"),
        (2, "tiktok"),
    ] {
        let label = format!("collector-{source}-{i}");
        collectors.push(
            p.start(&label, "collector", &[("COLLECTOR_TYPE", source)])
                .await,
        );
    }
    let mut env = p.env.clone();
    env.insert(
        "REPORTER_DATABASE_URL".into(),
        format!("{}/{}", replica.base_url(), p.db.name),
    );
    let reporter = Host::reporter("reporter-on-replica", env, p.logdir.path()).await;

    let load = spawn_load(
        p.http.clone(),
        spec(
            23,
            100,
            2,
            250,
            vec![gw1.url("/webhook"), gw2.url("/webhook")],
        ),
    );
    // 1. The events stream's leader dies; its replicas elect another.
    wait_stored(&p, 2_000).await;
    let (leader, replicas) = stream_leader(&p).await.expect("clustered stream");
    assert_eq!(replicas, 3);
    assert!(!load.is_finished(), "the leader kill must hit mid-load");
    cluster.node(&leader).kill9();
    wait_until("a new stream leader", Duration::from_secs(60), || async {
        stream_leader(&p).await.is_some_and(|(l, _)| l != leader)
    })
    .await;
    wait_stored(&p, p.db.count("events").await + 2_000).await;
    // 2. A gateway dies; its in-flight POSTs are the only uncertain ones.
    let gw1_retries = gw1
        .metrics()
        .await
        .sum("gateway_publish_retries_total", &[]);
    assert!(!load.is_finished(), "the gateway kill must hit mid-load");
    let killed_at = Instant::now();
    gw1.kill9();
    wait_stored(&p, p.db.count("events").await + 2_000).await;
    // 3. The dead NATS node comes back and catches up.
    assert!(!load.is_finished(), "the node restart must happen mid-load");
    cluster.node(&leader).start_again();
    let load = load.await.unwrap();

    for (i, post) in load.posts.iter().enumerate() {
        let to_survivor = i % 2 == 1;
        if to_survivor || post.ended < killed_at {
            assert_eq!(post.status, Some(200), "POST {i}: {:?}", post.reply);
            assert!(post.ended - post.started < deadline + Duration::from_secs(5));
        }
    }
    let retries = gw1_retries
        + gw2
            .metrics()
            .await
            .sum("gateway_publish_retries_total", &[]);
    assert!(retries > 0.0, "the faults hit publishes mid-load");
    finish(&p, &load).await;
    let primary_total = p.db.count("events").await;
    wait_until(
        "the replica's report to catch up",
        Duration::from_secs(60),
        || async { reported_total(&p, &reporter).await == Some(primary_total) },
    )
    .await;
    eprintln!("scale-out proof: {primary_total} events stored, {retries} publish retries");
}

/// Two gateways under load, one killed with SIGKILL mid-stream: every POST
/// to the survivor is answered 200, the killed one's in-flight POSTs are
/// uncertain (stored at most once), and the ledger is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_with_sigkill_under_load() {
    let p = Pipeline::shared("fault_gw_kill").await;
    let mut gw1 = p.start_process("gateway-1", "gateway", &[]).await;
    let gw2 = p.start("gateway-2", "gateway", &[]).await;
    let _col = p.start("collector", "collector", &[]).await;
    let load = spawn_load(
        p.http.clone(),
        spec(
            22,
            60,
            2,
            100,
            vec![gw1.url("/webhook"), gw2.url("/webhook")],
        ),
    );
    wait_stored(&p, 2_000).await;
    gw1.kill9();
    let load = load.await.unwrap();
    let to_survivor: Vec<_> = load.posts.iter().skip(1).step_by(2).collect();
    assert!(
        to_survivor.iter().all(|post| post.status == Some(200)),
        "POSTs to the surviving gateway: {:?}",
        to_survivor.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    assert!(
        load.posts
            .iter()
            .step_by(2)
            .any(|post| post.status.is_none()),
        "the killed gateway refused nothing: it was killed too late"
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
        std::fs::copy(
            crate::support::pipeline::plugins_dir().join(f),
            dir.path().join(f),
        )
        .unwrap();
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

/// For hosts facing [`HeldPosts`]: a body held half-sent for as long as the
/// test needs must not be cut off as a slow upload.
const HOLDS_BODIES: [(&str, &str); 1] = [("GATEWAY_MIN_BODY_RATE", "0")];

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
    let mut gw = p.start_process("gateway", "gateway", &HOLDS_BODIES).await;
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
        .start_process("collector", "collector", &[("COLLECTOR_BATCH_SIZE", "200")])
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
        .start_process(
            "all",
            "all",
            &[("COLLECTOR_BATCH_SIZE", "200"), HOLDS_BODIES[0]],
        )
        .await;
    let first = spawn_load(
        p.http.clone(),
        spec(24, 16, 2, 0, vec![host.url("/webhook")]),
    )
    .await
    .unwrap();
    all_ok(&first);
    let posts = HeldPosts::start(25, &host.url("/webhook"));
    let naked = watch_naks(&p).await;
    let held = sigterm_with_held_posts(&mut host, posts).await;
    wait_until(
        "every delivered message acked or handed back",
        Duration::from_secs(10),
        || async { unacked(&p).await <= naked.lock().map_or(0, |n| n.len()) as i64 },
    )
    .await;
    host.restart().await;
    let mut ledger = first.ledger;
    ledger.merge(held);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

/// The pre-stop delay: after SIGTERM the gateway reports not ready at once
/// but still answers (and stores) webhook requests until the delay ends,
/// then drains and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reports_not_ready_and_keeps_serving_for_the_pre_stop_delay() {
    let p = Pipeline::shared("pre_stop").await;
    let pre_stop = Duration::from_secs(8);
    let mut host = p
        .start_process("all", "all", &[("SHUTDOWN_PRE_STOP_MS", "8000")])
        .await;
    let signalled = Instant::now();
    host.sigterm();
    wait_until("readiness false", Duration::from_secs(30), || async {
        p.http
            .get(host.url("/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    let batch = Generator::new(GeneratorConfig {
        seed: Some(41),
        corrupt_post_rate: 0.0,
        ..Default::default()
    })
    .next_batch(50);
    let (status, reply) = post(&p.http, &host.url("/webhook"), batch.body(), &[])
        .await
        .unwrap();
    let answered = signalled.elapsed();
    assert!(
        answered < pre_stop,
        "answered after the delay ({answered:?})"
    );
    assert_eq!(status, 200, "{reply}");
    wait_exit(&mut host).await;
    assert!(signalled.elapsed() >= pre_stop, "exited before the delay");
    assert!(host.logs().contains("pre-stop delay"), "{}", host.logs());
    host.restart().await;
    let mut ledger = Ledger::default();
    ledger.record(&[(batch, true)]);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

/// Makes every statement that writes `table` sleep (a write that never ends)
/// until `release_writes`.
async fn hang_writes(p: &Pipeline, table: &str) {
    sqlx::raw_sql(&format!(
        "CREATE OR REPLACE FUNCTION hang() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(600); RETURN NULL; END $$;
         CREATE TRIGGER hang_{table} BEFORE INSERT ON {table}
           FOR EACH STATEMENT EXECUTE FUNCTION hang();"
    ))
    .execute(&p.db.pool)
    .await
    .unwrap();
}

/// Ends the statements sleeping in a hang (a killed client's backend would
/// sleep on, holding its table lock), then drops the hang on `table`. Only
/// called while no collector runs, so no new statement starts sleeping.
async fn release_writes(p: &Pipeline, table: &str) {
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event = 'PgSleep';",
    )
    .execute(&p.db.pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!("DROP TRIGGER hang_{table} ON {table};"))
        .execute(&p.db.pool)
        .await
        .unwrap();
}

async fn wait_hanging(p: &Pipeline, n: i64) {
    wait_until("writes hanging", Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(&p.db.pool)
        .await
        .is_ok_and(|c| c >= n)
    })
    .await;
}

/// One POST of valid events, answered 200, with nothing stored yet.
async fn posted_batch(p: &Pipeline, seed: u64) -> Batch {
    let gw = p.start("gateway", "gateway", &[]).await;
    let batch = Generator::new(GeneratorConfig {
        seed: Some(seed),
        corrupt_post_rate: 0.0,
        ..Default::default()
    })
    .next_batch(40);
    let (status, reply) = post(&p.http, &gw.url("/webhook"), batch.body(), &[])
        .await
        .unwrap();
    assert_exact_answer(status, &reply, &batch);
    batch
}

/// Sources in `batch`: one slice, hence one hanging write, each.
fn sources(batch: &Batch) -> i64 {
    let s: HashSet<&str> = batch
        .events
        .iter()
        .filter_map(|e| e["source"].as_str())
        .collect();
    s.len() as i64
}

/// Every event of `batch` is a `delivery` dead letter saying it reached
/// max_deliver, nothing is in `events`, and the stream is empty.
async fn all_dead_lettered_for_max_deliver(p: &Pipeline, batch: &Batch) {
    let n = batch.len() as i64;
    wait_until(
        "every event dead-lettered",
        Duration::from_secs(60),
        || async { p.db.count("dead_letters").await == n && p.streams.backlog().await == Some(0) },
    )
    .await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT stage, reasons::text, raw FROM dead_letters")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    for (stage, reasons, _) in &rows {
        assert_eq!(stage, "delivery");
        assert!(reasons.contains("COLLECTOR_MAX_DELIVER"), "{reasons}");
    }
    let mut raws: Vec<String> = rows.into_iter().map(|(_, _, raw)| raw).collect();
    let mut sent: Vec<String> = batch.events.iter().map(|e| e.to_string()).collect();
    raws.sort();
    sent.sort();
    assert_eq!(raws, sent, "each event kept with its exact bytes");
    assert_eq!(p.db.count("events").await, 0);
}

const MAX_DELIVER_2: [(&str, &str); 2] = [
    ("COLLECTOR_MAX_DELIVER", "2"),
    ("COLLECTOR_ACK_WAIT_MS", "1000"),
];

/// A batch whose write never ends, delivered up to `max_deliver` times
/// (the collector killed each time): on its last delivery its events are
/// dead-lettered instead of processed, and the message is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_on_its_last_delivery_is_dead_lettered() {
    let p = Pipeline::shared("max_deliver").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let batch = posted_batch(&p, 51).await;
    hang_writes(&p, "events").await;
    let mut col = p
        .start_process("collector", "collector", &MAX_DELIVER_2)
        .await;
    wait_hanging(&p, sources(&batch)).await;
    col.kill9();
    release_writes(&p, "events").await;
    hang_writes(&p, "events").await;
    col.restart().await;
    all_dead_lettered_for_max_deliver(&p, &batch).await;
    let m = col.metrics().await;
    assert!(
        m.sum(
            "collector_max_deliveries_total",
            &[("path", "last_delivery")]
        ) > 0.0
    );
    release_writes(&p, "events").await;
}

/// The backstop: the process dies during the last delivery too. nats-server
/// then keeps the message unseen in the work queue and announces it; a
/// collector fetches it by sequence, dead-letters it and deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_max_deliver_is_recovered_from_the_advisory() {
    let p = Pipeline::shared("max_deliver_adv").await;
    events_common::db::migrate(&p.db.pool).await.unwrap();
    let batch = posted_batch(&p, 52).await;
    hang_writes(&p, "events").await;
    hang_writes(&p, "dead_letters").await;
    let mut col = p
        .start_process("collector", "collector", &MAX_DELIVER_2)
        .await;
    wait_hanging(&p, sources(&batch)).await;
    col.kill9();
    release_writes(&p, "events").await;
    release_writes(&p, "dead_letters").await;
    hang_writes(&p, "events").await;
    hang_writes(&p, "dead_letters").await;
    col.restart().await;
    // The last delivery's dead letters hang too.
    wait_hanging(&p, sources(&batch)).await;
    col.kill9();
    release_writes(&p, "dead_letters").await;
    release_writes(&p, "events").await;
    hang_writes(&p, "events").await;
    col.restart().await;
    all_dead_lettered_for_max_deliver(&p, &batch).await;
    let m = col.metrics().await;
    assert!(m.sum("collector_max_deliveries_total", &[("path", "advisory")]) > 0.0);
    release_writes(&p, "events").await;
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
