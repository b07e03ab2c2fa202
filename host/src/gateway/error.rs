//! Why a webhook request is answered with an error, and that answer:
//! `{"error": "..."}` with the status the reason calls for.
use super::{auth::SIGNATURE_HEADER, envelope, upload};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use events_common::http::json_error;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The gateway is draining, or its in-flight budget was closed.
    #[error("shutting down")]
    ShuttingDown,
    #[error("content-type must be application/json, got {0:?}")]
    ContentType(String),
    /// The declared `Content-Length` is over the limit.
    #[error("body exceeds the {0}-byte limit")]
    DeclaredTooLarge(usize),
    #[error("missing or bad webhook signature ({header} or bearer token)", header = SIGNATURE_HEADER)]
    Unauthorized,
    /// The upload failed while being read (too large, too slow, broken).
    #[error(transparent)]
    Upload(#[from] upload::BodyError),
    /// The body is not a JSON array of events or one event object.
    #[error(transparent)]
    Body(#[from] envelope::BodyError),
    #[error("body check failed: {0}")]
    Check(#[source] tokio::task::JoinError),
    #[error(
        "event store unavailable: {failed} of {total} events were not acknowledged; retry later"
    )]
    NotAcknowledged { failed: usize, total: usize },
}

impl WebhookError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ShuttingDown | Self::NotAcknowledged { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::DeclaredTooLarge(_)
            | Self::Upload(upload::BodyError::TooLarge(_))
            | Self::Body(envelope::BodyError::TooManyElements { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Upload(upload::BodyError::TooSlow(_)) => StatusCode::REQUEST_TIMEOUT,
            Self::Upload(upload::BodyError::Read(_)) | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::Check(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        json_error(self.status(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages_are_the_ones_clients_see() {
        let cases = [
            (WebhookError::ShuttingDown, 503, "shutting down"),
            (
                WebhookError::ContentType("text/html".into()),
                415,
                "content-type must be application/json, got \"text/html\"",
            ),
            (
                WebhookError::DeclaredTooLarge(10),
                413,
                "body exceeds the 10-byte limit",
            ),
            (
                WebhookError::Unauthorized,
                401,
                "missing or bad webhook signature (x-signature-256 or bearer token)",
            ),
            (
                upload::BodyError::TooLarge(10).into(),
                413,
                "body exceeds the 10-byte limit",
            ),
            (
                envelope::BodyError::TooManyElements { found: 3, max: 2 }.into(),
                413,
                "body has at least 3 elements, more than the 2 a request may carry (GATEWAY_MAX_EVENTS)",
            ),
            (
                envelope::BodyError::Shape.into(),
                400,
                "body must be a JSON array of events or a single event object",
            ),
            (
                WebhookError::NotAcknowledged { failed: 1, total: 2 },
                503,
                "event store unavailable: 1 of 2 events were not acknowledged; retry later",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.to_string(), message);
        }
    }
}
