//! The Redis Streams queue against the Redis at `DOCENT_TEST_REDIS_URL`: the whole
//! [`TaskQueue`] contract of `docent_testkit` — with a fresh SQLite ledger per case, and with a
//! PostgreSQL ledger in a fresh database when `DOCENT_TEST_POSTGRES_URL` is set too — each case
//! under its own key prefix (deleted when it ends), then what is particular to Redis: a worker
//! killed mid-task reclaimed by another consumer, worker deaths ending in the dead-letter
//! stream, heartbeats past the visibility, status queries with Redis unreachable, duplicate and
//! foreign entries, two processes on one queue, blocking reads and the sweep. Without the
//! variable every test prints `skipped: DOCENT_TEST_REDIS_URL not set` and passes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use docent_domain::ports::{Backoff, Heartbeat, Lease, TaskQueue};
use docent_domain::{
    Code, NewTask, PageRequest, TaskFilter, TaskId, TaskKind, TaskStatus, TenantId,
};
use docent_redis::{Redis, RedisQueue, RedisQueueSettings};
use docent_store::{SqliteQueue, SqliteStore};
use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

use common::{Cleanup, connect, fresh_prefix, keys, redis_url};

/// Long enough never to lapse during a test.
const LONG: Duration = Duration::from_secs(60);

/// A small retry backoff so retry cases stay fast.
fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

/// Settings for a test queue under `prefix`: reads that do not block (so "nothing to lease"
/// answers at once), no re-publishing within a test.
fn settings(prefix: &str) -> RedisQueueSettings {
    RedisQueueSettings {
        block_time: Duration::ZERO,
        republish_after: Duration::from_secs(600),
        ..RedisQueueSettings::new(prefix)
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

fn queue(
    ledger: Arc<dyn docent_domain::ports::TaskLedger>,
    redis: Redis,
    settings: &RedisQueueSettings,
) -> RedisQueue {
    RedisQueue::new(ledger, redis, settings, backoff()).expect("queue")
}

async fn sqlite_redis_queue() -> Option<QueueUnderTest> {
    let url = redis_url()?;
    let (ledger, db) = sqlite_ledger().await;
    let q = queue(ledger, connect(&url), &settings(&fresh_prefix("contract")));
    let cleanup = Cleanup {
        url,
        pattern_prefix: q.key_prefix().to_owned(),
    };
    Some(QueueUnderTest::new(Arc::new(q), (cleanup, db)))
}

mod sqlite_ledger {
    docent_testkit::queue_contract_tests!(optional super::sqlite_redis_queue);
}

mod postgres_ledger {
    use std::sync::Arc;
    use std::time::Duration;

    use docent_store::{PgOptions, PgQueue, PgStore};
    use docent_testkit::pg::TestDatabase;
    use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

    use super::common::{Cleanup, connect, fresh_prefix, redis_url};

    /// The Redis queue over a PostgreSQL ledger in a fresh database (the distributed shape), or
    /// `None` to skip.
    async fn pg_redis_queue() -> Option<QueueUnderTest> {
        let redis = redis_url()?;
        let url = match std::env::var("DOCENT_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("skipped: DOCENT_TEST_POSTGRES_URL not set");
                return None;
            }
        };
        let db = TestDatabase::create(&url, "docent_redis_queue").await;
        let store = PgStore::connect(
            db.url(),
            &PgOptions {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(10),
                statement_timeout: Some(Duration::from_secs(30)),
                schema: None,
                ..PgOptions::default()
            },
        )
        .await
        .expect("connect to the test database");
        let ledger = Arc::new(PgQueue::new(
            store.pool().clone(),
            CONTRACT_MAX_ATTEMPTS,
            super::backoff(),
        ));
        let q = super::queue(
            ledger,
            connect(&redis),
            &super::settings(&fresh_prefix("contract-pg")),
        );
        let cleanup = Cleanup {
            url: redis,
            pattern_prefix: q.key_prefix().to_owned(),
        };
        // Dropped in order: the keys, the pool, then the database.
        Some(QueueUnderTest::new(Arc::new(q), (cleanup, store, db)))
    }

    docent_testkit::queue_contract_tests!(optional pg_redis_queue);
}

// ---------------------------------------------------------------------------------------------
// Redis-specific behaviour
// ---------------------------------------------------------------------------------------------

/// One Redis queue over a fresh SQLite ledger, with a raw connection for looking inside Redis.
struct Fixture {
    queue: Arc<RedisQueue>,
    ledger: Arc<SqliteQueue>,
    settings: RedisQueueSettings,
    url: String,
    raw: redis::aio::MultiplexedConnection,
    db: (SqliteStore, tempfile::TempDir),
    _cleanup: Cleanup,
}

impl Fixture {
    async fn new(what: &str) -> Option<Self> {
        Self::with(what, |_| {}).await
    }

    async fn with(what: &str, tweak: impl FnOnce(&mut RedisQueueSettings)) -> Option<Self> {
        let url = redis_url()?;
        let (ledger, db) = sqlite_ledger().await;
        let mut settings = settings(&fresh_prefix(what));
        tweak(&mut settings);
        let q = queue(ledger.clone(), connect(&url), &settings);
        let raw = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis");
        Some(Self {
            _cleanup: Cleanup {
                url: url.clone(),
                pattern_prefix: q.key_prefix().to_owned(),
            },
            queue: Arc::new(q),
            ledger,
            settings,
            url,
            raw,
            db,
        })
    }

    /// Another queue on the same ledger and keys with its own connection (another process as
    /// far as Redis can tell: its own consumer).
    fn other_process(&self) -> RedisQueue {
        queue(self.ledger.clone(), connect(&self.url), &self.settings)
    }

    async fn xlen(&self, key: &str) -> i64 {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.raw.clone())
            .await
            .unwrap()
    }

    /// Entries in the pending-entries list.
    async fn pending(&self) -> i64 {
        let summary: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(self.queue.stream_key())
            .arg(self.queue.group())
            .query_async(&mut self.raw.clone())
            .await
            .unwrap();
        match summary.first() {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("XPENDING summary {other:?}"),
        }
    }

    /// Owners of the pending entries.
    async fn pending_owners(&self) -> Vec<String> {
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(self.queue.stream_key())
            .arg(self.queue.group())
            .arg("-")
            .arg("+")
            .arg(100)
            .query_async(&mut self.raw.clone())
            .await
            .unwrap();
        rows.into_iter().map(|r| r.1).collect()
    }

    async fn delayed(&self) -> i64 {
        redis::cmd("ZCARD")
            .arg(self.queue.delayed_key())
            .query_async(&mut self.raw.clone())
            .await
            .unwrap()
    }

    /// Bodies and reasons in the dead-letter stream.
    async fn dead_letters(&self) -> Vec<(String, String)> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.queue.dlq_key())
            .arg("-")
            .arg("+")
            .query_async(&mut self.raw.clone())
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|e| {
                (
                    e.get::<String>("body").unwrap_or_default(),
                    e.get::<String>("reason").unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn add_raw(&self, fields: &[(&str, &str)]) {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.queue.stream_key()).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let _: String = cmd.query_async(&mut self.raw.clone()).await.unwrap();
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

/// A worker killed mid-task (kill -9: no completion, no heartbeat, no release) keeps its entry
/// in the pending-entries list, owned by it; once its lease lapses another process reclaims the
/// entry (`XAUTOCLAIM`) and runs the task, and the dead worker can no longer touch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_workers_task_is_reclaimed_by_another_consumer() {
    let Some(f) = Fixture::new("reclaim").await else {
        return;
    };
    let other = f.other_process();
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let dead = f
        .queue
        .lease("doomed", Duration::from_millis(500))
        .await
        .unwrap()
        .expect("leased");
    assert_eq!(f.pending_owners().await, vec!["doomed".to_owned()]);
    assert!(
        other.lease("other", LONG).await.unwrap().is_none(),
        "not reclaimed while the lease lasts"
    );
    sleep_past(dead.expires_at).await;
    let again = other
        .lease("survivor", LONG)
        .await
        .unwrap()
        .expect("reclaimed once the lease lapsed");
    assert_eq!((again.task.id, again.task.attempts), (t.id, 2));
    assert_eq!(f.pending_owners().await, vec!["survivor".to_owned()]);
    assert_eq!(
        f.queue.heartbeat(&dead, LONG).await.unwrap(),
        Heartbeat::Lost
    );
    assert_eq!(
        f.pending_owners().await,
        vec!["survivor".to_owned()],
        "a lost lease's heartbeat leaves the entry with its new owner"
    );
    assert!(
        !f.queue
            .complete(&dead, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert!(
        other
            .complete(&again, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(f.pending().await, 0);
    assert_eq!(f.xlen(f.queue.stream_key()).await, 0);
}

/// A task whose worker dies on every attempt is delivered `max_attempts` times, then
/// dead-lettered as `worker_lost`, and its entry ends in the dead-letter stream; an operator
/// retry delivers it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_deaths_end_in_the_dead_letter_stream() {
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
            Duration::from_millis(300),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!((l.task.id, l.task.attempts), (t.id, attempt));
        last = Some(l.expires_at);
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
    let dead = f.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(task_in(&dead[0].0), Some(t.id));
    assert_eq!(dead[0].1, "dead_lettered");
    assert_eq!(f.xlen(f.queue.stream_key()).await, 0);
    assert_eq!(f.pending().await, 0);

    f.queue.retry(tenant, t.id).await.unwrap();
    let l = lease_within(&*f.queue, "fixed", LONG, Duration::from_secs(3)).await;
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    assert!(
        f.queue
            .complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(f.xlen(f.queue.stream_key()).await, 0);
}

/// A poison task (failing retryably on every attempt) waits in the delayed set between
/// attempts, then lands in the dead-letter stream after `max_attempts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_task_ends_in_the_dead_letter_stream() {
    let Some(f) = Fixture::new("poison").await else {
        return;
    };
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    for attempt in 1..=CONTRACT_MAX_ATTEMPTS {
        let l = lease_within(&*f.queue, "w", LONG, Duration::from_secs(5)).await;
        assert_eq!((l.task.id, l.task.attempts), (t.id, attempt));
        let error = docent_domain::ErrorInfo {
            code: "extraction_failed".into(),
            message: "boom".into(),
        };
        let outcome = f.queue.fail(&l, error, true, None).await.unwrap();
        if attempt < CONTRACT_MAX_ATTEMPTS {
            assert!(
                matches!(outcome, docent_domain::ports::FailOutcome::Retrying { .. }),
                "{outcome:?}"
            );
            assert_eq!(f.delayed().await, 1, "parked until its backoff ends");
            assert_eq!(f.xlen(f.queue.stream_key()).await, 0);
        } else {
            assert_eq!(outcome, docent_domain::ports::FailOutcome::DeadLettered);
        }
    }
    let stored = f.queue.get(tenant, t.id).await.unwrap();
    assert!(stored.dead_lettered);
    let dead = f.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(task_in(&dead[0].0), Some(t.id));
    assert_eq!(
        (
            f.xlen(f.queue.stream_key()).await,
            f.pending().await,
            f.delayed().await
        ),
        (0, 0, 0)
    );
}

/// Heartbeats keep the entry from being reclaimed (by this and other processes) long past the
/// visibility it was leased with; once they stop it is delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_keep_the_entry_past_its_visibility() {
    let Some(f) = Fixture::new("heartbeat").await else {
        return;
    };
    let other = f.other_process();
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let vis = Duration::from_millis(600);
    let l = f.queue.lease("w", vis).await.unwrap().expect("leased");
    let started = tokio::time::Instant::now();
    while started.elapsed() < vis * 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            f.queue.heartbeat(&l, vis).await.unwrap(),
            Heartbeat::Extended
        );
        assert!(other.lease("other", LONG).await.unwrap().is_none());
    }
    let stored = f.queue.get(tenant, t.id).await.unwrap();
    assert_eq!(stored.attempts, 1);
    assert_eq!(f.delayed().await, 0, "never reclaimed, so never parked");
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

/// With Redis unreachable, status queries (`get`, `list`, `depth`) still answer from the
/// database; `ping` and `lease` fail as retryable `service_unavailable`; an upload's `enqueue`
/// is recorded (its delivery is lost, and the sweep adds it once Redis is back); a running
/// task's heartbeat and completion go through the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_queries_work_while_redis_is_unreachable() {
    let Some(f) = Fixture::with("outage", |s| s.republish_after = Duration::from_secs(1)).await
    else {
        return;
    };
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = queue(
        f.ledger.clone(),
        connect(&format!("redis://127.0.0.1:{closed}/0")),
        &f.settings,
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
        .expect("recorded without Redis");
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

    // Redis is back: `b` has its entry; `c` lost its own and is added again by the sweep once
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
    // `a`'s entry was left behind by the completion through the unreachable queue; it comes
    // back when its lease would have lapsed and is dropped then, not run.
    assert_eq!(f.queue.sweep().await.unwrap(), 0, "nothing left to add");
}

/// Duplicate deliveries of a task (a sweep or an operator may add one more) never lease it
/// twice: while it runs they are parked until its lease ends, afterwards they are dropped. An
/// entry for an unknown task is dropped; one that names no task is moved to the dead-letter
/// stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_and_foreign_entries_are_harmless() {
    let Some(f) = Fixture::new("duplicates").await else {
        return;
    };
    let tenant = TenantId::new();
    let t = f.queue.enqueue(tenant, new_task()).await.unwrap();
    let own = body_of(t.id, tenant);
    f.add_raw(&[("body", &own)]).await;
    f.add_raw(&[("body", &own)]).await;
    f.add_raw(&[("body", &body_of(TaskId::new(), tenant))])
        .await;
    f.add_raw(&[("body", &body_of(t.id, TenantId::new()))])
        .await;
    f.add_raw(&[("body", "not a task")]).await;
    f.add_raw(&[("other", "field")]).await;

    let vis = Duration::from_millis(800);
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
    assert_eq!(f.delayed().await, 1, "the duplicates wait as one");
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
    assert_eq!(
        (
            f.xlen(f.queue.stream_key()).await,
            f.pending().await,
            f.delayed().await
        ),
        (0, 0, 0)
    );
    let dead: Vec<String> = f.dead_letters().await.into_iter().map(|d| d.0).collect();
    assert_eq!(dead, vec!["not a task".to_owned(), String::new()]);
}

/// Two processes (separate Redis connections, separate database pools on one database) share
/// the queue: a task enqueued by one is leased by the other, its status is the same in both,
/// and a lease lapsing in one is taken over by the other.
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
    let b = queue(b_ledger, connect(&f.url), &f.settings);
    let a = &f.queue;
    let tenant = TenantId::new();
    let t = a.enqueue(tenant, new_task()).await.unwrap();
    let l = b
        .lease("b-worker", Duration::from_millis(400))
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

/// Many workers in two processes drain a batch of tasks: every task runs exactly once, and
/// nothing is left in the stream, its pending list or the delayed set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_workers_in_two_processes_run_each_task_once() {
    let Some(f) = Fixture::new("drain").await else {
        return;
    };
    let other = Arc::new(f.other_process());
    let tenant = TenantId::new();
    let mut ids = Vec::new();
    for _ in 0..20 {
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
    assert_eq!(
        (
            f.xlen(f.queue.stream_key()).await,
            f.pending().await,
            f.delayed().await
        ),
        (0, 0, 0)
    );
    assert!(!keys(&f.url, f.queue.key_prefix()).await.is_empty());
}

/// A read blocks on a connection of its own: it returns as soon as another process adds a
/// task, and calls on the shared connection are not held up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocking_read_wakes_on_a_new_task_and_holds_up_nothing() {
    let Some(f) = Fixture::with("blocking", |s| s.block_time = Duration::from_secs(3)).await else {
        return;
    };
    // Creates the group (the first lease blocks the whole block time on the empty stream).
    let started = tokio::time::Instant::now();
    assert!(f.queue.lease("w", LONG).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_secs(2), "it blocked");

    let q = f.queue.clone();
    let waiting = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let l = q.lease("w", LONG).await.unwrap();
        (l, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pinged = tokio::time::Instant::now();
    f.queue.ping().await.unwrap();
    assert!(
        pinged.elapsed() < Duration::from_millis(500),
        "the shared connection answers during a blocking read"
    );
    let other = f.other_process();
    let t = other.enqueue(TenantId::new(), new_task()).await.unwrap();
    let (l, took) = waiting.await.unwrap();
    assert_eq!(l.map(|l| l.task.id), Some(t.id));
    assert!(
        took < Duration::from_secs(2),
        "woken by the new entry: {took:?}"
    );
}

/// Finished deliveries leave nothing behind; a released task gets a fresh entry and keeps its
/// attempt count.
#[tokio::test]
async fn finished_and_released_tasks_leave_no_stale_entries() {
    let Some(f) = Fixture::new("entries").await else {
        return;
    };
    let tenant = TenantId::new();
    for _ in 0..3 {
        f.queue.enqueue(tenant, new_task()).await.unwrap();
    }
    let first = f.queue.lease("w", LONG).await.unwrap().expect("leased");
    assert!(f.queue.release(&first).await.unwrap());
    assert_eq!(f.pending().await, 0);
    assert_eq!(f.xlen(f.queue.stream_key()).await, 3);
    let mut ran = 0;
    while let Some(l) = f.queue.lease("w", LONG).await.unwrap() {
        assert_eq!(l.task.attempts, 1);
        assert!(
            f.queue
                .complete(&l, TaskStatus::Completed, Default::default())
                .await
                .unwrap()
        );
        ran += 1;
    }
    assert_eq!(ran, 3);
    assert_eq!(
        (
            f.xlen(f.queue.stream_key()).await,
            f.pending().await,
            f.delayed().await
        ),
        (0, 0, 0)
    );
}
