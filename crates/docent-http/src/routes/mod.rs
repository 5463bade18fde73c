//! Route handlers, grouped by resource.

pub(crate) mod auth;
pub(crate) mod bots;
pub(crate) mod chat;
pub(crate) mod collections;
pub(crate) mod documents;
pub(crate) mod members;
pub(crate) mod openai;
pub(crate) mod search;
pub(crate) mod system;
pub(crate) mod tasks;
pub(crate) mod widget;

use axum::http::Uri;
use docent_domain::{Code, PageRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// Every route except uploads (which have their own limits).
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::health_v1))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics))
        .routes(routes!(system::error_codes))
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(
            collections::get,
            collections::update,
            collections::delete
        ))
        .routes(routes!(documents::list))
        .routes(routes!(documents::lookup))
        .routes(routes!(documents::get, documents::delete))
        .routes(routes!(documents::content))
        .routes(routes!(documents::download_url))
        .routes(routes!(documents::create_direct_upload))
        .routes(routes!(documents::complete_direct_upload))
        .routes(routes!(documents::chunks))
        .routes(routes!(documents::reprocess))
        .routes(routes!(documents::failed_rows))
        .routes(routes!(documents::retry_failed_rows))
        .routes(routes!(search::search))
        .routes(routes!(search::search_collection))
        .routes(routes!(search::ask))
        .routes(routes!(search::summary))
        .routes(routes!(bots::list, bots::create))
        .routes(routes!(bots::get, bots::update, bots::delete))
        .routes(routes!(bots::documents))
        .routes(routes!(bots::conversations))
        .routes(routes!(bots::conversation, bots::delete_conversation))
        .routes(routes!(bots::messages))
        .routes(routes!(chat::chat))
        .routes(routes!(chat::seed_chat))
        .routes(routes!(chat::openai_completions))
        .routes(routes!(openai::list_models))
        .routes(routes!(openai::get_model))
        .routes(routes!(openai::embeddings))
        .routes(routes!(bots::seed_list))
        .routes(routes!(bots::seed_get, bots::seed_delete))
        .routes(routes!(bots::seed_documents))
        .routes(routes!(tasks::list))
        .routes(routes!(tasks::counts))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::cancel))
        .routes(routes!(tasks::retry))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::signin))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::signout))
        .routes(routes!(auth::verify))
        .routes(routes!(auth::confirm))
        .routes(routes!(auth::password_reset))
        .routes(routes!(auth::password_reset_confirm))
        .routes(routes!(auth::setup))
        .routes(routes!(auth::create_key, auth::list_keys))
        .routes(routes!(auth::revoke_key))
        .routes(routes!(members::list))
        .routes(routes!(members::set_role, members::remove))
        .routes(routes!(members::invite))
        .routes(routes!(members::accept_invite))
        .routes(routes!(members::my_tenants))
        .routes(routes!(members::switch))
        .routes(routes!(auth::seed_signup))
        .routes(routes!(auth::seed_signin))
        .routes(routes!(auth::seed_verify))
        .routes(routes!(auth::seed_confirm))
        .routes(routes!(auth::seed_refresh))
        .routes(routes!(widget::create_key, widget::list_keys))
        .routes(routes!(widget::rotate_key))
        .routes(routes!(widget::revoke_key))
        .routes(routes!(widget::refusals))
        .routes(routes!(widget::preview))
}

/// The widget's visitor API (`/widget/v1/*`), behind its own CORS ([`widget::cors`]).
pub(crate) fn widget_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(widget::session))
        .routes(routes!(widget::conversation))
        .routes(routes!(widget::chat))
        .layer(axum::middleware::from_fn(widget::cors))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(Code::RouteNotFound, format!("no route for {}", uri.path()))
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        "this route does not accept that method",
    )
}

pub(crate) fn page(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    match limit {
        Some(0) => Err(ApiError::new(
            Code::InvalidQuery,
            "`limit` must be at least 1",
        )),
        Some(n) if n > PageRequest::MAX_LIMIT => Err(ApiError::new(
            Code::InvalidQuery,
            format!("`limit` must be at most {}", PageRequest::MAX_LIMIT),
        )),
        _ => Ok(PageRequest {
            limit: limit.unwrap_or(0),
            cursor,
        }),
    }
}

pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(
    raw: Option<String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|s| {
        s.parse::<T>()
            .map_err(|e| ApiError::new(Code::InvalidQuery, format!("`{name}`: {e}")))
    })
    .transpose()
}
