//! Outage behaviour against real servers the test stops and restarts mid-run: with PostgreSQL
//! down the API answers `503 service_unavailable` with `Retry-After` within a bound (never
//! hangs, never 500s), `/ready` names the failing dependency, and everything comes back on its
//! own when the server returns, with nothing lost. With the Redis cache down, requests keep
//! working (the cache only saves work) and `/ready` reports the cache as degraded.
//!
//! The servers are throwaway ones (`common::servers`), never the shared test services; without
//! `DOCENT_TEST_PG_BIN` / `DOCENT_TEST_REDIS_SERVER` (`scripts/test-services`) the tests skip,
//! saying so.

mod common;

use std::time::{Duration, Instant};

use common::servers::{PgCluster, RedisServer};
use common::{TestApp, assert_error, markdown_doc, spawn_app_with};
use docent_config::{CacheConfig, DatabaseConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

/// Longest any request may take while a dependency is down.
const BOUND: Duration = Duration::from_secs(8);

/// Sends a request and returns status, `Retry-After` and body, asserting it answered within
/// [`BOUND`].
async fn timed(req: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
    let started = Instant::now();
    let r = tokio::time::timeout(BOUND + Duration::from_secs(2), req.send())
        .await
        .expect("the API answered")
        .expect("request");
    let took = started.elapsed();
    assert!(took <= BOUND, "answered after {took:?}");
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// Asserts `503 service_unavailable` with a `Retry-After`.
#[track_caller]
fn assert_unavailable(status: StatusCode, retry: &Option<String>, body: &Value) {
    assert_error(status, body, 503, "service_unavailable");
    let secs: u64 = retry
        .as_deref()
        .expect("Retry-After on 503")
        .parse()
        .expect("Retry-After in seconds");
    assert!(secs >= 1, "{secs}");
}

async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let (s, _, body) = timed(app.client.get(app.url("/ready"))).await;
    (s, body)
}

/// Polls `/ready` until it answers 200.
async fn wait_ready(app: &TestApp, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (s, body) = ready(app).await;
        if s == StatusCode::OK {
            return body;
        }
        assert!(Instant::now() < deadline, "not ready again: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn search_ids(app: &TestApp, query: &str) -> Vec<String> {
    let (s, body) = app.search(json!({ "query": query, "top_k": 10 })).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let mut ids: Vec<String> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document_id"].as_str().unwrap().to_owned())
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_with_retry_after_and_recovers_with_nothing_lost() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let Some(pg) = PgCluster::start_new("postgres_outage") else {
        return;
    };
    let url = pg.url();
    let app = spawn_app_with(|c| {
        c.database = DatabaseConfig::Postgres {
            url: Some(SecretString::from(url)),
            url_file: None,
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            tls: Default::default(),
        };
    })
    .await;
    let col = app.create_collection("outage").await;
    let before = app.upload_ok(&col, "before.md", &markdown_doc(1, 3)).await;
    app.drain().await;
    let (s, body) = app.get(&format!("/api/v1/documents/{before}")).await;
    assert_eq!(body["status"], "completed", "{s} {body}");
    let (s, body) = ready(&app).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    pg.stop();

    // Reads, searches and uploads: 503 + Retry-After within the bound, never a 500.
    let (s, retry, body) = timed(app.client.get(app.url("/api/v1/collections"))).await;
    assert_unavailable(s, &retry, &body);
    let (s, retry, body) = timed(
        app.client
            .get(app.url(&format!("/api/v1/documents/{before}"))),
    )
    .await;
    assert_unavailable(s, &retry, &body);
    let (s, retry, body) = timed(
        app.client
            .post(app.url("/api/v1/search"))
            .json(&json!({ "query": "document", "top_k": 5 })),
    )
    .await;
    assert_unavailable(s, &retry, &body);
    let part = reqwest::multipart::Part::bytes(markdown_doc(2, 3)).file_name("during.md");
    let (s, retry, body) = timed(
        app.client
            .post(app.url(&format!("/api/v1/collections/{col}/documents")))
            .multipart(reqwest::multipart::Form::new().part("file", part)),
    )
    .await;
    assert_unavailable(s, &retry, &body);
    // The refused upload left no original behind.
    assert_eq!(app.blob_files().len(), 1, "{:?}", app.blob_files());

    // Readiness names the database and says to come back.
    let (s, retry, body) = timed(app.client.get(app.url("/ready"))).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry.is_some());
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_ne!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(body["checks"]["blob_store"], "ok", "{body}");

    pg.start();

    // Back on its own: no restart of docent, nothing lost, new work accepted.
    wait_ready(&app, Duration::from_secs(30)).await;
    let (s, body) = app.get(&format!("/api/v1/documents/{before}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    let after = app.upload_ok(&col, "after.md", &markdown_doc(3, 3)).await;
    app.drain().await;
    let (s, body) = app.get(&format!("/api/v1/documents/{after}")).await;
    assert_eq!(body["status"], "completed", "{s} {body}");
    let ids = search_ids(&app, "document").await;
    assert!(ids.contains(&before) && ids.contains(&after), "{ids:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_outage_degrades_readiness_but_requests_keep_working() {
    let Some(mut redis) = RedisServer::start_new("redis_cache_outage") else {
        return;
    };
    let app = spawn_app_with(|c| {
        redis.configure(c);
        c.cache = CacheConfig::Tiered {
            max_entries: 100,
            local_ttl: Duration::from_secs(1),
            redis: true,
            dynamodb: None,
        };
    })
    .await;
    let col = app.create_collection("cached").await;
    let doc = app.upload_ok(&col, "doc.md", &markdown_doc(4, 4)).await;
    app.drain().await;
    let summary = format!("/api/v1/documents/{doc}/summary");
    let (s, first) = app.get(&summary).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (s, body) = ready(&app).await;
    assert_eq!(
        (s, &body["checks"]["cache"]),
        (StatusCode::OK, &json!("ok")),
        "{body}"
    );

    redis.stop();
    // Past the in-process tier's TTL, reads reach the dead Redis tier and fall through.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, during) = timed(app.client.get(app.url(&summary))).await;
    assert_eq!(s, StatusCode::OK, "{during}");
    assert_eq!(during["sentences"], first["sentences"]);
    let (s, _, body) = timed(
        app.client
            .post(app.url("/api/v1/search"))
            .json(&json!({ "query": "document", "top_k": 5 })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = ready(&app).await;
    assert_eq!(s, StatusCode::OK, "the cache is optional: {body}");
    let cache = body["checks"]["cache"].as_str().unwrap();
    assert!(cache.starts_with("degraded:"), "{body}");
    assert!(
        !cache.contains("127.0.0.1"),
        "no addresses in readiness: {cache}"
    );

    redis.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = ready(&app).await;
        if body["checks"]["cache"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "cache not back: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (s, body) = app.get(&summary).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    app.stop().await;
}
