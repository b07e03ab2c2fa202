//! The generator, corruptions, duplicates and batch ledger against an
//! independent check of the spec.

mod common;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use common::{check_conventions, is_amount, validate};
use events_publisher::{CorruptionKind, FunnelStage, Generator, GeneratorConfig, Source};
use serde_json::Value;

fn fixed(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed: Some(seed),
        start_time: Some(Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()),
        ..GeneratorConfig::default()
    }
}

fn ts(ev: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ev["timestamp"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn every_source_stage_and_type_is_valid_and_follows_conventions() {
    let mut g = Generator::new(fixed(1));
    for source in Source::ALL {
        for stage in FunnelStage::ALL {
            for t in source.event_types(stage) {
                for _ in 0..50 {
                    let ev = g.event(source, stage, t).unwrap();
                    validate(&ev).unwrap_or_else(|e| panic!("{e}: {ev}"));
                    check_conventions(&ev).unwrap_or_else(|e| panic!("{e}: {ev}"));
                    assert_eq!(ev["source"], source.as_str());
                    assert_eq!(ev["funnelStage"], stage.as_str());
                    assert_eq!(ev["eventType"], *t);
                }
            }
        }
    }
}

#[test]
fn event_rejects_type_from_wrong_stage() {
    let mut g = Generator::new(fixed(1));
    assert!(g
        .event(Source::Facebook, FunnelStage::Top, "ad.click")
        .is_err());
    assert!(g
        .event(Source::Tiktok, FunnelStage::Bottom, "like")
        .is_err());
    assert!(g
        .event(Source::Tiktok, FunnelStage::Top, "page.like")
        .is_err());
}

#[test]
fn random_batches_cover_everything_and_look_realistic() {
    let mut g = Generator::new(GeneratorConfig {
        corrupt_post_rate: 0.0,
        ..fixed(2)
    });
    let batch = g.next_batch(20_000);
    assert_eq!(batch.len(), 20_000);
    assert_eq!(batch.valid_unique_ids.len(), 20_000);
    let mut combos = HashSet::new();
    let mut amounts = 0;
    let mut fb = 0;
    for ev in &batch.events {
        validate(ev).unwrap_or_else(|e| panic!("{e}: {ev}"));
        check_conventions(ev).unwrap_or_else(|e| panic!("{e}: {ev}"));
        combos.insert((
            ev["source"].as_str().unwrap().to_owned(),
            ev["eventType"].as_str().unwrap().to_owned(),
        ));
        if let Some(a) = ev
            .pointer("/data/engagement/purchaseAmount")
            .and_then(Value::as_str)
        {
            assert!(is_amount(a) && a.contains('.'), "{a}");
            amounts += 1;
        }
        if ev["source"] == "facebook" {
            fb += 1;
        }
    }
    assert_eq!(combos.len(), 14, "all 7 + 7 event types: {combos:?}");
    assert!(amounts > 500, "revenue events present: {amounts}");
    assert!((9_000..11_000).contains(&fb), "facebook share ≈ 0.5: {fb}");
    let avg = batch.body().len() / batch.len();
    assert!((300..700).contains(&avg), "≈0.5 KB per event, got {avg} B");
    let ids: HashSet<_> = batch.valid_unique_ids.iter().collect();
    assert_eq!(ids.len(), batch.len(), "ids unique");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let body = |seed| {
        let mut g = Generator::new(GeneratorConfig {
            duplicate_rate: 0.1,
            shuffle_timestamps: true,
            corrupt_post_rate: 0.5,
            ..fixed(seed)
        });
        (0..5)
            .flat_map(|_| g.next_batch(500).body())
            .collect::<Vec<u8>>()
    };
    assert_eq!(body(7), body(7));
    assert_ne!(body(7), body(8));
}

#[test]
fn timestamps_ascend_unless_shuffled() {
    let mut g = Generator::new(GeneratorConfig {
        corrupt_post_rate: 0.0,
        ..fixed(3)
    });
    let b = g.next_batch(1000);
    assert!(b.events.windows(2).all(|w| ts(&w[0]) <= ts(&w[1])));
    let start = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    assert!(b
        .events
        .iter()
        .all(|e| ts(e) <= start && start - ts(e) < chrono::Duration::seconds(1)));

    let mut g = Generator::new(GeneratorConfig {
        shuffle_timestamps: true,
        corrupt_post_rate: 0.0,
        ..fixed(3)
    });
    let b = g.next_batch(1000);
    let inversions = b
        .events
        .windows(2)
        .filter(|w| ts(&w[0]) > ts(&w[1]))
        .count();
    assert!(inversions > 300, "out of order: {inversions}");
    let spread = b.events.iter().map(ts).max().unwrap() - b.events.iter().map(ts).min().unwrap();
    assert!(spread > chrono::Duration::minutes(5));
}

#[test]
fn each_corruption_breaks_its_named_rule() {
    let mut g = Generator::new(fixed(4));
    for kind in CorruptionKind::ALL {
        for _ in 0..30 {
            let ev = g.corrupted_event(kind);
            let err = validate(&ev).expect_err(&format!("{kind} should be invalid: {ev}"));
            assert!(
                err.starts_with(kind.field()),
                "{kind}: reason {err:?} should name {}",
                kind.field()
            );
            if let Some(s) = kind.required_source() {
                assert_eq!(ev["source"], s.as_str());
            }
        }
    }
}

#[test]
fn corruptions_match_the_spec_list_exactly() {
    let mut g = Generator::new(fixed(5));
    let ev = |g: &mut Generator, k| g.corrupted_event(k);
    assert_eq!(
        ev(&mut g, CorruptionKind::InvalidTimestamp)["timestamp"],
        "invalid-timestamp"
    );
    assert!(ev(&mut g, CorruptionKind::MissingEventId)
        .get("eventId")
        .is_none());
    assert!(ev(&mut g, CorruptionKind::MissingUserName)
        .pointer("/data/user/name")
        .is_none());
    assert!(ev(&mut g, CorruptionKind::MissingUsername)
        .pointer("/data/user/username")
        .is_none());
    assert!(ev(&mut g, CorruptionKind::MissingUser)
        .pointer("/data/user")
        .is_none());
    assert_eq!(
        ev(&mut g, CorruptionKind::InvalidFunnelStage)["funnelStage"],
        "invalid-stage"
    );
    assert!(ev(&mut g, CorruptionKind::EventTypeArray)["eventType"].is_array());
    let e = ev(&mut g, CorruptionKind::NegativeActionTime);
    assert_eq!(
        (e["source"].as_str(), e["funnelStage"].as_str()),
        (Some("facebook"), Some("top"))
    );
    assert_eq!(e["data"]["engagement"]["actionTime"], -1);
    let e = ev(&mut g, CorruptionKind::NegativeWatchTime);
    assert_eq!(
        (e["source"].as_str(), e["funnelStage"].as_str()),
        (Some("tiktok"), Some("top"))
    );
    assert_eq!(e["data"]["engagement"]["watchTime"], -1);
    let e = ev(&mut g, CorruptionKind::MissingAdId);
    assert_eq!(e["funnelStage"], "bottom");
    assert!(e.pointer("/data/engagement/adId").is_none());
    let e = ev(&mut g, CorruptionKind::MissingPurchasedItem);
    assert_eq!(e["funnelStage"], "bottom");
    assert!(e.pointer("/data/engagement/purchasedItem").is_none());
    assert_eq!(
        ev(&mut g, CorruptionKind::AlienGender)["data"]["user"]["gender"],
        "alien"
    );
    assert_eq!(
        ev(&mut g, CorruptionKind::FollowersNotANumber)["data"]["user"]["followers"],
        "not-a-number"
    );
}

#[test]
fn corruption_refuses_events_it_does_not_fit() {
    let mut g = Generator::new(fixed(6));
    let mut tt_top = g.event(Source::Tiktok, FunnelStage::Top, "like").unwrap();
    let before = tt_top.clone();
    for k in [
        CorruptionKind::MissingUserName,
        CorruptionKind::NegativeActionTime,
        CorruptionKind::MissingAdId,
        CorruptionKind::MissingPurchasedItem,
        CorruptionKind::AlienGender,
    ] {
        assert!(!k.applies_to(&tt_top));
        assert!(!k.apply(&mut tt_top));
    }
    assert_eq!(tt_top, before);
    for k in CorruptionKind::ALL {
        assert_eq!(k.name().parse::<CorruptionKind>(), Ok(k));
    }
}

#[test]
fn duplicates_are_byte_identical_resends_and_the_ledger_adds_up() {
    let mut g = Generator::new(GeneratorConfig {
        duplicate_rate: 0.2,
        corrupt_post_rate: 0.5,
        ..fixed(9)
    });
    let mut originals: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut dups, mut corrupted, mut total) = (0, 0, 0);
    let mut kinds = HashSet::new();
    for _ in 0..200 {
        let b = g.next_batch(50);
        assert_eq!(b.len(), 50);
        assert_eq!(
            b.valid_unique_ids.len() + b.duplicates() + b.corrupted(),
            b.len()
        );
        total += b.len();
        dups += b.duplicates();
        corrupted += b.corrupted();
        let corrupt_idx: HashSet<usize> = b.corruptions.iter().map(|c| c.index).collect();
        for c in &b.corruptions {
            assert_eq!(c.index, b.len() - 1, "the corrupted event is appended last");
            assert!(validate(&b.events[c.index]).is_err());
            kinds.insert(c.kind);
        }
        let (mut u, mut d) = (b.valid_unique_ids.iter(), b.duplicate_ids.iter());
        for (i, ev) in b.events.iter().enumerate() {
            if corrupt_idx.contains(&i) {
                continue;
            }
            validate(ev).unwrap();
            let id = ev["eventId"].as_str().unwrap().to_owned();
            let bytes = serde_json::to_vec(ev).unwrap();
            match originals.get(&id) {
                Some(orig) => {
                    assert_eq!(d.next(), Some(&id));
                    assert_eq!(orig, &bytes, "duplicate must be byte-identical");
                }
                None => {
                    assert_eq!(u.next(), Some(&id));
                    originals.insert(id, bytes);
                }
            }
        }
        assert!(u.next().is_none() && d.next().is_none());
        // The body contains each event's bytes verbatim.
        let body = b.body();
        for ev in &b.events {
            let bytes = serde_json::to_vec(ev).unwrap();
            assert!(body.windows(bytes.len()).any(|w| w == bytes.as_slice()));
        }
    }
    assert_eq!(originals.len() + dups + corrupted, total);
    assert!((1_500..2_500).contains(&dups), "≈20 % duplicates: {dups}");
    assert!(
        (70..130).contains(&corrupted),
        "≈50 % of POSTs corrupted: {corrupted}"
    );
    assert!(kinds.len() >= 10, "kinds spread: {kinds:?}");
}

#[test]
fn corrupt_post_rate_defaults_to_one_in_ten() {
    let mut g = Generator::new(fixed(10));
    let corrupted: usize = (0..2000).map(|_| g.next_batch(3).corrupted()).sum();
    assert!((150..250).contains(&corrupted), "{corrupted}");
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231 test case 2.
    assert_eq!(
        events_publisher::signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
