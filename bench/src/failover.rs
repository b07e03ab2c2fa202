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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use crate::{copy, metrics};

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

#[derive(Debug, Serialize)]
pub struct FailoverResult {
    /// The killed node (the events stream's leader) and its pid.
    pub killed: String,
    pub killed_pid: u32,
    /// The JetStream meta leader just before the kill.
    pub meta_leader_before: Option<String>,
    /// The node the gateway's NATS connection was on just before the kill.
    pub gateway_server_before: Option<String>,
    /// Kill → the earliest 200 to a POST sent after the kill.
    pub first_ack_after_kill_secs: Option<f64>,
    /// That POST: sent this long after the kill, answered in this many ms.
    pub first_ack_post_sent_secs: Option<f64>,
    pub first_ack_post_latency_ms: Option<f64>,
    /// Kill → stream info first names another leader (polled every 100 ms).
    pub new_leader_reported_secs: Option<f64>,
    pub new_leader: Option<String>,
    /// The last 200 answered before the kill, seconds before it.
    pub last_ack_before_kill_secs: Option<f64>,
    pub posts: usize,
    pub posts_after_kill: usize,
    /// POSTs sent before the kill and answered after it.
    pub posts_in_flight_at_kill: usize,
    pub answered_200: usize,
    /// Other answers by status ("transport" = no answer).
    pub not_200: BTreeMap<String, u64>,
    pub max_post_ms: f64,
    pub p99_post_ms_after_kill: f64,
    pub publish_retries: f64,
}

struct Post {
    sent: f64,
    done: f64,
    status: Option<u16>,
}

fn secs(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64()
}

/// Seconds from `t_kill` to `t`, negative before it.
fn rel(t_kill: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t_kill).as_secs_f64()
        - t_kill.saturating_duration_since(t).as_secs_f64()
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// The events stream's leader and its replicas (name, current, offline).
async fn stream_cluster(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Option<(String, Vec<(String, bool, bool)>)> {
    let s = tokio::time::timeout(Duration::from_secs(1), js.get_stream(stream))
        .await
        .ok()?
        .ok()?;
    let c = s.cached_info().cluster.clone()?;
    Some((
        c.leader?,
        c.replicas
            .iter()
            .map(|p| (p.name.clone(), p.current, p.offline))
            .collect(),
    ))
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// The meta leader, and the node holding the gateway's connection.
async fn cluster_view(
    http: &reqwest::Client,
    monitors: &[String],
    gateway_name: Option<&str>,
) -> (Option<String>, Option<String>) {
    let mut meta = None;
    let mut gateway = None;
    for m in monitors {
        let m = m.trim_end_matches('/');
        if meta.is_none() {
            meta = get_json(http, &format!("{m}/jsz"))
                .await
                .and_then(|j| j["meta_cluster"]["leader"].as_str().map(String::from));
        }
        if let (None, Some(name)) = (&gateway, gateway_name) {
            let conns = get_json(http, &format!("{m}/connz?limit=4096")).await;
            let here = conns
                .as_ref()
                .and_then(|c| c["connections"].as_array())
                .is_some_and(|a| a.iter().any(|c| c["name"].as_str() == Some(name)));
            if here {
                gateway = get_json(http, &format!("{m}/varz"))
                    .await
                    .and_then(|v| v["server_name"].as_str().map(String::from));
            }
        }
    }
    (meta, gateway)
}

pub async fn run(a: FailoverArgs) -> Result<()> {
    let servers: Vec<&str> = a.nats_url.split(',').map(str::trim).collect();
    let js = async_nats::jetstream::new(
        async_nats::connect(servers.as_slice())
            .await
            .context("connect to the cluster")?,
    );
    let http = metrics::client();
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let total_secs = a.before_secs + a.after_secs;
    let n = (total_secs * 1000.0 / interval.as_millis() as f64 * 1.5) as usize + 200;
    let bodies: Vec<Bytes> = copy::generate(n, a.seed)?
        .into_iter()
        .map(|(_, raw)| {
            let mut b = Vec::with_capacity(raw.len() + 2);
            b.push(b'[');
            b.extend_from_slice(&raw);
            b.push(b']');
            Bytes::from(b)
        })
        .collect();

    // Only a healthy cluster is killed: a leader and every replica current.
    let deadline = Instant::now() + Duration::from_secs(180);
    let expected_replicas = a.nodes.len().saturating_sub(1);
    loop {
        if let Some((_, r)) = stream_cluster(&js, &a.stream).await {
            if r.len() == expected_replicas && r.iter().all(|(_, cur, off)| *cur && !off) {
                break;
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

    let post_client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(a.timeout_secs))
        .build()?;
    let url = format!("http://127.0.0.1:{}/webhook", a.gateway_port);
    let retries_before = metrics::scrape(&http, a.gateway_port)
        .await
        .map(|s| s.get("gateway_publish_retries_total"))
        .unwrap_or(0.0);

    let t0 = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = Vec::new();
    let mut kill: Option<(Instant, String, u32)> = None;
    let mut view = (None, None);
    let mut watcher = None;
    let mut i = 0usize;
    loop {
        tick.tick().await;
        let now = Instant::now();
        match &kill {
            None if secs(t0, now) >= a.before_secs => {
                let (leader, _) = stream_cluster(&js, &a.stream)
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
                view = cluster_view(&http, &a.monitors, a.gateway_nats_name.as_deref()).await;
                let st = tokio::process::Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status()
                    .await?;
                // The signal has been sent once `kill` returned.
                let t_kill = Instant::now();
                anyhow::ensure!(st.success(), "kill -KILL {pid} failed");
                eprintln!(
                    "[failover] killed {leader} (pid {pid}) at +{:.2} s",
                    secs(t0, t_kill)
                );
                let (js, stream, old) = (js.clone(), a.stream.clone(), leader.clone());
                watcher = Some(tokio::spawn(async move {
                    let until = t_kill + Duration::from_secs(120);
                    while Instant::now() < until {
                        if let Some((l, _)) = stream_cluster(&js, &stream).await {
                            if l != old {
                                return Some((Instant::now(), l));
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None
                }));
                kill = Some((t_kill, leader, pid));
            }
            Some((t_kill, ..)) if secs(*t_kill, now) >= a.after_secs => break,
            _ => {}
        }
        let Some(body) = bodies.get(i).cloned() else {
            bail!("ran out of probe events after {i} POSTs");
        };
        i += 1;
        let (client, url) = (post_client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    let (t_kill, killed, killed_pid) = kill.context("never killed")?;
    let mut posts = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (sent, done, status) = t.await?;
        posts.push(Post {
            sent: rel(t_kill, sent),
            done: rel(t_kill, done),
            status,
        });
    }
    let new_leader = match watcher {
        Some(w) => w.await?,
        None => None,
    };
    let retries_after = metrics::scrape(&http, a.gateway_port)
        .await
        .map(|s| s.get("gateway_publish_retries_total"))
        .unwrap_or(retries_before);

    // Times relative to the kill (negative = before it).
    let after: Vec<&Post> = posts.iter().filter(|p| p.sent >= 0.0).collect();
    let first = after
        .iter()
        .filter(|p| p.status == Some(200))
        .min_by(|x, y| x.done.total_cmp(&y.done));
    let last_before = posts
        .iter()
        .filter(|p| p.status == Some(200) && p.done < 0.0)
        .map(|p| -p.done)
        .min_by(f64::total_cmp);
    let mut not_200 = BTreeMap::new();
    for p in &posts {
        match p.status {
            Some(200) => {}
            Some(s) => *not_200.entry(s.to_string()).or_insert(0) += 1,
            None => *not_200.entry("transport".to_string()).or_insert(0) += 1,
        }
    }
    let ms = |p: &Post| (p.done - p.sent) * 1000.0;
    let mut after_ms: Vec<f64> = after.iter().map(|p| ms(p)).collect();
    after_ms.sort_by(f64::total_cmp);
    let p99 = after_ms
        .get(((after_ms.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let r = FailoverResult {
        killed,
        killed_pid,
        meta_leader_before: view.0,
        gateway_server_before: view.1,
        first_ack_after_kill_secs: first.map(|p| round(p.done, 3)),
        first_ack_post_sent_secs: first.map(|p| round(p.sent, 3)),
        first_ack_post_latency_ms: first.map(|p| round(ms(p), 1)),
        new_leader_reported_secs: new_leader.as_ref().map(|(t, _)| round(secs(t_kill, *t), 3)),
        new_leader: new_leader.map(|(_, l)| l),
        last_ack_before_kill_secs: last_before.map(|s| round(s, 3)),
        posts: posts.len(),
        posts_after_kill: after.len(),
        posts_in_flight_at_kill: posts
            .iter()
            .filter(|p| p.sent < 0.0 && p.done >= 0.0)
            .count(),
        answered_200: posts.iter().filter(|p| p.status == Some(200)).count(),
        not_200,
        max_post_ms: round(posts.iter().map(ms).fold(0.0, f64::max), 1),
        p99_post_ms_after_kill: round(p99, 1),
        publish_retries: retries_after - retries_before,
    };
    let opt =
        |x: Option<f64>, unit: &str| x.map_or("—".to_string(), |v| format!("{v:.2} {unit}"));
    println!(
        "killed {} (events stream leader; meta leader {}, gateway on {})",
        r.killed,
        r.meta_leader_before.as_deref().unwrap_or("?"),
        r.gateway_server_before.as_deref().unwrap_or("?"),
    );
    println!(
        "  kill → first acked POST: {}  (that POST sent +{}, answered in {})",
        opt(r.first_ack_after_kill_secs, "s"),
        opt(r.first_ack_post_sent_secs, "s"),
        opt(r.first_ack_post_latency_ms, "ms"),
    );
    println!(
        "  kill → new leader in stream info: {} ({})",
        opt(r.new_leader_reported_secs, "s"),
        r.new_leader.as_deref().unwrap_or("none"),
    );
    println!(
        "  {} one-event POSTs every {} ms ({} after the kill, {} in flight at it): {} answered 200, other {:?}; longest {:.0} ms, p99 after the kill {:.0} ms; gateway publish retries {}",
        r.posts,
        a.interval_ms,
        r.posts_after_kill,
        r.posts_in_flight_at_kill,
        r.answered_200,
        r.not_200,
        r.max_post_ms,
        r.p99_post_ms_after_kill,
        r.publish_retries,
    );
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&r)? + "\n")?;
    }
    Ok(())
}
