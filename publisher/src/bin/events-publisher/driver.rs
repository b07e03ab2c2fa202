//! What both modes share: a generator thread preparing POST bodies ahead of
//! time, the set of POSTs in flight, outcome accounting, shutdown and drain.

use std::collections::HashMap;
use std::time::Duration;

use events_publisher::{
    Batch, Generator, Ledger, LedgerEntry, PostCounts, PostOutcome, Poster, Stats, Summary,
};
use indicatif::ProgressBar;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

/// A generated POST waiting to be sent.
pub struct Prepared {
    pub counts: PostCounts,
    pub entry: LedgerEntry,
    pub body: Vec<u8>,
}

impl From<Batch> for Prepared {
    fn from(b: Batch) -> Self {
        Self {
            counts: PostCounts::from(&b),
            body: b.body(),
            entry: LedgerEntry {
                valid_unique_ids: b.valid_unique_ids,
                duplicate_ids: b.duplicate_ids,
            },
        }
    }
}

/// Runs `gen` on its own thread: one batch per size `sizes` yields, at most
/// `ahead` batches buffered. The channel closes when `sizes` runs out.
pub fn spawn_producer(
    mut gen: Generator,
    mut sizes: impl FnMut() -> Option<usize> + Send + 'static,
    ahead: usize,
) -> mpsc::Receiver<Prepared> {
    let (tx, rx) = mpsc::channel(ahead.max(1));
    std::thread::Builder::new()
        .name("generator".into())
        .spawn(move || {
            while let Some(n) = sizes() {
                if tx.blocking_send(Prepared::from(gen.next_batch(n))).is_err() {
                    break; // the sender side stopped
                }
            }
        })
        .map_err(|e| tracing::error!("cannot start the generator thread: {e}"))
        .ok();
    rx
}

/// Ctrl-C / SIGTERM count: 1 = stop sending and drain, 2 = abort in-flight.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<u32>);

impl Shutdown {
    /// Installs the signal handlers now (before the first POST), so a signal
    /// that arrives early is never lost to the default or an inherited
    /// "ignore" disposition.
    pub fn install() -> Self {
        let (tx, rx) = watch::channel(0u32);
        let mut signals = Signals::install();
        tokio::spawn(async move {
            for n in 1..=2u32 {
                signals.next().await;
                if n == 1 {
                    tracing::info!("stopping: waiting for POSTs in flight (Ctrl-C again to abort)");
                } else {
                    tracing::info!("aborting POSTs in flight");
                }
                tx.send_replace(n);
            }
        });
        Self(rx)
    }

    /// Resolves once at least `level` signals arrived.
    pub async fn reached(&mut self, level: u32) {
        if self.0.wait_for(|n| *n >= level).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// SIGINT and SIGTERM, registered when created.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next signal (never, if none could be registered).
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.int) => {}
                _ = recv(&mut self.term) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

struct Pending {
    counts: PostCounts,
    entry: LedgerEntry,
}

/// POSTs in flight and the accounting of finished ones.
pub struct Driver {
    poster: Poster,
    stats: Stats,
    ledger: Option<Ledger>,
    inflight: JoinSet<(u64, PostOutcome)>,
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    progress: ProgressBar,
    /// Stream mode logs every POST; load mode only errors at debug level.
    chatty: bool,
}

impl Driver {
    pub fn new(
        poster: Poster,
        stats: Stats,
        ledger: Option<Ledger>,
        progress: ProgressBar,
        chatty: bool,
    ) -> Self {
        Self {
            poster,
            stats,
            ledger,
            inflight: JoinSet::new(),
            pending: HashMap::new(),
            next_seq: 1,
            progress,
            chatty,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Starts one POST (no waiting for earlier ones).
    pub fn launch(&mut self, p: Prepared) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let poster = self.poster.clone();
        let body = p.body;
        self.pending.insert(
            seq,
            Pending {
                counts: p.counts,
                entry: p.entry,
            },
        );
        self.inflight
            .spawn(async move { (seq, poster.post(seq, body).await) });
    }

    /// Waits for the next POST to finish and accounts for it. Returns false
    /// when nothing is in flight.
    pub async fn complete_one(&mut self) -> bool {
        match self.inflight.join_next().await {
            Some(r) => {
                self.on_joined(r);
                true
            }
            None => false,
        }
    }

    fn on_joined(&mut self, r: Result<(u64, PostOutcome), JoinError>) {
        match r {
            Ok((seq, outcome)) => self.on_outcome(seq, outcome),
            Err(e) => tracing::error!("a POST task failed: {e}"),
        }
    }

    fn on_outcome(&mut self, seq: u64, outcome: PostOutcome) {
        let Some(p) = self.pending.remove(&seq) else {
            return;
        };
        self.stats.record(p.counts, &outcome);
        self.progress.inc(p.counts.events);
        let ok = outcome.is_success();
        match &outcome {
            PostOutcome::Response {
                status,
                latency,
                reply,
                body_snippet,
            } => {
                if ok && self.chatty {
                    let counts = reply.as_ref().map_or(String::new(), |r| {
                        format!(
                            " (accepted {}, rejected {}, duplicates {})",
                            r.accepted, r.rejected, r.duplicates
                        )
                    });
                    tracing::info!(
                        "POST #{seq}: {} events -> {status} in {} ms{counts}",
                        p.counts.events,
                        latency.as_millis()
                    );
                } else if !ok {
                    let msg = format!(
                        "POST #{seq}: {} events -> HTTP {status} in {} ms: {body_snippet}",
                        p.counts.events,
                        latency.as_millis()
                    );
                    if self.chatty {
                        tracing::warn!("{msg}");
                    } else {
                        tracing::debug!("{msg}");
                    }
                }
            }
            PostOutcome::Transport { latency, error } => {
                let msg = format!(
                    "POST #{seq}: {} events -> no answer after {} ms: {error}",
                    p.counts.events,
                    latency.as_millis()
                );
                if self.chatty {
                    tracing::warn!("{msg}");
                } else {
                    tracing::debug!("{msg}");
                }
            }
        }
        self.ledger_record(&p.entry, ok);
    }

    fn ledger_record(&mut self, entry: &LedgerEntry, delivered: bool) {
        if let Some(l) = self.ledger.as_mut() {
            if let Err(e) = l.record(entry, delivered) {
                tracing::error!("ledger {}: {e}; ledger disabled", l.path().display());
                self.ledger = None;
            }
        }
    }

    /// Waits for the POSTs in flight, at most `grace`, or until a second
    /// signal; whatever is left is aborted and counted as such.
    pub async fn drain(&mut self, grace: Duration, shutdown: &mut Shutdown) {
        let deadline = Instant::now() + grace;
        while !self.inflight.is_empty() {
            tokio::select! {
                biased;
                _ = shutdown.reached(2) => break,
                _ = tokio::time::sleep_until(deadline) => break,
                Some(r) = self.inflight.join_next() => self.on_joined(r),
            }
        }
        self.inflight.abort_all();
        while let Some(r) = self.inflight.join_next().await {
            if let Ok((seq, outcome)) = r {
                self.on_outcome(seq, outcome); // finished just before the abort
            }
        }
        let left: Vec<u64> = self.pending.keys().copied().collect();
        for seq in left {
            if let Some(p) = self.pending.remove(&seq) {
                self.stats.record_aborted(p.counts);
                self.ledger_record(&p.entry, false);
            }
        }
    }

    /// Final summary; writes the ledger's summary file when there is one.
    pub fn finish(mut self) -> Summary {
        self.progress.finish_and_clear();
        let mut summary = self.stats.summary();
        if let Some(ledger) = self.ledger.take() {
            summary.ledger = Some(ledger.totals());
            let path = ledger.path().display().to_string();
            if let Err(e) = ledger.finish(&summary) {
                tracing::error!("ledger {path}: {e}");
            }
        }
        summary
    }
}
