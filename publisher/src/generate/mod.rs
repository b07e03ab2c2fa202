//! A seedable generator of realistic, spec-valid Facebook and TikTok events,
//! with the publisher's optional duplicates, out-of-order timestamps and
//! one-corrupted-event-per-POST behaviour.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::batch::{Batch, Corruption};
use crate::corrupt::CorruptionKind;
use crate::data;
use crate::model::{
    FunnelStage, InvalidEventType, Source, FACEBOOK_BROWSERS, FACEBOOK_CLICK_POSITIONS,
    FACEBOOK_DEVICES, FACEBOOK_GENDERS, FACEBOOK_REFERRERS, TIKTOK_DEVICES,
};

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

    fn build(
        &mut self,
        source: Source,
        stage: FunnelStage,
        event_type: &str,
        ts: DateTime<Utc>,
    ) -> Value {
        let id = format!("{}-{}", source.id_prefix(), self.uuid());
        let (user, engagement) = match (source, stage) {
            (Source::Facebook, FunnelStage::Top) => {
                (self.facebook_user(), self.facebook_top(event_type, ts))
            }
            (Source::Facebook, FunnelStage::Bottom) => {
                (self.facebook_user(), self.facebook_bottom(event_type))
            }
            (Source::Tiktok, FunnelStage::Top) => (self.tiktok_user(), self.tiktok_top()),
            (Source::Tiktok, FunnelStage::Bottom) => {
                (self.tiktok_user(), self.tiktok_bottom(event_type, ts))
            }
        };
        json!({
            "eventId": id,
            "timestamp": rfc3339(ts),
            "source": source.as_str(),
            "funnelStage": stage.as_str(),
            "eventType": event_type,
            "data": { "user": user, "engagement": engagement },
        })
    }

    fn facebook_user(&mut self) -> Value {
        let first = pick(&mut self.rng, data::FIRST_NAMES);
        let last = pick(&mut self.rng, data::LAST_NAMES);
        let (country, cities) = *data::COUNTRIES
            .choose(&mut self.rng)
            .unwrap_or(&("United States", &["New York"]));
        let city = pick(&mut self.rng, cities);
        let gender = match self.rng.gen_range(0..100) {
            0..=47 => FACEBOOK_GENDERS[0],
            48..=95 => FACEBOOK_GENDERS[1],
            _ => FACEBOOK_GENDERS[2],
        };
        // Mostly adults, centred on the late 20s to 40s.
        let age: u32 = (self.rng.gen_range(13..=45) + self.rng.gen_range(0..=40)).min(95);
        json!({
            "userId": self.uuid(),
            "name": format!("{first} {last}"),
            "age": age,
            "gender": gender,
            "location": { "country": country, "city": city },
        })
    }

    fn facebook_top(&mut self, event_type: &str, ts: DateTime<Utc>) -> Value {
        let video_id = (event_type == "video.view").then(|| self.video_id());
        json!({
            "actionTime": self.action_time(ts),
            "referrer": pick(&mut self.rng, FACEBOOK_REFERRERS),
            "videoId": video_id,
        })
    }

    fn facebook_bottom(&mut self, event_type: &str) -> Value {
        let amount = (event_type == "checkout.complete").then(|| self.amount());
        let campaign = pick(&mut self.rng, data::CAMPAIGNS);
        json!({
            "adId": format!("ad_{}", self.rng.gen_range(100_000_000u64..1_000_000_000)),
            "campaignId": campaign,
            "clickPosition": pick(&mut self.rng, FACEBOOK_CLICK_POSITIONS),
            "device": pick(&mut self.rng, FACEBOOK_DEVICES),
            "browser": pick(&mut self.rng, FACEBOOK_BROWSERS),
            "purchaseAmount": amount,
        })
    }

    fn tiktok_user(&mut self) -> Value {
        let first = pick(&mut self.rng, data::FIRST_NAMES).to_lowercase();
        let word = pick(&mut self.rng, data::HANDLE_WORDS);
        let sep = pick(&mut self.rng, &[".", "_", ""]);
        let username = format!("{first}{sep}{word}{}", self.rng.gen_range(1..1000));
        // Log-uniform: most accounts are small, a few have millions.
        let followers = (self.rng.gen_range(0.0f64..16.5).exp() - 1.0).floor() as u64;
        json!({
            "userId": self.uuid(),
            "username": username,
            "followers": followers,
        })
    }

    fn tiktok_top(&mut self) -> Value {
        let length = self.rng.gen_range(5.0f64..180.0);
        let watched = if self.rng.gen_bool(0.3) {
            length
        } else {
            self.rng.gen_range(0.5..length)
        };
        let watch_time = round_to(watched, 1);
        let percentage = round_to((watch_time / length * 100.0).min(100.0), 2);
        let (country, _) = *data::COUNTRIES
            .choose(&mut self.rng)
            .unwrap_or(&("United States", &[]));
        json!({
            "watchTime": watch_time,
            "percentageWatched": percentage,
            "device": pick(&mut self.rng, TIKTOK_DEVICES),
            "country": country,
            "videoId": self.video_id(),
        })
    }

    fn tiktok_bottom(&mut self, event_type: &str, ts: DateTime<Utc>) -> Value {
        let profile = (event_type == "profile.visit")
            .then(|| format!("{}", self.rng.gen_range(10u64.pow(17)..10u64.pow(18))));
        let (item, amount) = if event_type == "purchase" {
            (
                Some(pick(&mut self.rng, data::PRODUCTS)),
                Some(self.amount()),
            )
        } else {
            (None, None)
        };
        json!({
            "actionTime": self.action_time(ts),
            "profileId": profile,
            "purchasedItem": item,
            "purchaseAmount": amount,
        })
    }

    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.gen())
            .into_uuid()
            .to_string()
    }

    /// A TikTok-style 19-digit video id.
    fn video_id(&mut self) -> String {
        format!("7{:018}", self.rng.gen_range(0..10u64.pow(18)))
    }

    /// When the action happened: up to a few seconds before the event time.
    fn action_time(&mut self, ts: DateTime<Utc>) -> String {
        rfc3339(ts - Duration::milliseconds(self.rng.gen_range(0..5_000)))
    }

    /// A price like `"123.45"`: log-uniform between 0.99 and ~2000.
    fn amount(&mut self) -> String {
        let cents = (self.rng.gen_range(4.6f64..12.2).exp()) as u64;
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

/// `2024-03-01T12:34:56.789Z`: UTC with milliseconds, as the publisher sends.
pub fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

fn event_id(ev: &Value) -> String {
    ev.get("eventId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
