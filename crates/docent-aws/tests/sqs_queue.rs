//! The SQS transport against a real SQS-compatible server (moto in CI) at
//! `DOCENT_TEST_AWS_ENDPOINT`, under the ledger-backed `DeliveryQueue`: the whole [`TaskQueue`]
//! contract of `docent_testkit` — with a fresh SQLite ledger per case, and with a PostgreSQL
//! ledger on a fresh schema when `DOCENT_TEST_POSTGRES_URL` is set too — and the delivery
//! contract, on fresh queues per case; then what is particular to SQS: its own redrive and the
//! sweep that sends lost messages again, and queue creation. Without the variable every test
//! prints `skipped: DOCENT_TEST_AWS_ENDPOINT not set` and passes.
//!
//! Where moto differs from SQS (noted here and in `docent_aws::sqs`): it accepts any earlier
//! receipt handle of a message for `ChangeMessageVisibility` and `DeleteMessage` (SQS wants the
//! latest), counts the 12-hour visibility limit from the send rather than the receive, lets
//! `ChangeMessageVisibility` hide a message that is no longer in flight, keeps visibility to
//! the millisecond, and its short polls see every message (SQS's sample a subset of servers).
//! None of these is relied on.
//!
//! [`TaskQueue`]: docent_domain::ports::TaskQueue

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use docent_aws::sqs::{self, SqsDelivery, SqsQueueSettings, SqsQueues};
use docent_domain::ports::{Backoff, Delivery, TaskLedger, TaskQueue};
use docent_domain::{Code, TaskStatus, TenantId};
use docent_queue::DeliveryQueue;
use docent_store::{SqliteQueue, SqliteStore};
use docent_testkit::delivery_contract::{Broker, DeliveryUnderTest, new_task, task_in};
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
/// polling (so "nothing to lease" answers at once).
fn settings(endpoint: &str, name: &str) -> SqsQueueSettings {
    SqsQueueSettings {
        endpoint: Some(endpoint.to_owned()),
        wait_time: Duration::ZERO,
        create_queues: true,
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

/// Fresh queues named after `what`, created, with the guard that deletes them.
async fn fresh_queues(endpoint: &str, what: &str) -> (SqsDelivery, SqsQueueSettings, DeleteQueues) {
    let settings = settings(endpoint, &fresh_name(what));
    let delivery = SqsDelivery::connect(&settings, CONTRACT_MAX_ATTEMPTS)
        .await
        .expect("connect to the SQS queues");
    let queues = delivery.queues().clone();
    let guard = DeleteQueues {
        settings: settings.clone(),
        queues,
    };
    (delivery, settings, guard)
}

/// The ledger-backed queue over `delivery`, with no re-publishing within a test.
fn queue(ledger: Arc<dyn TaskLedger>, delivery: SqsDelivery) -> DeliveryQueue {
    DeliveryQueue::new(
        ledger,
        Arc::new(delivery),
        backoff(),
        Duration::from_secs(600),
    )
}

async fn sqlite_sqs_queue() -> Option<QueueUnderTest> {
    let endpoint = endpoint()?;
    let (ledger, db) = sqlite_ledger().await;
    let (delivery, _, queues) = fresh_queues(&endpoint, "contract").await;
    Some(QueueUnderTest::new(
        Arc::new(queue(ledger, delivery)),
        (queues, db),
    ))
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
        let (delivery, _, queues) = super::fresh_queues(&endpoint, "contract-pg").await;
        // Dropped in order: the queues, the pool, then the schema.
        Some(QueueUnderTest::new(
            Arc::new(super::queue(ledger, delivery)),
            (queues, store, schema),
        ))
    }

    docent_testkit::queue_contract_tests!(optional pg_sqs_queue);
}

// ---------------------------------------------------------------------------------------------
// The delivery contract
// ---------------------------------------------------------------------------------------------

/// Fresh SQS queues seen from outside, with a raw client.
struct SqsBroker {
    settings: SqsQueueSettings,
    queues: SqsQueues,
    raw: Client,
    _delete: DeleteQueues,
}

impl SqsBroker {
    async fn new(endpoint: &str, what: &str) -> Self {
        let (delivery, settings, delete) = fresh_queues(endpoint, what).await;
        Self {
            queues: delivery.queues().clone(),
            raw: sqs::client(&settings).await,
            settings,
            _delete: delete,
        }
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
    /// one comes or `within` passes; its body and `reason` attribute.
    async fn raw_receive(
        &self,
        url: &str,
        visibility: i32,
        within: Duration,
    ) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let out = self
                .raw
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(1)
                .visibility_timeout(visibility)
                .wait_time_seconds(0)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            if let Some(m) = out.messages().first() {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(sqs::REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default();
                return Some((m.body().unwrap_or_default().to_owned(), reason.to_owned()));
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[async_trait]
impl Broker for SqsBroker {
    async fn connect(&self) -> Arc<dyn Delivery> {
        Arc::new(SqsDelivery::with_client(
            sqs::client(&self.settings).await,
            self.queues.clone(),
            &self.settings,
        ))
    }

    async fn unreachable(&self) -> Arc<dyn Delivery> {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let down = SqsQueueSettings {
            endpoint: Some(format!("http://127.0.0.1:{closed}")),
            ..self.settings.clone()
        };
        Arc::new(SqsDelivery::with_client(
            sqs::client(&down).await,
            self.queues.clone(),
            &down,
        ))
    }

    async fn inject(&self, body: &str) {
        self.raw
            .send_message()
            .queue_url(&self.queues.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }

    async fn outstanding(&self) -> u64 {
        self.messages_in(&self.queues.queue_url).await
    }

    async fn dead_letters(&self) -> Vec<(String, String)> {
        let mut letters = Vec::new();
        while let Some(letter) = self
            .raw_receive(&self.queues.dlq_url, 60, Duration::ZERO)
            .await
        {
            letters.push(letter);
        }
        letters
    }
}

/// Fresh queues over a fresh SQLite ledger, and a second ledger on the same database.
async fn sqs_delivery() -> Option<DeliveryUnderTest> {
    let endpoint = endpoint()?;
    let (ledger, db) = sqlite_ledger().await;
    let other = SqliteStore::open(&db.1.path().join("docent.db"), 4, Duration::from_secs(5))
        .await
        .expect("open the database again");
    let other_ledger = Arc::new(SqliteQueue::new(
        other.pool().clone(),
        CONTRACT_MAX_ATTEMPTS,
        backoff(),
    ));
    let broker = SqsBroker::new(&endpoint, "delivery").await;
    Some(DeliveryUnderTest::new(
        broker,
        ledger,
        other_ledger,
        (other, db),
    ))
}

mod delivery {
    docent_testkit::delivery_contract_tests!(optional super::sqs_delivery);
}

// ---------------------------------------------------------------------------------------------
// SQS-specific behaviour
// ---------------------------------------------------------------------------------------------

/// The redrive policy is in place: a message received `max_attempts + 1` times without anyone
/// handling it is moved to the dead-letter queue by SQS itself. The task, still pending in the
/// ledger, has lost its delivery; the sweep sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_redrives_unhandled_messages_and_the_sweep_sends_lost_tasks_again() {
    let Some(endpoint) = endpoint() else { return };
    let (ledger, _db) = sqlite_ledger().await;
    let broker = SqsBroker::new(&endpoint, "redrive").await;
    let q = DeliveryQueue::new(
        ledger,
        broker.connect().await,
        backoff(),
        Duration::from_secs(1),
    );
    assert_eq!(broker.queues.max_receive_count, CONTRACT_MAX_ATTEMPTS + 1);
    let tenant = TenantId::new();
    let t = q.enqueue(tenant, new_task()).await.unwrap();
    let queue_url = broker.queues.queue_url.clone();
    for n in 1..=broker.queues.max_receive_count {
        let body = broker
            .raw_receive(&queue_url, 1, Duration::from_secs(3))
            .await;
        assert_eq!(
            body.as_ref().and_then(|(b, _)| task_in(b)),
            Some(t.id),
            "receive {n}"
        );
    }
    assert_eq!(
        broker
            .raw_receive(&queue_url, 1, Duration::from_millis(1500))
            .await,
        None,
        "redriven instead of received again"
    );
    let dead: Vec<_> = broker
        .dead_letters()
        .await
        .iter()
        .filter_map(|(b, _)| task_in(b))
        .collect();
    assert_eq!(dead, vec![t.id]);
    assert_eq!(
        q.get(tenant, t.id).await.unwrap().status,
        TaskStatus::Pending
    );

    // Runnable for longer than `republish_after` with no message: sent again.
    assert_eq!(q.sweep().await.unwrap(), 1);
    let l = q.lease("w", LONG).await.unwrap().expect("sent again");
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    assert!(
        q.complete(&l, TaskStatus::Completed, Default::default())
            .await
            .unwrap()
    );
    assert_eq!(q.sweep().await.unwrap(), 0, "nothing left to send");
}

/// Heartbeats keep the message itself hidden in SQS (a raw receive gets nothing) past the
/// visibility it was received with.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_keep_the_message_hidden_in_sqs() {
    let Some(endpoint) = endpoint() else { return };
    let (ledger, _db) = sqlite_ledger().await;
    let broker = SqsBroker::new(&endpoint, "heartbeat").await;
    let q = queue(
        ledger,
        SqsDelivery::with_client(
            sqs::client(&broker.settings).await,
            broker.queues.clone(),
            &broker.settings,
        ),
    );
    let t = q.enqueue(TenantId::new(), new_task()).await.unwrap();
    let vis = Duration::from_secs(2);
    let l = q.lease("w", vis).await.unwrap().expect("leased");
    assert_eq!(l.task.id, t.id);
    let started = tokio::time::Instant::now();
    while started.elapsed() < vis * 2 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        q.heartbeat(&l, vis).await.unwrap();
        assert_eq!(
            broker
                .raw_receive(&broker.queues.queue_url, 1, Duration::ZERO)
                .await,
            None,
            "the message is hidden"
        );
    }
}

/// `connect` without `create_queues` needs the queues to exist (a retryable error naming the
/// setting otherwise) and reads the redrive policy; with it, it creates them idempotently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_creates_or_resolves_the_queues() {
    let Some(endpoint) = endpoint() else { return };
    let name = fresh_name("connect");
    let existing = SqsQueueSettings {
        create_queues: false,
        ..settings(&endpoint, &name)
    };
    let err = SqsDelivery::connect(&existing, 3).await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable);
    assert!(err.chain().contains("create_queues"), "{err:?}");

    let created = SqsDelivery::connect(&settings(&endpoint, &name), CONTRACT_MAX_ATTEMPTS)
        .await
        .expect("create the queues");
    let _cleanup = DeleteQueues {
        settings: existing.clone(),
        queues: created.queues().clone(),
    };
    assert_eq!(
        created.queues().max_receive_count,
        CONTRACT_MAX_ATTEMPTS + 1
    );
    let again = SqsDelivery::connect(&settings(&endpoint, &name), 3)
        .await
        .expect("creating again is a no-op");
    assert_eq!(again.queues(), created.queues());
    let resolved = SqsDelivery::connect(&existing, 3)
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
