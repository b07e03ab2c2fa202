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
use super::{
    files::{self, Stamp},
    instance::Plugin,
    registry::PluginRuntime,
    types::Identity,
};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

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

type Active = BTreeMap<String, Arc<Plugin>>;

impl PluginRuntime {
    /// A watcher that knows the active plugins' files as they were when
    /// loaded: a file added or changed since (e.g. during `load_dir`) is
    /// picked up by the first scan instead of being taken as loaded.
    pub fn watcher(&self) -> Watcher {
        let mut stamps = self.stamps();
        let active = self.snapshot();
        stamps.retain(|path, _| active.values().any(|p| p.path() == path));
        Watcher {
            runtime: self.clone(),
            stamps,
            missing: BTreeMap::new(),
        }
    }
}

/// Which file serves which source at which version: a scan that changes
/// none of it (and activates nothing) leaves the runtime alone.
fn summary(active: &Active) -> Vec<(String, PathBuf, String)> {
    active
        .iter()
        .map(|(s, p)| {
            (
                s.clone(),
                p.path().to_path_buf(),
                p.identity().version.clone(),
            )
        })
        .collect()
}

impl Watcher {
    /// Rescans the directory once and applies what changed.
    pub fn scan(&mut self) -> ScanReport {
        let mut report = ScanReport::default();
        let files = match files::wasm_files(&self.runtime.config().dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot scan the plugins directory");
                return report;
            }
        };
        let mut active = self.runtime.snapshot();
        let before = summary(&active);
        self.stamps.retain(|path, _| files.contains(path));
        self.missing.retain(|path, _| !files.contains(path));
        self.unload_missing(&mut active, &files, &mut report);
        for path in &files {
            let Some(now) = files::stamp(path) else {
                continue;
            };
            if self.stamps.get(path) == Some(&now) {
                continue;
            }
            self.stamps.insert(path.clone(), now);
            self.activate(path, &mut active, &files, &mut report);
        }
        if before != summary(&active) || !report.activated.is_empty() {
            let mut loaded = self.stamps.clone();
            loaded.retain(|path, _| active.values().any(|p| p.path() == path));
            self.runtime.replace_all(active);
            self.runtime.set_stamps(loaded);
        }
        report
    }

    /// Files that stayed away for the grace period take their source with
    /// them; until then the source keeps its plugin.
    fn unload_missing(&mut self, active: &mut Active, files: &[PathBuf], report: &mut ScanReport) {
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
    }

    /// Loads a new or changed file and makes it its source's plugin, unless
    /// it does not load or another present file serves that source.
    fn activate(
        &self,
        path: &Path,
        active: &mut Active,
        files: &[PathBuf],
        report: &mut ScanReport,
    ) {
        let plugin = match self.runtime.load_file(path) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "plugin file refused; the active version stays");
                self.refuse(report, path, e.to_string());
                return;
            }
        };
        let source = plugin.identity().source.clone();
        // A source whose file is missing (within its grace) may be taken
        // over by a file of another name.
        let owner = active
            .get(&source)
            .filter(|o| o.path() != path && files.iter().any(|f| f == o.path()));
        if let Some(owner) = owner {
            let message = format!(
                "source {source:?} is already served by {}",
                owner.path().display()
            );
            tracing::error!(path = %path.display(), "plugin file refused: {message}");
            self.refuse(report, path, message);
            return;
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

    fn refuse(&self, report: &mut ScanReport, path: &Path, message: String) {
        self.runtime
            .metrics()
            .reloads
            .with_label_values(&["refused"])
            .inc();
        report.refused.push((path.to_path_buf(), message));
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
