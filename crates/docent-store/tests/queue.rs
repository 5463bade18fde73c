//! The SQL-table queue against the shared [`TaskQueue`](docent_domain::ports::TaskQueue)
//! contract: every case of `docent_testkit::queue_contract` runs as its own test, each on a fresh
//! SQLite database in a temporary directory and — when `DOCENT_TEST_POSTGRES_URL` is set (feature
//! `postgres`) — on a fresh PostgreSQL schema; otherwise the PostgreSQL cases print
//! `skipped: DOCENT_TEST_POSTGRES_URL not set` and pass.

mod common;

use std::sync::Arc;
use std::time::Duration;

use docent_store::{SqliteQueue, SqliteStore};
use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

/// A fresh database with migrations applied, and a queue over it with the contract's attempt
/// limit and a small backoff so retry cases stay fast.
async fn sqlite_queue() -> QueueUnderTest {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("docent.db"), 4, Duration::from_secs(5))
        .await
        .expect("open the database");
    let queue = SqliteQueue::new(
        store.pool().clone(),
        CONTRACT_MAX_ATTEMPTS,
        common::test_backoff(),
    );
    // The store (holding the pool) and the directory live as long as the case.
    QueueUnderTest::new(Arc::new(queue), (store, dir))
}

mod sqlite {
    docent_testkit::queue_contract_tests!(super::sqlite_queue);

    /// The all-in-one entry point runs the same cases in sequence.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "duplicates the per-case tests above; run with --ignored to exercise the suite runner"]
    async fn whole_suite_in_sequence() {
        docent_testkit::queue_contract_suite(super::sqlite_queue).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;
    use std::time::Duration;

    use docent_domain::ports::TaskQueue;
    use docent_domain::{NewTask, TaskKind, TenantId};
    use docent_store::PgQueue;
    use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

    use super::common::postgres::store;

    /// A queue over a fresh schema (or `None` to skip).
    async fn pg_queue() -> Option<QueueUnderTest> {
        let (store, schema) = store().await?;
        let queue = PgQueue::new(
            store.pool().clone(),
            CONTRACT_MAX_ATTEMPTS,
            super::common::test_backoff(),
        );
        Some(QueueUnderTest::new(Arc::new(queue), (store, schema)))
    }

    docent_testkit::queue_contract_tests!(optional pg_queue);

    /// A waiting worker is woken by the NOTIFY of an enqueue well before its poll timeout, and
    /// without one the wait times out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn enqueue_wakes_a_waiting_worker() {
        let Some((store, _schema)) = store().await else {
            return;
        };
        let queue = Arc::new(PgQueue::new(
            store.pool().clone(),
            CONTRACT_MAX_ATTEMPTS,
            super::common::test_backoff(),
        ));
        // Nothing enqueued: the wait runs to its timeout (this also opens the listener).
        assert!(!queue.wait_for_task(Duration::from_millis(200)).await);

        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let woken = queue.wait_for_task(Duration::from_secs(20)).await;
                (woken, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tenant = TenantId::new();
        queue
            .enqueue(
                tenant,
                NewTask {
                    kind: TaskKind::IngestDocument,
                    document_id: None,
                    collection_id: None,
                    payload: serde_json::Value::Null,
                    max_attempts: None,
                    traceparent: None,
                },
            )
            .await
            .unwrap();
        let (woken, waited) = waiter.await.unwrap();
        assert!(woken, "the enqueue notified the waiting worker");
        assert!(
            waited < Duration::from_secs(10),
            "woken promptly: {waited:?}"
        );
        assert!(
            queue
                .lease("w", Duration::from_secs(30))
                .await
                .unwrap()
                .is_some()
        );
    }
}
