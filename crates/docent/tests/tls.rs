//! TLS to PostgreSQL and Redis, against servers the tests start with certificates of a CA they
//! make (`common::servers`): a PostgreSQL that accepts only TLS (`ssl = on`, `hostssl` lines
//! only) and a `redis-server` with a TLS port and no plain one, signing in as an ACL user.
//!
//! The whole app runs over both (metadata, SQL ledger and Redis Stream queue, Redis cache); a
//! wrong CA is refused under `verify-full`; TLS switched off (or missing on the server) fails
//! with an error naming the setting. Skips, saying so, without `DOCENT_TEST_PG_TLS_BIN` /
//! `DOCENT_TEST_REDIS_SERVER` (`scripts/test-services`) or the `openssl` command.

mod common;

use std::path::Path;
use std::time::Duration;

use common::servers::{PgCluster, RedisServer, TestCa};
use common::{markdown_doc, spawn_app_with};
use docent_config::{
    CacheConfig, DatabaseConfig, IndexConfig, PgSslMode, PgTls, QueueBackend, RedisQueueConfig,
};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

const USER: &str = "docent";
const PASSWORD: &str = "tls-test-password";

fn postgres(url: String, tls: PgTls) -> DatabaseConfig {
    DatabaseConfig::Postgres {
        url: Some(SecretString::from(url)),
        url_file: None,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(30),
        tls,
    }
}

fn verify_full(ca: &Path) -> PgTls {
    PgTls {
        mode: Some(PgSslMode::VerifyFull),
        root_cert: Some(ca.to_path_buf()),
        ..PgTls::default()
    }
}

/// Opening the store with `config`: the error's whole chain.
async fn open_error(config: &DatabaseConfig) -> String {
    match docent_store::open(config, |p| p.to_path_buf()).await {
        Ok(_) => panic!("connected, but the connection should have been refused"),
        Err(e) => e.chain(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_runs_over_tls_to_postgres_and_redis() {
    let test = "the_app_runs_over_tls_to_postgres_and_redis";
    let Some(ca) = TestCa::new(test, "good") else {
        return;
    };
    let Some(pg) = PgCluster::start_tls(test, &ca) else {
        return;
    };
    let Some(redis) = RedisServer::start_tls(test, &ca, USER, PASSWORD) else {
        return;
    };
    let ca_file = ca.cert();
    let app = spawn_app_with(|c| {
        c.database = postgres(pg.url(), verify_full(&ca_file));
        redis.configure(c);
        // A TLS handshake takes longer than the outage tests' short limits allow.
        c.redis.connect_timeout = Duration::from_secs(3);
        c.redis.command_timeout = Duration::from_secs(5);
        c.redis.username = Some(USER.into());
        c.redis.password = Some(SecretString::from(PASSWORD));
        c.redis.tls_ca_file = Some(ca_file.clone());
        c.cache = CacheConfig::Redis;
        c.queue.backend = QueueBackend::Redis(RedisQueueConfig {
            name: "queue".into(),
            group: "workers".into(),
            block_time: Duration::ZERO,
            republish_after: Duration::from_secs(1),
        });
    })
    .await;
    let col = app.create_collection("encrypted").await;
    let doc = app.upload_ok(&col, "doc.md", &markdown_doc(1, 3)).await;
    assert_eq!(app.drain().await, 1);
    let (s, body) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{body}"
    );
    let (s, body) = app.get("/ready").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for check in ["database", "queue", "cache"] {
        if let Some(state) = body["checks"].get(check) {
            assert_eq!(state, &json!("ok"), "{check}: {body}");
        }
    }
    let (s, hits) = app
        .search(json!({"query": "section", "collection_ids": [col], "mode": "keyword"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{hits}");

    // Every connection of the app's pool is encrypted (the server refuses others anyway).
    let opts = docent_config::pg::connect_options(&pg.url(), &verify_full(&ca_file)).unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts)
        .await
        .expect("a verify-full connection with the CA");
    let (count, all_ssl): (i64, Option<bool>) = sqlx::query_as(
        "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'docent'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(count > 0, "the app holds connections");
    assert_eq!(all_ssl, Some(true));
    app.stop().await;
}

#[tokio::test]
async fn postgres_refuses_a_wrong_ca_and_tls_switched_off() {
    let test = "postgres_refuses_a_wrong_ca_and_tls_switched_off";
    let (Some(ca), Some(other)) = (TestCa::new(test, "good"), TestCa::new(test, "other")) else {
        return;
    };
    let Some(pg) = PgCluster::start_tls(test, &ca) else {
        return;
    };
    // The right CA: connects, and verify-full checks the name (127.0.0.1 is in the SANs).
    let good = postgres(pg.url(), verify_full(&ca.cert()));
    docent_store::open(&good, |p| p.to_path_buf())
        .await
        .expect("verify-full with the CA that signed the server's certificate");
    // `require` encrypts without a CA to check against.
    let require = PgTls {
        mode: Some(PgSslMode::Require),
        ..PgTls::default()
    };
    docent_store::open(&postgres(pg.url(), require), |p| p.to_path_buf())
        .await
        .expect("require without a CA");

    // Another CA: refused, and the error says which settings to look at.
    let err = open_error(&postgres(pg.url(), verify_full(&other.cert()))).await;
    assert!(err.contains("database.tls.root_cert"), "{err}");
    assert!(err.contains("verify-full"), "{err}");

    // TLS off against a server that accepts only TLS: the error names database.tls.mode.
    let off = PgTls {
        mode: Some(PgSslMode::Disable),
        ..PgTls::default()
    };
    let err = open_error(&postgres(pg.url(), off)).await;
    assert!(err.contains("database.tls.mode"), "{err}");
    assert!(err.contains("only TLS"), "{err}");
    // The URL's own sslmode is read as libpq reads it; the setting still gets named.
    let err = open_error(&postgres(
        format!("{}?sslmode=disable", pg.url()),
        PgTls::default(),
    ))
    .await;
    assert!(err.contains("database.tls.mode"), "{err}");
    assert!(!err.contains("tls-test-password"));
}

#[tokio::test]
async fn the_index_pool_uses_its_tls_settings() {
    let test = "the_index_pool_uses_its_tls_settings";
    let (Some(ca), Some(other)) = (TestCa::new(test, "good"), TestCa::new(test, "other")) else {
        return;
    };
    let Some(pg) = PgCluster::start_tls(test, &ca) else {
        return;
    };
    let index = |tls: PgTls| IndexConfig::Postgres {
        url: Some(SecretString::from(pg.url())),
        url_file: None,
        max_connections: 2,
        statement_timeout: Duration::from_secs(30),
        hnsw_m: 16,
        hnsw_ef_construction: 64,
        hnsw_ef_search: 100,
        tls,
    };
    let database = DatabaseConfig::Sqlite {
        path: "unused.db".into(),
        max_connections: 1,
        busy_timeout: Duration::from_secs(1),
    };
    let chain = |r: docent_domain::Result<docent_index::PgIndex>| match r {
        Ok(_) => "opened".to_owned(),
        Err(e) => e.chain(),
    };
    let wrong = chain(
        docent_index::PgIndex::open(&index(verify_full(&other.cert())), &database, None).await,
    );
    assert!(wrong.contains("index.tls.root_cert"), "{wrong}");
    // With the right CA the connection gets past TLS and sign-in: this PostgreSQL has no
    // pgvector, so what fails (if anything) is creating the extension, not the connection.
    let right =
        chain(docent_index::PgIndex::open(&index(verify_full(&ca.cert())), &database, None).await);
    assert!(
        right == "opened" || (right.contains("vector") && !right.contains("tls")),
        "{right}"
    );
}

#[tokio::test]
async fn postgres_without_tls_fails_when_tls_is_required() {
    let Some(pg) = PgCluster::start_new("postgres_without_tls_fails_when_tls_is_required") else {
        return;
    };
    let require = PgTls {
        mode: Some(PgSslMode::Require),
        ..PgTls::default()
    };
    let err = open_error(&postgres(pg.url(), require)).await;
    assert!(err.contains("database.tls.mode"), "{err}");
    assert!(err.contains("does not offer"), "{err}");
}

fn redis_options() -> docent_redis::RedisOptions {
    docent_redis::RedisOptions {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(3),
    }
}

fn security(ca: Option<&Path>, password: &str) -> docent_redis::Security {
    docent_redis::Security {
        username: Some(USER.into()),
        password: Some(password.into()),
        tls_ca_pem: ca.map(|p| std::fs::read(p).unwrap()),
    }
}

#[tokio::test]
async fn redis_over_tls_with_the_ca_and_an_acl_user() {
    let test = "redis_over_tls_with_the_ca_and_an_acl_user";
    let (Some(ca), Some(other)) = (TestCa::new(test, "good"), TestCa::new(test, "other")) else {
        return;
    };
    let Some(server) = RedisServer::start_tls(test, &ca, USER, PASSWORD) else {
        return;
    };
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    let redis = docent_redis::Redis::open_with(
        &url,
        redis_options(),
        &security(Some(&ca.cert()), PASSWORD),
    )
    .unwrap();
    redis.ping().await.expect("PING over TLS as the ACL user");
    let cache = docent_redis::RedisCache::new(redis.clone(), "docent:tls:");
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

    // Another CA: the handshake fails.
    let wrong = docent_redis::Redis::open_with(
        &url,
        redis_options(),
        &security(Some(&other.cert()), PASSWORD),
    )
    .unwrap();
    let err = wrong.ping().await.unwrap_err().chain();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The system roots do not know the test CA either.
    let system =
        docent_redis::Redis::open_with(&url, redis_options(), &security(None, PASSWORD)).unwrap();
    assert!(system.ping().await.is_err());

    // A wrong password is refused.
    let bad =
        docent_redis::Redis::open_with(&url, redis_options(), &security(Some(&ca.cert()), "nope"))
            .unwrap();
    let err = bad.ping().await.unwrap_err().chain();
    assert!(
        !err.contains("nope"),
        "the password stays out of errors: {err}"
    );

    // A plain redis:// URL against the TLS-only port: the error says to use rediss://.
    let plain = url.replacen("rediss://", "redis://", 1);
    let plain =
        docent_redis::Redis::open_with(&plain, redis_options(), &security(None, PASSWORD)).unwrap();
    let err = plain.ping().await.unwrap_err().chain();
    assert!(err.contains("rediss://"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}
