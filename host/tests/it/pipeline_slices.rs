//! The batch transport with the real services: slices at their count and
//! byte bounds, requests mixing sources and spanning many slices, identical
//! re-sent requests, corrupt slices.

use crate::support::pipeline::{
    assert_exact_answer, expected_counts, post, wait_until, Ledger, Pipeline, SHARED_PG,
};
use crate::support::services::NatsServer;
use async_nats::jetstream::message::StreamMessage;
use events_host::wire::{self, COUNT_HEADER};
use events_publisher::{Batch, CorruptionKind, Generator, GeneratorConfig};
use serde_json::{json, Value};
use std::{collections::BTreeMap, time::Duration};

pub(crate) fn generate(seed: u64, n: usize) -> Batch {
    Generator::new(GeneratorConfig {
        seed: Some(seed),
        duplicate_rate: 0.05,
        corrupt_post_rate: 1.0,
        ..Default::default()
    })
    .next_batch(n)
}

/// Every message in the events stream, oldest first (read, not consumed).
async fn stream_messages(p: &Pipeline) -> Vec<StreamMessage> {
    let js = p.streams.js().await;
    let stream = js.get_stream(&p.streams.stream).await.expect("stream");
    let state = stream.cached_info().state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(m);
        }
    }
    out
}

fn header<'a>(m: &'a StreamMessage, name: &str) -> Option<&'a str> {
    m.headers.get(name).map(|v| v.as_str())
}

/// The events of a slice message, as text.
fn slice_events(m: &StreamMessage) -> Vec<String> {
    wire::split(&m.payload, header(m, COUNT_HEADER))
        .expect("well-formed slice")
        .into_iter()
        .map(|r| String::from_utf8(m.payload[r].to_vec()).expect("UTF-8"))
        .collect()
}

/// The events of `batch` the gateway accepts, by source, in request order.
fn accepted_by_source(batch: &Batch) -> BTreeMap<String, Vec<String>> {
    let gateway_rejects: Vec<usize> = batch
        .corruptions
        .iter()
        .filter(|c| c.kind == CorruptionKind::MissingEventId)
        .map(|c| c.index)
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, ev) in batch.events.iter().enumerate() {
        if !gateway_rejects.contains(&i) {
            let source = ev["source"].as_str().unwrap().to_string();
            out.entry(source).or_default().push(ev.to_string());
        }
    }
    out
}

/// POSTs `batch` as one request and checks its exact answer.
async fn post_batch(p: &Pipeline, url: &str, batch: &Batch, cid: &str) {
    let (status, reply) = post(&p.http, url, batch.body(), &[("x-correlation-id", cid)])
        .await
        .unwrap();
    assert_exact_answer(status, &reply, batch);
}

/// Checks the stream holds `batch`'s accepted events as slices, each source's
/// events in request order, every slice within `max_events` and `max_bytes`,
/// headers right; returns the slices' sizes.
fn check_slices(
    messages: &[StreamMessage],
    p: &Pipeline,
    batch: &Batch,
    max_events: usize,
    max_bytes: usize,
) -> Vec<usize> {
    let expected = accepted_by_source(batch);
    let mut claimed: BTreeMap<&str, Vec<bool>> = expected
        .iter()
        .map(|(s, e)| (s.as_str(), vec![false; e.len()]))
        .collect();
    let mut sizes = Vec::new();
    for m in messages {
        let source = m
            .subject
            .strip_prefix(&format!("{}.", p.streams.prefix))
            .and_then(|s| s.strip_suffix(".batch"))
            .unwrap_or_else(|| panic!("subject {}", m.subject))
            .to_string();
        let events = slice_events(m);
        assert_eq!(
            header(m, COUNT_HEADER),
            Some(events.len().to_string().as_str())
        );
        assert_eq!(
            header(m, "Nats-Msg-Id"),
            Some(wire::slice_id(&source, &m.payload).as_str())
        );
        assert!(header(m, "Correlation-Id").is_some());
        assert!(events.len() <= max_events && m.payload.len() <= max_bytes);
        sizes.push(events.len());
        // Slices are published concurrently, so the stream may hold them in
        // any order; each must be a contiguous run of its source's events.
        let (all, used) = (
            &expected[&source],
            claimed.get_mut(source.as_str()).unwrap(),
        );
        let start = (0..=all.len().saturating_sub(events.len()))
            .find(|&i| {
                all[i..i + events.len()] == events[..] && !used[i..i + events.len()].contains(&true)
            })
            .unwrap_or_else(|| panic!("slice of {source} is not a run of the request's events"));
        used[start..start + events.len()].fill(true);
    }
    for (source, used) in &claimed {
        assert!(
            used.iter().all(|u| *u),
            "an event of {source} is in no slice"
        );
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_are_bounded_by_count_keep_order_and_store_exactly() {
    let p = Pipeline::shared("slice_count").await;
    let gw = p
        .start("gateway", "gateway", &[("GATEWAY_SLICE_EVENTS", "7")])
        .await;
    // One request mixing both sources, spanning hundreds of slices.
    let batch = generate(31, 2000);
    post_batch(&p, &gw.url("/webhook"), &batch, "count-1").await;
    let messages = stream_messages(&p).await;
    let sizes = check_slices(&messages, &p, &batch, 7, usize::MAX);
    // Only each source's last slice may be short.
    assert!(sizes.iter().filter(|n| **n < 7).count() <= 2, "{sizes:?}");
    assert!(messages.len() > 250, "{}", messages.len());

    let mut ledger = Ledger::default();
    ledger.record(&[(batch, true)]);
    let _collector = p.start("collector", "collector", &[]).await;
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_stay_under_the_servers_max_payload() {
    // A server taking at most 16 KiB per message: slices are cut by bytes.
    let nats = NatsServer::start_with_config("max_payload: 16384\n");
    let p = Pipeline::new("slice_bytes", SHARED_PG, &nats.url()).await;
    let gw = p.start("gateway", "gateway", &[]).await;
    let batch = generate(32, 600);
    post_batch(&p, &gw.url("/webhook"), &batch, "bytes-1").await;
    let messages = stream_messages(&p).await;
    let bound = 16384 - 4096;
    let sizes = check_slices(&messages, &p, &batch, 1000, bound);
    assert!(sizes.len() > 10, "{sizes:?}");
    // Full: a slice is closed only when the next event would not fit.
    let mut by_source: BTreeMap<&str, Vec<&StreamMessage>> = BTreeMap::new();
    for m in &messages {
        by_source.entry(m.subject.as_str()).or_default().push(m);
    }
    for slices in by_source.values() {
        for pair in slices.windows(2) {
            let next = slice_events(pair[1])[0].len();
            assert!(
                pair[0].payload.len() + 4 + next > bound,
                "slice closed early"
            );
        }
    }
    // An event too large for one message is dead-lettered with that reason.
    let mut huge = batch.events[0].clone();
    huge["eventId"] = json!("huge-1");
    huge["padding"] = json!("x".repeat(20_000));
    let (status, reply) = post(
        &p.http,
        &gw.url("/webhook"),
        serde_json::to_vec(&[huge]).unwrap(),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["rejected"], 1, "{reply}");
    assert!(reply["errors"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("limit of one message"));

    let mut ledger = Ledger::default();
    ledger.record(&[(batch, true)]);
    let _collector = p.start("collector", "collector", &[]).await;
    wait_until(
        "the huge event's dead letter",
        Duration::from_secs(60),
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM dead_letters WHERE event_id = 'huge-1' AND stage = 'gateway'",
            )
            .fetch_one(&p.db.pool)
            .await
            .unwrap()
                == 1
        },
    )
    .await;
    p.settle(&ledger, Duration::from_secs(60)).await;
    sqlx::query("DELETE FROM dead_letters WHERE event_id = 'huge-1'")
        .execute(&p.db.pool)
        .await
        .unwrap();
    ledger.check(&p.db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_request_is_answered_as_duplicates_and_stored_once() {
    let p = Pipeline::shared("slice_dup").await;
    let host = p.start("all", "all", &[]).await;
    let url = host.url("/webhook");
    let batch = generate(33, 500);
    post_batch(&p, &url, &batch, "dup-1").await;
    // The same bytes again: every slice is dropped by the duplicate window.
    let (status, reply) = post(&p.http, &url, batch.body(), &[]).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let (a, r, _) = expected_counts(&batch);
    assert_eq!(
        (
            reply["accepted"].as_u64(),
            reply["rejected"].as_u64(),
            reply["duplicates"].as_u64()
        ),
        (Some(0), Some(r as u64), Some(a as u64)),
        "{reply}"
    );
    // The same events in another request are accepted; the database drops them.
    // (Valid ones only: a corrupted event sent again is dead-lettered again.)
    let corrupted: Vec<usize> = batch.corruptions.iter().map(|c| c.index).collect();
    let again: Vec<Value> = (0..batch.len())
        .rev()
        .filter(|i| !corrupted.contains(i))
        .map(|i| batch.events[i].clone())
        .collect();
    let (status, reply) = post(&p.http, &url, serde_json::to_vec(&again).unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["accepted"].as_u64(),
        Some(again.len() as u64),
        "{reply}"
    );
    assert_eq!(reply["duplicates"], 0);

    // Drained means committed: messages are acked after the commit.
    let mut ledger = Ledger::default();
    ledger.record(&[(batch, true)]);
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_slice_is_kept_whole_as_a_dead_letter() {
    let p = Pipeline::shared("slice_corrupt").await;
    let host = p.start("all", "all", &[]).await;
    let js = p.streams.js().await;
    let good = Generator::new(GeneratorConfig {
        seed: Some(34),
        corrupt_post_rate: 0.0,
        ..Default::default()
    })
    .next_batch(6);
    let mut ok = wire::SliceBuilder::default();
    let facebook: Vec<&Value> = good
        .events
        .iter()
        .filter(|e| e["source"] == "facebook" && e.get("eventId").is_some())
        .collect();
    for e in &facebook {
        ok.push(e.to_string().as_bytes());
    }
    let (ok_payload, ok_count) = ok.finish();
    let mut cut = ok_payload.to_vec();
    cut.truncate(cut.len() - 3);
    let cases: Vec<(Vec<u8>, String)> = vec![
        (cut, ok_count.to_string()),
        (ok_payload.to_vec(), "many".into()),
        (ok_payload.to_vec(), (ok_count + 1).to_string()),
    ];
    let subject = format!("{}.facebook.batch", p.streams.prefix);
    for (i, (payload, count)) in cases.iter().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(COUNT_HEADER, count.as_str());
        headers.insert("Nats-Msg-Id", format!("corrupt-{i}").as_str());
        js.publish_with_headers(subject.clone(), headers, payload.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(COUNT_HEADER, ok_count.to_string().as_str());
    js.publish_with_headers(subject, headers, ok_payload)
        .await
        .unwrap()
        .await
        .unwrap();

    wait_until("the stream to drain", Duration::from_secs(60), || async {
        p.streams.backlog().await == Some(0)
    })
    .await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT stage, raw, dedup_key FROM dead_letters ORDER BY dedup_key")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (i, (stage, raw, key)) in rows.iter().enumerate() {
        assert_eq!(stage, "delivery");
        assert_eq!(key, &format!("corrupt-{i}:slice"));
        assert_eq!(
            raw,
            &format!("hex:{}", hex::encode(&cases[i].0)),
            "kept whole"
        );
    }
    // Its neighbour was stored normally.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&p.db.pool)
        .await
        .unwrap();
    assert!(!facebook.is_empty());
    assert_eq!(stored as usize, facebook.len());
    drop(host);
}
