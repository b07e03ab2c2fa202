//! The shape of one event: the envelope, and each source's `data.user` and
//! `data.engagement` with realistic values.
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::{rfc3339, Generator};
use crate::data;
use crate::model::{
    FunnelStage, Source, FACEBOOK_BROWSERS, FACEBOOK_CLICK_POSITIONS, FACEBOOK_DEVICES,
    FACEBOOK_GENDERS, FACEBOOK_REFERRERS, TIKTOK_DEVICES,
};

impl Generator {
    /// One event of `source` at `stage`: the envelope around the source's
    /// `data.user` and `data.engagement`.
    pub(super) fn build(
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

pub(super) fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}
