//! Helpers of the SQLite repositories not yet written over the [`crate::engine`] seam: time
//! conversion, JSON columns and row decoding for `SqliteRow`. The engine-neutral ones are
//! [`crate::common`]'s and [`crate::engine`]'s, re-exported here for those repositories.

use chrono::{DateTime, TimeZone, Utc};
use docent_domain::{CollectionId, Error, ErrorInfo, QueueDepth, Result, TaskStatus, TenantId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub(crate) use crate::common::{cursor, not_found, paginate};
pub(crate) use crate::engine::db_err;

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

/// Counts of the `tasks` table by status (`status`, `n`), with `dead`, the engine's expression
/// for the dead-lettered ones, as `dl`: every tenant's tasks, or one tenant's, perhaps only
/// those of some collections (an empty list: none).
pub(crate) fn depth_query<DB: sqlx::Database>(
    dead: &str,
    scope: Option<(TenantId, Option<&[CollectionId]>)>,
) -> sqlx::QueryBuilder<DB>
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT status, COUNT(*) AS n, {dead} AS dl FROM tasks WHERE 1 = 1"
    ));
    if let Some((tenant, collections)) = scope {
        q.push(" AND tenant_id = ");
        q.push_bind(tenant.to_string());
        match collections {
            Some([]) => {
                q.push(" AND 1 = 0");
            }
            Some(c) => {
                q.push(" AND collection_id IN (");
                let mut list = q.separated(", ");
                for id in c {
                    list.push_bind(id.to_string());
                }
                q.push(")");
            }
            None => {}
        }
    }
    q.push(" GROUP BY status");
    q
}

/// The rows of a [`depth_query`] as a [`QueueDepth`] (statuses it does not know are skipped).
pub(crate) fn depth_from<R: Row>(rows: &[R]) -> std::result::Result<QueueDepth, sqlx::Error>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let mut depth = QueueDepth::default();
    for row in rows {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        let dl: Option<i64> = row.try_get("dl")?;
        if let Some(s) = TaskStatus::parse(&status) {
            depth.by_status.push((s, n as u64));
        }
        depth.dead_lettered += dl.unwrap_or(0) as u64;
    }
    Ok(depth)
}
