//! The probe's results: derived from every POST's times, printed and
//! serialized.
use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::{round, secs};

/// What the leader kill cost, all times from the moment `kill` returned.
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

/// One probe POST, in seconds from the kill (negative = before it).
pub(super) struct Post {
    pub(super) sent: f64,
    pub(super) done: f64,
    pub(super) status: Option<u16>,
}

impl FailoverResult {
    pub(super) fn of(
        posts: &[Post],
        killed: String,
        killed_pid: u32,
        view: (Option<String>, Option<String>),
        t_kill: Instant,
        new_leader: Option<(Instant, String)>,
        publish_retries: f64,
    ) -> Self {
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
        for p in posts {
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
        FailoverResult {
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
            publish_retries,
        }
    }

    /// The summary lines of bench-cluster.sh.
    pub(super) fn print(&self, interval_ms: u64) {
        let r = self;
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
            interval_ms,
            r.posts_after_kill,
            r.posts_in_flight_at_kill,
            r.answered_200,
            r.not_200,
            r.max_post_ms,
            r.p99_post_ms_after_kill,
            r.publish_retries,
        );
    }
}
