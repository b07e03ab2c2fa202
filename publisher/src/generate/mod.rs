//! A seedable generator of realistic, spec-valid Facebook and TikTok events,
//! with the publisher's optional duplicates, out-of-order timestamps and
//! one-corrupted-event-per-POST behaviour.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::batch::{Batch, Corruption};
use crate::corrupt::CorruptionKind;
use crate::model::{FunnelStage, InvalidEventType, Source};

mod payload;
use payload::pick;

/// How a [`Generator`] behaves. Rates are probabilities in `0.0..=1.0`
/// (out-of-range values are clamped).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// RNG seed; `None` draws one from the OS (see [`Generator::seed`]).
    pub seed: Option<u64>,
    /// Share of Facebook events; the rest are TikTok. Default 0.5.
    pub facebook_share: f64,
    /// Share of top-funnel events among new events. Default 0.7.
    pub top_share: f64,
    /// Probability that an event slot re-sends (byte-identically) a valid
    /// event generated earlier instead of a new one. Default 0.
    pub duplicate_rate: f64,
    /// Probability that a batch carries one corrupted event at its end.
    /// Default 0.1, like the real publisher.
    pub corrupt_post_rate: f64,
    /// Spread timestamps over the last 15 minutes (and ~1 % up to two days
    /// back) in random order instead of ascending within the last second.
    pub shuffle_timestamps: bool,
    /// `None`: timestamps follow the wall clock. `Some(t)`: a virtual clock
    /// starting at `t` that advances one second per batch (reproducible).
    pub start_time: Option<DateTime<Utc>>,
    /// How many recent valid events are remembered as duplicate candidates.
    pub duplicate_pool: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: None,
            facebook_share: 0.5,
            top_share: 0.7,
            duplicate_rate: 0.0,
            corrupt_post_rate: 0.1,
            shuffle_timestamps: false,
            start_time: None,
            duplicate_pool: 10_000,
        }
    }
}

/// Produces events and [`Batch`]es. Same config and seed (with a fixed
/// `start_time`) → same output, byte for byte.
#[derive(Debug)]
pub struct Generator {
    cfg: GeneratorConfig,
    seed: u64,
    rng: StdRng,
    clock: Option<DateTime<Utc>>,
    pool: VecDeque<(String, Value)>,
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(mut cfg: GeneratorConfig) -> Self {
        for p in [
            &mut cfg.facebook_share,
            &mut cfg.top_share,
            &mut cfg.duplicate_rate,
            &mut cfg.corrupt_post_rate,
        ] {
            *p = if p.is_finite() {
                p.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        let seed = cfg.seed.unwrap_or_else(rand::random);
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
            clock: cfg.start_time,
            pool: VecDeque::with_capacity(cfg.duplicate_pool.min(100_000)),
            cfg,
        }
    }

    /// The seed in use (the drawn one when the config had none).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The effective (clamped) configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// The next POST body of exactly `n` events: new valid events (and, with
    /// `duplicate_rate`, re-sends of earlier ones), the last of which is
    /// replaced by one corrupted event with probability `corrupt_post_rate`.
    pub fn next_batch(&mut self, n: usize) -> Batch {
        let corrupt = n > 0 && self.rng.gen_bool(self.cfg.corrupt_post_rate);
        let regular = if corrupt { n - 1 } else { n };
        let now = self.now();
        let times = self.timestamps(now, regular);
        let mut batch = Batch {
            events: Vec::with_capacity(n),
            valid_unique_ids: Vec::with_capacity(regular),
            ..Batch::default()
        };
        for ts in times {
            if !self.pool.is_empty() && self.rng.gen_bool(self.cfg.duplicate_rate) {
                let i = self.rng.gen_range(0..self.pool.len());
                let (id, ev) = &self.pool[i];
                batch.duplicate_ids.push(id.clone());
                batch.events.push(ev.clone());
                continue;
            }
            let ev = self.random_event_at(ts);
            let id = event_id(&ev);
            // Only remember events when they can be re-sent (cloning costs).
            if self.cfg.duplicate_rate > 0.0 && self.cfg.duplicate_pool > 0 {
                if self.pool.len() >= self.cfg.duplicate_pool {
                    self.pool.pop_front();
                }
                self.pool.push_back((id.clone(), ev.clone()));
            }
            batch.valid_unique_ids.push(id);
            batch.events.push(ev);
        }
        if corrupt {
            let kind = *CorruptionKind::ALL
                .choose(&mut self.rng)
                .unwrap_or(&CorruptionKind::InvalidTimestamp);
            let ev = self.corrupted_event(kind);
            batch.corruptions.push(Corruption {
                index: batch.events.len(),
                kind,
            });
            batch.events.push(ev);
        }
        if let Some(c) = self.clock.as_mut() {
            *c += Duration::seconds(1);
        }
        batch
    }

    /// A valid event of the given source, stage and type, timestamped now.
    pub fn event(
        &mut self,
        source: Source,
        stage: FunnelStage,
        event_type: &str,
    ) -> Result<Value, InvalidEventType> {
        let Some(t) = source.event_types(stage).iter().find(|t| **t == event_type) else {
            return Err(InvalidEventType {
                source,
                stage,
                event_type: event_type.to_owned(),
            });
        };
        let ts = self.now();
        Ok(self.build(source, stage, t, ts))
    }

    /// A valid event of random source, stage and type, timestamped now.
    pub fn random_event(&mut self) -> Value {
        let ts = self.now();
        self.random_event_at(ts)
    }

    /// A random event that fits `kind` (right source and stage), broken by it.
    pub fn corrupted_event(&mut self, kind: CorruptionKind) -> Value {
        let source = kind.required_source().unwrap_or_else(|| self.pick_source());
        let stage = kind.required_stage().unwrap_or_else(|| self.pick_stage());
        let ts = self.now();
        let t = pick(&mut self.rng, source.event_types(stage));
        let mut ev = self.build(source, stage, t, ts);
        kind.apply(&mut ev);
        ev
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now)
    }

    fn pick_source(&mut self) -> Source {
        if self.rng.gen_bool(self.cfg.facebook_share) {
            Source::Facebook
        } else {
            Source::Tiktok
        }
    }

    fn pick_stage(&mut self) -> FunnelStage {
        if self.rng.gen_bool(self.cfg.top_share) {
            FunnelStage::Top
        } else {
            FunnelStage::Bottom
        }
    }

    fn random_event_at(&mut self, ts: DateTime<Utc>) -> Value {
        let source = self.pick_source();
        let stage = self.pick_stage();
        let t = pick(&mut self.rng, source.event_types(stage));
        self.build(source, stage, t, ts)
    }

    /// `n` timestamps ending at `now`: ascending within the last second, or
    /// (shuffled) in random order over the last 15 minutes with a few late
    /// arrivals up to two days old.
    fn timestamps(&mut self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut back_ms: Vec<i64> = if self.cfg.shuffle_timestamps {
            (0..n)
                .map(|_| {
                    if self.rng.gen_bool(0.01) {
                        self.rng.gen_range(0..2 * 86_400_000)
                    } else {
                        self.rng.gen_range(0..15 * 60_000)
                    }
                })
                .collect()
        } else {
            let mut v: Vec<i64> = (0..n).map(|_| self.rng.gen_range(0..1000)).collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            v
        };
        back_ms
            .drain(..)
            .map(|ms| now - Duration::milliseconds(ms))
            .collect()
    }
}

/// `2024-03-01T12:34:56.789Z`: UTC with milliseconds, as the publisher sends.
pub fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn event_id(ev: &Value) -> String {
    ev.get("eventId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
