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

/// Issue 21 (low): downloads echoed the uploader's declared MIME, so an `.html` declared
/// `text/html` rendered (and ran) on the API's origin. Now bytes, an attachment, a sandbox.
#[tokio::test]
async fn downloads_are_attachments_of_bytes_in_a_sandbox() {
    let app = spawn_app().await;
    let cid = app.create_collection("dl").await;
    let html = b"<html><body><script>alert(document.domain)</script>Hi</body></html>".to_vec();
    let part = reqwest::multipart::Part::bytes(html.clone())
        .file_name("x.html")
        .mime_str("text/html")
        .unwrap();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/collections/{cid}/documents")))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let doc: serde_json::Value = r.json().await.unwrap();
    let did = doc["document"]["id"].as_str().unwrap();
    let r = app
        .client
        .get(app.url(&format!("/api/v1/documents/{did}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox"),
        "{h:?}"
    );
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
        "{h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        html,
        "the bytes are intact"
    );
    app.stop().await;
}

/// Issue 21 (low): a client that never finishes its request headers (slowloris) held its
/// connection open forever. It is closed after `server.header_read_timeout`.
#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with(|c| {
        c.server.header_read_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let host = app
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(
            format!("GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nX-Slow: 1\r\n").as_bytes(),
        )
        .await
        .unwrap();
    // Never the blank line that ends the headers: the server must hang up on its own.
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 is fine too; keep reading until the close
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 10 s");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    // Well-behaved clients are served as before.
    let r = app
        .client
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// Issue 21 (low): `/metrics` was public. With `server.metrics_token` it needs that bearer.
#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = spawn_app_with(|c| {
        c.server.metrics_token = Some("scrape-secret".to_owned().into());
    })
    .await;
    for token in [None, Some("wrong"), Some("scrape-secre")] {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// Issue 21 (low): connections were not capped. With `server.max_connections = 1`, a second
/// client waits until the first connection is gone (here: closed by the header timeout).
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app_with(|c| {
        c.server.header_read_timeout = std::time::Duration::from_secs(2);
        c.server.max_connections = 1;
    })
    .await;
    let host = app
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut hog = tokio::net::TcpStream::connect(&host).await.unwrap();
    hog.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "served while the only slot was taken: {:?}",
        started.elapsed()
    );
    drop(hog);
    app.stop().await;
}
