//! Browser-facing protections: the CORS policy from `server.cors` and the security headers
//! every response carries.

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use docent_config::CorsConfig;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers a cross-origin client may read.
const EXPOSED: [&str; 5] = [
    "x-request-id",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
];

/// The CORS layer for `config`, or `None` when no origin is allowed (then no CORS headers are
/// sent at all). Values were validated when the configuration loaded; any that still do not
/// make a header are skipped with a warning.
pub(crate) fn cors_layer(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origin = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.allowed_origins.iter().filter_map(|o| {
            HeaderValue::from_str(o)
                .inspect_err(|_| tracing::warn!(origin = %o, "skipping an invalid CORS origin"))
                .ok()
        }))
    };
    let methods: Vec<Method> = config
        .allowed_methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers: Vec<HeaderName> = config
        .allowed_headers
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers(headers)
            .allow_credentials(config.allow_credentials)
            .expose_headers(EXPOSED.map(HeaderName::from_static))
            .max_age(config.max_age),
    )
}

/// Paths whose responses may carry credentials (tokens, new API keys): never cached.
fn holds_credentials(path: &str) -> bool {
    path.starts_with("/api/v1/auth/")
        || path.starts_with("/auth/")
        || path == "/api/v1/setup"
        || path == "/api/v1/keys"
        || path.starts_with("/api/v1/keys/")
}

/// Adds the security headers to every response (without replacing ones a handler set):
/// no MIME sniffing, no framing (except the widget frame, whose own `frame-ancestors` names
/// its bot's origins), no referrer, and
/// `Cache-Control: no-store` on responses that may hold credentials.
/// Responses to refused origins lose the meaningless CORS headers.
pub(crate) async fn headers(req: Request, next: Next) -> axum::response::Response {
    let no_store = holds_credentials(req.uri().path());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // tower-http adds some CORS headers whatever the origin; without an allowed origin they
    // mean nothing, so a refused origin sees none at all.
    if !h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
        let cors: Vec<HeaderName> = h
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in cors {
            h.remove(k);
        }
    }
    // A page whose own policy lets some origins frame it (the widget frame) must not be
    // denied by `X-Frame-Options`, which browsers would apply on top.
    let framable = h
        .get(CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|csp| {
            csp.contains("frame-ancestors") && !csp.contains("frame-ancestors 'none'")
        });
    let mut set = |name: HeaderName, value: &'static str| {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !framable {
        set(X_FRAME_OPTIONS, "DENY");
    }
    set(CONTENT_SECURITY_POLICY, "frame-ancestors 'none'");
    set(REFERRER_POLICY, "no-referrer");
    if no_store {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_paths_are_recognised() {
        assert!(holds_credentials("/api/v1/auth/signin"));
        assert!(holds_credentials("/auth/refresh"));
        assert!(holds_credentials("/api/v1/keys"));
        assert!(!holds_credentials("/api/v1/collections"));
        assert!(!holds_credentials("/api/v1/authors"));
    }

    #[test]
    fn no_origins_means_no_layer() {
        assert!(cors_layer(&CorsConfig::default()).is_none());
        let c = CorsConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            ..CorsConfig::default()
        };
        assert!(cors_layer(&c).is_some());
    }
}
