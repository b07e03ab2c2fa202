//! Optional webhook authentication (`WEBHOOK_SECRET`): an HMAC-SHA256 of the
//! raw body in `X-Signature-256: sha256=<hex>`, or `Authorization: Bearer
//! <secret>`. Off by default: the external publisher signs nothing.
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-signature-256";

/// True when the request carries a valid signature or token for `secret`.
#[cfg(test)]
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    bearer(secret, headers).unwrap_or_else(|| verify_signature(secret, headers, body))
}

/// `Some(valid)` when the request carries a bearer token; `None` when it
/// does not (then only a signature can authenticate it). Needs no body, so
/// the gateway checks it before reading one.
pub fn bearer(secret: &str, headers: &HeaderMap) -> Option<bool> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    Some(bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes())))
}

/// True when `X-Signature-256` is the HMAC-SHA256 of `body` under `secret`.
pub fn verify_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(given) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().strip_prefix("sha256=").unwrap_or(v.trim()))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header value a client sends for `body`.
    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_and_tokens() {
        let mut h = HeaderMap::new();
        assert!(!verify("s3cret", &h, b"[]"));
        h.insert(SIGNATURE_HEADER, sign("s3cret", b"[]").parse().unwrap());
        assert!(verify("s3cret", &h, b"[]"));
        assert!(!verify("s3cret", &h, b"[1]"));
        assert!(!verify("other", &h, b"[]"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(verify("s3cret", &h, b"anything"));
        h.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(!verify("s3cret", &h, b"anything"));
    }
}
