//! Helpers shared by the PostgreSQL repositories and queue. They mirror the SQLite ones in
//! `crate::util` with the column types of the PostgreSQL schema: times are `TIMESTAMPTZ` (kept at
//! millisecond precision, as SQLite stores them, so values round-trip identically on both
//! backends), JSON columns are `JSONB` bound and read as [`serde_json::Value`].

use chrono::{DateTime, Utc};

use docent_domain::{Error, ErrorInfo, Result};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

pub(crate) use crate::engine::db_err;
pub(crate) use crate::util::{cursor, not_found, paginate};
pub(crate) use crate::util::{depth_from, depth_query};

pub(crate) fn now_ms() -> DateTime<Utc> {
    crate::engine::now()
}

/// A `TIMESTAMPTZ` column value (the identity; kept so row decoders read like SQLite's).
pub(crate) fn to_dt(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

/// A nullable `TIMESTAMPTZ` column value.
pub(crate) fn opt_dt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t
}

/// A [`std::time::Duration`] as a chrono duration (saturating).
pub(crate) fn dur(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A `JSONB` column.
pub(crate) fn json(row: &PgRow, col: &str) -> Result<Value> {
    row.try_get(col).map_err(db_err)
}

pub(crate) fn parse_id<T: std::str::FromStr>(row: &PgRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col).map_err(db_err)?;
    s.parse()
        .map_err(|_| Error::internal(format!("corrupt id in column {col}: {s}")))
}

pub(crate) fn parse_opt_id<T: std::str::FromStr>(row: &PgRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(col).map_err(db_err)?;
    s.map(|s| {
        s.parse()
            .map_err(|_| Error::internal(format!("corrupt id in column {col}: {s}")))
    })
    .transpose()
}

pub(crate) fn error_info(row: &PgRow) -> Result<Option<ErrorInfo>> {
    let code: Option<String> = row.try_get("error_code").map_err(db_err)?;
    let message: Option<String> = row.try_get("error_message").map_err(db_err)?;
    Ok(code.map(|code| ErrorInfo {
        code,
        message: message.unwrap_or_default(),
    }))
}
