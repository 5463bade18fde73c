//! [`TieredCache`]: several [`Cache`]s read fastest first — typically in-process → Redis →
//! a durable third tier (DynamoDB) — behaving as one cache.
//!
//! - **Reads** ask each tier in order and stop at the first hit, then copy the value into the
//!   faster tiers that missed, so the next read is served closer. A tier that fails is skipped
//!   (logged at `warn`, at most once per [`TieredCache::warn_every`] per tier, with a count of
//!   the failures left unlogged) and the read goes on to the next tier: an outage of a slower
//!   tier costs a miss, never an error. Only when *every* tier fails is the read an error.
//! - **Writes** (`put`, `delete`) go to every tier. A failing tier is skipped and logged the
//!   same way; the write is an error only when no tier took it. `delete` runs slowest tier
//!   first, so a concurrent read cannot copy the old value back into a faster tier that was
//!   already cleared. A tier that was down during a `delete` may serve the old value until its
//!   time to live ends.
//! - **Time to live**: values are stored with a 10-byte header (a magic byte, a version byte and
//!   the absolute expiry in Unix milliseconds), so a value copied into a faster tier gets
//!   exactly the time it has left — never more than it was first given. Each tier may cap the
//!   time to live further ([`Tier::max_ttl`]): a short cap on the in-process tier bounds how
//!   long a process can serve a value another process has deleted. A value without a valid
//!   header (written around the `TieredCache`) reads as a miss in that tier.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use docent_domain::ports::Cache;
use docent_domain::{Error, Result};

/// First byte of every value a [`TieredCache`] stores.
const MAGIC: u8 = 0xDC;
/// Header format version.
const VERSION: u8 = 1;
/// Magic + version + expiry (u64, big-endian Unix milliseconds).
const HEADER_LEN: usize = 10;

/// One level of a [`TieredCache`].
pub struct Tier {
    name: String,
    cache: Arc<dyn Cache>,
    max_ttl: Option<Duration>,
    warn: WarnLimiter,
}

impl Tier {
    /// A tier named `name` (used in logs) over `cache`.
    pub fn new(name: impl Into<String>, cache: Arc<dyn Cache>) -> Self {
        Self {
            name: name.into(),
            cache,
            max_ttl: None,
            warn: WarnLimiter::default(),
        }
    }

    /// Caps the time to live of every value this tier stores (writes and fills).
    pub fn max_ttl(mut self, max: Duration) -> Self {
        self.max_ttl = Some(max);
        self
    }

    /// The tier's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn ttl(&self, ttl: Duration) -> Duration {
        self.max_ttl.map_or(ttl, |m| ttl.min(m))
    }
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("name", &self.name)
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

/// Several caches read fastest first, behaving as one (see the module docs).
#[derive(Debug)]
pub struct TieredCache {
    tiers: Vec<Tier>,
    warn_every: Duration,
}

impl TieredCache {
    /// Tiers fastest first. At least one is needed for the cache to hold anything.
    pub fn new(tiers: Vec<Tier>) -> Self {
        Self {
            tiers,
            warn_every: Duration::from_secs(30),
        }
    }

    /// How often at most each tier's failures are logged (default 30 s).
    pub fn warn_every(mut self, every: Duration) -> Self {
        self.warn_every = every;
        self
    }

    /// The tiers, fastest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    fn skip(&self, tier: &Tier, op: &'static str, err: &Error) {
        if let Some(suppressed) = tier.warn.allow(self.warn_every) {
            tracing::warn!(
                tier = %tier.name,
                op,
                suppressed,
                error = %err.chain(),
                "cache tier failed; skipping it"
            );
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn encode(value: &Bytes, expires_at_ms: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + value.len());
    buf.put_u8(MAGIC);
    buf.put_u8(VERSION);
    buf.put_u64(expires_at_ms);
    buf.put_slice(value);
    buf.freeze()
}

/// The value and its absolute expiry, or `None` for a value without a valid header.
fn decode(stored: &Bytes) -> Option<(Bytes, u64)> {
    if stored.len() < HEADER_LEN || stored[0] != MAGIC || stored[1] != VERSION {
        return None;
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&stored[2..HEADER_LEN]);
    Some((stored.slice(HEADER_LEN..), u64::from_be_bytes(at)))
}

#[async_trait]
impl Cache for TieredCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut first_err = None;
        let mut answered = false;
        // Faster tiers that answered "miss": they get the value copied in on a later hit.
        let mut missed: Vec<&Tier> = Vec::new();
        for tier in &self.tiers {
            let stored = match tier.cache.get(key).await {
                Ok(v) => v,
                Err(e) => {
                    self.skip(tier, "get", &e);
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            answered = true;
            let Some(stored) = stored else {
                missed.push(tier);
                continue;
            };
            let now = now_ms();
            let Some((value, expires_at)) = decode(&stored).filter(|(_, at)| *at > now) else {
                tracing::debug!(tier = %tier.name, "cache value without a valid header or expired; a miss");
                missed.push(tier);
                continue;
            };
            let left = Duration::from_millis(expires_at - now);
            for faster in missed {
                if let Err(e) = faster
                    .cache
                    .put(key, stored.clone(), faster.ttl(left))
                    .await
                {
                    self.skip(faster, "fill", &e);
                }
            }
            return Ok(Some(value));
        }
        match first_err {
            Some(e) if !answered => Err(e),
            _ => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let stored = encode(&value, now_ms().saturating_add(ttl_ms));
        let mut first_err = None;
        let mut stored_somewhere = self.tiers.is_empty();
        for tier in &self.tiers {
            match tier.cache.put(key, stored.clone(), tier.ttl(ttl)).await {
                Ok(()) => stored_somewhere = true,
                Err(e) => {
                    self.skip(tier, "put", &e);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if !stored_somewhere => Err(e),
            _ => Ok(()),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut first_err = None;
        let mut deleted_somewhere = self.tiers.is_empty();
        for tier in self.tiers.iter().rev() {
            match tier.cache.delete(key).await {
                Ok(()) => deleted_somewhere = true,
                Err(e) => {
                    self.skip(tier, "delete", &e);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if !deleted_somewhere => Err(e),
            _ => Ok(()),
        }
    }

    /// Fails naming the first tier that does not answer, so readiness can report a degraded
    /// tier (reads and writes still fall through it).
    async fn ping(&self) -> Result<()> {
        for tier in &self.tiers {
            if let Err(e) = tier.cache.ping().await {
                return Err(Error::unavailable(&format!("cache tier {}", tier.name), e));
            }
        }
        Ok(())
    }
}

/// Lets one warning through per period; counts the ones held back.
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    /// `Some(held back since the last warning)` when a warning may be logged now.
    fn allow(&self, every: Duration) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < every) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryCache;
    use std::sync::atomic::AtomicBool;

    /// A tier that fails every call while `down` (an outage), and counts calls.
    struct Flaky {
        inner: MemoryCache,
        down: AtomicBool,
        calls: AtomicU64,
    }

    impl Default for Flaky {
        fn default() -> Self {
            Self {
                inner: MemoryCache::new(100),
                down: AtomicBool::new(false),
                calls: AtomicU64::new(0),
            }
        }
    }

    impl Flaky {
        fn check(&self) -> Result<()> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                Err(Error::unavailable(
                    "the flaky tier",
                    std::io::Error::other("down"),
                ))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Cache for Flaky {
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            self.check()?;
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
            self.check()?;
            self.inner.put(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.check()?;
            self.inner.delete(key).await
        }
    }

    fn mem() -> Arc<MemoryCache> {
        Arc::new(MemoryCache::new(100))
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn reads_fall_through_and_fill_faster_tiers() {
        let (fast, slow) = (mem(), mem());
        let tiered = TieredCache::new(vec![
            Tier::new("fast", fast.clone()),
            Tier::new("slow", slow.clone()),
        ]);
        tiered
            .put("k", Bytes::from_static(b"v"), MIN)
            .await
            .unwrap();
        assert_eq!(tiered.get("k").await.unwrap().unwrap(), "v");
        assert!(
            fast.get("k").await.unwrap().is_some(),
            "written to every tier"
        );
        assert!(
            slow.get("k").await.unwrap().is_some(),
            "written to every tier"
        );

        // Only the slow tier holds it: a read finds it there and copies it up.
        fast.delete("k").await.unwrap();
        assert_eq!(tiered.get("k").await.unwrap().unwrap(), "v");
        let filled = fast.get("k").await.unwrap().expect("filled on the hit");
        assert_eq!(decode(&filled).unwrap().0, "v");

        tiered.delete("k").await.unwrap();
        assert!(tiered.get("k").await.unwrap().is_none());
        assert!(fast.get("k").await.unwrap().is_none());
        assert!(slow.get("k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_fill_keeps_the_time_left_not_a_fresh_ttl() {
        let (fast, slow) = (mem(), mem());
        let tiered = TieredCache::new(vec![
            Tier::new("fast", fast.clone()),
            Tier::new("slow", slow.clone()),
        ]);
        tiered
            .put("k", Bytes::from_static(b"v"), Duration::from_millis(300))
            .await
            .unwrap();
        fast.delete("k").await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(tiered.get("k").await.unwrap().is_some(), "filled from slow");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            fast.get("k").await.unwrap().is_none(),
            "the filled copy expired with the original"
        );
        assert!(tiered.get("k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn max_ttl_caps_a_tier() {
        let (fast, slow) = (mem(), mem());
        let tiered = TieredCache::new(vec![
            Tier::new("fast", fast.clone()).max_ttl(Duration::from_millis(100)),
            Tier::new("slow", slow.clone()),
        ]);
        tiered
            .put("k", Bytes::from_static(b"v"), MIN)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(fast.get("k").await.unwrap().is_none(), "capped");
        assert!(slow.get("k").await.unwrap().is_some());
        assert_eq!(tiered.get("k").await.unwrap().unwrap(), "v");
    }

    #[tokio::test]
    async fn a_failing_tier_is_skipped_on_reads_and_writes() {
        let (fast, slow) = (mem(), mem());
        let flaky = Arc::new(Flaky::default());
        let tiered = TieredCache::new(vec![
            Tier::new("fast", fast.clone()),
            Tier::new("flaky", flaky.clone()),
            Tier::new("slow", slow.clone()),
        ]);
        flaky.down.store(true, Ordering::Relaxed);

        // Writes succeed while one tier is down.
        tiered
            .put("k", Bytes::from_static(b"v"), MIN)
            .await
            .unwrap();
        assert!(slow.get("k").await.unwrap().is_some());

        // A read past the failing tier still finds the value in the slow one, and fills the
        // fast one (not the failing one).
        fast.delete("k").await.unwrap();
        assert_eq!(tiered.get("k").await.unwrap().unwrap(), "v");
        assert!(fast.get("k").await.unwrap().is_some());
        assert!(flaky.inner.get("k").await.unwrap().is_none());

        // A miss everywhere else is a miss, not an error.
        assert!(tiered.get("missing").await.unwrap().is_none());
        tiered.delete("k").await.unwrap();
        assert!(tiered.get("k").await.unwrap().is_none());

        // Back up: it is used again.
        flaky.down.store(false, Ordering::Relaxed);
        tiered
            .put("k2", Bytes::from_static(b"w"), MIN)
            .await
            .unwrap();
        assert!(flaky.inner.get("k2").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn every_tier_failing_is_an_error() {
        let flaky = Arc::new(Flaky::default());
        flaky.down.store(true, Ordering::Relaxed);
        let tiered = TieredCache::new(vec![Tier::new("flaky", flaky.clone())]);
        let e = tiered.get("k").await.unwrap_err();
        assert_eq!(e.code, docent_domain::Code::Unavailable);
        assert!(
            tiered
                .put("k", Bytes::from_static(b"v"), MIN)
                .await
                .is_err()
        );
        assert!(tiered.delete("k").await.is_err());
    }

    #[tokio::test]
    async fn values_without_a_header_read_as_a_miss() {
        let fast = mem();
        fast.put("raw", Bytes::from_static(b"x"), MIN)
            .await
            .unwrap();
        let tiered = TieredCache::new(vec![Tier::new("fast", fast.clone())]);
        assert!(tiered.get("raw").await.unwrap().is_none());
    }

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_held_back() {
        let w = WarnLimiter::default();
        let every = Duration::from_millis(100);
        assert_eq!(w.allow(every), Some(0));
        assert_eq!(w.allow(every), None);
        assert_eq!(w.allow(every), None);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(w.allow(every), Some(2));
        assert_eq!(w.allow(every), None);
    }
}
