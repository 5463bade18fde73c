//! Opening a SQLite database: WAL mode, foreign keys on, the busy timeout every writer queues
//! on (write transactions begin with `BEGIN IMMEDIATE`, see [`super::Db::write_tx`]), and the
//! embedded migrations.

use std::path::Path;
use std::time::Duration;

use docent_domain::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::store::SqliteStore;

/// The migrations embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path, max_connections: u32, busy_timeout: Duration) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::unavailable("the database directory", e))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // Reads map the file instead of copying pages through read(2), and each connection
            // keeps a larger page cache: search hydrates dozens of chunk rows per request.
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-32768")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(busy_timeout + Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| Error::unavailable("the database", e))?;
        MIGRATOR.run(&pool).await.map_err(Error::internal)?;
        Ok(Self::new(pool))
    }
}
