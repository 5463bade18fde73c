//! The web console: its session cookie over the API, and its journeys in a real browser.
//!
//! The browser test runs `tests/console/journey.mjs` with Node against a live server (workers
//! on, the fake OpenAI-compatible embedder refusing rows that contain `POISON`, so a CSV with
//! such a row ends `partially_completed`). It needs Debian `chromium` and the npm packages
//! `playwright-core` and `axe-core` (`scripts/test-services` installs them and exports
//! `DOCENT_TEST_CHROMIUM` and `DOCENT_TEST_NODE_MODULES`); without them it says SKIP loudly
//! and passes. Screenshots go to `target/tmp/console-screenshots`. A second, short journey runs
//! against a server whose blob store is an S3 bucket (the moto server of
//! `DOCENT_TEST_AWS_ENDPOINT`): the console uploads straight to the bucket.

mod common;

use std::path::PathBuf;

use common::browser::{browser_env, skip_without_browser};
use common::{builtin_auth, openai_embedder, s3_storage, spawn_app_with};
use docent_fake_openai::{FakeConfig, FakeServer, Faults};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// The `docent_refresh` cookie a response sets: (value, attributes).
fn set_cookie(r: &reqwest::Response) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("docent_refresh="))
        .map(|v| {
            let (value, attrs) = v.split_once(';').unwrap_or((v, ""));
            (value.to_owned(), attrs.to_owned())
        })
}

async fn post(
    app: &common::TestApp,
    path: &str,
    console: bool,
    cookie: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).json(&body);
    if console {
        req = req.header("x-docent-console", "1");
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("other=1; docent_refresh={c}"));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_console_session_lives_in_an_httponly_cookie_that_needs_the_console_header() {
    let app = spawn_app_with(builtin_auth).await;
    let link = app.setup_link.clone().expect("a setup link with no users");
    assert!(
        link.starts_with(&format!("{}/#/setup?token=", app.base)),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap();

    // Setup as the console: the refresh token is a cookie, not in the body.
    let r = post(
        &app,
        "/api/v1/setup",
        true,
        None,
        json!({ "token": token, "email": "owner@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (first, attrs) = set_cookie(&r).expect("a refresh cookie");
    for a in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=",
    ] {
        assert!(attrs.contains(a), "{attrs}");
    }
    assert!(!attrs.contains("Secure"), "plain http on loopback: {attrs}");
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string());

    // The cookie alone (a cross-site form could send that) is not enough.
    let r = post(&app, "/api/v1/auth/refresh", false, Some(&first), json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "missing_field", "{e}");
    // The header without a cookie: signed out.
    let r = post(&app, "/api/v1/auth/refresh", true, None, json!({})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Cookie and header: a new pair, the cookie rotated.
    let r = post(&app, "/api/v1/auth/refresh", true, Some(&first), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (second, _) = set_cookie(&r).expect("a rotated cookie");
    assert_ne!(first, second);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");

    // Replaying the old cookie ends the session, and the answer deletes the cookie.
    let r = post(&app, "/api/v1/auth/refresh", true, Some(&first), json!({})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (cleared, attrs) = set_cookie(&r).expect("the cookie is deleted");
    assert!(cleared.is_empty() && attrs.contains("Max-Age=0"), "{attrs}");
    let r = post(&app, "/api/v1/auth/refresh", true, Some(&second), json!({})).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "reuse revoked the family"
    );

    // Sign in as the console, then sign out: the refresh token is revoked and the cookie deleted.
    let r = post(
        &app,
        "/api/v1/auth/signin",
        true,
        None,
        json!({ "email": "owner@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (session, _) = set_cookie(&r).unwrap();
    let r = post(
        &app,
        "/api/v1/auth/signout",
        true,
        Some(&session),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (cleared, _) = set_cookie(&r).expect("sign-out deletes the cookie");
    assert!(cleared.is_empty());
    let r = post(
        &app,
        "/api/v1/auth/refresh",
        true,
        Some(&session),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // API clients are unchanged: the refresh token in the body, no cookie.
    let r = post(
        &app,
        "/api/v1/auth/signin",
        false,
        None,
        json!({ "email": "owner@example.com", "password": PASSWORD }),
    )
    .await;
    assert!(set_cookie(&r).is_none());
    let body: Value = r.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let r = post(
        &app,
        "/api/v1/auth/refresh",
        false,
        None,
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// Runs `journey.mjs` (`mode`: `full` or `direct`) against `app` and fails the test when it
/// fails; `extra` adds environment variables.
async fn run_journey(
    app: &common::TestApp,
    browser: (String, String),
    mode: &str,
    extra: &[(&str, String)],
) {
    let (chromium, modules) = browser;
    let link = app.setup_link.clone().expect("a setup link");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(if mode == "full" {
        "console-screenshots".to_owned()
    } else {
        format!("console-screenshots-{mode}")
    });
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("../docent-extract/tests/fixtures");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(root.join("tests/console/journey.mjs"))
        .env("DOCENT_JOURNEY", mode)
        .env("DOCENT_BASE", &app.base)
        .env("DOCENT_SETUP_LINK", &link)
        .env("DOCENT_DATA_DIR", &app.data_dir)
        .env("DOCENT_FIXTURES", fixtures)
        .env("DOCENT_SCREENSHOTS", &shots)
        .env("DOCENT_TEST_CHROMIUM", chromium)
        .env("DOCENT_TEST_NODE_MODULES", modules);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let out = cmd.output().await.expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    println!(
        "{mode} journey: {:.1} s; screenshots: {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    assert!(
        out.status.success(),
        "the {mode} browser journey failed:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_journeys_in_a_real_browser() {
    let Some(browser) = browser_env() else {
        skip_without_browser("console_journeys_in_a_real_browser");
        return;
    };
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        faults: Faults {
            reject_inputs_containing: Some("POISON".into()),
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.base_url();
    let app = spawn_app_with(|c| {
        builtin_auth(c);
        c.server.run_workers = true;
        openai_embedder(c, url, 16);
    })
    .await;
    run_journey(&app, browser, "full", &[]).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_uploads_straight_to_an_s3_bucket() {
    let Some(browser) = browser_env() else {
        skip_without_browser("the_console_uploads_straight_to_an_s3_bucket");
        return;
    };
    let Ok(endpoint) = std::env::var("DOCENT_TEST_AWS_ENDPOINT") else {
        eprintln!(
            "\n*** SKIP the_console_uploads_straight_to_an_s3_bucket: DOCENT_TEST_AWS_ENDPOINT \
             is not set ***\n"
        );
        return;
    };
    let app = spawn_app_with(|c| {
        builtin_auth(c);
        c.server.run_workers = true;
        s3_storage(c, endpoint.clone());
    })
    .await;
    // The page may talk to the bucket: its policy names the endpoint.
    let r = app.client.get(app.url("/")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("connect-src 'self' {endpoint}")),
        "{csp}"
    );
    run_journey(&app, browser, "direct", &[("DOCENT_S3_ORIGIN", endpoint)]).await;
    app.stop().await;
}
