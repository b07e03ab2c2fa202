//! Budgets under hostile webhook load: overlapping big POSTs wait for the
//! in-flight budget, element bombs and per-element state count against it,
//! slow clients cannot hold the gateway.
use crate::pipeline_bad_input::{answer, counts, json_post, no_5xx_and_ready, send, valid_event};
use crate::support::pipeline::{wait_until, Pipeline};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// With an in-flight budget smaller than one body, overlapping POSTs queue
/// for room instead of failing: every one gets its 200 with exact counts.
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_posts_wait_for_the_inflight_budget() {
    let p = Pipeline::shared("bad_budget").await;
    let h = p
        .start(
            "gateway",
            "gateway",
            &[("GATEWAY_MAX_INFLIGHT_BYTES", "1048576")],
        )
        .await;
    let event = |i: usize| json!({"eventId": format!("x-{i}"), "source": "facebook", "pad": "p".repeat(2000)});
    let body = |k: usize| {
        serde_json::to_vec(&(0..800).map(|i| event(k * 1000 + i)).collect::<Vec<_>>()).unwrap()
    };
    assert!(
        body(0).len() > 1 << 20,
        "each body must exceed the 1 MiB budget"
    );
    let posts = (0..6).map(|k| json_post(&p, &h, body(k)));
    for (k, (status, v)) in futures::future::join_all(posts)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, 200, "POST {k}: {v}");
        assert_eq!(counts(&v), (800, 0, 0), "POST {k}: {v}");
    }
    no_5xx_and_ready(&h).await;
}

/// Peak resident memory of a process, MB (`VmHWM`).
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_bombs_are_refused_before_costing_memory() {
    let p = Pipeline::shared("bad_bombs").await;
    let mut h = p
        .start_process(
            "gateway",
            "gateway",
            &[("GATEWAY_BODY_LIMIT_BYTES", &(64 << 20).to_string())],
        )
        .await;
    let before = peak_rss_mb(h.pid());
    let mut peaks = Vec::new();
    // 3 MB of 1.5 million elements, then 64 MiB of ~33 million.
    for elements in [1_500_000usize, (64 << 20) / 2 - 1] {
        let mut body = Vec::with_capacity(elements * 2 + 1);
        body.push(b'[');
        for _ in 0..elements - 1 {
            body.extend_from_slice(b"1,");
        }
        body.extend_from_slice(b"1]");
        let (status, reply) = send(&p, &h, body, Some("application/json"), &[]).await;
        assert_eq!(status, 413, "{reply}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("GATEWAY_MAX_EVENTS"),
            "{reply}"
        );
        peaks.push(peak_rss_mb(h.pid()));
    }
    println!(
        "element bombs: gateway peak RSS {before:.0} MB at start, {:.0} MB after the 3 MB bomb, {:.0} MB after the 64 MiB bomb",
        peaks[0], peaks[1]
    );
    // The 64 MiB body itself is held while it is checked; per-element state
    // (which used to cost gigabytes) is never built.
    assert!(peaks[1] - before < 400.0, "{before} -> {peaks:?}");
    let (status, _) = send(&p, &h, b"[]".to_vec(), Some("application/json"), &[]).await;
    assert_eq!(status, 200, "still serving");
}

/// Opens a raw connection, sends a POST's headers declaring `declared`
/// bytes and `sent` bytes of its body, then stalls (the stream is returned
/// open).
async fn stalled_upload(port: u16, declared: usize, sent: usize) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

/// Three uploads declaring 64 MiB stall after their first 64 KiB (two of
/// them fill the 128 MiB in-flight budget), two stall before it (they
/// reserve nothing), one stalls in its headers: a normal POST still gets
/// its 200 quickly, the stalled uploads are answered 408 when their rate
/// falls under GATEWAY_MIN_BODY_RATE, and the stalled headers are cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_gateway() {
    let p = Pipeline::shared("bad_slow").await;
    let h = p
        .start(
            "gateway",
            "gateway",
            &[
                ("GATEWAY_HEADER_TIMEOUT_MS", "1000"),
                ("GATEWAY_MAX_INFLIGHT_BYTES", &(128u64 << 20).to_string()),
            ],
        )
        .await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_upload(h.port, 64 << 20, 80 << 10).await);
    }
    for _ in 0..2 {
        stalled.push(stalled_upload(h.port, 64 << 20, 1 << 10).await);
    }
    let mut headers_only = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
        .await
        .unwrap();
    headers_only
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let reserved = || async {
        h.metrics()
            .await
            .sum("gateway_inflight_reserved_bytes", &[])
    };
    wait_until("the budget is held", Duration::from_secs(30), || async {
        reserved().await >= (128u64 << 20) as f64
    })
    .await;

    let started = std::time::Instant::now();
    let body = serde_json::to_vec(&[valid_event("fb-slow-1")]).unwrap();
    let (status, v) = json_post(&p, &h, body).await;
    let took = started.elapsed();
    eprintln!("a normal POST beside stalled uploads took {took:?}");
    assert_eq!((status, counts(&v)), (200, (1, 0, 0)), "{v}");
    // Released when the first holder falls under the minimum rate (3 s).
    assert!(took < Duration::from_secs(8), "{took:?}");

    for s in stalled {
        let (status, v) = answer(s).await;
        assert_eq!(status, 408, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("GATEWAY_MIN_BODY_RATE"),
            "{v}"
        );
    }
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(30), headers_only.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "stalled headers were not cut off");
    wait_until("the budget is free", Duration::from_secs(30), || async {
        reserved().await == 0.0
    })
    .await;
    no_5xx_and_ready(&h).await;
}

/// Tiny elements cost the gateway more than their bytes, and that state
/// counts against the in-flight budget: a 2 MB body of 40,000 elements
/// needs the whole 4 MiB budget, so it waits for a stalled upload holding
/// half of it to be cut off (408) before it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_element_state_counts_against_the_inflight_budget() {
    let p = Pipeline::shared("bad_elements").await;
    let h = p
        .start(
            "gateway",
            "gateway",
            &[("GATEWAY_MAX_INFLIGHT_BYTES", &(4u64 << 20).to_string())],
        )
        .await;
    let holder_started = std::time::Instant::now();
    let holder = stalled_upload(h.port, 2 << 20, 80 << 10).await;
    wait_until(
        "half the budget is held",
        Duration::from_secs(30),
        || async {
            h.metrics()
                .await
                .sum("gateway_inflight_reserved_bytes", &[])
                >= (2u64 << 20) as f64
        },
    )
    .await;
    let cut_off = tokio::spawn(answer(holder));
    let events: Vec<Value> = (0..40_000)
        .map(|i| json!({"eventId": format!("t{i}"), "source": "facebook"}))
        .collect();
    let body = serde_json::to_vec(&events).unwrap();
    assert!(body.len() <= 2 << 20, "{} bytes", body.len());
    let (status, v) = json_post(&p, &h, body).await;
    let waited = holder_started.elapsed();
    assert_eq!(status, 200, "{v}");
    assert_eq!(counts(&v), (40_000, 0, 0), "{v}");
    // The holder is cut off no sooner than one 3 s rate window after the
    // gateway started reading it, which was after `holder_started`.
    assert!(
        waited >= Duration::from_secs(3),
        "answered after {waited:?}, before the budget it needed was free"
    );
    let (cut_status, _) = cut_off.await.unwrap();
    assert_eq!(cut_status, 408);
    no_5xx_and_ready(&h).await;
}
