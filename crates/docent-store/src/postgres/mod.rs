//! What is still PostgreSQL-only: the SQL-table queue ([`PgQueue`]), not yet moved onto the
//! [`crate::engine`] seam. The metadata, auth and bot repositories are
//! [`crate::store::SqlStore`]'s, written once for both engines; connecting is `engine::postgres`.

mod queue;
mod util;

pub use crate::engine::postgres::{MIGRATOR, PgOptions};
pub use crate::store::PgStore;
pub use queue::{PgQueue, TASKS_CHANNEL};
