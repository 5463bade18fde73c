//! Pending direct uploads (`pending_uploads`; SQLite migration `0006`, PostgreSQL `0002`):
//! recorded when a client asks for a presigned upload URL, taken (deleted, once) when the upload
//! completes.

use docent_domain::*;

use crate::common::{meta_json, not_found, parse_meta};
use crate::engine::{Db, Row, Sql, db_err};
use crate::store::require_collection;

fn upload_from(row: &Row) -> Result<PendingUpload> {
    Ok(PendingUpload {
        id: row.id("id")?,
        collection_id: row.id("collection_id")?,
        filename: row.get("filename")?,
        declared_mime: row.get("declared_mime")?,
        size_bytes: row.get::<i64>("size_bytes")? as u64,
        sha256: row.get("sha256")?,
        blob_key: row.get("blob_key")?,
        metadata: parse_meta(row.json("metadata")?),
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

pub(crate) async fn insert(db: &Db, tenant: TenantId, upload: PendingUpload) -> Result<()> {
    let mut tx = db.write_tx().await?;
    require_collection(&mut tx, tenant, upload.collection_id).await?;
    Sql::new(
        "INSERT INTO pending_uploads (id, tenant_id, collection_id, filename, declared_mime, \
         size_bytes, sha256, blob_key, metadata, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(upload.id.to_string())
    .bind(tenant.to_string())
    .bind(upload.collection_id.to_string())
    .bind(upload.filename)
    .bind(upload.declared_mime)
    .bind(upload.size_bytes as i64)
    .bind(upload.sha256)
    .bind(upload.blob_key)
    .bind(meta_json(&upload.metadata))
    .bind(upload.created_at)
    .bind(upload.expires_at)
    .execute(&mut tx)
    .await
    .map_err(db_err)?;
    tx.commit().await
}

pub(crate) async fn get(db: &Db, tenant: TenantId, id: DocumentId) -> Result<PendingUpload> {
    let row = Sql::new(
        "SELECT id, collection_id, filename, declared_mime, size_bytes, sha256, blob_key, \
         metadata, created_at, expires_at FROM pending_uploads WHERE tenant_id = ? AND id = ?",
    )
    .bind(tenant.to_string())
    .bind(id.to_string())
    .fetch_optional(db)
    .await
    .map_err(db_err)?;
    match row {
        Some(row) => upload_from(&row),
        None => Err(not_found(Code::UploadNotFound, "upload", id)),
    }
}

pub(crate) async fn take(db: &Db, tenant: TenantId, id: DocumentId) -> Result<bool> {
    let done = Sql::new("DELETE FROM pending_uploads WHERE tenant_id = ? AND id = ?")
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(db)
        .await
        .map_err(db_err)?;
    Ok(done == 1)
}
