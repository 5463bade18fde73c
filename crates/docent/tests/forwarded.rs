//! `server.trusted_proxies`: behind a trusted proxy each client has its own per-address
//! limits (the address `X-Forwarded-For` names); from anyone else the header changes nothing.

mod common;

use common::{TestApp, assert_error, builtin_auth, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn signin_from(app: &TestApp, forwarded: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/api/v1/auth/signin"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "email": "nobody@example.com", "password": "wrong password here" }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn limited_app(trusted: &[&str]) -> TestApp {
    let trusted: Vec<String> = trusted.iter().map(|s| (*s).to_owned()).collect();
    spawn_app_with(move |c| {
        builtin_auth(c);
        c.auth.rate_limit.enabled = true;
        c.auth.rate_limit.auth = docent_config::RateQuota {
            per_minute: 1,
            burst: 2,
        };
        c.server.trusted_proxies = trusted;
    })
    .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    // The test client is the "proxy" on 127.0.0.1.
    let app = limited_app(&["127.0.0.1"]).await;
    for _ in 0..2 {
        let (s, b) = signin_from(&app, "198.51.100.1").await;
        assert_error(s, &b, 401, "invalid_credentials");
    }
    let (s, b) = signin_from(&app, "198.51.100.1").await;
    assert_error(s, &b, 429, "rate_limited");
    // Another client behind the same proxy is not limited by the first one's attempts…
    let (s, b) = signin_from(&app, "198.51.100.2").await;
    assert_error(s, &b, 401, "invalid_credentials");
    // …and a client cannot escape its limit by forging an entry in front of its own address:
    // the proxy appends the real one, which is what counts.
    let (s, b) = signin_from(&app, "203.0.113.50, 198.51.100.1").await;
    assert_error(s, &b, 429, "rate_limited");
    app.stop().await;
}

#[tokio::test]
async fn from_an_untrusted_peer_the_header_changes_nothing() {
    let app = limited_app(&[]).await;
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        let (s, b) = signin_from(&app, forwarded).await;
        assert_error(s, &b, 401, "invalid_credentials");
    }
    // A new address in the header does not buy a new bucket.
    let (s, b) = signin_from(&app, "198.51.100.3").await;
    assert_error(s, &b, 429, "rate_limited");
    app.stop().await;

    // A list naming other networks does not trust the loopback peer either.
    let app = limited_app(&["10.0.0.0/8"]).await;
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        let (s, b) = signin_from(&app, forwarded).await;
        assert_error(s, &b, 401, "invalid_credentials");
    }
    let (s, b) = signin_from(&app, "198.51.100.3").await;
    assert_error(s, &b, 429, "rate_limited");
    app.stop().await;
}

#[test]
fn a_bad_entry_is_refused_naming_the_key() {
    let mut c = docent_config::Config::default();
    c.server.trusted_proxies = vec!["10.0.0.0/16".into(), "not-an-address".into()];
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("server.trusted_proxies[1]"), "{err}");
    c.server.trusted_proxies = vec!["10.0.0.0/16".into(), "::1".into(), "192.0.2.7".into()];
    c.validate().unwrap();
}
