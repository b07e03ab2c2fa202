//! Check: the alert rules loaded and evaluate without error.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::Live;

impl Live {
    /// The alert rules loaded and evaluate without error on real series.
    pub(super) async fn alert_rules_healthy(&self) -> Result<(), String> {
        let (client, prom_url) = (&self.client, &self.prom_url);
        let start = Instant::now();
        loop {
            let rules: Option<Json> =
                match client.get(format!("{prom_url}/api/v1/rules")).send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
            let health: Vec<(String, String)> = rules
                .as_ref()
                .and_then(|b| b.pointer("/data/groups"))
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .map(|r| {
                    let name = r["name"].as_str().unwrap_or("?").to_string();
                    let h = r["health"].as_str().unwrap_or("?").to_string();
                    let err = r["lastError"].as_str().unwrap_or("").to_string();
                    (name, format!("{h} {err}").trim().to_string())
                })
                .collect();
            let bad: Vec<_> = health.iter().filter(|(_, h)| h != "ok").collect();
            if !health.is_empty() && bad.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("alert rules not all healthy after 60s: {health:?}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        Ok(())
    }
}
