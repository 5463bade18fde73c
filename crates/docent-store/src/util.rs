//! Helpers of the SQLite repositories not yet written over the [`crate::engine`] seam: time
//! conversion, JSON columns and row decoding for `SqliteRow`. The engine-neutral ones are
//! [`crate::common`]'s and [`crate::engine`]'s, re-exported here for those repositories.

use chrono::{DateTime, TimeZone, Utc};
use docent_domain::{Error, ErrorInfo, Result};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub(crate) use crate::common::{cursor, not_found, paginate};
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
