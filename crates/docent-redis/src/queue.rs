//! [`RedisDelivery`]: a Redis Stream with a consumer group as the transport of the
//! ledger-backed task queue (`docent_queue::DeliveryQueue`): the stream carries deliveries, the
//! database keeps task state — the design of the SQS transport (`docent_aws::sqs`) on Redis's
//! primitives.
//!
//! # Layout
//!
//! Every key starts with the queue's prefix wrapped in a hash tag, `{prefix}:`, so all of a
//! queue's keys live in one cluster slot (scripts touch several of them at once).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `stream` | stream | one entry (field `body`) per delivery, added when a task becomes runnable (enqueue, a due retry, release, operator retry, the sweep), acknowledged and deleted when that delivery ends |
//! | consumer group (`workers` by default) on `stream` | | its pending-entries list (PEL) holds the deliveries in flight, each owned by the worker whose lease it carries |
//! | `delayed` | sorted set | deliveries waiting to run again (a retry's backoff, a task still leased elsewhere), scored by when they may (server clock, ms); the same body for the same task, so one per task |
//! | `dlq` | stream | the dead-letter stream: deliveries of dead-lettered tasks, and entries that name no task, with a `reason` |
//!
//! # Verbs
//!
//! - **receive** = one Lua script (create the consumer group when missing, move due entries of
//!   `delayed` into the stream, reclaim lapsed deliveries with `XAUTOCLAIM`), then, when it found
//!   nothing, `XREADGROUP` — blocking up to the block time on the first round, on a connection
//!   of its own (a blocking command holds up every call queued behind it on the shared one).
//!   The receipt is the entry id. Entries read or reclaimed get the lease's visibility at once,
//!   so a process that dies holding them loses nothing.
//! - **Visibility.** `XAUTOCLAIM` knows one minimum idle time, while leases differ in length
//!   and heartbeats extend them: every claim and extension therefore sets its entry's delivery
//!   time with `XCLAIM … TIME (expiry − R)`, where R is a fixed horizon ([`MAX_VISIBILITY`], the
//!   longest lease). An entry's idle time reaches R exactly when its lease expires, so
//!   `XAUTOCLAIM` with min-idle R returns precisely the lapsed deliveries — a worker killed mid
//!   task has its delivery reclaimed by any consumer once its lease lapses.
//! - **claim** = the entry moves from this process's consumer to the worker's with its expiry
//!   (on the server's clock) — the ledger's lease is taken right after for the time left — and
//!   **extend** re-times it. Both check the entry's owner first, so neither takes an entry from
//!   the consumer that reclaimed it.
//! - **ack** = `XACK` + `XDEL`. **defer** = a script: `ZADD delayed`, `XACK`, `XDEL` at once;
//!   the next receive moves it back once due. **requeue** = `XADD` of a fresh entry with
//!   `XACK` + `XDEL` of the old, at once. **dead_letter** = `XADD` to `dlq` (capped at about
//!   [`DLQ_MAX_LEN`] entries; the ledger keeps every dead-lettered task) with the old entry
//!   acknowledged and deleted, at once.
//! - **tidy** (after the queue's sweep) removes consumers that hold nothing and have been idle
//!   for a day (every process and worker is one).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use docent_domain::Result;
use docent_domain::ports::{Delivery, Received};
use redis::Script;
use redis::streams::StreamReadReply;

use crate::Redis;

/// The longest lease, and the horizon R of the reclaim trick (see the module docs): 12 hours.
pub const MAX_VISIBILITY: Duration = docent_domain::ports::MAX_VISIBILITY;
/// The largest read batch.
pub const MAX_BATCH: u32 = 100;
/// The longest block time of a read.
pub const MAX_BLOCK_TIME: Duration = Duration::from_secs(60);
/// About how many entries the dead-letter stream keeps (`XADD … MAXLEN ~`).
pub const DLQ_MAX_LEN: u64 = 100_000;
/// A consumer holding nothing and idle this long is removed by the sweep.
const CONSUMER_IDLE: Duration = Duration::from_secs(24 * 3600);

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
    /// Most entries per read (1 to [`MAX_BATCH`]).
    pub read_batch: u32,
}

impl RedisQueueSettings {
    /// Settings for the queue under `prefix` with the defaults: group `workers`, reads that
    /// block for 5 s in batches of up to 10.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            group: "workers".into(),
            block_time: Duration::from_secs(5),
            read_batch: 10,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The Redis Streams transport of the task queue (see the module docs).
pub struct RedisDelivery {
    redis: Redis,
    /// A connection of its own for blocking reads.
    reader: Redis,
    prefix: String,
    stream: String,
    delayed: String,
    dlq: String,
    group: String,
    /// This process's consumer name: reads and reclaims land here, claims move entries to
    /// the worker's.
    consumer: String,
    block_time: Duration,
    read_batch: u32,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDelivery")
            .field("prefix", &self.prefix)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl RedisDelivery {
    /// A transport under `settings.prefix` on the server of `redis`. Makes no call: the group
    /// is created by the first receive, and a process starts while Redis is down.
    pub fn new(redis: Redis, settings: &RedisQueueSettings) -> Result<Self> {
        // `{}` (or `{}…}`) is no hash tag: the keys would fall into different cluster slots.
        if settings.prefix.is_empty() || settings.prefix.starts_with('}') {
            return Err(docent_domain::Error::internal(
                "the Redis queue's prefix must not be empty nor start with '}'",
            ));
        }
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
            redis,
            reader,
            stream: format!("{prefix}stream"),
            delayed: format!("{prefix}delayed"),
            dlq: format!("{prefix}dlq"),
            prefix,
            group: settings.group.clone(),
            consumer,
            block_time,
            read_batch: settings.read_batch.clamp(1, MAX_BATCH),
            scripts: Scripts::new(),
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

    /// The sorted set of deferred deliveries.
    pub fn delayed_key(&self) -> &str {
        &self.delayed
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    fn received(&self, entries: Vec<(String, String)>, visibility: Duration) -> Vec<Received> {
        let received_at = Instant::now();
        entries
            .into_iter()
            .map(|(receipt, body)| Received {
                receipt,
                body,
                received_at,
                visible_for: visibility,
            })
            .collect()
    }

    /// The gather script: the group, due deferred deliveries, lapsed leases (up to `max`).
    async fn gather(&self, max: u32, visibility: Duration) -> Result<Vec<Received>> {
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
        Ok(self.received(pairs, visibility))
    }

    /// One `XREADGROUP` of new entries (blocking for `block` on the reader connection), given
    /// `visibility` at once.
    async fn read(&self, max: u32, visibility: Duration, block: Duration) -> Result<Vec<Received>> {
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
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        self.retime(&self.consumer, &self.consumer, visibility, &ids)
            .await?;
        Ok(self.received(entries, visibility))
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
            .arg(ms(
                visibility.clamp(Duration::from_millis(1), MAX_VISIBILITY)
            ));
        for id in ids {
            inv.arg(*id);
        }
        self.redis.script(&inv).await
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

    /// Adds `XADD` of a delivery of `body` to `pipe`.
    fn push_add(&self, pipe: &mut redis::Pipeline, body: &str) {
        pipe.cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("body")
            .arg(body)
            .ignore();
    }
}

#[async_trait]
impl Delivery for RedisDelivery {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn tick(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn batch(&self) -> u32 {
        self.read_batch
    }

    async fn ping(&self) -> Result<()> {
        self.redis.ping().await
    }

    async fn send(&self, bodies: &[String]) -> Result<usize> {
        let mut pipe = redis::pipe();
        for body in bodies {
            self.push_add(&mut pipe, body);
        }
        self.redis.pipe::<()>(&pipe).await?;
        Ok(bodies.len())
    }

    async fn receive(&self, max: u32, visibility: Duration, wait: bool) -> Result<Vec<Received>> {
        let gathered = self.gather(max, visibility).await?;
        if !gathered.is_empty() {
            return Ok(gathered);
        }
        let block = if wait {
            self.block_time
        } else {
            Duration::ZERO
        };
        self.read(max, visibility, block).await
    }

    async fn claim(
        &self,
        delivery: &Received,
        worker: &str,
        visibility: Duration,
        _buffered: bool,
    ) -> Result<Option<Instant>> {
        let start = Instant::now();
        let moved = self
            .retime(&self.consumer, worker, visibility, &[&delivery.receipt])
            .await?;
        // Empty: reclaimed by another consumer meanwhile, or deleted.
        Ok((!moved.is_empty()).then_some(start))
    }

    async fn extend(&self, receipt: &str, worker: &str, visibility: Duration) -> Result<()> {
        self.retime(worker, worker, visibility, &[receipt]).await?;
        Ok(())
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        let mut pipe = redis::pipe();
        self.push_ack(pipe.atomic(), receipt);
        self.redis.pipe::<()>(&pipe).await
    }

    async fn defer(&self, receipt: &str, body: &str, delay: Duration) -> Result<()> {
        let mut inv = self.scripts.park.prepare_invoke();
        inv.key(&self.stream)
            .key(&self.delayed)
            .arg(&self.group)
            .arg(receipt)
            .arg(body)
            .arg(ms(delay).max(1));
        self.redis.script::<i64>(&inv).await?;
        Ok(())
    }

    async fn requeue(&self, receipt: &str, body: &str) -> Result<()> {
        let mut pipe = redis::pipe();
        self.push_add(pipe.atomic(), body);
        self.push_ack(&mut pipe, receipt);
        self.redis.pipe::<()>(&pipe).await
    }

    async fn dead_letter(&self, receipt: &str, body: &str, reason: &str) -> Result<()> {
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
        self.push_ack(&mut pipe, receipt);
        self.redis.pipe::<()>(&pipe).await
    }

    async fn tidy(&self) -> Result<()> {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    /// Every command and script of the transport names its stream, its delayed set or its
    /// dead-letter stream, several at once (`GATHER`, `PARK`, the atomic pipelines of requeue
    /// and dead-letter): in a Redis Cluster they must all hash to one slot, whatever the
    /// prefix. Queues of different names, though, land in different slots.
    #[tokio::test]
    async fn a_queues_keys_share_one_slot() {
        let redis = Redis::open("redis://127.0.0.1:1/0", crate::RedisOptions::default()).unwrap();
        let mut slots = std::collections::HashSet::new();
        for prefix in ["docent:queue", "docent:tasks", "a}b", "x{y}z", "{t}", "q"] {
            let d = RedisDelivery::new(redis.clone(), &RedisQueueSettings::new(prefix)).unwrap();
            let slot = Slot::for_key(d.stream_key());
            assert_eq!(Slot::for_key(d.delayed_key()), slot, "{prefix}");
            assert_eq!(Slot::for_key(d.dlq_key()), slot, "{prefix}");
            slots.insert(slot);
        }
        assert!(slots.len() > 1, "different queues, different slots");
    }

    /// A prefix that would make no hash tag is refused rather than splitting the keys.
    #[tokio::test]
    async fn a_prefix_without_a_hash_tag_is_refused() {
        let redis = Redis::open("redis://127.0.0.1:1/0", crate::RedisOptions::default()).unwrap();
        for prefix in ["", "}", "}docent"] {
            assert!(RedisDelivery::new(redis.clone(), &RedisQueueSettings::new(prefix)).is_err());
        }
        let d = RedisDelivery::new(redis, &RedisQueueSettings::new("{")).unwrap();
        assert_eq!(
            Slot::for_key(d.stream_key()),
            Slot::for_key(d.dlq_key()),
            "`{{{{}}:` has the tag `{{`"
        );
    }
}
