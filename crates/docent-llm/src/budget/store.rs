//! [`InProcessBudgetStore`]: the domain's [`BudgetStore`] port in this process's memory, shared
//! by every worker of the process. (The port is in `docent_domain::budget`, so that stores in
//! other crates — `docent_redis::RedisBudgetStore` — need not depend on this one.)

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use docent_domain::Result;
use docent_domain::budget::{BudgetStore, Grant, Limits, Rate};

#[derive(Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: &Rate, now: Instant) -> Self {
        Bucket {
            level: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: &Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// Time until the bucket holds `need` (zero if it does).
    fn wait_for(&self, rate: &Rate, need: f64) -> Duration {
        // Allow for float drift: a sleep computed from this wait must end with a grant.
        const EPS: f64 = 1e-9;
        if self.level + EPS >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.level) / rate.per_second)
        }
    }
}

#[derive(Debug)]
struct KeyState {
    requests: Bucket,
    tokens: Option<Bucket>,
    paused_until: Option<Instant>,
    /// The shape last used, to tell when the buckets are full again.
    limits: Limits,
}

impl KeyState {
    /// Whether the key is indistinguishable from a fresh one at `now`: buckets full, no pause.
    fn is_idle(&self, now: Instant) -> bool {
        let full = |b: &Bucket, r: &Rate| {
            let dt = now.saturating_duration_since(b.at).as_secs_f64();
            b.level + dt * r.per_second >= r.burst
        };
        self.paused_until.is_none_or(|p| p <= now)
            && full(&self.requests, &self.limits.requests)
            && match (&self.tokens, &self.limits.tokens) {
                (Some(b), Some(r)) => full(b, r),
                _ => true,
            }
    }
}

/// Keys held before idle ones are dropped (per-tenant keys come and go with tenants).
const PRUNE_AT: usize = 4096;

/// Budget state in this process's memory. [`InProcessBudgetStore::global`] is the one every
/// [`Budget`](crate::Budget) uses unless told otherwise, so all workers of the process share
/// each provider's buckets.
#[derive(Debug, Default)]
pub struct InProcessBudgetStore {
    keys: Mutex<HashMap<String, KeyState>>,
}

static GLOBAL: LazyLock<Arc<InProcessBudgetStore>> =
    LazyLock::new(|| Arc::new(InProcessBudgetStore::default()));

impl InProcessBudgetStore {
    /// An empty store of its own (tests, or budgets deliberately not shared).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide store.
    pub fn global() -> Arc<InProcessBudgetStore> {
        GLOBAL.clone()
    }

    fn with_key<T>(
        &self,
        key: &str,
        limits: &Limits,
        f: impl FnOnce(&mut KeyState, Instant) -> T,
    ) -> T {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= PRUNE_AT && !keys.contains_key(key) {
            keys.retain(|_, s| !s.is_idle(now));
        }
        let state = keys.entry(key.to_owned()).or_insert_with(|| KeyState {
            requests: Bucket::full(&limits.requests, now),
            tokens: limits.tokens.map(|r| Bucket::full(&r, now)),
            paused_until: None,
            limits: *limits,
        });
        state.limits = *limits;
        if state.tokens.is_none()
            && let Some(r) = &limits.tokens
        {
            state.tokens = Some(Bucket::full(r, now));
        }
        state.requests.refill(&limits.requests, now);
        if let (Some(b), Some(r)) = (state.tokens.as_mut(), limits.tokens.as_ref()) {
            b.refill(r, now);
        }
        f(state, now)
    }
}

#[async_trait]
impl BudgetStore for InProcessBudgetStore {
    async fn try_take(&self, key: &str, limits: &Limits, tokens: u64) -> Result<Grant> {
        Ok(self.with_key(key, limits, |s, now| {
            if let Some(until) = s.paused_until {
                if until > now {
                    return Grant::Wait(until - now);
                }
                s.paused_until = None;
            }
            let mut wait = s.requests.wait_for(&limits.requests, 1.0);
            let need_tokens = limits.tokens.map(|r| (tokens as f64).min(r.burst));
            if let (Some(b), Some(r), Some(need)) = (&s.tokens, &limits.tokens, need_tokens) {
                wait = wait.max(b.wait_for(r, need));
            }
            if !wait.is_zero() {
                return Grant::Wait(wait);
            }
            s.requests.level -= 1.0;
            if let (Some(b), Some(need)) = (s.tokens.as_mut(), need_tokens) {
                b.level -= need;
            }
            Grant::Granted
        }))
    }

    async fn adjust_tokens(&self, key: &str, limits: &Limits, delta: i64) -> Result<()> {
        let Some(rate) = limits.tokens else {
            return Ok(());
        };
        self.with_key(key, limits, |s, _| {
            if let Some(b) = s.tokens.as_mut() {
                b.level = (b.level - delta as f64).min(rate.burst);
            }
        });
        Ok(())
    }

    async fn pause(&self, key: &str, duration: Duration) -> Result<()> {
        let limits = Limits {
            requests: Rate {
                per_second: 1.0,
                burst: 1.0,
            },
            tokens: None,
        };
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let state = keys.entry(key.to_owned()).or_insert_with(|| KeyState {
            requests: Bucket::full(&limits.requests, now),
            tokens: None,
            paused_until: None,
            limits,
        });
        let until = now + duration;
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: f64, burst: f64, tpm: Option<f64>) -> Limits {
        Limits {
            requests: Rate {
                per_second: rps,
                burst,
            },
            tokens: tpm.map(|t| Rate {
                per_second: t / 60.0,
                burst: t,
            }),
        }
    }

    #[tokio::test]
    async fn buckets_start_full_and_refill_at_their_rate() {
        let s = InProcessBudgetStore::new();
        let l = limits(5.0, 2.0, None);
        assert_eq!(s.try_take("k", &l, 0).await.unwrap(), Grant::Granted);
        assert_eq!(s.try_take("k", &l, 0).await.unwrap(), Grant::Granted);
        let Grant::Wait(w) = s.try_take("k", &l, 0).await.unwrap() else {
            panic!("burst is 2");
        };
        assert!(
            w > Duration::from_millis(150) && w <= Duration::from_millis(200),
            "{w:?}"
        );
        assert_eq!(s.try_take("other", &l, 0).await.unwrap(), Grant::Granted);
    }

    #[tokio::test]
    async fn tokens_are_taken_with_the_request_and_adjusted() {
        let s = InProcessBudgetStore::new();
        let l = limits(1000.0, 1000.0, Some(600.0)); // 10 tokens/s, 600 deep
        assert_eq!(s.try_take("k", &l, 500).await.unwrap(), Grant::Granted);
        let Grant::Wait(w) = s.try_take("k", &l, 200).await.unwrap() else {
            panic!("only 100 tokens left");
        };
        assert!(
            w > Duration::from_secs(9) && w <= Duration::from_secs(10),
            "{w:?}"
        );
        s.adjust_tokens("k", &l, -400).await.unwrap();
        assert_eq!(s.try_take("k", &l, 200).await.unwrap(), Grant::Granted);
        // More than the bucket holds is charged the whole bucket, not refused forever.
        let s = InProcessBudgetStore::new();
        assert_eq!(s.try_take("k", &l, 10_000).await.unwrap(), Grant::Granted);
    }

    #[tokio::test]
    async fn idle_keys_are_dropped_once_there_are_many_and_busy_ones_kept() {
        let s = InProcessBudgetStore::new();
        let slow = limits(0.001, 1.0, None);
        assert_eq!(s.try_take("spent", &slow, 0).await.unwrap(), Grant::Granted);
        let fast = limits(1000.0, 1.0, None);
        // Up to PRUNE_AT keys in all ("spent" included), so nothing is pruned before the sleep
        // (a prune while the newest keys are still refilling would keep them, by design).
        for i in 0..PRUNE_AT - 1 {
            s.try_take(&format!("tenant-{i}"), &fast, 0).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.try_take("one-more", &fast, 0).await.unwrap();
        let keys = s.keys.lock().unwrap();
        assert!(keys.len() < 10, "idle keys dropped: {}", keys.len());
        assert!(
            keys.contains_key("spent"),
            "a key with a spent bucket stays"
        );
    }

    #[tokio::test]
    async fn pauses_stop_grants() {
        let s = InProcessBudgetStore::new();
        let l = limits(100.0, 10.0, None);
        s.pause("k", Duration::from_secs(2)).await.unwrap();
        s.pause("k", Duration::from_millis(10)).await.unwrap();
        let Grant::Wait(w) = s.try_take("k", &l, 0).await.unwrap() else {
            panic!("paused");
        };
        assert!(
            w > Duration::from_secs(1),
            "a shorter pause does not shorten"
        );
    }
}
