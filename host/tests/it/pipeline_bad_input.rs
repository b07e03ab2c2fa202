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
pub(crate) async fn send(
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

pub(crate) async fn json_post(p: &Pipeline, h: &Host, body: impl Into<Vec<u8>>) -> (u16, Value) {
    send(p, h, body, Some("application/json"), &[]).await
}

fn assert_error(what: &str, (status, v): (u16, Value), expected: u16) {
    assert_eq!(status, expected, "{what}: {v}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no error field in {v}"
    );
}

pub(crate) fn counts(v: &Value) -> (u64, u64, u64) {
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

pub(crate) async fn no_5xx_and_ready(h: &Host) {
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

pub(crate) fn valid_event(id: &str) -> Value {
    json!({
        "eventId": id, "timestamp": "2024-03-01T12:00:00.000Z", "source": "facebook", "funnelStage": "top", "eventType": "ad.view",
        "data": {
            "user": {"userId": "u1", "name": "Ann Lee", "age": 30, "gender": "female", "location": {"country": "France", "city": "Paris"}},
            "engagement": {"actionTime": "2024-03-01T11:59:59.000Z", "referrer": "newsfeed", "videoId": null}
        }
    })
}

/// The status and JSON body of the one response the server writes (read
/// until its Content-Length is complete or the server closes).
pub(crate) async fn answer(mut s: tokio::net::TcpStream) -> (u16, Value) {
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
