//! Hot swap and pickup by polling `PLUGINS_DIR`.
//!
//! Polling (size + mtime) rather than inotify: it works the same on bind
//! mounts, network volumes and in containers, and a once-a-second stat of a
//! handful of files costs nothing. A replaced file becomes the active version
//! for new calls; calls in flight keep the `Arc<Plugin>` they started with. A
//! file that does not load is refused with a log line and the previous
//! version stays active.
//!
//! A file that disappears unloads its source only after it has stayed away
//! for `PLUGINS_REMOVE_GRACE_MS`: a remove-then-copy replacement (what many
//! deploy tools do) must not leave a gap between two scans where the source
//! has no plugin.
use super::{registry::wasm_files, registry::PluginRuntime, types::Identity};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Instant, SystemTime},
};
use tokio_util::sync::CancellationToken;

/// What a file looked like: size and modification time.
pub(super) type Stamp = (u64, Option<SystemTime>);

/// What one scan changed.
#[derive(Debug, Default, PartialEq)]
pub struct ScanReport {
    pub activated: Vec<Identity>,
    pub refused: Vec<(PathBuf, String)>,
    pub removed: Vec<String>,
}

pub struct Watcher {
    runtime: PluginRuntime,
    stamps: BTreeMap<PathBuf, Stamp>,
    /// Active plugins' files found missing, and since when.
    missing: BTreeMap<PathBuf, Instant>,
}

pub(super) fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

impl PluginRuntime {
    /// A watcher that knows the active plugins' files as they were when
    /// loaded: a file added or changed since (e.g. during `load_dir`) is
    /// picked up by the first scan instead of being taken as loaded.
    pub fn watcher(&self) -> Watcher {
        let stamps = self
            .snapshot()
            .into_values()
            .filter_map(|p| p.loaded_stamp.map(|s| (p.path().to_path_buf(), s)))
            .collect();
        Watcher {
            runtime: self.clone(),
            stamps,
            missing: BTreeMap::new(),
        }
    }
}

impl Watcher {
    /// Rescans the directory once and applies what changed.
    pub fn scan(&mut self) -> ScanReport {
        let mut report = ScanReport::default();
        let files = match wasm_files(&self.runtime.config().dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot scan the plugins directory");
                return report;
            }
        };
        let mut active = self.runtime.snapshot();
        let before: Vec<_> = active
            .iter()
            .map(|(s, p)| {
                (
                    s.clone(),
                    p.path().to_path_buf(),
                    p.identity().version.clone(),
                )
            })
            .collect();

        // Files that stayed away for the grace period take their source
        // with them; until then the source keeps its plugin.
        self.stamps.retain(|path, _| files.contains(path));
        self.missing.retain(|path, _| !files.contains(path));
        let grace = self.runtime.config().remove_grace;
        let missing = &mut self.missing;
        active.retain(|source, plugin| {
            let path = plugin.path();
            if files.iter().any(|f| f == path) {
                return true;
            }
            let since = *missing.entry(path.to_path_buf()).or_insert_with(|| {
                if !grace.is_zero() {
                    tracing::warn!(source, path = %path.display(), grace_ms = grace.as_millis() as u64, "plugin file missing; the source is unloaded unless it returns");
                }
                Instant::now()
            });
            if since.elapsed() < grace {
                return true;
            }
            tracing::warn!(source, path = %path.display(), "plugin file removed, source unloaded");
            missing.remove(path);
            report.removed.push(source.clone());
            false
        });

        for path in files.iter().cloned() {
            let Some(now) = stamp(&path) else { continue };
            if self.stamps.get(&path) == Some(&now) {
                continue;
            }
            self.stamps.insert(path.clone(), now);
            let plugin = match self.runtime.load_file(&path) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "plugin file refused; the active version stays");
                    self.runtime
                        .metrics()
                        .reloads
                        .with_label_values(&["refused"])
                        .inc();
                    report.refused.push((path, e.to_string()));
                    continue;
                }
            };
            let source = plugin.identity().source.clone();
            // A source whose file is missing (within its grace) may be
            // taken over by a file of another name.
            let owner = active
                .get(&source)
                .filter(|o| o.path() != path && files.iter().any(|f| f == o.path()));
            if let Some(owner) = owner {
                let message = format!(
                    "source {source:?} is already served by {}",
                    owner.path().display()
                );
                tracing::error!(path = %path.display(), "plugin file refused: {message}");
                self.runtime
                    .metrics()
                    .reloads
                    .with_label_values(&["refused"])
                    .inc();
                report.refused.push((path, message));
                continue;
            }
            // The file may have changed which source it serves.
            active.retain(|s, p| !(p.path() == path && *s != source));
            tracing::info!(plugin = %plugin.identity(), path = %path.display(), "plugin activated");
            self.runtime
                .metrics()
                .reloads
                .with_label_values(&["activated"])
                .inc();
            report.activated.push(plugin.identity().clone());
            active.insert(source, plugin);
        }

        let after: Vec<_> = active
            .iter()
            .map(|(s, p)| {
                (
                    s.clone(),
                    p.path().to_path_buf(),
                    p.identity().version.clone(),
                )
            })
            .collect();
        if before != after || !report.activated.is_empty() {
            self.runtime.replace_all(active);
        }
        report
    }

    /// Scans every poll interval until `stop` is cancelled. Compilation is
    /// CPU-bound, so each scan runs on the blocking pool.
    pub fn spawn(mut self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let every = self.runtime.config().poll_interval;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                self = match tokio::task::spawn_blocking(move || {
                    self.scan();
                    self
                })
                .await
                {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::error!(error = %e, "plugin watcher stopped");
                        return;
                    }
                };
            }
        })
    }
}
