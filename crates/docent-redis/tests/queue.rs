//! The Redis Streams transport against the Redis at `DOCENT_TEST_REDIS_URL` and the Redis
//! Cluster at `DOCENT_TEST_REDIS_CLUSTER_URL` (each suite runs on both), under the
//! ledger-backed `DeliveryQueue`: the whole [`TaskQueue`] contract of `docent_testkit` — with a
//! fresh SQLite ledger per case, and with a PostgreSQL ledger in a fresh database when
//! `DOCENT_TEST_POSTGRES_URL` is set too — and the delivery contract, each case under its own
//! key prefix (deleted when it ends); then what is particular to Redis: the pending-entries list
//! showing who holds what (a killed worker's entry reclaimed by another consumer), deferred
//! deliveries kept once per task in the delayed set, and blocking reads; in the cluster, one
//! queue's keys on one node and different queues on different nodes. Without a variable its
//! tests print `skipped: … not set` and pass.
//!
//! [`TaskQueue`]: docent_domain::ports::TaskQueue

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use docent_domain::ports::{Backoff, Delivery, FailOutcome, Heartbeat, TaskLedger, TaskQueue};
use docent_domain::{ErrorInfo, TaskStatus, TenantId};
use docent_queue::DeliveryQueue;
use docent_redis::{RedisDelivery, RedisQueueSettings};
use docent_store::{SqliteQueue, SqliteStore};
use docent_testkit::delivery_contract::{Broker, DeliveryUnderTest, body_of, new_task, sleep_past};
use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

use common::{Cleanup, Server, fresh_prefix};

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
/// answers at once).
fn settings(prefix: &str) -> RedisQueueSettings {
    RedisQueueSettings {
        block_time: Duration::ZERO,
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

fn transport(server: &Server, settings: &RedisQueueSettings) -> RedisDelivery {
    RedisDelivery::new(server.connect(), settings).expect("transport")
}

/// The ledger-backed queue over `delivery`, with no re-publishing within a test.
fn queue(ledger: Arc<dyn TaskLedger>, delivery: Arc<RedisDelivery>) -> DeliveryQueue {
    DeliveryQueue::new(ledger, delivery, backoff(), Duration::from_secs(600))
}

/// A transport on a fresh prefix, and the guard that deletes its keys.
fn fresh_transport(server: &Server, what: &str) -> (Arc<RedisDelivery>, Cleanup) {
    let t = transport(server, &settings(&fresh_prefix(what)));
    let cleanup = server.cleanup(t.key_prefix());
    (Arc::new(t), cleanup)
}

async fn sqlite_redis_queue(server: Option<Server>) -> Option<QueueUnderTest> {
    let server = server?;
    let (ledger, db) = sqlite_ledger().await;
    let (t, cleanup) = fresh_transport(&server, "contract");
    Some(QueueUnderTest::new(
        Arc::new(queue(ledger, t)),
        (cleanup, db),
    ))
}

mod sqlite_ledger {
    async fn single() -> Option<docent_testkit::QueueUnderTest> {
        super::sqlite_redis_queue(super::Server::single()).await
    }
    docent_testkit::queue_contract_tests!(optional single);
}

/// The contract on the Redis Cluster: every script and atomic pipeline of the transport runs
/// on the one node that owns the queue's hash tag.
mod cluster_sqlite_ledger {
    async fn cluster() -> Option<docent_testkit::QueueUnderTest> {
        super::sqlite_redis_queue(super::Server::cluster()).await
    }
    docent_testkit::queue_contract_tests!(optional cluster);
}

mod postgres_ledger {
    use std::sync::Arc;
    use std::time::Duration;

    use docent_store::{PgOptions, PgQueue, PgStore};
    use docent_testkit::pg::TestDatabase;
    use docent_testkit::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest};

    use super::common::Server;

    /// The Redis queue over a PostgreSQL ledger in a fresh database (the distributed shape), or
    /// `None` to skip.
    async fn pg_redis_queue() -> Option<QueueUnderTest> {
        let redis = Server::single()?;
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
        let (t, cleanup) = super::fresh_transport(&redis, "contract-pg");
        // Dropped in order: the keys, the pool, then the database.
        Some(QueueUnderTest::new(
            Arc::new(super::queue(ledger, t)),
            (cleanup, store, db),
        ))
    }

    docent_testkit::queue_contract_tests!(optional pg_redis_queue);
}

// ---------------------------------------------------------------------------------------------
// The delivery contract
// ---------------------------------------------------------------------------------------------

/// A queue's keys seen from outside, with a raw connection.
struct RedisBroker {
    server: Server,
    settings: RedisQueueSettings,
    /// The keys' names (a transport makes no call until used).
    keys: RedisDelivery,
    /// A connection of the test's own.
    raw: docent_redis::Redis,
    _cleanup: Cleanup,
}

impl RedisBroker {
    async fn new(server: &Server, what: &str) -> Self {
        let settings = settings(&fresh_prefix(what));
        let keys = transport(server, &settings);
        Self {
            _cleanup: server.cleanup(keys.key_prefix()),
            server: server.clone(),
            settings,
            keys,
            raw: server.connect(),
        }
    }

    async fn int(&self, cmd: &mut redis::Cmd) -> i64 {
        self.raw.query(cmd).await.unwrap()
    }

    async fn xlen(&self) -> i64 {
        self.int(redis::cmd("XLEN").arg(self.keys.stream_key()))
            .await
    }

    async fn delayed(&self) -> i64 {
        self.int(redis::cmd("ZCARD").arg(self.keys.delayed_key()))
            .await
    }

    /// Owners of the pending entries.
    async fn pending_owners(&self) -> Vec<String> {
        let exists = self
            .int(redis::cmd("EXISTS").arg(self.keys.stream_key()))
            .await;
        if exists == 0 {
            return Vec::new();
        }
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(self.keys.stream_key())
            .arg(self.keys.group())
            .arg("-")
            .arg("+")
            .arg(100);
        let rows: Vec<(String, String, u64, u64)> = self.raw.query(&cmd).await.unwrap_or_default();
        rows.into_iter().map(|r| r.1).collect()
    }

    async fn add_raw(&self, fields: &[(&str, &str)]) {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.stream_key()).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let _: String = self.raw.query(&cmd).await.unwrap();
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn connect(&self) -> Arc<dyn Delivery> {
        Arc::new(transport(&self.server, &self.settings))
    }

    async fn unreachable(&self) -> Arc<dyn Delivery> {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        Arc::new(transport(
            &self.server.at(&format!("redis://127.0.0.1:{closed}")),
            &self.settings,
        ))
    }

    async fn inject(&self, body: &str) {
        self.add_raw(&[("body", body)]).await;
    }

    /// Entries in the stream (the pending ones among them) and in the delayed set; a pending
    /// entry missing from the stream counts too.
    async fn outstanding(&self) -> u64 {
        let pending = self.pending_owners().await.len() as i64;
        let xlen = self.xlen().await;
        u64::try_from(xlen + (pending - xlen).max(0) + self.delayed().await).unwrap_or(0)
    }

    async fn dead_letters(&self) -> Vec<(String, String)> {
        let reply: redis::streams::StreamRangeReply = self
            .raw
            .query(
                redis::cmd("XRANGE")
                    .arg(self.keys.dlq_key())
                    .arg("-")
                    .arg("+"),
            )
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
}

/// A fresh prefix over a fresh SQLite ledger, and a second ledger on the same database.
async fn redis_delivery(server: Option<Server>) -> Option<DeliveryUnderTest> {
    let server = server?;
    let (ledger, db) = sqlite_ledger().await;
    let other = SqliteStore::open(&db.1.path().join("docent.db"), 4, Duration::from_secs(5))
        .await
        .expect("open the database again");
    let other_ledger = Arc::new(SqliteQueue::new(
        other.pool().clone(),
        CONTRACT_MAX_ATTEMPTS,
        backoff(),
    ));
    let broker = RedisBroker::new(&server, "delivery").await;
    Some(DeliveryUnderTest::new(
        broker,
        ledger,
        other_ledger,
        (other, db),
    ))
}

mod delivery {
    async fn single() -> Option<docent_testkit::delivery_contract::DeliveryUnderTest> {
        super::redis_delivery(super::Server::single()).await
    }
    docent_testkit::delivery_contract_tests!(optional single);
}

mod cluster_delivery {
    async fn cluster() -> Option<docent_testkit::delivery_contract::DeliveryUnderTest> {
        super::redis_delivery(super::Server::cluster()).await
    }
    docent_testkit::delivery_contract_tests!(optional cluster);
}

// ---------------------------------------------------------------------------------------------
// Redis-specific behaviour
// ---------------------------------------------------------------------------------------------

on_both! {
    /// A worker killed mid-task (kill -9: no completion, no heartbeat, no release) keeps its entry
    /// in the pending-entries list, owned by it; once its lease lapses another process reclaims the
    /// entry (`XAUTOCLAIM`) and runs the task, and the dead worker can no longer touch it.
    async fn a_killed_workers_task_is_reclaimed_by_another_consumer(server) {
        let (ledger, _db) = sqlite_ledger().await;
        let f = RedisBroker::new(&server, "reclaim").await;
        let q = queue(ledger.clone(), Arc::new(transport(&server, &f.settings)));
        let other = queue(ledger, Arc::new(transport(&server, &f.settings)));
        let tenant = TenantId::new();
        let t = q.enqueue(tenant, new_task()).await.unwrap();
        let dead = q
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
        assert_eq!(q.heartbeat(&dead, LONG).await.unwrap(), Heartbeat::Lost);
        assert_eq!(
            f.pending_owners().await,
            vec!["survivor".to_owned()],
            "a lost lease's heartbeat leaves the entry with its new owner"
        );
        assert!(
            !q.complete(&dead, TaskStatus::Completed, Default::default())
                .await
                .unwrap()
        );
        assert!(
            other
                .complete(&again, TaskStatus::Completed, Default::default())
                .await
                .unwrap()
        );
        assert_eq!(f.outstanding().await, 0);
    }
}

on_both! {
    /// Deferred deliveries wait in the delayed set, out of the stream and its pending list, once
    /// per task: duplicates of a running task wait as one, and so does a retry's. An entry without
    /// a body goes to the dead-letter stream.
    async fn deferred_deliveries_wait_once_per_task_in_the_delayed_set(server) {
        let (ledger, _db) = sqlite_ledger().await;
        let f = RedisBroker::new(&server, "delayed").await;
        let q = queue(ledger, Arc::new(transport(&server, &f.settings)));
        let tenant = TenantId::new();
        let t = q.enqueue(tenant, new_task()).await.unwrap();
        let l = q.lease("w1", LONG).await.unwrap().expect("leased");
        let own = body_of(t.id, tenant);
        f.add_raw(&[("body", &own)]).await;
        f.add_raw(&[("body", &own)]).await;
        f.add_raw(&[("other", "field")]).await;
        for _ in 0..3 {
            assert!(q.lease("w2", LONG).await.unwrap().is_none());
        }
        assert_eq!(f.delayed().await, 1, "the duplicates wait as one");
        assert_eq!(
            f.dead_letters().await,
            vec![(String::new(), "not_a_task".to_owned())]
        );
        let error = ErrorInfo {
            code: "extraction_failed".into(),
            message: "boom".into(),
        };
        let outcome = q.fail(&l, error, true, None).await.unwrap();
        assert!(
            matches!(outcome, FailOutcome::Retrying { .. }),
            "{outcome:?}"
        );
        assert_eq!(f.delayed().await, 1, "the retry waits as one with them");
        assert_eq!((f.xlen().await, f.pending_owners().await.len()), (0, 0));
    }
}

on_both! {
    /// A read blocks on a connection of its own: it returns as soon as another process adds a
    /// task, and calls on the shared connection are not held up meanwhile.
    async fn a_blocking_read_wakes_on_a_new_task_and_holds_up_nothing(server) {
        let (ledger, _db) = sqlite_ledger().await;
        let f = RedisBroker::new(&server, "blocking").await;
        let blocking = RedisQueueSettings {
            block_time: Duration::from_secs(3),
            ..f.settings.clone()
        };
        let q = Arc::new(queue(ledger.clone(), Arc::new(transport(&server, &blocking))));
        // Creates the group (the first lease blocks the whole block time on the empty stream).
        let started = tokio::time::Instant::now();
        assert!(q.lease("w", LONG).await.unwrap().is_none());
        assert!(started.elapsed() >= Duration::from_secs(2), "it blocked");

        let waiting = {
            let q = q.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let l = q.lease("w", LONG).await.unwrap();
                (l, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pinged = tokio::time::Instant::now();
        q.ping().await.unwrap();
        assert!(
            pinged.elapsed() < Duration::from_millis(500),
            "the shared connection answers during a blocking read"
        );
        let other = queue(ledger, Arc::new(transport(&server, &blocking)));
        let t = other.enqueue(TenantId::new(), new_task()).await.unwrap();
        let (l, took) = waiting.await.unwrap();
        assert_eq!(l.map(|l| l.task.id), Some(t.id));
        assert!(
            took < Duration::from_secs(2),
            "woken by the new entry: {took:?}"
        );
    }
}

/// In the cluster, every key of one queue is on one node (the hash tag), so its scripts and
/// atomic pipelines run there; queues of different names land on different nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_queues_keep_their_keys_together_and_spread_apart() {
    let Some(server) = Server::cluster() else {
        return;
    };
    let (ledger, _db) = sqlite_ledger().await;
    let run = fresh_prefix("spread");
    let _cleanup = server.cleanup(&format!("{{{run}"));
    let mut nodes_used = std::collections::BTreeSet::new();
    for i in 0..12 {
        let f = transport(&server, &settings(&format!("{run}:q{i}")));
        let q = queue(ledger.clone(), Arc::new(f));
        let t = q.enqueue(TenantId::new(), new_task()).await.unwrap();
        let l = q.lease("w", LONG).await.unwrap().expect("leased");
        assert_eq!(l.task.id, t.id);
        // A deferred delivery and a dead letter: the delayed set and the DLQ exist too.
        q.fail(
            &l,
            ErrorInfo {
                code: "x".into(),
                message: "x".into(),
            },
            true,
            None,
        )
        .await
        .unwrap();
        let per_node = server.keys_per_node(&format!("{{{run}:q{i}}}"));
        let holding: Vec<usize> = (0..per_node.len())
            .filter(|n| !per_node[*n].is_empty())
            .collect();
        assert_eq!(holding.len(), 1, "one queue, one node: {per_node:?}");
        assert!(per_node[holding[0]].len() >= 2, "{per_node:?}");
        nodes_used.insert(holding[0]);
    }
    assert!(
        nodes_used.len() > 1,
        "twelve queues on one node: {nodes_used:?}"
    );
}
