//! A tiny in-test gateway: validates with [`super::validate`], dedupes by
//! eventId, answers `{"accepted","rejected","duplicates","errors"}`, and
//! records what it saw.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct Seen {
    pub posts: u64,
    pub events: u64,
    pub accepted_ids: Vec<String>,
    pub accepted_set: HashSet<String>,
    /// Bodies answered so far: an identical one is a re-send.
    pub bodies: HashSet<Vec<u8>>,
    pub rejected: u64,
    pub duplicates: u64,
    pub bad_signatures: u64,
    pub correlation_ids: Vec<String>,
    pub failed_posts: u64,
}

#[derive(Clone)]
pub struct Gateway {
    pub seen: Arc<Mutex<Seen>>,
    /// Answer 503 (without processing) to every n-th POST.
    fail_every: Option<u64>,
    secret: Option<String>,
}

pub struct Running {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }
}

pub async fn start(fail_every: Option<u64>, secret: Option<&str>) -> Running {
    let gw = Gateway {
        seen: Arc::default(),
        fail_every,
        secret: secret.map(str::to_owned),
    };
    let seen = gw.seen.clone();
    let app = Router::new()
        .route("/webhook", post(webhook))
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(gw);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Running { addr, seen }
}

async fn webhook(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let mut seen = gw.seen.lock().unwrap();
    seen.posts += 1;
    if let Some(c) = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
    {
        seen.correlation_ids.push(c.to_owned());
    }
    if let Some(secret) = &gw.secret {
        let got = headers.get("x-signature-256").and_then(|v| v.to_str().ok());
        let want = events_publisher::signature(secret.as_bytes(), &body);
        if got != Some(want.as_str()) {
            seen.bad_signatures += 1;
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "bad signature"})),
            );
        }
    }
    if gw.fail_every.is_some_and(|n| seen.posts % n == 0) {
        seen.failed_posts += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "busy"})),
        );
    }
    let Ok(events) = serde_json::from_slice::<Vec<Value>>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "not an array"})),
        );
    };
    // The gateway's rule: every valid event of a new body is accepted (an
    // event re-sent inside another request is deduplicated later, by the
    // database); only an identical body sent again is answered as duplicates.
    let resent = !seen.bodies.insert(body.to_vec());
    let (mut accepted, mut rejected, mut duplicates) = (0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    for ev in &events {
        seen.events += 1;
        match super::validate(ev) {
            Err(reason) => {
                rejected += 1;
                errors.push(json!({"eventId": ev.get("eventId"), "reason": reason}));
            }
            Ok(()) if resent => duplicates += 1,
            Ok(()) => {
                accepted += 1;
                let id = ev["eventId"].as_str().unwrap_or_default().to_owned();
                if seen.accepted_set.insert(id.clone()) {
                    seen.accepted_ids.push(id);
                }
            }
        }
    }
    seen.rejected += rejected;
    seen.duplicates += duplicates;
    (
        StatusCode::OK,
        Json(
            json!({"accepted": accepted, "rejected": rejected, "duplicates": duplicates, "errors": errors}),
        ),
    )
}
