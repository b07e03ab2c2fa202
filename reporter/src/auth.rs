//! Optional bearer-token protection of the report endpoints
//! (`REPORTER_API_TOKEN`). Health, metrics and the OpenAPI document stay
//! open.
use crate::error::ApiError;
use axum::{
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The expected token; `None` turns the check off.
#[derive(Clone)]
pub struct Token(pub Option<Arc<str>>);

/// Middleware: 401 unless `Authorization: Bearer <token>` matches.
pub async fn require(State(token): State<Token>, req: Request, next: Next) -> Response {
    let Some(expected) = token.0 else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(p) if matches(p, &expected) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// The credentials of a `Bearer` authorization (scheme case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Constant-time in the token's content (only the length can leak, which
/// reveals nothing useful about a random token).
fn matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_credentials() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abd", "abc"));
        assert!(!matches("ab", "abc"));
        assert!(!matches("", "abc"));
    }
}
