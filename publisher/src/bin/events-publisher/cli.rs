//! Command-line flags (each also readable from the environment).

use std::path::PathBuf;

use clap::Parser;

/// Stand-in for the external marketing-event publisher.
///
/// Stream mode (default) behaves like the real publisher: every
/// `--interval-ms` it POSTs an array of `--min-events`..`--max-events` events
/// without waiting for earlier POSTs, never retries and logs non-2xx answers.
/// Load mode (`--count N`) sends N events at `--rate` events/s with bounded
/// concurrency and reports throughput, latency and the gateway's counts.
#[derive(Debug, Clone, Parser)]
#[command(name = "events-publisher", version, about, long_about)]
pub struct Args {
    /// Where to POST the events (plain http).
    #[arg(
        long,
        env = "EVENT_ENDPOINT",
        default_value = "http://localhost:3000/webhook"
    )]
    pub endpoint: String,

    /// Stream mode: milliseconds between POSTs.
    #[arg(long, env = "PUBLISHER_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,

    /// Stream mode: fewest events per POST.
    #[arg(long, env = "PUBLISHER_MIN_EVENTS", default_value_t = 1000)]
    pub min_events: usize,

    /// Stream mode: most events per POST.
    #[arg(long, env = "PUBLISHER_MAX_EVENTS", default_value_t = 50_000)]
    pub max_events: usize,

    /// Probability that a POST ends with one corrupted event.
    #[arg(long, env = "PUBLISHER_CORRUPT_RATE", default_value_t = 0.1, value_parser = probability)]
    pub corrupt_rate: f64,

    /// Probability that an event is a byte-identical re-send of an earlier one.
    #[arg(long, env = "PUBLISHER_DUPLICATE_RATE", default_value_t = 0.0, value_parser = probability)]
    pub duplicate_rate: f64,

    /// Out-of-order timestamps: spread over the last 15 min (some up to 2 days old).
    #[arg(long, env = "PUBLISHER_SHUFFLE")]
    pub shuffle: bool,

    /// Share of Facebook events (the rest are TikTok).
    #[arg(long, env = "PUBLISHER_FACEBOOK_SHARE", default_value_t = 0.5, value_parser = probability)]
    pub facebook_share: f64,

    /// RNG seed, to reproduce a run's events (random when absent; printed in the summary).
    #[arg(long, env = "PUBLISHER_SEED")]
    pub seed: Option<u64>,

    /// Stream mode: stop after this many seconds.
    #[arg(long, env = "PUBLISHER_DURATION_SECS")]
    pub duration_secs: Option<f64>,

    /// Stream mode: stop after this many POSTs.
    #[arg(long, env = "PUBLISHER_POSTS")]
    pub posts: Option<u64>,

    /// Load mode: send this many events in total, then stop.
    #[arg(long, env = "PUBLISHER_COUNT")]
    pub count: Option<u64>,

    /// Load mode: target events per second (0 = as fast as possible).
    #[arg(long, env = "PUBLISHER_RATE", default_value_t = 0.0, requires = "count", value_parser = non_negative)]
    pub rate: f64,

    /// Load mode: events per POST (default: the rate, at most 50000).
    #[arg(long, env = "PUBLISHER_BATCH_SIZE", requires = "count", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,

    /// Load mode: most POSTs in flight at once.
    #[arg(long, env = "PUBLISHER_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,

    /// Sign bodies: header `X-Signature-256: sha256=<hex HMAC-SHA256>`.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Send `x-correlation-id: <prefix>-<n>` with POST number n.
    #[arg(long, env = "PUBLISHER_CORRELATION_ID_PREFIX")]
    pub correlation_id_prefix: Option<String>,

    /// Write the valid eventIds delivered (2xx) to FILE, one per line, and the
    /// summary to FILE.summary.json.
    #[arg(long, env = "PUBLISHER_LEDGER", value_name = "FILE")]
    pub ledger: Option<PathBuf>,

    /// Also print the summary as one JSON line on stdout (the text goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// Per-POST timeout, seconds.
    #[arg(long, env = "PUBLISHER_TIMEOUT_SECS", default_value_t = 60.0, value_parser = positive)]
    pub timeout_secs: f64,

    /// On stop, how long to wait for POSTs in flight (a second Ctrl-C aborts them).
    #[arg(long, env = "PUBLISHER_DRAIN_SECS", default_value_t = 30.0, value_parser = non_negative)]
    pub drain_secs: f64,

    /// Never draw the load-mode progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl Args {
    /// Cross-flag checks clap cannot express. `Err` is a usage message.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_events > self.max_events {
            return Err(format!(
                "--min-events ({}) must not exceed --max-events ({})",
                self.min_events, self.max_events
            ));
        }
        if let Some(d) = self.duration_secs {
            if !(d.is_finite() && d >= 0.0) {
                return Err(format!(
                    "--duration-secs must be a non-negative number, got {d}"
                ));
            }
        }
        if self.count.is_some() && (self.duration_secs.is_some() || self.posts.is_some()) {
            return Err("--duration-secs/--posts apply to stream mode, not with --count".into());
        }
        Ok(())
    }
}

fn probability(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a probability in 0..=1"))
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be a finite number >= 0"))
    }
}

fn positive(s: &str) -> Result<f64, String> {
    let v = non_negative(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err("must be > 0".into())
    }
}
