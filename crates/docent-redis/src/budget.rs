//! [`RedisBudgetStore`]: the domain's [`BudgetStore`] port in Redis, so every process calling a model provider
//! draws from one budget.
//!
//! Each budget key is one hash at `{prefix}{key}` with the request bucket (`rl` level, `ra` last
//! refill), the token bucket (`tl`, `ta`) and the pause (`pu`), all in seconds of the Redis
//! server's clock (`TIME`), so processes on machines with skewed clocks still agree. Every
//! operation is one Lua script — refill, check, take and store happen atomically — with exactly
//! the semantics of `docent_llm::InProcessBudgetStore`: buckets start full, `try_take` takes
//! one request and the tokens (capped at the bucket's depth) all-or-nothing or says how long to
//! wait, `adjust_tokens` may put the token bucket into debt, and a pause never shortens. A key
//! expires once its buckets would be full again and its pause is over, which is the same as a
//! fresh key.

use std::time::Duration;

use async_trait::async_trait;
use docent_domain::Result;
use docent_domain::budget::{BudgetStore, Grant, Limits};
use redis::Script;

use crate::Redis;

/// Shared helpers: `now` (server seconds), `refill`, `keep` (store state and expiry).
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local key = KEYS[1]
local function num(x) return string.format('%.17g', x) end
local function refill(level, at, rate, burst)
  if not level then return burst end
  local l = tonumber(level)
  local dt = now - tonumber(at)
  if dt < 0 then dt = 0 end
  l = l + dt * rate
  if l > burst then l = burst end
  return l
end
-- Stores the buckets and keeps the key until they would be full again (and any pause is over).
local function keep(rl, rr, rb, tl, tr, tb, pu)
  local life = 0
  if rl then
    redis.call('HSET', key, 'rl', num(rl), 'ra', num(now))
    if rr > 0 then life = math.max(life, (rb - rl) / rr) end
  end
  if tl then
    redis.call('HSET', key, 'tl', num(tl), 'ta', num(now))
    if tr > 0 then life = math.max(life, (tb - tl) / tr) end
  end
  if pu and pu > now then
    life = math.max(life, pu - now)
  end
  local ms = math.ceil(life * 1000) + 60000
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end
"#;

/// ARGV: request rate, request burst, token rate ('' if unlimited), token burst, tokens.
/// Returns 0 when granted, else the wait in microseconds (at least 1).
const TRY_TAKE: &str = r#"
local rr, rb = tonumber(ARGV[1]), tonumber(ARGV[2])
local tr, tb = tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', key, 'rl', 'ra', 'tl', 'ta', 'pu')
local rl = refill(s[1], s[2], rr, rb)
local tl = nil
if tr then tl = refill(s[3], s[4], tr, tb) end
local pu = tonumber(s[5])
local EPS = 1e-9
local wait = 0
if pu and pu > now then
  wait = pu - now
else
  if pu then redis.call('HDEL', key, 'pu') end
  if rl + EPS < 1 then wait = (1 - rl) / rr end
  local need = 0
  if tr then
    need = math.min(tonumber(ARGV[5]), tb)
    if tl + EPS < need then wait = math.max(wait, (need - tl) / tr) end
  end
  if wait == 0 then
    rl = rl - 1
    if tr then tl = tl - need end
  end
end
keep(rl, rr, rb, tl, tr, tb, pu)
if wait == 0 then return 0 end
if wait > 86400 then wait = 86400 end
return math.max(1, math.ceil(wait * 1000000))
"#;

/// ARGV: request rate, request burst, token rate, token burst, delta (tokens to take more).
const ADJUST: &str = r#"
local rr, rb = tonumber(ARGV[1]), tonumber(ARGV[2])
local tr, tb = tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', key, 'rl', 'ra', 'tl', 'ta', 'pu')
local rl = refill(s[1], s[2], rr, rb)
local tl = refill(s[3], s[4], tr, tb)
tl = math.min(tl - tonumber(ARGV[5]), tb)
keep(rl, rr, rb, tl, tr, tb, tonumber(s[5]))
return 1
"#;

/// ARGV: pause in seconds.
const PAUSE: &str = r#"
local pu = tonumber(redis.call('HGET', key, 'pu'))
local until_ = now + tonumber(ARGV[1])
if not pu or pu < until_ then
  pu = until_
  redis.call('HSET', key, 'pu', num(pu))
end
keep(nil, 0, 0, nil, 0, 0, pu)
return 1
"#;

/// Budget buckets in Redis (see the module docs).
#[derive(Debug)]
pub struct RedisBudgetStore {
    redis: Redis,
    prefix: String,
    try_take: Script,
    adjust: Script,
    pause: Script,
}

impl RedisBudgetStore {
    /// A store keeping budget `k` at `{prefix}k` (e.g. prefix `docent:budget:`).
    pub fn new(redis: Redis, prefix: impl Into<String>) -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            redis,
            prefix: prefix.into(),
            try_take: script(TRY_TAKE),
            adjust: script(ADJUST),
            pause: script(PAUSE),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl BudgetStore for RedisBudgetStore {
    #[tracing::instrument(skip_all, fields(key = %key, tokens))]
    async fn try_take(&self, key: &str, limits: &Limits, tokens: u64) -> Result<Grant> {
        let (tr, tb) = match limits.tokens {
            Some(r) => (r.per_second.to_string(), r.burst.to_string()),
            None => (String::new(), String::new()),
        };
        let wait_us: u64 = self
            .redis
            .script(
                self.try_take
                    .key(self.key(key))
                    .arg(limits.requests.per_second.to_string())
                    .arg(limits.requests.burst.to_string())
                    .arg(tr)
                    .arg(tb)
                    .arg(tokens),
            )
            .await?;
        Ok(if wait_us == 0 {
            Grant::Granted
        } else {
            Grant::Wait(Duration::from_micros(wait_us))
        })
    }

    #[tracing::instrument(skip_all, fields(key = %key, delta))]
    async fn adjust_tokens(&self, key: &str, limits: &Limits, delta: i64) -> Result<()> {
        let Some(rate) = limits.tokens else {
            return Ok(());
        };
        let _: i64 = self
            .redis
            .script(
                self.adjust
                    .key(self.key(key))
                    .arg(limits.requests.per_second.to_string())
                    .arg(limits.requests.burst.to_string())
                    .arg(rate.per_second.to_string())
                    .arg(rate.burst.to_string())
                    .arg(delta),
            )
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(key = %key, pause_ms = duration.as_millis() as u64))]
    async fn pause(&self, key: &str, duration: Duration) -> Result<()> {
        let _: i64 = self
            .redis
            .script(
                self.pause
                    .key(self.key(key))
                    .arg(duration.as_secs_f64().to_string()),
            )
            .await?;
        Ok(())
    }
}
