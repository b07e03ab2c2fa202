//! A corrupted variant sent first (same event id) does not suppress the
//! valid event; exact re-sends of either are duplicates.

use crate::support::pipeline::{post, Bad, Ledger, Pipeline};
use events_publisher::{CorruptionKind, FunnelStage, Generator, GeneratorConfig, Source};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_variant_sent_first_does_not_suppress_the_valid_event() {
    let p = Pipeline::shared("e2e_variant").await;
    let host = p.start("all", "all", &[]).await;
    let mut g = Generator::new(GeneratorConfig {
        seed: Some(5),
        ..Default::default()
    });
    let mut ledger = Ledger::default();
    let cases = [
        (
            Source::Facebook,
            FunnelStage::Top,
            "ad.view",
            CorruptionKind::AlienGender,
        ),
        (
            Source::Facebook,
            FunnelStage::Bottom,
            "checkout.complete",
            CorruptionKind::MissingAdId,
        ),
        (
            Source::Tiktok,
            FunnelStage::Top,
            "video.view",
            CorruptionKind::NegativeWatchTime,
        ),
        (
            Source::Tiktok,
            FunnelStage::Bottom,
            "purchase",
            CorruptionKind::InvalidTimestamp,
        ),
    ];
    let url = host.url("/webhook");
    for (source, stage, kind_name, corruption) in cases {
        let valid = g.event(source, stage, kind_name).unwrap();
        let mut bad = valid.clone();
        assert!(corruption.apply(&mut bad), "{corruption} applies");
        assert_eq!(bad["eventId"], valid["eventId"]);
        let answer = |body: &Value| {
            let (p, url) = (&p, url.clone());
            let body = serde_json::to_vec(&[body]).unwrap();
            async move {
                let (s, r) = post(&p.http, &url, body, &[]).await.unwrap();
                assert_eq!(s, 200, "{r}");
                (
                    r["accepted"].as_u64().unwrap(),
                    r["duplicates"].as_u64().unwrap(),
                )
            }
        };
        assert_eq!(answer(&bad).await, (1, 0), "corrupted variant first");
        assert_eq!(
            answer(&valid).await,
            (1, 0),
            "the valid event is not a JetStream duplicate of its corrupted variant"
        );
        assert_eq!(answer(&valid).await, (0, 1), "an exact re-send is");
        assert_eq!(answer(&bad).await, (0, 1));
        ledger.corrupted.push(Bad::of(&bad, corruption));
        ledger
            .valid
            .insert(valid["eventId"].as_str().unwrap().to_string(), valid);
    }
    p.settle(&ledger, Duration::from_secs(30)).await;
    ledger.check(&p.db.pool).await;
}
