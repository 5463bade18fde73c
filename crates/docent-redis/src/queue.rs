//! [`RedisQueue`]: the [`TaskQueue`] port on a Redis Stream with a consumer group, with the
//! same SQS-like semantics as the SQL queue (leases with a visibility timeout, heartbeats,
//! receive counts, backoff with jitter, dead-lettering, cancel, operator retry).
//!
//! # Layout
//!
//! Every key starts with the queue's prefix wrapped in a hash tag, `{prefix}:`, so all of a
//! queue's keys live in one slot (scripts touch several of them at once).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `task:{id}` | hash | the whole task: status, attempts, lease token/owner/expiry, progress, error, flags, times (Unix ms), payload, and `entry`, the id of its stream entry while it has one |
//! | `stream` | stream | one entry `task = {id}` per *delivery*: added when a task becomes runnable (enqueue, a due retry, release, operator retry), acknowledged and deleted when that delivery ends |
//! | consumer group `workers` on `stream` | | the pending-entries list (PEL) is the set of running tasks; each entry's consumer is the lease owner |
//! | `delayed` | sorted set | tasks backing off before a retry, scored by `run_after` |
//! | `t:{tenant}`, `t:{tenant}:d:{document}`, `t:{tenant}:c:{collection}` | sorted sets | task ids of a tenant (all, by document, by collection), all scored 0 so they sort by id: UUIDv7 ids sort by creation, which gives newest-first keyset pages with the id as cursor |
//! | `counts` | hash | tasks per status and `dead_lettered`, kept by every transition (for `depth`) |
//! | `dead` | sorted set | dead-lettered task ids by time, the dead-letter view across tenants |
//!
//! A stream alone cannot answer "what state is task X in", list a tenant's tasks by filter, or
//! hold per-lease visibility timeouts, so the hash is the source of truth and the stream
//! carries ids: it orders deliveries and its PEL tracks the in-flight ones.
//!
//! # Transitions
//!
//! Every change is one Lua script on the server's clock (`TIME`), so it is atomic across any
//! number of processes: two workers can never lease the same task, and a state change through a
//! lease first checks that the lease token is still the task's.
//!
//! - `lease` moves due retries from `delayed` into the stream, then reclaims lapsed leases with
//!   `XAUTOCLAIM`, then reads a new entry with `XREADGROUP`. Visibility timeouts differ per lease
//!   and heartbeats extend them, while `XAUTOCLAIM` only knows one minimum idle time: each
//!   lease (and heartbeat) therefore sets its entry's delivery time with `XCLAIM … TIME
//!   (expiry − R)`, where R is a fixed horizon (30 days, the longest visibility). An entry's idle
//!   time reaches R exactly when its lease expires, so `XAUTOCLAIM` with min-idle R returns
//!   precisely the lapsed leases. A lapsed task with a cancel request ends `cancelled`; one out of
//!   attempts is dead-lettered with `worker_lost`; otherwise it is re-delivered to the caller.
//! - `complete`, `fail`, `cancelled` and `release` acknowledge and delete the current entry; a
//!   retryable failure parks the task in `delayed`, a release (and an operator `retry`) adds a
//!   fresh entry. Cancelling a pending task deletes its entry before anyone reads it; an entry
//!   found pointing at a task that no longer expects it is dropped as stale.
//!
//! Tasks are never deleted (like the SQL queue); `list` with a status or kind filter scans the
//! tenant's (or document's, or collection's) ids newest first in batches.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use docent_domain::ports::{FailOutcome, Heartbeat, Lease, TaskQueue};
use docent_domain::*;
use redis::Script;

use crate::Redis;

/// The horizon R of the reclaim trick (see the module docs): also the longest visibility.
const RECLAIM_HORIZON_MS: u64 = 30 * 24 * 3600 * 1000;

pub use docent_domain::ports::Backoff;

/// Helpers every script starts with. ARGV[1] is the key prefix.
const PRELUDE: &str = r#"
local P = ARGV[1]
local STREAM = P .. 'stream'
local GROUP = 'workers'
local DELAYED = P .. 'delayed'
local COUNTS = P .. 'counts'
local DEAD = P .. 'dead'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function n(x) return string.format('%d', x) end
local function tkey(id) return P .. 'task:' .. id end
local function running(s) return s == 'processing' or s == 'processing_chunks' end
local function set_status(key, old, new)
  if old ~= new then
    redis.call('HINCRBY', COUNTS, old, -1)
    redis.call('HINCRBY', COUNTS, new, 1)
  end
  redis.call('HSET', key, 'status', new, 'updated', n(now))
end
local function ensure_group()
  if redis.call('EXISTS', STREAM) == 0 then
    redis.call('XGROUP', 'CREATE', STREAM, GROUP, '0', 'MKSTREAM')
  end
end
-- A new delivery of the task: an entry at the end of the stream.
local function deliver(key, id)
  ensure_group()
  local e = redis.call('XADD', STREAM, '*', 'task', id)
  redis.call('HSET', key, 'entry', e)
end
local function drop(entry)
  redis.call('XACK', STREAM, GROUP, entry)
  redis.call('XDEL', STREAM, entry)
end
-- Ends the task's current delivery.
local function drop_entry(key)
  local e = redis.call('HGET', key, 'entry')
  if e and e ~= '' then
    drop(e)
    redis.call('HSET', key, 'entry', '')
  end
end
local function end_lease(key)
  redis.call('HSET', key, 'token', '', 'owner', '', 'lease_exp', '')
  drop_entry(key)
end
-- The task's key and status if `token` is its current lease, else nil.
local function leased(id, token)
  local key = tkey(id)
  local f = redis.call('HMGET', key, 'token', 'status')
  if token ~= '' and f[1] == token and running(f[2]) then return key, f[2] end
  return nil
end
local function reply(key) return redis.call('HGETALL', key) end
local function tagged(tag, key)
  local r = reply(key)
  table.insert(r, 1, tag)
  return r
end
"#;

/// ARGV: prefix, id, tenant, kind, document, collection, payload, max attempts.
const ENQUEUE: &str = r#"
local id, tenant, doc, col = ARGV[2], ARGV[3], ARGV[5], ARGV[6]
local key = tkey(id)
redis.call('HSET', key, 'id', id, 'tenant', tenant, 'kind', ARGV[4], 'status', 'pending',
  'doc', doc, 'col', col, 'payload', ARGV[7], 'attempts', '0', 'max_attempts', ARGV[8],
  'token', '', 'owner', '', 'lease_exp', '', 'run_after', n(now),
  'total', '0', 'done', '0', 'rfailed', '0', 'err_code', '', 'err_msg', '',
  'dl', '0', 'cancel', '0', 'created', n(now), 'updated', n(now), 'started', '', 'finished', '',
  'entry', '')
redis.call('HINCRBY', COUNTS, 'pending', 1)
local T = P .. 't:' .. tenant
redis.call('ZADD', T, 0, id)
if doc ~= '' then redis.call('ZADD', T .. ':d:' .. doc, 0, id) end
if col ~= '' then redis.call('ZADD', T .. ':c:' .. col, 0, id) end
deliver(key, id)
return reply(key)
"#;

/// ARGV: prefix, worker, visibility ms, token, horizon ms, lost code, lost message.
/// Returns the leased task's hash, or nil.
const LEASE: &str = r#"
local worker, vis, token, R = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
ensure_group()
-- Retries that came due join the stream.
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', n(now), 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', DELAYED, id)
  local key = tkey(id)
  if redis.call('HGET', key, 'status') == 'pending' then deliver(key, id) end
end
local function take(key, entry)
  local exp = now + vis
  -- The entry's idle time reaches R exactly when this lease expires.
  redis.call('XCLAIM', STREAM, GROUP, worker, 0, entry, 'TIME', n(exp - R), 'JUSTID')
  local f = redis.call('HMGET', key, 'status', 'started')
  local started = f[2]
  if not started or started == '' then started = n(now) end
  redis.call('HINCRBY', key, 'attempts', 1)
  redis.call('HSET', key, 'token', token, 'owner', worker, 'lease_exp', n(exp),
    'started', started, 'entry', entry)
  set_status(key, f[1], 'processing')
  return reply(key)
end
local function fields(m)
  local id = m[2] and m[2][2]
  if not id then return nil, {} end
  local key = tkey(id)
  return key, redis.call('HMGET', key, 'status', 'entry', 'cancel', 'attempts', 'max_attempts'), id
end
-- 1. Lapsed leases.
local start = '0-0'
for _ = 1, 1000 do
  local r = redis.call('XAUTOCLAIM', STREAM, GROUP, worker, R, start, 'COUNT', 1)
  start = r[1]
  for _, m in ipairs(r[2]) do
    local entry = m[1]
    local key, f, id = fields(m)
    if not (key and f[1] and running(f[1]) and f[2] == entry) then
      drop(entry)
    elseif f[3] == '1' then
      end_lease(key)
      redis.call('HSET', key, 'finished', n(now))
      set_status(key, f[1], 'cancelled')
    elseif tonumber(f[4]) >= tonumber(f[5]) then
      end_lease(key)
      redis.call('HSET', key, 'dl', '1', 'err_code', ARGV[6], 'err_msg', ARGV[7], 'finished', n(now))
      redis.call('HINCRBY', COUNTS, 'dead_lettered', 1)
      redis.call('ZADD', DEAD, now, id)
      set_status(key, f[1], 'failed')
    else
      return take(key, entry)
    end
  end
  if start == '0-0' then break end
end
-- 2. New deliveries.
for _ = 1, 1000 do
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', 1, 'STREAMS', STREAM, '>')
  if not r then break end
  local m = r[1][2][1]
  if not m then break end
  local entry = m[1]
  local key, f = fields(m)
  if key and f[1] == 'pending' and f[2] == entry then return take(key, entry) end
  drop(entry)
end
return false
"#;

/// ARGV: prefix, id, token, visibility ms, horizon ms. 0 lost, 1 extended, 2 cancel requested.
const HEARTBEAT: &str = r#"
local key = leased(ARGV[2], ARGV[3])
if not key then return 0 end
local exp = now + tonumber(ARGV[4])
local f = redis.call('HMGET', key, 'entry', 'owner', 'cancel')
redis.call('XCLAIM', STREAM, GROUP, f[2], 0, f[1], 'TIME', n(exp - tonumber(ARGV[5])), 'JUSTID')
redis.call('HSET', key, 'lease_exp', n(exp), 'updated', n(now))
if f[3] == '1' then return 2 end
return 1
"#;

/// ARGV: prefix, id, token, status, total, done, rows failed. 1 if the lease was current.
const PROGRESS: &str = r#"
local key, old = leased(ARGV[2], ARGV[3])
if not key then return 0 end
redis.call('HSET', key, 'total', ARGV[5], 'done', ARGV[6], 'rfailed', ARGV[7])
set_status(key, old, ARGV[4])
return 1
"#;

/// ARGV: as [`PROGRESS`], with a terminal status.
const COMPLETE: &str = r#"
local key, old = leased(ARGV[2], ARGV[3])
if not key then return 0 end
end_lease(key)
redis.call('HSET', key, 'total', ARGV[5], 'done', ARGV[6], 'rfailed', ARGV[7],
  'err_code', '', 'err_msg', '', 'finished', n(now))
set_status(key, old, ARGV[4])
return 1
"#;

/// ARGV: prefix, id, token, code, message, retryable ('1'/'0'), delay ms.
/// Returns {0} lease lost, {1, at} retrying, {2} failed, {3} dead-lettered.
const FAIL: &str = r#"
local key, old = leased(ARGV[2], ARGV[3])
if not key then return {0} end
end_lease(key)
redis.call('HSET', key, 'err_code', ARGV[4], 'err_msg', ARGV[5])
if ARGV[6] ~= '1' then
  redis.call('HSET', key, 'finished', n(now))
  set_status(key, old, 'failed')
  return {2}
end
local f = redis.call('HMGET', key, 'attempts', 'max_attempts')
if tonumber(f[1]) >= tonumber(f[2]) then
  redis.call('HSET', key, 'dl', '1', 'finished', n(now))
  redis.call('HINCRBY', COUNTS, 'dead_lettered', 1)
  redis.call('ZADD', DEAD, now, ARGV[2])
  set_status(key, old, 'failed')
  return {3}
end
local at = now + tonumber(ARGV[7])
redis.call('HSET', key, 'run_after', n(at))
redis.call('ZADD', DELAYED, at, ARGV[2])
set_status(key, old, 'pending')
return {1, at}
"#;

/// ARGV: prefix, id, token.
const CANCELLED: &str = r#"
local key, old = leased(ARGV[2], ARGV[3])
if not key then return 0 end
end_lease(key)
redis.call('HSET', key, 'finished', n(now))
set_status(key, old, 'cancelled')
return 1
"#;

/// ARGV: prefix, id, token. A requested cancel wins over the release.
const RELEASE: &str = r#"
local key, old = leased(ARGV[2], ARGV[3])
if not key then return 0 end
end_lease(key)
if redis.call('HGET', key, 'cancel') == '1' then
  redis.call('HSET', key, 'finished', n(now))
  set_status(key, old, 'cancelled')
  return 1
end
local a = tonumber(redis.call('HGET', key, 'attempts'))
if a > 0 then a = a - 1 end
redis.call('HSET', key, 'attempts', n(a), 'run_after', n(now), 'finished', '')
set_status(key, old, 'pending')
deliver(key, ARGV[2])
return 1
"#;

/// ARGV: prefix, tenant, id. Returns {'nf'}, {'conflict', status} or {'ok', hash...}.
const CANCEL: &str = r#"
local key = tkey(ARGV[3])
local f = redis.call('HMGET', key, 'tenant', 'status', 'entry')
if f[1] ~= ARGV[2] then return {'nf'} end
if f[2] == 'pending' then
  if f[3] and f[3] ~= '' then
    redis.call('XDEL', STREAM, f[3])
    redis.call('HSET', key, 'entry', '')
  end
  redis.call('ZREM', DELAYED, ARGV[3])
  redis.call('HSET', key, 'finished', n(now))
  set_status(key, 'pending', 'cancelled')
elseif running(f[2]) then
  redis.call('HSET', key, 'cancel', '1', 'updated', n(now))
else
  return {'conflict', f[2]}
end
return tagged('ok', key)
"#;

/// ARGV: prefix, tenant, id. Returns as [`CANCEL`].
const RETRY: &str = r#"
local key = tkey(ARGV[3])
local f = redis.call('HMGET', key, 'tenant', 'status', 'dl')
if f[1] ~= ARGV[2] then return {'nf'} end
if f[2] ~= 'failed' and f[2] ~= 'cancelled' then return {'conflict', f[2]} end
if f[3] == '1' then
  redis.call('HINCRBY', COUNTS, 'dead_lettered', -1)
  redis.call('ZREM', DEAD, ARGV[3])
end
redis.call('HSET', key, 'attempts', '0', 'dl', '0', 'cancel', '0', 'err_code', '', 'err_msg', '',
  'run_after', n(now), 'finished', '', 'total', '0', 'done', '0', 'rfailed', '0')
set_status(key, f[2], 'pending')
deliver(key, ARGV[3])
return tagged('ok', key)
"#;

struct Scripts {
    enqueue: Script,
    lease: Script,
    heartbeat: Script,
    progress: Script,
    complete: Script,
    fail: Script,
    cancelled: Script,
    release: Script,
    cancel: Script,
    retry: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            enqueue: s(ENQUEUE),
            lease: s(LEASE),
            heartbeat: s(HEARTBEAT),
            progress: s(PROGRESS),
            complete: s(COMPLETE),
            fail: s(FAIL),
            cancelled: s(CANCELLED),
            release: s(RELEASE),
            cancel: s(CANCEL),
            retry: s(RETRY),
        }
    }
}

/// The Redis Streams task queue (see the module docs).
pub struct RedisQueue {
    redis: Redis,
    prefix: String,
    max_attempts: u32,
    backoff: Backoff,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

type Fields = HashMap<String, String>;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn to_dt(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn corrupt(what: &str) -> Error {
    Error::internal(format!("corrupt task hash in redis: {what}"))
}

fn parse_opt<T: std::str::FromStr>(v: Option<String>, k: &str) -> Result<Option<T>> {
    v.map(|v| v.parse().map_err(|_| corrupt(k))).transpose()
}

/// A task from its hash.
fn task_from(f: &Fields) -> Result<Task> {
    let s = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let int = |k: &str| s(k).parse::<i64>().map_err(|_| corrupt(k));
    let opt_int = |k: &str| match s(k) {
        "" => Ok(None),
        v => v.parse::<i64>().map(Some).map_err(|_| corrupt(k)),
    };
    let id = |k: &str| -> Result<Option<String>> {
        Ok(match s(k) {
            "" => None,
            v => Some(v.to_owned()),
        })
    };
    let count = |k: &str| int(k).map(|v| v.max(0) as u64);
    Ok(Task {
        id: s("id").parse().map_err(|_| corrupt("id"))?,
        tenant_id: s("tenant").parse().map_err(|_| corrupt("tenant"))?,
        kind: TaskKind::parse(s("kind")).ok_or_else(|| corrupt("kind"))?,
        status: TaskStatus::parse(s("status")).ok_or_else(|| corrupt("status"))?,
        document_id: parse_opt(id("doc")?, "doc")?,
        collection_id: parse_opt(id("col")?, "col")?,
        attempts: int("attempts")?.max(0) as u32,
        max_attempts: int("max_attempts")?.max(0) as u32,
        lease_owner: id("owner")?,
        lease_expires_at: opt_int("lease_exp")?.map(to_dt),
        run_after: to_dt(int("run_after")?),
        progress: Progress {
            chunks_total: count("total")?,
            chunks_done: count("done")?,
            rows_failed: count("rfailed")?,
        },
        error: match s("err_code") {
            "" => None,
            code => Some(ErrorInfo {
                code: code.to_owned(),
                message: s("err_msg").to_owned(),
            }),
        },
        dead_lettered: s("dl") == "1",
        cancel_requested: s("cancel") == "1",
        created_at: to_dt(int("created")?),
        updated_at: to_dt(int("updated")?),
        started_at: opt_int("started")?.map(to_dt),
        finished_at: opt_int("finished")?.map(to_dt),
        payload: serde_json::from_str(s("payload")).unwrap_or(serde_json::Value::Null),
    })
}

/// A flat `[k1, v1, k2, v2, ...]` reply as fields.
fn pairs(flat: &[String]) -> Fields {
    flat.chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect()
}

fn not_found(id: TaskId) -> Error {
    Error::new(Code::TaskNotFound, format!("task {id} not found"))
}

impl RedisQueue {
    /// A queue under `prefix` (e.g. `docent:queue`; keys are `{prefix}:…`), with the default
    /// attempt limit and retry backoff.
    pub fn new(redis: Redis, prefix: &str, max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            redis,
            prefix: format!("{{{prefix}}}:"),
            max_attempts,
            backoff,
            scripts: Scripts::new(),
        }
    }

    /// The key prefix, hash tag included.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn invoke<'a>(&'a self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix);
        inv
    }

    /// Runs a lease-guarded transition returning 0/1.
    async fn guarded(&self, script: &Script, lease: &Lease, extra: &[String]) -> Result<bool> {
        let mut inv = self.invoke(script);
        inv.arg(lease.task.id.to_string()).arg(&lease.token);
        for a in extra {
            inv.arg(a);
        }
        let n: i64 = self.redis.script(&inv).await?;
        Ok(n == 1)
    }

    /// Interprets a `{'nf'} | {'conflict', status} | {'ok', hash...}` reply.
    fn tagged(reply: Vec<String>, id: TaskId, conflict: impl Fn(&str) -> String) -> Result<Task> {
        match reply.first().map(String::as_str) {
            Some("ok") => task_from(&pairs(&reply[1..])),
            Some("conflict") => Err(Error::new(
                Code::TaskStateConflict,
                conflict(reply.get(1).map_or("", String::as_str)),
            )),
            _ => Err(not_found(id)),
        }
    }
}

fn matches(t: &Task, f: &TaskFilter) -> bool {
    f.status.is_none_or(|s| t.status == s)
        && f.kind.is_none_or(|k| t.kind == k)
        && f.document_id.is_none_or(|d| t.document_id == Some(d))
        && f.collection_id.is_none_or(|c| t.collection_id == Some(c))
        && f.dead_lettered.is_none_or(|dl| t.dead_lettered == dl)
}

#[async_trait]
impl TaskQueue for RedisQueue {
    async fn ping(&self) -> Result<()> {
        self.redis.ping().await
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, kind = %new.kind))]
    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task> {
        let id = TaskId::new();
        let mut inv = self.invoke(&self.scripts.enqueue);
        inv.arg(id.to_string())
            .arg(tenant.to_string())
            .arg(new.kind.as_str())
            .arg(new.document_id.map(|d| d.to_string()).unwrap_or_default())
            .arg(new.collection_id.map(|c| c.to_string()).unwrap_or_default())
            .arg(new.payload.to_string())
            .arg(new.max_attempts.unwrap_or(self.max_attempts).max(1));
        let reply: Vec<String> = self.redis.script(&inv).await?;
        task_from(&pairs(&reply))
    }

    #[tracing::instrument(skip_all, fields(worker = %worker))]
    async fn lease(&self, worker: &str, visibility: Duration) -> Result<Option<Lease>> {
        let lost = Error::new(
            Code::WorkerLost,
            "the worker running this task stopped responding on its last attempt",
        )
        .info();
        let token = uuid::Uuid::new_v4().to_string();
        let mut inv = self.invoke(&self.scripts.lease);
        inv.arg(worker)
            .arg(ms(visibility).clamp(1, RECLAIM_HORIZON_MS))
            .arg(&token)
            .arg(RECLAIM_HORIZON_MS)
            .arg(&lost.code)
            .arg(&lost.message);
        let reply: Option<Vec<String>> = self.redis.script(&inv).await?;
        let Some(reply) = reply else {
            return Ok(None);
        };
        let task = task_from(&pairs(&reply))?;
        let expires_at = task
            .lease_expires_at
            .ok_or_else(|| corrupt("lease without expiry"))?;
        Ok(Some(Lease {
            task,
            token,
            expires_at,
        }))
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn heartbeat(&self, lease: &Lease, visibility: Duration) -> Result<Heartbeat> {
        let mut inv = self.invoke(&self.scripts.heartbeat);
        inv.arg(lease.task.id.to_string())
            .arg(&lease.token)
            .arg(ms(visibility).clamp(1, RECLAIM_HORIZON_MS))
            .arg(RECLAIM_HORIZON_MS);
        let n: i64 = self.redis.script(&inv).await?;
        Ok(match n {
            1 => Heartbeat::Extended,
            2 => Heartbeat::CancelRequested,
            _ => Heartbeat::Lost,
        })
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, status = %status))]
    async fn progress(&self, lease: &Lease, status: TaskStatus, p: Progress) -> Result<bool> {
        if !status.is_running() {
            return Err(Error::internal(format!(
                "progress with non-running status {status}"
            )));
        }
        let extra = [
            status.as_str().to_owned(),
            p.chunks_total.to_string(),
            p.chunks_done.to_string(),
            p.rows_failed.to_string(),
        ];
        self.guarded(&self.scripts.progress, lease, &extra).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, status = %status))]
    async fn complete(&self, lease: &Lease, status: TaskStatus, p: Progress) -> Result<bool> {
        if !matches!(
            status,
            TaskStatus::Completed | TaskStatus::PartiallyCompleted
        ) {
            return Err(Error::internal(format!("complete with status {status}")));
        }
        let extra = [
            status.as_str().to_owned(),
            p.chunks_total.to_string(),
            p.chunks_done.to_string(),
            p.rows_failed.to_string(),
        ];
        self.guarded(&self.scripts.complete, lease, &extra).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id, code = %error.code, retryable))]
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
        let mut inv = self.invoke(&self.scripts.fail);
        inv.arg(lease.task.id.to_string())
            .arg(&lease.token)
            .arg(&error.code)
            .arg(&error.message)
            .arg(if retryable { "1" } else { "0" })
            .arg(ms(delay));
        let reply: Vec<i64> = self.redis.script(&inv).await?;
        Ok(match reply.as_slice() {
            [1, at] => FailOutcome::Retrying { at: to_dt(*at) },
            [2] => FailOutcome::Failed,
            [3] => FailOutcome::DeadLettered,
            _ => FailOutcome::LeaseLost,
        })
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn cancelled(&self, lease: &Lease) -> Result<bool> {
        self.guarded(&self.scripts.cancelled, lease, &[]).await
    }

    #[tracing::instrument(skip_all, fields(task = %lease.task.id))]
    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.guarded(&self.scripts.release, lease, &[]).await
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let mut inv = self.invoke(&self.scripts.cancel);
        inv.arg(tenant.to_string()).arg(id.to_string());
        let reply: Vec<String> = self.redis.script(&inv).await?;
        Self::tagged(reply, id, |status| {
            format!("task {id} is already {status} and cannot be cancelled")
        })
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn retry(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let mut inv = self.invoke(&self.scripts.retry);
        inv.arg(tenant.to_string()).arg(id.to_string());
        let reply: Vec<String> = self.redis.script(&inv).await?;
        Self::tagged(reply, id, |status| {
            format!("task {id} is {status}; only failed or cancelled tasks can be retried")
        })
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant, task = %id))]
    async fn get(&self, tenant: TenantId, id: TaskId) -> Result<Task> {
        let fields: Fields = self
            .redis
            .query(redis::cmd("HGETALL").arg(format!("{}task:{id}", self.prefix)))
            .await?;
        if fields.is_empty() {
            return Err(not_found(id));
        }
        let task = task_from(&fields)?;
        if task.tenant_id != tenant {
            return Err(not_found(id));
        }
        Ok(task)
    }

    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    async fn list(
        &self,
        tenant: TenantId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>> {
        let limit = page.effective_limit() as usize;
        let cursor = page
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<TaskId>().map_err(|_| {
                    Error::new(Code::InvalidQuery, "`cursor` is not a valid page cursor")
                })
            })
            .transpose()?;
        // The narrowest index that holds every match.
        let all = format!("{}t:{tenant}", self.prefix);
        let index = match (filter.document_id, filter.collection_id) {
            (Some(d), _) => format!("{all}:d:{d}"),
            (None, Some(c)) => format!("{all}:c:{c}"),
            (None, None) => all,
        };
        let want = limit + 1;
        let batch = want.max(64);
        let mut max = cursor.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        let mut items = Vec::with_capacity(want);
        'scan: loop {
            let ids: Vec<String> = self
                .redis
                .query(
                    redis::cmd("ZREVRANGEBYLEX")
                        .arg(&index)
                        .arg(&max)
                        .arg("-")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(batch),
                )
                .await?;
            let Some(last) = ids.last() else { break };
            max = format!("({last}");
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL").arg(format!("{}task:{id}", self.prefix));
            }
            let hashes: Vec<Fields> = self.redis.pipe(&pipe).await?;
            for fields in hashes.iter().filter(|f| !f.is_empty()) {
                let task = task_from(fields)?;
                if task.tenant_id == tenant && matches(&task, &filter) {
                    items.push(task);
                    if items.len() == want {
                        break 'scan;
                    }
                }
            }
            if ids.len() < batch {
                break;
            }
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|t| t.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let counts: HashMap<String, i64> = self
            .redis
            .query(redis::cmd("HGETALL").arg(format!("{}counts", self.prefix)))
            .await?;
        let mut depth = QueueDepth::default();
        for status in TaskStatus::ALL {
            let n = counts.get(status.as_str()).copied().unwrap_or(0);
            if n > 0 {
                depth.by_status.push((*status, n as u64));
            }
        }
        depth.dead_lettered = counts.get("dead_lettered").copied().unwrap_or(0).max(0) as u64;
        Ok(depth)
    }
}
