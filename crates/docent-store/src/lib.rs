//! Metadata storage and the SQL-table task queue, over sqlx.
//!
//! [`open`] is the one factory: it matches on [`DatabaseConfig`], opens the pool, applies the
//! embedded migrations and returns a [`Database`] that hands out the [`MetadataStore`] and — for
//! the `sql` queue backend — the [`TaskQueue`] over the same `tasks` table.
//!
//! Architecture invariant: every statement that touches tenant data has `tenant_id = ?` in its
//! WHERE clause (or inserts it); ids from another tenant are "not found".

mod queue;
mod sqlite;
mod sqlite_auth;
mod sqlite_bots;
mod util;

use std::sync::Arc;

use docent_config::{DatabaseConfig, QueueBackend, QueueConfig};
use docent_domain::Result;
use docent_domain::auth::AuthStore;
use docent_domain::ports::{MetadataStore, TaskQueue};

pub use queue::{Backoff, SqliteQueue};
pub use sqlite::SqliteStore;

/// An open metadata database.
#[derive(Clone)]
pub struct Database {
    store: Arc<SqliteStore>,
}

impl Database {
    /// The metadata repositories.
    pub fn metadata(&self) -> Arc<dyn MetadataStore> {
        self.store.clone()
    }

    /// Accounts, sessions, API keys and external identities.
    pub fn auth(&self) -> Arc<dyn AuthStore> {
        self.store.clone()
    }

    /// The task queue chosen by `queue.backend`.
    pub fn queue(&self, config: &QueueConfig) -> Arc<dyn TaskQueue> {
        match config.backend {
            QueueBackend::Sql => Arc::new(SqliteQueue::new(
                self.store.pool().clone(),
                config.max_attempts,
                Backoff {
                    base: config.backoff_base,
                    max: config.backoff_max,
                },
            )),
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.store.pool().close().await;
    }
}

/// Opens the configured database and applies pending migrations. `data_path` resolves relative
/// paths against the data directory.
pub async fn open(
    config: &DatabaseConfig,
    data_path: impl Fn(&std::path::Path) -> std::path::PathBuf,
) -> Result<Database> {
    match config {
        DatabaseConfig::Sqlite {
            path,
            max_connections,
            busy_timeout,
        } => {
            let store =
                SqliteStore::open(&data_path(path), *max_connections, *busy_timeout).await?;
            Ok(Database {
                store: Arc::new(store),
            })
        }
    }
}
