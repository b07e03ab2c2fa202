//! Scraping the hosts' Prometheus `/metrics` (text format).

use std::collections::HashMap;
use std::time::Duration;

/// One scrape: every series value summed per metric name (labels dropped).
#[derive(Debug, Clone, Default)]
pub struct Scrape(pub HashMap<String, f64>);

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut m = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let name = series.split('{').next().unwrap_or(series).trim();
            if let Ok(v) = value.trim().parse::<f64>() {
                if v.is_finite() {
                    *m.entry(name.to_string()).or_insert(0.0) += v;
                }
            }
        }
        Self(m)
    }

    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// Mean of a histogram in milliseconds and its observation count.
    pub fn hist_mean_ms(&self, name: &str) -> (f64, u64) {
        let count = self.get(&format!("{name}_count"));
        let sum = self.get(&format!("{name}_sum"));
        if count > 0.0 {
            (sum / count * 1000.0, count as u64)
        } else {
            (0.0, 0)
        }
    }

    /// Sum of a histogram, seconds.
    pub fn hist_sum(&self, name: &str) -> f64 {
        self.get(&format!("{name}_sum"))
    }

    /// Adds another scrape (collectors of several processes).
    pub fn merge(&mut self, other: &Scrape) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0.0) += v;
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client")
}

pub async fn scrape(http: &reqwest::Client, port: u16) -> Option<Scrape> {
    let resp = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    Some(Scrape::parse(&resp.text().await.ok()?))
}

pub async fn ready(http: &reqwest::Client, port: u16) -> bool {
    matches!(
        http.get(format!("http://127.0.0.1:{port}/health/ready")).send().await,
        Ok(r) if r.status().is_success()
    )
}
