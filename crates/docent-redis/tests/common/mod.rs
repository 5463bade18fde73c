//! Shared test support: the Redis URL from `DOCENT_TEST_REDIS_URL` (tests print
//! `skipped: DOCENT_TEST_REDIS_URL not set` and pass without it), a fresh key prefix per test,
//! and a guard that deletes the test's keys when dropped.

#![allow(dead_code)]

use std::time::Duration;

use docent_redis::{Redis, RedisOptions};

/// The env var naming the Redis server tests may use (e.g. `redis://127.0.0.1:6379/0`).
pub const ENV: &str = "DOCENT_TEST_REDIS_URL";

/// The test Redis URL, or `None` after printing why the test is skipped.
pub fn redis_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {ENV} not set");
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

/// Deletes every key whose name starts with `pattern_prefix` when dropped (synchronously, on
/// its own thread, so it also runs while a test's runtime shuts down).
pub struct Cleanup {
    pub url: String,
    pub pattern_prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.pattern_prefix);
        let done = std::thread::spawn(move || -> redis::RedisResult<()> {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL").arg(&keys).query(&mut conn)?;
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

/// Keys under `prefix` right now.
pub async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}
