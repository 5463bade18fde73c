//! Helpers shared by the SQLite repositories and queue: time conversion, JSON columns, error
//! mapping, row decoding.

use chrono::{DateTime, TimeZone, Utc};
use std::str::FromStr;

use docent_domain::{
    Code, CollectionId, Error, ErrorInfo, Metadata, Page, PageRequest, QueueDepth, Result,
    TaskStatus, TenantId,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

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

/// Maps a database error: connection trouble is `service_unavailable` (retryable), anything
/// else internal. Callers handle constraint violations they expect before this.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::unavailable("the database", e)
        }
        sqlx::Error::Database(d) if d.message().contains("database is locked") => {
            Error::unavailable("the database", e)
        }
        _ => Error::internal(e),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
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

pub(crate) fn not_found(code: Code, what: &str, id: impl std::fmt::Display) -> Error {
    Error::new(code, format!("{what} {id} not found"))
}

/// Validates a keyset cursor (an id of the listed type) so garbage never reaches SQL.
pub(crate) fn cursor<T: FromStr + ToString>(page: &PageRequest) -> Result<Option<String>> {
    page.cursor
        .as_deref()
        .map(|c| {
            c.parse::<T>()
                .map(|id| id.to_string())
                .map_err(|_| Error::new(Code::InvalidQuery, "`cursor` is not a valid page cursor"))
        })
        .transpose()
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

/// `AND lower(column) LIKE lower(text) ESCAPE '\'`: rows whose `column` contains `text`
/// literally (`%`, `_` and `\` in it match only themselves), ignoring case as the engine's
/// `lower` does (ASCII on SQLite). No text, or an empty one, adds nothing.
pub(crate) fn push_contains<DB: sqlx::Database>(
    q: &mut sqlx::QueryBuilder<DB>,
    column: &str,
    text: Option<String>,
) where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return;
    };
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    q.push(format!(" AND lower({column}) LIKE lower("));
    q.push_bind(pattern);
    q.push(") ESCAPE '\\'");
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
            Some(c) => push_in(
                &mut q,
                "collection_id",
                c.iter().map(ToString::to_string).collect(),
            ),
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

pub(crate) fn paginate<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// A vector as little-endian f32 bytes.
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`vector_bytes`].
pub(crate) fn vector_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
