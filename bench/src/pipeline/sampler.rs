//! The once-a-second sampler: while the publisher runs and until the
//! pipeline has drained, what the gateway stored, what the collectors
//! committed, JetStream pending, RSS/CPU of every process and machine CPU.
use crate::metrics::{self, Scrape};
use crate::procfs;
use anyhow::Result;
use sqlx::{PgConnection, Row};
use std::{
    collections::BTreeMap,
    fs::File,
    io::Write as _,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use tokio::task::JoinHandle;

/// What the sampler watches.
pub(super) struct Targets {
    pub(super) http: reqwest::Client,
    pub(super) js: async_nats::jetstream::Context,
    pub(super) stream: String,
    pub(super) db: String,
    /// The gateway's first, then the collectors'.
    pub(super) ports: Vec<u16>,
    /// The hosts', then the publisher's.
    pub(super) pids: Vec<u32>,
}

/// A running sampler: its samples, and the hosts' active PostgreSQL
/// backends by wait event ("on CPU" = no wait; "(samples)" counts samples).
pub(super) struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    waits: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Samples once a second from now, times counted from `t0`.
    pub(super) fn start(targets: Targets, pg: PgConnection, t0: Instant) -> Self {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let waits: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(sample_until_stopped(
            targets,
            pg,
            t0,
            samples.clone(),
            waits.clone(),
            stop.clone(),
        ));
        Self {
            samples,
            waits,
            stop,
            task,
        }
    }

    /// The latest sample (a default one before the first).
    pub(super) fn last(&self) -> Sample {
        self.samples
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// Stops after the current sample: every sample and the wait-event counts.
    pub(super) async fn stop(self) -> (Vec<Sample>, BTreeMap<String, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let samples = std::mem::take(&mut *self.samples.lock().unwrap());
        let waits = std::mem::take(&mut *self.waits.lock().unwrap());
        (samples, waits)
    }
}

async fn sample_until_stopped(
    targets: Targets,
    mut pg: PgConnection,
    t0: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    waits: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published = Published::default();
    loop {
        tick.tick().await;
        let s = take_sample(&targets, t0, &mut published).await;
        samples.lock().unwrap().push(s);
        // What the hosts' PostgreSQL backends are doing right now.
        if let Ok(rows) = sqlx::query(
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'",
        )
        .bind(&targets.db)
        .fetch_all(&mut pg)
        .await
        {
            let mut w = waits.lock().unwrap();
            *w.entry("(samples)".to_string()).or_insert(0) += 1;
            for r in rows {
                *w.entry(r.get::<String, _>(0)).or_insert(0) += 1;
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
}

/// One second of the phase, as seen from outside.
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) t: f64,
    /// Events the gateway has stored in JetStream (see [`Published`]).
    pub(super) published: f64,
    pub(super) inserted: f64,
    pub(super) pending: f64,
    pub(super) rss_mb: Vec<f64>,
    pub(super) cpu_secs: Vec<f64>,
    /// CPU seconds so far of nats-server and PostgreSQL's aux processes.
    pub(super) nats_cpu: f64,
    pub(super) pg_aux_cpu: f64,
    pub(super) machine: (u64, u64),
}

/// Events the gateway has stored in JetStream so far. A gateway that
/// publishes one message per event (no `gateway_slices_published_total`)
/// moves its counters only when a whole POST is acked, so the events
/// stream's last sequence is used. A gateway that publishes slices of many
/// events counts `gateway_events_accepted_total` per slice acked: that is used.
#[derive(Default)]
struct Published {
    sliced: bool,
    last: f64,
}

impl Published {
    fn update(&mut self, gateway: Option<&Scrape>, last_sequence: Option<u64>) -> f64 {
        if let Some(g) = gateway {
            self.sliced |= g.0.contains_key("gateway_slices_published_total");
        }
        let now = if self.sliced {
            gateway.map(|g| g.get("gateway_events_accepted_total"))
        } else {
            last_sequence.map(|s| s as f64)
        };
        // A failed scrape keeps the previous value.
        self.last = now.unwrap_or(self.last);
        self.last
    }
}

/// Scrapes the hosts, asks JetStream and reads /proc, once.
async fn take_sample(targets: &Targets, t0: Instant, published: &mut Published) -> Sample {
    let Targets {
        http,
        js,
        stream,
        ports,
        pids,
        ..
    } = targets;
    let mut col = Scrape::default();
    // ports[0] is the gateway, the rest are collectors.
    for port in &ports[1..] {
        if let Some(s) = metrics::scrape(http, *port).await {
            col.merge(&s);
        }
    }
    let gateway = metrics::scrape(http, ports[0]).await;
    let last_sequence = js
        .get_stream(stream)
        .await
        .ok()
        .map(|s| s.cached_info().state.last_sequence);
    let published = published.update(gateway.as_ref(), last_sequence);
    let procs: Vec<procfs::ProcSample> = pids
        .iter()
        .map(|p| procfs::process(*p).unwrap_or_default())
        .collect();
    let services = procfs::service_cpu();
    Sample {
        nats_cpu: service_sum(&services, "nats-server"),
        pg_aux_cpu: service_sum(&services, "postgres-aux"),
        t: t0.elapsed().as_secs_f64(),
        published,
        inserted: col.get("collector_events_inserted_total"),
        pending: col.get("collector_consumer_pending"),
        rss_mb: procs.iter().map(|p| p.rss_kb as f64 / 1024.0).collect(),
        cpu_secs: procs.iter().map(|p| p.cpu_secs).collect(),
        machine: procfs::machine_cpu().unwrap_or_default(),
    }
}

/// CPU seconds of the shared service `name` (see [`procfs::service_cpu`]).
pub(super) fn service_sum(v: &[(String, f64)], name: &str) -> f64 {
    v.iter().filter(|(n, _)| n == name).map(|(_, c)| c).sum()
}

/// `f` at time `t`, linearly interpolated between the samples around it
/// (the first or last sample outside their range).
pub(super) fn value_at(samples: &[Sample], t: f64, f: impl Fn(&Sample) -> f64) -> f64 {
    let Some(first) = samples.first() else {
        return 0.0;
    };
    if t <= first.t {
        return f(first);
    }
    for w in samples.windows(2) {
        if w[1].t >= t {
            let span = (w[1].t - w[0].t).max(1e-9);
            return f(&w[0]) + (f(&w[1]) - f(&w[0])) * (t - w[0].t) / span;
        }
    }
    samples.last().map(f).unwrap_or(0.0)
}

/// Events stored in JetStream and not yet committed.
pub(super) fn lag(s: &Sample) -> i64 {
    (s.published - s.inserted) as i64
}

/// The per-second series, for later inspection (not part of the results file).
pub(super) fn write_csv(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut f = File::create(path)?;
    writeln!(f, "t,published,inserted,lag,pending,rss_gateway_mb,rss_fb_mb,rss_ttk_mb,rss_publisher_mb,cpu_gateway_s,cpu_fb_s,cpu_ttk_s,cpu_publisher_s,cpu_nats_s")?;
    for s in samples {
        let v = |v: &Vec<f64>, i: usize| v.get(i).copied().unwrap_or(0.0);
        writeln!(
            f,
            "{:.1},{},{},{},{},{:.0},{:.0},{:.0},{:.0},{:.1},{:.1},{:.1},{:.1},{:.1}",
            s.t,
            s.published,
            s.inserted,
            lag(s),
            s.pending,
            v(&s.rss_mb, 0),
            v(&s.rss_mb, 1),
            v(&s.rss_mb, 2),
            v(&s.rss_mb, 3),
            v(&s.cpu_secs, 0),
            v(&s.cpu_secs, 1),
            v(&s.cpu_secs, 2),
            v(&s.cpu_secs, 3),
            s.nats_cpu
        )?;
    }
    Ok(())
}
