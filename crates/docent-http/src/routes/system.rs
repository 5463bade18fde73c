//! Health, readiness, metrics and the error code table.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use docent_domain::Code;
use serde_json::{Map, Value};

use crate::AppState;
use crate::dto::{ErrorCodeInfo, Health, Ready};

/// A JSON body ending in a newline like any text a terminal prints (`curl /health` leaves the
/// prompt on its own line).
fn json_line(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn health_body() -> Response {
    let health = Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    };
    json_line(StatusCode::OK, &health)
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Response {
    health_body()
}

/// Liveness (alias under the API prefix).
#[utoipa::path(get, path = "/api/v1/health", tag = "system", security(()), responses((status = 200, body = Health)))]
pub(crate) async fn health_v1() -> Response {
    health_body()
}

/// Readiness: the database, blob store and queue answer (each within 3 s). A failing cache is
/// reported as `degraded: …` but keeps the process ready: cache outages fall through.
#[utoipa::path(get, path = "/ready", tag = "system", security(()), responses(
    (status = 200, body = Ready), (status = 503, body = Ready, description = "a dependency is down")
))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let r = state.services.readiness().await;
    let checks: Map<String, Value> = r
        .checks
        .iter()
        .map(|c| {
            let state = match (&c.error, c.optional) {
                (None, _) => "ok".to_owned(),
                (Some(e), true) => format!("degraded: {e}"),
                (Some(e), false) => e.clone(),
            };
            (c.name.to_owned(), Value::String(state))
        })
        .collect();
    if r.ready() {
        json_line(
            StatusCode::OK,
            &Ready {
                status: "ready",
                checks,
            },
        )
    } else {
        let mut resp = json_line(
            StatusCode::SERVICE_UNAVAILABLE,
            &Ready {
                status: "unavailable",
                checks,
            },
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        resp
    }
}

/// Prometheus metrics. With `server.metrics_token` set, only for `Authorization: Bearer
/// <that token>` (`401 unauthenticated` otherwise).
#[utoipa::path(get, path = "/metrics", tag = "system", security(()), responses((status = 200, content_type = "text/plain", body = String),
    (status = 401, body = crate::error::ErrorEnvelope, description = "`server.metrics_token` is set and was not sent")))]
pub(crate) async fn metrics(State(state): State<AppState>, headers: header::HeaderMap) -> Response {
    let token = match state.services.config.server.metrics_token() {
        Ok(t) => t,
        Err(e) => {
            return crate::error::ApiError::from(docent_domain::Error::internal(e.to_string()))
                .into_response();
        }
    };
    if let Some(token) = token {
        use secrecy::ExposeSecret;
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, token.expose_secret().as_bytes()) {
            return crate::error::ApiError::new(
                Code::Unauthenticated,
                "`/metrics` needs `Authorization: Bearer <server.metrics_token>`",
            )
            .into_response();
        }
    }
    crate::metrics::refresh(&state.services).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The table of error codes every error envelope draws from.
#[utoipa::path(get, path = "/api/v1/errors", tag = "system", security(()), responses((status = 200, body = [ErrorCodeInfo])))]
pub(crate) async fn error_codes() -> Json<Vec<ErrorCodeInfo>> {
    Json(
        Code::ALL
            .iter()
            .map(|c| ErrorCodeInfo {
                code: c.as_str(),
                kind: c.error_type().as_str(),
                status: c.http_status(),
                retryable: c.is_retryable(),
            })
            .collect(),
    )
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
