//! The [`TaskQueue`] contract: the behaviour every queue backend (the SQL table today;
//! PostgreSQL, Redis or SQS later) must show, written once against the port.
//!
//! # Running it
//!
//! A backend provides a *factory*: something callable as `make()` returning a future of a
//! [`QueueUnderTest`]. Every call must build a **fresh, empty, isolated** queue — cases lease
//! "whatever is runnable" and count tasks across tenants, so they must be the queue's only users.
//! The factory must also:
//!
//! - use [`CONTRACT_MAX_ATTEMPTS`] as the queue's default attempt limit;
//! - use a small retry backoff (base around 100 ms, max at most 1 s), so cases that wait for
//!   retries stay fast;
//! - use [`CONTRACT_MAX_RUNNING_PER_TENANT`] as the fair-share cap (`queue.max_running_per_tenant`,
//!   the queues' default).
//!
//! Then either expand [`queue_contract_tests!`](crate::queue_contract_tests) in a test file,
//! which emits one `#[tokio::test]` per case so a failure names its case (the calling crate needs
//! `tokio` with the `macros` and `rt-multi-thread` features):
//!
//! ```ignore
//! docent_testkit::queue_contract_tests!(my_backend_factory);
//! ```
//!
//! or call [`queue_contract_suite`] (every case, one after the other) or a single case function
//! from a test of your own.
//!
//! # Time
//!
//! Queue times are wall-clock: leases and backoff are real durations and there is no mock clock.
//! The cases use visibility timeouts of a few hundred milliseconds and sleep just past the
//! instants the queue reports (`Lease::expires_at`, `FailOutcome::Retrying::at`), so the whole
//! suite takes a few seconds.

use std::any::Any;
use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use docent_domain::ports::{FailOutcome, Heartbeat, Lease, TaskQueue};
use docent_domain::{
    Code, CollectionId, DocumentId, ErrorInfo, NewTask, PageRequest, Progress, QueueDepth, Result,
    Task, TaskFilter, TaskId, TaskKind, TaskStatus, TenantId,
};

/// The default attempt limit every factory must build its queue with (`NewTask::max_attempts:
/// None` means this many leases before dead-lettering).
pub const CONTRACT_MAX_ATTEMPTS: u32 = 3;

/// The fair-share cap every factory must build its queue with: a tenant holding this many live
/// leases gets no new one while a tenant under it has a runnable task.
pub const CONTRACT_MAX_RUNNING_PER_TENANT: u32 = 1;

/// A queue handed to one contract case, plus whatever must stay alive while it is used.
pub struct QueueUnderTest {
    /// The queue.
    pub queue: Arc<dyn TaskQueue>,
    /// Resources the backend needs kept alive (a temporary directory, a container handle, a
    /// connection pool); dropped when the case ends.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl QueueUnderTest {
    /// Wraps a queue and the resources it depends on.
    pub fn new(queue: Arc<dyn TaskQueue>, guard: impl Any + Send + Sync) -> Self {
        Self {
            queue,
            guard: Box::new(guard),
        }
    }
}

impl Debug for QueueUnderTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueUnderTest").finish_non_exhaustive()
    }
}

/// The list of cases, in one place: the `tests` mode emits a `#[tokio::test]` per case, the
/// `suite` mode awaits each in turn.
#[doc(hidden)]
#[macro_export]
macro_rules! __queue_contract_cases {
    ($mode:ident $($args:tt)*) => {
        $crate::__queue_contract_emit! {
            $mode [$($args)*]
            enqueue_shows_pending_in_get_and_list,
            list_filters_by_status_kind_document_collection_and_dead_letter,
            list_paginates_newest_first_without_gaps_or_duplicates,
            other_tenants_ids_are_not_found,
            lease_hands_out_processing_task_with_one_attempt,
            lease_is_exclusive_while_visible,
            concurrent_leases_never_share_a_task,
            expired_lease_is_redelivered_and_old_lease_is_dead,
            heartbeat_extends_the_lease,
            complete_records_the_result_and_never_redelivers,
            progress_persists_status_and_counters,
            retryable_failure_backs_off_then_redelivers,
            non_retryable_failure_fails_for_good,
            dead_letters_after_max_attempts_and_retry_revives,
            lapsed_last_attempt_is_dead_lettered_as_worker_lost,
            cancel_pending_task_is_immediate,
            cancel_running_task_is_cooperative,
            cancel_requested_task_whose_lease_lapses_is_cancelled,
            cancel_and_retry_conflict_with_wrong_states,
            release_returns_the_task_without_counting_the_attempt,
            release_of_a_cancel_requested_task_cancels_it,
            depth_counts_by_status_across_tenants,
            depth_tells_how_long_the_oldest_runnable_task_waited,
            trace_context_travels_with_the_task,
            fair_lease_serves_a_waiting_tenant_before_a_busy_one,
            tenant_over_its_cap_yields_and_gets_no_lease_while_another_waits,
            a_tenant_alone_gets_every_worker,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __queue_contract_emit {
    (tests [$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let make = $factory;
                $crate::queue_contract::$case(make().await).await;
            }
        )*
    };
    (optional_tests [$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let make = $factory;
                // `None`: the backend is not available here (the factory said why).
                if let Some(queue) = make().await {
                    $crate::queue_contract::$case(queue).await;
                }
            }
        )*
    };
    (suite [$make:expr] $($case:ident),* $(,)?) => {
        $(
            eprintln!("queue contract: {}", stringify!($case));
            $crate::queue_contract::$case(($make)().await).await;
        )*
    };
}

/// Expands to one `#[tokio::test]` per [`TaskQueue`] contract case, each building a fresh queue
/// with `factory` (an expression callable as `factory()` returning a future of
/// [`QueueUnderTest`], e.g. the path of an `async fn`). Use it at module level of a test file.
///
/// `queue_contract_tests!(optional factory)` takes a factory returning a future of
/// `Option<QueueUnderTest>` instead: each case passes without running when it gives `None` — for
/// backends that need a server named by an environment variable (the factory should print why).
#[macro_export]
macro_rules! queue_contract_tests {
    (optional $factory:expr $(,)?) => {
        $crate::__queue_contract_cases!(optional_tests $factory);
    };
    ($factory:expr $(,)?) => {
        $crate::__queue_contract_cases!(tests $factory);
    };
}

/// Runs every contract case in turn, each against a fresh queue from `make`. Panics on the first
/// broken case, naming it on stderr.
pub async fn queue_contract_suite<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = QueueUnderTest>,
{
    crate::__queue_contract_cases!(suite make);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Long enough never to lapse during a case.
const LONG: Duration = Duration::from_secs(60);
/// Short visibility for cases that let a lease lapse.
const SHORT: Duration = Duration::from_millis(300);
/// Slack added when sleeping past an instant the queue reported.
const MARGIN: Duration = Duration::from_millis(60);
/// How long to wait at most for a retry to become due.
const RETRY_DEADLINE: Duration = Duration::from_secs(5);

fn new_task() -> NewTask {
    task_for(Some(DocumentId::new()), Some(CollectionId::new()))
}

fn task_for(document_id: Option<DocumentId>, collection_id: Option<CollectionId>) -> NewTask {
    NewTask {
        kind: TaskKind::IngestDocument,
        document_id,
        collection_id,
        max_attempts: None,
        payload: serde_json::Value::Null,
        traceparent: None,
    }
}

fn error_info(code: Code) -> ErrorInfo {
    ErrorInfo {
        code: code.as_str().to_owned(),
        message: format!("contract test failure ({code})"),
    }
}

fn progress(total: u64, done: u64, failed: u64) -> Progress {
    Progress {
        chunks_total: total,
        chunks_done: done,
        rows_failed: failed,
    }
}

async fn sleep_past(t: DateTime<Utc>) {
    let left = (t - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + MARGIN).await;
}

async fn enqueue(q: &dyn TaskQueue, tenant: TenantId, new: NewTask) -> Task {
    q.enqueue(tenant, new).await.expect("enqueue")
}

async fn get(q: &dyn TaskQueue, tenant: TenantId, id: TaskId) -> Task {
    q.get(tenant, id).await.expect("get")
}

async fn must_lease(q: &dyn TaskQueue, worker: &str, visibility: Duration, why: &str) -> Lease {
    q.lease(worker, visibility)
        .await
        .expect("lease")
        .unwrap_or_else(|| panic!("expected a lease: {why}"))
}

async fn assert_no_lease(q: &dyn TaskQueue, why: &str) {
    if let Some(l) = q.lease("intruder", LONG).await.expect("lease") {
        panic!(
            "expected no task to be leasable ({why}), but got {:?} (attempts {})",
            l.task.id, l.task.attempts
        );
    }
}

/// Polls until a task can be leased (a retry becoming due), failing after [`RETRY_DEADLINE`].
async fn lease_when_due(q: &dyn TaskQueue, worker: &str, visibility: Duration) -> Lease {
    let deadline = tokio::time::Instant::now() + RETRY_DEADLINE;
    loop {
        if let Some(l) = q.lease(worker, visibility).await.expect("lease") {
            return l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no task became leasable within {RETRY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Leases like a worker does: polls until a lease comes (a broker may answer `None` while it
/// defers deliveries refused for fairness), failing after [`RETRY_DEADLINE`].
async fn lease_as_worker(q: &dyn TaskQueue, worker: &str) -> Lease {
    lease_when_due(q, worker, LONG).await
}

#[track_caller]
fn assert_code<T: Debug>(res: Result<T>, code: Code, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.code, code, "{what}: wrong error code ({e:?})"),
    }
}

/// Every task id of `tenant` matching `filter`, following cursors, in listed order.
async fn list_ids(q: &dyn TaskQueue, tenant: TenantId, filter: TaskFilter) -> Vec<TaskId> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = q
            .list(tenant, filter.clone(), PageRequest { limit: 100, cursor })
            .await
            .expect("list");
        out.extend(page.items.iter().map(|t| t.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn sorted(mut ids: Vec<TaskId>) -> Vec<TaskId> {
    ids.sort();
    ids
}

fn count(depth: &QueueDepth, status: TaskStatus) -> u64 {
    depth
        .by_status
        .iter()
        .filter(|(s, _)| *s == status)
        .map(|(_, n)| *n)
        .sum()
}

fn close_ms(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_milliseconds().abs() <= 1
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// `enqueue` returns the task as stored: `pending`, no attempts, the default (or overridden)
/// attempt limit, no lease, no error; `get` and `list` show the same.
pub async fn enqueue_shows_pending_in_get_and_list(qut: QueueUnderTest) {
    let q = &*qut.queue;
    q.ping().await.expect("ping");
    let tenant = TenantId::new();
    let new = new_task();
    let before = Utc::now() - chrono::Duration::seconds(1);
    let t = enqueue(q, tenant, new.clone()).await;
    assert_eq!(t.tenant_id, tenant);
    assert_eq!(t.kind, TaskKind::IngestDocument);
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.document_id, new.document_id);
    assert_eq!(t.collection_id, new.collection_id);
    assert_eq!(t.attempts, 0);
    assert_eq!(
        t.max_attempts, CONTRACT_MAX_ATTEMPTS,
        "factories must use CONTRACT_MAX_ATTEMPTS"
    );
    assert_eq!(t.lease_owner, None);
    assert_eq!(t.lease_expires_at, None);
    assert_eq!(t.progress, Progress::default());
    assert_eq!(t.error, None);
    assert!(!t.dead_lettered);
    assert!(!t.cancel_requested);
    assert_eq!(t.started_at, None);
    assert_eq!(t.finished_at, None);
    assert!(
        t.created_at >= before,
        "created_at {} is not recent",
        t.created_at
    );
    assert!(
        t.run_after <= Utc::now() + chrono::Duration::seconds(1),
        "a new task is due at once"
    );

    assert_eq!(
        get(q, tenant, t.id).await,
        t,
        "get returns what enqueue returned"
    );

    let page = q
        .list(tenant, TaskFilter::default(), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0], t);
    assert_eq!(page.next_cursor, None);

    let custom = enqueue(
        q,
        tenant,
        NewTask {
            max_attempts: Some(7),
            ..new_task()
        },
    )
    .await;
    assert_eq!(
        custom.max_attempts, 7,
        "NewTask::max_attempts overrides the default"
    );
    let bare = enqueue(q, tenant, task_for(None, None)).await;
    assert_eq!((bare.document_id, bare.collection_id), (None, None));
    assert_eq!(get(q, tenant, bare.id).await.status, TaskStatus::Pending);
    assert_eq!(list_ids(q, tenant, TaskFilter::default()).await.len(), 3);
}

/// `list` filters by status, kind, document, collection and dead-letter flag, alone and combined.
pub async fn list_filters_by_status_kind_document_collection_and_dead_letter(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let (d1, d2, d3) = (DocumentId::new(), DocumentId::new(), DocumentId::new());
    let (c1, c2) = (CollectionId::new(), CollectionId::new());

    // Each task is leased while it is the only runnable one, so we know which one we get.
    let completed = enqueue(q, tenant, task_for(Some(d1), Some(c1))).await;
    let l = must_lease(q, "w", LONG, "completed").await;
    assert_eq!(l.task.id, completed.id);
    assert!(
        q.complete(&l, TaskStatus::Completed, progress(1, 1, 0))
            .await
            .unwrap()
    );

    let failed = enqueue(q, tenant, task_for(Some(d2), Some(c1))).await;
    let l = must_lease(q, "w", LONG, "failed").await;
    assert_eq!(l.task.id, failed.id);
    assert_eq!(
        q.fail(&l, error_info(Code::NoText), false, None)
            .await
            .unwrap(),
        FailOutcome::Failed
    );

    let dead = enqueue(
        q,
        tenant,
        NewTask {
            max_attempts: Some(1),
            ..task_for(Some(d1), Some(c1))
        },
    )
    .await;
    let l = must_lease(q, "w", LONG, "dead").await;
    assert_eq!(l.task.id, dead.id);
    assert_eq!(
        q.fail(&l, error_info(Code::Unavailable), true, None)
            .await
            .unwrap(),
        FailOutcome::DeadLettered
    );

    let running = enqueue(q, tenant, task_for(Some(d3), Some(c2))).await;
    let l = must_lease(q, "w", LONG, "running").await;
    assert_eq!(l.task.id, running.id);

    let pending_a = enqueue(q, tenant, task_for(Some(d1), Some(c1))).await;
    let pending_b = enqueue(q, tenant, task_for(Some(d3), Some(c2))).await;
    // Noise in another tenant, same document and collection ids.
    enqueue(q, TenantId::new(), task_for(Some(d1), Some(c1))).await;

    let all = [
        completed.id,
        failed.id,
        dead.id,
        running.id,
        pending_a.id,
        pending_b.id,
    ];
    let f = |status, document_id, collection_id, dead_lettered| TaskFilter {
        status,
        kind: None,
        document_id,
        collection_id,
        dead_lettered,
    };
    let cases: Vec<(&str, TaskFilter, Vec<TaskId>)> = vec![
        ("no filter", TaskFilter::default(), all.to_vec()),
        (
            "pending",
            f(Some(TaskStatus::Pending), None, None, None),
            vec![pending_a.id, pending_b.id],
        ),
        (
            "processing",
            f(Some(TaskStatus::Processing), None, None, None),
            vec![running.id],
        ),
        (
            "completed",
            f(Some(TaskStatus::Completed), None, None, None),
            vec![completed.id],
        ),
        (
            "failed",
            f(Some(TaskStatus::Failed), None, None, None),
            vec![failed.id, dead.id],
        ),
        (
            "cancelled",
            f(Some(TaskStatus::Cancelled), None, None, None),
            vec![],
        ),
        (
            "document d1",
            f(None, Some(d1), None, None),
            vec![completed.id, dead.id, pending_a.id],
        ),
        (
            "document d3",
            f(None, Some(d3), None, None),
            vec![running.id, pending_b.id],
        ),
        (
            "unknown document",
            f(None, Some(DocumentId::new()), None, None),
            vec![],
        ),
        (
            "collection c2",
            f(None, None, Some(c2), None),
            vec![running.id, pending_b.id],
        ),
        (
            "collection c1",
            f(None, None, Some(c1), None),
            vec![completed.id, failed.id, dead.id, pending_a.id],
        ),
        (
            "dead-lettered",
            f(None, None, None, Some(true)),
            vec![dead.id],
        ),
        (
            "not dead-lettered",
            f(None, None, None, Some(false)),
            vec![
                completed.id,
                failed.id,
                running.id,
                pending_a.id,
                pending_b.id,
            ],
        ),
        (
            "failed, not dead-lettered",
            f(Some(TaskStatus::Failed), None, None, Some(false)),
            vec![failed.id],
        ),
        (
            "pending document d1",
            f(Some(TaskStatus::Pending), Some(d1), None, None),
            vec![pending_a.id],
        ),
        (
            "document d1 in collection c2",
            f(None, Some(d1), Some(c2), None),
            vec![],
        ),
        (
            "kind ingest_document",
            TaskFilter {
                kind: Some(TaskKind::IngestDocument),
                ..TaskFilter::default()
            },
            all.to_vec(),
        ),
    ];
    for (what, filter, expected) in cases {
        assert_eq!(
            sorted(list_ids(q, tenant, filter).await),
            sorted(expected),
            "filter: {what}"
        );
    }
    let page = q
        .list(
            tenant,
            f(Some(TaskStatus::Processing), None, None, None),
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .all(|t| t.status == TaskStatus::Processing)
    );
}

/// `list` returns newest first, in pages of `limit` linked by `next_cursor`, with no task twice
/// and none missing; the last page has no cursor; a malformed cursor is `invalid_query`.
pub async fn list_paginates_newest_first_without_gaps_or_duplicates(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let other = TenantId::new();
    let mut enqueued = Vec::new();
    for i in 0..7 {
        enqueued.push(enqueue(q, tenant, new_task()).await.id);
        if i % 3 == 0 {
            enqueue(q, other, new_task()).await;
        }
    }
    let newest_first: Vec<TaskId> = enqueued.iter().rev().copied().collect();

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = q
            .list(
                tenant,
                TaskFilter::default(),
                PageRequest {
                    limit: 3,
                    cursor: cursor.clone(),
                },
            )
            .await
            .expect("list page");
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|t| t.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        sizes,
        vec![3, 3, 1],
        "pages of at most 3, the last one without a cursor"
    );
    assert_eq!(seen, newest_first, "every task exactly once, newest first");

    let whole = q
        .list(tenant, TaskFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        whole.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        newest_first
    );
    assert_eq!(
        whole.next_cursor, None,
        "limit 0 means the default page size"
    );

    // An exact multiple of the limit: the cursor chain still ends without an empty detour that
    // loses or repeats items.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = q
            .list(
                tenant,
                TaskFilter::default(),
                PageRequest { limit: 7, cursor },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|t| t.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, newest_first);

    // Pagination composes with a filter.
    let doc = DocumentId::new();
    let mut doc_tasks = Vec::new();
    for _ in 0..3 {
        doc_tasks.push(enqueue(q, tenant, task_for(Some(doc), None)).await.id);
    }
    let filter = TaskFilter {
        document_id: Some(doc),
        ..TaskFilter::default()
    };
    let p1 = q
        .list(
            tenant,
            filter.clone(),
            PageRequest {
                limit: 2,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    let p2 = q
        .list(
            tenant,
            filter,
            PageRequest {
                limit: 2,
                cursor: p1.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.next_cursor, None);
    let got: Vec<TaskId> = p1.items.iter().chain(&p2.items).map(|t| t.id).collect();
    assert_eq!(got, doc_tasks.iter().rev().copied().collect::<Vec<_>>());

    assert_code(
        q.list(
            tenant,
            TaskFilter::default(),
            PageRequest {
                limit: 3,
                cursor: Some("not a cursor".into()),
            },
        )
        .await,
        Code::InvalidQuery,
        "malformed cursor",
    );
}

/// Another tenant's task id behaves exactly like a missing one: `task_not_found` from get, cancel
/// and retry, absent from their list, and left untouched.
pub async fn other_tenants_ids_are_not_found(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let owner = TenantId::new();
    let stranger = TenantId::new();
    let t = enqueue(q, owner, new_task()).await;
    let l = must_lease(q, "w", LONG, "the only task").await;
    assert_eq!(l.task.id, t.id);
    assert!(q.cancel(owner, t.id).await.is_ok());
    assert!(q.cancelled(&l).await.unwrap());
    let done = enqueue(q, owner, new_task()).await;
    // `t` is now cancelled (retryable by its owner), `done` pending (cancellable by its owner).

    for id in [t.id, done.id] {
        assert_code(
            q.get(stranger, id).await,
            Code::TaskNotFound,
            "get from another tenant",
        );
        assert_code(
            q.cancel(stranger, id).await,
            Code::TaskNotFound,
            "cancel from another tenant",
        );
        assert_code(
            q.retry(stranger, id).await,
            Code::TaskNotFound,
            "retry from another tenant",
        );
    }
    assert!(
        list_ids(q, stranger, TaskFilter::default())
            .await
            .is_empty()
    );
    let by_doc = TaskFilter {
        document_id: t.document_id,
        ..TaskFilter::default()
    };
    assert!(list_ids(q, stranger, by_doc).await.is_empty());

    assert_eq!(
        get(q, owner, t.id).await.status,
        TaskStatus::Cancelled,
        "untouched by the stranger"
    );
    assert_eq!(
        get(q, owner, done.id).await.status,
        TaskStatus::Pending,
        "untouched by the stranger"
    );

    let missing = TaskId::new();
    assert_code(
        q.get(owner, missing).await,
        Code::TaskNotFound,
        "get of a missing id",
    );
    assert_code(
        q.cancel(owner, missing).await,
        Code::TaskNotFound,
        "cancel of a missing id",
    );
    assert_code(
        q.retry(owner, missing).await,
        Code::TaskNotFound,
        "retry of a missing id",
    );
}

/// `lease` hands out the task as `processing`, owned by the worker, with one attempt counted and
/// an expiry about `visibility` from now; `get` shows the same.
pub async fn lease_hands_out_processing_task_with_one_attempt(qut: QueueUnderTest) {
    let q = &*qut.queue;
    assert_no_lease(q, "empty queue").await;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let before = Utc::now();
    let l = must_lease(q, "worker-1", LONG, "a pending task").await;
    let after = Utc::now();
    assert_eq!(l.task.id, t.id);
    assert_eq!(l.task.tenant_id, tenant);
    assert_eq!(l.task.status, TaskStatus::Processing);
    assert_eq!(l.task.attempts, 1);
    assert_eq!(l.task.lease_owner.as_deref(), Some("worker-1"));
    assert!(l.task.started_at.is_some());
    assert!(!l.token.is_empty());
    let vis = chrono::Duration::from_std(LONG).unwrap();
    let slack = chrono::Duration::seconds(1);
    assert!(
        l.expires_at >= before + vis - slack && l.expires_at <= after + vis + slack,
        "expires_at {} is not about {LONG:?} from now",
        l.expires_at
    );

    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Processing);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.lease_owner.as_deref(), Some("worker-1"));
    let stored_exp = stored
        .lease_expires_at
        .expect("lease_expires_at is set while leased");
    assert!(
        close_ms(stored_exp, l.expires_at),
        "{stored_exp} vs {}",
        l.expires_at
    );
    assert!(stored.started_at.is_some());
    assert_eq!(stored.finished_at, None);

    assert_eq!(q.heartbeat(&l, LONG).await.unwrap(), Heartbeat::Extended);
}

/// While a lease is valid nobody else gets the task (the visibility timeout).
pub async fn lease_is_exclusive_while_visible(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w1", SHORT * 4, "first lease").await;
    assert_eq!(l.task.id, t.id);
    assert_no_lease(q, "leased and still visible to its holder only").await;
    tokio::time::sleep(SHORT).await;
    assert!(
        Utc::now() < l.expires_at,
        "test too slow to check mid-lease"
    );
    assert_no_lease(q, "half-way through the visibility timeout").await;
    assert_eq!(
        get(q, tenant, t.id).await.attempts,
        1,
        "failed lease calls count no attempt"
    );
}

/// Many workers leasing at once: each task goes to exactly one of them.
pub async fn concurrent_leases_never_share_a_task(qut: QueueUnderTest) {
    const WORKERS: usize = 16;
    let tenant = TenantId::new();

    // One task, many workers.
    let t = enqueue(&*qut.queue, tenant, new_task()).await;
    let got = lease_concurrently(&qut.queue, WORKERS).await;
    assert_eq!(
        got.len(),
        1,
        "exactly one worker gets the single task, got {got:?}"
    );
    assert_eq!(got[0].0, t.id);
    let stored = get(&*qut.queue, tenant, t.id).await;
    assert_eq!(stored.attempts, 1, "losing workers count no attempt");
    assert_eq!(stored.lease_owner.as_deref(), Some(got[0].1.as_str()));

    // Several tasks, more workers than tasks.
    let mut ids = HashSet::new();
    for _ in 0..6 {
        ids.insert(enqueue(&*qut.queue, tenant, new_task()).await.id);
    }
    let got = lease_concurrently(&qut.queue, WORKERS).await;
    let leased: HashSet<TaskId> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        leased.len(),
        got.len(),
        "a task was handed to two workers: {got:?}"
    );
    assert_eq!(leased, ids, "every runnable task is leased exactly once");
    for id in ids {
        assert_eq!(get(&*qut.queue, tenant, id).await.attempts, 1);
    }
}

/// Runs `n` simultaneous lease calls; returns `(task, worker)` for each that got one.
async fn lease_concurrently(queue: &Arc<dyn TaskQueue>, n: usize) -> Vec<(TaskId, String)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let queue = queue.clone();
        let barrier = barrier.clone();
        set.spawn(async move {
            let worker = format!("worker-{i}");
            barrier.wait().await;
            let lease = queue.lease(&worker, LONG).await.expect("concurrent lease");
            lease.map(|l| (l.task.id, worker))
        });
    }
    let mut got = Vec::new();
    while let Some(res) = set.join_next().await {
        got.extend(res.expect("lease task panicked"));
    }
    got
}

/// A lapsed lease is re-delivered with a new token and a second attempt; the old lease can no
/// longer change the task, the new one can.
pub async fn expired_lease_is_redelivered_and_old_lease_is_dead(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let old = must_lease(q, "slow-worker", SHORT, "first delivery").await;
    assert_no_lease(q, "before the visibility timeout").await;
    sleep_past(old.expires_at).await;

    let new = must_lease(
        q,
        "fresh-worker",
        LONG,
        "re-delivery after the lease lapsed",
    )
    .await;
    assert_eq!(new.task.id, t.id);
    assert_eq!(new.task.attempts, 2, "a re-delivery counts an attempt");
    assert_eq!(new.task.status, TaskStatus::Processing);
    assert_eq!(new.task.lease_owner.as_deref(), Some("fresh-worker"));
    assert_ne!(new.token, old.token, "a re-delivery gets a new token");
    assert!(new.expires_at > old.expires_at);

    assert_eq!(
        q.heartbeat(&old, LONG).await.unwrap(),
        Heartbeat::Lost,
        "old heartbeat"
    );
    assert!(
        !q.progress(&old, TaskStatus::ProcessingChunks, progress(9, 9, 9))
            .await
            .unwrap()
    );
    assert!(
        !q.complete(&old, TaskStatus::Completed, progress(9, 9, 9))
            .await
            .unwrap()
    );
    assert_eq!(
        q.fail(&old, error_info(Code::NoText), false, None)
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );
    assert_eq!(
        q.fail(&old, error_info(Code::Unavailable), true, None)
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(!q.cancelled(&old).await.unwrap(), "old cancelled");
    assert!(!q.release(&old).await.unwrap(), "old release");

    let stored = get(q, tenant, t.id).await;
    assert_eq!(
        stored.status,
        TaskStatus::Processing,
        "the old lease changed nothing"
    );
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.progress, Progress::default());
    assert_eq!(stored.error, None);
    assert_eq!(stored.lease_owner.as_deref(), Some("fresh-worker"));

    assert_eq!(q.heartbeat(&new, LONG).await.unwrap(), Heartbeat::Extended);
    assert!(
        q.progress(&new, TaskStatus::ProcessingChunks, progress(2, 1, 0))
            .await
            .unwrap()
    );
    assert!(
        q.complete(&new, TaskStatus::Completed, progress(2, 2, 0))
            .await
            .unwrap()
    );
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Completed);
    assert_eq!(stored.progress, progress(2, 2, 0));
}

/// Heartbeats keep a lease alive past its original visibility; when they stop it lapses.
pub async fn heartbeat_extends_the_lease(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let vis = Duration::from_millis(1000);
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", vis, "first lease").await;
    let mut last = l.expires_at;
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            q.heartbeat(&l, vis).await.unwrap(),
            Heartbeat::Extended,
            "heartbeat {i}"
        );
        assert_no_lease(q, "the lease was extended").await;
        let exp = get(q, tenant, t.id).await.lease_expires_at.expect("leased");
        assert!(
            exp > last,
            "heartbeat {i} moved the expiry forward ({exp} <= {last})"
        );
        last = exp;
    }
    assert!(
        Utc::now() > l.expires_at + chrono::Duration::milliseconds(100),
        "outlived the original visibility"
    );
    assert_eq!(
        get(q, tenant, t.id).await.attempts,
        1,
        "heartbeats count no attempt"
    );
    assert!(
        q.progress(&l, TaskStatus::Processing, progress(1, 0, 0))
            .await
            .unwrap(),
        "lease still current"
    );

    sleep_past(last).await;
    let again = must_lease(q, "w2", LONG, "heartbeats stopped, the lease lapsed").await;
    assert_eq!(again.task.id, t.id);
    assert_eq!(again.task.attempts, 2);
    assert_eq!(q.heartbeat(&l, vis).await.unwrap(), Heartbeat::Lost);
}

/// `complete` records the final status and progress, sets `finished_at`, drops the lease, and the
/// task is never handed out again.
pub async fn complete_records_the_result_and_never_redelivers(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", SHORT, "first lease").await;
    assert!(
        q.complete(&l, TaskStatus::Completed, progress(10, 10, 0))
            .await
            .unwrap()
    );
    let done = get(q, tenant, t.id).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.progress, progress(10, 10, 0));
    assert!(done.finished_at.is_some(), "finished_at is set");
    assert_eq!(done.lease_owner, None);
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.error, None);
    assert_eq!(done.attempts, 1);
    assert!(!done.dead_lettered);

    assert!(
        !q.complete(&l, TaskStatus::Completed, progress(1, 1, 1))
            .await
            .unwrap(),
        "twice"
    );
    assert_eq!(
        q.heartbeat(&l, LONG).await.unwrap(),
        Heartbeat::Lost,
        "a finished task's lease is gone"
    );
    assert_eq!(
        q.fail(&l, error_info(Code::Unavailable), true, None)
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(!q.release(&l).await.unwrap());
    assert_no_lease(q, "completed").await;
    sleep_past(l.expires_at).await;
    assert_no_lease(q, "completed, past the old visibility").await;
    assert_eq!(get(q, tenant, t.id).await, done, "nothing changed it");

    // Partial completion, with failed rows.
    let p = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", LONG, "second task").await;
    assert_eq!(l.task.id, p.id);
    assert!(
        q.complete(&l, TaskStatus::PartiallyCompleted, progress(5, 5, 2))
            .await
            .unwrap()
    );
    let partial = get(q, tenant, p.id).await;
    assert_eq!(partial.status, TaskStatus::PartiallyCompleted);
    assert_eq!(partial.progress, progress(5, 5, 2));
    assert!(partial.finished_at.is_some());
    assert_no_lease(q, "partially completed").await;
}

/// `progress` persists the running status and counters, visible through `get`, and keeps the
/// lease.
pub async fn progress_persists_status_and_counters(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", LONG, "first lease").await;

    assert!(
        q.progress(&l, TaskStatus::ProcessingChunks, progress(12, 5, 1))
            .await
            .unwrap()
    );
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::ProcessingChunks);
    assert_eq!(stored.progress, progress(12, 5, 1));
    assert_eq!(stored.lease_owner.as_deref(), Some("w"));
    assert_eq!(stored.finished_at, None);

    assert!(
        q.progress(&l, TaskStatus::ProcessingChunks, progress(12, 12, 1))
            .await
            .unwrap()
    );
    assert_eq!(get(q, tenant, t.id).await.progress, progress(12, 12, 1));

    let by_status = TaskFilter {
        status: Some(TaskStatus::ProcessingChunks),
        ..TaskFilter::default()
    };
    assert_eq!(list_ids(q, tenant, by_status).await, vec![t.id]);
    assert_no_lease(q, "still leased after progress").await;
    assert_eq!(q.heartbeat(&l, LONG).await.unwrap(), Heartbeat::Extended);

    assert!(
        q.complete(&l, TaskStatus::Completed, progress(12, 12, 1))
            .await
            .unwrap()
    );
    assert_eq!(get(q, tenant, t.id).await.progress, progress(12, 12, 1));
    assert!(
        !q.progress(&l, TaskStatus::Processing, progress(0, 0, 0))
            .await
            .unwrap(),
        "after completion"
    );
    assert_eq!(get(q, tenant, t.id).await.status, TaskStatus::Completed);
}

/// A retryable failure puts the task back to `pending` with the error recorded and `run_after`
/// at the reported time (at least `retry_after` away); it is not leasable before then and is
/// after.
pub async fn retryable_failure_backs_off_then_redelivers(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", LONG, "first lease").await;
    let err = error_info(Code::Unavailable);
    let retry_after = Duration::from_millis(300);
    let before = Utc::now();
    let outcome = q
        .fail(&l, err.clone(), true, Some(retry_after))
        .await
        .unwrap();
    let after = Utc::now();
    let FailOutcome::Retrying { at } = outcome else {
        panic!("expected Retrying, got {outcome:?}");
    };
    let ra = chrono::Duration::from_std(retry_after).unwrap();
    assert!(
        at >= before + ra - chrono::Duration::milliseconds(5),
        "retry_after honoured: {at} vs {before}"
    );
    assert!(
        at <= after + chrono::Duration::seconds(3),
        "backoff stays small: {at}"
    );

    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Pending);
    assert_eq!(stored.error, Some(err.clone()));
    assert!(
        close_ms(stored.run_after, at),
        "run_after {} == at {at}",
        stored.run_after
    );
    assert!(stored.run_after > Utc::now(), "run_after is in the future");
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.lease_owner, None);
    assert!(!stored.dead_lettered);
    assert_eq!(stored.finished_at, None);

    assert_eq!(
        q.fail(&l, err, true, None).await.unwrap(),
        FailOutcome::LeaseLost,
        "the failed lease is gone"
    );
    assert_no_lease(q, "backing off").await;
    assert!(Utc::now() < at, "test too slow to check the backoff");

    sleep_past(at).await;
    let again = must_lease(q, "w2", LONG, "the backoff elapsed").await;
    assert_eq!(again.task.id, t.id);
    assert_eq!(again.task.attempts, 2);
    assert_ne!(again.token, l.token);
}

/// A non-retryable failure is final: `failed`, not dead-lettered, never handed out again.
pub async fn non_retryable_failure_fails_for_good(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", SHORT, "first lease").await;
    let err = error_info(Code::UnsupportedFormat);
    assert_eq!(
        q.fail(&l, err.clone(), false, Some(Duration::from_millis(10)))
            .await
            .unwrap(),
        FailOutcome::Failed
    );
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Failed);
    assert!(!stored.dead_lettered);
    assert_eq!(stored.error, Some(err));
    assert!(stored.finished_at.is_some());
    assert_eq!(stored.lease_owner, None);
    assert_eq!(stored.attempts, 1);
    assert!(
        stored.attempts < stored.max_attempts,
        "failed even with attempts left"
    );

    assert_no_lease(q, "failed for good").await;
    sleep_past(l.expires_at).await;
    assert_no_lease(q, "failed for good, past the old visibility").await;
    assert_eq!(get(q, tenant, t.id).await.status, TaskStatus::Failed);
}

/// Retryable failures on every attempt end in `DeadLettered` on the last one: `failed` with the
/// dead-letter flag, listed as dead-lettered; an operator `retry` revives it with fresh attempts.
pub async fn dead_letters_after_max_attempts_and_retry_revives(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    assert_eq!(t.max_attempts, CONTRACT_MAX_ATTEMPTS);
    let mut last_err = None;
    for attempt in 1..=CONTRACT_MAX_ATTEMPTS {
        let l = lease_when_due(q, "w", LONG).await;
        assert_eq!(l.task.id, t.id);
        assert_eq!(l.task.attempts, attempt);
        let err = ErrorInfo {
            code: Code::Unavailable.as_str().into(),
            message: format!("attempt {attempt}"),
        };
        let outcome = q.fail(&l, err.clone(), true, None).await.unwrap();
        last_err = Some(err);
        if attempt < CONTRACT_MAX_ATTEMPTS {
            assert!(
                matches!(outcome, FailOutcome::Retrying { .. }),
                "attempt {attempt}: {outcome:?}"
            );
            assert!(!get(q, tenant, t.id).await.dead_lettered);
        } else {
            assert_eq!(outcome, FailOutcome::DeadLettered, "attempt {attempt}");
        }
    }
    let dead = get(q, tenant, t.id).await;
    assert_eq!(dead.status, TaskStatus::Failed);
    assert!(dead.dead_lettered);
    assert_eq!(dead.error, last_err);
    assert_eq!(dead.attempts, CONTRACT_MAX_ATTEMPTS);
    assert!(dead.finished_at.is_some());
    assert_eq!(dead.lease_owner, None);

    let dl = |flag| TaskFilter {
        dead_lettered: Some(flag),
        ..TaskFilter::default()
    };
    assert_eq!(list_ids(q, tenant, dl(true)).await, vec![t.id]);
    assert!(list_ids(q, tenant, dl(false)).await.is_empty());
    assert_eq!(q.depth().await.unwrap().dead_lettered, 1);
    assert_no_lease(q, "dead-lettered").await;

    let revived = q
        .retry(tenant, t.id)
        .await
        .expect("retry a dead-lettered task");
    assert_eq!(revived.status, TaskStatus::Pending);
    assert_eq!(revived.attempts, 0);
    assert_eq!(revived.error, None);
    assert!(!revived.dead_lettered);
    assert_eq!(revived.finished_at, None);
    assert_eq!(get(q, tenant, t.id).await, revived);
    assert!(list_ids(q, tenant, dl(true)).await.is_empty());
    assert_eq!(q.depth().await.unwrap().dead_lettered, 0);

    let l = must_lease(q, "w", LONG, "retried by an operator").await;
    assert_eq!(l.task.id, t.id);
    assert_eq!(l.task.attempts, 1);
    assert!(
        q.complete(&l, TaskStatus::Completed, progress(1, 1, 0))
            .await
            .unwrap()
    );
}

/// A task whose lease lapses on its last attempt is dead-lettered with `worker_lost`, not
/// re-delivered.
pub async fn lapsed_last_attempt_is_dead_lettered_as_worker_lost(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(
        q,
        tenant,
        NewTask {
            max_attempts: Some(1),
            ..new_task()
        },
    )
    .await;
    assert_eq!(t.max_attempts, 1);
    let l = must_lease(q, "doomed", SHORT, "only attempt").await;
    sleep_past(l.expires_at).await;
    assert_no_lease(q, "the only attempt lapsed").await;

    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Failed);
    assert!(stored.dead_lettered);
    assert_eq!(
        stored.error.as_ref().map(|e| e.code.as_str()),
        Some(Code::WorkerLost.as_str())
    );
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.lease_owner, None);
    assert!(stored.finished_at.is_some());
    assert!(
        !q.complete(&l, TaskStatus::Completed, progress(1, 1, 0))
            .await
            .unwrap(),
        "the lapsed lease is gone"
    );
    assert_eq!(get(q, tenant, t.id).await.status, TaskStatus::Failed);

    let dl = TaskFilter {
        dead_lettered: Some(true),
        ..TaskFilter::default()
    };
    assert_eq!(list_ids(q, tenant, dl).await, vec![t.id]);
    let revived = q.retry(tenant, t.id).await.unwrap();
    assert_eq!(
        (revived.status, revived.attempts, revived.error),
        (TaskStatus::Pending, 0, None)
    );
}

/// Cancelling a pending task cancels it at once; it is never leased; it can be retried.
pub async fn cancel_pending_task_is_immediate(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let c = q.cancel(tenant, t.id).await.expect("cancel pending");
    assert_eq!(c.status, TaskStatus::Cancelled);
    assert!(c.finished_at.is_some());
    assert_eq!(get(q, tenant, t.id).await, c);
    assert_no_lease(q, "cancelled").await;
    assert_code(
        q.cancel(tenant, t.id).await,
        Code::TaskStateConflict,
        "cancel twice",
    );

    let r = q.retry(tenant, t.id).await.expect("retry cancelled");
    assert_eq!(r.status, TaskStatus::Pending);
    assert_eq!(r.attempts, 0);
    assert!(!r.cancel_requested);
    assert_eq!(r.finished_at, None);
    let l = must_lease(q, "w", LONG, "retried after cancel").await;
    assert_eq!(l.task.id, t.id);
}

/// Cancelling a running task only requests it: the worker learns at its next heartbeat, calls
/// `cancelled`, and the task ends `cancelled`.
pub async fn cancel_running_task_is_cooperative(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", LONG, "first lease").await;
    assert!(
        q.progress(&l, TaskStatus::ProcessingChunks, progress(4, 1, 0))
            .await
            .unwrap()
    );

    let c = q.cancel(tenant, t.id).await.expect("cancel running");
    assert!(
        c.status.is_running(),
        "still running until the worker stops: {}",
        c.status
    );
    assert!(c.cancel_requested);
    assert!(get(q, tenant, t.id).await.cancel_requested);
    assert_eq!(
        q.heartbeat(&l, LONG).await.unwrap(),
        Heartbeat::CancelRequested
    );
    assert_eq!(
        q.heartbeat(&l, LONG).await.unwrap(),
        Heartbeat::CancelRequested,
        "it stays requested"
    );
    assert_no_lease(q, "running, cancel requested").await;

    assert!(q.cancelled(&l).await.unwrap());
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Cancelled);
    assert!(stored.finished_at.is_some());
    assert_eq!(stored.lease_owner, None);
    assert!(!q.cancelled(&l).await.unwrap(), "the lease ended");
    assert_eq!(q.heartbeat(&l, LONG).await.unwrap(), Heartbeat::Lost);
    assert_no_lease(q, "cancelled").await;
    assert_code(
        q.cancel(tenant, t.id).await,
        Code::TaskStateConflict,
        "cancel a cancelled task",
    );

    let r = q.retry(tenant, t.id).await.expect("retry cancelled");
    assert_eq!(r.status, TaskStatus::Pending);
    assert!(!r.cancel_requested, "retry clears the cancel request");
    let l = must_lease(q, "w", LONG, "retried").await;
    assert_eq!(l.task.id, t.id);
    assert_eq!(q.heartbeat(&l, LONG).await.unwrap(), Heartbeat::Extended);
}

/// A running task with a cancel request whose worker vanished ends `cancelled` once its lease
/// lapses; it is not re-delivered.
pub async fn cancel_requested_task_whose_lease_lapses_is_cancelled(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "vanishing", SHORT, "first lease").await;
    q.cancel(tenant, t.id).await.expect("cancel running");
    sleep_past(l.expires_at).await;
    assert_no_lease(q, "cancel requested, lease lapsed").await;
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Cancelled);
    assert!(!stored.dead_lettered);
    assert_eq!(stored.attempts, 1);
    assert!(
        !q.complete(&l, TaskStatus::Completed, progress(0, 0, 0))
            .await
            .unwrap()
    );
}

/// `cancel` of a terminal task and `retry` of a pending, running or completed task are
/// `task_state_conflict`, and change nothing.
pub async fn cancel_and_retry_conflict_with_wrong_states(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();

    let pending = enqueue(q, tenant, new_task()).await;
    assert_code(
        q.retry(tenant, pending.id).await,
        Code::TaskStateConflict,
        "retry pending",
    );
    assert_eq!(get(q, tenant, pending.id).await, pending, "unchanged");

    let l = must_lease(q, "w", LONG, "running").await;
    assert_eq!(l.task.id, pending.id);
    assert_code(
        q.retry(tenant, pending.id).await,
        Code::TaskStateConflict,
        "retry running",
    );
    assert_eq!(
        q.heartbeat(&l, LONG).await.unwrap(),
        Heartbeat::Extended,
        "retry left the lease alone"
    );
    assert!(
        q.complete(&l, TaskStatus::Completed, progress(3, 3, 0))
            .await
            .unwrap()
    );
    let completed = get(q, tenant, pending.id).await;
    assert_code(
        q.retry(tenant, completed.id).await,
        Code::TaskStateConflict,
        "retry completed",
    );
    assert_code(
        q.cancel(tenant, completed.id).await,
        Code::TaskStateConflict,
        "cancel completed",
    );
    assert_eq!(get(q, tenant, completed.id).await, completed, "unchanged");

    let partial = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", LONG, "partial").await;
    assert!(
        q.complete(&l, TaskStatus::PartiallyCompleted, progress(3, 3, 1))
            .await
            .unwrap()
    );
    assert_code(
        q.cancel(tenant, partial.id).await,
        Code::TaskStateConflict,
        "cancel partial",
    );
    assert_code(
        q.retry(tenant, partial.id).await,
        Code::TaskStateConflict,
        "retry partial",
    );

    let failed = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "w", LONG, "failed").await;
    assert_eq!(l.task.id, failed.id);
    assert_eq!(
        q.fail(&l, error_info(Code::NoText), false, None)
            .await
            .unwrap(),
        FailOutcome::Failed
    );
    assert_code(
        q.cancel(tenant, failed.id).await,
        Code::TaskStateConflict,
        "cancel failed",
    );
    assert_eq!(get(q, tenant, failed.id).await.status, TaskStatus::Failed);
    let r = q.retry(tenant, failed.id).await.expect("retry failed");
    assert_eq!(r.status, TaskStatus::Pending);
    assert_eq!(r.error, None);
    assert_eq!(r.attempts, 0);
}

/// `release` (graceful shutdown) puts the task back to `pending` at once without counting the
/// attempt; the released lease is dead.
pub async fn release_returns_the_task_without_counting_the_attempt(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "stopping", LONG, "first lease").await;
    assert_eq!(l.task.attempts, 1);
    assert!(q.release(&l).await.unwrap());
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Pending);
    assert_eq!(stored.attempts, 0, "a released attempt does not count");
    assert_eq!(stored.lease_owner, None);
    assert_eq!(stored.lease_expires_at, None);
    assert!(!stored.dead_lettered);

    assert!(!q.release(&l).await.unwrap(), "released twice");
    assert_eq!(q.heartbeat(&l, LONG).await.unwrap(), Heartbeat::Lost);
    assert!(
        !q.complete(&l, TaskStatus::Completed, progress(0, 0, 0))
            .await
            .unwrap()
    );

    let again = must_lease(q, "next", LONG, "released tasks are due at once").await;
    assert_eq!(again.task.id, t.id);
    assert_eq!(again.task.attempts, 1);
    assert_ne!(again.token, l.token);

    // Releasing never uses up attempts: a task with one attempt survives many releases.
    let one = enqueue(
        q,
        tenant,
        NewTask {
            max_attempts: Some(1),
            ..new_task()
        },
    )
    .await;
    for _ in 0..3 {
        let l = must_lease(q, "flappy", LONG, "single-attempt task").await;
        assert_eq!(l.task.id, one.id);
        assert!(q.release(&l).await.unwrap());
    }
    let l = must_lease(q, "final", LONG, "single-attempt task after releases").await;
    assert_eq!((l.task.id, l.task.attempts), (one.id, 1));
    assert!(
        q.complete(&l, TaskStatus::Completed, progress(0, 0, 0))
            .await
            .unwrap()
    );
}

/// A worker shutting down releases a task whose cancel was requested: the cancel wins, the
/// task is `cancelled` and never handed out again.
pub async fn release_of_a_cancel_requested_task_cancels_it(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let t = enqueue(q, tenant, new_task()).await;
    let l = must_lease(q, "stopping", LONG, "first lease").await;
    q.cancel(tenant, t.id).await.unwrap();
    assert!(q.release(&l).await.unwrap());
    let stored = get(q, tenant, t.id).await;
    assert_eq!(stored.status, TaskStatus::Cancelled);
    assert!(stored.finished_at.is_some());
    assert!(
        q.lease("next", LONG).await.unwrap().is_none(),
        "a cancelled task is not re-delivered"
    );
}

/// `depth` says since when the oldest runnable task waits: a pending one since it was due, a
/// lapsed lease since it lapsed; nothing while every task is leased.
pub async fn depth_tells_how_long_the_oldest_runnable_task_waited(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let since = |d: QueueDepth| d.oldest_runnable_since;
    assert_eq!(since(q.depth().await.unwrap()), None, "empty queue");
    // Stored at millisecond precision.
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    enqueue(q, TenantId::new(), new_task()).await;
    let waited = since(q.depth().await.unwrap()).expect("a pending task waits");
    assert!(
        before <= waited && waited <= Utc::now(),
        "{before} {waited}"
    );
    let lease = must_lease(q, "w", SHORT, "the pending task").await;
    assert_eq!(
        since(q.depth().await.unwrap()),
        None,
        "a leased task is not waiting"
    );
    sleep_past(lease.expires_at).await;
    let lapsed = since(q.depth().await.unwrap()).expect("a lapsed lease waits again");
    let off = (lapsed - lease.expires_at).num_milliseconds().abs();
    assert!(
        off <= 1,
        "waits since its lease lapsed: {lapsed} vs {}",
        lease.expires_at
    );
}

/// The enqueuer's trace context (`NewTask::traceparent`) comes back with the task, in `get`
/// and in the lease a worker runs it under.
pub async fn trace_context_travels_with_the_task(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let tenant = TenantId::new();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
    let task = enqueue(
        q,
        tenant,
        NewTask {
            traceparent: Some(traceparent.clone()),
            ..new_task()
        },
    )
    .await;
    assert_eq!(task.traceparent.as_ref(), Some(&traceparent));
    let lease = must_lease(q, "w", LONG, "the traced task").await;
    assert_eq!(lease.task.id, task.id);
    assert_eq!(lease.task.traceparent, Some(traceparent));
    let untraced = enqueue(q, tenant, new_task()).await;
    assert_eq!(get(q, tenant, untraced.id).await.traceparent, None);
}

/// `depth` counts tasks by status across all tenants, plus the dead-lettered ones.
pub async fn depth_counts_by_status_across_tenants(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let empty = q.depth().await.expect("depth");
    assert!(
        empty.by_status.iter().all(|(_, n)| *n == 0),
        "fresh queue: {empty:?}"
    );
    assert_eq!(empty.dead_lettered, 0);

    let a = TenantId::new();
    let b = TenantId::new();
    // Each lease happens while exactly one task is runnable.
    enqueue(q, a, new_task()).await;
    let l = must_lease(q, "w", LONG, "to complete").await;
    assert!(
        q.complete(&l, TaskStatus::Completed, progress(1, 1, 0))
            .await
            .unwrap()
    );

    enqueue(q, b, new_task()).await;
    let _running = must_lease(q, "w", LONG, "to keep running").await;

    enqueue(q, a, new_task()).await;
    let l = must_lease(q, "w", LONG, "to fail").await;
    assert_eq!(
        q.fail(&l, error_info(Code::NoText), false, None)
            .await
            .unwrap(),
        FailOutcome::Failed
    );

    enqueue(
        q,
        b,
        NewTask {
            max_attempts: Some(1),
            ..new_task()
        },
    )
    .await;
    let l = must_lease(q, "w", LONG, "to dead-letter").await;
    assert_eq!(
        q.fail(&l, error_info(Code::Unavailable), true, None)
            .await
            .unwrap(),
        FailOutcome::DeadLettered
    );

    enqueue(q, a, new_task()).await;
    enqueue(q, b, new_task()).await;
    let cancelled = enqueue(q, b, new_task()).await;
    q.cancel(b, cancelled.id).await.unwrap();

    let depth = q.depth().await.expect("depth");
    let statuses: Vec<TaskStatus> = depth.by_status.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().collect::<HashSet<_>>().len(),
        statuses.len(),
        "one entry per status: {depth:?}"
    );
    let expected = [
        (TaskStatus::Pending, 2),
        (TaskStatus::Processing, 1),
        (TaskStatus::ProcessingChunks, 0),
        (TaskStatus::Completed, 1),
        (TaskStatus::PartiallyCompleted, 0),
        (TaskStatus::Failed, 2),
        (TaskStatus::Cancelled, 1),
    ];
    for (status, n) in expected {
        assert_eq!(count(&depth, status), n, "{status} in {depth:?}");
    }
    assert_eq!(depth.dead_lettered, 1, "{depth:?}");

    // One tenant's counts, and those of some of its collections.
    let of_a = q.tenant_depth(a, None).await.expect("tenant depth");
    for (status, n) in [
        (TaskStatus::Pending, 1),
        (TaskStatus::Processing, 0),
        (TaskStatus::Completed, 1),
        (TaskStatus::Failed, 1),
        (TaskStatus::Cancelled, 0),
    ] {
        assert_eq!(count(&of_a, status), n, "{status} of A in {of_a:?}");
    }
    assert_eq!(of_a.dead_lettered, 0, "{of_a:?}");
    let of_b = q.tenant_depth(b, None).await.expect("tenant depth");
    assert_eq!(count(&of_b, TaskStatus::Cancelled), 1, "{of_b:?}");
    assert_eq!(of_b.dead_lettered, 1, "{of_b:?}");
    let collection = cancelled.collection_id.expect("a collection");
    let one = q
        .tenant_depth(b, Some(&[collection]))
        .await
        .expect("collection depth");
    let total: u64 = one.by_status.iter().map(|(_, n)| n).sum();
    assert_eq!(
        (total, count(&one, TaskStatus::Cancelled)),
        (1, 1),
        "{one:?}"
    );
    assert_eq!(
        count(
            &q.tenant_depth(a, Some(&[collection])).await.unwrap(),
            TaskStatus::Cancelled
        ),
        0,
        "another tenant's collection"
    );
    let none = q.tenant_depth(b, Some(&[])).await.expect("no collections");
    assert!(none.by_status.iter().all(|(_, n)| *n == 0), "{none:?}");
}

/// Fair share: tenant A enqueues a backlog, then tenant B one task. With two workers, B's task
/// is leased second — not after A's backlog — and once every tenant holds its cap the rest of
/// A's backlog is still handed out (work-conserving).
pub async fn fair_lease_serves_a_waiting_tenant_before_a_busy_one(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let (a, b) = (TenantId::new(), TenantId::new());
    let mut backlog = Vec::new();
    for _ in 0..4 {
        backlog.push(enqueue(q, a, new_task()).await.id);
    }
    let small = enqueue(q, b, new_task()).await;

    let first = lease_as_worker(q, "w1").await;
    let second = lease_as_worker(q, "w2").await;
    let tenants: HashSet<TenantId> = [first.task.tenant_id, second.task.tenant_id].into();
    assert_eq!(
        tenants,
        [a, b].into(),
        "two workers serve both tenants, whatever the backlog's age"
    );
    let b_lease = if second.task.tenant_id == b {
        &second
    } else {
        &first
    };
    assert_eq!(b_lease.task.id, small.id);
    assert_eq!(b_lease.task.attempts, 1);

    // Both tenants hold their cap and no one else waits: A's backlog keeps every worker busy.
    let third = lease_as_worker(q, "w3").await;
    assert_eq!(third.task.tenant_id, a, "a third worker takes A's backlog");
    assert!(backlog.contains(&third.task.id));
    for l in [&first, &second, &third] {
        assert!(
            !q.should_yield(l).await.unwrap(),
            "nobody under the cap waits: no one yields"
        );
    }
    // The backlog's tasks that were passed over counted no attempt.
    for id in &backlog {
        let t = get(q, a, *id).await;
        if t.status == TaskStatus::Pending {
            assert_eq!(
                t.attempts, 0,
                "a task passed over for fairness counts no attempt"
            );
        }
    }
    for l in [&first, &second, &third] {
        assert!(
            q.complete(l, TaskStatus::Completed, progress(0, 0, 0))
                .await
                .unwrap()
        );
    }
}

/// A tenant alone takes two workers (above the cap of one); when another tenant's task turns
/// up, the busy tenant is asked to yield, its next runnable task waits behind the newcomer's,
/// and a yielded task is handed back without counting an attempt.
pub async fn tenant_over_its_cap_yields_and_gets_no_lease_while_another_waits(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let (a, b) = (TenantId::new(), TenantId::new());
    for _ in 0..3 {
        enqueue(q, a, new_task()).await;
    }
    let a1 = lease_as_worker(q, "w1").await;
    let a2 = lease_as_worker(q, "w2").await;
    assert_eq!((a1.task.tenant_id, a2.task.tenant_id), (a, a));
    assert!(
        !q.should_yield(&a1).await.unwrap(),
        "a tenant alone keeps every worker"
    );

    let waiting = enqueue(q, b, new_task()).await;
    assert!(
        q.should_yield(&a1).await.unwrap(),
        "A holds more than its cap while B waits"
    );
    assert!(q.should_yield(&a2).await.unwrap());

    // A third worker serves B although A's third task is older.
    let next = lease_as_worker(q, "w3").await;
    assert_eq!(
        (next.task.tenant_id, next.task.id),
        (b, waiting.id),
        "the tenant under its cap is served first"
    );
    assert!(
        !q.should_yield(&a1).await.unwrap(),
        "no one waits any more: A keeps its workers"
    );
    assert!(!q.should_yield(&next).await.unwrap());

    // A yields one worker: the task is runnable again with its attempt given back.
    assert!(q.release(&a1).await.unwrap());
    let yielded = get(q, a, a1.task.id).await;
    assert_eq!((yielded.status, yielded.attempts), (TaskStatus::Pending, 0));
    // Both tenants at their cap, only A waits: A gets the worker.
    let again = lease_as_worker(q, "w1").await;
    assert_eq!(again.task.tenant_id, a);
    for l in [&a2, &next, &again] {
        assert!(
            q.complete(l, TaskStatus::Completed, progress(0, 0, 0))
                .await
                .unwrap()
        );
    }
}

/// Fairness never idles a worker: a tenant alone gets as many leases as it has tasks, and is
/// never asked to yield.
pub async fn a_tenant_alone_gets_every_worker(qut: QueueUnderTest) {
    let q = &*qut.queue;
    let a = TenantId::new();
    let mut ids = HashSet::new();
    for _ in 0..3 {
        ids.insert(enqueue(q, a, new_task()).await.id);
    }
    let mut leases = Vec::new();
    for w in ["w1", "w2", "w3"] {
        leases.push(lease_as_worker(q, w).await);
    }
    let leased: HashSet<TaskId> = leases.iter().map(|l| l.task.id).collect();
    assert_eq!(leased, ids, "every task of the lone tenant runs at once");
    for l in &leases {
        assert!(!q.should_yield(l).await.unwrap());
    }
    assert_no_lease(q, "all three are leased").await;
    for l in &leases {
        assert!(
            q.complete(l, TaskStatus::Completed, progress(0, 0, 0))
                .await
                .unwrap()
        );
    }
}
