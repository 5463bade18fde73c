//! Repository tests for the [`AuthStore`]: accounts, memberships across tenants, refresh
//! rotation with reuse detection, one-time tokens, API keys, external identities, tenant
//! aliases, usage — and that tenant-owned rows never cross tenants.
//!
//! The cases (`cases/auth.rs`) run against SQLite always and against PostgreSQL (feature
//! `postgres`) when `DOCENT_TEST_POSTGRES_URL` is set; otherwise those print
//! `skipped: DOCENT_TEST_POSTGRES_URL not set` and pass.

mod common;

mod sqlite {
    use super::common::sqlite::*;
    include!("cases/auth.rs");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::common::postgres::*;
    include!("cases/auth.rs");
}
