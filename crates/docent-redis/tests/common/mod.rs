//! Shared test support: the Redis server from `DOCENT_TEST_REDIS_URL` and the Redis Cluster
//! from `DOCENT_TEST_REDIS_CLUSTER_URL` (a seed node; `scripts/test-services` starts both —
//! tests print `skipped: … not set` and pass without them), a fresh key prefix per test, a
//! guard that deletes the test's keys when dropped (on every node of a cluster), and
//! [`on_both!`], which runs one test body against each.

#![allow(dead_code)]

use std::time::Duration;

use docent_redis::{Redis, RedisOptions, Security};

/// The env var naming the Redis server tests may use (e.g. `redis://127.0.0.1:6379/0`).
pub const ENV: &str = "DOCENT_TEST_REDIS_URL";
/// The env var naming a seed node of the Redis Cluster tests may use
/// (e.g. `redis://127.0.0.1:7001`).
pub const CLUSTER_ENV: &str = "DOCENT_TEST_REDIS_CLUSTER_URL";

/// The test Redis URL, or `None` after printing why the test is skipped.
pub fn redis_url() -> Option<String> {
    var(ENV)
}

fn var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {name} not set");
            None
        }
    }
}

/// Short timeouts, so a broken server fails a test quickly instead of hanging it.
pub fn options() -> RedisOptions {
    RedisOptions {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_secs(2),
    }
}

/// A connection to the test server.
pub fn connect(url: &str) -> Redis {
    Redis::open(url, options()).expect("open redis")
}

/// A prefix no other test (or earlier run) uses.
pub fn fresh_prefix(what: &str) -> String {
    format!("docent-test:{what}:{}", uuid::Uuid::new_v4())
}

/// A Redis server or a Redis Cluster the tests run against.
#[derive(Debug, Clone)]
pub struct Server {
    /// The server's URL, or a seed node's.
    pub url: String,
    pub cluster: bool,
}

impl Server {
    /// The single server of `DOCENT_TEST_REDIS_URL`, or `None` (printed: skipped).
    pub fn single() -> Option<Self> {
        Some(Self {
            url: var(ENV)?,
            cluster: false,
        })
    }

    /// The cluster of `DOCENT_TEST_REDIS_CLUSTER_URL`, or `None` (printed: skipped).
    pub fn cluster() -> Option<Self> {
        Some(Self {
            url: var(CLUSTER_ENV)?,
            cluster: true,
        })
    }

    /// The same kind of target at another URL (e.g. one nobody listens on).
    pub fn at(&self, url: &str) -> Self {
        Self {
            url: url.to_owned(),
            cluster: self.cluster,
        }
    }

    /// A connection of its own (another process would have one).
    pub fn connect(&self) -> Redis {
        self.connect_with(options())
    }

    pub fn connect_with(&self, options: RedisOptions) -> Redis {
        if self.cluster {
            Redis::open_cluster(&[&self.url], options, &Security::default()).expect("open cluster")
        } else {
            Redis::open(&self.url, options).expect("open redis")
        }
    }

    /// The guard deleting every key under `prefix` when dropped.
    pub fn cleanup(&self, prefix: &str) -> Cleanup {
        Cleanup {
            server: self.clone(),
            pattern_prefix: prefix.to_owned(),
        }
    }

    /// The URLs of the nodes holding data: the server itself, or the cluster's primaries
    /// (`CLUSTER NODES`).
    pub fn nodes(&self) -> Vec<String> {
        if !self.cluster {
            return vec![self.url.clone()];
        }
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the seed node");
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).unwrap();
        let mut urls: Vec<String> = nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let addr = fields.get(1)?.split('@').next()?;
                let master = fields.get(2)?.split(',').any(|f| f == "master");
                let failed = fields.get(2)?.contains("fail");
                (master && !failed).then(|| format!("redis://{addr}"))
            })
            .collect();
        urls.sort();
        urls
    }

    /// The keys under `prefix` on each node (in the order of [`Server::nodes`]).
    pub fn keys_per_node(&self, prefix: &str) -> Vec<Vec<String>> {
        self.nodes()
            .iter()
            .map(|node| {
                let client = redis::Client::open(node.as_str()).unwrap();
                let mut conn = client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .expect("connect to a node");
                let mut keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}*"))
                    .query(&mut conn)
                    .unwrap();
                keys.sort();
                keys
            })
            .collect()
    }

    /// Keys under `prefix` right now, on every node.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let server = self.clone();
        let prefix = prefix.to_owned();
        let mut keys: Vec<String> =
            tokio::task::spawn_blocking(move || server.keys_per_node(&prefix))
                .await
                .unwrap()
                .into_iter()
                .flatten()
                .collect();
        keys.sort();
        keys
    }
}

/// Deletes every key whose name starts with `pattern_prefix` when dropped (synchronously, on
/// its own thread, so it also runs while a test's runtime shuts down), on every node.
pub struct Cleanup {
    pub server: Server,
    pub pattern_prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let server = self.server.clone();
        let pattern = format!("{}*", self.pattern_prefix);
        let done = std::thread::spawn(move || -> redis::RedisResult<()> {
            for node in server.nodes() {
                let client = redis::Client::open(node.as_str())?;
                let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
                let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
                // One at a time: a cluster refuses a DEL of keys in different slots.
                for key in keys {
                    let _: i64 = redis::cmd("DEL").arg(&key).query(&mut conn)?;
                }
            }
            Ok(())
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!(
                "warning: could not clean up test keys {}*",
                self.pattern_prefix
            );
        }
    }
}

/// Keys under `prefix` right now (single server).
pub async fn keys(url: &str, prefix: &str) -> Vec<String> {
    Server {
        url: url.to_owned(),
        cluster: false,
    }
    .keys(prefix)
    .await
}

/// `on_both!(async fn name(server) { … })`: the body as two tests, `name::single` on the
/// server of `DOCENT_TEST_REDIS_URL` and `name::cluster` on the cluster of
/// `DOCENT_TEST_REDIS_CLUSTER_URL`, each skipping (printed) without its variable.
macro_rules! on_both {
    ($(#[doc = $doc:literal])* async fn $name:ident($server:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($server: $crate::common::Server) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn single() {
                if let Some(server) = $crate::common::Server::single() {
                    run(server).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn cluster() {
                if let Some(server) = $crate::common::Server::cluster() {
                    run(server).await;
                }
            }
        }
    };
}
