//! SIGTERM (and its pre-stop delay) under load: requests and batches in
//! flight finish, the rest waits for the restart.
use super::{all_ok, finish, spec, unacked, wait_stored, watch_naks};
use crate::support::pipeline::{
    assert_exact_answer, held_post, post, spawn_load, wait_until, Host, Ledger, Pipeline,
};
use events_publisher::{Batch, Generator, GeneratorConfig};
use std::time::{Duration, Instant};

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
