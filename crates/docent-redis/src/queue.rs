//! [`RedisQueue`]: the [`TaskQueue`] port on a Redis Stream with a consumer group, with task
//! state kept in the database.
//!
//! The stream carries *deliveries*: one entry per runnable task, its one field `body` the task
//! id and tenant (`{"task_id": .., "tenant_id": ..}`, the body of an SQS delivery too). The
//! `tasks` table, through a [`TaskLedger`] (the SQLite or PostgreSQL queue), is the record: it
//! decides whether a delivery may run, holds the lease, attempts, progress and errors, and
//! answers `get`, `list` and `depth`, so status queries never touch Redis and keep working
//! while it is unreachable. The design is that of the SQS queue (`docent_aws::sqs`), with
//! Redis's primitives in place of SQS's.
//!
//! # Layout
//!
//! Every key starts with the queue's prefix wrapped in a hash tag, `{prefix}:`, so all of a
//! queue's keys live in one cluster slot (scripts touch several of them at once).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `stream` | stream | one entry per delivery, added when a task becomes runnable (enqueue, a due retry, release, operator retry, the sweep), acknowledged and deleted when that delivery ends |
//! | consumer group (`workers` by default) on `stream` | | its pending-entries list (PEL) holds the deliveries in flight, each owned by the worker whose lease it carries |
//! | `delayed` | sorted set | deliveries waiting to run again (a retry's backoff, a task still leased elsewhere), scored by when they may (server clock, ms) |
//! | `dlq` | stream | the dead-letter stream: deliveries of dead-lettered tasks, and entries that name no task, with a `reason` |
//!
//! # Deliveries
//!
//! - **Lease** = one Lua script, then (when it found nothing) `XREADGROUP`, then
//!   [`TaskLedger::lease_task`] of the task the entry names. The script creates the consumer
//!   group when missing, moves due entries of `delayed` into the stream, and reclaims lapsed
//!   deliveries with `XAUTOCLAIM`. The read waits up to the block time for a new entry on a
//!   connection of its own (a blocking command holds up every call queued behind it on the
//!   shared one), one read at a time per process for as many entries as there are `lease`
//!   calls waiting (at most the read batch); the extra entries are handed to those callers from
//!   a local buffer. The lease token handed to the worker is the ledger's token and the entry's
//!   id (`token|entry`); only the ledger part guards state changes.
//! - **Visibility.** `XAUTOCLAIM` knows one minimum idle time, while leases differ in length
//!   and heartbeats extend them: every lease and heartbeat therefore sets its entry's delivery
//!   time with `XCLAIM … TIME (expiry − R)`, where R is a fixed horizon ([`MAX_VISIBILITY`], the
//!   longest lease). An entry's idle time reaches R exactly when its lease expires, so
//!   `XAUTOCLAIM` with min-idle R returns precisely the lapsed deliveries — a worker killed mid
//!   task has its delivery reclaimed by any consumer once its lease lapses. The entry's expiry is
//!   set first (on the server's clock), the ledger's lease right after for the time left, so the
//!   entry never comes back before the ledger lets the task run again. Entries a read or
//!   reclaim buffered get the lease's visibility at once, so a process that dies holding them
//!   loses nothing. Re-timing checks the entry's owner first, so it never takes an entry from
//!   the consumer that reclaimed it.
//! - An entry the ledger refuses is settled by the task's state: finished, cancelled or
//!   unknown → acknowledged and deleted; dead-lettered → moved to the dead-letter stream; still
//!   leased or backing off (a duplicate, or a delivery come back a little early) → parked in
//!   `delayed` until the ledger says the task may run; refused while due (its tenant at its
//!   fair-share cap while another tenant waits) → parked for a second, no attempt counted. The ledger lets exactly one delivery
//!   lease a task, so duplicates are harmless. An entry that names no task goes to the
//!   dead-letter stream.
//! - **Heartbeat** = re-time the entry, then the ledger's heartbeat. **Complete**,
//!   **cancelled** and non-retryable **fail** = the ledger, then `XACK` + `XDEL`. A retryable
//!   **fail** picks the backoff itself and has the ledger use exactly it
//!   ([`TaskLedger::fail_after`]); the delivery is parked in `delayed` until then (a script:
//!   `ZADD`, `XACK`, `XDEL` at once) and moved back into the stream by the next lease once due.
//!   Out of attempts → dead-lettered in the ledger and the entry moved to the dead-letter
//!   stream. **Release** (graceful shutdown) adds a fresh entry and deletes the old one, so the
//!   released attempt counts nowhere. An operator **retry** adds a new entry; **cancel** is the
//!   ledger's alone (a pending task's entry is dropped when next read). A call that ends or
//!   re-times a delivery comes after the ledger's change and only when the ledger accepted it,
//!   so a lease that lapsed never touches the entry its successor holds.
//! - **Dead letters.** The ledger dead-letters a task out of attempts: a failure on its last
//!   attempt, or (`worker_lost`) the reclaim after its last lease lapsed; either way its entry is
//!   moved to `dlq` (capped at about [`DLQ_MAX_LEN`] entries; the ledger keeps every
//!   dead-lettered task, listed with `dead_lettered = true`).
//!
//! # Lost deliveries
//!
//! Redis and the database are not one transaction. When `XADD` fails after the database write
//! (Redis down during an upload, say), `enqueue` still succeeds — the task exists, pending — and
//! logs a warning. The **sweep** repairs it: after a read finds the stream empty (at most every
//! `republish_after / 4`), a process settles lapsed leases in the ledger, adds a fresh entry
//! for every task that has been runnable for `republish_after` or longer, and removes consumers
//! that hold nothing and have been idle for a day (every process and worker is one). A backlog
//! never triggers it, and a duplicate it might add is harmless.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use docent_domain::ports::{Backoff, FailOutcome, Heartbeat, Lease, TaskLedger, TaskQueue};
use docent_domain::{
    Code, CollectionId, ErrorInfo, NewTask, Page, PageRequest, Progress, QueueDepth, Result, Task,
    TaskFilter, TaskId, TaskStatus, TenantId,
};
use redis::Script;
use redis::streams::StreamReadReply;

use crate::Redis;

/// The longest lease, and the horizon R of the reclaim trick (see the module docs): 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// The largest read batch.
pub const MAX_BATCH: u32 = 100;
/// The longest block time of a read.
pub const MAX_BLOCK_TIME: Duration = Duration::from_secs(60);
/// About how many entries the dead-letter stream keeps (`XADD … MAXLEN ~`).
pub const DLQ_MAX_LEN: u64 = 100_000;
/// Reads per `lease` call while every entry read was spent (finished tasks, duplicates); only
/// the first one blocks.
const READ_ROUNDS: usize = 3;
/// Most overdue tasks one sweep adds again.
const SWEEP_LIMIT: u32 = 500;
/// A consumer holding nothing and idle this long is removed by the sweep.
const CONSUMER_IDLE: Duration = Duration::from_secs(24 * 3600);
/// A buffered entry this close to the end of its visibility is not claimed any more.
const BUFFER_MARGIN: Duration = Duration::from_millis(100);

/// The server clock in milliseconds, as every script starts.
const CLOCK: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function n(x) return string.format('%d', x) end
"#;

/// Ensures the group, moves due delayed entries into the stream, reclaims lapsed deliveries.
/// KEYS: stream, delayed. ARGV: group, consumer, horizon ms, count, visibility ms.
/// Returns the reclaimed entries as a flat `[id, body, id, body, ...]` (body '' if missing).
const GATHER: &str = r#"
local stream, delayed = KEYS[1], KEYS[2]
local group, consumer = ARGV[1], ARGV[2]
local R, count, vis = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local has = false
if redis.call('EXISTS', stream) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    for i = 1, #g, 2 do
      if g[i] == 'name' and g[i + 1] == group then has = true end
    end
  end
end
if not has then redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM') end
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', n(now), 'LIMIT', 0, 100)
for _, body in ipairs(due) do
  redis.call('XADD', stream, '*', 'body', body)
  redis.call('ZREM', delayed, body)
end
local out, ids = {}, {}
local start = '0-0'
for _ = 1, 100 do
  local r = redis.call('XAUTOCLAIM', stream, group, consumer, R, start, 'COUNT', count - #ids)
  start = r[1]
  for _, m in ipairs(r[2]) do
    if m[2] then
      local body = ''
      for i = 1, #m[2], 2 do
        if m[2][i] == 'body' then body = m[2][i + 1] end
      end
      table.insert(out, m[1])
      table.insert(out, body)
      table.insert(ids, m[1])
    else
      redis.call('XACK', stream, group, m[1])
    end
  end
  if start == '0-0' or #ids >= count then break end
end
if #ids > 0 then
  -- Buffered with the lease's visibility (see the module docs).
  local args = {stream, group, consumer, 0}
  for _, id in ipairs(ids) do table.insert(args, id) end
  table.insert(args, 'TIME')
  table.insert(args, n(now + vis - R))
  table.insert(args, 'JUSTID')
  redis.call('XCLAIM', unpack(args))
end
return out
"#;

/// Gives entries owned by one consumer to another, lapsing `visibility` from now.
/// KEYS: stream. ARGV: group, owner, new owner, horizon ms, visibility ms, ids...
/// Returns the ids it re-timed.
const RETIME: &str = r#"
local stream, group, owner, to = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local R, vis = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if p[1] and p[1][2] == owner then
    local c = redis.call('XCLAIM', stream, group, to, 0, id, 'TIME', n(now + vis - R), 'JUSTID')
    if #c > 0 then table.insert(out, id) end
  end
end
return out
"#;

/// Parks a delivery until `delay` from now, ending its entry (if any).
/// KEYS: stream, delayed. ARGV: group, entry id ('' for none), body, delay ms.
const PARK: &str = r#"
redis.call('ZADD', KEYS[2], n(now + tonumber(ARGV[4])), ARGV[3])
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
end
return 1
"#;

/// Removes consumers that hold nothing and have been idle for `idle` ms.
/// KEYS: stream. ARGV: group, idle ms. Returns how many it removed.
const FORGET_CONSUMERS: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local removed = 0
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and tonumber(f['idle']) >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
"#;

struct Scripts {
    gather: Script,
    retime: Script,
    park: Script,
    forget_consumers: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{CLOCK}{body}"));
        Self {
            gather: s(GATHER),
            retime: s(RETIME),
            park: s(PARK),
            forget_consumers: s(FORGET_CONSUMERS),
        }
    }
}

/// Where the queue lives and how reads behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisQueueSettings {
    /// The key prefix: keys are `{prefix}:stream` and so on (see the module docs).
    pub prefix: String,
    /// The consumer group every process reads with.
    pub group: String,
    /// How long a read waits for a new entry (zero: it does not wait).
    pub block_time: Duration,
    /// How long a task may stay runnable, with the stream empty, before the sweep adds its
    /// delivery again (see the module docs).
    pub republish_after: Duration,
    /// Most entries per read (1 to [`MAX_BATCH`]).
    pub read_batch: u32,
}

impl RedisQueueSettings {
    /// Settings for the queue under `prefix` with the defaults: group `workers`, reads that
    /// block for 5 s in batches of up to 10, re-publishing after 2 minutes.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            group: "workers".into(),
            block_time: Duration::from_secs(5),
            republish_after: Duration::from_secs(120),
            read_batch: 10,
        }
    }
}

/// The body of every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskRef {
    task_id: TaskId,
    tenant_id: TenantId,
}

impl TaskRef {
    fn of(task: &Task) -> Self {
        Self {
            task_id: task.id,
            tenant_id: task.tenant_id,
        }
    }

    /// The body: the same bytes for the same task, so `delayed` holds one delivery per task.
    fn body(&self) -> String {
        serde_json::json!({"task_id": self.task_id, "tenant_id": self.tenant_id}).to_string()
    }

    fn parse(body: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(Self {
            task_id: v.get("task_id")?.as_str()?.parse().ok()?,
            tenant_id: v.get("tenant_id")?.as_str()?.parse().ok()?,
        })
    }
}

/// An entry this process read or reclaimed and still holds.
#[derive(Debug)]
struct Delivery {
    id: String,
    /// What the body names; `None` for a body that is not a task reference.
    task: Option<TaskRef>,
    body: String,
    received_at: Instant,
    /// The visibility it was received with.
    visible_for: Duration,
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

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A lease's visibility as the stream takes it: 1 ms to [`MAX_VISIBILITY`].
fn clamp_visibility(d: Duration) -> Duration {
    d.clamp(Duration::from_millis(1), MAX_VISIBILITY)
}

/// Milliseconds from now until `at` (zero if past).
/// How long a delivery the ledger refused for fairness (its tenant at its cap while another
/// tenant waits) is parked before it is read again.
const FAIR_SHARE_DEFER: Duration = Duration::from_secs(1);

fn ms_until(at: chrono::DateTime<Utc>) -> u64 {
    ms((at - Utc::now()).to_std().unwrap_or_default())
}

const TOKEN_SEP: char = '|';

/// The worker's lease: the ledger's, with the entry id appended to the token.
fn wrap(lease: Lease, entry: &str) -> Lease {
    Lease {
        token: format!("{}{TOKEN_SEP}{entry}", lease.token),
        ..lease
    }
}

/// The ledger's lease and the entry id inside a worker's lease.
fn unwrap(lease: &Lease) -> (Lease, Option<String>) {
    let (token, entry) = match lease.token.split_once(TOKEN_SEP) {
        Some((token, entry)) => (token.to_owned(), Some(entry.to_owned())),
        None => (lease.token.clone(), None),
    };
    let inner = Lease {
        task: lease.task.clone(),
        token,
        expires_at: lease.expires_at,
    };
    (inner, entry)
}

fn counted(outcome: &'static str) {
    metrics::counter!("docent_redis_queue_deliveries_total", "outcome" => outcome).increment(1);
}

/// The Redis Streams task queue (see the module docs).
pub struct RedisQueue {
    ledger: Arc<dyn TaskLedger>,
    redis: Redis,
    /// A connection of its own for blocking reads.
    reader: Redis,
    prefix: String,
    stream: String,
    delayed: String,
    dlq: String,
    group: String,
    /// This process's consumer name: reads and reclaims land here, leases move entries to
    /// the worker's.
    consumer: String,
    backoff: Backoff,
    block_time: Duration,
    read_batch: u32,
    republish_after: Duration,
    sweep_every: Duration,
    scripts: Scripts,
    /// Entries read and not claimed yet, for `lease` calls that waited on the read; its lock
    /// makes reads one at a time per process.
    inbox: tokio::sync::Mutex<VecDeque<Delivery>>,
    /// `lease` calls waiting for the inbox.
    waiting: AtomicUsize,
    /// Reads that came back empty, so callers that waited on one return at once.
    empty_reads: AtomicU64,
    /// When this process last swept.
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// A queue under `settings.prefix` on the server of `redis`, with `ledger` as the record
    /// of task state and `backoff` the retry delays. Makes no call: the group is created by the
    /// first lease, and a process starts while Redis is down.
    pub fn new(
        ledger: Arc<dyn TaskLedger>,
        redis: Redis,
        settings: &RedisQueueSettings,
        backoff: Backoff,
    ) -> Result<Self> {
        let block_time = settings.block_time.min(MAX_BLOCK_TIME);
        let reader = redis.dedicated(block_time)?;
        let prefix = format!("{{{}}}:", settings.prefix);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "docent".into());
        let consumer = format!(
            "{host}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Self {
            ledger,
            redis,
            reader,
            stream: format!("{prefix}stream"),
            delayed: format!("{prefix}delayed"),
            dlq: format!("{prefix}dlq"),
            prefix,
            group: settings.group.clone(),
            consumer,
            backoff,
            block_time,
            read_batch: settings.read_batch.clamp(1, MAX_BATCH),
            republish_after: settings.republish_after,
            sweep_every: (settings.republish_after / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            scripts: Scripts::new(),
            inbox: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            empty_reads: AtomicU64::new(0),
            last_sweep: std::sync::Mutex::new(None),
        })
    }

    /// The key prefix, hash tag included (`{prefix}:`).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream carrying deliveries.
    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    /// The dead-letter stream.
    pub fn dlq_key(&self) -> &str {
        &self.dlq
    }

    /// The sorted set of parked deliveries.
    pub fn delayed_key(&self) -> &str {
        &self.delayed
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn TaskLedger> {
        &self.ledger
    }

    /// Settles lapsed leases in the ledger, adds a fresh entry for every task runnable for
    /// `republish_after` or longer, and removes long-idle consumers that hold nothing (see
    /// "Lost deliveries" in the module docs). Returns how many entries it added. `lease` runs it
    /// after a read finds the stream empty.
    #[tracing::instrument(skip_all)]
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
        if !overdue.is_empty() {
            let mut pipe = redis::pipe();
            for (tenant, id) in &overdue {
                let body = TaskRef {
                    task_id: *id,
                    tenant_id: *tenant,
                }
                .body();
                pipe.cmd("XADD")
                    .arg(&self.stream)
                    .arg("*")
                    .arg("body")
                    .arg(body)
                    .ignore();
            }
            self.redis.pipe::<()>(&pipe).await?;
            metrics::counter!("docent_redis_queue_republished_total")
                .increment(overdue.len() as u64);
            tracing::warn!(
                tasks = overdue.len(),
                "re-published tasks runnable for {:?} with no delivery",
                self.republish_after
            );
        }
        let mut forget = self.scripts.forget_consumers.prepare_invoke();
        forget
            .key(&self.stream)
            .arg(&self.group)
            .arg(ms(CONSUMER_IDLE));
        let removed: u64 = self.redis.script(&forget).await?;
        if removed > 0 {
            tracing::info!(
                consumers = removed,
                "removed idle consumers of the task stream"
            );
        }
        Ok(overdue.len())
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
            tracing::warn!(error = %e.chain(), "Redis queue sweep failed");
        }
    }

    fn deliveries(&self, flat: Vec<(String, String)>, visibility: Duration) -> VecDeque<Delivery> {
        let received_at = Instant::now();
        flat.into_iter()
            .map(|(id, body)| Delivery {
                id,
                task: TaskRef::parse(&body),
                body,
                received_at,
                visible_for: visibility,
            })
            .collect()
    }

    /// The gather script: the group, due parked deliveries, lapsed leases (up to `max`).
    async fn gather(&self, max: u32, visibility: Duration) -> Result<VecDeque<Delivery>> {
        let mut inv = self.scripts.gather.prepare_invoke();
        inv.key(&self.stream)
            .key(&self.delayed)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(ms(MAX_VISIBILITY))
            .arg(max)
            .arg(ms(visibility));
        let flat: Vec<String> = self.redis.script(&inv).await?;
        let pairs = flat
            .chunks_exact(2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect();
        Ok(self.deliveries(pairs, visibility))
    }

    /// One `XREADGROUP` of new entries (blocking for `block` on the reader connection), given
    /// `visibility` at once.
    async fn read(
        &self,
        max: u32,
        visibility: Duration,
        block: Duration,
    ) -> Result<VecDeque<Delivery>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(ms(block).max(1));
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(">");
        let reply: Option<StreamReadReply> = self.reader.query(&cmd).await?;
        let entries: Vec<(String, String)> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| {
                let body = e.get::<String>("body").unwrap_or_default();
                (e.id, body)
            })
            .collect();
        if entries.is_empty() {
            return Ok(VecDeque::new());
        }
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        self.retime(&self.consumer, &self.consumer, visibility, &ids)
            .await?;
        Ok(self.deliveries(entries, visibility))
    }

    /// Moves entries owned by `owner` to `to`, lapsing `visibility` from now; the ids it moved.
    async fn retime(
        &self,
        owner: &str,
        to: &str,
        visibility: Duration,
        ids: &[&str],
    ) -> Result<Vec<String>> {
        let mut inv = self.scripts.retime.prepare_invoke();
        inv.key(&self.stream)
            .arg(&self.group)
            .arg(owner)
            .arg(to)
            .arg(ms(MAX_VISIBILITY))
            .arg(ms(clamp_visibility(visibility)));
        for id in ids {
            inv.arg(*id);
        }
        self.redis.script(&inv).await
    }

    /// Adds a delivery for `task` to the stream.
    async fn add(&self, task: TaskRef) -> Result<()> {
        let _: String = self
            .redis
            .query(
                redis::cmd("XADD")
                    .arg(&self.stream)
                    .arg("*")
                    .arg("body")
                    .arg(task.body()),
            )
            .await?;
        Ok(())
    }

    /// Adds a delivery for a task the ledger just made runnable; a failure is logged, not
    /// returned: the task is recorded, and the sweep adds it later.
    async fn publish(&self, task: &Task, what: &str) {
        if let Err(e) = self.add(TaskRef::of(task)).await {
            metrics::counter!("docent_redis_queue_add_failures_total").increment(1);
            tracing::warn!(
                task = %task.id,
                error = %e.chain(),
                "{what}: the task is recorded but its Redis delivery could not be added; the \
                 sweep will add it once it has waited {:?}",
                self.republish_after
            );
        }
    }

    /// Ends a delivery: `XACK` and `XDEL` at once. A failure is logged: the entry comes back
    /// when its lease would have lapsed and is dropped then.
    async fn ack(&self, entry: &str) {
        let mut pipe = redis::pipe();
        self.push_ack(pipe.atomic(), entry);
        if let Err(e) = self.redis.pipe::<()>(&pipe).await {
            tracing::warn!(entry, error = %e.chain(), "could not delete a Redis queue entry");
        }
    }

    /// Adds `XACK` and `XDEL` of `entry` to `pipe`.
    fn push_ack(&self, pipe: &mut redis::Pipeline, entry: &str) {
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(entry)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(entry)
            .ignore();
    }

    /// Parks a delivery of a live task until `delay_ms` from now, ending `entry`. A failure is
    /// logged: the entry comes back when its lease would have lapsed.
    async fn park(&self, task: TaskRef, entry: &str, delay_ms: u64) {
        let mut inv = self.scripts.park.prepare_invoke();
        inv.key(&self.stream)
            .key(&self.delayed)
            .arg(&self.group)
            .arg(entry)
            .arg(task.body())
            .arg(delay_ms.max(1));
        if let Err(e) = self.redis.script::<i64>(&inv).await {
            tracing::warn!(task = %task.task_id, error = %e.chain(), "could not park a Redis queue delivery");
        }
    }

    /// Moves an entry to the dead-letter stream (a copy there, then deleted here, at once).
    async fn dead_letter(&self, body: &str, entry: &str, reason: &str) {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(&self.dlq)
            .arg("MAXLEN")
            .arg("~")
            .arg(DLQ_MAX_LEN)
            .arg("*")
            .arg("body")
            .arg(body)
            .arg("reason")
            .arg(reason)
            .ignore();
        self.push_ack(&mut pipe, entry);
        match self.redis.pipe::<()>(&pipe).await {
            Ok(()) => counted("dead_lettered"),
            // Left in place, it comes back and is moved then.
            Err(e) => {
                tracing::warn!(entry, error = %e.chain(), "could not move a Redis queue entry to the dead-letter stream")
            }
        }
    }

    /// Tries to lease the task a delivery names.
    async fn claim(
        &self,
        delivery: Delivery,
        worker: &str,
        visibility: Duration,
    ) -> Result<Option<Lease>> {
        let Some(task) = delivery.task else {
            tracing::warn!(entry = %delivery.id, body = %delivery.body, "an entry in the Redis task stream names no task; moving it to the dead-letter stream");
            self.dead_letter(&delivery.body, &delivery.id, "not_a_task")
                .await;
            return Ok(None);
        };
        // The entry's expiry first, the ledger's lease right after for the time left.
        let start = Instant::now();
        let moved = self
            .retime(&self.consumer, worker, visibility, &[&delivery.id])
            .await?;
        if moved.is_empty() {
            // Reclaimed by another consumer meanwhile, or deleted.
            tracing::debug!(task = %task.task_id, "entry no longer ours; left to its holder");
            return Ok(None);
        }
        let left = visibility.saturating_sub(start.elapsed());
        let leased = self
            .ledger
            .lease_task(task.tenant_id, task.task_id, worker, left)
            .await?;
        if let Some(lease) = leased {
            counted("leased");
            tracing::debug!(task = %task.task_id, attempt = lease.task.attempts, "leased");
            return Ok(Some(wrap(lease, &delivery.id)));
        }
        self.settle(task, &delivery).await?;
        Ok(None)
    }

    /// Deals with a delivery the ledger refused, by the task's state.
    async fn settle(&self, task: TaskRef, delivery: &Delivery) -> Result<()> {
        let current = match self.ledger.get(task.tenant_id, task.task_id).await {
            Ok(t) => t,
            Err(e) if e.code == Code::TaskNotFound => {
                tracing::debug!(task = %task.task_id, "entry for an unknown task; dropped");
                counted("spent");
                self.ack(&delivery.id).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match current.status {
            TaskStatus::Completed
            | TaskStatus::PartiallyCompleted
            | TaskStatus::Failed
            | TaskStatus::Cancelled => {
                if current.dead_lettered {
                    tracing::warn!(task = %task.task_id, error = ?current.error, "task dead-lettered; entry moved to the dead-letter stream");
                    self.dead_letter(&delivery.body, &delivery.id, "dead_lettered")
                        .await;
                } else {
                    counted("spent");
                    self.ack(&delivery.id).await;
                }
            }
            // Backing off: back when it is due. Refused while due: its tenant is at its fair
            // share while another waits (or it was just made runnable under us): back shortly,
            // after the waiting tenant's delivery had its turn.
            TaskStatus::Pending => {
                counted("deferred");
                let wait = ms_until(current.run_after).max(ms(FAIR_SHARE_DEFER));
                self.park(task, &delivery.id, wait).await;
            }
            // Leased by another delivery (a duplicate, or this one back a little early): back
            // when that lease ends.
            TaskStatus::Processing | TaskStatus::ProcessingChunks => {
                counted("deferred");
                let until = current.lease_expires_at.unwrap_or_else(Utc::now);
                self.park(task, &delivery.id, ms_until(until)).await;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TaskQueue for RedisQueue {
    async fn ping(&self) -> Result<()> {
        self.ledger.ping().await?;
        self.redis.ping().await
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, kind = %new.kind))]
    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task> {
        let task = self.ledger.enqueue(tenant, new).await?;
        self.publish(&task, "enqueue").await;
        Ok(task)
    }

    #[tracing::instrument(skip_all, fields(worker = %worker))]
    async fn lease(&self, worker: &str, visibility: Duration) -> Result<Option<Lease>> {
        let visibility = clamp_visibility(visibility);
        let empty_before = self.empty_reads.load(Ordering::Acquire);
        let mut inbox = {
            let _waiting = Waiting::new(&self.waiting);
            self.inbox.lock().await
        };
        while let Some(delivery) = inbox.pop_front() {
            if delivery.received_at.elapsed() + BUFFER_MARGIN >= delivery.visible_for {
                continue; // Reclaimed once it lapses.
            }
            if let Some(lease) = self.claim(delivery, worker, visibility).await? {
                return Ok(Some(lease));
            }
        }
        // A read that came back empty while this call waited answers it too.
        if self.empty_reads.load(Ordering::Acquire) != empty_before {
            return Ok(None);
        }
        for round in 0..READ_ROUNDS {
            let wanted = u32::try_from(self.waiting.load(Ordering::Acquire))
                .unwrap_or(u32::MAX)
                .saturating_add(1)
                .min(self.read_batch);
            let mut received = self.gather(wanted, visibility).await?;
            if received.is_empty() {
                let block = if round == 0 {
                    self.block_time
                } else {
                    Duration::ZERO
                };
                received = self.read(wanted, visibility, block).await?;
            }
            if received.is_empty() {
                if round == 0 {
                    self.empty_reads.fetch_add(1, Ordering::AcqRel);
                    drop(inbox);
                    self.sweep_if_due().await;
                }
                return Ok(None);
            }
            while let Some(delivery) = received.pop_front() {
                match self.claim(delivery, worker, visibility).await {
                    Ok(Some(lease)) => {
                        inbox.extend(received);
                        return Ok(Some(lease));
                    }
                    Ok(None) => {}
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
        let visibility = clamp_visibility(visibility);
        let (inner, entry) = unwrap(lease);
        // The entry first, so it never lapses before the lease; only while the lease's worker
        // still owns it (a lost lease's entry belongs to whoever reclaimed it).
        if let (Some(entry), Some(owner)) = (entry, lease.task.lease_owner.as_deref())
            && let Err(e) = self.retime(owner, owner, visibility, &[&entry]).await
        {
            // The ledger's lease is what counts: an entry reclaimed early is parked until it
            // ends.
            tracing::warn!(error = %e.chain(), "could not extend the Redis queue entry");
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
        let (inner, entry) = unwrap(lease);
        let done = self.ledger.complete(&inner, status, progress).await?;
        if done && let Some(entry) = entry {
            self.ack(&entry).await;
        }
        Ok(done)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, code = %error.code, retryable))]
    async fn fail(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Result<FailOutcome> {
        let (inner, entry) = unwrap(lease);
        let delay = self
            .backoff
            .delay(lease.task.attempts)
            .max(retry_after.unwrap_or_default());
        let outcome = self
            .ledger
            .fail_after(&inner, error, retryable, delay)
            .await?;
        let task = TaskRef::of(&lease.task);
        if let Some(entry) = entry {
            match outcome {
                // Due when the ledger says (its clock), not `delay` after this call.
                FailOutcome::Retrying { at } => self.park(task, &entry, ms_until(at)).await,
                FailOutcome::Failed => self.ack(&entry).await,
                FailOutcome::DeadLettered => {
                    tracing::warn!(task = %task.task_id, "task dead-lettered; entry moved to the dead-letter stream");
                    self.dead_letter(&task.body(), &entry, "dead_lettered")
                        .await;
                }
                FailOutcome::LeaseLost => {}
            }
        }
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn cancelled(&self, lease: &Lease) -> Result<bool> {
        let (inner, entry) = unwrap(lease);
        let done = self.ledger.cancelled(&inner).await?;
        if done && let Some(entry) = entry {
            self.ack(&entry).await;
        }
        Ok(done)
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn release(&self, lease: &Lease) -> Result<bool> {
        let (inner, entry) = unwrap(lease);
        if !self.ledger.release(&inner).await? {
            return Ok(false);
        }
        let Some(entry) = entry else {
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
            self.ack(&entry).await;
            return Ok(true);
        }
        // A fresh entry for the old one, at once.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("body")
            .arg(task.body())
            .ignore()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&entry)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(&entry)
            .ignore();
        if let Err(e) = self.redis.pipe::<()>(&pipe).await {
            // The old entry comes back when the lease would have lapsed.
            tracing::warn!(task = %task.task_id, error = %e.chain(), "could not add a released task's delivery again");
        }
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        // A pending task's entry is dropped when it is next read.
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
        }
    }

    #[test]
    fn lease_tokens_carry_the_entry_and_give_back_the_ledgers() {
        let ledger = Lease {
            task: task(),
            token: "0b9c-token".into(),
            expires_at: Utc::now(),
        };
        let wrapped = wrap(ledger.clone(), "1700000000000-3");
        assert_ne!(wrapped.token, ledger.token);
        let (inner, entry) = unwrap(&wrapped);
        assert_eq!(inner, ledger);
        assert_eq!(entry.as_deref(), Some("1700000000000-3"));
        // A lease that never went through the stream is the ledger's as is.
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
    fn visibilities_stay_within_the_reclaim_horizon() {
        assert_eq!(clamp_visibility(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(
            clamp_visibility(Duration::from_secs(13 * 3600)),
            MAX_VISIBILITY
        );
        assert_eq!(
            clamp_visibility(Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }
}
