//! What the cluster says about itself: the stream's leader and replicas
//! (JetStream), the meta leader and the gateway's node (monitoring).
use std::time::Duration;

/// The events stream's leader and its replicas (name, current, offline).
pub(super) async fn stream_cluster(
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
pub(super) async fn cluster_view(
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
