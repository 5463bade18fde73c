//! The worker: lease a task, keep its lease alive with heartbeats, run it under its time limits,
//! and record the outcome through the same lease.
//!
//! - A heartbeat every third of the visibility timeout extends the lease; it also learns of a
//!   cancel request (the job is stopped, the task marked `cancelled`) or of a lost lease (the job
//!   is dropped and nothing is recorded — another worker owns the task now).
//! - Time limits, counted from the lease. A long job stops at its safe points
//!   ([`TaskContext::safe_point`]: a record file after each committed batch) once past the soft
//!   limit, and returns [`JobError::Paused`]: the lease is released without counting the
//!   attempt, the progress and checkpoint stay, and the task resumes at its checkpoint on its
//!   next lease (any worker's). A job without checkpoints (a document that is not a record
//!   file, a summary, a retry of failed rows, whose re-run would redo the same rows) runs on.
//!   At the hard limit the job is dropped — which also stops its extraction thread and model
//!   calls — and the attempt fails with `task_timeout` (not retried). A host with a deadline of
//!   its own (an AWS Lambda invocation) runs the task under [`RunLimits::within`] it: both
//!   limits end before the deadline, and that timeout is retried (the attempt counts).
//! - On shutdown workers stop leasing; running jobs get `shutdown_grace` to finish, then are
//!   interrupted and their leases released without using up an attempt.
//! - Fair share: a long job asks [`TaskContext::should_yield`] at its safe points (a record file
//!   after each committed batch) and, while its tenant holds more than its share of workers and
//!   another tenant waits, returns [`JobError::Yielded`]: the lease is released (no attempt
//!   counted) and the worker's next lease goes to the waiting tenant; the task resumes later
//!   from its checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use docent_domain::llm::caller::for_tenant;
use docent_domain::ports::{FailOutcome, Heartbeat, Lease};
use docent_domain::*;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Services;

/// Why a job stopped without a result of its own.
#[derive(Debug)]
pub enum JobError {
    /// The job failed; retried or not according to the error's code.
    Failed(Error),
    /// A user cancelled it (or its document is gone).
    Cancelled,
    /// The process is shutting down; the lease is released for another worker.
    Interrupted,
    /// The lease was lost; another worker owns the task.
    LeaseLost,
    /// The job stopped at a safe point so that another tenant gets the worker; the lease is
    /// released without counting the attempt and the task runs again later.
    Yielded,
    /// The job passed its soft time limit and stopped at a safe point, its progress and
    /// checkpoint committed; the lease is released without counting the attempt and the task
    /// resumes at its checkpoint on its next lease.
    Paused,
}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        JobError::Failed(e)
    }
}

const STOP_NONE: u8 = 0;
const STOP_CANCELLED: u8 = 1;
const STOP_LOST: u8 = 2;

/// What a running job can see and do.
pub struct TaskContext {
    /// Backends.
    pub services: Services,
    /// The lease (with the task as leased).
    pub lease: Lease,
    stop: CancellationToken,
    reason: Arc<AtomicU8>,
    soft_deadline: Instant,
}

impl TaskContext {
    fn stop_error(&self) -> JobError {
        match self.reason.load(Ordering::SeqCst) {
            STOP_LOST => JobError::LeaseLost,
            _ => JobError::Cancelled,
        }
    }

    /// Returns an error if the job should stop (cancelled, or lease lost).
    pub fn checkpoint(&self) -> Result<(), JobError> {
        if self.stop.is_cancelled() {
            Err(self.stop_error())
        } else {
            Ok(())
        }
    }

    /// Whether the soft time limit has passed: wrap up at the next safe point.
    pub fn past_soft_deadline(&self) -> bool {
        Instant::now() >= self.soft_deadline
    }

    /// A safe point of a job that resumes where it stopped (its checkpoint committed, more work
    /// left): [`JobError::Paused`] past the soft time limit, [`JobError::Yielded`] when another
    /// tenant should get the worker ([`Self::should_yield`]), a stop error when cancelled or
    /// the lease is lost; else the job goes on.
    pub async fn safe_point(&self) -> Result<(), JobError> {
        self.checkpoint()?;
        if self.past_soft_deadline() {
            return Err(JobError::Paused);
        }
        if self.should_yield().await {
            return Err(JobError::Yielded);
        }
        Ok(())
    }

    /// Whether the job should stop at this safe point and give the worker to another tenant
    /// ([`TaskQueue::should_yield`](docent_domain::ports::TaskQueue::should_yield)). Only a job
    /// that can resume where it stopped (a checkpoint committed) may act on it. A queue error
    /// answers false: the job goes on.
    pub async fn should_yield(&self) -> bool {
        match self.services.queue.should_yield(&self.lease).await {
            Ok(yes) => yes,
            Err(e) => {
                tracing::debug!(error = %e.chain(), "could not ask the queue about fair share");
                false
            }
        }
    }

    /// Persists progress (status `processing` or `processing_chunks`).
    pub async fn progress(&self, status: TaskStatus, progress: Progress) -> Result<(), JobError> {
        self.checkpoint()?;
        if self
            .services
            .queue
            .progress(&self.lease, status, progress)
            .await?
        {
            Ok(())
        } else {
            Err(JobError::LeaseLost)
        }
    }
}

/// A pool of workers running in this process.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    stop_leasing: CancellationToken,
    interrupt: CancellationToken,
}

fn worker_name(slot: usize) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{host}-{}-{slot}", std::process::id())
}

impl WorkerPool {
    /// Starts `concurrency` workers.
    pub fn start(services: Services, concurrency: usize) -> Self {
        let stop_leasing = CancellationToken::new();
        let interrupt = CancellationToken::new();
        let handles = (0..concurrency)
            .map(|slot| {
                let (svc, stop, int) = (services.clone(), stop_leasing.clone(), interrupt.clone());
                tokio::spawn(async move { worker_loop(svc, worker_name(slot), stop, int).await })
            })
            .collect();
        tracing::info!(concurrency, "worker pool started");
        Self {
            handles,
            stop_leasing,
            interrupt,
        }
    }

    /// Stops leasing, lets running tasks finish for up to `grace`, then interrupts them (their
    /// leases are released) and waits for every worker to exit.
    pub async fn shutdown(self, grace: Duration) {
        self.stop_leasing.cancel();
        let mut handles = self.handles;
        let all = futures::future::join_all(handles.iter_mut());
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("tasks still running after the grace period; releasing their leases");
            self.interrupt.cancel();
            // Handles that finished during the grace period were already awaited.
            futures::future::join_all(handles.into_iter().filter(|h| !h.is_finished())).await;
        }
        tracing::info!("worker pool stopped");
    }
}

async fn worker_loop(
    svc: Services,
    name: String,
    stop_leasing: CancellationToken,
    interrupt: CancellationToken,
) {
    let poll = svc.config.queue.poll_interval;
    let visibility = svc.config.queue.visibility_timeout;
    while !stop_leasing.is_cancelled() {
        // Registered before looking, so an enqueue between the look and the wait still wakes us.
        let woken = svc.wake.notified();
        // A lease call may long-poll (SQS waits up to 20 s for a message): shutdown does not
        // wait for it. The call is never dropped midway (it may have leased in the database
        // already): on shutdown it finishes in the background and gives back what it leased.
        let (queue, worker) = (svc.queue.clone(), name.clone());
        let mut call = tokio::spawn(async move { queue.lease(&worker, visibility).await });
        let leased = tokio::select! {
            biased;
            r = &mut call => r.unwrap_or_else(|e| Err(docent_domain::Error::internal(e))),
            _ = stop_leasing.cancelled() => {
                let queue = svc.queue.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(Some(lease))) = call.await {
                        let _ = queue.release(&lease).await;
                    }
                });
                break;
            }
        };
        match leased {
            Ok(Some(lease)) => {
                run_leased(&svc, lease, &interrupt).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop_leasing.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %e.chain(), "could not lease a task");
                tokio::select! {
                    _ = tokio::time::sleep(poll * 8) => {}
                    _ = stop_leasing.cancelled() => {}
                }
            }
        }
    }
}

/// Leases and runs tasks one at a time until none is runnable; returns how many ran. Tests use
/// it to drain the queue instead of sleeping; the CLI uses it to ingest without a server.
pub async fn drain(svc: &Services, worker: &str) -> Result<usize> {
    let never = CancellationToken::new();
    let mut ran = 0;
    while let Some(lease) = svc
        .queue
        .lease(worker, svc.config.queue.visibility_timeout)
        .await?
    {
        run_leased(svc, lease, &never).await;
        ran += 1;
    }
    Ok(ran)
}

async fn heartbeat_loop(
    svc: Services,
    lease: Lease,
    stop: CancellationToken,
    reason: Arc<AtomicU8>,
) {
    let visibility = svc.config.queue.visibility_timeout;
    let every = (visibility / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        match svc.queue.heartbeat(&lease, visibility).await {
            Ok(Heartbeat::Extended) => {}
            Ok(Heartbeat::CancelRequested) => {
                reason.store(STOP_CANCELLED, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            Ok(Heartbeat::Lost) => {
                reason.store(STOP_LOST, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            Err(e) => tracing::warn!(task = %lease.task.id, error = %e.chain(), "heartbeat failed"),
        }
    }
}

async fn execute(ctx: &TaskContext) -> Result<Progress, JobError> {
    match ctx.lease.task.kind {
        TaskKind::IngestDocument => crate::ingest::run(ctx).await,
        TaskKind::SummarizeDocument => crate::answer::run_summary_task(ctx).await,
        TaskKind::RetryFailedRows => crate::ingest::run_retry_failed_rows(ctx).await,
    }
}

/// The time limits of one run of a task, counted from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Past this a job that can resume stops at its next safe point ([`JobError::Paused`]).
    pub soft: Duration,
    /// At this the job is dropped and the attempt fails with `task_timeout`.
    pub hard: Duration,
    /// Whether that failure may be retried: the hard limit is the host's — the time an AWS
    /// Lambda invocation has left — not the task's own `worker.hard_time_limit`, so another
    /// run may fit (the attempt counts, so a task that never fits is dead-lettered).
    pub retry_timeout: bool,
}

impl RunLimits {
    /// `worker.soft_time_limit` and `worker.hard_time_limit`.
    pub fn of(config: &docent_config::WorkerConfig) -> Self {
        Self {
            soft: config.soft_time_limit,
            hard: config.hard_time_limit,
            retry_timeout: false,
        }
    }

    /// These limits, shortened to end `margin` before a host's deadline `left` from now (the
    /// lease is then recorded and the delivery settled before the host stops the process):
    /// the hard limit at `left − margin` when that is sooner (a retryable timeout), the soft
    /// limit a margin earlier still, so a job that can resume pauses at a safe point first.
    pub fn within(self, left: Duration, margin: Duration) -> Self {
        let hard = left.saturating_sub(margin);
        if hard >= self.hard {
            return self;
        }
        Self {
            soft: self.soft.min(hard.saturating_sub(margin)),
            hard,
            retry_timeout: true,
        }
    }
}

/// Runs one leased task to an outcome and records it, under the worker's time limits. Returns
/// the recorded status, if any.
pub async fn run_leased(
    svc: &Services,
    lease: Lease,
    interrupt: &CancellationToken,
) -> Option<TaskStatus> {
    let limits = RunLimits::of(&svc.config.worker);
    run_leased_within(svc, lease, interrupt, limits).await
}

/// [`run_leased`] under explicit time limits: the one body every host of workers runs a leased
/// task with (the worker loop, [`drain`], and the AWS Lambda SQS handler, whose limits end
/// before its invocation's deadline).
pub async fn run_leased_within(
    svc: &Services,
    lease: Lease,
    interrupt: &CancellationToken,
    limits: RunLimits,
) -> Option<TaskStatus> {
    let span = tracing::info_span!("task", task = %lease.task.id, kind = %lease.task.kind, attempt = lease.task.attempts);
    // The task continues the trace of the request that enqueued it.
    if let Some(traceparent) = &lease.task.traceparent {
        crate::trace_context::continue_trace(&span, traceparent);
    }
    // Model calls of the task are charged to its tenant's share of the model budgets.
    let tenant = lease.task.tenant_id;
    for_tenant(tenant, run_leased_inner(svc, lease, interrupt, limits))
        .instrument(span)
        .await
}

async fn run_leased_inner(
    svc: &Services,
    lease: Lease,
    interrupt: &CancellationToken,
    limits: RunLimits,
) -> Option<TaskStatus> {
    let started = Instant::now();
    let task = lease.task.clone();
    let stop = CancellationToken::new();
    let reason = Arc::new(AtomicU8::new(STOP_NONE));
    let heartbeat = tokio::spawn(heartbeat_loop(
        svc.clone(),
        lease.clone(),
        stop.clone(),
        reason.clone(),
    ));
    let ctx = TaskContext {
        services: svc.clone(),
        lease,
        stop: stop.clone(),
        reason,
        soft_deadline: started + limits.soft,
    };
    let hard = limits.hard;
    let mut timed_out = false;
    let result = tokio::select! {
        biased;
        _ = stop.cancelled() => Err(ctx.stop_error()),
        _ = interrupt.cancelled() => Err(JobError::Interrupted),
        r = tokio::time::timeout(hard, execute(&ctx)) => r.unwrap_or_else(|_| {
            timed_out = true;
            Err(JobError::Failed(Error::new(
                Code::TaskTimeout,
                format!("the task ran past its hard time limit of {:.1}s", hard.as_secs_f64()),
            )))
        }),
    };
    heartbeat.abort();
    let queue = &svc.queue;
    let lease = &ctx.lease;
    let recorded = match result {
        Ok(progress) => {
            let status = if progress.rows_failed > 0 {
                TaskStatus::PartiallyCompleted
            } else {
                TaskStatus::Completed
            };
            queue
                .complete(lease, status, progress)
                .await
                .map(|ok| ok.then_some(status))
        }
        Err(JobError::Failed(e)) => {
            tracing::warn!(error = %e.chain(), "task failed");
            let retryable = e.is_retryable() || (timed_out && limits.retry_timeout);
            queue
                .fail(lease, e.info(), retryable, e.retry_after)
                .await
                .map(|o| match o {
                    FailOutcome::Retrying { at } => {
                        tracing::info!(%at, "task will be retried");
                        Some(TaskStatus::Pending)
                    }
                    FailOutcome::Failed | FailOutcome::DeadLettered => Some(TaskStatus::Failed),
                    FailOutcome::LeaseLost => None,
                })
        }
        Err(JobError::Cancelled) => queue
            .cancelled(lease)
            .await
            .map(|ok| ok.then_some(TaskStatus::Cancelled)),
        Err(JobError::Interrupted) => queue
            .release(lease)
            .await
            .map(|ok| ok.then_some(TaskStatus::Pending)),
        Err(stop @ (JobError::Yielded | JobError::Paused)) => {
            if matches!(stop, JobError::Paused) {
                tracing::info!("task passed its soft time limit; it resumes at its checkpoint");
                metrics::counter!("docent_tasks_paused_total", "kind" => task.kind.as_str())
                    .increment(1);
            } else {
                tracing::info!("task yields its worker to another tenant");
                metrics::counter!("docent_tasks_yielded_total", "kind" => task.kind.as_str())
                    .increment(1);
            }
            queue
                .release(lease)
                .await
                .map(|ok| ok.then_some(TaskStatus::Pending))
        }
        Err(JobError::LeaseLost) => Ok(None),
    };
    let status = match recorded {
        Ok(s) => s,
        Err(e) => {
            // The lease will lapse and the task be re-delivered: processing is idempotent.
            tracing::error!(error = %e.chain(), "could not record the task outcome");
            None
        }
    };
    let label = status.map_or("lease_lost", TaskStatus::as_str);
    if task.kind == TaskKind::IngestDocument {
        crate::ingest::count_document(status);
    }
    metrics::counter!("docent_tasks_finished_total", "kind" => task.kind.as_str(), "status" => label).increment(1);
    metrics::histogram!("docent_task_duration_seconds", "kind" => task.kind.as_str())
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        status = label,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "task finished"
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_end_a_margin_before_a_hosts_deadline() {
        let s = Duration::from_secs;
        let own = RunLimits {
            soft: s(600),
            hard: s(3600),
            retry_timeout: false,
        };
        // A deadline sooner than the task's own limits: both end before it, the soft one a
        // margin earlier, and the timeout may be retried.
        assert_eq!(
            own.within(s(900), s(10)),
            RunLimits {
                soft: s(600),
                hard: s(890),
                retry_timeout: true,
            }
        );
        assert_eq!(
            own.within(s(300), s(10)),
            RunLimits {
                soft: s(280),
                hard: s(290),
                retry_timeout: true,
            }
        );
        // No time left: limits of zero (the task stops at once).
        assert_eq!(own.within(s(5), s(10)).hard, Duration::ZERO);
        // A deadline beyond the task's own hard limit changes nothing.
        assert_eq!(own.within(s(7200), s(10)), own);
    }
}
