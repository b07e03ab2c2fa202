//! SIGKILLs under load: a collector, a gateway, a NATS stream leader, and
//! all of them on a scaled-out deployment with a reporter on a replica.
use super::{all_ok, finish, spec, wait_stored};
use crate::support::{
    pipeline::{spawn_load, wait_until, Host, Pipeline, SHARED_PG},
    services::{free_port, NatsCluster, Postgres},
};
use std::time::{Duration, Instant};

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

/// The events stream's leader and replica count, as the cluster reports it.
async fn stream_leader(p: &Pipeline) -> Option<(String, usize)> {
    let js = p.streams.js().await;
    let mut s = js.get_stream(&p.streams.stream).await.ok()?;
    let info = s.info().await.ok()?;
    let leader = info.cluster.as_ref()?.leader.clone()?;
    Some((leader, info.config.num_replicas))
}

/// The gateways' request deadline in the election tests: long enough for an
/// election on a busy CI machine, below the load client's 60 s timeout.
const ELECTION_PROOF_DEADLINE: (&str, &str) = ("GATEWAY_REQUEST_TIMEOUT_MS", "45000");

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
    // The election's length depends on how busy the machine is; the test
    // proves the gateway rides it out, so its deadline is not the limit.
    let gw_env = [("JETSTREAM_REPLICAS", "3"), ELECTION_PROOF_DEADLINE];
    let gw = p.start("gateway", "gateway", &gw_env).await;
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
    let deadline = Duration::from_millis(ELECTION_PROOF_DEADLINE.1.parse().unwrap());
    let mut cluster = NatsCluster::start(3);
    let primary = Postgres::start();
    let p = Pipeline::new("scale_out", &primary.base_url(), &cluster.urls()).await;
    let replica = Postgres::replica_of(&primary);
    let gw_env = [("JETSTREAM_REPLICAS", "3"), ELECTION_PROOF_DEADLINE];
    let mut gw1 = p.start_process("gateway-1", "gateway", &gw_env).await;
    let gw2 = p.start("gateway-2", "gateway", &gw_env).await;
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
