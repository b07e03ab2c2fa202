//! (a') A second floor: bare JetStream publishing of the same events, one
//! message per event with a `Nats-Msg-Id`, into a stream configured like the
//! host's (file storage, work-queue retention, 120 s duplicate window),
//! thousands of acks in flight. The gateway cannot accept events faster
//! than this, whatever its own cost.

use std::time::{Duration, Instant};

use anyhow::Result;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::db;

#[derive(Debug, Clone, Serialize)]
pub struct JsFloorResult {
    pub events: u64,
    pub in_flight: usize,
    /// Acked publishes/s with a `Nats-Msg-Id` (what the gateway does).
    pub with_msg_id_per_sec: f64,
    /// Acked publishes/s without one (no duplicate tracking).
    pub without_msg_id_per_sec: f64,
    /// Time to publish and get the acks of one 50,000-event body (with ids).
    pub body_50k_ms: f64,
    pub loadavg: String,
}

async fn publish(
    js: &jetstream::Context,
    subject_prefix: &str,
    rows: &[(String, Bytes)],
    ids: bool,
    in_flight: usize,
) -> Result<f64> {
    let t = Instant::now();
    let results: Vec<bool> = futures::stream::iter(rows.iter().enumerate())
        .map(|(i, (id, payload))| async move {
            let mut msg = PublishMessage::build().payload(payload.clone());
            if ids {
                msg = msg.message_id(format!("{id}:{i}"));
            }
            let subject = format!(
                "{subject_prefix}.{}",
                if i % 2 == 0 {
                    "facebook.top.x"
                } else {
                    "tiktok.top.x"
                }
            );
            match js.send_publish(subject, msg).await {
                Ok(ack) => matches!(
                    tokio::time::timeout(Duration::from_secs(30), ack).await,
                    Ok(Ok(_))
                ),
                Err(_) => false,
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let ok = results.iter().filter(|x| **x).count();
    anyhow::ensure!(
        ok == rows.len(),
        "{} of {} publishes failed",
        rows.len() - ok,
        rows.len()
    );
    Ok(t.elapsed().as_secs_f64())
}

pub async fn run(
    nats_url: &str,
    run_id: &str,
    events: &[(String, Vec<u8>)],
    in_flight: usize,
) -> Result<JsFloorResult> {
    let client = async_nats::connect(nats_url).await?;
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(in_flight)
        .backpressure_on_inflight(true)
        .build(client);
    let rows: Vec<(String, Bytes)> = events
        .iter()
        .map(|(id, raw)| (id.clone(), Bytes::from(raw.clone())))
        .collect();
    let mut rates = Vec::new();
    let mut body_ms = 0.0;
    for (variant, ids) in [("ids", true), ("noids", false), ("body", true)] {
        let name = format!(
            "{}JSFLOOR_{}",
            db::stream_prefix(run_id),
            variant.to_uppercase()
        );
        let prefix = format!("bench_ingest_{run_id}_jsfloor_{variant}");
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
        let result = if variant == "body" {
            publish(
                &js,
                &prefix,
                &rows[..rows.len().min(50_000)],
                ids,
                in_flight,
            )
            .await
        } else {
            publish(&js, &prefix, &rows, ids, in_flight).await
        };
        let _ = js.delete_stream(&name).await;
        let secs = result?;
        if variant == "body" {
            body_ms = secs * 1000.0;
            eprintln!("[jsfloor] one 50,000-event body: {body_ms:.0} ms");
        } else {
            let rate = rows.len() as f64 / secs;
            eprintln!(
                "[jsfloor] {} publishes ({variant}) in {secs:.2}s = {rate:.0}/s",
                rows.len()
            );
            rates.push(rate);
        }
    }
    Ok(JsFloorResult {
        events: rows.len() as u64,
        in_flight,
        with_msg_id_per_sec: rates[0].round(),
        without_msg_id_per_sec: rates[1].round(),
        body_50k_ms: body_ms.round(),
        loadavg: crate::procfs::loadavg(),
    })
}
