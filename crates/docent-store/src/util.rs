//! Helpers of the SQLite repositories not yet written over the [`crate::engine`] seam: time
//! conversion, JSON columns and row decoding for `SqliteRow`. The engine-neutral ones are
//! [`crate::common`]'s and [`crate::engine`]'s, re-exported here for those repositories.

use chrono::{DateTime, TimeZone, Utc};
use docent_domain::{Error, ErrorInfo, Metadata, Result};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub(crate) use crate::common::{cursor, not_found, paginate, vector_bytes, vector_from_bytes};
pub(crate) use crate::engine::{db_err, is_unique_violation};

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn to_dt(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn opt_dt(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_dt)
}

pub(crate) fn meta_json(m: &Metadata) -> String {
    serde_json::Value::Object(m.clone()).to_string()
}

pub(crate) fn parse_meta(s: &str) -> Metadata {
    match serde_json::from_str(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Metadata::new(),
    }
}

pub(crate) fn parse_id<T: std::str::FromStr>(row: &SqliteRow, col: &str) -> Result<T, Error> {
    let s: String = row.try_get(col).map_err(db_err)?;
    s.parse()
        .map_err(|_| Error::internal(format!("corrupt id in column {col}: {s}")))
}

pub(crate) fn parse_opt_id<T: std::str::FromStr>(
    row: &SqliteRow,
    col: &str,
) -> Result<Option<T>, Error> {
    let s: Option<String> = row.try_get(col).map_err(db_err)?;
    s.map(|s| {
        s.parse()
            .map_err(|_| Error::internal(format!("corrupt id in column {col}: {s}")))
    })
    .transpose()
}

pub(crate) fn error_info(row: &SqliteRow) -> Result<Option<ErrorInfo>, Error> {
    let code: Option<String> = row.try_get("error_code").map_err(db_err)?;
    let message: Option<String> = row.try_get("error_message").map_err(db_err)?;
    Ok(code.map(|code| ErrorInfo {
        code,
        message: message.unwrap_or_default(),
    }))
}

/// Appends ` AND {column} IN (…)` with `values` bound (nothing when there are none): the same
/// condition on either engine.
pub(crate) fn push_in<DB: sqlx::Database>(
    q: &mut sqlx::QueryBuilder<DB>,
    column: &str,
    values: Vec<String>,
) where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if values.is_empty() {
        return;
    }
    q.push(format!(" AND {column} IN ("));
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    q.push(")");
}
