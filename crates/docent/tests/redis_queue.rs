//! The app with `[queue.backend] kind = "redis"` on the embedded SQLite database: uploads are
//! delivered through a Redis Stream and run by the worker, and a document's status — read with
//! a join on the database's `tasks` table — shows the task's progress. With Redis down, status
//! queries and uploads keep working, `/ready` reports the queue as degraded, and the upload made
//! during the outage runs once Redis is back (the sweep adds its lost delivery).
//!
//! The Redis server is a throwaway one (`common::servers`); without `DOCENT_TEST_REDIS_SERVER`
//! (`scripts/test-services`) the test skips, saying so.

mod common;

use std::time::{Duration, Instant};

use common::servers::RedisServer;
use common::{TestApp, markdown_doc, spawn_app_with};
use docent_config::{QueueBackend, RedisQueueConfig};
use reqwest::StatusCode;
use serde_json::json;

async fn status_of(app: &TestApp, doc: &str) -> String {
    let (s, body) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_run_through_the_redis_queue_and_show_their_status() {
    let Some(mut redis) = RedisServer::start_new("redis_queue") else {
        return;
    };
    let app = spawn_app_with(|c| {
        redis.configure(c);
        c.queue.backend = QueueBackend::Redis(RedisQueueConfig {
            name: "queue".into(),
            group: "workers".into(),
            block_time: Duration::ZERO,
            republish_after: Duration::from_secs(1),
        });
    })
    .await;
    let col = app.create_collection("streamed").await;
    let doc = app.upload_ok(&col, "doc.md", &markdown_doc(1, 3)).await;
    assert_eq!(status_of(&app, &doc).await, "pending");
    assert_eq!(app.drain().await, 1);
    assert_eq!(status_of(&app, &doc).await, "completed");
    let (s, body) = app.get("/ready").await;
    assert_eq!(
        (s, &body["checks"]["queue"]),
        (StatusCode::OK, &json!("ok")),
        "{body}"
    );

    redis.stop();
    assert_eq!(status_of(&app, &doc).await, "completed");
    let during = app.upload_ok(&col, "during.md", &markdown_doc(2, 3)).await;
    assert_eq!(status_of(&app, &during).await, "pending");
    let (s, body) = app.get("/ready").await;
    assert_eq!(s, StatusCode::OK, "the queue's broker is optional: {body}");
    let queue = body["checks"]["queue"].as_str().unwrap_or_default();
    assert!(queue.starts_with("degraded:"), "{body}");

    redis.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&app, &during).await != "completed" {
        assert!(
            Instant::now() < deadline,
            "the upload made during the outage never ran"
        );
        // Errors while the connection comes back are retried on the next round.
        let _ = docent_core::worker::drain(&app.services, "test-worker").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
