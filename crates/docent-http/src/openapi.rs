//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::OpenApi;

/// Top-level info and tags; paths are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(title = "docent", description = "Self-hostable AI document platform: collections, documents, tasks. Every error is `{\"error\": {code, message, type, link}}`; see `GET /api/v1/errors`."),
    tags(
        (name = "collections", description = "Knowledge bases"),
        (name = "documents", description = "Uploaded originals and their chunks"),
        (name = "search", description = "Hybrid search, extractive answers and summaries"),
        (name = "tasks", description = "Background work: status, progress, cancel, retry"),
        (name = "system", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The base document.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
