//! `DynamoCache` against a DynamoDB-compatible server (moto, `DOCENT_TEST_AWS_ENDPOINT`, with
//! the dummy `AWS_*` credentials `scripts/test-services` exports): the shared
//! [`Cache`](docent_domain::ports::Cache) contract (`docent_testkit::cache_contract`) on a
//! `DynamoCache` and on a `TieredCache` with the in-process cache in front of it, each case under
//! a fresh key prefix; then what is DynamoDB's own — what an item holds, prefixes, expiry on
//! read while the item is still stored, oversized values, idempotent table creation with its
//! TTL sweep, `TieredCache` over it — and what an outage looks like: a quick
//! `service_unavailable`. Tests that need the server print
//! `skipped: DOCENT_TEST_AWS_ENDPOINT not set` and pass without it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use bytes::Bytes;
use docent_aws::dynamo::{DynamoCache, DynamoCacheSettings, MAX_ITEM_BYTES, TTL_ATTRIBUTE};
use docent_cache::{MemoryCache, Tier, TieredCache};
use docent_domain::Code;
use docent_domain::ports::Cache;
use docent_testkit::CacheUnderTest;

const MIN: Duration = Duration::from_secs(60);
/// One table for the tests that only need a table; prefixes keep them apart.
const SHARED_TABLE: &str = "docent-test-cache";

fn endpoint() -> Option<String> {
    match std::env::var("DOCENT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: DOCENT_TEST_AWS_ENDPOINT not set");
            None
        }
    }
}

/// A name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

fn settings(endpoint: &str, table: &str, prefix: &str) -> DynamoCacheSettings {
    let mut s = DynamoCacheSettings::new(table);
    s.endpoint = Some(endpoint.to_owned());
    s.region = Some("us-east-1".into());
    s.key_prefix = prefix.to_owned();
    s.create_table = true;
    s
}

async fn cache(endpoint: &str, prefix: &str) -> DynamoCache {
    DynamoCache::connect(settings(endpoint, SHARED_TABLE, prefix))
        .await
        .expect("connect to the test DynamoDB")
}

/// A raw client, to look at what is stored.
async fn raw(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&docent_aws::sdk_config(Some(endpoint), Some("us-east-1")).await)
}

async fn dynamo_cache() -> Option<CacheUnderTest> {
    let endpoint = endpoint()?;
    let cache = cache(&endpoint, &format!("{}:", unique("contract"))).await;
    Some(CacheUnderTest::new(Arc::new(cache), ()))
}

/// The in-process cache in front of DynamoDB, as the binary stacks them.
async fn tiered_over_dynamo() -> Option<CacheUnderTest> {
    let endpoint = endpoint()?;
    let dynamo = cache(&endpoint, &format!("{}:", unique("contract-tiered"))).await;
    let tiered = TieredCache::new(vec![
        Tier::new("memory", Arc::new(MemoryCache::new(1000))),
        Tier::new("dynamodb", Arc::new(dynamo)),
    ]);
    Some(CacheUnderTest::new(Arc::new(tiered), ()))
}

mod contract {
    mod dynamo {
        docent_testkit::cache_contract_tests!(optional super::super::dynamo_cache);
    }
    mod tiered {
        docent_testkit::cache_contract_tests!(optional super::super::tiered_over_dynamo);
    }
}

/// An item is stored under the prefix with both expiry attributes, prefixes keep caches apart,
/// and another process sees (and replaces) the same entry.
#[tokio::test]
async fn items_carry_the_prefix_and_expiry_and_are_shared() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique("cache");
    let cache = cache(&endpoint, &format!("{prefix}:a:")).await;
    let other = cache_with_prefix(&endpoint, &format!("{prefix}:b:")).await;

    let bytes = Bytes::from(vec![0u8, 255, 1, 2, 3]);
    cache.put("k", bytes.clone(), MIN).await.unwrap();
    assert!(other.get("k").await.unwrap().is_none(), "prefixes separate");

    // Stored under the prefix, with both expiry attributes.
    let item = raw(&endpoint)
        .await
        .get_item()
        .table_name(SHARED_TABLE)
        .key("k", AttributeValue::S(format!("{prefix}:a:k")))
        .send()
        .await
        .unwrap()
        .item
        .expect("stored under the prefix");
    let expires: u64 = item[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 55..=now + 62).contains(&expires),
        "{expires} vs {now}"
    );
    assert!(item.contains_key("expires_at_ms"));

    // Another process sees the same entry; overwriting replaces it.
    let again = cache_with_prefix(&endpoint, &format!("{prefix}:a:")).await;
    assert_eq!(again.get("k").await.unwrap().unwrap(), bytes);
    again
        .put("k", Bytes::from_static(b"second"), MIN)
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().unwrap(), "second");
    again.delete("k").await.unwrap();
    assert!(cache.get("k").await.unwrap().is_none());
}

/// Without `create_table`: no call at connect.
async fn cache_with_prefix(endpoint: &str, prefix: &str) -> DynamoCache {
    let mut s = settings(endpoint, SHARED_TABLE, prefix);
    s.create_table = false;
    DynamoCache::connect(s).await.unwrap()
}

/// DynamoDB's TTL sweep runs late (moto's never): the read checks the expiry itself, while the
/// expired item is still in the table.
#[tokio::test]
async fn expired_items_are_misses_before_the_sweep() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique("expiry");
    let cache = cache(&endpoint, &format!("{prefix}:")).await;
    cache
        .put(
            "short",
            Bytes::from_static(b"x"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    cache
        .put("long", Bytes::from_static(b"y"), MIN)
        .await
        .unwrap();
    assert!(cache.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cache.get("short").await.unwrap().is_none(),
        "expired on read"
    );
    assert!(cache.get("long").await.unwrap().is_some());
    let still = raw(&endpoint)
        .await
        .get_item()
        .table_name(SHARED_TABLE)
        .key("k", AttributeValue::S(format!("{prefix}:short")))
        .send()
        .await
        .unwrap()
        .item
        .is_some();
    assert!(
        still,
        "the item is still stored: the miss came from the read check"
    );
}

/// Keys past DynamoDB's 2048 bytes are hashed (the contract checks that distinct long keys
/// stay distinct); a value too large for an item is skipped.
#[tokio::test]
async fn oversized_values_are_skipped() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique("sizes");
    let cache = cache(&endpoint, &format!("{prefix}:")).await;

    // A value too large for an item is skipped, and the older value goes with it.
    cache
        .put("big", Bytes::from_static(b"old"), MIN)
        .await
        .unwrap();
    let huge = Bytes::from(vec![7u8; MAX_ITEM_BYTES]);
    cache
        .put("big", huge, MIN)
        .await
        .expect("skipped, not an error");
    assert!(cache.get("big").await.unwrap().is_none(), "no stale value");
    // Well under the limit is stored.
    let fits = Bytes::from(vec![1u8; MAX_ITEM_BYTES / 2]);
    cache.put("fits", fits.clone(), MIN).await.unwrap();
    assert_eq!(cache.get("fits").await.unwrap().unwrap(), fits);
    // Near the limit, where servers count differently (moto counts binary as base64): stored
    // or skipped, never an error and never the older value.
    cache
        .put("near", Bytes::from_static(b"old"), MIN)
        .await
        .unwrap();
    let near = Bytes::from(vec![2u8; MAX_ITEM_BYTES - 1024]);
    cache.put("near", near.clone(), MIN).await.unwrap();
    let got = cache.get("near").await.unwrap();
    assert!(got.is_none() || got == Some(near), "never the older value");
}

/// Creating the table twice (two processes starting) is fine, and the TTL sweep is on.
#[tokio::test]
async fn table_creation_is_idempotent_and_turns_on_ttl() {
    let Some(endpoint) = endpoint() else { return };
    let table = unique("docent-test-create");
    let (a, b) = tokio::join!(
        DynamoCache::connect(settings(&endpoint, &table, "")),
        DynamoCache::connect(settings(&endpoint, &table, "")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let again = DynamoCache::connect(settings(&endpoint, &table, ""))
        .await
        .unwrap();
    a.put("k", Bytes::from_static(b"v"), MIN).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().unwrap(), "v");
    assert_eq!(again.get("k").await.unwrap().unwrap(), "v");

    let client = raw(&endpoint).await;
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));
    assert!(matches!(
        ttl.time_to_live_status(),
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ));
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
}

/// A missing table without `create_table`: calls fail as unavailable (a `TieredCache` falls
/// through), naming the table.
#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let Some(endpoint) = endpoint() else { return };
    let mut s = settings(&endpoint, &unique("docent-test-missing"), "");
    s.create_table = false;
    let cache = DynamoCache::connect(s).await.expect("no call at connect");
    let err = cache.get("k").await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(err.message.contains("docent-test-missing"), "{err}");
    assert_eq!(cache.ping().await.unwrap_err().code, Code::Unavailable);
}

/// Nothing listens on port 1: every call fails fast with a retryable `service_unavailable`.
#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_quickly() {
    let mut s = settings("http://127.0.0.1:1", "t", "x:");
    s.create_table = false;
    let cache = DynamoCache::connect(s.clone()).await.unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let err = cache.get("k").await.unwrap_err();
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
        assert!(err.is_retryable());
        let err = cache
            .put("k", Bytes::from_static(b"v"), MIN)
            .await
            .unwrap_err();
        assert_eq!(err.code, Code::Unavailable);
        assert_eq!(cache.delete("k").await.unwrap_err().code, Code::Unavailable);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    // Creating the table at start fails as quickly.
    s.create_table = true;
    let started = Instant::now();
    let err = DynamoCache::connect(s).await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A server that accepts connections and never answers: calls give up after the attempt
/// timeouts instead of hanging.
#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let mut s = settings(&format!("http://{addr}"), "t", "x:");
    s.create_table = false;
    s.attempt_timeout = Duration::from_millis(300);
    s.operation_timeout = Duration::from_millis(800);
    let cache = DynamoCache::connect(s).await.unwrap();
    let started = Instant::now();
    let err = cache.get("k").await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}

/// memory → DynamoDB: another process's tiered cache finds the value in DynamoDB and fills its
/// memory tier; the time to live carried in the value survives the copy.
#[tokio::test]
async fn tiered_over_dynamodb_fills_the_memory_tier() {
    let Some(endpoint) = endpoint() else { return };
    let prefix = unique("tiered");
    let dynamo = Arc::new(cache(&endpoint, &format!("{prefix}:")).await);
    let memory = Arc::new(MemoryCache::new(100));
    let tiered = TieredCache::new(vec![
        Tier::new("memory", memory.clone()).max_ttl(Duration::from_secs(30)),
        Tier::new("dynamodb", dynamo.clone()),
    ]);
    tiered
        .put("k", Bytes::from_static(b"v"), MIN)
        .await
        .unwrap();
    assert!(dynamo.get("k").await.unwrap().is_some());

    let memory2 = Arc::new(MemoryCache::new(100));
    let tiered2 = TieredCache::new(vec![
        Tier::new("memory", memory2.clone()),
        Tier::new("dynamodb", dynamo.clone()),
    ]);
    assert_eq!(tiered2.get("k").await.unwrap().unwrap(), "v");
    assert!(
        memory2.get("k").await.unwrap().is_some(),
        "filled from DynamoDB"
    );

    // A short time to live ends in both tiers.
    tiered
        .put(
            "short",
            Bytes::from_static(b"s"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    memory.delete("short").await.unwrap();
    assert_eq!(tiered.get("short").await.unwrap().unwrap(), "s");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(tiered.get("short").await.unwrap().is_none());

    tiered.delete("k").await.unwrap();
    assert!(tiered.get("k").await.unwrap().is_none());
    assert!(dynamo.get("k").await.unwrap().is_none());
}

/// DynamoDB down behind the memory tier: reads fall through to a miss, writes still land in
/// memory, and nothing waits long.
#[tokio::test]
async fn tiered_survives_a_dynamodb_outage() {
    let mut s = settings("http://127.0.0.1:1", "t", "x:");
    s.create_table = false;
    let dead = Arc::new(DynamoCache::connect(s).await.unwrap());
    let memory = Arc::new(MemoryCache::new(100));
    let tiered = TieredCache::new(vec![
        Tier::new("memory", memory.clone()),
        Tier::new("dynamodb", dead),
    ]);
    let started = Instant::now();
    tiered
        .put("k", Bytes::from_static(b"v"), MIN)
        .await
        .unwrap();
    assert_eq!(tiered.get("k").await.unwrap().unwrap(), "v");
    assert!(
        tiered.get("missing").await.unwrap().is_none(),
        "a miss, not an error"
    );
    tiered.delete("k").await.unwrap();
    assert!(memory.get("k").await.unwrap().is_none());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
