//! The HTTP edge: the axum router for the REST API under `/api/v1`, health and readiness,
//! Prometheus metrics, the OpenAPI document, an offline docs page, and the web console at `/`
//! ([`console`]).
//!
//! Architecture invariant: this is the only crate that knows HTTP. Handlers parse input into
//! domain types, call [`docent_core::Services`], and turn results into wire DTOs ([`dto`]);
//! every failure becomes the one error envelope ([`error::ApiError`]).

pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
mod forwarded;
pub mod local;
pub mod metrics;
mod middleware;
pub mod openapi;
mod ratelimit;
mod routes;
mod security;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use docent_auth::AuthService;
use docent_core::Services;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The services.
    pub services: Services,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Accounts and credentials with `auth.mode = "builtin"`; `None` in mode `none`, where
    /// every request acts as the owner of the default tenant and the auth routes answer 404.
    pub auth: Option<Arc<AuthService>>,
}

/// Builds the whole application router.
pub fn router(state: AppState) -> Router {
    let request_timeout = state.services.config.server.request_timeout;
    let upload_limit = state.services.config.ingest.max_upload_size.as_u64() as usize;

    // Uploads (and their seed-compatible aliases) stream for as long as they take: no request
    // timeout, and a body limit just above the configured file limit (multipart framing) — the
    // exact file limit is enforced while streaming.
    let (uploads, upload_api) = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(routes::documents::upload_document))
        .routes(utoipa_axum::routes!(routes::documents::seed_upload))
        .routes(utoipa_axum::routes!(routes::documents::seed_api_upload))
        .layer(DefaultBodyLimit::max(
            upload_limit.saturating_add(1024 * 1024),
        ))
        .split_for_parts();

    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(routes::api())
        .merge(routes::widget_api())
        .layer(axum::middleware::from_fn(move |req, next| {
            middleware::timeout(request_timeout, req, next)
        }))
        .split_for_parts();
    doc.merge(upload_api);

    let cors = security::cors_layer(&state.services.config.server.cors);
    let proxies: forwarded::Proxies = state.services.config.server.trusted_proxy_nets().into();
    let app = Router::new()
        .merge(api)
        .merge(uploads)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .route("/", axum::routing::get(console::index))
        .route("/console/{*path}", axum::routing::get(console::asset))
        .route("/widget.js", axum::routing::get(routes::widget::loader))
        .route("/widget/frame", axum::routing::get(routes::widget::frame))
        .route(
            "/widget/assets/{file}",
            axum::routing::get(routes::widget::asset),
        )
        .route(
            "/widget/v1/session",
            axum::routing::options(routes::widget::preflight),
        )
        .route(
            "/widget/v1/conversation",
            axum::routing::options(routes::widget::preflight),
        )
        .route(
            "/widget/v1/chat",
            axum::routing::options(routes::widget::preflight),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        // Rate limits, handlers and extractors inside read the forwarded client's address.
        .layer(axum::middleware::from_fn_with_state(
            proxies,
            forwarded::client_address,
        ));
    // Preflights are answered here, before rate limits and authentication.
    let app = match cors {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(CompressionLayer::new())
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::make_span)
                .on_response(middleware::on_response),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(security::headers))
}

/// How long clients are told to wait before retrying after a 503.
pub const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_secs(1);
