//! CORS from `server.cors` and the security headers every response carries.

mod common;

use common::{spawn_app, spawn_app_with};
use docent_config::AuthMode;
use reqwest::{Method, StatusCode};
use serde_json::json;

const ALLOWED: &str = "https://app.example.com";

async fn preflight(app: &common::TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/v1/collections"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight")
}

fn has_cors(r: &reqwest::Response) -> bool {
    r.headers()
        .keys()
        .any(|k| k.as_str().starts_with("access-control-"))
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_gets_cors_headers_others_none() {
    let app = spawn_app_with(|c| {
        c.server.cors.allowed_origins = vec![ALLOWED.into()];
        c.server.cors.allow_credentials = true;
    })
    .await;

    let r = preflight(&app, ALLOWED).await;
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(h.contains_key("access-control-max-age"));

    // A simple request from the allowed origin: allowed, and the request id is readable.
    let r = app
        .client
        .get(app.url("/api/v1/collections"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    // Any other origin gets no CORS header at all.
    let r = preflight(&app, "https://evil.example.net").await;
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    assert!(!r.headers().contains_key("access-control-allow-credentials"));
    let r = app
        .client
        .get(app.url("/api/v1/collections"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    app.stop().await;
}

#[tokio::test]
async fn with_no_origins_configured_no_cors_headers_are_sent() {
    let app = spawn_app().await;
    let r = preflight(&app, ALLOWED).await;
    assert!(!has_cors(&r), "{:?}", r.headers());
    let r = app
        .client
        .get(app.url("/api/v1/collections"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert!(!has_cors(&r), "{:?}", r.headers());
    app.stop().await;
}

fn assert_security_headers(r: &reqwest::Response) {
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{}", r.url());
    assert_eq!(h["x-frame-options"], "DENY", "{}", r.url());
    assert_eq!(
        h["content-security-policy"],
        "frame-ancestors 'none'",
        "{}",
        r.url()
    );
    assert_eq!(h["referrer-policy"], "no-referrer", "{}", r.url());
}

#[tokio::test]
async fn security_headers_on_api_docs_errors_and_no_store_on_auth() {
    let app = spawn_app_with(|c| {
        c.auth.mode = AuthMode::Builtin;
        c.auth.password.memory_kib = 64;
        c.auth.password.iterations = 1;
        c.auth.password.parallelism = 1;
        c.auth.rate_limit.enabled = false;
    })
    .await;
    for path in [
        "/api/v1/health",
        "/docs/",
        "/openapi.json",
        "/no/such/route",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_security_headers(&r);
        assert!(
            r.headers()
                .get("cache-control")
                .is_none_or(|v| v != "no-store"),
            "{path}"
        );
    }
    // A 401 from the API.
    let r = app
        .client
        .get(app.url("/api/v1/collections"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&r);

    // Account responses are never cached, failures included.
    let r = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .json(&json!({"email": "nobody@example.com", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&r);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .json(&json!({"email": "a@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["cache-control"], "no-store");
    app.stop().await;
}
