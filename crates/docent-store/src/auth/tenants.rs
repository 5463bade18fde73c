//! Tenants (`tenants`): creation, lookup, the operator's listing, and a tenant's usage.

use docent_domain::auth::TenantUsage;
use docent_domain::{Code, Result, Tenant, TenantId};

use crate::common::not_found;
use crate::engine::{Db, On, Row, Sql, db_err, now};

/// Reads `id`, `name` and `created_at`.
pub(super) fn tenant_from(row: &Row) -> Result<Tenant> {
    Ok(Tenant {
        id: row.id("id")?,
        name: row.get("name")?,
        created_at: row.time("created_at")?,
    })
}

pub(super) async fn insert<'a>(on: impl Into<On<'a>>, name: &str) -> Result<Tenant> {
    let tenant = Tenant {
        id: TenantId::new(),
        name: name.to_owned(),
        created_at: now(),
    };
    Sql::new("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
        .bind(tenant.id.to_string())
        .bind(name)
        .bind(tenant.created_at)
        .execute(on)
        .await
        .map_err(db_err)?;
    Ok(tenant)
}

pub(super) async fn get(db: &Db, id: TenantId) -> Result<Tenant> {
    let row = Sql::new("SELECT id, name, created_at FROM tenants WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(db)
        .await
        .map_err(db_err)?
        .ok_or_else(|| not_found(Code::TenantNotFound, "tenant", id))?;
    tenant_from(&row)
}

pub(super) async fn list_all(db: &Db) -> Result<Vec<Tenant>> {
    let order = db.dialect().insertion_order();
    let rows = Sql::new(format!(
        "SELECT id, name, created_at FROM tenants ORDER BY created_at, {order}"
    ))
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    rows.iter().map(tenant_from).collect()
}

/// Documents and the bytes they take (content plus metadata as stored text).
pub(super) async fn usage(db: &Db, tenant: TenantId) -> Result<TenantUsage> {
    let row = Sql::new(
        "SELECT COUNT(*) AS documents, \
         CAST(COALESCE(SUM(size_bytes + octet_length(CAST(metadata AS TEXT))), 0) AS BIGINT) \
         AS bytes FROM documents WHERE tenant_id = ?",
    )
    .bind(tenant.to_string())
    .fetch_one(db)
    .await
    .map_err(db_err)?;
    Ok(TenantUsage {
        documents: row.get::<i64>("documents")? as u64,
        stored_bytes: row.get::<i64>("bytes")? as u64,
    })
}
