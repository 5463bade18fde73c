//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Top-level info and tags; paths are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(title = "docent", description = "Self-hostable AI document platform: collections, documents, tasks, bots. Every error is `{\"error\": {code, message, type, link}}`; see `GET /api/v1/errors`."),
    tags(
        (name = "collections", description = "Knowledge bases"),
        (name = "documents", description = "Uploaded originals and their chunks"),
        (name = "search", description = "Hybrid search, extractive answers and summaries"),
        (name = "bots", description = "Bots over collections: settings, their documents, conversations and messages, and cited chat"),
        (name = "compat", description = "Compatibility: the seed systems' routes, and the OpenAI-compatible `/v1` routes: chat completions and models where `model` names a bot, and embeddings"),
        (name = "tasks", description = "Background work: status, progress, cancel, retry"),
        (name = "system", description = "Health, readiness, metrics"),
        (name = "auth", description = "Accounts: sign-up, sign-in, refresh, sign-out, email verification, password reset, first-run setup"),
        (name = "members", description = "Workspace members, invitations, and the signed-in user's workspaces"),
        (name = "keys", description = "API keys: create (secret shown once), list, revoke"),
        (name = "widget", description = "The embeddable chat widget: publishable widget keys and refused origins (management), and the visitor API under /widget/v1 (a widget key and the page's origin → a short-lived session token; a visitor's conversation; streamed chat)"),
    ),
    modifiers(&BearerAuth),
    security(("bearerAuth" = []))
)]
pub struct ApiDoc;

/// Declares `bearerAuth`: an access token (JWT) or an API key in `Authorization: Bearer …`.
/// It applies to every operation except those marked public (`security(())`); with
/// `auth.mode = "none"` the server does not ask for it.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from /api/v1/auth/signin, or an API key (dk_…)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "widgetSession",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A widget visitor session token from POST /widget/v1/session (dws.…); \
                         valid on /widget/v1 routes only",
                    ))
                    .build(),
            ),
        );
    }
}

/// The base document.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
