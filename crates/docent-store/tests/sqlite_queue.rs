//! The SQL-table queue against the shared [`TaskQueue`](docent_domain::ports::TaskQueue)
//! contract: every case of `docent_testkit::queue_contract` runs as its own test, each on a fresh
//! SQLite database in a temporary directory.

use std::sync::Arc;
use std::time::Duration;

use docent_store::{Backoff, SqliteQueue, SqliteStore};
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
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
    );
    // The store (holding the pool) and the directory live as long as the case.
    QueueUnderTest::new(Arc::new(queue), (store, dir))
}

docent_testkit::queue_contract_tests!(sqlite_queue);

/// The all-in-one entry point runs the same cases in sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "duplicates the per-case tests above; run with --ignored to exercise the suite runner"]
async fn whole_suite_in_sequence() {
    docent_testkit::queue_contract_suite(sqlite_queue).await;
}
