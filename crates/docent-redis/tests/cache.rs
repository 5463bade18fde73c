//! `RedisCache` against a real Redis (`DOCENT_TEST_REDIS_URL`): the shared
//! [`Cache`](docent_domain::ports::Cache) contract (`docent_testkit::cache_contract`) on a
//! `RedisCache` and on a `TieredCache` with the in-process cache in front of it, each case under
//! a fresh key prefix; then what is Redis's own — prefixes, connections, `TieredCache` with a
//! Redis tier — and what an outage looks like: a quick `service_unavailable` that never names
//! the URL.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use docent_cache::{MemoryCache, Tier, TieredCache};
use docent_domain::Code;
use docent_domain::ports::Cache;
use docent_redis::{Redis, RedisCache, RedisOptions};
use docent_testkit::CacheUnderTest;

use common::{Cleanup, connect, fresh_prefix, keys, redis_url};

const MIN: Duration = Duration::from_secs(60);

/// A `RedisCache` under a fresh prefix, and the guard deleting its keys; `None` to skip.
fn prefixed(what: &str) -> Option<(RedisCache, Cleanup)> {
    let url = redis_url()?;
    let prefix = fresh_prefix(what);
    let cache = RedisCache::new(connect(&url), format!("{prefix}:"));
    Some((
        cache,
        Cleanup {
            url,
            pattern_prefix: prefix,
        },
    ))
}

async fn redis_cache() -> Option<CacheUnderTest> {
    let (cache, cleanup) = prefixed("contract")?;
    Some(CacheUnderTest::new(Arc::new(cache), cleanup))
}

/// The in-process cache in front of Redis, as the binary stacks them.
async fn tiered_over_redis() -> Option<CacheUnderTest> {
    let (cache, cleanup) = prefixed("contract-tiered")?;
    let tiered = TieredCache::new(vec![
        Tier::new("memory", Arc::new(MemoryCache::new(1000))),
        Tier::new("redis", Arc::new(cache)),
    ]);
    Some(CacheUnderTest::new(Arc::new(tiered), cleanup))
}

mod contract {
    mod redis {
        docent_testkit::cache_contract_tests!(optional super::super::redis_cache);
    }
    mod tiered {
        docent_testkit::cache_contract_tests!(optional super::super::tiered_over_redis);
    }
}

/// Prefixes keep caches apart, keys are stored under the prefix, and another connection
/// (another process) sees the same entry.
#[tokio::test]
async fn prefixes_separate_caches_and_connections_share_entries() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix("cache");
    let _cleanup = Cleanup {
        url: url.clone(),
        pattern_prefix: prefix.clone(),
    };
    let cache = RedisCache::new(connect(&url), format!("{prefix}:a:"));
    let other = RedisCache::new(connect(&url), format!("{prefix}:b:"));

    let bytes = Bytes::from(vec![0u8, 255, 1, 2, 3]);
    cache.put("k", bytes.clone(), MIN).await.unwrap();
    assert!(other.get("k").await.unwrap().is_none(), "prefixes separate");
    assert_eq!(keys(&url, &prefix).await, vec![format!("{prefix}:a:k")]);

    // A second connection (another process) sees the same entry, and its delete.
    let again = RedisCache::new(connect(&url), format!("{prefix}:a:"));
    assert_eq!(again.get("k").await.unwrap().unwrap(), bytes);
    again.delete("k").await.unwrap();
    assert!(cache.get("k").await.unwrap().is_none());
    assert!(keys(&url, &prefix).await.is_empty());
}

/// Nothing listens on port 1: every call fails fast with `service_unavailable`, and the
/// password in the URL appears in no error text.
#[tokio::test]
async fn a_refused_connection_is_unavailable_quickly_and_hides_the_url() {
    let redis = Redis::open(
        "redis://:hunter2-secret@127.0.0.1:1/0",
        RedisOptions {
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(800),
        },
    )
    .expect("opening is lazy");
    let cache = RedisCache::new(redis.clone(), "x:");
    for _ in 0..2 {
        let started = Instant::now();
        let err = cache.get("k").await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
        let text = format!("{err} {err:?} {}", err.chain());
        assert!(!text.contains("hunter2"), "{text}");
        let err = cache
            .put("k", Bytes::from_static(b"v"), MIN)
            .await
            .unwrap_err();
        assert_eq!(err.code, Code::Unavailable);
    }
    assert_eq!(redis.ping().await.unwrap_err().code, Code::Unavailable);
}

/// A server that accepts connections and never answers (a hung Redis): calls give up after the
/// command timeout instead of hanging.
#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let redis = Redis::open(
        &format!("redis://:pw-secret@{addr}/0"),
        RedisOptions {
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(600),
        },
    )
    .unwrap();
    let cache = RedisCache::new(redis, "x:");
    let started = Instant::now();
    let err = cache.get("k").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(!err.chain().contains("pw-secret"));
    hold.abort();
}

#[test]
fn a_malformed_url_is_refused_without_echoing_it() {
    let err = Redis::open("redis://:s3cret@[not-a-host/0", RedisOptions::default()).unwrap_err();
    assert!(!err.chain().contains("s3cret"), "{}", err.chain());
}

/// memory → Redis → memory (standing in for DynamoDB): a hit in Redis fills the memory tier; an
/// entry only the third tier holds is found and copied into both faster tiers.
#[tokio::test]
async fn tiered_over_real_redis_fills_faster_tiers() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix("tiered");
    let _cleanup = Cleanup {
        url: url.clone(),
        pattern_prefix: prefix.clone(),
    };
    let memory = Arc::new(MemoryCache::new(100));
    let redis = Arc::new(RedisCache::new(connect(&url), format!("{prefix}:")));
    let third = Arc::new(MemoryCache::new(100));
    let tiered = TieredCache::new(vec![
        Tier::new("memory", memory.clone()).max_ttl(Duration::from_secs(30)),
        Tier::new("redis", redis.clone()),
        Tier::new("third", third.clone()),
    ]);

    tiered
        .put("k", Bytes::from_static(b"v"), MIN)
        .await
        .unwrap();
    assert!(redis.get("k").await.unwrap().is_some());
    assert!(third.get("k").await.unwrap().is_some());

    // Another process: its own memory tier, the same Redis.
    let memory2 = Arc::new(MemoryCache::new(100));
    let tiered2 = TieredCache::new(vec![
        Tier::new("memory", memory2.clone()),
        Tier::new("redis", redis.clone()),
    ]);
    assert_eq!(tiered2.get("k").await.unwrap().unwrap(), "v");
    assert!(
        memory2.get("k").await.unwrap().is_some(),
        "filled from Redis"
    );

    // Only the third tier holds it.
    memory.delete("k").await.unwrap();
    redis.delete("k").await.unwrap();
    assert_eq!(tiered.get("k").await.unwrap().unwrap(), "v");
    assert!(memory.get("k").await.unwrap().is_some());
    assert!(redis.get("k").await.unwrap().is_some(), "filled into Redis");

    tiered.delete("k").await.unwrap();
    assert!(tiered.get("k").await.unwrap().is_none());
    assert!(redis.get("k").await.unwrap().is_none());
}

/// Redis down in the middle: reads fall through to the next tier, writes still land, and no
/// call waits much longer than the command timeout.
#[tokio::test]
async fn tiered_survives_a_redis_outage() {
    let dead = Redis::open(
        "redis://127.0.0.1:1/0",
        RedisOptions {
            connect_timeout: Duration::from_millis(200),
            command_timeout: Duration::from_millis(500),
        },
    )
    .unwrap();
    let memory = Arc::new(MemoryCache::new(100));
    let third = Arc::new(MemoryCache::new(100));
    let tiered = TieredCache::new(vec![
        Tier::new("memory", memory.clone()),
        Tier::new("redis", Arc::new(RedisCache::new(dead, "x:"))),
        Tier::new("third", third.clone()),
    ]);
    let started = Instant::now();
    tiered
        .put("k", Bytes::from_static(b"v"), MIN)
        .await
        .unwrap();
    memory.delete("k").await.unwrap();
    assert_eq!(
        tiered.get("k").await.unwrap().unwrap(),
        "v",
        "found past the outage"
    );
    assert!(memory.get("k").await.unwrap().is_some(), "filled");
    assert!(
        tiered.get("missing").await.unwrap().is_none(),
        "a miss, not an error"
    );
    tiered.delete("k").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
