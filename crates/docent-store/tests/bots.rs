//! Repository tests for the [`BotStore`]: bots with their collections, conversations,
//! messages with citations, pagination, cascading deletes and tenant isolation.
//!
//! The cases (`cases/bots.rs`) run against SQLite always and against PostgreSQL (feature
//! `postgres`) when `DOCENT_TEST_POSTGRES_URL` is set; otherwise those print
//! `skipped: DOCENT_TEST_POSTGRES_URL not set` and pass.

mod common;

mod sqlite {
    use super::common::sqlite::*;
    include!("cases/bots.rs");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::common::postgres::*;
    include!("cases/bots.rs");
}
