//! Request rate limits at the edge (`auth.mode = "builtin"`): each matched route belongs to a
//! [`RouteClass`]; the request takes one token from its caller's bucket for that class — the
//! API key or user of a valid bearer credential, else the client address (account routes
//! always count by address), and a caller with a valid credential also takes one from its
//! workspace's ceiling for the class (shared by all the workspace's keys and users, so minting
//! keys does not multiply the limit). Every limited response carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset`; a refused one is `429 rate_limited` with
//! `Retry-After`. Health, readiness, metrics, the error table and the API docs are not limited.
//!
//! With `auth.rate_limit.enabled = false` nothing is limited and no header is sent. In mode
//! `none` nothing is limited either: that mode serves one local user on loopback, where every
//! request comes from the same address and a shared bucket would only throttle bulk ingestion.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use docent_auth::{AuthService, RateDecision, RateKey, RouteClass};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Auth;

/// How a route is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Not limited (probes, metrics, docs).
    Exempt,
    /// Public account routes: by client address.
    ByAddress(RouteClass),
    /// By the caller's credential (by address while it has none or an invalid one).
    ByCaller(RouteClass),
}

/// The limit of a matched route (`path` as declared, e.g. `/api/v1/documents/{id}`).
pub(crate) fn classify(method: &Method, path: &str) -> Limit {
    const EXEMPT: [&str; 7] = [
        "/",
        "/health",
        "/api/v1/health",
        "/ready",
        "/metrics",
        "/api/v1/errors",
        "/openapi.json",
    ];
    // The widget's routes have their own limits (per key, per visitor, sessions per address):
    // its visitors carry no credential this limiter knows.
    if EXEMPT.contains(&path)
        || path.starts_with("/docs")
        || path.starts_with("/console/")
        || path == "/widget.js"
        || path.starts_with("/widget/")
    {
        return Limit::Exempt;
    }
    if path.starts_with("/api/v1/auth/") || path.starts_with("/auth/") || path == "/api/v1/setup" {
        return Limit::ByAddress(RouteClass::Auth);
    }
    let class = match (method.as_str(), path) {
        ("POST", "/api/v1/search" | "/api/v1/collections/{id}/search" | "/v1/embeddings") => {
            RouteClass::Search
        }
        (
            "POST",
            "/api/v1/ask" | "/api/v1/bots/{id}/chat" | "/api/chat" | "/v1/chat/completions",
        )
        | ("GET", "/api/v1/documents/{id}/summary") => RouteClass::Ask,
        (
            "POST",
            "/api/v1/collections/{id}/documents"
            | "/upload"
            | "/api/upload"
            | "/api/v1/documents/{id}/reprocess"
            | "/api/v1/documents/{id}/retry-failed-rows"
            | "/api/v1/collections/{id}/documents/uploads"
            | "/api/v1/collections/{id}/documents/uploads/{upload_id}/complete",
        ) => RouteClass::Ingest,
        // A lookup changes nothing: a bulk uploader's "what do you have already" must not
        // spend write (or upload) budget.
        ("POST", "/api/v1/collections/{id}/documents/lookup") | ("GET" | "HEAD", _) => {
            RouteClass::Read
        }
        _ => RouteClass::Write,
    };
    Limit::ByCaller(class)
}

/// The middleware: classify, authenticate (the principal is kept for the handler's
/// [`Auth`] extractor), take a token, answer 429 or run the handler, add the headers.
pub(crate) async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(auth) = state.auth.clone().filter(|a| a.limiter().enabled()) else {
        return next.run(req).await;
    };
    let Some(path) = req.extensions().get::<MatchedPath>().map(|p| p.as_str()) else {
        return next.run(req).await;
    };
    let limit = classify(req.method(), path);
    let ip = client_ip(&req);
    let (class, key, tenant, auth_error, req) = match limit {
        Limit::Exempt => return next.run(req).await,
        Limit::ByAddress(class) => (class, RateKey::Ip(ip), None, None, req),
        Limit::ByCaller(class) => {
            let (mut parts, body) = req.into_parts();
            let principal = Auth::from_request_parts(&mut parts, &state).await;
            let req = Request::from_parts(parts, body);
            match principal {
                Ok(Auth(p)) => (
                    class,
                    AuthService::rate_key(&p),
                    Some(p.tenant_id),
                    None,
                    req,
                ),
                // A missing or invalid credential counts against the address (so guessing keys
                // is limited too); the answer is then the authentication error.
                Err(e) => (class, RateKey::Ip(ip), None, Some(e), req),
            }
        }
    };
    let mut decision = auth.check_rate(class, &key);
    if decision.allowed
        && let Some(tenant) = tenant
    {
        let ceiling = auth.check_tenant_rate(class, tenant);
        if !ceiling.allowed {
            decision = ceiling;
        }
    }
    respond(decision, auth_error, req, next).await
}

async fn respond(
    decision: RateDecision,
    auth_error: Option<ApiError>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = match (decision.into_result(), auth_error) {
        (Err(refused), _) => ApiError(refused).into_response(),
        (Ok(_), Some(e)) => e.into_response(),
        (Ok(_), None) => next.run(req).await,
    };
    for (name, value) in decision.headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_classes() {
        let c = |m: Method, p: &str| classify(&m, p);
        assert_eq!(c(Method::GET, "/health"), Limit::Exempt);
        assert_eq!(c(Method::GET, "/docs/index.html"), Limit::Exempt);
        assert_eq!(c(Method::GET, "/console/{*path}"), Limit::Exempt);
        assert_eq!(
            c(Method::POST, "/api/v1/auth/signin"),
            Limit::ByAddress(RouteClass::Auth)
        );
        assert_eq!(
            c(Method::POST, "/auth/signup"),
            Limit::ByAddress(RouteClass::Auth)
        );
        assert_eq!(
            c(Method::POST, "/api/v1/setup"),
            Limit::ByAddress(RouteClass::Auth)
        );
        assert_eq!(
            c(Method::POST, "/api/v1/search"),
            Limit::ByCaller(RouteClass::Search)
        );
        assert_eq!(
            c(Method::POST, "/api/v1/collections/{id}/search"),
            Limit::ByCaller(RouteClass::Search)
        );
        assert_eq!(
            c(Method::GET, "/api/v1/documents/{id}/summary"),
            Limit::ByCaller(RouteClass::Ask)
        );
        assert_eq!(
            c(Method::POST, "/api/v1/collections/{id}/documents"),
            Limit::ByCaller(RouteClass::Ingest)
        );
        for seed_upload in ["/upload", "/api/upload"] {
            assert_eq!(
                c(Method::POST, seed_upload),
                Limit::ByCaller(RouteClass::Ingest)
            );
        }
        assert_eq!(
            c(Method::GET, "/api/v1/collections/{id}/documents"),
            Limit::ByCaller(RouteClass::Read)
        );
        assert_eq!(
            c(Method::POST, "/api/v1/collections/{id}/documents/lookup"),
            Limit::ByCaller(RouteClass::Read)
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/keys/{id}"),
            Limit::ByCaller(RouteClass::Write)
        );
        // Bots: reads (and their seed aliases) are `read`, changes `write`.
        for read in [
            "/api/v1/bots",
            "/api/v1/bots/{id}",
            "/api/v1/bots/{id}/documents",
            "/api/v1/bots/{id}/conversations",
            "/api/v1/conversations/{id}",
            "/api/v1/conversations/{id}/messages",
            "/api/bots",
            "/api/bots/{bot_id}",
            "/api/bots/{bot_id}/documents",
        ] {
            assert_eq!(c(Method::GET, read), Limit::ByCaller(RouteClass::Read));
        }
        for (m, p) in [
            (Method::POST, "/api/v1/bots"),
            (Method::PATCH, "/api/v1/bots/{id}"),
            (Method::DELETE, "/api/v1/bots/{id}"),
            (Method::DELETE, "/api/bots/{bot_id}"),
        ] {
            assert_eq!(c(m, p), Limit::ByCaller(RouteClass::Write));
        }
    }
}
