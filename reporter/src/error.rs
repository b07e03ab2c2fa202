//! Errors a report request can end with, and their JSON answers.
use crate::params::ParamError;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use events_common::http::json_error;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid query parameters")]
    InvalidParams(Vec<ParamError>),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // 57014 query_canceled: the report's statement timeout fired; like
        // an unreachable database, that is "try again later", not a bug.
        let timed_out = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "57014");
        if events_common::db::is_connection_error(&e) || timed_out {
            Self::Unavailable(e)
        } else {
            Self::Database(e)
        }
    }
}

impl From<Vec<ParamError>> for ApiError {
    fn from(errors: Vec<ParamError>) -> Self {
        Self::InvalidParams(errors)
    }
}

/// Every error answer: `{"error": "...", "details": [...]}`; `details` lists
/// the invalid parameters of a 400 and is absent otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for humans.
    pub error: String,
    /// One entry per invalid query parameter (400 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ParamError>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::InvalidParams(details) => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody {
                    error: "invalid query parameters".to_string(),
                    details: Some(details),
                }),
            )
                .into_response(),
            Self::Unauthorized => {
                let mut res = json_error(StatusCode::UNAUTHORIZED, self.to_string());
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                res
            }
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "report failed: database unavailable or too slow");
                json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable, try again later",
                )
            }
            Self::Database(e) => {
                // The cause goes to the log, not to the client.
                tracing::error!(error = %e, "report failed");
                json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}
