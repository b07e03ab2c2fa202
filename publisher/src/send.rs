//! Sending one POST to the gateway: headers (signature, correlation id), one
//! attempt (the publisher never retries), and classifying the outcome.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Header carrying the body's HMAC-SHA256 when a webhook secret is set.
pub const SIGNATURE_HEADER: &str = "x-signature-256";
/// Header carrying a per-POST correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, the `X-Signature-256` value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The gateway's 200 response body. Missing fields read as 0 / empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayReply {
    /// Events accepted (valid and new).
    #[serde(default)]
    pub accepted: u64,
    /// Events rejected as invalid.
    #[serde(default)]
    pub rejected: u64,
    /// Events recognised as duplicates.
    #[serde(default)]
    pub duplicates: u64,
    /// Per-event error descriptions, as the gateway reports them.
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
}

/// What happened to one POST.
#[derive(Debug)]
pub enum PostOutcome {
    /// The gateway answered (any status).
    Response {
        /// HTTP status code.
        status: u16,
        /// Time from sending until the whole response body was read.
        latency: Duration,
        /// The parsed body, when it was a [`GatewayReply`].
        reply: Option<GatewayReply>,
        /// The start of the body, for logging non-2xx answers.
        body_snippet: String,
    },
    /// No HTTP answer: connect error, timeout, reset, ...
    Transport {
        /// Time until the failure.
        latency: Duration,
        /// Description of the failure.
        error: String,
    },
}

impl PostOutcome {
    /// Whether the gateway answered 2xx.
    pub fn is_success(&self) -> bool {
        matches!(self, PostOutcome::Response { status, .. } if (200..300).contains(status))
    }
}

/// Posts bodies to one endpoint.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    secret: Option<Vec<u8>>,
    correlation_prefix: Option<String>,
}

impl Poster {
    /// A poster for `endpoint` (plain `http://`), signing bodies with
    /// `secret` and tagging POSTs `<prefix>-<seq>` when given.
    pub fn new(
        endpoint: &str,
        secret: Option<&str>,
        correlation_prefix: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let endpoint = reqwest::Url::parse(endpoint)
            .map_err(|e| anyhow::anyhow!("invalid endpoint {endpoint:?}: {e}"))?;
        if endpoint.scheme() != "http" {
            anyhow::bail!("endpoint {endpoint} must use http:// (this build has no TLS support)");
        }
        if let Some(p) = correlation_prefix {
            HeaderValue::from_str(p).map_err(|_| {
                anyhow::anyhow!("correlation id prefix {p:?} is not a valid header value")
            })?;
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            endpoint,
            secret: secret
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
            correlation_prefix: correlation_prefix.map(str::to_owned),
        })
    }

    /// The endpoint POSTs go to.
    pub fn endpoint(&self) -> &reqwest::Url {
        &self.endpoint
    }

    /// The correlation id POST number `seq` carries, if ids are enabled.
    pub fn correlation_id(&self, seq: u64) -> Option<String> {
        self.correlation_prefix
            .as_ref()
            .map(|p| format!("{p}-{seq}"))
    }

    /// POSTs `body` once (no retry) and reports what happened.
    pub async fn post(&self, seq: u64, body: Vec<u8>) -> PostOutcome {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secret) = &self.secret {
            if let Ok(v) = HeaderValue::from_str(&signature(secret, &body)) {
                headers.insert(SIGNATURE_HEADER, v);
            }
        }
        if let Some(id) = self.correlation_id(seq) {
            if let Ok(v) = HeaderValue::from_str(&id) {
                headers.insert(CORRELATION_HEADER, v);
            }
        }
        let started = Instant::now();
        let sent = self
            .client
            .post(self.endpoint.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return PostOutcome::Transport {
                    latency: started.elapsed(),
                    error: describe(&e),
                }
            }
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return PostOutcome::Transport {
                    latency: started.elapsed(),
                    error: format!("reading response ({status}): {}", describe(&e)),
                }
            }
        };
        let latency = started.elapsed();
        let reply = serde_json::from_slice::<GatewayReply>(&bytes).ok();
        let body_snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        PostOutcome::Response {
            status,
            latency,
            reply,
            body_snippet,
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}
