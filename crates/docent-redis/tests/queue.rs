//! The Redis Streams queue against the shared [`TaskQueue`](docent_domain::ports::TaskQueue)
//! contract: every case of `docent_testkit::queue_contract` runs as its own test, each on a
//! fresh queue under its own key prefix in the Redis at `DOCENT_TEST_REDIS_URL` (its keys are
//! deleted when the case ends). Without the variable every case prints
//! `skipped: DOCENT_TEST_REDIS_URL not set` and passes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use docent_domain::ports::TaskQueue;
use docent_domain::{NewTask, TaskKind, TaskStatus, TenantId};
use docent_redis::{Backoff, RedisQueue};
use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

use common::{Cleanup, connect, fresh_prefix, keys, redis_url};

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

/// A fresh queue under a new prefix, with the contract's attempt limit and a small backoff; the
/// guard deletes its keys.
async fn redis_queue(url: String) -> QueueUnderTest {
    let prefix = fresh_prefix("queue");
    let queue = RedisQueue::new(connect(&url), &prefix, CONTRACT_MAX_ATTEMPTS, backoff());
    let cleanup = Cleanup {
        url,
        pattern_prefix: queue.key_prefix().to_owned(),
    };
    QueueUnderTest::new(Arc::new(queue), cleanup)
}

// The factory expression runs inside each generated test: without the env var it returns from
// the test before any queue is built.
docent_testkit::queue_contract_tests!({
    let Some(url) = redis_url() else { return };
    move || redis_queue(url.clone())
});

/// Two "processes" (separate connections) on one queue: tasks enqueued by one are leased by the
/// other, status is visible to both, and a lease lapsing in one is reclaimed by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_queue() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix("queue-shared");
    let a = RedisQueue::new(connect(&url), &prefix, 3, backoff());
    let b = RedisQueue::new(connect(&url), &prefix, 3, backoff());
    let _cleanup = Cleanup {
        url: url.clone(),
        pattern_prefix: a.key_prefix().to_owned(),
    };
    let tenant = TenantId::new();
    let new = || NewTask {
        kind: TaskKind::IngestDocument,
        document_id: None,
        collection_id: None,
        max_attempts: None,
        payload: serde_json::json!({"n": 1}),
    };
    let t = a.enqueue(tenant, new()).await.unwrap();
    assert_eq!(t.payload, serde_json::json!({"n": 1}));
    let l = b
        .lease("b-worker", Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.task.id, t.id);
    assert_eq!(
        a.get(tenant, t.id).await.unwrap().status,
        TaskStatus::Processing
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = a
        .lease("a-worker", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the lapsed lease is reclaimed by the other process");
    assert_eq!((again.task.id, again.task.attempts), (t.id, 2));
    assert!(
        a.complete(&again, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(
        b.get(tenant, t.id).await.unwrap().status,
        TaskStatus::Completed
    );
}

/// Finished deliveries leave nothing behind in the stream or its pending list.
#[tokio::test]
async fn finished_tasks_leave_no_stream_entries() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix("queue-entries");
    let q = RedisQueue::new(connect(&url), &prefix, 3, backoff());
    let _cleanup = Cleanup {
        url: url.clone(),
        pattern_prefix: q.key_prefix().to_owned(),
    };
    let tenant = TenantId::new();
    for _ in 0..3 {
        q.enqueue(
            tenant,
            NewTask {
                kind: TaskKind::IngestDocument,
                document_id: None,
                collection_id: None,
                max_attempts: None,
                payload: serde_json::Value::Null,
            },
        )
        .await
        .unwrap();
    }
    while let Some(l) = q.lease("w", Duration::from_secs(60)).await.unwrap() {
        assert!(
            q.complete(&l, TaskStatus::Completed, Default::default())
                .await
                .unwrap()
        );
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{}stream", q.key_prefix());
    let len: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending.first(), Some(&redis::Value::Int(0)), "{pending:?}");
    assert!(!keys(&url, q.key_prefix()).await.is_empty());
}
