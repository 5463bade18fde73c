//! The SQS queue against a real SQS-compatible server (moto in CI) at
//! `DOCENT_TEST_AWS_ENDPOINT`: the whole [`TaskQueue`] contract of `docent_testkit` — with a
//! fresh SQLite ledger per case, and with a PostgreSQL ledger on a fresh schema when
//! `DOCENT_TEST_POSTGRES_URL` is set too — on fresh queues per case, then what is particular to
//! SQS: worker deaths ending in the dead-letter queue, SQS's own redrive and the sweep that
//! sends lost messages again, heartbeats past the visibility timeout, status queries with SQS
//! unreachable, duplicate and foreign messages, two processes on one queue, and queue
//! creation. Without the variable every test prints
//! `skipped: DOCENT_TEST_AWS_ENDPOINT not set` and passes.
//!
//! Where moto differs from SQS (noted here and in `docent_aws::sqs`): it accepts any earlier
//! receipt handle of a message for `ChangeMessageVisibility` and `DeleteMessage` (SQS wants the
//! latest), counts the 12-hour visibility limit from the send rather than the receive, lets
//! `ChangeMessageVisibility` hide a message that is no longer in flight, keeps visibility to
//! the millisecond, and its short polls see every message (SQS's sample a subset of servers).
//! None of these is relied on.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use docent_aws::sqs::{self, SqsQueue, SqsQueueSettings, SqsQueues};
use docent_domain::ports::{Backoff, Heartbeat, Lease, TaskLedger, TaskQueue};
use docent_domain::{
    Code, NewTask, PageRequest, TaskFilter, TaskId, TaskKind, TaskStatus, TenantId,
};
use docent_store::{SqliteQueue, SqliteStore};
use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

/// Long enough never to lapse during a test.
const LONG: Duration = Duration::from_secs(60);

/// The SQS endpoint, or `None` (and a note on stderr) to skip.
fn endpoint() -> Option<String> {
    match std::env::var("DOCENT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: DOCENT_TEST_AWS_ENDPOINT not set");
            None
        }
    }
}

/// A small retry backoff so retry cases stay fast.
fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

/// A queue name no other test uses.
fn fresh_name(what: &str) -> String {
    format!(
        "docent-test-{what}-{}",
        TenantId::new().to_string().replace('-', "")
    )
}

/// Settings for test queues `name` and `name-dlq` at `endpoint`: created on connect, short
/// polling (so "nothing to lease" answers at once), no re-publishing within a test.
fn settings(endpoint: &str, name: &str) -> SqsQueueSettings {
    SqsQueueSettings {
        endpoint: Some(endpoint.to_owned()),
        wait_time: Duration::ZERO,
        create_queues: true,
        republish_after: Duration::from_secs(600),
        ..SqsQueueSettings::new(name, format!("{name}-dlq"))
    }
}

/// Deletes a test's queues when dropped.
struct DeleteQueues {
    settings: SqsQueueSettings,
    queues: SqsQueues,
}

impl Drop for DeleteQueues {
    fn drop(&mut self) {
        let (settings, queues) = (self.settings.clone(), self.queues.clone());
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = sqs::client(&settings).await;
                for url in [queues.queue_url, queues.dlq_url] {
                    let _ = client.delete_queue().queue_url(url).send().await;
                }
            });
        })
        .join();
    }
}

/// A fresh SQLite database with migrations applied, as a ledger with the contract's attempts.
async fn sqlite_ledger() -> (Arc<SqliteQueue>, (SqliteStore, tempfile::TempDir)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("docent.db"), 4, Duration::from_secs(5))
        .await
        .expect("open the database");
    let ledger = SqliteQueue::new(store.pool().clone(), CONTRACT_MAX_ATTEMPTS, backoff());
    (Arc::new(ledger), (store, dir))
}

/// An SQS queue over `ledger` on fresh queues, and the guard that deletes them.
async fn connect(
    ledger: Arc<dyn TaskLedger>,
    settings: SqsQueueSettings,
) -> (SqsQueue, DeleteQueues) {
    let queue = SqsQueue::connect(ledger, &settings, CONTRACT_MAX_ATTEMPTS, backoff())
        .await
        .expect("connect to the SQS queues");
    let queues = queue.queues().clone();
    (queue, DeleteQueues { settings, queues })
}

async fn sqlite_sqs_queue() -> Option<QueueUnderTest> {
    let endpoint = endpoint()?;
    let (ledger, db) = sqlite_ledger().await;
    let (queue, queues) = connect(ledger, settings(&endpoint, &fresh_name("contract"))).await;
    Some(QueueUnderTest::new(Arc::new(queue), (queues, db)))
}

mod sqlite_ledger {
    docent_testkit::queue_contract_tests!(optional super::sqlite_sqs_queue);
}

mod postgres_ledger {
    use std::sync::Arc;
    use std::time::Duration;

    use docent_store::{PgOptions, PgQueue, PgStore};
    use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

    /// A schema of its own, dropped (with everything in it) on drop.
    struct Schema {
        url: String,
        name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (url, name) = (self.url.clone(), self.name.clone());
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    // The test's connections (named after the schema) may hold a transaction
                    // the blocked runtime cannot finish: end them first.
                    sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&name)
                    .execute(&mut conn)
                    .await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await?;
                    conn.close().await
                })
            })
            .join();
            if let Ok(Err(e)) = done {
                eprintln!("could not drop test schema {}: {e}", self.name);
            }
        }
    }

    /// The SQS queue over a PostgreSQL ledger in a fresh schema (the distributed shape), or
    /// `None` to skip.
    async fn pg_sqs_queue() -> Option<QueueUnderTest> {
        let endpoint = super::endpoint()?;
        let url = match std::env::var("DOCENT_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("skipped: DOCENT_TEST_POSTGRES_URL not set");
                return None;
            }
        };
        let name = format!(
            "docent_test_{}",
            docent_domain::TenantId::new().to_string().replace('-', "")
        );
        let schema = Schema {
            url: url.clone(),
            name: name.clone(),
        };
        let store = PgStore::connect(
            &url,
            &PgOptions {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(10),
                statement_timeout: Some(Duration::from_secs(30)),
                schema: Some(name),
                ..PgOptions::default()
            },
        )
        .await
        .expect("connect to DOCENT_TEST_POSTGRES_URL");
        let ledger = Arc::new(PgQueue::new(
            store.pool().clone(),
            CONTRACT_MAX_ATTEMPTS,
            super::backoff(),
        ));
        let (queue, queues) = super::connect(
            ledger,
            super::settings(&endpoint, &super::fresh_name("contract-pg")),
        )
        .await;
        // Dropped in order: the queues, the pool, then the schema.
        Some(QueueUnderTest::new(
            Arc::new(queue),
            (queues, store, schema),
        ))
    }

    docent_testkit::queue_contract_tests!(optional pg_sqs_queue);
}

// ---------------------------------------------------------------------------------------------
// SQS-specific behaviour
// ---------------------------------------------------------------------------------------------

/// One SQS queue over a fresh SQLite ledger, with a raw client for looking inside SQS.
struct Fixture {
    queue: Arc<SqsQueue>,
    ledger: Arc<SqliteQueue>,
    settings: SqsQueueSettings,
    raw: Client,
    _queues: DeleteQueues,
    db: (SqliteStore, tempfile::TempDir),
}

impl Fixture {
    async fn new(what: &str) -> Option<Self> {
        Self::with(what, |_| {}).await
    }

    async fn with(what: &str, tweak: impl FnOnce(&mut SqsQueueSettings)) -> Option<Self> {
        let endpoint = endpoint()?;
        let (ledger, db) = sqlite_ledger().await;
        let mut settings = settings(&endpoint, &fresh_name(what));
        tweak(&mut settings);
        let (queue, queues) = connect(ledger.clone(), settings.clone()).await;
        Some(Self {
            queue: Arc::new(queue),
            ledger,
            raw: sqs::client(&settings).await,
            settings,
            _queues: queues,
            db,
        })
    }

    fn urls(&self) -> &SqsQueues {
        self.queue.queues()
    }

    /// Another SQS queue on the same ledger and queues with its own client (another process
    /// as far as SQS can tell).
    async fn other_process(&self) -> SqsQueue {
        SqsQueue::with_client(
            self.ledger.clone(),
            sqs::client(&self.settings).await,
            self.urls().clone(),
            &self.settings,
            backoff(),
        )
    }

    /// Messages in the queue at `url`: visible, in flight and delayed.
    async fn messages_in(&self, url: &str) -> u64 {
        let out = self
            .raw
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes");
        out.attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0)
    }

    /// Raw receives of at most one message from `url` (hidden for `visibility` seconds) until
    /// one comes or `within` passes; the body.
    async fn raw_receive(&self, url: &str, visibility: i32, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let out = self
                .raw
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(1)
                .visibility_timeout(visibility)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            if let Some(m) = out.messages().first() {
                return m.body().map(str::to_owned);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every body in the dead-letter queue (each received once, hidden for a minute).
    async fn dead_letters(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        while let Some(body) = self
            .raw_receive(&self.urls().dlq_url, 60, Duration::ZERO)
            .await
        {
            bodies.push(body);
        }
        bodies
    }

    async fn send_raw(&self, body: &str) {
        self.raw
            .send_message()
            .queue_url(&self.urls().queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
}

fn new_task() -> NewTask {
    NewTask {
        kind: TaskKind::IngestDocument,
        document_id: None,
        collection_id: None,
        max_attempts: None,
        payload: serde_json::Value::Null,
    }
}

fn body_of(task: TaskId, tenant: TenantId) -> String {
    serde_json::json!({"task_id": task, "tenant_id": tenant}).to_string()
}

fn task_in(body: &str) -> Option<TaskId> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("task_id")?.as_str()?.parse().ok()
}

/// Leases until a task comes or `within` passes.
async fn lease_within(q: &dyn TaskQueue, worker: &str, vis: Duration, within: Duration) -> Lease {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(l) = q.lease(worker, vis).await.expect("lease") {
            return l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no task became leasable within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sleep_past(lease_expiry: chrono::DateTime<chrono::Utc>) {
    let left = (lease_expiry - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(100)).await;
}

/// A task whose worker dies on every attempt (kill -9: no completion, no heartbeat, no release)
/// is delivered `max_attempts` times, then dead-lettered as `worker_lost`, and its message ends
/// in the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_deaths_end_in_the_dead_letter_queue() {
    let Some(f) = Fixture::new("deaths").await else {
        return;
    };
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let mut last = None;
    for attempt in 1..=CONTRACT_MAX_ATTEMPTS {
        let l = lease_within(
            &*f.queue,
            "doomed",
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!((l.task.id, l.task.attempts), (t.id, attempt));
        last = Some(l.expires_at);
        // The worker is killed here: the lease is simply dropped.
    }
    sleep_past(last.unwrap()).await;
    assert!(
        f.queue.lease("survivor", LONG).await.unwrap().is_none(),
        "out of attempts: not delivered again"
    );
    let stored = f.queue.get(tenant, t.id).await.unwrap();
    assert_eq!(stored.status, TaskStatus::Failed);
    assert!(stored.dead_lettered);
    assert_eq!(stored.attempts, CONTRACT_MAX_ATTEMPTS);
    assert_eq!(
        stored.error.map(|e| e.code),
        Some(Code::WorkerLost.as_str().to_owned())
    );
    let dead: Vec<_> = f
        .dead_letters()
        .await
        .iter()
        .filter_map(|b| task_in(b))
        .collect();
    assert_eq!(
        dead,
        vec![t.id],
        "the poison task's message is in the dead-letter queue"
    );
    assert_eq!(f.messages_in(&f.urls().queue_url).await, 0);

    // An operator retry sends it again.
    f.queue.retry(tenant, t.id).await.unwrap();
    let l = lease_within(&*f.queue, "fixed", LONG, Duration::from_secs(3)).await;
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    assert!(
        f.queue
            .complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(f.messages_in(&f.urls().queue_url).await, 0);
}

/// The redrive policy is in place: a message received `max_attempts + 1` times without anyone
/// handling it is moved to the dead-letter queue by SQS itself. The task, still pending in the
/// ledger, has lost its delivery; the sweep sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_redrives_unhandled_messages_and_the_sweep_sends_lost_tasks_again() {
    let Some(f) = Fixture::with("redrive", |s| s.republish_after = Duration::from_secs(1)).await
    else {
        return;
    };
    assert_eq!(f.urls().max_receive_count, CONTRACT_MAX_ATTEMPTS + 1);
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let queue_url = f.urls().queue_url.clone();
    for n in 1..=f.urls().max_receive_count {
        let body = f.raw_receive(&queue_url, 1, Duration::from_secs(3)).await;
        assert_eq!(body.as_deref().and_then(task_in), Some(t.id), "receive {n}");
    }
    assert_eq!(
        f.raw_receive(&queue_url, 1, Duration::from_millis(1500))
            .await,
        None,
        "redriven instead of received again"
    );
    let dead: Vec<_> = f
        .dead_letters()
        .await
        .iter()
        .filter_map(|b| task_in(b))
        .collect();
    assert_eq!(dead, vec![t.id]);
    assert_eq!(
        f.queue.get(tenant, t.id).await.unwrap().status,
        TaskStatus::Pending
    );

    // Runnable for longer than `republish_after` with no message: sent again.
    assert_eq!(f.queue.sweep().await.unwrap(), 1);
    let l = lease_within(&*f.queue, "w", LONG, Duration::from_secs(3)).await;
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    assert!(
        f.queue
            .complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(f.queue.sweep().await.unwrap(), 0, "nothing left to send");
}

/// Heartbeats keep the message invisible (to this and other processes, and to SQS itself) long
/// past the visibility it was received with; once they stop it is delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_keep_the_message_invisible_past_its_visibility() {
    let Some(f) = Fixture::new("heartbeat").await else {
        return;
    };
    let other = f.other_process().await;
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let vis = Duration::from_secs(2);
    let l = f.queue.lease("w", vis).await.unwrap().expect("leased");
    let started = tokio::time::Instant::now();
    while started.elapsed() < vis * 2 + Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            f.queue.heartbeat(&l, vis).await.unwrap(),
            Heartbeat::Extended
        );
        assert_eq!(
            f.raw_receive(&f.urls().queue_url, 1, Duration::ZERO).await,
            None,
            "the message is hidden"
        );
        assert!(other.lease("other", LONG).await.unwrap().is_none());
    }
    let stored = f.queue.get(tenant, t.id).await.unwrap();
    assert_eq!(stored.attempts, 1);
    sleep_past(stored.lease_expires_at.unwrap()).await;
    let again = lease_within(&other, "other", LONG, Duration::from_secs(3)).await;
    assert_eq!((again.task.id, again.task.attempts), (t.id, 2));
    assert_eq!(f.queue.heartbeat(&l, vis).await.unwrap(), Heartbeat::Lost);
    assert!(
        other
            .complete(&again, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
}

/// With SQS unreachable, status queries (`get`, `list`, `depth`) still answer from the
/// database; `ping` and `lease` fail as retryable `service_unavailable`; an upload's `enqueue`
/// is recorded (its message is lost, and the sweep sends it once SQS is back); a running task's
/// heartbeat and completion go through the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_queries_work_while_sqs_is_unreachable() {
    let Some(f) = Fixture::with("outage", |s| s.republish_after = Duration::from_secs(2)).await
    else {
        return;
    };
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down_settings = SqsQueueSettings {
        endpoint: Some(format!("http://127.0.0.1:{closed}")),
        ..f.settings.clone()
    };
    let down = SqsQueue::with_client(
        f.ledger.clone(),
        sqs::client(&down_settings).await,
        f.urls().clone(),
        &down_settings,
        backoff(),
    );
    let tenant = TenantId::new();
    let a = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let running = f.queue.lease("w", LONG).await.unwrap().expect("leased");
    let b = f.queue.enqueue(tenant, new_task()).await.unwrap();

    assert_eq!(
        down.get(tenant, a.id).await.unwrap().status,
        TaskStatus::Processing
    );
    let page = down
        .list(tenant, TaskFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let depth = down.depth().await.unwrap();
    assert_eq!(depth.by_status.iter().map(|(_, n)| n).sum::<u64>(), 2);

    let err = down.ping().await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(err.is_retryable());
    let err = down.lease("w", LONG).await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");

    let c = down
        .enqueue(tenant, new_task())
        .await
        .expect("recorded without SQS");
    assert_eq!(
        down.get(tenant, c.id).await.unwrap().status,
        TaskStatus::Pending
    );
    assert_eq!(
        down.heartbeat(&running, LONG).await.unwrap(),
        Heartbeat::Extended
    );
    assert!(
        down.complete(&running, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(
        f.queue.get(tenant, a.id).await.unwrap().status,
        TaskStatus::Completed
    );

    // SQS is back: `b` has its message; `c` lost its own and is sent again by the sweep once
    // it has waited `republish_after`.
    let l = lease_within(&*f.queue, "w", LONG, Duration::from_secs(3)).await;
    assert_eq!(l.task.id, b.id);
    assert!(
        f.queue
            .complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    let l = lease_within(&*f.queue, "w", LONG, Duration::from_secs(8)).await;
    assert_eq!((l.task.id, l.task.attempts), (c.id, 1));
    assert!(
        f.queue
            .complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
}

/// Duplicate deliveries of a task (SQS is at-least-once; a sweep or an operator may send one
/// more) never lease it twice: while it runs they are hidden until its lease ends, afterwards
/// they are deleted. A message for an unknown task is deleted; one that names no task is moved
/// to the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_and_foreign_messages_are_harmless() {
    let Some(f) = Fixture::new("duplicates").await else {
        return;
    };
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    f.send_raw(&body_of(t.id, tenant)).await;
    f.send_raw(&body_of(t.id, tenant)).await;
    f.send_raw(&body_of(TaskId::new(), tenant)).await;
    f.send_raw(&body_of(t.id, TenantId::new())).await;
    f.send_raw("not a task").await;

    let vis = Duration::from_secs(2);
    let l = f.queue.lease("w1", vis).await.unwrap().expect("leased");
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    for _ in 0..4 {
        assert!(f.queue.lease("w2", LONG).await.unwrap().is_none());
    }
    let stored = f.queue.get(tenant, t.id).await.unwrap();
    assert_eq!(
        (stored.attempts, stored.lease_owner.as_deref()),
        (1, Some("w1"))
    );
    assert!(
        f.queue
            .complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );

    // The duplicates come back when the lease would have ended, and are dropped.
    sleep_past(l.expires_at).await;
    for _ in 0..3 {
        assert!(f.queue.lease("w3", LONG).await.unwrap().is_none());
    }
    assert_eq!(f.queue.get(tenant, t.id).await.unwrap().attempts, 1);
    assert_eq!(f.messages_in(&f.urls().queue_url).await, 0);
    assert_eq!(f.dead_letters().await, vec!["not a task".to_owned()]);
}

/// Two processes (separate SQS clients, separate database pools on one database) share the
/// queue: a task enqueued by one is leased by the other, its status is the same in both, and a
/// lease lapsing in one is taken over by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_queue() {
    let Some(f) = Fixture::new("shared").await else {
        return;
    };
    let b_store = SqliteStore::open(&f.db.1.path().join("docent.db"), 4, Duration::from_secs(5))
        .await
        .unwrap();
    let b_ledger = Arc::new(SqliteQueue::new(
        b_store.pool().clone(),
        CONTRACT_MAX_ATTEMPTS,
        backoff(),
    ));
    let b = SqsQueue::with_client(
        b_ledger,
        sqs::client(&f.settings).await,
        f.urls().clone(),
        &f.settings,
        backoff(),
    );
    let a = &f.queue;
    let tenant = TenantId::new();
    let t = a.enqueue(tenant, new_task()).await.unwrap();
    let l = b
        .lease("b-worker", Duration::from_secs(1))
        .await
        .unwrap()
        .expect("leased by b");
    assert_eq!(l.task.id, t.id);
    assert_eq!(
        a.get(tenant, t.id).await.unwrap().status,
        TaskStatus::Processing
    );
    sleep_past(l.expires_at).await;
    let again = lease_within(&**a, "a-worker", LONG, Duration::from_secs(3)).await;
    assert_eq!((again.task.id, again.task.attempts), (t.id, 2));
    assert!(
        !b.complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
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

/// Many workers in two processes drain a batch of tasks: every task runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_workers_in_two_processes_run_each_task_once() {
    let Some(f) = Fixture::new("drain").await else {
        return;
    };
    let other = Arc::new(f.other_process().await);
    let tenant = TenantId::new();
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(f.queue.enqueue(tenant, new_task()).await.unwrap().id);
    }
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let q: Arc<dyn TaskQueue> = if w % 2 == 0 {
            f.queue.clone()
        } else {
            other.clone()
        };
        workers.spawn(async move {
            let mut ran = Vec::new();
            let mut idle = 0;
            while idle < 5 {
                match q.lease(&format!("w{w}"), LONG).await.unwrap() {
                    Some(l) => {
                        idle = 0;
                        assert!(
                            q.complete(&l, TaskStatus::Completed, Default::default())
                                .await
                                .unwrap()
                        );
                        ran.push(l.task.id);
                    }
                    None => {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            ran
        });
    }
    let mut ran = Vec::new();
    while let Some(r) = workers.join_next().await {
        ran.extend(r.unwrap());
    }
    ran.sort();
    ids.sort();
    assert_eq!(ran, ids, "each task ran exactly once");
    for id in ids {
        assert_eq!(f.queue.get(tenant, id).await.unwrap().attempts, 1);
    }
}

/// `connect` without `create_queues` needs the queues to exist (a retryable error naming the
/// setting otherwise) and reads the redrive policy; with it, it creates them idempotently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_creates_or_resolves_the_queues() {
    let Some(endpoint) = endpoint() else { return };
    let (ledger, _db) = sqlite_ledger().await;
    let name = fresh_name("connect");
    let existing = SqsQueueSettings {
        create_queues: false,
        ..settings(&endpoint, &name)
    };
    let err = SqsQueue::connect(ledger.clone(), &existing, 3, backoff())
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::Unavailable);
    assert!(err.chain().contains("create_queues"), "{err:?}");

    let (created, _cleanup) = connect(ledger.clone(), settings(&endpoint, &name)).await;
    assert_eq!(
        created.queues().max_receive_count,
        CONTRACT_MAX_ATTEMPTS + 1
    );
    let again = SqsQueue::connect(ledger.clone(), &settings(&endpoint, &name), 3, backoff())
        .await
        .expect("creating again is a no-op");
    assert_eq!(again.queues(), created.queues());
    let resolved = SqsQueue::connect(ledger.clone(), &existing, 3, backoff())
        .await
        .expect("the queues exist now");
    assert_eq!(resolved.queues(), created.queues());
    resolved.ping().await.unwrap();
    let raw = sqs::client(&existing).await;
    let policy = raw
        .get_queue_attributes()
        .queue_url(&created.queues().queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy).cloned())
        .expect("a redrive policy");
    assert!(policy.contains(&format!("{name}-dlq")), "{policy}");
}
