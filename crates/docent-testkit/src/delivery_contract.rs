//! The [`Delivery`] contract: what every broker transport (SQS, a Redis Stream) must show under
//! the ledger-backed [`DeliveryQueue`], written once against the port. The
//! [`queue_contract`](crate::queue_contract) holds the queue to the [`TaskQueue`] port; this
//! suite adds what only a broker can get wrong: deliveries of dead workers, heartbeats past the
//! visibility a delivery was received with, an unreachable broker, duplicate and foreign
//! deliveries, several processes on one queue, and that nothing is left behind.
//!
//! # Running it
//!
//! A transport's test file provides a factory returning a future of
//! `Option<`[`DeliveryUnderTest`]`>` (`None`: the broker is not available here, after printing
//! why): a fresh, empty queue on the broker ([`Broker`] connects to it and looks inside), a
//! fresh ledger built with [`CONTRACT_MAX_ATTEMPTS`](crate::CONTRACT_MAX_ATTEMPTS), and a second
//! ledger on the same database through a pool of its own (another process). Then:
//!
//! ```ignore
//! docent_testkit::delivery_contract_tests!(optional my_transport_factory);
//! ```
//!
//! Transports must answer "nothing to lease" at once in these tests (no long poll or blocking
//! read), and count time in ticks of at most one second.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docent_domain::ports::{
    Backoff, Delivery, FailOutcome, Heartbeat, Lease, TaskLedger, TaskQueue,
};
use docent_domain::{
    Code, ErrorInfo, NewTask, PageRequest, TaskFilter, TaskId, TaskKind, TaskStatus, TenantId,
};
use docent_queue::DeliveryQueue;

use crate::CONTRACT_MAX_ATTEMPTS;

/// The broker under test, seen from outside the queue.
#[async_trait]
pub trait Broker: Send + Sync {
    /// A new connection to the queue under test: another process, as far as the broker can
    /// tell.
    async fn connect(&self) -> Arc<dyn Delivery>;
    /// A connection to the same queue through an address where nothing listens.
    async fn unreachable(&self) -> Arc<dyn Delivery>;
    /// Puts a delivery with `body` into the queue, as another program might.
    async fn inject(&self, body: &str);
    /// Deliveries the broker still holds: waiting, in flight and deferred.
    async fn outstanding(&self) -> u64;
    /// The deliveries in the dead-letter queue: body and reason.
    async fn dead_letters(&self) -> Vec<(String, String)>;
}

/// A fresh queue on a broker, handed to one contract case.
pub struct DeliveryUnderTest {
    /// The broker.
    pub broker: Box<dyn Broker>,
    /// The ledger, on a fresh database.
    pub ledger: Arc<dyn TaskLedger>,
    /// A ledger on the same database through a pool of its own (another process).
    pub other_ledger: Arc<dyn TaskLedger>,
    /// Resources kept alive while the case runs (databases, temporary directories).
    pub guard: Box<dyn Any + Send + Sync>,
}

impl DeliveryUnderTest {
    /// Wraps a broker, the two ledgers and the resources they depend on.
    pub fn new(
        broker: impl Broker + 'static,
        ledger: Arc<dyn TaskLedger>,
        other_ledger: Arc<dyn TaskLedger>,
        guard: impl Any + Send + Sync,
    ) -> Self {
        Self {
            broker: Box::new(broker),
            ledger,
            other_ledger,
            guard: Box::new(guard),
        }
    }

    /// A queue of a process with its own broker connection, over `ledger`, sending lost
    /// deliveries again after `republish_after`.
    async fn process(
        &self,
        ledger: &Arc<dyn TaskLedger>,
        republish_after: Duration,
    ) -> Arc<DeliveryQueue> {
        let delivery = self.broker.connect().await;
        Arc::new(DeliveryQueue::new(
            ledger.clone(),
            delivery,
            backoff(),
            republish_after,
        ))
    }

    async fn queue(&self) -> Arc<DeliveryQueue> {
        self.process(&self.ledger, NO_REPUBLISH).await
    }

    /// A queue of another process: its own broker connection and database pool.
    async fn other_process(&self) -> Arc<DeliveryQueue> {
        self.process(&self.other_ledger, NO_REPUBLISH).await
    }
}

impl Debug for DeliveryUnderTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryUnderTest").finish_non_exhaustive()
    }
}

/// The list of cases, in one place.
#[doc(hidden)]
#[macro_export]
macro_rules! __delivery_contract_cases {
    ($factory:expr) => {
        $crate::__delivery_contract_emit! {
            [$factory]
            worker_deaths_end_in_the_dead_letter_queue,
            a_poison_task_ends_in_the_dead_letter_queue,
            heartbeats_keep_the_delivery_past_its_visibility,
            status_queries_work_while_the_broker_is_unreachable,
            duplicate_and_foreign_deliveries_are_harmless,
            two_processes_share_one_queue,
            many_workers_in_two_processes_run_each_task_once,
            finished_and_released_tasks_leave_no_stale_deliveries,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __delivery_contract_emit {
    ([$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let make = $factory;
                // `None`: the broker is not available here (the factory said why).
                if let Some(d) = make().await {
                    $crate::delivery_contract::$case(d).await;
                }
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per [`Delivery`] contract case, each building a fresh
/// queue with `factory` (callable as `factory()`, returning a future of
/// `Option<DeliveryUnderTest>`). Use it at module level of a test file.
#[macro_export]
macro_rules! delivery_contract_tests {
    (optional $factory:expr $(,)?) => {
        $crate::__delivery_contract_cases!($factory);
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Long enough never to lapse during a case.
const LONG: Duration = Duration::from_secs(60);
/// No re-publishing within a case, unless it asks.
const NO_REPUBLISH: Duration = Duration::from_secs(600);

/// A small retry backoff so retry cases stay fast.
fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

/// A task with no document, collection or payload.
pub fn new_task() -> NewTask {
    NewTask {
        kind: TaskKind::IngestDocument,
        document_id: None,
        collection_id: None,
        max_attempts: None,
        payload: serde_json::Value::Null,
        traceparent: None,
    }
}

/// The body of a delivery of `task`, as the queue writes it.
pub fn body_of(task: TaskId, tenant: TenantId) -> String {
    serde_json::json!({"task_id": task, "tenant_id": tenant}).to_string()
}

/// The task a delivery's body names.
pub fn task_in(body: &str) -> Option<TaskId> {
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

/// Sleeps until just past `t` (a lease's expiry).
pub async fn sleep_past(t: DateTime<Utc>) {
    let left = (t - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(100)).await;
}

async fn complete(q: &dyn TaskQueue, l: &Lease) -> bool {
    q.complete(l, TaskStatus::Completed, Default::default())
        .await
        .expect("complete")
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// A task whose worker dies on every attempt (kill -9: no completion, no heartbeat, no
/// release) is delivered `max_attempts` times, then dead-lettered as `worker_lost`, and its
/// delivery ends in the dead-letter queue; an operator retry delivers it again.
pub async fn worker_deaths_end_in_the_dead_letter_queue(d: DeliveryUnderTest) {
    let q = d.queue().await;
    let tenant = TenantId::new();
    let t = q.enqueue(tenant, new_task()).await.unwrap();
    let mut last = None;
    for attempt in 1..=CONTRACT_MAX_ATTEMPTS {
        let l = lease_within(
            &*q,
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
        q.lease("survivor", LONG).await.unwrap().is_none(),
        "out of attempts: not delivered again"
    );
    let stored = q.get(tenant, t.id).await.unwrap();
    assert_eq!(stored.status, TaskStatus::Failed);
    assert!(stored.dead_lettered);
    assert_eq!(stored.attempts, CONTRACT_MAX_ATTEMPTS);
    assert_eq!(
        stored.error.map(|e| e.code),
        Some(Code::WorkerLost.as_str().to_owned())
    );
    let dead = d.broker.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(task_in(&dead[0].0), Some(t.id));
    assert_eq!(dead[0].1, "dead_lettered");
    assert_eq!(d.broker.outstanding().await, 0);

    // An operator retry sends it again.
    q.retry(tenant, t.id).await.unwrap();
    let l = lease_within(&*q, "fixed", LONG, Duration::from_secs(3)).await;
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    assert!(complete(&*q, &l).await);
    assert_eq!(d.broker.outstanding().await, 0);
}

/// A poison task (failing retryably on every attempt) waits deferred between attempts — one
/// delivery, leased by nobody before its backoff ends — then lands in the dead-letter queue
/// after `max_attempts`.
pub async fn a_poison_task_ends_in_the_dead_letter_queue(d: DeliveryUnderTest) {
    let q = d.queue().await;
    let tenant = TenantId::new();
    let t = q.enqueue(tenant, new_task()).await.unwrap();
    for attempt in 1..=CONTRACT_MAX_ATTEMPTS {
        let l = lease_within(&*q, "w", LONG, Duration::from_secs(5)).await;
        assert_eq!((l.task.id, l.task.attempts), (t.id, attempt));
        let error = ErrorInfo {
            code: "extraction_failed".into(),
            message: "boom".into(),
        };
        let outcome = q.fail(&l, error, true, None).await.unwrap();
        if attempt < CONTRACT_MAX_ATTEMPTS {
            let FailOutcome::Retrying { at } = outcome else {
                panic!("{outcome:?}");
            };
            assert_eq!(
                d.broker.outstanding().await,
                1,
                "deferred until its backoff ends"
            );
            if at > Utc::now() + chrono::Duration::milliseconds(300) {
                assert!(q.lease("eager", LONG).await.unwrap().is_none());
            }
        } else {
            assert_eq!(outcome, FailOutcome::DeadLettered);
        }
    }
    let stored = q.get(tenant, t.id).await.unwrap();
    assert!(stored.dead_lettered);
    let dead = d.broker.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(task_in(&dead[0].0), Some(t.id));
    assert_eq!(dead[0].1, "dead_lettered");
    assert_eq!(d.broker.outstanding().await, 0);
}

/// Heartbeats keep the delivery from every other receiver (this process and others) long past
/// the visibility it was leased with; once they stop it is delivered again.
pub async fn heartbeats_keep_the_delivery_past_its_visibility(d: DeliveryUnderTest) {
    let q = d.queue().await;
    let other = d.other_process().await;
    let tenant = TenantId::new();
    let t = q.enqueue(tenant, new_task()).await.unwrap();
    let vis = Duration::from_secs(2);
    let l = q.lease("w", vis).await.unwrap().expect("leased");
    let started = tokio::time::Instant::now();
    while started.elapsed() < vis * 2 + Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(q.heartbeat(&l, vis).await.unwrap(), Heartbeat::Extended);
        assert!(other.lease("other", LONG).await.unwrap().is_none());
    }
    let stored = q.get(tenant, t.id).await.unwrap();
    assert_eq!(stored.attempts, 1);
    assert_eq!(d.broker.outstanding().await, 1);
    sleep_past(stored.lease_expires_at.unwrap()).await;
    let again = lease_within(&*other, "other", LONG, Duration::from_secs(3)).await;
    assert_eq!((again.task.id, again.task.attempts), (t.id, 2));
    assert_eq!(q.heartbeat(&l, vis).await.unwrap(), Heartbeat::Lost);
    assert!(complete(&*other, &again).await);
}

/// With the broker unreachable, status queries (`get`, `list`, `depth`) still answer from the
/// database; `ping` and `lease` fail as retryable `service_unavailable`; an upload's `enqueue`
/// is recorded (its delivery is lost, and the sweep sends it once the broker is back); a
/// running task's heartbeat and completion go through the database.
pub async fn status_queries_work_while_the_broker_is_unreachable(d: DeliveryUnderTest) {
    let republish_after = Duration::from_secs(2);
    let q = d.process(&d.ledger, republish_after).await;
    let down = DeliveryQueue::new(
        d.ledger.clone(),
        d.broker.unreachable().await,
        backoff(),
        republish_after,
    );
    let tenant = TenantId::new();
    let a = q.enqueue(tenant, new_task()).await.unwrap();
    let running = q.lease("w", LONG).await.unwrap().expect("leased");
    let b = q.enqueue(tenant, new_task()).await.unwrap();

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
        .expect("recorded without the broker");
    assert_eq!(
        down.get(tenant, c.id).await.unwrap().status,
        TaskStatus::Pending
    );
    assert_eq!(
        down.heartbeat(&running, LONG).await.unwrap(),
        Heartbeat::Extended
    );
    assert!(complete(&down, &running).await);
    assert_eq!(
        q.get(tenant, a.id).await.unwrap().status,
        TaskStatus::Completed
    );

    // The broker is back: `b` has its delivery; `c` lost its own and is sent again by the
    // sweep once it has waited `republish_after`.
    let l = lease_within(&*q, "w", LONG, Duration::from_secs(3)).await;
    assert_eq!(l.task.id, b.id);
    assert!(complete(&*q, &l).await);
    let l = lease_within(&*q, "w", LONG, Duration::from_secs(8)).await;
    assert_eq!((l.task.id, l.task.attempts), (c.id, 1));
    assert!(complete(&*q, &l).await);
    // `a`'s delivery was left behind by the completion through the unreachable broker; it
    // comes back when its lease would have lapsed and is dropped then, not run.
    assert_eq!(q.sweep().await.unwrap(), 0, "nothing left to send");
}

/// Duplicate deliveries of a task (brokers deliver at least once; a sweep or an operator may
/// send one more) never lease it twice: while it runs they are deferred until its lease ends,
/// afterwards they are dropped. A delivery of an unknown task (or of a task under another
/// tenant) is dropped; one that names no task is moved to the dead-letter queue.
pub async fn duplicate_and_foreign_deliveries_are_harmless(d: DeliveryUnderTest) {
    let q = d.queue().await;
    let tenant = TenantId::new();
    let t = q.enqueue(tenant, new_task()).await.unwrap();
    d.broker.inject(&body_of(t.id, tenant)).await;
    d.broker.inject(&body_of(t.id, tenant)).await;
    d.broker.inject(&body_of(TaskId::new(), tenant)).await;
    d.broker.inject(&body_of(t.id, TenantId::new())).await;
    d.broker.inject("not a task").await;

    let vis = Duration::from_secs(2);
    let l = q.lease("w1", vis).await.unwrap().expect("leased");
    assert_eq!((l.task.id, l.task.attempts), (t.id, 1));
    for _ in 0..4 {
        assert!(q.lease("w2", LONG).await.unwrap().is_none());
    }
    let stored = q.get(tenant, t.id).await.unwrap();
    assert_eq!(
        (stored.attempts, stored.lease_owner.as_deref()),
        (1, Some("w1"))
    );
    assert!(complete(&*q, &l).await);

    // The duplicates come back when the lease would have ended, and are dropped.
    sleep_past(l.expires_at).await;
    for _ in 0..3 {
        assert!(q.lease("w3", LONG).await.unwrap().is_none());
    }
    assert_eq!(q.get(tenant, t.id).await.unwrap().attempts, 1);
    assert_eq!(d.broker.outstanding().await, 0);
    assert_eq!(
        d.broker.dead_letters().await,
        vec![("not a task".to_owned(), "not_a_task".to_owned())]
    );
}

/// Two processes (separate broker connections, separate database pools on one database) share
/// the queue: a task enqueued by one is leased by the other, its status is the same in both,
/// and a lease lapsing in one is taken over by the other.
pub async fn two_processes_share_one_queue(d: DeliveryUnderTest) {
    let a = d.queue().await;
    let b = d.other_process().await;
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
    let again = lease_within(&*a, "a-worker", LONG, Duration::from_secs(3)).await;
    assert_eq!((again.task.id, again.task.attempts), (t.id, 2));
    assert!(!complete(&*b, &l).await);
    assert!(complete(&*a, &again).await);
    assert_eq!(
        b.get(tenant, t.id).await.unwrap().status,
        TaskStatus::Completed
    );
}

/// Many workers in two processes drain a batch of tasks: every task runs exactly once, and the
/// broker holds nothing afterwards.
pub async fn many_workers_in_two_processes_run_each_task_once(d: DeliveryUnderTest) {
    let q = d.queue().await;
    let other = d.other_process().await;
    let tenant = TenantId::new();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(q.enqueue(tenant, new_task()).await.unwrap().id);
    }
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let q: Arc<dyn TaskQueue> = if w % 2 == 0 { q.clone() } else { other.clone() };
        workers.spawn(async move {
            let mut ran = Vec::new();
            let mut idle = 0;
            while idle < 5 {
                match q.lease(&format!("w{w}"), LONG).await.unwrap() {
                    Some(l) => {
                        idle = 0;
                        assert!(complete(&*q, &l).await);
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
        assert_eq!(q.get(tenant, id).await.unwrap().attempts, 1);
    }
    assert_eq!(d.broker.outstanding().await, 0);
}

/// Finished deliveries leave nothing behind; a released task gets a fresh delivery (the old
/// one ended) and keeps its attempt count.
pub async fn finished_and_released_tasks_leave_no_stale_deliveries(d: DeliveryUnderTest) {
    let q = d.queue().await;
    let tenant = TenantId::new();
    for _ in 0..3 {
        q.enqueue(tenant, new_task()).await.unwrap();
    }
    let first = q.lease("w", LONG).await.unwrap().expect("leased");
    assert!(q.release(&first).await.unwrap());
    assert_eq!(d.broker.outstanding().await, 3);
    let mut ran = 0;
    while let Some(l) = q.lease("w", LONG).await.unwrap() {
        assert_eq!(l.task.attempts, 1);
        assert!(complete(&*q, &l).await);
        ran += 1;
    }
    assert_eq!(ran, 3);
    assert_eq!(d.broker.outstanding().await, 0);
}
