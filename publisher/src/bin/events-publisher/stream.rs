//! Stream mode: like the real publisher, one POST every interval with a
//! random number of events, never waiting for earlier POSTs.

use std::time::Duration;

use events_publisher::Generator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};

use crate::cli::Args;
use crate::driver::{spawn_producer, Driver, Shutdown};

pub async fn run(args: &Args, gen: Generator, driver: &mut Driver, shutdown: &mut Shutdown) {
    let (min, max) = (args.min_events, args.max_events);
    let mut sizes_rng = StdRng::seed_from_u64(gen.seed() ^ 0x5eed_5172_e500);
    let mut remaining = args.posts;
    let sizes = move || {
        if let Some(r) = remaining.as_mut() {
            if *r == 0 {
                return None;
            }
            *r -= 1;
        }
        Some(sizes_rng.gen_range(min..=max))
    };
    let mut batches = spawn_producer(gen, sizes, 2);

    let deadline = args
        .duration_secs
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tracing::info!(
        "stream mode: POST every {} ms with {}..={} events to {}",
        args.interval_ms,
        min,
        max,
        args.endpoint
    );
    let signalled = loop {
        tokio::select! {
            biased;
            _ = shutdown.reached(1) => break true,
            _ = sleep_until_opt(deadline) => break false,
            true = driver.complete_one(), if driver.in_flight() > 0 => {}
            _ = ticker.tick() => {
                let next = tokio::select! {
                    _ = shutdown.reached(1) => break true,
                    p = batches.recv() => p,
                };
                match next {
                    Some(p) => driver.launch(p),
                    None => break false, // --posts reached
                }
            }
        }
    };
    drop(batches);
    // A normal end waits for every POST (each bounded by --timeout-secs);
    // after a signal, at most --drain-secs.
    let grace = if signalled {
        args.drain_secs
    } else {
        args.timeout_secs + 5.0
    };
    driver.drain(Duration::from_secs_f64(grace), shutdown).await;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
