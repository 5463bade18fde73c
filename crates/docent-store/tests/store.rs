//! Repository tests for the [`MetadataStore`]: tenants, collections, documents (with the
//! status derived from their task), chunks, tenant isolation and cascading deletes.
//!
//! The cases (`cases/store.rs`) run against SQLite always and against PostgreSQL (feature
//! `postgres`) when `DOCENT_TEST_POSTGRES_URL` is set; otherwise those print
//! `skipped: DOCENT_TEST_POSTGRES_URL not set` and pass.

mod common;

mod sqlite {
    use super::common::sqlite::*;
    include!("cases/store.rs");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::common::postgres::*;
    include!("cases/store.rs");
}
