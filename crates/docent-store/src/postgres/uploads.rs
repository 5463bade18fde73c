//! Pending direct uploads on PostgreSQL (`pending_uploads`, migration `0002`): recorded when a
//! client asks for a presigned upload URL, taken (deleted, once) when the upload completes.

use docent_domain::*;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::util::*;

fn upload_from(row: &PgRow) -> Result<PendingUpload> {
    Ok(PendingUpload {
        id: parse_id(row, "id")?,
        collection_id: parse_id(row, "collection_id")?,
        filename: row.try_get("filename").map_err(db_err)?,
        declared_mime: row.try_get("declared_mime").map_err(db_err)?,
        size_bytes: row.try_get::<i64, _>("size_bytes").map_err(db_err)? as u64,
        sha256: row.try_get("sha256").map_err(db_err)?,
        blob_key: row.try_get("blob_key").map_err(db_err)?,
        metadata: parse_meta(json(row, "metadata")?),
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        expires_at: to_dt(row.try_get("expires_at").map_err(db_err)?),
    })
}

pub(crate) async fn insert(store: &PgStore, tenant: TenantId, upload: PendingUpload) -> Result<()> {
    let mut tx = store.write_tx().await?;
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM collections WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(upload.collection_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
    if exists.is_none() {
        return Err(not_found(
            Code::CollectionNotFound,
            "collection",
            upload.collection_id,
        ));
    }
    sqlx::query(
        "INSERT INTO pending_uploads (id, tenant_id, collection_id, filename, declared_mime, \
         size_bytes, sha256, blob_key, metadata, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(upload.id.to_string())
    .bind(tenant.to_string())
    .bind(upload.collection_id.to_string())
    .bind(&upload.filename)
    .bind(&upload.declared_mime)
    .bind(upload.size_bytes as i64)
    .bind(&upload.sha256)
    .bind(&upload.blob_key)
    .bind(meta_json(&upload.metadata))
    .bind(ms(upload.created_at))
    .bind(ms(upload.expires_at))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

pub(crate) async fn get(
    store: &PgStore,
    tenant: TenantId,
    id: DocumentId,
) -> Result<PendingUpload> {
    let row = sqlx::query(
        "SELECT id, collection_id, filename, declared_mime, size_bytes, sha256, blob_key, \
         metadata, created_at, expires_at FROM pending_uploads WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.to_string())
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(db_err)?;
    match row {
        Some(row) => upload_from(&row),
        None => Err(not_found(Code::UploadNotFound, "upload", id)),
    }
}

pub(crate) async fn take(store: &PgStore, tenant: TenantId, id: DocumentId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM pending_uploads WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(store.pool())
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}
