//! Hostile and malformed webhook input against a real host: every answer is
//! JSON, errors carry an `error` field, nothing is a 5xx, and the host
//! stays ready.

use crate::support::pipeline::{raw_response, wait_until, Host, Pipeline};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: usize = 6 << 20;

/// POSTs `body` with `content_type` (none when `None`) and extra headers.
async fn send(
    p: &Pipeline,
    h: &Host,
    body: impl Into<Vec<u8>>,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = p.http.post(h.url("/webhook")).body(body.into());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("the gateway answers");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: answer is not JSON ({e}): {text:?}"));
    (status, v)
}

async fn json_post(p: &Pipeline, h: &Host, body: impl Into<Vec<u8>>) -> (u16, Value) {
    send(p, h, body, Some("application/json"), &[]).await
}

fn assert_error(what: &str, (status, v): (u16, Value), expected: u16) {
    assert_eq!(status, expected, "{what}: {v}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no error field in {v}"
    );
}

fn counts(v: &Value) -> (u64, u64, u64) {
    (
        v["accepted"].as_u64().unwrap(),
        v["rejected"].as_u64().unwrap(),
        v["duplicates"].as_u64().unwrap(),
    )
}

/// A chunked upload of `total` bytes (no Content-Length), over raw TCP.
async fn chunked_post(port: u16, total: usize) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let head = "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        wr.write_all(head.as_bytes()).await?;
        wr.write_all(b"2\r\n[\"\r\n").await?;
        let chunk = vec![b'a'; 64 << 10];
        for _ in 0..total / chunk.len() {
            wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            wr.write_all(&chunk).await?;
            wr.write_all(b"\r\n").await?;
        }
        wr.write_all(b"2\r\n\"]\r\n0\r\n\r\n").await
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut buf)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}")),
    )
}

async fn no_5xx_and_ready(h: &Host) {
    let m = h.metrics().await;
    let five =
        m.0.lines()
            .filter(|l| {
                l.starts_with("http_requests_total{")
                    && l.contains("route=\"/webhook\"")
                    && l.contains("status=\"5")
            })
            .collect::<Vec<_>>();
    assert!(five.is_empty(), "5xx answers: {five:?}");
    let ready: Value = reqwest::get(h.url("/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
}

fn valid_event(id: &str) -> Value {
    json!({
        "eventId": id, "timestamp": "2024-03-01T12:00:00.000Z", "source": "facebook", "funnelStage": "top", "eventType": "ad.view",
        "data": {
            "user": {"userId": "u1", "name": "Ann Lee", "age": 30, "gender": "female", "location": {"country": "France", "city": "Paris"}},
            "engagement": {"actionTime": "2024-03-01T11:59:59.000Z", "referrer": "newsfeed", "videoId": null}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_json_errors_and_the_host_stays_ready() {
    let p = Pipeline::shared("bad_input").await;
    let h = p
        .start(
            "all",
            "all",
            &[("GATEWAY_BODY_LIMIT_BYTES", &LIMIT.to_string())],
        )
        .await;

    assert_error(
        "malformed JSON",
        json_post(&p, &h, r#"[{"eventId":"x","#).await,
        400,
    );
    assert_error("trailing garbage", json_post(&p, &h, "[] []").await, 400);
    for scalar in ["42", "\"text\"", "null", "true", "-1.5"] {
        assert_error(scalar, json_post(&p, &h, scalar).await, 400);
    }
    assert_error("empty body", json_post(&p, &h, "").await, 400);
    assert_error("whitespace body", json_post(&p, &h, " \n ").await, 400);
    assert_error(
        "invalid UTF-8",
        json_post(&p, &h, b"[{\"eventId\":\"\xff\xfe\"}]".to_vec()).await,
        400,
    );
    assert_error(
        "binary",
        json_post(&p, &h, vec![0u8, 159, 146, 150]).await,
        400,
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_error("200 nested arrays", json_post(&p, &h, deep).await, 400);
    let deep_event = format!(
        r#"[{{"eventId":"d","source":"facebook","x":{}1{}}}]"#,
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    assert_error(
        "200 nested objects in an event",
        json_post(&p, &h, deep_event).await,
        400,
    );
    for ct in [
        "text/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ] {
        assert_error(ct, send(&p, &h, "[]", Some(ct), &[]).await, 415);
    }

    // Empty arrays and bodies without a content type are fine.
    let (s, v) = json_post(&p, &h, "[]").await;
    assert_eq!(
        (s, counts(&v), v["errors"].clone()),
        (200, (0, 0, 0), json!([])),
        "{v}"
    );
    let (s, v) = send(&p, &h, " [ ] ", None, &[]).await;
    assert_eq!((s, counts(&v)), (200, (0, 0, 0)), "{v}");

    // Elements that are not events are rejected one by one, with reasons.
    let (s, v) = json_post(&p, &h, r#"[1, "x", null, [], {}, {"eventId":5,"source":"facebook"}, {"eventId":"a","eventId":"b","source":"facebook"}]"#).await;
    assert_eq!((s, counts(&v)), (200, (0, 7, 0)), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 7);
    assert!(
        errors
            .iter()
            .all(|e| e["reasons"].as_array().is_some_and(|r| !r.is_empty())),
        "{v}"
    );

    // Over the limit: declared and streamed.
    assert_error(
        "declared over the limit",
        json_post(&p, &h, vec![b' '; LIMIT + 1]).await,
        413,
    );
    assert_error(
        "chunked over the limit",
        chunked_post(h.port, LIMIT + (1 << 20)).await,
        413,
    );

    // A 5 MB string: the event is bigger than a NATS message, so it is
    // refused alone (and dead-lettered, truncated), never a 5xx.
    let mut huge = valid_event("fb-huge-1");
    huge["data"]["user"]["name"] = json!("x".repeat(5 << 20));
    let (s, v) = json_post(
        &p,
        &h,
        serde_json::to_vec(&[huge, valid_event("fb-small-1")]).unwrap(),
    )
    .await;
    assert_eq!((s, counts(&v)), (200, (1, 1, 0)), "{v}");
    assert!(
        v["errors"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("bytes"),
        "{v}"
    );
    // A 600 kB string fits: it reaches the plugin, which decides.
    let mut big = valid_event("fb-big-1");
    big["data"]["user"]["name"] = json!("y".repeat(600 << 10));
    let (s, v) = json_post(&p, &h, serde_json::to_vec(&[big]).unwrap()).await;
    assert_eq!((s, counts(&v)), (200, (1, 0, 0)), "{v}");

    wait_until("the events to land", Duration::from_secs(30), || async {
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT event_id FROM events ORDER BY event_id")
                .fetch_all(&p.db.pool)
                .await
                .unwrap_or_default();
        stored == ["fb-big-1", "fb-small-1"] && p.db.count("dead_letters").await == 8
    })
    .await;
    let (raw_len, reasons): (i32, Value) =
        sqlx::query_as("SELECT length(raw), reasons FROM dead_letters WHERE event_id = 'fb-huge-1' AND stage = 'gateway'").fetch_one(&p.db.pool).await.unwrap();
    assert!(
        raw_len > 0 && raw_len < 1 << 20,
        "kept truncated: {raw_len}"
    );
    assert!(reasons.to_string().contains("bytes"), "{reasons}");
    no_5xx_and_ready(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secret_requires_a_valid_signature() {
    let p = Pipeline::shared("bad_auth").await;
    let h = p
        .start("gateway", "gateway", &[("WEBHOOK_SECRET", "s3cret")])
        .await;
    let body = serde_json::to_vec(&[valid_event("fb-signed-1")]).unwrap();
    let sign = |key: &[u8], body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let good = sign(b"s3cret", &body);
    let bad_cases = [
        ("no signature", vec![]),
        (
            "wrong key",
            vec![("x-signature-256", sign(b"other", &body))],
        ),
        (
            "other body",
            vec![("x-signature-256", sign(b"s3cret", b"[]"))],
        ),
        (
            "not hex",
            vec![("x-signature-256", "sha256=zzzz".to_string())],
        ),
        (
            "wrong bearer",
            vec![("authorization", "Bearer nope".to_string())],
        ),
    ];
    for (what, headers) in &bad_cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_error(
            what,
            send(&p, &h, body.clone(), Some("application/json"), &headers).await,
            401,
        );
    }
    let failures = h
        .metrics()
        .await
        .sum("gateway_webhook_auth_failures_total", &[]);
    assert_eq!(failures, bad_cases.len() as f64);

    let (s, v) = send(
        &p,
        &h,
        body.clone(),
        Some("application/json"),
        &[("X-Signature-256", &good)],
    )
    .await;
    assert_eq!((s, counts(&v)), (200, (1, 0, 0)), "{v}");
    let (s, v) = send(
        &p,
        &h,
        body.clone(),
        Some("application/json"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!((s, counts(&v)), (200, (0, 0, 1)), "an exact re-send: {v}");
    // A bad signature is refused before the body is even parsed.
    assert_error(
        "garbage, unsigned",
        send(&p, &h, "{{{", Some("application/json"), &[]).await,
        401,
    );
    assert_eq!(
        h.metrics()
            .await
            .sum("gateway_webhook_auth_failures_total", &[]),
        failures + 1.0
    );
    no_5xx_and_ready(&h).await;
}

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

/// The status and JSON body of the one response the server writes (read
/// until its Content-Length is complete or the server closes).
async fn answer(mut s: tokio::net::TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|n| body.len() >= n) {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
    raw_response(&buf)
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

/// A wrong bearer token is refused from the headers alone: the 401 comes
/// although the declared body is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bearer_token_is_refused_before_the_body() {
    let p = Pipeline::shared("bad_bearer").await;
    let h = p
        .start("gateway", "gateway", &[("WEBHOOK_SECRET", "s3cret")])
        .await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
        .await
        .unwrap();
    s.write_all(
        b"POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: Bearer nope\r\nContent-Length: 10485760\r\n\r\n",
    )
    .await
    .unwrap();
    let (status, v) = answer(s).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["error"].is_string(), "{v}");
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
