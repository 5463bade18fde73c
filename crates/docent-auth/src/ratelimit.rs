//! Request rate limits and sign-in brute-force protection, in process.
//!
//! [`RateLimiter`] keeps one keyed GCRA token bucket (governor) per [`RouteClass`], keyed by
//! the caller: an API key, a user, or — for anonymous requests — the client IP. A decision
//! carries what the HTTP edge needs for `429` + `Retry-After` and the `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` headers. On top of the callers' buckets each
//! tenant has a ceiling per class ([`RateLimiter::check_tenant`]: `tenant_factor` times a
//! caller's quota, shared by all its keys and users), so minting more keys does not multiply
//! what a workspace may send.
//!
//! [`SigninGuard`] counts failed sign-ins per (account, client IP) and locks that pair out with
//! exponentially growing delays, so guessing one account's password from one address is slow
//! without letting anyone lock a victim out from elsewhere. It also counts failures per account
//! over all addresses: past `account_max_failures`, each further failure locks the account
//! everywhere for a short fixed `account_lockout`, which slows guessing spread over many
//! addresses to one try per lockout while the owner waits seconds, not forever.
//!
//! Both are per process: behind a load balancer each replica limits on its own (a Redis-backed
//! limiter belongs to the distributed shape).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use docent_config::{RateLimitConfig, RateQuota, SigninGuardConfig};
use docent_domain::{ApiKeyId, Code, Error, TenantId, UserId};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

/// A class of routes sharing one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Sign-up, sign-in, refresh, verification, password reset.
    Auth,
    /// Lists, gets, downloads.
    Read,
    /// Creates, updates, deletes.
    Write,
    /// Uploads and reprocessing.
    Ingest,
    /// Search.
    Search,
    /// Answers, chat, summaries.
    Ask,
}

impl RouteClass {
    /// Every class.
    pub const ALL: [RouteClass; 6] = [
        RouteClass::Auth,
        RouteClass::Read,
        RouteClass::Write,
        RouteClass::Ingest,
        RouteClass::Search,
        RouteClass::Ask,
    ];

    /// Name (for metrics and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Read => "read",
            RouteClass::Write => "write",
            RouteClass::Ingest => "ingest",
            RouteClass::Search => "search",
            RouteClass::Ask => "ask",
        }
    }

    fn quota(self, config: &RateLimitConfig) -> RateQuota {
        match self {
            RouteClass::Auth => config.auth,
            RouteClass::Read => config.read,
            RouteClass::Write => config.write,
            RouteClass::Ingest => config.ingest,
            RouteClass::Search => config.search,
            RouteClass::Ask => config.ask,
        }
    }
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An API key.
    ApiKey(ApiKeyId),
    /// A signed-in user.
    User(UserId),
    /// An anonymous client address.
    Ip(IpAddr),
    /// A tenant's ceiling (all its callers together).
    Tenant(TenantId),
}

/// The outcome of one check, with the values of the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// `RateLimit-Limit`: the bucket size.
    pub limit: u32,
    /// `RateLimit-Remaining`: requests left right now.
    pub remaining: u32,
    /// `RateLimit-Reset`: time until the bucket is full again.
    pub reset: Duration,
    /// `Retry-After` when refused.
    pub retry_after: Option<Duration>,
}

impl RateDecision {
    /// `Ok` when allowed, else a `rate_limited` error carrying `retry_after`.
    pub fn into_result(self) -> docent_domain::Result<RateDecision> {
        match self.retry_after {
            Some(wait) if !self.allowed => Err(Error::new(
                Code::RateLimited,
                "too many requests; retry after the time in Retry-After",
            )
            .with_retry_after(whole_seconds(wait))),
            _ => Ok(self),
        }
    }

    /// The headers to send, as `(name, value)` pairs (seconds rounded up).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            (
                "RateLimit-Reset",
                whole_seconds(self.reset).as_secs().to_string(),
            ),
        ];
        if let Some(wait) = self.retry_after {
            h.push(("Retry-After", whole_seconds(wait).as_secs().to_string()));
        }
        h
    }
}

/// Rounds up to whole seconds (at least one when not zero).
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs)
}

type Bucket<C> = Governor<RateKey, DefaultKeyedStateStore<RateKey>, C, StateInformationMiddleware>;

/// Keyed token buckets, one set per route class.
pub struct RateLimiter<C: Clock = DefaultClock> {
    enabled: bool,
    clock: C,
    buckets: HashMap<RouteClass, (Bucket<C>, RateQuota)>,
    /// Tenants' ceilings (absent when `tenant_factor` is 0).
    tenant_buckets: HashMap<RouteClass, (Bucket<C>, RateQuota)>,
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl RateLimiter<DefaultClock> {
    /// Limits from configuration, on the real clock.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// Limits from configuration on a given clock (tests use a fake one).
    pub fn with_clock(config: &RateLimitConfig, clock: C) -> Self {
        let make = |scale: u32| -> HashMap<RouteClass, (Bucket<C>, RateQuota)> {
            RouteClass::ALL
                .into_iter()
                .map(|class| {
                    let base = class.quota(config);
                    let q = RateQuota {
                        per_minute: base.per_minute.saturating_mul(scale),
                        burst: base.burst.saturating_mul(scale),
                    };
                    let bucket: Bucket<C> = Governor::new(
                        quota_of(q),
                        DefaultKeyedStateStore::default(),
                        clock.clone(),
                    );
                    (class, (bucket, q))
                })
                .collect()
        };
        let buckets = make(1);
        let tenant_buckets = if config.tenant_factor == 0 {
            HashMap::new()
        } else {
            make(config.tenant_factor)
        };
        Self {
            enabled: config.enabled,
            clock,
            buckets,
            tenant_buckets,
        }
    }

    /// Whether limits apply (`auth.rate_limit.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Takes one request from `key`'s bucket for `class`.
    pub fn check(&self, class: RouteClass, key: &RateKey) -> RateDecision {
        self.check_in(&self.buckets[&class], key)
    }

    /// Takes one request from the tenant's ceiling for `class` (allowed when there is none).
    pub fn check_tenant(&self, class: RouteClass, tenant: TenantId) -> RateDecision {
        match self.tenant_buckets.get(&class) {
            Some(b) => self.check_in(b, &RateKey::Tenant(tenant)),
            None => RateDecision {
                allowed: true,
                limit: u32::MAX,
                remaining: u32::MAX,
                reset: Duration::ZERO,
                retry_after: None,
            },
        }
    }

    fn check_in(&self, (bucket, quota): &(Bucket<C>, RateQuota), key: &RateKey) -> RateDecision {
        let per_request = quota_of(*quota).replenish_interval();
        if !self.enabled {
            return RateDecision {
                allowed: true,
                limit: quota.burst,
                remaining: quota.burst,
                reset: Duration::ZERO,
                retry_after: None,
            };
        }
        match bucket.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    allowed: true,
                    limit: quota.burst,
                    remaining,
                    reset: per_request * quota.burst.saturating_sub(remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                RateDecision {
                    allowed: false,
                    limit: quota.burst,
                    remaining: 0,
                    reset: wait + per_request * quota.burst.saturating_sub(1),
                    retry_after: Some(wait.max(Duration::from_millis(1))),
                }
            }
        }
    }

    /// Forgets buckets that are full again (call now and then to bound memory).
    pub fn prune(&self) {
        for (bucket, _) in self.buckets.values().chain(self.tenant_buckets.values()) {
            bucket.retain_recent();
        }
    }

    /// How many keys are tracked, over all classes.
    pub fn tracked_keys(&self) -> usize {
        self.buckets
            .values()
            .chain(self.tenant_buckets.values())
            .map(|(b, _)| b.len())
            .sum()
    }
}

fn quota_of(q: RateQuota) -> Quota {
    let per_minute = q.per_minute.max(1);
    let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute));
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(NonZeroU32::new(q.burst.max(1)).expect("burst at least 1"))
}

/// Failed sign-in bookkeeping per (normalized email, client address).
pub struct SigninGuard {
    config: SigninGuardConfig,
    entries: Mutex<HashMap<(String, IpAddr), Attempts>>,
    /// Failures per account over all addresses.
    accounts: Mutex<HashMap<String, Attempts>>,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

impl std::fmt::Debug for SigninGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigninGuard")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SigninGuard {
    /// A guard with these limits.
    pub fn new(config: SigninGuardConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// `too_many_attempts` (with `retry_after`) while the pair is locked out.
    pub fn check(&self, email: &str, ip: IpAddr) -> docent_domain::Result<()> {
        self.check_at(email, ip, Instant::now())
    }

    /// Records a failed attempt; returns the lockout it started, if any.
    pub fn record_failure(&self, email: &str, ip: IpAddr) -> Option<Duration> {
        self.record_failure_at(email, ip, Instant::now())
    }

    /// Forgets the pair's failures (after a successful sign-in).
    pub fn record_success(&self, email: &str, ip: IpAddr) {
        self.lock().remove(&(email.to_owned(), ip));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, IpAddr), Attempts>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attempts>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Self::check`] at a given instant.
    pub fn check_at(&self, email: &str, ip: IpAddr, now: Instant) -> docent_domain::Result<()> {
        let pair_until = self
            .lock()
            .get(&(email.to_owned(), ip))
            .and_then(|a| a.locked_until);
        let account_until = self.lock_accounts().get(email).and_then(|a| a.locked_until);
        if let Some(until) = pair_until.max(account_until)
            && until > now
        {
            return Err(Error::new(
                Code::TooManyAttempts,
                "too many failed sign-ins; try again later or reset your password",
            )
            .with_retry_after(whole_seconds(until - now)));
        }
        Ok(())
    }

    /// [`Self::record_failure`] at a given instant.
    pub fn record_failure_at(&self, email: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let account = self.record_account_failure(email, now);
        let pair = self.record_pair_failure(email, ip, now);
        pair.max(account)
    }

    /// Counts a failure against the account from any address; past `account_max_failures`
    /// each further failure locks the account for the fixed `account_lockout`.
    fn record_account_failure(&self, email: &str, now: Instant) -> Option<Duration> {
        let max = self.config.account_max_failures;
        if max == 0 {
            return None;
        }
        let mut accounts = self.lock_accounts();
        if accounts.len() > 100_000 {
            let window = self.config.window;
            accounts.retain(|_, a| now.saturating_duration_since(a.last_failure) < window);
        }
        let a = accounts.entry(email.to_owned()).or_insert(Attempts {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.saturating_duration_since(a.last_failure) >= self.config.window {
            a.failures = 0;
            a.locked_until = None;
        }
        a.failures = a.failures.saturating_add(1);
        a.last_failure = now;
        if a.failures < max {
            return None;
        }
        let lockout = self.config.account_lockout;
        a.locked_until = Some(now + lockout);
        Some(lockout)
    }

    fn record_pair_failure(&self, email: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut entries = self.lock();
        if entries.len() > 100_000 {
            let window = self.config.window;
            entries.retain(|_, a| now.saturating_duration_since(a.last_failure) < window);
        }
        let a = entries.entry((email.to_owned(), ip)).or_insert(Attempts {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.saturating_duration_since(a.last_failure) >= self.config.window {
            a.failures = 0;
            a.locked_until = None;
        }
        a.failures += 1;
        a.last_failure = now;
        if a.failures < self.config.max_failures {
            return None;
        }
        let doublings = (a.failures - self.config.max_failures).min(20);
        let lockout = self
            .config
            .lockout_base
            .saturating_mul(1u32 << doublings)
            .min(self.config.lockout_max);
        a.locked_until = Some(now + lockout);
        Some(lockout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn config(per_minute: u32, burst: u32) -> RateLimitConfig {
        let q = RateQuota { per_minute, burst };
        RateLimitConfig {
            enabled: true,
            auth: q,
            read: q,
            write: RateQuota {
                per_minute: 1,
                burst: 1,
            },
            ingest: q,
            search: q,
            ask: q,
            tenant_factor: 0,
        }
    }

    #[test]
    fn buckets_allow_a_burst_then_refuse_with_retry_after() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(&config(60, 3), clock.clone());
        let key = RateKey::User(UserId::new());
        let remaining: Vec<u32> = (0..3)
            .map(|_| {
                let d = limiter.check(RouteClass::Read, &key);
                assert!(d.allowed);
                assert_eq!(d.limit, 3);
                d.remaining
            })
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(RouteClass::Read, &key);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        let wait = refused.retry_after.unwrap();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        let err = refused.into_result().unwrap_err();
        assert_eq!(err.code, Code::RateLimited);
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
        let headers = refused.headers();
        assert!(
            headers.contains(&("Retry-After", "1".into())),
            "{headers:?}"
        );
        assert!(headers.contains(&("RateLimit-Remaining", "0".into())));
        assert!(headers.contains(&("RateLimit-Limit", "3".into())));

        // One request per second refills.
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check(RouteClass::Read, &key).allowed);
        assert!(!limiter.check(RouteClass::Read, &key).allowed);
        // After the full burst time the bucket is full again.
        clock.advance(Duration::from_secs(3));
        assert_eq!(limiter.check(RouteClass::Read, &key).remaining, 2);
    }

    #[test]
    fn keys_and_classes_are_independent() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(&config(60, 2), clock);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = RateKey::Ip(ip);
        let b = RateKey::ApiKey(ApiKeyId::new());
        assert!(limiter.check(RouteClass::Write, &a).allowed);
        assert!(
            !limiter.check(RouteClass::Write, &a).allowed,
            "write allows 1"
        );
        assert!(limiter.check(RouteClass::Write, &b).allowed, "another key");
        assert!(limiter.check(RouteClass::Read, &a).allowed, "another class");
        assert!(limiter.tracked_keys() >= 3);
        limiter.prune();
    }

    #[test]
    fn disabled_limits_always_allow() {
        let mut c = config(1, 1);
        c.enabled = false;
        let limiter = RateLimiter::new(&c);
        let key = RateKey::User(UserId::new());
        for _ in 0..10 {
            let d = limiter.check(RouteClass::Ask, &key);
            assert!(d.allowed && d.retry_after.is_none());
        }
    }

    fn guard() -> SigninGuard {
        SigninGuard::new(SigninGuardConfig {
            max_failures: 3,
            lockout_base: Duration::from_secs(10),
            lockout_max: Duration::from_secs(60),
            window: Duration::from_secs(600),
            account_max_failures: 0,
            account_lockout: Duration::from_secs(5),
        })
    }

    #[test]
    fn a_tenant_ceiling_caps_all_its_keys_together() {
        let clock = FakeRelativeClock::default();
        let mut c = config(60, 2);
        c.tenant_factor = 2;
        let limiter = RateLimiter::with_clock(&c, clock);
        let tenant = TenantId::new();
        let other = TenantId::new();
        // Minting more keys gives each its own bucket of 2, but the tenant's ceiling is 4.
        let mut allowed = 0;
        for _ in 0..10 {
            let key = RateKey::ApiKey(ApiKeyId::new());
            if limiter.check(RouteClass::Read, &key).allowed
                && limiter.check_tenant(RouteClass::Read, tenant).allowed
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 4);
        let refused = limiter.check_tenant(RouteClass::Read, tenant);
        assert!(!refused.allowed && refused.retry_after.is_some());
        assert!(limiter.check_tenant(RouteClass::Read, other).allowed);
        // No ceiling with a factor of 0.
        let none = RateLimiter::with_clock(&config(60, 1), FakeRelativeClock::default());
        for _ in 0..10 {
            assert!(none.check_tenant(RouteClass::Read, tenant).allowed);
        }
    }

    #[test]
    fn signin_guard_slows_guessing_from_many_addresses_without_a_long_lockout() {
        let g = SigninGuard::new(SigninGuardConfig {
            max_failures: 3,
            lockout_base: Duration::from_secs(10),
            lockout_max: Duration::from_secs(60),
            window: Duration::from_secs(600),
            account_max_failures: 5,
            account_lockout: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        // One failure from each of many addresses: no pair lockout ever starts.
        for i in 0..4u8 {
            let ip = IpAddr::from([203, 0, 113, i]);
            assert_eq!(g.record_failure_at("a@x.io", ip, t0), None);
        }
        let owner: IpAddr = "198.51.100.9".parse().unwrap();
        g.check_at("a@x.io", owner, t0).unwrap();
        // The fifth failure locks the account from every address, briefly.
        let fifth = IpAddr::from([203, 0, 113, 200]);
        assert_eq!(
            g.record_failure_at("a@x.io", fifth, t0),
            Some(Duration::from_secs(5))
        );
        let err = g.check_at("a@x.io", owner, t0).unwrap_err();
        assert_eq!(err.code, Code::TooManyAttempts);
        assert_eq!(err.retry_after, Some(Duration::from_secs(5)));
        g.check_at("b@x.io", owner, t0).unwrap();
        // The lockout does not grow: each further failure costs the same short wait.
        let t1 = t0 + Duration::from_secs(6);
        g.check_at("a@x.io", owner, t1).unwrap();
        for i in 0..5u8 {
            let t = t1 + Duration::from_secs(6 * u64::from(i));
            let ip = IpAddr::from([192, 0, 2, i]);
            assert_eq!(
                g.record_failure_at("a@x.io", ip, t),
                Some(Duration::from_secs(5))
            );
        }
    }

    #[test]
    fn signin_guard_locks_out_exponentially_per_account_and_ip() {
        let g = guard();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let other_ip: IpAddr = "198.51.100.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(g.record_failure_at("a@x.io", ip, t0), None);
        assert_eq!(g.record_failure_at("a@x.io", ip, t0), None);
        g.check_at("a@x.io", ip, t0).unwrap();
        assert_eq!(
            g.record_failure_at("a@x.io", ip, t0),
            Some(Duration::from_secs(10))
        );
        let err = g.check_at("a@x.io", ip, t0).unwrap_err();
        assert_eq!(err.code, Code::TooManyAttempts);
        assert_eq!(err.retry_after, Some(Duration::from_secs(10)));
        // Other addresses and other accounts are not affected.
        g.check_at("a@x.io", other_ip, t0).unwrap();
        g.check_at("b@x.io", ip, t0).unwrap();
        // After the lockout, each further failure doubles it, up to the maximum.
        let t1 = t0 + Duration::from_secs(11);
        g.check_at("a@x.io", ip, t1).unwrap();
        assert_eq!(
            g.record_failure_at("a@x.io", ip, t1),
            Some(Duration::from_secs(20))
        );
        let t2 = t1 + Duration::from_secs(21);
        assert_eq!(
            g.record_failure_at("a@x.io", ip, t2),
            Some(Duration::from_secs(40))
        );
        let t3 = t2 + Duration::from_secs(41);
        assert_eq!(
            g.record_failure_at("a@x.io", ip, t3),
            Some(Duration::from_secs(60))
        );
        // Success clears the slate.
        g.record_success("a@x.io", ip);
        g.check_at("a@x.io", ip, t3).unwrap();
        assert_eq!(g.record_failure_at("a@x.io", ip, t3), None);
    }

    #[test]
    fn signin_guard_forgets_old_failures() {
        let g = guard();
        let ip: IpAddr = "::1".parse().unwrap();
        let t0 = Instant::now();
        g.record_failure_at("a@x.io", ip, t0);
        g.record_failure_at("a@x.io", ip, t0);
        let later = t0 + Duration::from_secs(601);
        assert_eq!(g.record_failure_at("a@x.io", ip, later), None);
        g.check_at("a@x.io", ip, later).unwrap();
    }
}
