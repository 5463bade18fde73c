//! [`TaskQueue`] over the `tasks` table of either engine ([`SqlQueue`]: [`SqliteQueue`],
//! [`PgQueue`]), with SQS semantics: a lease is a token plus an expiry (the visibility timeout);
//! every state change through a lease matches the token, so a worker whose lease lapsed and was
//! handed to another can no longer touch the task. `attempts` is the receive count; past
//! `max_attempts` a lapsed task is dead-lettered instead of re-delivered. It is also a
//! [`TaskLedger`]: the record behind a broker's deliveries (the SQS queue), which leases the one
//! task a delivery names.
//!
//! Every statement is written once over the [`crate::engine`] seam. A lease is one `UPDATE`
//! whose target is picked by a subquery: SQLite runs it under its single writer lock, so two
//! workers can never pick the same row; PostgreSQL locks the candidate row with
//! `FOR UPDATE SKIP LOCKED` ([`Dialect::skip_locked`]), so any number of workers on any number
//! of hosts lease concurrently without blocking each other or sharing a task.
//!
//! Leases are fair across tenants (see [`TaskQueue::lease`]): one statement picks the oldest
//! runnable task of a tenant holding fewer than the cap live leases, else the oldest of any
//! tenant. The tenants at their cap are a GROUP BY over the running rows (few: one per worker);
//! the oldest pending pick walks an index in order (SQLite `tasks_fair`, migration `0009`, read
//! without touching rows; PostgreSQL `tasks_runnable`). On PostgreSQL concurrent leases read the
//! running rows each from its own snapshot, so a tenant may briefly hold one lease above its
//! cap; [`TaskQueue::should_yield`] evens that out.
//!
//! Wake-ups (PostgreSQL): a trigger (`migrations/postgres`) sends `NOTIFY docent_tasks_<schema>`
//! whenever a task becomes `pending`. [`PgQueue::wait_for_task`] waits for one (LISTEN on a
//! dedicated connection) with a timeout, and [`PgQueue::forward_wakeups`] turns them into a
//! [`tokio::sync::Notify`] for the worker pool. Notifications are only hints: workers still
//! poll, so a dropped listener connection or a missed notification delays a task by at most one
//! poll interval. SQLite workers poll.

use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docent_domain::ports::{Backoff, FailOutcome, Heartbeat, Lease, TaskLedger, TaskQueue};
use docent_domain::*;

use crate::common::{cursor, error_info, not_found, paginate};
use crate::engine::{Db, Dialect, Engine, Row, Sql, db_err, ms, now};

/// The SQL-table queue over either engine.
pub struct SqlQueue<E: Engine> {
    db: Db,
    max_attempts: u32,
    backoff: Backoff,
    fair_cap: u32,
    /// The LISTEN connection of [`PgQueue::wait_for_task`], opened on first use.
    #[cfg(feature = "postgres")]
    listener: tokio::sync::Mutex<Option<crate::engine::Listener>>,
    engine: PhantomData<fn() -> E>,
}

/// The SQL-table queue on SQLite.
pub type SqliteQueue = SqlQueue<sqlx::Sqlite>;

/// The SQL-table queue on PostgreSQL.
#[cfg(feature = "postgres")]
pub type PgQueue = SqlQueue<sqlx::Postgres>;

impl<E: Engine> SqlQueue<E> {
    /// A queue over the `tasks` table of `pool` (migrations already applied), fair across
    /// tenants with a cap of [`DEFAULT_FAIR_CAP`](crate::DEFAULT_FAIR_CAP) running tasks.
    pub fn new(pool: sqlx::Pool<E>, max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            db: E::db(pool),
            max_attempts,
            backoff,
            fair_cap: crate::DEFAULT_FAIR_CAP,
            #[cfg(feature = "postgres")]
            listener: tokio::sync::Mutex::new(None),
            engine: PhantomData,
        }
    }

    /// Sets the fair-share cap (`queue.max_running_per_tenant`; 0: no fairness).
    pub fn with_max_running_per_tenant(mut self, cap: u32) -> Self {
        self.fair_cap = cap;
        self
    }
}

/// The channel the `tasks` trigger notifies when a task becomes pending, followed by the name of
/// the schema holding the table (`docent_tasks_public`).
#[cfg(feature = "postgres")]
pub const TASKS_CHANNEL: &str = "docent_tasks_";

#[cfg(feature = "postgres")]
impl PgQueue {
    /// Waits up to `timeout` for a task to become pending (a `NOTIFY` on [`TASKS_CHANNEL`] and
    /// the schema). Wake-ups are hints: one may come with nothing left to lease.
    /// True if notified; false on timeout. When the listener cannot connect it sleeps `timeout`
    /// and returns false, so callers fall back to polling at that pace.
    pub async fn wait_for_task(&self, timeout: Duration) -> bool {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            match self.listen().await {
                Ok(l) => *guard = Some(l),
                Err(e) => {
                    tracing::debug!(error = %e, "task notifications unavailable; polling");
                    drop(guard);
                    tokio::time::sleep(timeout).await;
                    return false;
                }
            }
        }
        let Some(listener) = guard.as_mut() else {
            return false;
        };
        match tokio::time::timeout(timeout, listener.recv()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "task listener failed; reconnecting on next wait");
                *guard = None;
                false
            }
            Err(_) => false,
        }
    }

    /// Spawns a task that calls `wake.notify_waiters()` on every task notification, for as long
    /// as the queue and another owner of `wake` live; `retry` paces reconnects and liveness
    /// checks.
    pub fn forward_wakeups(
        self: &std::sync::Arc<Self>,
        wake: std::sync::Arc<tokio::sync::Notify>,
        retry: Duration,
    ) {
        let queue = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            while std::sync::Arc::strong_count(&wake) > 1 {
                let Some(queue) = queue.upgrade() else { return };
                if queue.wait_for_task(retry).await {
                    wake.notify_waiters();
                }
            }
        });
    }

    async fn listen(&self) -> Result<crate::engine::Listener> {
        let schema: String = Sql::new("SELECT current_schema()").scalar(&self.db).await?;
        crate::engine::Listener::connect(&self.db, &format!("{TASKS_CHANNEL}{schema}")).await
    }
}

const TASK_COLS: &str = "id, tenant_id, kind, status, document_id, collection_id, payload, attempts, \
    max_attempts, lease_token, lease_owner, lease_expires_at, run_after, chunks_total, chunks_done, \
    rows_failed, error_code, error_message, dead_lettered, cancel_requested, created_at, updated_at, \
    started_at, finished_at, traceparent";

const RUNNING: &str = "('processing', 'processing_chunks')";

/// Clears the lease of the task an `UPDATE tasks SET` changes.
const CLEAR_LEASE: &str = "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL";

fn task_from(row: &Row) -> Result<Task> {
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    let int = |c: &str| row.get::<i64>(c);
    Ok(Task {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        kind: TaskKind::parse(&kind)
            .ok_or_else(|| Error::internal(format!("unknown task kind {kind}")))?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("corrupt status {status}")))?,
        document_id: row.opt_id("document_id")?,
        collection_id: row.opt_id("collection_id")?,
        attempts: int("attempts")? as u32,
        max_attempts: int("max_attempts")? as u32,
        lease_owner: row.get("lease_owner")?,
        lease_expires_at: row.opt_time("lease_expires_at")?,
        run_after: row.time("run_after")?,
        progress: Progress {
            chunks_total: int("chunks_total")? as u64,
            chunks_done: int("chunks_done")? as u64,
            rows_failed: int("rows_failed")? as u64,
        },
        error: error_info(row)?,
        dead_lettered: row.get("dead_lettered")?,
        cancel_requested: row.get("cancel_requested")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        started_at: row.opt_time("started_at")?,
        finished_at: row.opt_time("finished_at")?,
        payload: row.json("payload")?,
        traceparent: row.get("traceparent")?,
    })
}

/// `d` after `t`, at millisecond precision (saturating).
fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    ms(t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC))
}

impl<E: Engine> SqlQueue<E> {
    /// Settles tasks whose lease lapsed and that must not be handed out again: those out of
    /// attempts are dead-lettered, those with a pending cancel are cancelled.
    async fn settle_lapsed(&self, now: DateTime<Utc>) -> Result<()> {
        let lost = Error::new(
            Code::WorkerLost,
            "the worker running this task stopped responding on its last attempt",
        )
        .info();
        let dead = Sql::new(format!(
            "UPDATE tasks SET status = 'failed', dead_lettered = TRUE, error_code = ?, error_message = ?, \
             {CLEAR_LEASE}, finished_at = ?, updated_at = ? \
             WHERE status IN {RUNNING} AND lease_expires_at <= ? AND attempts >= max_attempts AND NOT cancel_requested"
        ))
        .bind(lost.code)
        .bind(lost.message);
        let cancelled = Sql::new(format!(
            "UPDATE tasks SET status = 'cancelled', {CLEAR_LEASE}, finished_at = ?, updated_at = ? \
             WHERE status IN {RUNNING} AND lease_expires_at <= ? AND cancel_requested"
        ));
        for q in [dead, cancelled] {
            q.bind(now)
                .bind(now)
                .bind(now)
                .execute(&self.db)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// Leases the next runnable task, or with `only` that task if it is runnable and fairness
    /// allows it (the [`TaskLedger::lease_task`] of a broker delivery), after settling lapsed
    /// leases.
    async fn lease_one(
        &self,
        worker: &str,
        visibility: Duration,
        only: Option<(TenantId, TaskId)>,
    ) -> Result<Option<Lease>> {
        let now = now();
        self.settle_lapsed(now).await?;
        let token = uuid::Uuid::new_v4().to_string();
        let expires = after(now, visibility);
        let d = self.db.dialect();
        let cap = i64::from(self.fair_cap);
        let mut q = Sql::new(
            "UPDATE tasks SET status = 'processing', lease_token = ?, lease_owner = ?, lease_expires_at = ?, \
             attempts = attempts + 1, started_at = COALESCE(started_at, ?), updated_at = ? WHERE ",
        );
        q.arg(&token).arg(worker).arg(expires).arg(now).arg(now);
        // COALESCE stops at the first pick, so the second only runs when no tenant under the cap
        // has a runnable task. A named task is locked by the UPDATE itself (PostgreSQL): a
        // concurrent lease of it waits, then finds it no longer runnable.
        match (only, self.fair_cap) {
            (None, 0) => {
                q.push("id = (");
                oldest(&mut q, d, now, None);
                q.push(")");
            }
            (None, _) => {
                q.push("id = COALESCE((");
                oldest(
                    &mut q,
                    d,
                    now,
                    Some(&|q: &mut Sql| under_cap(q, d, now, cap)),
                );
                q.push("), (");
                oldest(&mut q, d, now, None);
                q.push("))");
            }
            (Some((tenant, id)), fair) => {
                q.push("tenant_id = ").push_bind(tenant.to_string());
                q.push(" AND id = ").push_bind(id.to_string());
                q.push(" AND ");
                runnable(&mut q, now);
                if fair > 0 {
                    q.push(" AND (").push_bind(tenant.to_string());
                    q.push(" NOT IN (");
                    holding(&mut q, d, now, ">=", cap);
                    q.push(") OR NOT ");
                    waiting(&mut q, now, &|q: &mut Sql| under_cap(q, d, now, cap));
                    q.push(")");
                }
            }
        }
        q.push(" RETURNING ").push(TASK_COLS);
        let row = q.fetch_optional(&self.db).await.map_err(db_err)?;
        row.map(|row| {
            Ok(Lease {
                task: task_from(&row)?,
                token: token.clone(),
                expires_at: expires,
            })
        })
        .transpose()
    }

    /// Records a failure through the lease; a retryable one with attempts left runs again
    /// `delay` from now.
    async fn record_failure(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        delay: Duration,
    ) -> Result<FailOutcome> {
        let now = now();
        let task = &lease.task;
        let mut q = Sql::new(format!(
            "UPDATE tasks SET {CLEAR_LEASE}, error_code = ?, error_message = ?, updated_at = ?"
        ))
        .bind(error.code)
        .bind(error.message)
        .bind(now);
        let outcome = if !retryable {
            q.push(", status = 'failed', finished_at = ").push_bind(now);
            FailOutcome::Failed
        } else if task.attempts >= task.max_attempts {
            q.push(", status = 'failed', dead_lettered = TRUE, finished_at = ")
                .push_bind(now);
            FailOutcome::DeadLettered
        } else {
            let at = after(now, delay);
            q.push(", status = 'pending', run_after = ").push_bind(at);
            FailOutcome::Retrying { at }
        };
        Ok(if self.with_lease(lease, q).await? {
            outcome
        } else {
            FailOutcome::LeaseLost
        })
    }

    /// Runs `update` (an `UPDATE tasks SET …`) guarded by the lease token; true if the lease was
    /// still current.
    async fn with_lease(&self, lease: &Lease, mut update: Sql) -> Result<bool> {
        update
            .push(" WHERE id = ")
            .push_bind(lease.task.id.to_string());
        update.push(" AND lease_token = ").push_bind(&lease.token);
        update.push(" AND status IN ").push(RUNNING);
        Ok(update.execute(&self.db).await.map_err(db_err)? == 1)
    }

    /// Sets the status and progress of a leased task; `finished` also ends the lease, clears the
    /// error and stamps `finished_at`.
    async fn set_progress(
        &self,
        lease: &Lease,
        status: TaskStatus,
        p: Progress,
        finished: bool,
    ) -> Result<bool> {
        let now = now();
        let mut q = Sql::new(
            "UPDATE tasks SET status = ?, chunks_total = ?, chunks_done = ?, rows_failed = ?, updated_at = ?",
        )
        .bind(status.as_str())
        .bind(p.chunks_total as i64)
        .bind(p.chunks_done as i64)
        .bind(p.rows_failed as i64)
        .bind(now);
        if finished {
            q.push(", ").push(CLEAR_LEASE);
            q.push(", error_code = NULL, error_message = NULL, finished_at = ")
                .push_bind(now);
        }
        self.with_lease(lease, q).await
    }
}

/// Pending and due at `now`.
fn pending(q: &mut Sql, now: DateTime<Utc>) {
    q.push("status = 'pending' AND run_after <= ")
        .push_bind(now);
}

/// Leased, the lease lapsed at `now`, attempts left and no cancel request.
fn lapsed(q: &mut Sql, now: DateTime<Utc>) {
    q.push("status IN ").push(RUNNING);
    q.push(" AND lease_expires_at <= ").push_bind(now);
    q.push(" AND attempts < max_attempts AND NOT cancel_requested");
}

/// Whether a task is runnable at `now`: pending and due, or lapsed.
fn runnable(q: &mut Sql, now: DateTime<Utc>) {
    q.push("((");
    pending(q, now);
    q.push(") OR (");
    lapsed(q, now);
    q.push("))");
}

/// A condition pushed onto a statement, with its binds.
type Cond<'a> = &'a dyn Fn(&mut Sql);

/// The id of the oldest runnable task matching `extra`, locked with SKIP LOCKED on PostgreSQL.
/// Pending and lapsed tasks are picked apart — the pending one by walking an index in order,
/// the lapsed ones (a few, one per dead worker) by status — and the older taken: one `OR` over
/// both made either engine collect and sort every runnable task.
fn oldest(q: &mut Sql, d: Dialect, now: DateTime<Utc>, extra: Option<Cond>) {
    let pick = |q: &mut Sql, which: fn(&mut Sql, DateTime<Utc>)| {
        q.push("SELECT id, run_after FROM tasks WHERE ");
        which(q, now);
        if let Some(extra) = extra {
            q.push(" AND ");
            extra(q);
        }
        q.push(" ORDER BY run_after, id LIMIT 1")
            .push(d.skip_locked());
    };
    q.push("SELECT id FROM (SELECT * FROM (");
    pick(q, pending);
    q.push(") p UNION ALL SELECT * FROM (");
    pick(q, lapsed);
    q.push(") l) c ORDER BY run_after, id LIMIT 1");
}

/// Whether a task matching `cond` is runnable at `now` (two index searches, as in [`oldest`]).
fn waiting(q: &mut Sql, now: DateTime<Utc>, cond: Cond) {
    q.push("(EXISTS (SELECT 1 FROM tasks WHERE ");
    pending(q, now);
    q.push(" AND ");
    cond(q);
    q.push(") OR EXISTS (SELECT 1 FROM tasks WHERE ");
    lapsed(q, now);
    q.push(" AND ");
    cond(q);
    q.push("))");
}

/// The tenants holding live leases at `now` in a number `op` (`>=`, `>`) `cap`: a search of
/// the running rows only (on SQLite, grouping by an unindexed `tenant_id` keeps the planner
/// from walking a tenant index for the grouping instead).
fn holding(q: &mut Sql, d: Dialect, now: DateTime<Utc>, op: &str, cap: i64) {
    q.push("SELECT tenant_id FROM tasks WHERE status IN ")
        .push(RUNNING);
    q.push(" AND lease_expires_at > ").push_bind(now);
    q.push(" GROUP BY ").push(&d.unindexed("tenant_id"));
    q.push(" HAVING COUNT(*) ")
        .push(op)
        .push(" ")
        .push_bind(cap);
}

/// Not one of the tenants at their cap at `now`.
fn under_cap(q: &mut Sql, d: Dialect, now: DateTime<Utc>, cap: i64) {
    q.push("tenant_id NOT IN (");
    holding(q, d, now, ">=", cap);
    q.push(")");
}

impl<E: Engine> SqlQueue<E> {
    /// Tasks by status, and the dead-lettered ones: every tenant's, or one tenant's, perhaps
    /// only those of some collections (an empty list: none).
    async fn count_tasks(
        &self,
        scope: Option<(TenantId, Option<&[CollectionId]>)>,
    ) -> Result<QueueDepth> {
        let mut q = Sql::new(
            "SELECT status, COUNT(*) AS n, SUM(CASE WHEN dead_lettered THEN 1 ELSE 0 END) AS dl \
             FROM tasks WHERE 1 = 1",
        );
        if let Some((tenant, collections)) = scope {
            q.push(" AND tenant_id = ").push_bind(tenant.to_string());
            match collections {
                Some([]) => {
                    q.push(" AND 1 = 0");
                }
                Some(c) => {
                    q.push_in("collection_id", c.iter().map(ToString::to_string).collect());
                }
                None => {}
            }
        }
        q.push(" GROUP BY status");
        let rows = q.fetch_all(&self.db).await.map_err(db_err)?;
        let mut depth = QueueDepth::default();
        for row in rows {
            let status: String = row.get("status")?;
            let n: i64 = row.get("n")?;
            let dl: Option<i64> = row.get("dl")?;
            if let Some(s) = TaskStatus::parse(&status) {
                depth.by_status.push((s, n as u64));
            }
            depth.dead_lettered += dl.unwrap_or(0) as u64;
        }
        Ok(depth)
    }
}

impl<E: Engine> SqlQueue<E> {
    /// Since when the oldest runnable task has waited: the earliest due time of a pending task,
    /// or lapse of a lease that may run again (two index walks, as in [`oldest`]).
    async fn oldest_runnable_since(&self) -> Result<Option<DateTime<Utc>>> {
        let now = now();
        let mut oldest = None;
        for (which, col) in [
            (pending as fn(&mut Sql, DateTime<Utc>), "run_after"),
            (lapsed, "lease_expires_at"),
        ] {
            let mut q = Sql::new(format!("SELECT {col} AS since FROM tasks WHERE "));
            which(&mut q, now);
            q.push(" ORDER BY ").push(col).push(" LIMIT 1");
            if let Some(row) = q.fetch_optional(&self.db).await.map_err(db_err)? {
                let since = row.time("since")?;
                oldest = Some(oldest.map_or(since, |o: DateTime<Utc>| o.min(since)));
            }
        }
        Ok(oldest)
    }
}

#[async_trait]
impl<E: Engine> TaskQueue for SqlQueue<E> {
    async fn ping(&self) -> Result<()> {
        Sql::new("SELECT COUNT(*) FROM tasks WHERE 1 = 0")
            .execute(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task> {
        let id = TaskId::new();
        let now = now();
        Sql::new(
            "INSERT INTO tasks (id, tenant_id, kind, status, document_id, collection_id, payload, max_attempts, run_after, created_at, updated_at, traceparent) \
             VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(new.kind.as_str())
        .bind(new.document_id.map(|d| d.to_string()))
        .bind(new.collection_id.map(|c| c.to_string()))
        .bind(new.payload)
        .bind(i64::from(new.max_attempts.unwrap_or(self.max_attempts).max(1)))
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(new.traceparent)
        .execute(&self.db)
        .await
        .map_err(db_err)?;
        self.get(tenant, id).await
    }

    async fn lease(&self, worker: &str, visibility: Duration) -> Result<Option<Lease>> {
        self.lease_one(worker, visibility, None).await
    }

    async fn should_yield(&self, lease: &Lease) -> Result<bool> {
        if self.fair_cap == 0 {
            return Ok(false);
        }
        let (d, now, cap) = (self.db.dialect(), now(), i64::from(self.fair_cap));
        let mut q = Sql::new("SELECT ? IN (").bind(lease.task.tenant_id.to_string());
        holding(&mut q, d, now, ">", cap);
        q.push(") AND ");
        waiting(&mut q, now, &|q: &mut Sql| under_cap(q, d, now, cap));
        q.scalar(&self.db).await
    }

    async fn heartbeat(&self, lease: &Lease, visibility: Duration) -> Result<Heartbeat> {
        let now = now();
        let cancel: Option<bool> = Sql::new(format!(
            "UPDATE tasks SET lease_expires_at = ?, updated_at = ? WHERE id = ? AND lease_token = ? \
             AND status IN {RUNNING} RETURNING cancel_requested"
        ))
        .bind(after(now, visibility))
        .bind(now)
        .bind(lease.task.id.to_string())
        .bind(&lease.token)
        .scalar_optional(&self.db)
        .await?;
        Ok(match cancel {
            None => Heartbeat::Lost,
            Some(false) => Heartbeat::Extended,
            Some(true) => Heartbeat::CancelRequested,
        })
    }

    async fn progress(&self, lease: &Lease, status: TaskStatus, p: Progress) -> Result<bool> {
        if !status.is_running() {
            return Err(Error::internal(format!(
                "progress with non-running status {status}"
            )));
        }
        self.set_progress(lease, status, p, false).await
    }

    async fn complete(&self, lease: &Lease, status: TaskStatus, p: Progress) -> Result<bool> {
        if !matches!(
            status,
            TaskStatus::Completed | TaskStatus::PartiallyCompleted
        ) {
            return Err(Error::internal(format!("complete with status {status}")));
        }
        self.set_progress(lease, status, p, true).await
    }

    async fn fail(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Result<FailOutcome> {
        let delay = self
            .backoff
            .delay(lease.task.attempts)
            .max(retry_after.unwrap_or_default());
        self.record_failure(lease, error, retryable, delay).await
    }

    async fn cancelled(&self, lease: &Lease) -> Result<bool> {
        let now = now();
        let q = Sql::new(format!(
            "UPDATE tasks SET {CLEAR_LEASE}, status = 'cancelled', finished_at = ?, updated_at = ?"
        ))
        .bind(now)
        .bind(now);
        self.with_lease(lease, q).await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let now = now();
        // A cancel asked for while it ran wins over the release.
        let q = Sql::new(format!(
            "UPDATE tasks SET {CLEAR_LEASE}, \
             status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, run_after = ?, \
             finished_at = CASE WHEN cancel_requested THEN ? ELSE NULL END, updated_at = ?"
        ))
        .bind(now)
        .bind(now)
        .bind(now);
        self.with_lease(lease, q).await
    }

    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let now = now();
        let task = self.get(tenant, id).await?;
        let q = match task.status {
            TaskStatus::Pending => Sql::new(
                "UPDATE tasks SET status = 'cancelled', finished_at = ?, updated_at = ? \
                 WHERE tenant_id = ? AND id = ? AND status = 'pending'",
            )
            .bind(now),
            TaskStatus::Processing | TaskStatus::ProcessingChunks => Sql::new(format!(
                "UPDATE tasks SET cancel_requested = TRUE, updated_at = ? \
                 WHERE tenant_id = ? AND id = ? AND status IN {RUNNING}"
            )),
            TaskStatus::Completed
            | TaskStatus::PartiallyCompleted
            | TaskStatus::Failed
            | TaskStatus::Cancelled => {
                return Err(Error::new(
                    Code::TaskStateConflict,
                    format!(
                        "task {id} is already {} and cannot be cancelled",
                        task.status
                    ),
                ));
            }
        };
        let changed = q
            .bind(now)
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&self.db)
            .await
            .map_err(db_err)?;
        if changed == 0 {
            // It changed state under us; report the current state.
            return Box::pin(self.cancel(tenant, id)).await;
        }
        self.get(tenant, id).await
    }

    async fn retry(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let now = now();
        let changed = Sql::new(
            "UPDATE tasks SET status = 'pending', attempts = 0, dead_lettered = FALSE, cancel_requested = FALSE, \
             error_code = NULL, error_message = NULL, run_after = ?, finished_at = NULL, updated_at = ?, \
             chunks_total = 0, chunks_done = 0, rows_failed = 0 \
             WHERE tenant_id = ? AND id = ? AND status IN ('failed', 'cancelled')",
        )
        .bind(now)
        .bind(now)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&self.db)
        .await
        .map_err(db_err)?;
        let task = self.get(tenant, id).await?;
        if changed == 0 {
            return Err(Error::new(
                Code::TaskStateConflict,
                format!(
                    "task {id} is {}; only failed or cancelled tasks can be retried",
                    task.status
                ),
            ));
        }
        Ok(task)
    }

    async fn get(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let row = Sql::new(format!(
            "SELECT {TASK_COLS} FROM tasks WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.db)
        .await
        .map_err(db_err)?;
        match row {
            Some(row) => task_from(&row),
            None => Err(not_found(Code::TaskNotFound, "task", id)),
        }
    }

    async fn list(
        &self,
        tenant: TenantId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>> {
        let limit = page.effective_limit();
        let mut q = Sql::new(format!("SELECT {TASK_COLS} FROM tasks WHERE tenant_id = ?"))
            .bind(tenant.to_string());
        if let Some(s) = filter.status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(k) = filter.kind {
            q.push(" AND kind = ").push_bind(k.as_str());
        }
        if let Some(d) = filter.document_id {
            q.push(" AND document_id = ").push_bind(d.to_string());
        }
        if let Some(c) = filter.collection_id {
            q.push(" AND collection_id = ").push_bind(c.to_string());
        }
        if let Some(dl) = filter.dead_lettered {
            q.push(" AND dead_lettered = ").push_bind(dl);
        }
        if let Some(c) = cursor::<TaskId>(&page)? {
            q.push(" AND id < ").push_bind(c);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(&self.db).await.map_err(db_err)?;
        let items = rows.iter().map(task_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |t| t.id.to_string()))
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let mut depth = self.count_tasks(None).await?;
        depth.oldest_runnable_since = self.oldest_runnable_since().await?;
        Ok(depth)
    }

    async fn tenant_depth(
        &self,
        tenant: TenantId,
        collections: Option<&[CollectionId]>,
    ) -> Result<QueueDepth> {
        self.count_tasks(Some((tenant, collections))).await
    }
}

#[async_trait]
impl<E: Engine> TaskLedger for SqlQueue<E> {
    async fn lease_task(
        &self,
        tenant: TenantId,
        id: TaskId,
        worker: &str,
        visibility: Duration,
    ) -> Result<Option<Lease>> {
        self.lease_one(worker, visibility, Some((tenant, id))).await
    }

    async fn fail_after(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        delay: Duration,
    ) -> Result<FailOutcome> {
        self.record_failure(lease, error, retryable, delay).await
    }

    async fn settle_lapsed(&self) -> Result<()> {
        SqlQueue::settle_lapsed(self, now()).await
    }

    async fn overdue(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<(TenantId, TaskId)>> {
        let mut q = Sql::new("SELECT tenant_id, id FROM tasks WHERE ");
        runnable(&mut q, since);
        q.push(" ORDER BY run_after, id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.fetch_all(&self.db).await.map_err(db_err)?;
        rows.iter()
            .map(|row| Ok((row.id("tenant_id")?, row.id("id")?)))
            .collect()
    }
}
