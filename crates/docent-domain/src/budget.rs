//! The [`BudgetStore`] port: where the token buckets of model-call budgets live.
//!
//! Budgets themselves (`docent_llm::Budget`: rates from config, per-tenant shares, retries,
//! the circuit breaker) are the model clients' business; this is only the state they share,
//! small on purpose so that a store shared across processes (a Redis script, a SQL row) can
//! implement it: take from two token buckets all-or-nothing, correct the token bucket
//! afterwards, and pause a key. Callers never hold a reservation while they sleep: they ask,
//! sleep the hinted time, and ask again, so a pause set meanwhile (a provider's `Retry-After`)
//! stops everyone. Implementations: `docent_llm::InProcessBudgetStore` (one process) and
//! `docent_redis::RedisBudgetStore` (every process on one Redis).

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// A token bucket's shape: refill rate and depth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Units added per second.
    pub per_second: f64,
    /// Most units the bucket holds.
    pub burst: f64,
}

/// The buckets of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests (each request takes 1).
    pub requests: Rate,
    /// Tokens, when limited.
    pub tokens: Option<Rate>,
}

/// The answer to [`BudgetStore::try_take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Taken: go ahead now.
    Granted,
    /// Nothing taken: ask again after this long.
    Wait(Duration),
}

/// Budget state keyed by provider (and by tenant within a provider).
#[async_trait]
pub trait BudgetStore: Send + Sync + 'static {
    /// Takes one request and `tokens` tokens (at most the token bucket's depth) from `key`'s
    /// buckets if both hold enough now and the key is not paused; otherwise takes nothing and
    /// says how long until they will. Buckets start full.
    async fn try_take(&self, key: &str, limits: &Limits, tokens: u64) -> Result<Grant>;
    /// Corrects `key`'s token bucket once the real count is known: a positive `delta` takes
    /// more (the bucket may go into debt), a negative one gives back.
    async fn adjust_tokens(&self, key: &str, limits: &Limits, delta: i64) -> Result<()>;
    /// Grants nothing for `key` until `duration` from now (a pause never shortens one).
    async fn pause(&self, key: &str, duration: Duration) -> Result<()>;
}
