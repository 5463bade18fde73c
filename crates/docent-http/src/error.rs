//! The one error envelope: `{"error": {"code", "message", "type", "link"}}`, with the HTTP status
//! from the code table and `Retry-After` on 429/503. Internal causes are logged here, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docent_domain::{Code, Error, ErrorType};
use serde::Serialize;
use utoipa::ToSchema;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(Error::new(code, message))
    }
}

/// The error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code; see `GET /api/v1/errors`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Class: invalid_request, auth, not_found, rate_limited, unavailable, internal.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where the code is documented.
    pub link: String,
}

impl ApiError {
    /// The envelope sent for this error (also inside event streams), logging internal and
    /// unavailable causes here since they are never sent.
    pub fn envelope(&self) -> ErrorEnvelope {
        let e = &self.0;
        let internal = matches!(
            e.code.error_type(),
            ErrorType::Internal | ErrorType::Unavailable
        );
        if internal {
            tracing::error!(code = %e.code, error = %e.chain(), "request failed");
        }
        // Internal messages are generic by construction (Error::internal); never echo a cause.
        let message = if e.code.error_type() == ErrorType::Internal && e.source.is_some() {
            "an internal error occurred".to_owned()
        } else {
            e.message.clone()
        };
        ErrorEnvelope {
            error: ErrorBody {
                code: e.code.as_str(),
                message,
                kind: e.code.error_type().as_str(),
                link: format!("/api/v1/errors#{}", e.code.as_str()),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.envelope();
        let e = self.0;
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(body)).into_response();
        let retry = e.retry_after.or(match e.code.error_type() {
            ErrorType::RateLimited | ErrorType::Unavailable
                if status.as_u16() == 503 || status.as_u16() == 429 =>
            {
                Some(crate::RETRY_AFTER_UNAVAILABLE)
            }
            _ => None,
        });
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = retry
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
