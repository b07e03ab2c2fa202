//! Load mode: N events at R events/s in POSTs of a fixed size, with at most
//! `--concurrency` POSTs in flight.
//!
//! Every POST body is generated and serialized by [`prepare`] *before* the
//! timed part, so that sending costs the load generator little CPU (on a
//! small machine it shares the cores with what it measures). The price is
//! memory: all bodies are held at once, about 420 B of JSON per event plus
//! its id for the ledger: 1,000,000 events are 416 MB of JSON and a peak RSS
//! of ≈ 640 MB while building (acceptable for a load test; each body is
//! freed once its POST completes). Building them takes ~15–20 s per million
//! events on a busy 2-core machine. The summary's clock starts after
//! [`prepare`], at the first POST.

use std::time::Duration;

use events_publisher::Generator;
use tokio::time::Instant;

use crate::cli::Args;
use crate::driver::{spawn_producer, Driver, Prepared, Shutdown};

/// Largest POST the real publisher sends.
const MAX_BATCH: u64 = 50_000;

/// Events per POST: `--batch-size`, else about one POST per second at the
/// target rate (50000 when unthrottled), never more than `count`.
pub fn batch_size(args: &Args, count: u64) -> u64 {
    let size = args.batch_size.unwrap_or_else(|| {
        if args.rate > 0.0 {
            (args.rate.ceil() as u64).clamp(1, MAX_BATCH)
        } else {
            MAX_BATCH
        }
    });
    size.min(count).max(1)
}

/// Logs what the run will do (before the progress bar appears).
pub fn announce(args: &Args, count: u64) {
    tracing::info!(
        "load mode: {count} events in POSTs of {} at {} to {} (concurrency {})",
        batch_size(args, count),
        if args.rate > 0.0 {
            format!("{} events/s", args.rate)
        } else {
            "full speed".to_owned()
        },
        args.endpoint,
        args.concurrency
    );
}

/// Generates every POST body of the run (on the generator thread) and
/// returns them in send order. `None` when a signal arrived meanwhile.
pub async fn prepare(
    args: &Args,
    count: u64,
    gen: Generator,
    shutdown: &mut Shutdown,
) -> Option<Vec<Prepared>> {
    let started = std::time::Instant::now();
    let size = batch_size(args, count);
    let mut left = count;
    let sizes = move || {
        if left == 0 {
            return None;
        }
        let n = left.min(size);
        left -= n;
        Some(n as usize)
    };
    let mut batches = spawn_producer(gen, sizes, 4);
    let mut all = Vec::with_capacity(count.div_ceil(size) as usize);
    let mut bytes = 0usize;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.reached(1) => return None,
            b = batches.recv() => match b {
                Some(b) => {
                    bytes += b.body.len();
                    all.push(b);
                }
                None => break,
            },
        }
    }
    tracing::info!(
        "load mode: {} bodies ({:.0} MB of JSON) built in {:.1}s; sending",
        all.len(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Some(all)
}

/// Sends the bodies [`prepare`] built: `--rate` paced, at most
/// `--concurrency` in flight.
pub async fn run(
    args: &Args,
    count: u64,
    bodies: Vec<Prepared>,
    driver: &mut Driver,
    shutdown: &mut Shutdown,
) {
    let concurrency = args.concurrency as usize;
    let mut batches = bodies.into_iter();
    let start = Instant::now();
    let mut launched: u64 = 0;
    'outer: loop {
        // Wait for a free slot.
        while driver.in_flight() >= concurrency {
            tokio::select! {
                biased;
                _ = shutdown.reached(1) => break 'outer,
                _ = driver.complete_one() => {}
            }
        }
        let Some(prepared) = batches.next() else {
            break;
        };
        // Pace: POST k is due when the events before it were due.
        if args.rate > 0.0 {
            let due = start + Duration::from_secs_f64(launched as f64 / args.rate);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.reached(1) => break 'outer,
                    _ = tokio::time::sleep_until(due) => break,
                    true = driver.complete_one(), if driver.in_flight() > 0 => {}
                }
            }
        }
        launched += prepared.counts.events;
        driver.launch(prepared);
    }
    // Bodies not sent (after a signal) are freed now, not at the end.
    drop(batches);
    // Finishing normally waits for every POST (each bounded by --timeout-secs);
    // after a signal, at most --drain-secs.
    let grace = if launched >= count {
        Duration::from_secs_f64(args.timeout_secs + 5.0)
    } else {
        Duration::from_secs_f64(args.drain_secs)
    };
    driver.drain(grace, shutdown).await;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn size(extra: &[&str], count: u64) -> u64 {
        let args =
            Args::try_parse_from(["events-publisher", "--count", "1"].iter().chain(extra)).unwrap();
        batch_size(&args, count)
    }

    #[test]
    fn batch_size_follows_rate_flag_and_count() {
        assert_eq!(size(&[], 1_000_000), 50_000);
        assert_eq!(size(&["--rate", "2000"], 1_000_000), 2_000);
        assert_eq!(size(&["--rate", "0.5"], 1_000_000), 1);
        assert_eq!(size(&["--rate", "1e9"], 1_000_000), 50_000);
        assert_eq!(
            size(&["--batch-size", "10", "--rate", "2000"], 1_000_000),
            10
        );
        assert_eq!(size(&[], 123), 123);
    }
}
