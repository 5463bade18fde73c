//! What is still PostgreSQL-only: the SQL-table queue ([`PgQueue`]) not yet moved onto the [`crate::engine`] seam, and
//! [`PgIndex`], the search index in PostgreSQL (moving to `docent-index`). The metadata and bot
//! repositories are [`crate::store::SqlStore`]'s, written once for both engines; connecting is
//! `engine::postgres`.

pub mod index;
mod queue;
mod util;

pub use crate::engine::postgres::{MIGRATOR, PgOptions};
pub use crate::store::PgStore;
pub use index::{PgIndex, PgIndexOptions};
pub use queue::{PgQueue, TASKS_CHANNEL};
