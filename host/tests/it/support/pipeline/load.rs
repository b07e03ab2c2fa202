//! Background load: generated batches POSTed to gateways, with a ledger.
use super::{expected_counts, post, Ledger};
use events_publisher::{Batch, Generator, GeneratorConfig};
use serde_json::Value;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// How the background load is sent.
#[derive(Clone)]
pub struct LoadSpec {
    pub batches: usize,
    pub batch_size: usize,
    pub concurrency: usize,
    /// Pause between the starts of two POSTs.
    pub pause: Duration,
    pub gen: GeneratorConfig,
    /// Gateway webhook URLs, used round robin.
    pub targets: Vec<String>,
}

/// One POST of a load run.
#[derive(Debug, Clone)]
pub struct PostRecord {
    pub started: Instant,
    pub ended: Instant,
    /// `None`: transport error.
    pub status: Option<u16>,
    pub reply: Value,
    /// The exact answer if nothing failed: (accepted, rejected, duplicates).
    pub expected: (usize, usize, usize),
}

pub struct LoadResult {
    pub ledger: Ledger,
    pub posts: Vec<PostRecord>,
}

impl LoadResult {
    pub fn ok_posts(&self) -> usize {
        self.posts.iter().filter(|p| p.status == Some(200)).count()
    }

    /// Sums of `accepted`, `rejected`, `duplicates` over the 200 answers.
    pub fn totals(&self) -> (f64, f64, f64) {
        let sum = |k: &str| {
            self.posts
                .iter()
                .filter(|p| p.status == Some(200))
                .map(|p| p.reply[k].as_f64().unwrap_or(0.0))
                .sum()
        };
        (sum("accepted"), sum("rejected"), sum("duplicates"))
    }
}

/// Sends generated batches in the background; a POST answered 200 goes to
/// the certain ledger, any other outcome to the uncertain one.
pub fn spawn_load(http: reqwest::Client, spec: LoadSpec) -> tokio::task::JoinHandle<LoadResult> {
    tokio::spawn(async move {
        let mut gen = Generator::new(spec.gen.clone());
        let permits = Arc::new(tokio::sync::Semaphore::new(spec.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        // Generated up front, so that POSTs start when they are due.
        let batches: Vec<Batch> = (0..spec.batches)
            .map(|_| gen.next_batch(spec.batch_size))
            .collect();
        for (i, batch) in batches.into_iter().enumerate() {
            let permit = permits.clone().acquire_owned().await.expect("semaphore");
            let (http, url) = (http.clone(), spec.targets[i % spec.targets.len()].clone());
            tasks.spawn(async move {
                let started = Instant::now();
                let res = post(&http, &url, batch.body(), &[]).await;
                drop(permit);
                let (status, reply) = match res {
                    Ok((s, v)) => (Some(s), v),
                    Err(e) => (None, Value::String(e.to_string())),
                };
                let expected = expected_counts(&batch);
                (
                    i,
                    batch,
                    PostRecord {
                        started,
                        ended: Instant::now(),
                        status,
                        reply,
                        expected,
                    },
                )
            });
            tokio::time::sleep(spec.pause).await;
        }
        let mut done = Vec::new();
        while let Some(r) = tasks.join_next().await {
            done.push(r.expect("load task"));
        }
        done.sort_by_key(|(i, _, _)| *i);
        let mut ledger = Ledger::default();
        let batches: Vec<(Batch, bool)> = done
            .iter()
            .map(|(_, b, p)| (b.clone(), p.status == Some(200)))
            .collect();
        ledger.record(&batches);
        for (_, b, p) in &done {
            if p.status == Some(200) {
                let n = |k: &str| p.reply[k].as_u64().unwrap_or(u64::MAX) as usize;
                assert_eq!(
                    n("accepted") + n("rejected") + n("duplicates"),
                    b.len(),
                    "counts of {:?}",
                    p.reply
                );
            }
        }
        LoadResult {
            ledger,
            posts: done.into_iter().map(|(_, _, p)| p).collect(),
        }
    })
}
