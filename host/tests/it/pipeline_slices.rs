//! The batch transport with the real services: slices at their count and
//! byte bounds, requests mixing sources and spanning many slices, identical
//! re-sent requests, corrupt slices, a backlog of the previous one-event
//! messages, and 0.1.0 and 0.2.0 plugins side by side; events of any month in
//! the monthly partitions of `events`, claimed once across months and
//! writers, and the retention horizon.

use crate::support::pipeline::{
    assert_exact_answer, expected_counts, post, wait_until, Ledger, Pipeline, SHARED_PG,
};
use crate::support::plugins::{dist_file, test_wasm, PluginDir};
use crate::support::services::NatsServer;
use async_nats::jetstream::message::StreamMessage;
use events_host::wire::{self, COUNT_HEADER};
use events_publisher::{Batch, CorruptionKind, Generator, GeneratorConfig};
use serde_json::{json, Value};
use std::{collections::BTreeMap, time::Duration};

fn generate(seed: u64, n: usize) -> Batch {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_one_event_messages_is_stored_exactly() {
    let p = Pipeline::shared("slice_upgrade").await;
    // A gateway creates the streams; no collector runs yet.
    let gw = p.start("gateway", "gateway", &[]).await;
    drop(gw);
    let batch = generate(35, 800);
    let js = p.streams.js().await;
    // What the previous version wrote: one message per event on
    // `<prefix>.<source>.<funnel>.<type>`, id `<eventId>:<hash>`; envelope
    // failures as dead-letter JSON on the dead-letter stream.
    for (i, ev) in batch.events.iter().enumerate() {
        let raw = ev.to_string();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Correlation-Id", "old-gateway");
        let Some(id) = ev["eventId"].as_str() else {
            let letter = json!({"stage": "gateway", "source": ev["source"], "event_id": null,
                "reasons": [{"field": "eventId", "message": "is required"}], "raw": raw,
                "plugin_name": null, "plugin_version": null, "correlation_id": "old-gateway",
                "dedup_key": null});
            headers.insert("Nats-Msg-Id", format!("dlq:{i}").as_str());
            js.publish_with_headers(
                format!("{}_dlq.gateway", p.streams.prefix),
                headers,
                letter.to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            continue;
        };
        let subject = format!(
            "{}.{}.{}.x",
            p.streams.prefix,
            ev["source"].as_str().unwrap(),
            ev["funnelStage"].as_str().unwrap_or("_")
        );
        let hash = xxhash_rust::xxh3::xxh3_128(raw.as_bytes());
        headers.insert("Nats-Msg-Id", format!("{id}:{hash:032x}").as_str());
        let ack = js
            .publish_with_headers(subject, headers, raw.into())
            .await
            .unwrap()
            .await
            .unwrap();
        // Exact re-sends were dropped by the window then, as now.
        let _ = ack.duplicate;
    }
    let mut ledger = Ledger::default();
    ledger.record(&[(batch, true)]);
    let _collector = p.start("collector", "collector", &[]).await;
    p.settle(&ledger, Duration::from_secs(60)).await;
    ledger.check(&p.db.pool).await;
}

/// A facebook-shaped event for the `legacy` test source.
fn legacy_event(id: &str) -> Value {
    json!({
        "eventId": id,
        "timestamp": "2024-05-01T10:00:00Z",
        "source": "legacy",
        "funnelStage": "top",
        "eventType": "ad.view",
        "data": {"user": {"userId": "u-1", "age": 30}, "engagement": {"x": [1, 2]}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_of_both_contract_versions_run_side_by_side_and_raw_is_what_was_sent() {
    let dir = PluginDir::new();
    dir.install(&dist_file("plugins/facebook.wasm"), "facebook.wasm");
    dir.install(&test_wasm("legacy-v0.1"), "legacy.wasm");
    let (runtime, _) =
        crate::support::plugins::runtime_in(dir.path(), crate::support::plugins::test_limits());
    runtime.load_dir().expect("both load");
    let versions = |s: &str| runtime.get(s).map(|p| p.contract_version());
    assert_eq!(
        (versions("facebook"), versions("legacy")),
        (Some("0.2.0"), Some("0.1.0"))
    );

    let mut p = Pipeline::shared("slice_legacy").await;
    p.env
        .insert("PLUGINS_DIR".into(), dir.path().display().to_string());
    let host = p.start("all", "all", &[]).await;
    // Odd spacing and unknown fields: the stored raw must be these bytes, not
    // the legacy plugin's tampered echo.
    let legacy = format!(" {} ", legacy_event("legacy-1")).replace("\":", "\" : ");
    let fb = crate::support::plugins::fb_top("ad.view").to_string();
    let body = format!("[{legacy},\n{fb}]");
    let (status, reply) = post(&p.http, &host.url("/webhook"), body.into_bytes(), &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2, "{reply}");
    wait_until("both events handled", Duration::from_secs(60), || async {
        p.db.count("events").await + p.db.count("dead_letters").await == 2
    })
    .await;
    let dead: Vec<(String,)> = sqlx::query_as("SELECT reasons::text FROM dead_letters")
        .fetch_all(&p.db.pool)
        .await
        .unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT source, raw::text, plugin_name FROM events ORDER BY source")
            .fetch_all(&p.db.pool)
            .await
            .unwrap();
    assert_eq!(rows[0].0, "facebook");
    assert_eq!(rows[0].1, fb);
    assert_eq!(rows[1].0, "legacy");
    assert_eq!(
        rows[1].1,
        legacy.trim(),
        "the bytes sent, not the plugin's echo"
    );
}

// --- Monthly partitions and claims -----------------------------------------

mod partitions {
    use crate::support::pipeline::{post, wait_until, Pipeline};
    use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
    use events_host::{
        db::{self, EventRow},
        plugins::{FunnelStage, Identity, NormalizedEvent},
    };
    use serde_json::json;
    use sqlx::PgPool;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn event(id: &str, t: DateTime<Utc>, event_type: &str) -> NormalizedEvent {
        NormalizedEvent {
            event_id: id.into(),
            source: "facebook".into(),
            occurred_at: t,
            funnel_stage: FunnelStage::Top,
            event_type: event_type.into(),
            user_id: "u".into(),
            revenue: None,
            campaign_id: None,
            age: None,
            gender: None,
            country: None,
            city: None,
            followers: None,
            device: None,
        }
    }

    fn plugin() -> Identity {
        Identity {
            name: "facebook".into(),
            version: "1.0.0".into(),
            source: "facebook".into(),
        }
    }

    /// What the collector does for a batch: partitions, then one
    /// transaction.
    async fn write(pool: &PgPool, events: &[NormalizedEvent]) -> Result<u64, sqlx::Error> {
        let plugin = plugin();
        let rows: Vec<EventRow<'_>> = events
            .iter()
            .map(|e| EventRow {
                event: e,
                raw: "{}",
                plugin: &plugin,
                correlation_id: None,
            })
            .collect();
        db::ensure_partitions(pool, events.iter().map(|e| e.occurred_at)).await?;
        let mut tx = pool.begin().await?;
        let n = db::insert_events(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn stored(pool: &PgPool) -> Vec<(String, DateTime<Utc>, String)> {
        sqlx::query_as("SELECT event_id, occurred_at, event_type FROM events ORDER BY event_id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    fn code(e: &sqlx::Error) -> String {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
            .unwrap_or_else(|| panic!("not a database error: {e}"))
    }

    /// The collector's own code: a batch over months and years stores each
    /// key once, the first arrival winning even when a later copy has
    /// another month; a copy in a later batch is a duplicate; two writers
    /// with overlapping batches (in opposite orders, months nobody made yet)
    /// store each event once and their counts add up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_collector_claims_each_event_once_across_months_and_writers() {
        let p = Pipeline::shared("part_claims").await;
        events_common::db::migrate(&p.db.pool).await.unwrap();
        let pool = &p.db.pool;
        let batch = [
            event("a", at("1999-12-31T23:59:59.999999Z"), "first"),
            event("b", at("2024-02-29T23:59:59Z"), "first"),
            event("c", at("2024-03-01T00:00:00Z"), "first"),
            event("b", at("2011-01-01T00:00:00Z"), "second"),
            event("a", at("2024-03-05T00:00:00Z"), "second"),
        ];
        assert_eq!(write(pool, &batch).await.unwrap(), 3);
        assert_eq!(
            stored(pool).await,
            [
                (
                    "a".into(),
                    at("1999-12-31T23:59:59.999999Z"),
                    "first".into()
                ),
                ("b".into(), at("2024-02-29T23:59:59Z"), "first".into()),
                ("c".into(), at("2024-03-01T00:00:00Z"), "first".into()),
            ]
        );
        assert_eq!(
            write(pool, &[event("c", at("2030-05-05T00:00:00Z"), "again")])
                .await
                .unwrap(),
            0
        );
        for t in [
            "events_y1999m12",
            "events_y2011m01",
            "events_y2024m02",
            "events_y2030m05",
        ] {
            assert!(p.db.count(t).await >= 0, "{t} exists");
        }
        assert_eq!(p.db.count("event_claims").await, 3);

        for round in 0..5i64 {
            let ids: Vec<String> = (0..400).map(|i| format!("r{round}-{i:03}")).collect();
            let base = at("2035-01-15T00:00:00Z") + TimeDelta::days(62 * round);
            let a: Vec<NormalizedEvent> = ids[..300]
                .iter()
                .enumerate()
                .map(|(i, id)| event(id, base + TimeDelta::minutes(i as i64), "a"))
                .collect();
            let b: Vec<NormalizedEvent> = ids[100..]
                .iter()
                .rev()
                .enumerate()
                .map(|(i, id)| {
                    event(
                        id,
                        base + TimeDelta::days(31) + TimeDelta::minutes(i as i64),
                        "b",
                    )
                })
                .collect();
            let (pa, pb) = (pool.clone(), pool.clone());
            let (na, nb) = tokio::join!(
                tokio::spawn(async move { write(&pa, &a).await }),
                tokio::spawn(async move { write(&pb, &b).await }),
            );
            let (na, nb) = (na.unwrap().unwrap(), nb.unwrap().unwrap());
            assert_eq!(na + nb, 400, "round {round}");
        }
        assert_eq!(p.db.count("events").await, 3 + 5 * 400);
        assert_eq!(p.db.count("event_claims").await, 3 + 5 * 400);
        let distinct: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT (source, event_id)) FROM events")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(distinct, 3 + 5 * 400);
        // The rollups count what was stored, once.
        let counted: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(events), 0)::bigint FROM rollup_events WHERE width = 86400",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(counted, 3 + 5 * 400);

        // Years past 9999 get no partition: a data error for that event.
        let far = chrono::NaiveDate::from_ymd_opt(12_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let e = write(pool, &[event("far", far, "x")]).await.unwrap_err();
        assert_eq!(code(&e), "22008", "{e}");
    }

    /// Retention through the collector's code: old partitions and their
    /// claims go, rollups stay; a month this process still believes in but
    /// another collector's retention dropped fails as a data error (no
    /// partition), and once forgotten the month is refused (retention
    /// horizon) instead of being stored again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_drops_old_months_and_a_stale_month_is_refused() {
        let p = Pipeline::shared("part_retention").await;
        events_common::db::migrate(&p.db.pool).await.unwrap();
        let pool = &p.db.pool;
        let now = Utc::now();
        let old = now - TimeDelta::days(800);
        let recent = now - TimeDelta::days(20);
        assert_eq!(
            write(pool, &[event("old", old, "x"), event("new", recent, "x")])
                .await
                .unwrap(),
            2
        );
        let rollups = |pool: PgPool| async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT coalesce(sum(events), 0)::bigint FROM rollup_events WHERE width = 86400",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        };
        assert_eq!(rollups(pool.clone()).await, 2);
        let old_partition = old.format("events_y%Ym%m").to_string();

        // Another collector (plain SQL: this process's memory is untouched).
        let dropped: Vec<String> =
            sqlx::query_scalar("SELECT d FROM events_apply_retention(12) AS d")
                .fetch_all(pool)
                .await
                .unwrap();
        assert!(dropped.contains(&old_partition), "{dropped:?}");
        assert_eq!(p.db.count("events").await, 1);
        assert_eq!(p.db.count("event_claims").await, 1);
        assert_eq!(rollups(pool.clone()).await, 2, "rollups kept");

        let resent = [event("old", old, "x")];
        let e = write(pool, &resent).await.unwrap_err();
        assert_eq!(code(&e), "23514", "no partition: {e}");
        db::forget_partitions(pool);
        let e = write(pool, &resent).await.unwrap_err();
        assert_eq!(code(&e), "23514", "{e}");
        assert!(e.to_string().contains("retention horizon"), "{e}");
        assert_eq!(p.db.count("events").await, 1);
        assert_eq!(rollups(pool.clone()).await, 2, "nothing counted twice");

        // The collector's own call: idempotent now.
        assert_eq!(
            db::apply_retention(pool, 12).await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(write(pool, &[event("new", recent, "x")]).await.unwrap(), 0);
    }

    /// Through a running host: one request with events of several months and
    /// years (one twice, with another month) stores each once; after
    /// retention moved the horizon, an event before it becomes a dead letter
    /// saying why, and its neighbours are stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_of_any_month_go_through_the_pipeline_and_old_ones_are_dead_lettered() {
        let p = Pipeline::shared("part_e2e").await;
        let host = p.start("all", "all", &[]).await;
        let now = Utc::now().trunc_subsecs(0);
        // Everything before the month of `now - 24 months` is past the horizon.
        sqlx::query("SELECT events_apply_retention(24)")
            .execute(&p.db.pool)
            .await
            .unwrap();
        let mut g = events_publisher::Generator::new(events_publisher::GeneratorConfig {
            seed: Some(71),
            ..Default::default()
        });
        let mut fb = |id: &str, t: DateTime<Utc>| {
            let mut e = g
                .event(
                    events_publisher::Source::Facebook,
                    events_publisher::FunnelStage::Top,
                    "ad.view",
                )
                .unwrap();
            e["eventId"] = json!(id);
            e["timestamp"] = json!(t.to_rfc3339());
            e
        };
        let times = [
            now - TimeDelta::days(700),
            now - TimeDelta::days(60),
            now,
            now + TimeDelta::days(400),
        ];
        let mut body: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, t)| fb(&format!("month-{i}"), *t))
            .collect();
        body.push(fb("month-1", now - TimeDelta::days(300)));
        body.push(fb("too-old", now - TimeDelta::days(1200)));
        let url = host.url("/webhook");
        let (status, reply) = post(&p.http, &url, serde_json::to_vec(&body).unwrap(), &[])
            .await
            .unwrap();
        assert_eq!(status, 200, "{reply}");
        wait_until(
            "stored and dead-lettered",
            Duration::from_secs(60),
            || async {
                p.streams.backlog().await == Some(0)
                    && p.db.count("events").await == 4
                    && p.db.count("dead_letters").await == 1
            },
        )
        .await;
        let ids: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT event_id, occurred_at FROM events ORDER BY event_id")
                .fetch_all(&p.db.pool)
                .await
                .unwrap();
        let want: Vec<(String, DateTime<Utc>)> = times
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("month-{i}"), *t))
            .collect();
        assert_eq!(ids, want);
        let (event_id, reasons): (Option<String>, serde_json::Value) =
            sqlx::query_as("SELECT event_id, reasons FROM dead_letters")
                .fetch_one(&p.db.pool)
                .await
                .unwrap();
        assert_eq!(event_id.as_deref(), Some("too-old"));
        assert!(
            reasons.to_string().contains("retention horizon"),
            "{reasons}"
        );
        drop(host);
    }
}
