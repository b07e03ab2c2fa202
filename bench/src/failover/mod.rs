//! `ingest-bench failover`: the leader-kill probe of scripts/bench-cluster.sh.
//!
//! A running gateway (R3 streams on a 3-node cluster) gets a one-event POST
//! every `--interval-ms`, each sent without waiting for earlier ones. Once
//! the events stream has a leader and every replica is current, and after
//! `--before-secs` of probing, the leader's nats-server is killed with
//! SIGKILL. Probing goes on for `--after-secs`.
//!
//! Reported, all from the moment the `kill` returned (one monotonic clock):
//! - **first acked POST**: the earliest 200 answer to a POST *sent after*
//!   the kill. The gateway answers 200 only once JetStream acked the
//!   publish, so this is the time until a publish is acked again; a POST
//!   sent before the kill could carry an ack of the old leader;
//! - **new leader reported**: when stream info first names another leader;
//! - the longest POST (one in flight across the election), the answers that
//!   were not 200, and the gateway's `gateway_publish_retries_total`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use tokio::task::JoinHandle;

use crate::{copy, metrics};

mod cluster;
mod result;

use cluster::{cluster_view, stream_cluster};
use result::{FailoverResult, Post};

#[derive(Args)]
pub struct FailoverArgs {
    /// Every server of the cluster, comma-separated (as `NATS_URL`).
    #[arg(long)]
    nats_url: String,
    /// The events stream (the gateway's `JETSTREAM_STREAM`).
    #[arg(long)]
    stream: String,
    /// A node of the cluster as `server_name=pid` (repeatable). The events
    /// stream's leader among them is killed.
    #[arg(long = "node", value_parser = crate::parse_kv, required = true)]
    nodes: Vec<(String, String)>,
    /// A node's monitoring endpoint, `http://127.0.0.1:<port>` (repeatable):
    /// names the meta leader and the node the gateway is connected to.
    #[arg(long = "monitor")]
    monitors: Vec<String>,
    /// The gateway's HTTP port (`POST /webhook`, `GET /metrics`).
    #[arg(long)]
    gateway_port: u16,
    /// The gateway's NATS connection name (`NATS_NAME`).
    #[arg(long)]
    gateway_nats_name: Option<String>,
    /// Milliseconds between one-event POSTs.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Probing before the kill.
    #[arg(long, default_value_t = 3.0)]
    before_secs: f64,
    /// Probing after the kill.
    #[arg(long, default_value_t = 20.0)]
    after_secs: f64,
    /// Generator seed of the probe's events (a new one per kill).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Client timeout per POST (above the gateway's 20 s request deadline).
    #[arg(long, default_value_t = 30.0)]
    timeout_secs: f64,
    /// Results (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Waits for a healthy cluster, probes, kills the leader, keeps probing,
/// then prints the results (and writes them with `--out`).
pub async fn run(a: FailoverArgs) -> Result<()> {
    let servers: Vec<&str> = a.nats_url.split(',').map(str::trim).collect();
    let js = async_nats::jetstream::new(
        async_nats::connect(servers.as_slice())
            .await
            .context("connect to the cluster")?,
    );
    let http = metrics::client();
    let bodies = probe_bodies(&a)?;
    wait_healthy(&js, &a).await?;
    let retries_before = publish_retries(&http, a.gateway_port).await.unwrap_or(0.0);
    let (sent, kill) = probe(&a, &js, &http, &bodies).await?;
    let mut posts = Vec::with_capacity(sent.len());
    for t in sent {
        let (sent, done, status) = t.await?;
        posts.push(Post {
            sent: rel(kill.at, sent),
            done: rel(kill.at, done),
            status,
        });
    }
    let new_leader = kill.watcher.await?;
    let retries_after = publish_retries(&http, a.gateway_port)
        .await
        .unwrap_or(retries_before);
    let r = FailoverResult::of(
        &posts,
        kill.leader,
        kill.pid,
        kill.view,
        kill.at,
        new_leader,
        retries_after - retries_before,
    );
    r.print(a.interval_ms);
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&r)? + "\n")?;
    }
    Ok(())
}

/// One-event JSON arrays, enough for the whole probe (half as many again
/// as the intervals, plus 200).
fn probe_bodies(a: &FailoverArgs) -> Result<Vec<Bytes>> {
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let total_secs = a.before_secs + a.after_secs;
    let n = (total_secs * 1000.0 / interval.as_millis() as f64 * 1.5) as usize + 200;
    Ok(copy::generate(n, a.seed)?
        .into_iter()
        .map(|(_, raw)| {
            let mut b = Vec::with_capacity(raw.len() + 2);
            b.push(b'[');
            b.extend_from_slice(&raw);
            b.push(b']');
            Bytes::from(b)
        })
        .collect())
}

/// Only a healthy cluster is killed: a leader and every replica current
/// (180 s at most).
async fn wait_healthy(js: &async_nats::jetstream::Context, a: &FailoverArgs) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let expected_replicas = a.nodes.len().saturating_sub(1);
    loop {
        if let Some((_, r)) = stream_cluster(js, &a.stream).await {
            if r.len() == expected_replicas && r.iter().all(|(_, cur, off)| *cur && !off) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "stream {} has no leader with {expected_replicas} current replicas after 180 s",
                a.stream
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The gateway's `gateway_publish_retries_total` (`None` if unreachable).
async fn publish_retries(http: &reqwest::Client, port: u16) -> Option<f64> {
    metrics::scrape(http, port)
        .await
        .map(|s| s.get("gateway_publish_retries_total"))
}

/// A POST's send and answer times, and its status (`None`: no answer).
type Sent = JoinHandle<(Instant, Instant, Option<u16>)>;

/// The kill: when `kill` returned, whom, and the watch for a new leader.
struct Kill {
    at: Instant,
    leader: String,
    pid: u32,
    /// Meta leader and the gateway's node just before.
    view: (Option<String>, Option<String>),
    watcher: JoinHandle<Option<(Instant, String)>>,
}

/// POSTs every interval; kills the leader after `--before-secs`, stops
/// `--after-secs` after the kill.
async fn probe(
    a: &FailoverArgs,
    js: &async_nats::jetstream::Context,
    http: &reqwest::Client,
    bodies: &[Bytes],
) -> Result<(Vec<Sent>, Kill)> {
    let post_client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(a.timeout_secs))
        .build()?;
    let url = format!("http://127.0.0.1:{}/webhook", a.gateway_port);
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(a.interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = Vec::new();
    let mut kill: Option<Kill> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        match &kill {
            None if secs(t0, now) >= a.before_secs => {
                let k = kill_leader(a, js, http).await?;
                eprintln!(
                    "[failover] killed {} (pid {}) at +{:.2} s",
                    k.leader,
                    k.pid,
                    secs(t0, k.at)
                );
                kill = Some(k);
            }
            Some(k) if secs(k.at, now) >= a.after_secs => break,
            _ => {}
        }
        let Some(body) = bodies.get(tasks.len()).cloned() else {
            bail!("ran out of probe events after {} POSTs", tasks.len());
        };
        tasks.push(post(post_client.clone(), url.clone(), body));
    }
    Ok((tasks, kill.context("never killed")?))
}

/// SIGKILLs the events stream's leader and starts watching (120 s at
/// most, every 100 ms) for stream info to name another.
async fn kill_leader(
    a: &FailoverArgs,
    js: &async_nats::jetstream::Context,
    http: &reqwest::Client,
) -> Result<Kill> {
    let (leader, _) = stream_cluster(js, &a.stream)
        .await
        .context("the stream's leader just before the kill")?;
    let pid: u32 = a
        .nodes
        .iter()
        .find(|(name, _)| *name == leader)
        .with_context(|| format!("leader {leader} is not among --node"))?
        .1
        .parse()
        .context("--node pid")?;
    let view = cluster_view(http, &a.monitors, a.gateway_nats_name.as_deref()).await;
    let st = tokio::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .await?;
    // The signal has been sent once `kill` returned.
    let at = Instant::now();
    anyhow::ensure!(st.success(), "kill -KILL {pid} failed");
    let (js, stream, old) = (js.clone(), a.stream.clone(), leader.clone());
    let watcher = tokio::spawn(async move {
        let until = at + Duration::from_secs(120);
        while Instant::now() < until {
            if let Some((l, _)) = stream_cluster(&js, &stream).await {
                if l != old {
                    return Some((Instant::now(), l));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    });
    Ok(Kill {
        at,
        leader,
        pid,
        view,
        watcher,
    })
}

/// Sends one probe POST without waiting for it.
fn post(client: reqwest::Client, url: String, body: Bytes) -> Sent {
    tokio::spawn(async move {
        let sent = Instant::now();
        let status = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        (sent, Instant::now(), status)
    })
}

/// Seconds from `t0` to `t` (0 before it).
pub(super) fn secs(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64()
}

/// Seconds from `t_kill` to `t`, negative before it.
fn rel(t_kill: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t_kill).as_secs_f64()
        - t_kill.saturating_duration_since(t).as_secs_f64()
}

/// `x` rounded to `digits` decimals.
pub(super) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
