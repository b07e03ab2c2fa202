//! `events-host plugin check <component.wasm> [sample.json ...]`: the plugin
//! author's tool. Loads a component exactly as the host does, prints its
//! identity, runs it on the samples and prints a verdict per event.
use crate::plugins::{EventResult, Plugin, PluginMetrics, PluginRuntime, RuntimeConfig};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A component loaded exactly as the host loads it (shared by `plugin check`
/// and `plugin test`).
pub struct Loaded {
    /// Kept alive with the plugin (engine, linker, metrics).
    _runtime: PluginRuntime,
    pub plugin: Arc<Plugin>,
    pub component: PathBuf,
    pub load_time: std::time::Duration,
}

impl Loaded {
    pub fn new(component: &Path) -> anyhow::Result<Self> {
        let dir = component.parent().unwrap_or(Path::new("."));
        let runtime =
            PluginRuntime::new(RuntimeConfig::for_dir(dir), PluginMetrics::unregistered())?;
        let started = std::time::Instant::now();
        let plugin = runtime
            .load_file(component)
            .with_context(|| format!("cannot load {}", component.display()))?;
        Ok(Self {
            _runtime: runtime,
            plugin,
            component: component.to_owned(),
            load_time: started.elapsed(),
        })
    }

    /// `component:` / `identity:` / `loaded in:` lines.
    pub fn print_header(&self) {
        let id = self.plugin.identity();
        println!("component: {}", self.component.display());
        println!(
            "identity:  name={} version={} source={} sha256={} (contract marketing:events@{})",
            id.name,
            id.version,
            id.source,
            self.plugin.digest(),
            self.plugin.contract_version()
        );
        println!("loaded in: {:.1} ms", self.load_time.as_secs_f64() * 1000.0);
    }
}

/// Returns the number of rejected events (the exit code is 0 only when the
/// component loaded and every sample event was accepted).
pub fn run(component: &Path, samples: &[PathBuf], json: bool) -> anyhow::Result<usize> {
    let loaded = Loaded::new(component)?;
    let plugin = &loaded.plugin;
    if !json {
        loaded.print_header();
    }
    let mut rejected = 0;
    for sample in samples {
        let text = std::fs::read_to_string(sample)
            .with_context(|| format!("cannot read {}", sample.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", sample.display()))?;
        let events: Vec<String> = match value {
            serde_json::Value::Array(items) => items.iter().map(|v| v.to_string()).collect(),
            other => vec![other.to_string()],
        };
        let results = plugin
            .normalize_batch_blocking(&events)
            .with_context(|| format!("plugin call failed on {}", sample.display()))?;
        for (i, r) in results.iter().enumerate() {
            if matches!(r, EventResult::Rejected(_)) {
                rejected += 1;
            }
            print_verdict(sample, i, r, json);
        }
    }
    Ok(rejected)
}

/// One line per event (JSON with `--json`), plus one per issue of a rejection.
fn print_verdict(sample: &Path, i: usize, r: &EventResult, json: bool) {
    match r {
        EventResult::Ok(e) if json => {
            println!(
                "{}",
                serde_json::json!({"sample": sample, "index": i, "ok": e})
            );
        }
        EventResult::Ok(e) => {
            println!(
                "{}[{i}] OK       {} {} {}/{} at {} user={} revenue={} campaign={}",
                sample.display(),
                e.event_id,
                e.source,
                e.funnel_stage.as_str(),
                e.event_type,
                e.occurred_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                e.user_id,
                e.revenue.as_deref().unwrap_or("-"),
                e.campaign_id.as_deref().unwrap_or("-"),
            );
        }
        EventResult::Rejected(issues) if json => {
            println!(
                "{}",
                serde_json::json!({"sample": sample, "index": i, "rejected": issues})
            );
        }
        EventResult::Rejected(issues) => {
            println!("{}[{i}] REJECTED", sample.display());
            for issue in issues {
                println!("    - {issue}");
            }
        }
    }
}
