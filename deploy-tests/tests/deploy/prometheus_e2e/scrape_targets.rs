//! Check: every scrape target is up.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::Live;

impl Live {
    /// Every target scraped successfully at least once (60 s at most).
    pub(super) async fn scrape_targets_up(&self) -> Result<(), String> {
        let (client, prom_url, target_count) = (&self.client, &self.prom_url, self.target_count);
        let start = Instant::now();
        loop {
            let up = client
                .get(format!("{prom_url}/api/v1/query"))
                .query(&[("query", "count(up == 1)")])
                .send()
                .await
                .ok();
            let up = match up {
                Some(r) => r.json::<Json>().await.ok(),
                None => None,
            };
            let up = up
                .as_ref()
                .and_then(|b| b.pointer("/data/result/0/value/1"))
                .and_then(Json::as_str)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if up as usize >= target_count {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let body = match client
                    .get(format!("{prom_url}/api/v1/targets"))
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                return Err(format!(
                    "only {up} of {target_count} scrape targets up after 60s: {body}\n{}",
                    self.stack.all_logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        Ok(())
    }
}
