//! The PostgreSQL names other crates use: the store, the SQL queue and its wake-up channel,
//! connection options and the migrations. Every repository is written once for both engines
//! over [`crate::engine`]; connecting is `engine::postgres`.

pub use crate::engine::postgres::{MIGRATOR, PgOptions};
pub use crate::queue::{PgQueue, TASKS_CHANNEL};
pub use crate::store::PgStore;
