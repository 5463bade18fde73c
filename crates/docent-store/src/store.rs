//! [`SqlStore`]: the metadata repositories over one database of either engine. The engine is a
//! type parameter only so `pool()` can hand out the driver's own pool (the SQL queue and tests
//! use it); every repository runs through the [`crate::engine`] seam and is written once.

use crate::engine::{Db, Engine};

/// Metadata repositories over one database: [`SqliteStore`] or [`PgStore`].
pub struct SqlStore<E: Engine> {
    pub(crate) pool: sqlx::Pool<E>,
    pub(crate) db: Db,
}

/// Metadata repositories over one SQLite database file.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

/// Metadata repositories over one PostgreSQL database.
#[cfg(feature = "postgres")]
pub type PgStore = SqlStore<sqlx::Postgres>;

impl<E: Engine> SqlStore<E> {
    pub(crate) fn new(pool: sqlx::Pool<E>) -> Self {
        let db = E::db(pool.clone());
        Self { pool, db }
    }

    /// The connection pool (shared with the SQL queue).
    pub fn pool(&self) -> &sqlx::Pool<E> {
        &self.pool
    }

    /// The seam's handle on the pool, for the repositories.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}
