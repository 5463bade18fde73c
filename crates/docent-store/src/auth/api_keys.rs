//! API keys (`api_keys`): a tenant's keys with their scope, found by the presented key's
//! prefix, revoked by hand or when their creator loses the right to create them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use docent_domain::auth::{ApiKeyCredentials, BotId, KeyAccess, KeyScope, NewApiKey};
use docent_domain::{
    ApiKey, ApiKeyId, Code, CollectionId, Error, Page, PageRequest, Result, TenantId, UserId,
};
use serde_json::Value;

use super::tenant_ref_err;
use crate::common::{cursor, not_found, paginate};
use crate::engine::{Db, Row, Sql, Tx, db_err, now};

const API_KEY_COLS: &str = "id, tenant_id, name, prefix, secret_hash, access, collection_ids, \
     bot_ids, created_by, created_at, expires_at, revoked_at, last_used_at";

/// A JSON array of ids (`NULL`: no restriction).
fn id_list<T: std::str::FromStr>(row: &Row, col: &str) -> Result<Option<Vec<T>>> {
    row.opt_json(col)?
        .map(|v| {
            let ids: Vec<String> = serde_json::from_value(v)
                .map_err(|e| Error::internal(format!("corrupt {col}: {e}")))?;
            ids.iter()
                .map(|i| {
                    i.parse()
                        .map_err(|_| Error::internal(format!("corrupt id in {col}: {i}")))
                })
                .collect()
        })
        .transpose()
}

fn id_list_json<T: ToString>(ids: &Option<Vec<T>>) -> Option<Value> {
    ids.as_ref()
        .map(|v| Value::Array(v.iter().map(|i| Value::String(i.to_string())).collect()))
}

fn api_key_from(row: &Row) -> Result<ApiKey> {
    let access: String = row.get("access")?;
    Ok(ApiKey {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        name: row.get("name")?,
        prefix: row.get("prefix")?,
        scope: KeyScope {
            access: KeyAccess::parse(&access)
                .ok_or_else(|| Error::internal(format!("corrupt key access {access}")))?,
            collections: id_list::<CollectionId>(row, "collection_ids")?,
            bots: id_list::<BotId>(row, "bot_ids")?,
        },
        created_by: row.opt_id("created_by")?,
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

/// Revokes the live API keys `user` created, in `tenant` or (`None`) everywhere: the user lost
/// the right to create them (demoted below admin, removed, disabled). Returns how many.
pub(super) async fn revoke_created_by(
    tx: &mut Tx,
    tenant: Option<TenantId>,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<u64> {
    let mut sql =
        Sql::new("UPDATE api_keys SET revoked_at = ? WHERE created_by = ? AND revoked_at IS NULL")
            .bind(at)
            .bind(user.to_string());
    if let Some(tenant) = tenant {
        sql.push(" AND tenant_id = ?").arg(tenant.to_string());
    }
    sql.execute(tx).await.map_err(db_err)
}

pub(super) async fn insert(db: &Db, tenant: TenantId, new: NewApiKey) -> Result<ApiKey> {
    Sql::new(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, access, \
         collection_ids, bot_ids, created_by, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.id.to_string())
    .bind(tenant.to_string())
    .bind(&new.name)
    .bind(&new.prefix)
    .bind(&new.secret_hash)
    .bind(new.scope.access.as_str())
    .bind(id_list_json(&new.scope.collections))
    .bind(id_list_json(&new.scope.bots))
    .bind(new.created_by.map(|u| u.to_string()))
    .bind(now())
    .bind(new.expires_at)
    .execute(db)
    .await
    .map_err(tenant_ref_err(tenant))?;
    get(db, tenant, new.id).await
}

pub(super) async fn get(db: &Db, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey> {
    let row = Sql::new(format!(
        "SELECT {API_KEY_COLS} FROM api_keys WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tenant.to_string())
    .bind(id.to_string())
    .fetch_optional(db)
    .await
    .map_err(db_err)?
    .ok_or_else(|| not_found(Code::ApiKeyNotFound, "API key", id))?;
    api_key_from(&row)
}

pub(super) async fn list(db: &Db, tenant: TenantId, page: PageRequest) -> Result<Page<ApiKey>> {
    let limit = page.effective_limit();
    let mut sql = Sql::new(format!(
        "SELECT {API_KEY_COLS} FROM api_keys WHERE tenant_id = ?"
    ))
    .bind(tenant.to_string());
    if let Some(c) = cursor::<ApiKeyId>(&page)? {
        sql.push(" AND id < ").push_bind(c);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = sql.fetch_all(db).await.map_err(db_err)?;
    let items = rows.iter().map(api_key_from).collect::<Result<Vec<_>>>()?;
    Ok(paginate(items, limit, |k| k.id.to_string()))
}

pub(super) async fn revoke(
    db: &Db,
    tenant: TenantId,
    id: ApiKeyId,
    at: DateTime<Utc>,
) -> Result<ApiKey> {
    Sql::new(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id = ?",
    )
    .bind(at)
    .bind(tenant.to_string())
    .bind(id.to_string())
    .execute(db)
    .await
    .map_err(db_err)?;
    get(db, tenant, id).await
}

pub(super) async fn find_by_prefix(db: &Db, prefix: &str) -> Result<Option<ApiKeyCredentials>> {
    let row = Sql::new(format!(
        "SELECT {API_KEY_COLS} FROM api_keys WHERE prefix = ?"
    ))
    .bind(prefix)
    .fetch_optional(db)
    .await
    .map_err(db_err)?;
    row.map(|row| {
        Ok(ApiKeyCredentials {
            key: api_key_from(&row)?,
            secret_hash: row.get("secret_hash")?,
        })
    })
    .transpose()
}

/// Records a use at `at`, unless one was recorded within `min_interval` before it.
pub(super) async fn touch(
    db: &Db,
    tenant: TenantId,
    id: ApiKeyId,
    at: DateTime<Utc>,
    min_interval: Duration,
) -> Result<()> {
    let since = chrono::Duration::from_std(min_interval)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    Sql::new(
        "UPDATE api_keys SET last_used_at = ? WHERE tenant_id = ? AND id = ? \
         AND (last_used_at IS NULL OR last_used_at <= ?)",
    )
    .bind(at)
    .bind(tenant.to_string())
    .bind(id.to_string())
    .bind(since)
    .execute(db)
    .await
    .map_err(db_err)?;
    Ok(())
}
