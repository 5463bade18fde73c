//! [`DeliveryQueue`]: the [`TaskQueue`] port over a message broker ([`Delivery`]: SQS, a Redis
//! Stream) with task state kept in the database ([`TaskLedger`]: the SQLite or PostgreSQL
//! queue). The state machine lives here once; a broker is a transport of a few verbs.
//!
//! The broker carries *deliveries*: one per runnable task, its body the task id and tenant
//! (`{"task_id": .., "tenant_id": ..}`). The ledger is the record: it decides whether a delivery
//! may run, holds the lease, attempts, progress and errors, and answers `get`, `list` and
//! `depth`, so status queries never touch the broker and keep working while it is unreachable.
//!
//! # Deliveries
//!
//! - **Lease** = [`Delivery::receive`] (waiting for a delivery, on the first round only), then
//!   [`Delivery::claim`] (the delivery becomes the worker's for the lease's visibility), then
//!   [`TaskLedger::lease_task`] of the task it names for the visibility left. The delivery's
//!   visibility ends first, the ledger's lease right after, so a worker that dies (kill -9) has
//!   its task delivered again when its lease lapses. The lease token handed to the worker is
//!   the ledger's token and the transport's receipt (`token|receipt`); only the ledger part
//!   guards state changes. Visibilities are rounded up to whole [`Delivery::tick`]s (SQS:
//!   seconds) and the ledger is given the rounded value.
//! - A delivery the ledger refuses is settled by the task's state: finished, cancelled or
//!   unknown → acknowledged; dead-lettered → moved to the dead-letter queue; still leased or
//!   backing off (a duplicate, or a delivery come back a little early) → deferred until the
//!   ledger says the task may run; refused while due (its tenant at its fair-share cap while
//!   another tenant waits) → deferred for a second, no attempt counted. A body that names no
//!   task goes to the dead-letter queue. The ledger lets exactly one delivery lease a task, so
//!   duplicates (brokers deliver at least once) are harmless.
//! - **Heartbeat** = [`Delivery::extend`], then the ledger's heartbeat (so the delivery never
//!   lapses before the lease). **Complete**, **cancelled** and non-retryable **fail** = the
//!   ledger, then [`Delivery::ack`]. A retryable **fail** picks the backoff itself and has the
//!   ledger use exactly it ([`TaskLedger::fail_after`]); the delivery is deferred until the
//!   ledger's retry time. Out of attempts → dead-lettered in the ledger and the delivery moved
//!   to the dead-letter queue. **Release** (graceful shutdown) re-queues a fresh delivery, so
//!   the released attempt counts nowhere. An operator **retry** sends a new delivery;
//!   **cancel** is the ledger's alone (a pending task's delivery is dropped when next
//!   received). A call that ends or re-times a delivery comes after the ledger's change and
//!   only when the ledger accepted it, so a lease that lapsed never touches the delivery its
//!   successor holds.
//! - **Batches.** One receive at a time per process, asking for as many deliveries as there
//!   are `lease` calls waiting (at most [`Delivery::batch`]); the extra ones are handed to those
//!   callers from a local buffer, and claimed again (a fresh visibility) when taken from it.
//!
//! # Lost deliveries
//!
//! The broker and the database are not one transaction. When a send fails after the database
//! write (the broker down during an upload, say), `enqueue` still succeeds — the task exists,
//! pending — and logs a warning; a delivery lost any other way is the same. The **sweep**
//! repairs it: after a receive finds the queue empty (at most every `republish_after / 4`), a
//! process settles lapsed leases in the ledger, sends a fresh delivery for every task runnable
//! for `republish_after` or longer, and lets the transport tidy up ([`Delivery::tidy`]). A
//! backlog never triggers it (the queue is not empty then), and a duplicate it might send is
//! harmless.
//!
//! Metrics: `docent_queue_deliveries_total{broker, outcome}` (`leased`, `spent`, `deferred`,
//! `dead_lettered`), `docent_queue_republished_total{broker}` and
//! `docent_queue_send_failures_total{broker}`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docent_domain::ports::{
    Backoff, Delivery, FailOutcome, Heartbeat, Lease, MAX_VISIBILITY, Received, TaskLedger,
    TaskQueue,
};
use docent_domain::{
    Code, CollectionId, ErrorInfo, NewTask, Page, PageRequest, Progress, QueueDepth, Result, Task,
    TaskFilter, TaskId, TaskStatus, TenantId,
};

/// Receives per `lease` call while every delivery received was spent (finished tasks,
/// duplicates); only the first one waits.
const RECEIVE_ROUNDS: usize = 3;
/// Most overdue tasks one sweep sends again.
const SWEEP_LIMIT: u32 = 500;
/// A buffered delivery this close to the end of its visibility (or one tick of the broker's
/// clock, if longer) is not claimed any more: the broker delivers it again shortly.
const BUFFER_MARGIN: Duration = Duration::from_millis(100);
/// How long a delivery the ledger refused for fairness (its tenant at its cap while another
/// tenant waits) is deferred before it is received again.
const FAIR_SHARE_DEFER: Duration = Duration::from_secs(1);
/// Separates the ledger's token from the transport's receipt in a worker's lease token.
const TOKEN_SEP: char = '|';

/// What a delivery names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRef {
    /// The task.
    pub task_id: TaskId,
    /// Its tenant.
    pub tenant_id: TenantId,
}

impl TaskRef {
    /// The delivery of `task`.
    pub fn of(task: &Task) -> Self {
        Self {
            task_id: task.id,
            tenant_id: task.tenant_id,
        }
    }

    /// The body: the same bytes for the same task (a transport may key deferred deliveries by
    /// it, keeping one per task).
    pub fn body(&self) -> String {
        serde_json::json!({"task_id": self.task_id, "tenant_id": self.tenant_id}).to_string()
    }

    /// The task a body names, or `None` for a body that is not a task reference.
    pub fn parse(body: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(Self {
            task_id: v.get("task_id")?.as_str()?.parse().ok()?,
            tenant_id: v.get("tenant_id")?.as_str()?.parse().ok()?,
        })
    }
}

/// What became of a delivery a process tried to lease ([`DeliveryQueue::lease_delivery`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The ledger leased its task to this worker; the lease's token carries the receipt.
    Leased(Box<Lease>),
    /// The delivery is over: acknowledged (its task finished, cancelled or unknown) or moved
    /// to the dead-letter queue (its task dead-lettered, or a body that names no task).
    Ended,
    /// The delivery lives on: deferred until its task may run (backing off, leased through
    /// another delivery, its tenant at its fair share), or left to come back when its
    /// visibility ends.
    Kept,
}

/// The worker's lease: the ledger's, with the delivery's receipt appended to the token.
fn wrap(lease: Lease, receipt: &str) -> Lease {
    Lease {
        token: format!("{}{TOKEN_SEP}{receipt}", lease.token),
        ..lease
    }
}

/// The ledger's lease and the receipt inside a worker's lease (none for a lease that never
/// went through a broker).
fn unwrap(lease: &Lease) -> (Lease, Option<String>) {
    let (token, receipt) = match lease.token.split_once(TOKEN_SEP) {
        Some((token, receipt)) => (token.to_owned(), Some(receipt.to_owned())),
        None => (lease.token.clone(), None),
    };
    let inner = Lease {
        task: lease.task.clone(),
        token,
        expires_at: lease.expires_at,
    };
    (inner, receipt)
}

/// `d` rounded up to a whole number of `tick`s.
fn round_up(d: Duration, tick: Duration) -> Duration {
    let tick = tick.as_nanos().max(1);
    let nanos = d.as_nanos().div_ceil(tick) * tick;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Time from now until `at` (zero if past).
fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// Counts a caller waiting for the inbox while it lives (also when its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Self(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The ledger-backed task queue over a broker (see the crate docs).
pub struct DeliveryQueue {
    ledger: Arc<dyn TaskLedger>,
    delivery: Arc<dyn Delivery>,
    backoff: Backoff,
    republish_after: Duration,
    sweep_every: Duration,
    /// Received deliveries not claimed yet, for `lease` calls that waited on the receive; its
    /// lock makes receives one at a time per process.
    inbox: tokio::sync::Mutex<VecDeque<Received>>,
    /// `lease` calls waiting for the inbox.
    waiting: AtomicUsize,
    /// Receives that came back empty, so callers that waited on one return at once.
    empty_receives: AtomicU64,
    /// When this process last swept.
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for DeliveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryQueue")
            .field("broker", &self.delivery.name())
            .finish_non_exhaustive()
    }
}

impl DeliveryQueue {
    /// A queue whose deliveries `delivery` carries and whose state `ledger` keeps; `backoff`
    /// times retries, and the sweep sends a task again once it has been runnable for
    /// `republish_after` with the queue empty. Makes no call.
    pub fn new(
        ledger: Arc<dyn TaskLedger>,
        delivery: Arc<dyn Delivery>,
        backoff: Backoff,
        republish_after: Duration,
    ) -> Self {
        Self {
            ledger,
            delivery,
            backoff,
            republish_after,
            sweep_every: (republish_after / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            inbox: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            empty_receives: AtomicU64::new(0),
            last_sweep: std::sync::Mutex::new(None),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn TaskLedger> {
        &self.ledger
    }

    /// The transport.
    pub fn delivery(&self) -> &Arc<dyn Delivery> {
        &self.delivery
    }

    /// Settles lapsed leases in the ledger, sends a fresh delivery for every task runnable for
    /// `republish_after` or longer, and lets the transport tidy up (see "Lost deliveries" in
    /// the crate docs). Returns how many it sent. `lease` runs it after a receive finds the
    /// queue empty.
    #[tracing::instrument(skip_all, fields(broker = self.delivery.name()))]
    pub async fn sweep(&self) -> Result<usize> {
        *self.last_sweep.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.sweep_now().await
    }

    async fn sweep_now(&self) -> Result<usize> {
        self.ledger.settle_lapsed().await?;
        let overdue = self
            .ledger
            .runnable_for(self.republish_after, SWEEP_LIMIT)
            .await?;
        let mut sent = 0;
        if !overdue.is_empty() {
            let bodies: Vec<String> = overdue
                .iter()
                .map(|&(tenant_id, task_id)| TaskRef { task_id, tenant_id }.body())
                .collect();
            sent = self.delivery.send(&bodies).await?;
            metrics::counter!("docent_queue_republished_total", "broker" => self.delivery.name())
                .increment(sent as u64);
            tracing::warn!(
                tasks = sent,
                broker = self.delivery.name(),
                "re-published tasks runnable for {:?} with no delivery",
                self.republish_after
            );
        }
        self.delivery.tidy().await?;
        Ok(sent)
    }

    /// Sweeps when the last sweep of this process is old enough (one at a time); failures are
    /// logged.
    async fn sweep_if_due(&self) {
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= self.sweep_every);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && let Err(e) = self.sweep_now().await {
            tracing::warn!(broker = self.delivery.name(), error = %e.chain(), "task queue sweep failed");
        }
    }

    fn counted(&self, outcome: &'static str) {
        metrics::counter!("docent_queue_deliveries_total", "broker" => self.delivery.name(), "outcome" => outcome)
            .increment(1);
    }

    /// A visibility as the broker takes it: whole ticks, one tick to [`MAX_VISIBILITY`].
    fn visibility(&self, d: Duration) -> Duration {
        let tick = self.delivery.tick();
        round_up(d, tick).clamp(tick, MAX_VISIBILITY)
    }

    /// A delay as the broker takes it: whole ticks, at least one.
    fn delay(&self, d: Duration) -> Duration {
        let tick = self.delivery.tick();
        round_up(d, tick).max(tick)
    }

    /// Sends a delivery for a task the ledger just made runnable; a failure is logged, not
    /// returned: the task is recorded, and the sweep sends it later.
    async fn publish(&self, task: &Task, what: &str) {
        let sent = self.delivery.send(&[TaskRef::of(task).body()]).await;
        if !matches!(sent, Ok(1)) {
            metrics::counter!("docent_queue_send_failures_total", "broker" => self.delivery.name())
                .increment(1);
            let error = match sent {
                Err(e) => e.chain(),
                Ok(_) => "the broker refused it".to_owned(),
            };
            tracing::warn!(
                task = %task.id,
                broker = self.delivery.name(),
                error = %error,
                "{what}: the task is recorded but its delivery could not be sent; the sweep will \
                 send it once it has waited {:?}",
                self.republish_after
            );
        }
    }

    /// Ends a delivery; a failure is logged: it comes back and is dropped then.
    async fn ack(&self, receipt: &str) {
        if let Err(e) = self.delivery.ack(receipt).await {
            tracing::warn!(broker = self.delivery.name(), error = %e.chain(), "could not end a delivery; it comes back and is dropped then");
        }
    }

    /// Defers a delivery of a live task; a failure is logged: it comes back when its
    /// visibility ends.
    async fn defer(&self, task: TaskRef, receipt: &str, delay: Duration) {
        if let Err(e) = self
            .delivery
            .defer(receipt, &task.body(), self.delay(delay))
            .await
        {
            tracing::warn!(task = %task.task_id, broker = self.delivery.name(), error = %e.chain(), "could not defer a delivery");
        }
    }

    /// Moves a delivery to the dead-letter queue; a failure is logged: it comes back and is
    /// moved then.
    async fn dead_letter(&self, receipt: &str, body: &str, reason: &str) {
        match self.delivery.dead_letter(receipt, body, reason).await {
            Ok(()) => self.counted("dead_lettered"),
            Err(e) => {
                tracing::warn!(broker = self.delivery.name(), error = %e.chain(), "could not move a delivery to the dead-letter queue")
            }
        }
    }

    /// Leases the task of a delivery the broker handed to this process from outside a
    /// [`lease`](TaskQueue::lease) call — an AWS Lambda SQS event's record — with the same
    /// rules as a received one: the delivery is claimed for `visibility` (a fresh visibility
    /// from now, as for a buffered delivery), then the ledger leases the task it names, or the
    /// delivery is settled by the task's state (see [`Claim`]). The lease's token carries the
    /// delivery's receipt, so the worker's completion, failure and release end or re-time this
    /// very delivery.
    #[tracing::instrument(skip_all, fields(worker = %worker))]
    pub async fn lease_delivery(
        &self,
        delivery: Received,
        worker: &str,
        visibility: Duration,
    ) -> Result<Claim> {
        let visibility = self.visibility(visibility);
        self.claim(delivery, worker, visibility, true).await
    }

    /// Tries to lease the task a delivery names. `buffered`: it waited in the inbox.
    async fn claim(
        &self,
        delivery: Received,
        worker: &str,
        visibility: Duration,
        buffered: bool,
    ) -> Result<Claim> {
        let Some(task) = TaskRef::parse(&delivery.body) else {
            tracing::warn!(broker = self.delivery.name(), body = %delivery.body, "a delivery in the task queue names no task; moving it to the dead-letter queue");
            self.dead_letter(&delivery.receipt, &delivery.body, "not_a_task")
                .await;
            return Ok(Claim::Ended);
        };
        let Some(since) = self
            .delivery
            .claim(&delivery, worker, visibility, buffered)
            .await?
        else {
            tracing::debug!(task = %task.task_id, "delivery no longer ours; left to its holder");
            return Ok(Claim::Kept);
        };
        let left = visibility.saturating_sub(since.elapsed());
        if left < visibility / 3 {
            // Too little left to reach a heartbeat: the delivery comes back when it ends, and
            // the task is leased then.
            tracing::debug!(task = %task.task_id, "too little visibility left to lease; left for redelivery");
            return Ok(Claim::Kept);
        }
        let leased = self
            .ledger
            .lease_task(task.tenant_id, task.task_id, worker, left)
            .await?;
        if let Some(lease) = leased {
            self.counted("leased");
            tracing::debug!(task = %task.task_id, attempt = lease.task.attempts, "leased");
            return Ok(Claim::Leased(Box::new(wrap(lease, &delivery.receipt))));
        }
        self.settle(task, &delivery).await
    }

    /// Deals with a delivery the ledger refused, by the task's state.
    async fn settle(&self, task: TaskRef, delivery: &Received) -> Result<Claim> {
        let current = match self.ledger.get(task.tenant_id, task.task_id).await {
            Ok(t) => t,
            Err(e) if e.code == Code::TaskNotFound => {
                tracing::debug!(task = %task.task_id, "delivery of an unknown task; dropped");
                self.counted("spent");
                self.ack(&delivery.receipt).await;
                return Ok(Claim::Ended);
            }
            Err(e) => return Err(e),
        };
        match current.status {
            TaskStatus::Completed
            | TaskStatus::PartiallyCompleted
            | TaskStatus::Failed
            | TaskStatus::Cancelled => {
                if current.dead_lettered {
                    tracing::warn!(task = %task.task_id, error = ?current.error, "task dead-lettered; delivery moved to the dead-letter queue");
                    self.dead_letter(&delivery.receipt, &delivery.body, "dead_lettered")
                        .await;
                } else {
                    self.counted("spent");
                    self.ack(&delivery.receipt).await;
                }
                Ok(Claim::Ended)
            }
            // Backing off: back when it is due. Refused while due: its tenant is at its fair
            // share while another waits (or it was just made runnable under us): back shortly,
            // after the waiting tenant's delivery had its turn. Deferring counts no attempt.
            TaskStatus::Pending => {
                self.counted("deferred");
                let wait = until(current.run_after).max(FAIR_SHARE_DEFER);
                self.defer(task, &delivery.receipt, wait).await;
                Ok(Claim::Kept)
            }
            // Leased by another delivery (a duplicate, or this one back a little early): back
            // when that lease ends.
            TaskStatus::Processing | TaskStatus::ProcessingChunks => {
                self.counted("deferred");
                let wait = current.lease_expires_at.map(until).unwrap_or_default();
                self.defer(task, &delivery.receipt, wait).await;
                Ok(Claim::Kept)
            }
        }
    }

    /// Ends the delivery of a lease the ledger just finished (`done`).
    async fn ended(&self, receipt: Option<String>, done: bool) -> Result<bool> {
        if done && let Some(receipt) = receipt {
            self.ack(&receipt).await;
        }
        Ok(done)
    }
}

#[async_trait]
impl TaskQueue for DeliveryQueue {
    async fn ping(&self) -> Result<()> {
        self.ledger.ping().await?;
        self.delivery.ping().await
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, kind = %new.kind))]
    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task> {
        let task = self.ledger.enqueue(tenant, new).await?;
        self.publish(&task, "enqueue").await;
        Ok(task)
    }

    #[tracing::instrument(skip_all, fields(worker = %worker))]
    async fn lease(&self, worker: &str, visibility: Duration) -> Result<Option<Lease>> {
        let visibility = self.visibility(visibility);
        let margin = BUFFER_MARGIN.max(self.delivery.tick());
        let empty_before = self.empty_receives.load(Ordering::Acquire);
        let mut inbox = {
            let _waiting = Waiting::new(&self.waiting);
            self.inbox.lock().await
        };
        while let Some(delivery) = inbox.pop_front() {
            if delivery.received_at.elapsed() + margin >= delivery.visible_for {
                continue; // The broker delivers it again shortly.
            }
            if let Claim::Leased(lease) = self.claim(delivery, worker, visibility, true).await? {
                return Ok(Some(*lease));
            }
        }
        // A receive that came back empty while this call waited answers it too.
        if self.empty_receives.load(Ordering::Acquire) != empty_before {
            return Ok(None);
        }
        for round in 0..RECEIVE_ROUNDS {
            let wanted = u32::try_from(self.waiting.load(Ordering::Acquire))
                .unwrap_or(u32::MAX)
                .saturating_add(1)
                .min(self.delivery.batch().max(1));
            let mut received = VecDeque::from(
                self.delivery
                    .receive(wanted, visibility, round == 0)
                    .await?,
            );
            if received.is_empty() {
                if round == 0 {
                    self.empty_receives.fetch_add(1, Ordering::AcqRel);
                    drop(inbox);
                    self.sweep_if_due().await;
                }
                return Ok(None);
            }
            while let Some(delivery) = received.pop_front() {
                match self.claim(delivery, worker, visibility, false).await {
                    Ok(Claim::Leased(lease)) => {
                        inbox.extend(received);
                        return Ok(Some(*lease));
                    }
                    Ok(Claim::Ended | Claim::Kept) => {}
                    Err(e) => {
                        inbox.extend(received);
                        return Err(e);
                    }
                }
            }
        }
        Ok(None)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn heartbeat(&self, lease: &Lease, visibility: Duration) -> Result<Heartbeat> {
        let visibility = self.visibility(visibility);
        let (inner, receipt) = unwrap(lease);
        // The delivery first, so it never lapses before the lease. A lease that is gone holds
        // a delivery another receiver took over, which the transport leaves alone.
        if let Some(receipt) = receipt {
            let worker = lease.task.lease_owner.as_deref().unwrap_or_default();
            if let Err(e) = self.delivery.extend(&receipt, worker, visibility).await {
                // The ledger's lease is what counts: a delivery back early is deferred until
                // it ends.
                tracing::warn!(broker = self.delivery.name(), error = %e.chain(), "could not extend a delivery's visibility");
            }
        }
        self.ledger.heartbeat(&inner, visibility).await
    }

    async fn progress(
        &self,
        lease: &Lease,
        status: TaskStatus,
        progress: Progress,
    ) -> Result<bool> {
        self.ledger
            .progress(&unwrap(lease).0, status, progress)
            .await
    }

    async fn should_yield(&self, lease: &Lease) -> Result<bool> {
        self.ledger.should_yield(&unwrap(lease).0).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, status = %status))]
    async fn complete(
        &self,
        lease: &Lease,
        status: TaskStatus,
        progress: Progress,
    ) -> Result<bool> {
        let (inner, receipt) = unwrap(lease);
        let done = self.ledger.complete(&inner, status, progress).await?;
        self.ended(receipt, done).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, code = %error.code, retryable))]
    async fn fail(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Result<FailOutcome> {
        let (inner, receipt) = unwrap(lease);
        let delay = self.delay(
            self.backoff
                .delay(lease.task.attempts)
                .max(retry_after.unwrap_or_default()),
        );
        let outcome = self
            .ledger
            .fail_after(&inner, error, retryable, delay)
            .await?;
        let task = TaskRef::of(&lease.task);
        if let Some(receipt) = receipt {
            match outcome {
                // Due when the ledger says (its clock), not `delay` after this call.
                FailOutcome::Retrying { at } => self.defer(task, &receipt, until(at)).await,
                FailOutcome::Failed => self.ack(&receipt).await,
                FailOutcome::DeadLettered => {
                    tracing::warn!(task = %task.task_id, "task dead-lettered; delivery moved to the dead-letter queue");
                    self.dead_letter(&receipt, &task.body(), "dead_lettered")
                        .await;
                }
                FailOutcome::LeaseLost => {}
            }
        }
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn cancelled(&self, lease: &Lease) -> Result<bool> {
        let (inner, receipt) = unwrap(lease);
        let done = self.ledger.cancelled(&inner).await?;
        self.ended(receipt, done).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn release(&self, lease: &Lease) -> Result<bool> {
        let (inner, receipt) = unwrap(lease);
        if !self.ledger.release(&inner).await? {
            return Ok(false);
        }
        let Some(receipt) = receipt else {
            return Ok(true);
        };
        let task = TaskRef::of(&lease.task);
        // Pending again unless a cancel was waiting (then it is cancelled).
        let pending = self
            .ledger
            .get(task.tenant_id, task.task_id)
            .await
            .map(|t| t.status == TaskStatus::Pending)
            .unwrap_or(true);
        if !pending {
            self.ack(&receipt).await;
        } else if let Err(e) = self.delivery.requeue(&receipt, &task.body()).await {
            // The old delivery comes back when the lease would have lapsed.
            tracing::warn!(task = %task.task_id, broker = self.delivery.name(), error = %e.chain(), "could not deliver a released task again");
        }
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        // A pending task's delivery is dropped when it is next received.
        self.ledger.cancel(tenant, id).await
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn retry(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let task = self.ledger.retry(tenant, id).await?;
        self.publish(&task, "retry").await;
        Ok(task)
    }

    async fn get(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        self.ledger.get(tenant, id).await
    }

    async fn list(
        &self,
        tenant: TenantId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>> {
        self.ledger.list(tenant, filter, page).await
    }

    async fn depth(&self) -> Result<QueueDepth> {
        self.ledger.depth().await
    }

    async fn tenant_depth(
        &self,
        tenant: TenantId,
        collections: Option<&[CollectionId]>,
    ) -> Result<QueueDepth> {
        self.ledger.tenant_depth(tenant, collections).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            id: TaskId::new(),
            tenant_id: TenantId::new(),
            kind: docent_domain::TaskKind::IngestDocument,
            status: TaskStatus::Processing,
            document_id: None,
            collection_id: None,
            attempts: 1,
            max_attempts: 3,
            lease_owner: Some("w".into()),
            lease_expires_at: None,
            run_after: Utc::now(),
            progress: Progress::default(),
            error: None,
            dead_lettered: false,
            cancel_requested: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            started_at: None,
            finished_at: None,
            payload: serde_json::Value::Null,
            traceparent: None,
        }
    }

    #[test]
    fn lease_tokens_carry_the_receipt_and_give_back_the_ledgers() {
        let ledger = Lease {
            task: task(),
            token: "0b9c-token".into(),
            expires_at: Utc::now(),
        };
        // Receipts may hold the separator (an SQS receipt is `count|handle`).
        for receipt in ["1700000000000-3", "2|AQEB+x/y|z=="] {
            let wrapped = wrap(ledger.clone(), receipt);
            assert_ne!(wrapped.token, ledger.token);
            let (inner, back) = unwrap(&wrapped);
            assert_eq!(inner, ledger);
            assert_eq!(back.as_deref(), Some(receipt));
        }
        // A lease that never went through a broker is the ledger's as is.
        assert_eq!(unwrap(&ledger), (ledger.clone(), None));
    }

    #[test]
    fn bodies_name_the_task_and_tenant_and_are_stable() {
        let t = task();
        let r = TaskRef::of(&t);
        assert_eq!(TaskRef::parse(&r.body()), Some(r));
        assert_eq!(r.body(), TaskRef::of(&t).body());
        assert_eq!(TaskRef::parse("{\"task_id\": \"nope\"}"), None);
        assert_eq!(TaskRef::parse("not a task"), None);
    }

    #[test]
    fn times_round_up_to_whole_ticks() {
        let s = Duration::from_secs(1);
        let ms = Duration::from_millis(1);
        assert_eq!(round_up(Duration::ZERO, s), Duration::ZERO);
        assert_eq!(round_up(Duration::from_millis(300), s), s);
        assert_eq!(round_up(Duration::from_millis(1000), s), s);
        assert_eq!(round_up(Duration::from_millis(1001), s), 2 * s);
        assert_eq!(round_up(Duration::from_micros(1500), ms), 2 * ms);
        assert_eq!(
            round_up(Duration::from_millis(300), ms),
            Duration::from_millis(300)
        );
    }
}
