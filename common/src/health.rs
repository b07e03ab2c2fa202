//! Liveness and readiness.
//!
//! Readiness is the conjunction of named checks (e.g. `nats`, `database`,
//! `plugins`) that the service keeps up to date, and goes false for good once
//! the service starts draining.
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    checks: RwLock<BTreeMap<String, bool>>,
    draining: AtomicBool,
}

/// What `/health/ready` reports.
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub draining: bool,
    pub checks: BTreeMap<String, bool>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a check (initially failing until `set`).
    pub fn register(&self, name: &str) {
        self.set(name, false);
    }

    pub fn set(&self, name: &str, ok: bool) {
        if let Ok(mut checks) = self.inner.checks.write() {
            checks.insert(name.to_string(), ok);
        }
    }

    /// Marks the service as draining: not ready from now on.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn readiness(&self) -> Readiness {
        let checks = self
            .inner
            .checks
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        let draining = self.is_draining();
        Readiness {
            ready: !draining && checks.values().all(|ok| *ok),
            draining,
            checks,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().ready
    }

    /// Runs `probe` every `every` and records its answer under `name`, until
    /// `stop` is cancelled.
    pub fn spawn_probe<F, Fut>(
        &self,
        name: &str,
        every: Duration,
        stop: CancellationToken,
        probe: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        self.register(name);
        let health = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let ok = probe().await;
                health.set(&name, ok);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_not_draining() {
        let h = Health::new();
        assert!(h.is_ready(), "no checks yet means ready");
        h.register("db");
        assert!(!h.is_ready());
        h.set("db", true);
        assert!(h.is_ready());
        h.start_draining();
        assert!(!h.is_ready());
        assert!(h.readiness().draining);
    }
}
