//! Extractors that turn every rejection into the error envelope: JSON bodies (malformed, wrong
//! shape, unknown fields, wrong content type, too large), query strings, and the tenant.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use docent_domain::{Code, TenantId};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` with envelope errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            Code::UnsupportedMediaType,
            "expected a request body with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(
            Code::InvalidJson,
            format!(
                "the body does not match the expected shape: {}",
                e.body_text()
            ),
        ),
        JsonRejection::BytesRejection(e) if e.status().as_u16() == 413 => {
            ApiError::new(Code::PayloadTooLarge, "the request body is too large")
        }
        other => ApiError::new(Code::InvalidJson, other.body_text()),
    }
}

/// `Query<T>` with envelope errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                Code::InvalidQuery,
                format!("invalid query string: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::new(Code::InvalidQuery, e.body_text())),
        }
    }
}

/// The tenant a request acts in. Until authentication lands every request acts in
/// [`TenantId::DEFAULT`]; handlers never pick a tenant themselves.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Tenant(TenantId::DEFAULT))
    }
}

/// Parses a path id; a malformed one is `invalid_id`.
pub fn id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            Code::InvalidId,
            format!(
                "`{}` is not a valid {what} id",
                raw.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Parses an id given as a query parameter; a malformed one is `invalid_query`.
pub fn query_id<T: std::str::FromStr>(raw: &str, param: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(Code::InvalidQuery, format!("`{param}` is not a valid id")))
}
