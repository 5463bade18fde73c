//! docent on a Redis Cluster (`redis.cluster = true`, as on ElastiCache cluster mode or
//! ElastiCache Serverless): `docent config check` accepts the configuration (and names the
//! mistakes in `redis.cluster_nodes`), and the app with the cluster as its cache, its task
//! queue's broker and its model-call budget store runs an upload through to completed, its
//! cache entries spread over the cluster's nodes.
//!
//! The cluster is the one of `DOCENT_TEST_REDIS_CLUSTER_URL` (a seed node;
//! `scripts/test-services` starts three primaries on 7001–7003); without it the app test skips,
//! saying so. The `config check` tests need no server. A one-node cluster of the test's own
//! speaking only TLS, with an ACL user (`DOCENT_TEST_REDIS_SERVER`, `openssl`), checks
//! `rediss://` with the CA file in cluster mode.

mod common;

use std::process::Command;
use std::time::Duration;

use common::servers::{RedisServer, TestCa};
use common::{markdown_doc, spawn_app_with};
use docent_config::{CacheConfig, QueueBackend, RedisQueueConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

const CLUSTER_ENV: &str = "DOCENT_TEST_REDIS_CLUSTER_URL";

fn config_check(env: &[(&str, &str)]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_docent"));
    cmd.args(["config", "check"])
        .env_clear()
        .env("DOCENT_HOME", home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The ElastiCache Serverless shape — a `rediss://` configuration endpoint, ACL user and
/// password, cluster mode — with the cache, the queue and the budgets on it, from the
/// environment alone; then with more seed nodes.
#[test]
fn config_check_accepts_a_cluster_configuration() {
    let base = [
        (
            "DOCENT__REDIS__URL",
            "rediss://docent-abc123.serverless.use1.cache.amazonaws.com:6379",
        ),
        ("DOCENT__REDIS__CLUSTER", "true"),
        ("DOCENT__REDIS__USERNAME", "docent"),
        ("DOCENT__REDIS__PASSWORD", "cluster-canary-password"),
        ("DOCENT__CACHE__KIND", "redis"),
        ("DOCENT__QUEUE__BACKEND__KIND", "redis"),
    ];
    let out = config_check(&base);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(!text.contains("cluster-canary-password"), "{text}");

    let mut with_nodes = base.to_vec();
    with_nodes.push((
        "DOCENT__REDIS__CLUSTER_NODES",
        "[\"rediss://node-2.cache.internal:6379\", \"rediss://node-3.cache.internal:6379\"]",
    ));
    let out = config_check(&with_nodes);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seed nodes without cluster mode, or carrying a password, are refused with the key named
/// and the password not repeated.
#[test]
fn config_check_names_cluster_mistakes() {
    for (env, want) in [
        (
            vec![
                ("DOCENT__REDIS__URL", "redis://a:6379"),
                ("DOCENT__REDIS__CLUSTER_NODES", "[\"redis://b:6379\"]"),
            ],
            "redis.cluster is false",
        ),
        (
            vec![
                ("DOCENT__REDIS__URL", "redis://a:6379"),
                ("DOCENT__REDIS__CLUSTER", "true"),
                (
                    "DOCENT__REDIS__CLUSTER_NODES",
                    "[\"redis://:node-secret@b:6379\"]",
                ),
            ],
            "redis.cluster_nodes[0]",
        ),
        (
            vec![
                ("DOCENT__REDIS__URL", "redis://a:6379"),
                ("DOCENT__REDIS__CLUSTER", "maybe"),
            ],
            "expected a boolean for key \"REDIS.CLUSTER\"",
        ),
    ] {
        let out = config_check(&env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} passed");
        assert!(err.contains(want), "{env:?}: {err}");
        assert!(!err.contains("node-secret"), "{err}");
    }
}

/// The app on the cluster: an upload goes through the Redis Streams queue to completed,
/// `/ready` says the queue is fine, and what the cache stored is spread over the nodes (the
/// queue's keys on one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_runs_on_a_redis_cluster() {
    let url = match std::env::var(CLUSTER_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!("skipped: {CLUSTER_ENV} not set (run scripts/test-services)");
            return;
        }
    };
    let prefix = format!("docent-test-app:{}:", uuid::Uuid::new_v4().simple());
    let _cleanup = Cleanup::new(&url, &prefix);
    let app = spawn_app_with(|c| {
        c.redis.url = Some(SecretString::from(url.clone()));
        c.redis.cluster = true;
        c.redis.key_prefix = prefix.clone();
        c.cache = CacheConfig::Redis;
        c.queue.backend = QueueBackend::Redis(RedisQueueConfig {
            name: "queue".into(),
            group: "workers".into(),
            block_time: Duration::ZERO,
            republish_after: Duration::from_secs(1),
        });
    })
    .await;
    let col = app.create_collection("clustered").await;
    let mut docs = Vec::new();
    for i in 0..10 {
        docs.push(
            app.upload_ok(&col, &format!("doc{i}.md"), &markdown_doc(i, 3))
                .await,
        );
    }
    assert_eq!(app.drain().await, 10);
    for doc in &docs {
        let (s, body) = app.get(&format!("/api/v1/documents/{doc}")).await;
        assert_eq!(
            (s, body["status"].as_str()),
            (StatusCode::OK, Some("completed")),
            "{body}"
        );
        // Summaries are cached (under `{prefix}cache:`), one entry per document.
        let (s, body) = app.get(&format!("/api/v1/documents/{doc}/summary")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, body) = app.get("/ready").await;
    assert_eq!(
        (s, &body["checks"]["queue"], &body["checks"]["cache"]),
        (StatusCode::OK, &json!("ok"), &json!("ok")),
        "{body}"
    );
    let per_node = keys_per_node(&url, &prefix);
    let queue_nodes = per_node
        .iter()
        .filter(|keys| {
            keys.iter()
                .any(|k| k.starts_with(&format!("{{{prefix}queue}}")))
        })
        .count();
    assert_eq!(queue_nodes, 1, "the queue's keys on one node: {per_node:?}");
    let cache_nodes = per_node
        .iter()
        .filter(|keys| {
            keys.iter()
                .any(|k| k.starts_with(&format!("{prefix}cache:")))
        })
        .count();
    let cached: usize = per_node
        .iter()
        .map(|keys| {
            keys.iter()
                .filter(|k| k.starts_with(&format!("{prefix}cache:")))
                .count()
        })
        .sum();
    assert!(cached >= 10, "summaries cached: {per_node:?}");
    assert!(
        cache_nodes > 1,
        "cache entries spread over the nodes: {per_node:?}"
    );
    app.stop().await;
}

/// The cluster's primaries (`CLUSTER NODES` on the seed).
fn nodes(seed: &str) -> Vec<String> {
    let mut conn = redis::Client::open(seed)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).unwrap();
    text.lines()
        .filter(|l| l.contains("master") && !l.contains("fail"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|a| a.split('@').next())
        .map(|a| format!("redis://{a}"))
        .collect()
}

/// The keys each primary holds that contain `prefix` (the queue's start with `{`).
fn keys_per_node(seed: &str, prefix: &str) -> Vec<Vec<String>> {
    nodes(seed)
        .iter()
        .map(|node| {
            let mut conn = redis::Client::open(node.as_str())
                .unwrap()
                .get_connection_with_timeout(Duration::from_secs(2))
                .unwrap();
            redis::cmd("KEYS")
                .arg(format!("*{prefix}*"))
                .query(&mut conn)
                .unwrap()
        })
        .collect()
}

/// Deletes the test's keys from every node when dropped.
struct Cleanup {
    seed: String,
    prefix: String,
}

impl Cleanup {
    fn new(seed: &str, prefix: &str) -> Self {
        Self {
            seed: seed.to_owned(),
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (seed, prefix) = (self.seed.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            for (node, keys) in nodes(&seed).iter().zip(keys_per_node(&seed, &prefix)) {
                let mut conn = redis::Client::open(node.as_str())
                    .unwrap()
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .unwrap();
                for key in keys {
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&key).query(&mut conn);
                }
            }
        })
        .join();
    }
}

/// ElastiCache Serverless's shape: a cluster that speaks only TLS (client port and cluster bus)
/// and signs in an ACL user. With the CA and the user, the cluster connection discovers the
/// node over TLS and the cache works through it; with another CA it fails as unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_cluster_with_a_ca_and_an_acl_user() {
    let test = "a_tls_only_cluster_with_a_ca_and_an_acl_user";
    let (Some(ca), Some(other)) = (TestCa::new(test, "good"), TestCa::new(test, "other")) else {
        return;
    };
    let Some(server) = RedisServer::start_tls_cluster(test, &ca, "docent", "cluster-tls-pw") else {
        return;
    };
    let url = server.url();
    let options = docent_redis::RedisOptions {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(3),
    };
    let security = |ca: &TestCa| docent_redis::Security {
        username: Some("docent".into()),
        password: Some("cluster-tls-pw".into()),
        tls_ca_pem: Some(std::fs::read(ca.cert()).unwrap()),
    };
    // Every slot to the lone node, over TLS on a plain (non-cluster) connection.
    let admin = docent_redis::Redis::open_with(&url, options, &security(&ca)).unwrap();
    let () = admin
        .query(redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(0).arg(16383))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = admin
            .query(redis::cmd("CLUSTER").arg("INFO"))
            .await
            .unwrap();
        if info.contains("cluster_state:ok") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let redis = docent_redis::Redis::open_cluster(&[&url], options, &security(&ca)).unwrap();
    assert!(redis.is_cluster());
    redis.ping().await.expect("PING through the TLS cluster");
    let cache = docent_redis::RedisCache::new(redis, "docent:tls-cluster:");
    use docent_domain::ports::Cache;
    cache
        .put(
            "k",
            bytes::Bytes::from_static(b"v"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    let wrong = docent_redis::Redis::open_cluster(&[&url], options, &security(&other)).unwrap();
    let err = wrong.ping().await.unwrap_err();
    assert_eq!(err.code, docent_domain::Code::Unavailable, "{err:?}");
    assert!(!err.chain().contains("cluster-tls-pw"), "{}", err.chain());
}
