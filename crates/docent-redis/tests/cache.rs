//! `RedisCache` against a real Redis (`DOCENT_TEST_REDIS_URL`) and a real Redis Cluster
//! (`DOCENT_TEST_REDIS_CLUSTER_URL`): the shared [`Cache`](docent_domain::ports::Cache) contract
//! (`docent_testkit::cache_contract`) on a `RedisCache` and on a `TieredCache` with the
//! in-process cache in front of it, each case under a fresh key prefix, on both; then what is
//! Redis's own — prefixes, connections, `TieredCache` with a Redis tier, entries spread over
//! the cluster's nodes — and what an outage looks like: a quick `service_unavailable` that never
//! names the URL.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use docent_cache::{MemoryCache, Tier, TieredCache};
use docent_domain::Code;
use docent_domain::ports::Cache;
use docent_redis::{Redis, RedisCache, RedisOptions};
use docent_testkit::CacheUnderTest;

use common::{Cleanup, Server, fresh_prefix};

const MIN: Duration = Duration::from_secs(60);

/// A `RedisCache` on `server` under a fresh prefix, and the guard deleting its keys; `None` to
/// skip.
fn prefixed(server: Option<Server>, what: &str) -> Option<(RedisCache, Cleanup)> {
    let server = server?;
    let prefix = fresh_prefix(what);
    let cache = RedisCache::new(server.connect(), format!("{prefix}:"));
    Some((cache, server.cleanup(&prefix)))
}

fn redis_cache(server: Option<Server>) -> Option<CacheUnderTest> {
    let (cache, cleanup) = prefixed(server, "contract")?;
    Some(CacheUnderTest::new(Arc::new(cache), cleanup))
}

/// The in-process cache in front of Redis, as the binary stacks them.
fn tiered_over_redis(server: Option<Server>) -> Option<CacheUnderTest> {
    let (cache, cleanup) = prefixed(server, "contract-tiered")?;
    let tiered = TieredCache::new(vec![
        Tier::new("memory", Arc::new(MemoryCache::new(1000))),
        Tier::new("redis", Arc::new(cache)),
    ]);
    Some(CacheUnderTest::new(Arc::new(tiered), cleanup))
}

mod contract {
    use super::*;

    async fn redis() -> Option<CacheUnderTest> {
        redis_cache(Server::single())
    }
    async fn tiered() -> Option<CacheUnderTest> {
        tiered_over_redis(Server::single())
    }
    async fn cluster() -> Option<CacheUnderTest> {
        redis_cache(Server::cluster())
    }
    async fn cluster_tiered() -> Option<CacheUnderTest> {
        tiered_over_redis(Server::cluster())
    }

    mod redis {
        docent_testkit::cache_contract_tests!(optional super::redis);
    }
    mod tiered {
        docent_testkit::cache_contract_tests!(optional super::tiered);
    }
    mod cluster {
        docent_testkit::cache_contract_tests!(optional super::cluster);
    }
    mod cluster_tiered {
        docent_testkit::cache_contract_tests!(optional super::cluster_tiered);
    }
}

/// In a cluster, entries go to the node owning their key's slot: a hundred entries under one
/// prefix land on every node (all three hold some), and each reads back through the one
/// connection. (A prefix that pinned every key to one slot would fail here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_entries_spread_over_the_nodes() {
    let Some(server) = Server::cluster() else {
        return;
    };
    let prefix = fresh_prefix("spread");
    let _cleanup = server.cleanup(&prefix);
    let cache = RedisCache::new(server.connect(), format!("{prefix}:"));
    for i in 0..100 {
        cache
            .put(&format!("k{i}"), Bytes::from(format!("v{i}")), MIN)
            .await
            .unwrap();
    }
    let per_node: Vec<usize> = server.keys_per_node(&prefix).iter().map(Vec::len).collect();
    assert_eq!(per_node.len(), 3, "the test cluster has three primaries");
    assert_eq!(per_node.iter().sum::<usize>(), 100, "{per_node:?}");
    assert!(
        per_node.iter().all(|n| *n > 0),
        "spread over every node: {per_node:?}"
    );
    for i in (0..100).step_by(7) {
        assert_eq!(
            cache.get(&format!("k{i}")).await.unwrap().unwrap(),
            format!("v{i}")
        );
    }
}

on_both! {
    /// Prefixes keep caches apart, keys are stored under the prefix, and another connection
    /// (another process) sees the same entry.
    async fn prefixes_separate_caches_and_connections_share_entries(server) {
        let prefix = fresh_prefix("cache");
        let _cleanup = server.cleanup(&prefix);
        let cache = RedisCache::new(server.connect(), format!("{prefix}:a:"));
        let other = RedisCache::new(server.connect(), format!("{prefix}:b:"));

        let bytes = Bytes::from(vec![0u8, 255, 1, 2, 3]);
        cache.put("k", bytes.clone(), MIN).await.unwrap();
        assert!(other.get("k").await.unwrap().is_none(), "prefixes separate");
        assert_eq!(server.keys(&prefix).await, vec![format!("{prefix}:a:k")]);

        // A second connection (another process) sees the same entry, and its delete.
        let again = RedisCache::new(server.connect(), format!("{prefix}:a:"));
        assert_eq!(again.get("k").await.unwrap().unwrap(), bytes);
        again.delete("k").await.unwrap();
        assert!(cache.get("k").await.unwrap().is_none());
        assert!(server.keys(&prefix).await.is_empty());
    }
}

/// Nothing listens on port 1: every call fails fast with `service_unavailable`, and the
/// password in the URL appears in no error text — on one server and on a cluster alike.
#[tokio::test]
async fn a_refused_connection_is_unavailable_quickly_and_hides_the_url() {
    let options = RedisOptions {
        connect_timeout: Duration::from_millis(300),
        command_timeout: Duration::from_millis(800),
    };
    let url = "redis://:hunter2-secret@127.0.0.1:1/0";
    for redis in [
        Redis::open(url, options).expect("opening is lazy"),
        Redis::open_cluster(&[url], options, &Default::default()).expect("opening is lazy"),
    ] {
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
    let url = "redis://:s3cret@[not-a-host/0";
    let err = Redis::open(url, RedisOptions::default()).unwrap_err();
    assert!(!err.chain().contains("s3cret"), "{}", err.chain());
    let err =
        Redis::open_cluster(&[url], RedisOptions::default(), &Default::default()).unwrap_err();
    assert!(!err.chain().contains("s3cret"), "{}", err.chain());
}

on_both! {
    /// memory → Redis → memory (standing in for DynamoDB): a hit in Redis fills the memory tier; an
    /// entry only the third tier holds is found and copied into both faster tiers.
    async fn tiered_over_real_redis_fills_faster_tiers(server) {
        let prefix = fresh_prefix("tiered");
        let _cleanup = server.cleanup(&prefix);
        let memory = Arc::new(MemoryCache::new(100));
        let redis = Arc::new(RedisCache::new(server.connect(), format!("{prefix}:")));
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

/// A one-node cluster of our own (`DOCENT_TEST_REDIS_SERVER`, every slot on it) that is down
/// when docent opens its connection, as when a process starts during an outage: calls fail as
/// unavailable within the timeout, and succeed once the node is up, then again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_at_start_is_used_once_it_is_up() {
    let Some(binary) = std::env::var_os("DOCENT_TEST_REDIS_SERVER") else {
        eprintln!("skipped: DOCENT_TEST_REDIS_SERVER not set (run scripts/test-services)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        let child = std::process::Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--cluster-enabled",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match client.get_connection_with_timeout(Duration::from_millis(200)) {
                Ok(conn) => break conn,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("the node did not start: {e}"),
            }
        };
        // A fresh node owns no slot; a restarted one keeps them in its nodes.conf.
        let _: redis::RedisResult<()> = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query(&mut conn);
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the node never served its slots");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    };
    let redis = Redis::open_cluster(
        &[format!("redis://127.0.0.1:{port}")],
        RedisOptions {
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(800),
        },
        &Default::default(),
    )
    .unwrap();
    let cache = RedisCache::new(redis, "down-at-start:");
    let started = Instant::now();
    let err = cache.get("k").await.unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let until_up = |what: &'static str| {
        let cache = cache.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match cache.put("k", Bytes::from_static(b"v"), MIN).await {
                    Ok(()) => break,
                    Err(e) if Instant::now() < deadline => {
                        assert_eq!(e.code, Code::Unavailable, "{e:?}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("{what}: still failing: {e:?}"),
                }
            }
            assert_eq!(cache.get("k").await.unwrap().unwrap(), "v");
        }
    };
    let mut node = start();
    until_up("after the node came up").await;

    node.kill().unwrap();
    node.wait().unwrap();
    assert_eq!(cache.get("k").await.unwrap_err().code, Code::Unavailable);
    let mut node = start();
    until_up("after a restart").await;
    node.kill().unwrap();
    node.wait().unwrap();
}
