//! Repository tests for the [`WidgetStore`]: widget keys (create, list, revoke, rotate, the
//! lookup by key text), the daily quota counted atomically under concurrency, refused origins
//! (counted, bounded), the shared signing secret, visitors' conversations, and tenant isolation.
//!
//! The cases (`cases/widget.rs`) run against SQLite always and against PostgreSQL (feature
//! `postgres`) when `DOCENT_TEST_POSTGRES_URL` is set; otherwise those print
//! `skipped: DOCENT_TEST_POSTGRES_URL not set` and pass.

mod common;

mod sqlite {
    use super::common::sqlite::*;
    include!("cases/widget.rs");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::common::postgres::*;
    include!("cases/widget.rs");
}
