//! Metadata storage and the SQL-table task queue, over sqlx.
//!
//! [`open`] is the one factory: it matches on [`DatabaseConfig`], opens the pool, applies the
//! embedded migrations and returns a [`Database`] that hands out the [`MetadataStore`] and — for
//! the `sql` queue backend — the [`TaskQueue`] over the same `tasks` table. SQLite is always
//! built; PostgreSQL ([`PgStore`], [`PgQueue`]) with the `postgres` cargo feature.
//!
//! Architecture invariant: every statement that touches tenant data has `tenant_id = ?` in its
//! WHERE clause (or inserts it); ids from another tenant are "not found".

mod auth;
mod bots;
mod common;
mod engine;
#[cfg(feature = "postgres")]
pub mod postgres;
mod queue;
mod store;
mod uploads;
mod widget;

use std::sync::Arc;

use docent_config::{DatabaseConfig, QueueConfig};
use docent_domain::auth::AuthStore;
use docent_domain::ports::{MetadataStore, TaskLedger, TaskQueue};
use docent_domain::{Error, Result};

pub use docent_domain::ports::Backoff;

/// The fair-share cap of a queue built without one: `queue.max_running_per_tenant`'s default.
pub const DEFAULT_FAIR_CAP: u32 = 1;
pub use engine::Engine;
#[cfg(feature = "postgres")]
pub use engine::postgres::PgOptions;
#[cfg(feature = "postgres")]
pub use postgres::PgQueue;
pub use queue::{SqlQueue, SqliteQueue};
#[cfg(feature = "postgres")]
pub use store::PgStore;
pub use store::{SqlStore, SqliteStore};

/// An open metadata database.
#[derive(Clone)]
pub struct Database {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteStore>),
    #[cfg(feature = "postgres")]
    Postgres(Arc<PgStore>),
}

impl Database {
    /// The metadata repositories.
    pub fn metadata(&self) -> Arc<dyn MetadataStore> {
        match &self.backend {
            Backend::Sqlite(s) => s.clone(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => s.clone(),
        }
    }

    /// Accounts, sessions, API keys and external identities.
    pub fn auth(&self) -> Arc<dyn AuthStore> {
        match &self.backend {
            Backend::Sqlite(s) => s.clone(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => s.clone(),
        }
    }

    /// The SQL task queue over this database's `tasks` table (`queue.backend` kind `sql`; the
    /// binary builds the other backends), with the attempts and backoff of `config`.
    pub fn queue(&self, config: &QueueConfig) -> Arc<dyn TaskQueue> {
        self.ledger(config)
    }

    /// The same queue as a [`TaskLedger`]: the task state a delivery-only queue (SQS) keeps in
    /// the database, leasing the one task a message names.
    pub fn ledger(&self, config: &QueueConfig) -> Arc<dyn TaskLedger> {
        let backoff = Backoff {
            base: config.backoff_base,
            max: config.backoff_max,
        };
        match &self.backend {
            Backend::Sqlite(s) => Arc::new(
                SqliteQueue::new(s.pool().clone(), config.max_attempts, backoff)
                    .with_max_running_per_tenant(config.max_running_per_tenant),
            ),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Arc::new(
                PgQueue::new(s.pool().clone(), config.max_attempts, backoff)
                    .with_max_running_per_tenant(config.max_running_per_tenant),
            ),
        }
    }

    /// Wakes `wake` (`notify_waiters`) whenever another process enqueues a task, where the
    /// database can tell (PostgreSQL `LISTEN`); a no-op for SQLite, whose workers poll.
    /// Call from within a tokio runtime; the forwarder lives as long as `wake` has other owners.
    pub fn wake_on_new_tasks(&self, wake: Arc<tokio::sync::Notify>, retry: std::time::Duration) {
        match &self.backend {
            Backend::Sqlite(_) => {
                let _ = (wake, retry);
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Arc::new(PgQueue::new(
                s.pool().clone(),
                1,
                Backoff {
                    base: retry,
                    max: retry,
                },
            ))
            .forward_wakeups(wake, retry),
        }
    }

    /// PostgreSQL: opens new connections with `url` from now on (secret rotation; see
    /// `PgStore::set_url`) and answers `true`. SQLite has no credentials: `false`.
    pub fn set_postgres_url(&self, url: &secrecy::SecretString) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(_) => {
                let _ = url;
                Ok(false)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => {
                use secrecy::ExposeSecret;
                s.set_url(url.expose_secret()).map(|()| true)
            }
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.db().close().await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => s.db().close().await,
        }
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
                backend: Backend::Sqlite(Arc::new(store)),
            })
        }
        #[cfg(feature = "postgres")]
        DatabaseConfig::Postgres {
            max_connections,
            acquire_timeout,
            statement_timeout,
            tls,
            ..
        } => {
            use secrecy::ExposeSecret;
            let url = config
                .postgres_url()
                .map_err(|e| Error::internal(e.to_string()))?
                .ok_or_else(|| Error::internal("database.url is not set"))?;
            let options = PgOptions {
                max_connections: *max_connections,
                acquire_timeout: *acquire_timeout,
                statement_timeout: (!statement_timeout.is_zero()).then_some(*statement_timeout),
                schema: None,
                tls: tls.clone(),
            };
            let store = PgStore::connect(url.expose_secret(), &options).await?;
            Ok(Database {
                backend: Backend::Postgres(Arc::new(store)),
            })
        }
        #[cfg(not(feature = "postgres"))]
        DatabaseConfig::Postgres { .. } => Err(Error::new(
            docent_domain::Code::FeatureUnavailable,
            "this build has no PostgreSQL support (docent-store feature `postgres`)",
        )),
    }
}
