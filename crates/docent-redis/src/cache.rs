//! [`RedisCache`]: the [`Cache`] port on plain Redis strings. A key `k` is stored at
//! `{prefix}k` with `SET … PX ttl`, so Redis expires it; values are opaque bytes. Shared by
//! every process pointing at the same server and prefix.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use docent_domain::Result;
use docent_domain::ports::Cache;

use crate::Redis;

/// A byte cache in Redis under a key prefix.
#[derive(Debug, Clone)]
pub struct RedisCache {
    redis: Redis,
    prefix: String,
}

impl RedisCache {
    /// A cache storing key `k` at `{prefix}k` (e.g. prefix `docent:cache:`).
    pub fn new(redis: Redis, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    #[tracing::instrument(skip_all, fields(key_kind = docent_domain::ports::cache_key_kind(key)))]
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let value: Option<Vec<u8>> = self
            .redis
            .query(redis::cmd("GET").arg(self.key(key)))
            .await?;
        Ok(value.map(Bytes::from))
    }

    #[tracing::instrument(skip_all, fields(key_kind = docent_domain::ports::cache_key_kind(key), ttl_ms = ttl.as_millis() as u64))]
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        // PX must be positive; a zero TTL still stores for the shortest time Redis knows.
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(ms),
            )
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(key_kind = docent_domain::ports::cache_key_kind(key)))]
    async fn delete(&self, key: &str) -> Result<()> {
        let _: i64 = self
            .redis
            .query(redis::cmd("DEL").arg(self.key(key)))
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.redis.ping().await
    }
}
