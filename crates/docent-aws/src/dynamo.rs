//! [`DynamoCache`]: the [`Cache`] port on a DynamoDB table, shared by every process pointing at
//! the same table and key prefix — the durable last tier of a `docent_cache::TieredCache`
//! (in-process → Redis → DynamoDB).
//!
//! The table has one string hash key, `k`. A key `key` is stored at `{prefix}key`, or, when that
//! is longer than DynamoDB's 2048-byte limit on a partition key, at `{prefix}#sha256:{hex}` of
//! it. Each item holds the value as binary `v`, the expiry as Unix seconds in `expires_at` (the
//! table's TTL attribute) and as Unix milliseconds in `expires_at_ms`.
//!
//! - **Expiry.** DynamoDB deletes expired items lazily, up to a few days late, so [`get`]
//!   checks the expiry itself: an item past `expires_at_ms` (or, without it, `expires_at`) is a
//!   miss. The TTL sweep only reclaims the space.
//! - **Size.** An item may not exceed 400 KB. A [`put`] whose item would (or that the server
//!   refuses for its size) is *skipped*: the older value under that key is deleted (so a stale
//!   value cannot outlive the new one) and a warning is logged at most once a minute; the call
//!   succeeds, as a cache eviction would.
//! - **Outages.** Every failure (unreachable endpoint, missing table, throttling) is a
//!   retryable `service_unavailable`, so a `TieredCache` falls through to its other tiers.
//!   Calls are bounded by [`DynamoCacheSettings`]' timeouts and a single retry: an outage costs
//!   a few seconds at most, never the SDK's default minutes.
//! - **Table.** With `create_table`, [`DynamoCache::connect`] creates a missing table (on
//!   demand billing, hash key `k`), waits for it to be active and turns on the TTL sweep on
//!   `expires_at`; it is idempotent and safe to race with other processes. Without it,
//!   `connect` makes no call at all, so a process starts while DynamoDB is down.
//!
//! [`get`]: Cache::get
//! [`put`]: Cache::put

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use bytes::Bytes;
use docent_domain::ports::Cache;
use docent_domain::{Error, Result};
use sha2::{Digest, Sha256};

/// The hash key attribute (string).
pub const KEY_ATTRIBUTE: &str = "k";
/// The value attribute (binary).
pub const VALUE_ATTRIBUTE: &str = "v";
/// The table's TTL attribute: expiry in Unix seconds (rounded up).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The expiry in Unix milliseconds, checked on every read.
pub const EXPIRES_MS_ATTRIBUTE: &str = "expires_at_ms";
/// DynamoDB's largest item, in bytes.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's longest partition key, in bytes.
pub const MAX_KEY_BYTES: usize = 2048;

/// How long `connect` waits for a table it created to become active.
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(60);

/// Where the cache lives and how long calls may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoCacheSettings {
    /// Table name.
    pub table: String,
    /// Prefix of every key (several deployments or tests may share a table); may be empty.
    pub key_prefix: String,
    /// Endpoint override (moto, DynamoDB Local); `None`: AWS, or `AWS_ENDPOINT_URL*`.
    pub endpoint: Option<String>,
    /// Region; `None`: the AWS environment's.
    pub region: Option<String>,
    /// Create the table (and turn on its TTL sweep) in `connect` when missing.
    pub create_table: bool,
    /// Strongly consistent reads (twice the read cost): a value read right after a `put` or
    /// `delete` is never the one before it. Off, a read may see the old value for about a
    /// second.
    pub consistent_reads: bool,
    /// Longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// Longest one attempt of a call may take.
    pub attempt_timeout: Duration,
    /// Longest a whole call may take, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (1: no retry).
    pub max_attempts: u32,
}

impl DynamoCacheSettings {
    /// Settings for `table` with no key prefix and the default timeouts (1 s to connect, 1 s
    /// an attempt, 3 s a call, two attempts).
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            key_prefix: String::new(),
            endpoint: None,
            region: None,
            create_table: false,
            consistent_reads: true,
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(3),
            max_attempts: 2,
        }
    }
}

impl From<&docent_config::DynamoCacheConfig> for DynamoCacheSettings {
    fn from(c: &docent_config::DynamoCacheConfig) -> Self {
        Self {
            endpoint: c.endpoint.clone(),
            region: c.region.clone(),
            create_table: c.create_table,
            ..Self::new(c.table.clone())
        }
    }
}

/// A byte cache in a DynamoDB table under a key prefix (see the module docs).
#[derive(Debug, Clone)]
pub struct DynamoCache {
    client: Client,
    table: String,
    prefix: String,
    consistent_reads: bool,
    /// When a skipped oversized put was last logged (ms since `epoch`) and how many since.
    oversize: std::sync::Arc<OversizeLog>,
}

#[derive(Debug)]
struct OversizeLog {
    epoch: Instant,
    last_ms: AtomicU64,
    skipped: AtomicU64,
}

impl DynamoCache {
    /// A cache over `settings.table`, created first when `settings.create_table` is set (see
    /// the module docs). `settings` may be a [`DynamoCacheSettings`] or the `[cache]` table
    /// configuration (`&docent_config::DynamoCacheConfig`, no key prefix).
    pub async fn connect(settings: impl Into<DynamoCacheSettings>) -> Result<Self> {
        let settings = settings.into();
        let sdk = crate::sdk_config(settings.endpoint.as_deref(), settings.region.as_deref()).await;
        let (timeouts, retries) = crate::call_limits(
            settings.connect_timeout,
            settings.attempt_timeout,
            settings.operation_timeout,
            settings.max_attempts,
            Duration::from_millis(500),
        );
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .timeout_config(timeouts)
            .retry_config(retries)
            .build();
        let cache = Self::with_client(Client::from_conf(config), &settings);
        if settings.create_table {
            cache.ensure_table().await?;
        }
        Ok(cache)
    }

    /// A cache over an existing client (its own timeouts and retries); makes no call.
    pub fn with_client(client: Client, settings: &DynamoCacheSettings) -> Self {
        Self {
            client,
            table: settings.table.clone(),
            prefix: settings.key_prefix.clone(),
            consistent_reads: settings.consistent_reads,
            oversize: std::sync::Arc::new(OversizeLog {
                epoch: Instant::now(),
                last_ms: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            }),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stored key of `key`: `{prefix}key`, or `{prefix}#sha256:{hex}` when that would be
    /// longer than DynamoDB allows.
    pub fn item_key(&self, key: &str) -> String {
        let plain = format!("{}{key}", self.prefix);
        if plain.len() <= MAX_KEY_BYTES {
            return plain;
        }
        format!(
            "{}#sha256:{}",
            self.prefix,
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }

    /// Creates the table when missing, waits until it is active and turns on the TTL sweep.
    #[tracing::instrument(skip_all, fields(table = %self.table))]
    pub async fn ensure_table(&self) -> Result<()> {
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(Error::internal)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(Error::internal)?,
            )
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!("DynamoDB cache table created"),
            // Another process (or an earlier start) created it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(self.unavailable(e)),
        }
        self.wait_active().await?;
        self.ensure_ttl().await
    }

    async fn wait_active(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let table = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.unavailable(e))?;
            let status = table.table().and_then(|t| t.table_status()).cloned();
            // Updating tables serve reads and writes.
            if matches!(status, Some(TableStatus::Active | TableStatus::Updating)) {
                return Ok(());
            }
            if started.elapsed() > TABLE_ACTIVE_WAIT {
                return Err(Error::unavailable(
                    &format!("the DynamoDB cache (table {})", self.table),
                    format!("the table is still {status:?} after {TABLE_ACTIVE_WAIT:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Turns on the TTL sweep on [`TTL_ATTRIBUTE`] unless it is on already. A table whose TTL
    /// uses another attribute is left alone (reads check the expiry anyway) with a warning.
    async fn ensure_ttl(&self) -> Result<()> {
        if let Some(attribute) = self.ttl_attribute().await? {
            if attribute != TTL_ATTRIBUTE {
                tracing::warn!(
                    %attribute,
                    expected = TTL_ATTRIBUTE,
                    "the DynamoDB cache table's TTL sweep uses another attribute: expired items \
                     are still misses, but they are never deleted"
                );
            }
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(Error::internal)?;
        let updated = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await;
        match updated {
            Ok(_) => {
                tracing::info!(attribute = TTL_ATTRIBUTE, "DynamoDB TTL sweep turned on");
                Ok(())
            }
            // A process racing this one may have turned it on first.
            Err(_) if self.ttl_attribute().await?.is_some() => Ok(()),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    /// The attribute of the table's TTL sweep when it is on (or turning on).
    async fn ttl_attribute(&self) -> Result<Option<String>> {
        let out = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(out
            .time_to_live_description()
            .and_then(|t| match t.time_to_live_status() {
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
                    Some(t.attribute_name().unwrap_or_default().to_owned())
                }
                _ => None,
            }))
    }

    fn unavailable<E>(&self, e: SdkError<E>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::unavailable(&format!("the DynamoDB cache (table {})", self.table), e)
    }

    fn key_value(&self, key: &str) -> AttributeValue {
        AttributeValue::S(self.item_key(key))
    }

    /// Logs a skipped oversized put at most once a minute, with the count held back.
    fn log_oversize(&self, key: &str, bytes: usize) {
        let skipped = self.oversize.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.oversize.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.oversize.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 60_000;
        if due
            && self
                .oversize
                .last_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.oversize.skipped.store(0, Ordering::Relaxed);
            tracing::warn!(
                table = %self.table,
                key_kind = docent_domain::ports::cache_key_kind(key),
                item_bytes = bytes,
                max_bytes = MAX_ITEM_BYTES,
                skipped,
                "value too large for a DynamoDB item; not cached in DynamoDB"
            );
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether DynamoDB refused an item for its size.
fn too_large<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().is_some_and(|s| {
        s.code() == Some("ValidationException")
            && s.message()
                .is_some_and(|m| m.to_ascii_lowercase().contains("size"))
    })
}

/// An upper bound of the stored size of an item (DynamoDB counts attribute names and values;
/// a number takes at most 21 bytes).
fn item_size(stored_key: &str, value: &[u8]) -> usize {
    KEY_ATTRIBUTE.len()
        + stored_key.len()
        + VALUE_ATTRIBUTE.len()
        + value.len()
        + TTL_ATTRIBUTE.len()
        + 21
        + EXPIRES_MS_ATTRIBUTE.len()
        + 21
}

/// Whether an item read back is still fresh at `now_ms`: by `expires_at_ms`, else by
/// `expires_at` (seconds); an item with neither never expires.
fn fresh(item: &HashMap<String, AttributeValue>, now_ms: u64) -> bool {
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
    };
    match (number(EXPIRES_MS_ATTRIBUTE), number(TTL_ATTRIBUTE)) {
        (Some(ms), _) => now_ms < ms,
        (None, Some(secs)) => now_ms < secs.saturating_mul(1000),
        (None, None) => true,
    }
}

#[async_trait]
impl Cache for DynamoCache {
    #[tracing::instrument(skip_all, fields(key_kind = docent_domain::ports::cache_key_kind(key)))]
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, self.key_value(key))
            .consistent_read(self.consistent_reads)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        if !fresh(item, now_ms()) {
            return Ok(None);
        }
        match item.get(VALUE_ATTRIBUTE).map(AttributeValue::as_b) {
            Some(Ok(blob)) => Ok(Some(Bytes::copy_from_slice(blob.as_ref()))),
            // Written by something else: not a value of ours.
            _ => Ok(None),
        }
    }

    #[tracing::instrument(skip_all, fields(key_kind = docent_domain::ports::cache_key_kind(key), ttl_ms = ttl.as_millis() as u64))]
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let stored_key = self.item_key(key);
        let size = item_size(&stored_key, &value);
        if size > MAX_ITEM_BYTES {
            // Skipped; the older value must not outlive this one.
            self.delete(key).await?;
            self.log_oversize(key, size);
            return Ok(());
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let expires_ms = now_ms().saturating_add(ttl_ms);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(stored_key))
            .item(
                VALUE_ATTRIBUTE,
                AttributeValue::B(Blob::new(value.to_vec())),
            )
            .item(
                TTL_ATTRIBUTE,
                AttributeValue::N(expires_ms.div_ceil(1000).to_string()),
            )
            .item(
                EXPIRES_MS_ATTRIBUTE,
                AttributeValue::N(expires_ms.to_string()),
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // A compatible server counting sizes its own way (moto counts binary as base64):
            // the same as an oversized value.
            Err(e) if too_large(&e) => {
                self.delete(key).await?;
                self.log_oversize(key, size);
                Ok(())
            }
            Err(e) => Err(self.unavailable(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(key_kind = docent_domain::ports::cache_key_kind(key)))]
    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, self.key_value(key))
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    /// Reads a reserved key: checks the endpoint, the credentials and the table.
    async fn ping(&self) -> Result<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, self.key_value("\u{0}ping"))
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(prefix: &str) -> DynamoCache {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let mut settings = DynamoCacheSettings::new("t");
        settings.key_prefix = prefix.into();
        DynamoCache::with_client(Client::from_conf(config), &settings)
    }

    #[test]
    fn long_keys_are_hashed_under_the_prefix() {
        let c = cache("p:");
        assert_eq!(c.item_key("abc"), "p:abc");
        let long = "x".repeat(MAX_KEY_BYTES);
        let stored = c.item_key(&long);
        assert!(stored.starts_with("p:#sha256:"), "{stored}");
        assert!(stored.len() <= MAX_KEY_BYTES);
        assert_eq!(stored, c.item_key(&long), "stable");
        assert_ne!(stored, c.item_key(&format!("{long}y")));
        // Exactly at the limit stays readable.
        let edge = "y".repeat(MAX_KEY_BYTES - 2);
        assert_eq!(c.item_key(&edge), format!("p:{edge}"));
    }

    #[test]
    fn expiry_is_read_from_milliseconds_then_seconds() {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let mut item = HashMap::new();
        assert!(fresh(&item, 5_000), "no expiry: fresh");
        item.insert(TTL_ATTRIBUTE.to_owned(), n(5));
        assert!(fresh(&item, 4_999));
        assert!(!fresh(&item, 5_000));
        item.insert(EXPIRES_MS_ATTRIBUTE.to_owned(), n(4_500));
        assert!(fresh(&item, 4_499));
        assert!(!fresh(&item, 4_500), "milliseconds win");
    }

    #[test]
    fn item_size_counts_names_key_and_value() {
        let size = item_size("p:k", &[0u8; 100]);
        assert!(size >= 100 + 3 + 1 + 1 + TTL_ATTRIBUTE.len(), "{size}");
        assert!(item_size("k", &vec![0u8; MAX_ITEM_BYTES]) > MAX_ITEM_BYTES);
    }
}
