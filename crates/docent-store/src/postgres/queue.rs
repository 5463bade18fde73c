//! [`TaskQueue`] over the PostgreSQL `tasks` table: the SQLite queue's SQS semantics (a lease is a
//! token plus an expiry; every state change through a lease matches the token; `attempts` is the
//! receive count; past `max_attempts` a lapsed task is dead-lettered), with leasing by
//! `SELECT .. FOR UPDATE SKIP LOCKED` so any number of workers on any number of hosts lease
//! concurrently without blocking each other or sharing a task.
//!
//! Wake-ups: a trigger (`migrations/postgres`) sends `NOTIFY docent_tasks_<schema>` whenever a
//! task becomes `pending`. [`PgQueue::wait_for_task`] waits for one (LISTEN on a dedicated connection) with a
//! timeout, and [`PgQueue::forward_wakeups`] turns them into a [`tokio::sync::Notify`] for the
//! worker pool. Notifications are only hints: workers still poll, so a dropped listener
//! connection or a missed notification delays a task by at most one poll interval.
//!
//! It is also a [`TaskLedger`]: the record behind a broker's deliveries (the SQS queue), which
//! leases the one task a delivery names.
//!
//! Leases are fair across tenants, as the SQLite queue's (see [`TaskQueue::lease`]): the oldest
//! runnable task of a tenant under the cap (`SKIP LOCKED`), else the oldest of any tenant.
//! Concurrent leases read the running rows each from its own snapshot, so a tenant may briefly
//! hold one lease above its cap; [`TaskQueue::should_yield`] evens that out.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docent_domain::ports::{FailOutcome, Heartbeat, Lease, TaskLedger, TaskQueue};
use docent_domain::*;
use sqlx::postgres::{PgListener, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use tokio::sync::{Mutex, Notify};

use super::util::*;
use crate::Backoff;

/// The channel the `tasks` trigger notifies when a task becomes pending, followed by the name of
/// the schema holding the table (`docent_tasks_public`).
pub const TASKS_CHANNEL: &str = "docent_tasks_";

/// The SQL-table queue on PostgreSQL.
pub struct PgQueue {
    pool: PgPool,
    max_attempts: u32,
    backoff: Backoff,
    /// The LISTEN connection of [`PgQueue::wait_for_task`], opened on first use.
    listener: Mutex<Option<PgListener>>,
    fair_cap: u32,
}

impl PgQueue {
    /// A queue over the `tasks` table of `pool` (migrations already applied), fair across
    /// tenants with a cap of [`DEFAULT_FAIR_CAP`](crate::DEFAULT_FAIR_CAP) running tasks.
    pub fn new(pool: PgPool, max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            pool,
            max_attempts,
            backoff,
            listener: Mutex::new(None),
            fair_cap: crate::DEFAULT_FAIR_CAP,
        }
    }

    /// Sets the fair-share cap (`queue.max_running_per_tenant`; 0: no fairness).
    pub fn with_max_running_per_tenant(mut self, cap: u32) -> Self {
        self.fair_cap = cap;
        self
    }

    /// Waits up to `timeout` for a task to become pending (a `NOTIFY` on [`TASKS_CHANNEL`] and
    /// the schema). Wake-ups are hints: one may come with nothing left to lease.
    /// True if notified; false on timeout. When the listener cannot connect it sleeps `timeout`
    /// and returns false, so callers fall back to polling at that pace.
    pub async fn wait_for_task(&self, timeout: Duration) -> bool {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            match listen(&self.pool).await {
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
            Ok(Ok(_)) => true,
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
    pub fn forward_wakeups(self: &Arc<Self>, wake: Arc<Notify>, retry: Duration) {
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            while Arc::strong_count(&wake) > 1 {
                let Some(queue) = queue.upgrade() else { return };
                if queue.wait_for_task(retry).await {
                    wake.notify_waiters();
                }
            }
        });
    }
}

async fn listen(pool: &PgPool) -> std::result::Result<PgListener, sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(&format!("{TASKS_CHANNEL}{schema}")).await?;
    Ok(listener)
}

const TASK_COLS: &str = "id, tenant_id, kind, status, document_id, collection_id, payload, attempts, \
    max_attempts, lease_token, lease_owner, lease_expires_at, run_after, chunks_total, chunks_done, \
    rows_failed, error_code, error_message, dead_lettered, cancel_requested, created_at, updated_at, \
    started_at, finished_at";

const RUNNING: &str = "('processing', 'processing_chunks')";

fn task_from(row: &PgRow) -> Result<Task> {
    let kind: String = row.try_get("kind").map_err(db_err)?;
    let status: String = row.try_get("status").map_err(db_err)?;
    let int = |c: &str| row.try_get::<i64, _>(c).map_err(db_err);
    let time = |c: &str| row.try_get::<DateTime<Utc>, _>(c).map_err(db_err);
    let flag = |c: &str| row.try_get::<bool, _>(c).map_err(db_err);
    Ok(Task {
        id: parse_id(row, "id")?,
        tenant_id: parse_id(row, "tenant_id")?,
        kind: TaskKind::parse(&kind)
            .ok_or_else(|| Error::internal(format!("unknown task kind {kind}")))?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("corrupt status {status}")))?,
        document_id: parse_opt_id(row, "document_id")?,
        collection_id: parse_opt_id(row, "collection_id")?,
        attempts: int("attempts")? as u32,
        max_attempts: int("max_attempts")? as u32,
        lease_owner: row.try_get("lease_owner").map_err(db_err)?,
        lease_expires_at: opt_dt(row.try_get("lease_expires_at").map_err(db_err)?),
        run_after: time("run_after")?,
        progress: Progress {
            chunks_total: int("chunks_total")? as u64,
            chunks_done: int("chunks_done")? as u64,
            rows_failed: int("rows_failed")? as u64,
        },
        error: error_info(row)?,
        dead_lettered: flag("dead_lettered")?,
        cancel_requested: flag("cancel_requested")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        started_at: opt_dt(row.try_get("started_at").map_err(db_err)?),
        finished_at: opt_dt(row.try_get("finished_at").map_err(db_err)?),
        payload: json(row, "payload")?,
    })
}

impl PgQueue {
    /// Settles tasks whose lease lapsed and that must not be handed out again: those out of
    /// attempts are dead-lettered, those with a pending cancel are cancelled.
    async fn settle_lapsed(&self, now: DateTime<Utc>) -> Result<()> {
        let lost = Error::new(
            Code::WorkerLost,
            "the worker running this task stopped responding on its last attempt",
        )
        .info();
        let sql = format!(
            "UPDATE tasks SET status = 'failed', dead_lettered = TRUE, error_code = $1, error_message = $2, \
             lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $4 \
             WHERE status IN {RUNNING} AND lease_expires_at <= $5 AND attempts >= max_attempts AND NOT cancel_requested"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&lost.code)
            .bind(&lost.message)
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        let sql = format!(
            "UPDATE tasks SET status = 'cancelled', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, \
             finished_at = $1, updated_at = $2 WHERE status IN {RUNNING} AND lease_expires_at <= $3 AND cancel_requested"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
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
        let now = now_ms();
        self.settle_lapsed(now).await?;
        let token = uuid::Uuid::new_v4().to_string();
        let expires = now + dur(visibility);
        let fair = self.fair_cap > 0;
        // $1 token, $2 worker, $3 expiry, $4 now; then $5 cap when fair; then tenant and id.
        let runnable = runnable_sql("$4");
        let cap = "$5";
        let under_cap = format!(
            "tenant_id NOT IN ({})",
            holding_sql("$4", &format!(">= {cap}"))
        );
        let (t, i) = if fair { ("$6", "$7") } else { ("$5", "$6") };
        let oldest = |extra: &str| oldest_sql("$4", extra);
        // One statement: the candidate row is locked with SKIP LOCKED, so concurrent workers
        // each take a different row and never wait on one another; COALESCE runs the second
        // pick only when no tenant under the cap has a runnable task. A named task is locked by
        // the UPDATE itself: a concurrent lease of it waits, then finds it no longer runnable.
        let target = match (only.is_some(), fair) {
            (false, false) => format!("id = ({})", oldest("")),
            (false, true) => format!(
                "id = COALESCE(({}), ({}))",
                oldest(&format!(" AND {under_cap}")),
                oldest("")
            ),
            (true, false) => format!("tenant_id = {t} AND id = {i} AND {runnable}"),
            (true, true) => format!(
                "tenant_id = {t} AND id = {i} AND {runnable} AND ({t} NOT IN ({}) OR NOT {})",
                holding_sql("$4", &format!(">= {cap}")),
                waiting_sql("$4", &under_cap)
            ),
        };
        let sql = format!(
            "UPDATE tasks SET status = 'processing', lease_token = $1, lease_owner = $2, lease_expires_at = $3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $4), updated_at = $4 \
             WHERE {target} RETURNING {TASK_COLS}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&token)
            .bind(worker)
            .bind(expires)
            .bind(now);
        if fair {
            query = query.bind(i64::from(self.fair_cap));
        }
        if let Some((tenant, id)) = only {
            query = query.bind(tenant.to_string()).bind(id.to_string());
        }
        let row = query.fetch_optional(&self.pool).await.map_err(db_err)?;
        row.map(|row| {
            Ok(Lease {
                task: task_from(&row)?,
                token: token.clone(),
                expires_at: to_dt(expires),
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
        let now = now_ms();
        let task = &lease.task;
        let clear = "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, ";
        let mut binds = vec![
            LeaseBind::Sql("error_code = "),
            LeaseBind::Text(error.code),
            LeaseBind::Sql(", error_message = "),
            LeaseBind::Text(error.message),
            LeaseBind::Sql(", updated_at = "),
            LeaseBind::Time(now),
        ];
        let outcome = if !retryable {
            binds.extend([
                LeaseBind::Sql(", status = 'failed', finished_at = "),
                LeaseBind::Time(now),
            ]);
            FailOutcome::Failed
        } else if task.attempts >= task.max_attempts {
            binds.extend([
                LeaseBind::Sql(", status = 'failed', dead_lettered = TRUE, finished_at = "),
                LeaseBind::Time(now),
            ]);
            FailOutcome::DeadLettered
        } else {
            let at = now + dur(delay);
            binds.extend([
                LeaseBind::Sql(", status = 'pending', run_after = "),
                LeaseBind::Time(at),
            ]);
            FailOutcome::Retrying { at }
        };
        Ok(if self.with_lease(lease, clear, binds).await? {
            outcome
        } else {
            FailOutcome::LeaseLost
        })
    }

    /// Runs an UPDATE guarded by the lease token; true if the lease was still current.
    async fn with_lease(&self, lease: &Lease, set: &str, binds: Vec<LeaseBind>) -> Result<bool> {
        let mut q = QueryBuilder::<Postgres>::new("UPDATE tasks SET ");
        q.push(set);
        for b in binds {
            match b {
                LeaseBind::Int(i) => q.push_bind(i),
                LeaseBind::Time(t) => q.push_bind(t),
                LeaseBind::Text(s) => q.push_bind(s),
                LeaseBind::Sql(s) => q.push(s),
            };
        }
        q.push(" WHERE id = ").push_bind(lease.task.id.to_string());
        q.push(" AND lease_token = ").push_bind(lease.token.clone());
        q.push(format!(" AND status IN {RUNNING}"));
        let res = q.build().execute(&self.pool).await.map_err(db_err)?;
        Ok(res.rows_affected() == 1)
    }
}

/// Pending and due at `now` (a parameter).
fn pending_sql(now: &str) -> String {
    format!("status = 'pending' AND run_after <= {now}")
}

/// Leased, the lease lapsed at `now`, attempts left and no cancel request.
fn lapsed_sql(now: &str) -> String {
    format!(
        "status IN {RUNNING} AND lease_expires_at <= {now} AND attempts < max_attempts AND NOT cancel_requested"
    )
}

/// Whether a task is runnable at `now`: pending and due, or lapsed.
fn runnable_sql(now: &str) -> String {
    format!("(({}) OR ({}))", pending_sql(now), lapsed_sql(now))
}

/// The id of the oldest runnable task matching `extra` (` AND …`), locked with SKIP LOCKED.
/// Pending and lapsed tasks are picked apart — the pending one by walking `tasks_runnable` in
/// order, the lapsed ones (a few, one per dead worker) by status — and the older taken: one `OR`
/// over both made PostgreSQL fetch and sort every runnable task.
fn oldest_sql(now: &str, extra: &str) -> String {
    format!(
        "SELECT id FROM (\
         SELECT * FROM (SELECT id, run_after FROM tasks WHERE {}{extra} \
         ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED) p UNION ALL \
         SELECT * FROM (SELECT id, run_after FROM tasks WHERE {}{extra} \
         ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED) l) c \
         ORDER BY run_after, id LIMIT 1",
        pending_sql(now),
        lapsed_sql(now)
    )
}

/// Whether a task matching `cond` is runnable at `now` (two index searches, as in
/// [`oldest_sql`]).
fn waiting_sql(now: &str, cond: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM tasks WHERE {} AND {cond}) OR EXISTS (SELECT 1 FROM tasks WHERE {} AND {cond}))",
        pending_sql(now),
        lapsed_sql(now)
    )
}

/// The tenants holding live leases at `now` in a number matching `count` (`>= $5`, `> $5`):
/// a scan of the running rows only.
fn holding_sql(now: &str, count: &str) -> String {
    format!(
        "SELECT tenant_id FROM tasks WHERE status IN {RUNNING} AND lease_expires_at > {now} \
         GROUP BY tenant_id HAVING COUNT(*) {count}"
    )
}

enum LeaseBind {
    Int(i64),
    Time(DateTime<Utc>),
    Text(String),
    Sql(&'static str),
}

impl PgQueue {
    /// Tasks by status, and the dead-lettered ones (see [`depth_query`]).
    async fn count_tasks(
        &self,
        scope: Option<(TenantId, Option<&[CollectionId]>)>,
    ) -> Result<QueueDepth> {
        let rows = depth_query::<Postgres>("COUNT(*) FILTER (WHERE dead_lettered)", scope)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        depth_from(&rows).map_err(db_err)
    }
}

#[async_trait]
impl TaskQueue for PgQueue {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT COUNT(*) FROM tasks WHERE FALSE")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task> {
        let id = TaskId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO tasks (id, tenant_id, kind, status, document_id, collection_id, payload, max_attempts, run_after, created_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(new.kind.as_str())
        .bind(new.document_id.map(|d| d.to_string()))
        .bind(new.collection_id.map(|c| c.to_string()))
        .bind(&new.payload)
        .bind(i64::from(new.max_attempts.unwrap_or(self.max_attempts).max(1)))
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
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
        let sql = format!(
            "SELECT $1 IN ({}) AND {}",
            holding_sql("$2", "> $3"),
            waiting_sql(
                "$2",
                &format!("tenant_id NOT IN ({})", holding_sql("$2", ">= $3"))
            ),
        );
        let yes: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(lease.task.tenant_id.to_string())
            .bind(now_ms())
            .bind(i64::from(self.fair_cap))
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(yes)
    }

    async fn heartbeat(&self, lease: &Lease, visibility: Duration) -> Result<Heartbeat> {
        let now = now_ms();
        let sql = format!(
            "UPDATE tasks SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 AND lease_token = $4 \
             AND status IN {RUNNING} RETURNING cancel_requested"
        );
        let row: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(now + dur(visibility))
            .bind(now)
            .bind(lease.task.id.to_string())
            .bind(&lease.token)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(match row {
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
        self.with_lease(
            lease,
            "",
            vec![
                LeaseBind::Sql("status = "),
                LeaseBind::Text(status.as_str().into()),
                LeaseBind::Sql(", chunks_total = "),
                LeaseBind::Int(p.chunks_total as i64),
                LeaseBind::Sql(", chunks_done = "),
                LeaseBind::Int(p.chunks_done as i64),
                LeaseBind::Sql(", rows_failed = "),
                LeaseBind::Int(p.rows_failed as i64),
                LeaseBind::Sql(", updated_at = "),
                LeaseBind::Time(now_ms()),
            ],
        )
        .await
    }

    async fn complete(&self, lease: &Lease, status: TaskStatus, p: Progress) -> Result<bool> {
        if !matches!(
            status,
            TaskStatus::Completed | TaskStatus::PartiallyCompleted
        ) {
            return Err(Error::internal(format!("complete with status {status}")));
        }
        let now = now_ms();
        self.with_lease(
            lease,
            "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, error_code = NULL, error_message = NULL, ",
            vec![
                LeaseBind::Sql("status = "),
                LeaseBind::Text(status.as_str().into()),
                LeaseBind::Sql(", chunks_total = "),
                LeaseBind::Int(p.chunks_total as i64),
                LeaseBind::Sql(", chunks_done = "),
                LeaseBind::Int(p.chunks_done as i64),
                LeaseBind::Sql(", rows_failed = "),
                LeaseBind::Int(p.rows_failed as i64),
                LeaseBind::Sql(", finished_at = "),
                LeaseBind::Time(now),
                LeaseBind::Sql(", updated_at = "),
                LeaseBind::Time(now),
            ],
        )
        .await
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
        let now = now_ms();
        self.with_lease(
            lease,
            "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, status = 'cancelled', ",
            vec![LeaseBind::Sql("finished_at = "), LeaseBind::Time(now), LeaseBind::Sql(", updated_at = "), LeaseBind::Time(now)],
        )
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.with_lease(
            lease,
            // A cancel asked for while it ran wins over the release.
            "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, \
             status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
             attempts = GREATEST(attempts - 1, 0), ",
            vec![
                LeaseBind::Sql("run_after = "),
                LeaseBind::Time(now_ms()),
                LeaseBind::Sql(", finished_at = CASE WHEN cancel_requested THEN "),
                LeaseBind::Time(now_ms()),
                LeaseBind::Sql(" ELSE NULL END, updated_at = "),
                LeaseBind::Time(now_ms()),
            ],
        )
        .await
    }

    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let now = now_ms();
        let task = self.get(tenant, id).await?;
        let query = match task.status {
            TaskStatus::Pending => sqlx::query(
                "UPDATE tasks SET status = 'cancelled', finished_at = $1, updated_at = $2 \
                 WHERE tenant_id = $3 AND id = $4 AND status = 'pending'",
            )
            .bind(now),
            TaskStatus::Processing | TaskStatus::ProcessingChunks => sqlx::query(
                "UPDATE tasks SET cancel_requested = TRUE, updated_at = $1 \
                 WHERE tenant_id = $2 AND id = $3 AND status IN ('processing', 'processing_chunks')",
            ),
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
        let res = query
            .bind(now)
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            // It changed state under us; report the current state.
            return Box::pin(self.cancel(tenant, id)).await;
        }
        self.get(tenant, id).await
    }

    async fn retry(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let now = now_ms();
        let res = sqlx::query(
            "UPDATE tasks SET status = 'pending', attempts = 0, dead_lettered = FALSE, cancel_requested = FALSE, \
             error_code = NULL, error_message = NULL, run_after = $1, finished_at = NULL, updated_at = $2, \
             chunks_total = 0, chunks_done = 0, rows_failed = 0 \
             WHERE tenant_id = $3 AND id = $4 AND status IN ('failed', 'cancelled')",
        )
        .bind(now)
        .bind(now)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        let task = self.get(tenant, id).await?;
        if res.rows_affected() == 0 {
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
        let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
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
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {TASK_COLS} FROM tasks WHERE tenant_id = "
        ));
        q.push_bind(tenant.to_string());
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
        let rows = q.build().fetch_all(&self.pool).await.map_err(db_err)?;
        let items = rows.iter().map(task_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |t| t.id.to_string()))
    }

    async fn depth(&self) -> Result<QueueDepth> {
        self.count_tasks(None).await
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
impl TaskLedger for PgQueue {
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
        PgQueue::settle_lapsed(self, now_ms()).await
    }

    async fn overdue(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<(TenantId, TaskId)>> {
        let sql = format!(
            "SELECT tenant_id, id FROM tasks WHERE (status = 'pending' AND run_after <= $1) \
             OR (status IN {RUNNING} AND lease_expires_at <= $1 AND attempts < max_attempts AND NOT cancel_requested) \
             ORDER BY run_after, id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| Ok((parse_id(row, "tenant_id")?, parse_id(row, "id")?)))
            .collect()
    }
}
