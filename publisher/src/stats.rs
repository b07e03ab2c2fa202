//! Counting POST outcomes and turning them into the final summary (human
//! text or one JSON line).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::send::PostOutcome;

/// How many gateway/transport error messages a summary keeps.
const MAX_ERROR_SAMPLES: usize = 10;

/// What a POST carried, as far as the summary cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostCounts {
    /// Events in the body.
    pub events: u64,
    /// New valid events.
    pub valid_unique: u64,
    /// Re-sent events.
    pub duplicates: u64,
    /// Corrupted events.
    pub corrupted: u64,
}

impl From<&Batch> for PostCounts {
    fn from(b: &Batch) -> Self {
        Self {
            events: b.len() as u64,
            valid_unique: b.valid_unique_ids.len() as u64,
            duplicates: b.duplicates() as u64,
            corrupted: b.corrupted() as u64,
        }
    }
}

/// POST latency percentiles, in milliseconds (responses only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Ledger totals, present when a ledger file was written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// The ledger file (one valid unique eventId per line).
    pub path: String,
    /// Ids written: valid events whose POST (or a later re-send's) got a 2xx.
    pub ids_written: u64,
    /// Valid unique ids whose POST failed (non-2xx, transport error) or was
    /// aborted at shutdown, and that were never written. An aborted POST may
    /// still have reached the gateway.
    pub ids_not_delivered: u64,
}

/// The final report of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `stream` or `load`.
    pub mode: String,
    /// The generator seed (re-run with `--seed` to reproduce the events).
    pub seed: u64,
    /// Wall time of the run.
    pub elapsed_secs: f64,
    /// POSTs that completed (answered or failed in transport).
    pub posts: u64,
    /// POSTs answered 2xx.
    pub posts_ok: u64,
    /// Events in completed POSTs.
    pub sent: u64,
    /// New valid events among `sent`.
    pub sent_valid_unique: u64,
    /// Re-sent events among `sent`.
    pub sent_duplicates: u64,
    /// Corrupted events among `sent`.
    pub sent_corrupted: u64,
    /// Sum of the gateway's `accepted`.
    pub accepted: u64,
    /// Sum of the gateway's `rejected`.
    pub rejected: u64,
    /// Sum of the gateway's `duplicates`: events of identical bodies sent
    /// again within JetStream's duplicate window. An event re-sent inside
    /// another request counts as `accepted` (the database drops it), so
    /// `accepted` = `sent_valid_unique` + `sent_duplicates` when no body is
    /// sent twice.
    pub duplicates: u64,
    /// 2xx answers whose body was not `{"accepted":..}` JSON.
    pub replies_without_counts: u64,
    /// Non-2xx answers by status code.
    pub http_errors: BTreeMap<String, u64>,
    /// POSTs without an HTTP answer.
    pub transport_errors: u64,
    /// POSTs cancelled at shutdown before they completed.
    pub aborted_posts: u64,
    /// Events in aborted POSTs.
    pub aborted_events: u64,
    /// Latency of answered POSTs.
    pub latency: Latency,
    /// `sent / elapsed_secs`.
    pub events_per_sec: f64,
    /// A few error messages (gateway `errors` entries, non-2xx bodies,
    /// transport errors).
    pub error_samples: Vec<String>,
    /// Ledger totals when `--ledger` was given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ledger: Option<LedgerTotals>,
}

/// Accumulates outcomes during a run.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    latency_us: Histogram<u64>,
    summary: Summary,
}

impl Stats {
    /// Starts the clock for a run in `mode` with generator `seed`.
    pub fn new(mode: &str, seed: u64) -> Self {
        // Constant, valid bounds: 1 µs .. 1 h with 3 significant digits.
        let latency_us = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("constant histogram bounds are valid");
        Self {
            started: Instant::now(),
            latency_us,
            summary: Summary {
                mode: mode.to_owned(),
                seed,
                ..Summary::default()
            },
        }
    }

    /// Records one completed POST.
    pub fn record(&mut self, counts: PostCounts, outcome: &PostOutcome) {
        let s = &mut self.summary;
        s.posts += 1;
        s.sent += counts.events;
        s.sent_valid_unique += counts.valid_unique;
        s.sent_duplicates += counts.duplicates;
        s.sent_corrupted += counts.corrupted;
        match outcome {
            PostOutcome::Response {
                status,
                latency,
                reply,
                body_snippet,
            } => {
                self.latency_us.saturating_record(micros(*latency));
                if (200..300).contains(status) {
                    s.posts_ok += 1;
                    match reply {
                        Some(r) => {
                            s.accepted += r.accepted;
                            s.rejected += r.rejected;
                            s.duplicates += r.duplicates;
                            for e in &r.errors {
                                push_sample(&mut s.error_samples, e.to_string());
                            }
                        }
                        None => s.replies_without_counts += 1,
                    }
                } else {
                    *s.http_errors.entry(status.to_string()).or_default() += 1;
                    push_sample(
                        &mut s.error_samples,
                        format!("HTTP {status}: {body_snippet}"),
                    );
                }
            }
            PostOutcome::Transport { error, .. } => {
                s.transport_errors += 1;
                push_sample(&mut s.error_samples, error.clone());
            }
        }
    }

    /// Records a POST cancelled at shutdown.
    pub fn record_aborted(&mut self, counts: PostCounts) {
        self.summary.aborted_posts += 1;
        self.summary.aborted_events += counts.events;
    }

    /// Events in completed POSTs so far.
    pub fn sent(&self) -> u64 {
        self.summary.sent
    }

    /// The summary as of now.
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        let elapsed = self.started.elapsed();
        s.elapsed_secs = round3(elapsed.as_secs_f64());
        s.events_per_sec = if elapsed > Duration::ZERO {
            round3(s.sent as f64 / elapsed.as_secs_f64())
        } else {
            0.0
        };
        if !self.latency_us.is_empty() {
            let ms = |us: u64| round3(us as f64 / 1000.0);
            s.latency = Latency {
                p50_ms: ms(self.latency_us.value_at_quantile(0.50)),
                p90_ms: ms(self.latency_us.value_at_quantile(0.90)),
                p99_ms: ms(self.latency_us.value_at_quantile(0.99)),
                max_ms: ms(self.latency_us.max()),
            };
        }
        s
    }
}

impl Summary {
    /// The summary as one JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The summary as a few lines of text for people.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} run: {} events in {} POSTs over {:.1}s ({:.0} events/s), seed {}",
            self.mode, self.sent, self.posts, self.elapsed_secs, self.events_per_sec, self.seed
        );
        let _ = writeln!(
            o,
            "  generated: {} valid unique, {} duplicates, {} corrupted",
            self.sent_valid_unique, self.sent_duplicates, self.sent_corrupted
        );
        let _ = writeln!(
            o,
            "  gateway:   {} accepted, {} rejected, {} duplicates ({} POSTs ok, {} without counts)",
            self.accepted,
            self.rejected,
            self.duplicates,
            self.posts_ok,
            self.replies_without_counts
        );
        let http: Vec<String> = self
            .http_errors
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        let _ = writeln!(
            o,
            "  errors:    HTTP [{}], transport {}, aborted {} POSTs ({} events)",
            http.join(", "),
            self.transport_errors,
            self.aborted_posts,
            self.aborted_events
        );
        let l = &self.latency;
        let _ = writeln!(
            o,
            "  latency:   p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        );
        if let Some(ledger) = &self.ledger {
            let _ = writeln!(
                o,
                "  ledger:    {} ids written to {} ({} not delivered)",
                ledger.ids_written, ledger.path, ledger.ids_not_delivered
            );
        }
        for e in &self.error_samples {
            let _ = writeln!(o, "  e.g. {e}");
        }
        o
    }
}

fn push_sample(samples: &mut Vec<String>, msg: String) {
    if samples.len() < MAX_ERROR_SAMPLES {
        let mut msg = msg;
        if msg.len() > 300 {
            let cut = (0..=300)
                .rev()
                .find(|i| msg.is_char_boundary(*i))
                .unwrap_or(0);
            msg.truncate(cut);
            msg.push('…');
        }
        samples.push(msg);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
