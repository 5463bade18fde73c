//! Helpers the repositories share whatever the engine: JSON columns in the domain's terms,
//! keyset pagination, the not-found error, embeddings as bytes. Nothing here names a driver;
//! that is [`crate::engine`]'s job.

use std::str::FromStr;

use docent_domain::{Code, Error, ErrorInfo, Metadata, Page, PageRequest, Result};
use serde_json::Value;

use crate::engine::Row;

/// User metadata as a JSON column value.
pub(crate) fn meta_json(m: &Metadata) -> Value {
    Value::Object(m.clone())
}

/// A JSON column read back as user metadata (anything but an object is empty metadata).
pub(crate) fn parse_meta(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        _ => Metadata::new(),
    }
}

/// A task's error, from the `error_code` and `error_message` columns.
pub(crate) fn error_info(row: &Row) -> Result<Option<ErrorInfo>> {
    let code: Option<String> = row.get("error_code")?;
    let message: Option<String> = row.get("error_message")?;
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

/// Deletes the tenant's row `id` of `table` (rows that reference it go by `ON DELETE
/// CASCADE`, in this one statement); whether there was one.
pub(crate) async fn delete_owned(
    db: &crate::engine::Db,
    table: &'static str,
    tenant: docent_domain::TenantId,
    id: impl std::fmt::Display,
) -> Result<bool> {
    let n = crate::engine::Sql::new(format!(
        "DELETE FROM {table} WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tenant.to_string())
    .bind(id.to_string())
    .execute(db)
    .await
    .map_err(crate::engine::db_err)?;
    Ok(n > 0)
}
