//! Extractors that turn every rejection into the error envelope: JSON bodies (malformed, wrong
//! shape, unknown fields, wrong content type, too large), query strings, and the caller
//! ([`Auth`]: the principal every request acts as).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use docent_auth::ClientInfo;
use docent_domain::{Actor, Code, Principal, Role, TenantId, UserId};
use serde::de::DeserializeOwned;

use crate::AppState;
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

/// The caller every request acts as. With `auth.mode = "none"` that is an owner of
/// [`TenantId::DEFAULT`]; with `auth.mode = "builtin"` the `Authorization: Bearer …` credential
/// (access token, API key or external OIDC token) decides, and a missing or invalid one is 401.
/// Handlers never pick a tenant themselves: they act in `principal.tenant_id`.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The principal of `auth.mode = "none"`: the owner of the default tenant.
pub fn local_owner() -> Principal {
    Principal {
        tenant_id: TenantId::DEFAULT,
        actor: Actor::User {
            id: UserId::from_uuid(uuid::Uuid::nil()),
            session: None,
        },
        role: Role::Owner,
        key_scope: None,
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Auth(p.clone()));
        }
        let Some(auth) = &state.auth else {
            return Ok(Auth(local_owner()));
        };
        let credential = bearer(parts)?;
        let mut principal = auth.authenticate_bearer(credential).await?;
        // A key limited to some bots reads only their collections, in every service.
        state.services.narrow_to_bots(&mut principal).await?;
        parts.extensions.insert(principal.clone());
        Ok(Auth(principal))
    }
}

/// The credential of an `Authorization: Bearer …` header; `unauthenticated` when there is none.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::new(
            Code::Unauthenticated,
            "this route needs `Authorization: Bearer <access token or API key>`",
        )
    };
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| ApiError::new(Code::TokenInvalid, "the Authorization header is not ASCII"))?;
    let (scheme, credential) = value.split_once(' ').ok_or_else(missing)?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(missing());
    }
    Ok(credential)
}

/// The client address (for sign-in brute-force protection); unspecified when the server was
/// not started with connection info.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(Client(ClientInfo { ip }))
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
