//! Per-backend fixtures for the repository tests: each test file includes its cases once per
//! backend (`include!("cases/..")` inside `mod sqlite` and `mod postgres`), and the cases see
//! `Store`, `Queue`, `fixture()` and the few raw-SQL helpers from here.
//!
//! SQLite runs always, on a fresh file in a temporary directory. PostgreSQL runs when
//! `DOCENT_TEST_POSTGRES_URL` names a server (`scripts/test-services` exports it); each test gets
//! a fresh schema with a random name (its own migrations, `search_path` set on every pooled
//! connection), dropped when the fixture drops, so tests run in parallel.

#![allow(dead_code)]

use std::time::Duration;

/// A small retry backoff so retry cases stay fast.
pub fn test_backoff() -> docent_store::Backoff {
    docent_store::Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

pub mod sqlite {
    use std::time::Duration;

    use docent_domain::ConversationId;
    use docent_store::{SqliteQueue, SqliteStore};
    use tempfile::TempDir;

    pub type Store = SqliteStore;
    pub type Queue = SqliteQueue;

    pub struct Fixture {
        pub store: Store,
        pub queue: Queue,
        _dir: TempDir,
    }

    /// A fresh database with migrations applied, and a queue over it (3 attempts).
    pub async fn fixture() -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("meta.db"), 4, Duration::from_secs(5))
            .await
            .expect("open the database");
        let queue = SqliteQueue::new(store.pool().clone(), 3, super::test_backoff());
        Some(Fixture {
            store,
            queue,
            _dir: dir,
        })
    }

    /// Messages of a conversation counted in SQL, whatever the repository shows.
    pub async fn count_messages(s: &Store, conversation: ConversationId) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = ?")
            .bind(conversation.to_string())
            .fetch_one(s.pool())
            .await
            .unwrap()
    }
}

#[cfg(feature = "postgres")]
pub mod postgres {
    use std::time::Duration;

    use docent_domain::ConversationId;
    use docent_store::{PgOptions, PgQueue, PgStore};

    pub type Store = PgStore;
    pub type Queue = PgQueue;

    /// The server to test against, or `None` (and a note on stderr) to skip.
    pub fn url() -> Option<String> {
        match std::env::var("DOCENT_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!("skipped: DOCENT_TEST_POSTGRES_URL not set");
                None
            }
        }
    }

    /// A schema of its own, dropped (with everything in it) on drop.
    pub struct Schema {
        url: String,
        pub name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (url, name) = (self.url.clone(), self.name.clone());
            // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    // The test's runtime is blocked in this drop: its connections (named after
                    // the schema) cannot finish an open transaction, so end them first.
                    sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&name)
                    .execute(&mut conn)
                    .await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await?;
                    conn.close().await
                })
            })
            .join();
            if let Ok(Err(e)) = done {
                eprintln!("could not drop test schema {}: {e}", self.name);
            }
        }
    }

    /// A store over a fresh schema, and the schema's guard.
    pub async fn store() -> Option<(PgStore, Schema)> {
        let url = url()?;
        let name = format!("docent_test_{}", uuid::Uuid::new_v4().simple());
        let schema = Schema {
            url: url.clone(),
            name: name.clone(),
        };
        let store = PgStore::connect(
            &url,
            &PgOptions {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(10),
                statement_timeout: Some(Duration::from_secs(30)),
                schema: Some(name),
                ..PgOptions::default()
            },
        )
        .await
        .expect("connect to DOCENT_TEST_POSTGRES_URL");
        Some((store, schema))
    }

    pub struct Fixture {
        pub store: Store,
        pub queue: Queue,
        _schema: Schema,
    }

    /// A fresh schema with migrations applied, and a queue over it (3 attempts).
    pub async fn fixture() -> Option<Fixture> {
        let (store, schema) = store().await?;
        let queue = PgQueue::new(store.pool().clone(), 3, super::test_backoff());
        Some(Fixture {
            store,
            queue,
            _schema: schema,
        })
    }

    /// Messages of a conversation counted in SQL, whatever the repository shows.
    pub async fn count_messages(s: &Store, conversation: ConversationId) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = $1")
            .bind(conversation.to_string())
            .fetch_one(s.pool())
            .await
            .unwrap()
    }
}
