//! Cross-cutting request handling: timeouts with the envelope, metrics by route, panic → 500
//! envelope, and tracing spans carrying the request id (continuing a caller's `traceparent`).

use std::any::Any;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use axum::middleware::Next;
use axum::response::IntoResponse;
use docent_domain::Code;
use tracing::Span;

use crate::error::ApiError;

/// Answers `408 request_timeout` when a request takes longer than `limit`.
pub(crate) async fn timeout(limit: Duration, req: Request, next: Next) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            Code::RequestTimeout,
            format!("the request took longer than {}s", limit.as_secs_f32()),
        )
        .into_response(),
    }
}

/// Counts requests and records latency by method, matched route and status.
pub(crate) async fn record_metrics(req: Request, next: Next) -> axum::response::Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("docent_http_requests_total", &labels).increment(1);
    metrics::histogram!("docent_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// A panicking handler becomes a 500 envelope; the panic message goes to the log only.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    ApiError(docent_domain::Error::internal(format!("panic: {detail}"))).into_response()
}

pub(crate) fn make_span(req: &Request) -> Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %request_id);
    // A caller's W3C trace context: this request continues its trace.
    if let Some(traceparent) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        docent_core::trace_context::continue_trace(&span, traceparent);
    }
    span
}

/// A response at least this slow is logged at info.
const SLOW_RESPONSE: Duration = Duration::from_secs(1);

/// Whether a response is worth an info line: a server error or a slow answer. Every other one
/// is logged at debug, so one bulk ingest does not write a line per request.
fn notable(status: axum::http::StatusCode, latency: Duration) -> bool {
    status.is_server_error() || latency >= SLOW_RESPONSE
}

pub(crate) fn on_response(resp: &Response<Body>, latency: Duration, _span: &Span) {
    let status = resp.status().as_u16();
    let latency_ms = latency.as_millis() as u64;
    if notable(resp.status(), latency) {
        tracing::info!(status, latency_ms, "response");
    } else {
        tracing::debug!(status, latency_ms, "response");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn only_server_errors_and_slow_responses_are_logged_at_info() {
        let quick = Duration::from_millis(5);
        assert!(!notable(StatusCode::OK, quick));
        assert!(!notable(StatusCode::NOT_FOUND, quick));
        assert!(!notable(StatusCode::TOO_MANY_REQUESTS, quick));
        assert!(notable(StatusCode::INTERNAL_SERVER_ERROR, quick));
        assert!(notable(StatusCode::SERVICE_UNAVAILABLE, quick));
        assert!(notable(StatusCode::OK, SLOW_RESPONSE));
    }
}
