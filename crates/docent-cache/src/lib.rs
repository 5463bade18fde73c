//! [`Cache`] implementations. Embedded default: an in-process cache (moka) with a per-entry time
//! to live. Redis (`docent-redis`) and DynamoDB implementations slot in behind the same trait;
//! [`TieredCache`] stacks several (in-process → Redis → DynamoDB) into one, surviving the outage
//! of any tier but the last standing. [`open`] is the one factory.

mod tiered;

pub use tiered::{Tier, TieredCache};

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use docent_config::CacheConfig;
use docent_domain::Result;
use docent_domain::ports::Cache;
use moka::Expiry;
use moka::future::Cache as Moka;

/// Builds the configured cache when it runs in process (`memory`); `None` for the kinds whose
/// backends live in other crates (`redis`, `dynamodb`, `tiered`: the binary builds those).
pub fn open(config: &CacheConfig) -> Option<Arc<dyn Cache>> {
    match config {
        CacheConfig::Memory { max_entries } => Some(Arc::new(MemoryCache::new(*max_entries))),
        CacheConfig::Redis | CacheConfig::Dynamodb(_) | CacheConfig::Tiered { .. } => None,
    }
}

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Bytes of key and value one unit of a [`MemoryCache`]'s capacity stands for.
pub const ENTRY_UNIT_BYTES: usize = 4096;

/// In-process cache, bounded by entry count weighed by size, each entry with its own TTL.
pub struct MemoryCache {
    inner: Moka<String, Entry>,
}

impl MemoryCache {
    /// A cache of at most `max_entries` entries of up to [`ENTRY_UNIT_BYTES`] (key and value);
    /// a larger one counts once per unit begun, so the cache holds at most about
    /// `max_entries × 4 KiB` whatever is put in it.
    pub fn new(max_entries: u64) -> Self {
        Self {
            inner: Moka::builder()
                .max_capacity(max_entries)
                .weigher(|key: &String, entry: &Entry| {
                    let units = (key.len() + entry.value.len()).div_ceil(ENTRY_UNIT_BYTES);
                    u32::try_from(units.max(1)).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.inner.get(key).await.map(|e| e.value))
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        self.inner
            .insert(key.to_owned(), Entry { value, ttl })
            .await;
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.invalidate(key).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every cache must do (expiry, deletes, round trips) is the contract suite, run on
    /// `MemoryCache` by `tests/cache.rs`.
    #[tokio::test]
    async fn open_builds_the_in_process_cache_only() {
        let cache = open(&CacheConfig::Memory { max_entries: 10 }).expect("in process");
        cache
            .put("a", Bytes::from_static(b"1"), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get("a").await.unwrap().unwrap(), "1");
        assert!(open(&CacheConfig::Redis).is_none(), "built by the binary");
    }

    /// Issue 21: entries are weighed by size, so big values cannot fill memory at the price
    /// of small ones.
    #[tokio::test]
    async fn large_entries_count_by_size() {
        let cache = MemoryCache::new(10);
        let ttl = Duration::from_secs(60);
        for i in 0..5 {
            let big = Bytes::from(vec![b'x'; 3 * ENTRY_UNIT_BYTES]);
            cache.put(&format!("big{i}"), big, ttl).await.unwrap();
        }
        cache.inner.run_pending_tasks().await;
        assert!(
            cache.inner.weighted_size() <= 10,
            "{}",
            cache.inner.weighted_size()
        );
        assert!(
            cache.inner.entry_count() <= 3,
            "{}",
            cache.inner.entry_count()
        );
    }
}
