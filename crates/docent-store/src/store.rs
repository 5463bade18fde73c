//! [`SqlStore`]: the [`MetadataStore`] over one database of either engine, written once over the
//! [`crate::engine`] seam. The engine is a type parameter only so [`SqlStore::pool`] can hand
//! out the driver's own pool (the SQL queue and tests use it); opening a store is per engine
//! (`engine::sqlite`, `engine::postgres`).

use async_trait::async_trait;
use docent_domain::ports::MetadataStore;
use docent_domain::*;
use serde_json::json;

use crate::common::{
    cursor, error_info, meta_json, not_found, paginate, parse_meta, vector_bytes, vector_from_bytes,
};
use crate::engine::{Arg, Db, Engine, Row, Sql, Tx, db_err, is_unique_violation, now};

/// Metadata repositories over one database: [`SqliteStore`] or [`PgStore`].
pub struct SqlStore<E: Engine> {
    pub(crate) pool: sqlx::Pool<E>,
    pub(crate) db: Db,
    /// TLS to the server, kept for reconnecting after a rotated URL (PostgreSQL's `set_url`;
    /// SQLite has no server and keeps the default).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) tls: docent_config::PgTls,
}

/// Metadata repositories over one SQLite database file.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

/// Metadata repositories over one PostgreSQL database.
#[cfg(feature = "postgres")]
pub type PgStore = SqlStore<sqlx::Postgres>;

impl<E: Engine> SqlStore<E> {
    pub(crate) fn new(pool: sqlx::Pool<E>) -> Self {
        let db = E::db(pool.clone());
        Self {
            pool,
            db,
            tls: docent_config::PgTls::default(),
        }
    }

    /// The connection pool (shared with the SQL queue).
    pub fn pool(&self) -> &sqlx::Pool<E> {
        &self.pool
    }

    /// The seam's handle on the pool, for the repositories.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

const COLLECTION_COLS: &str = "c.id, c.tenant_id, c.name, c.description, c.metadata, \
     c.embedding_model, c.embedding_dim, c.language, c.created_at, c.updated_at, \
     (SELECT COUNT(*) FROM documents d WHERE d.tenant_id = c.tenant_id AND d.collection_id = c.id) AS document_count";

fn collection_from(row: &Row) -> Result<Collection> {
    Ok(Collection {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        name: row.get("name")?,
        description: row.get("description")?,
        metadata: parse_meta(row.json("metadata")?),
        embedding_model: row.get("embedding_model")?,
        embedding_dim: row.get::<Option<i64>>("embedding_dim")?.map(|d| d as u32),
        language: TextLanguage::parse(&row.get::<String>("language")?)
            .ok_or_else(|| Error::internal("corrupt collection language"))?,
        document_count: row.get::<i64>("document_count")? as u64,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A document's status and error are its current task's: derived with a join, never copied.
pub(crate) const DOCUMENT_SELECT: &str = "SELECT d.id, d.tenant_id, d.collection_id, d.filename, \
     d.declared_mime, d.detected_type, d.size_bytes, d.sha256, d.blob_key, d.metadata, \
     d.page_count, d.chunk_count, d.task_id, d.created_at, d.updated_at, \
     COALESCE(t.status, 'pending') AS status, t.error_code, t.error_message \
     FROM documents d LEFT JOIN tasks t ON t.id = d.task_id AND t.tenant_id = d.tenant_id";

pub(crate) fn document_from(row: &Row) -> Result<Document> {
    let status: String = row.get("status")?;
    Ok(Document {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        collection_id: row.id("collection_id")?,
        filename: row.get("filename")?,
        declared_mime: row.get("declared_mime")?,
        detected_type: row.get("detected_type")?,
        size_bytes: row.get::<i64>("size_bytes")? as u64,
        sha256: row.get("sha256")?,
        blob_key: row.get("blob_key")?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("corrupt status {status}")))?,
        error: error_info(row)?,
        metadata: parse_meta(row.json("metadata")?),
        page_count: row.get::<Option<i64>>("page_count")?.map(|p| p as u32),
        chunk_count: row.get::<i64>("chunk_count")? as u32,
        task_id: row.opt_id("task_id")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn chunk_from(row: &Row) -> Result<Chunk> {
    let heading = row.json("heading_path")?;
    Ok(Chunk {
        id: ChunkId {
            document: row.id("document_id")?,
            ordinal: row.get::<i64>("ordinal")? as u32,
        },
        tenant_id: row.id("tenant_id")?,
        collection_id: row.id("collection_id")?,
        text: row.get("text")?,
        char_start: row.get::<i64>("char_start")? as u64,
        char_end: row.get::<i64>("char_end")? as u64,
        page: row.get::<Option<i64>>("page")?.map(|p| p as u32),
        heading_path: serde_json::from_value(heading).unwrap_or_default(),
        metadata: parse_meta(row.json("metadata")?),
    })
}

#[async_trait]
impl<E: Engine> MetadataStore for SqlStore<E> {
    async fn ping(&self) -> Result<()> {
        Sql::new("SELECT 1")
            .execute(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn ensure_tenant(&self, id: TenantId, name: &str) -> Result<Tenant> {
        Sql::new("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING")
            .bind(id.to_string())
            .bind(name)
            .bind(now())
            .execute(&self.db)
            .await
            .map_err(db_err)?;
        let row = Sql::new("SELECT id, name, created_at FROM tenants WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.db)
            .await
            .map_err(db_err)?;
        Ok(Tenant {
            id,
            name: row.get("name")?,
            created_at: row.time("created_at")?,
        })
    }

    async fn create_collection(&self, tenant: TenantId, new: NewCollection) -> Result<Collection> {
        let id = CollectionId::new();
        let now = now();
        let res = Sql::new(
            "INSERT INTO collections (id, tenant_id, name, description, metadata, language, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(&new.name)
        .bind(&new.description)
        .bind(meta_json(&new.metadata))
        .bind(new.language.as_str())
        .bind(now)
        .bind(now)
        .execute(&self.db)
        .await;
        match res {
            Ok(_) => self.get_collection(tenant, id).await,
            Err(e) if is_unique_violation(&e) => Err(Error::new(
                Code::CollectionNameTaken,
                format!("a collection named `{}` already exists", new.name),
            )),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn get_collection(&self, tenant: TenantId, id: CollectionId) -> Result<Collection> {
        let sql = format!(
            "SELECT {COLLECTION_COLS} FROM collections c WHERE c.tenant_id = ? AND c.id = ?"
        );
        let row = Sql::new(sql)
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.db)
            .await
            .map_err(db_err)?;
        match row {
            Some(row) => collection_from(&row),
            None => Err(not_found(Code::CollectionNotFound, "collection", id)),
        }
    }

    async fn find_collection_by_name(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<Collection>> {
        let sql = format!(
            "SELECT {COLLECTION_COLS} FROM collections c WHERE c.tenant_id = ? AND c.name = ?"
        );
        let row = Sql::new(sql)
            .bind(tenant.to_string())
            .bind(name)
            .fetch_optional(&self.db)
            .await
            .map_err(db_err)?;
        row.as_ref().map(collection_from).transpose()
    }

    async fn list_collections(
        &self,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<Page<Collection>> {
        let limit = page.effective_limit();
        let mut q = Sql::new(format!(
            "SELECT {COLLECTION_COLS} FROM collections c WHERE c.tenant_id = "
        ));
        q.push_bind(tenant.to_string());
        if let Some(c) = cursor::<CollectionId>(&page)? {
            q.push(" AND c.id < ").push_bind(c);
        }
        q.push(" ORDER BY c.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(&self.db).await.map_err(db_err)?;
        let items = rows
            .iter()
            .map(collection_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |c| c.id.to_string()))
    }

    async fn update_collection(
        &self,
        tenant: TenantId,
        id: CollectionId,
        patch: CollectionPatch,
    ) -> Result<Collection> {
        let mut q = Sql::new("UPDATE collections SET updated_at = ");
        q.push_bind(now());
        if let Some(name) = &patch.name {
            q.push(", name = ").push_bind(name.clone());
        }
        if let Some(description) = &patch.description {
            q.push(", description = ").push_bind(description.clone());
        }
        if let Some(metadata) = &patch.metadata {
            q.push(", metadata = ").push_bind(meta_json(metadata));
        }
        q.push(" WHERE tenant_id = ").push_bind(tenant.to_string());
        q.push(" AND id = ").push_bind(id.to_string());
        match q.execute(&self.db).await {
            Ok(0) => Err(not_found(Code::CollectionNotFound, "collection", id)),
            Ok(_) => self.get_collection(tenant, id).await,
            Err(e) if is_unique_violation(&e) => Err(Error::new(
                Code::CollectionNameTaken,
                format!(
                    "a collection named `{}` already exists",
                    patch.name.unwrap_or_default()
                ),
            )),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn delete_collection(&self, tenant: TenantId, id: CollectionId) -> Result<Vec<String>> {
        let mut tx = self.db.write_tx().await?;
        let keys: Vec<String> =
            Sql::new("SELECT blob_key FROM documents WHERE tenant_id = ? AND collection_id = ?")
                .bind(tenant.to_string())
                .bind(id.to_string())
                .scalars(&mut tx)
                .await?;
        // Chunks and documents go with the collection (ON DELETE CASCADE).
        let res = Sql::new("DELETE FROM collections WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
        if res == 0 {
            return Err(not_found(Code::CollectionNotFound, "collection", id));
        }
        tx.commit().await?;
        Ok(keys)
    }

    async fn insert_document(
        &self,
        tenant: TenantId,
        new: NewDocument,
    ) -> Result<(Document, bool)> {
        let now = now();
        let mut tx = self.db.write_tx().await?;
        require_collection(&mut tx, tenant, new.collection_id).await?;
        // Concurrent uploads of the same bytes queue here, so the second finds the first.
        tx.lock_key(&format!(
            "document:{tenant}:{}:{}",
            new.collection_id, new.sha256
        ))
        .await?;
        let existing: Option<String> = Sql::new(
            "SELECT id FROM documents WHERE tenant_id = ? AND collection_id = ? AND sha256 = ?",
        )
        .bind(tenant.to_string())
        .bind(new.collection_id.to_string())
        .bind(&new.sha256)
        .scalar_optional(&mut tx)
        .await?;
        let (id, created) = match existing {
            Some(id) => (
                id.parse()
                    .map_err(|_| Error::internal("corrupt document id"))?,
                false,
            ),
            None => {
                Sql::new(
                    "INSERT INTO documents (id, tenant_id, collection_id, filename, declared_mime, size_bytes, \
                     sha256, blob_key, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(new.id.to_string())
                .bind(tenant.to_string())
                .bind(new.collection_id.to_string())
                .bind(&new.filename)
                .bind(&new.declared_mime)
                .bind(new.size_bytes as i64)
                .bind(&new.sha256)
                .bind(&new.blob_key)
                .bind(meta_json(&new.metadata))
                .bind(now)
                .bind(now)
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
                (new.id, true)
            }
        };
        tx.commit().await?;
        Ok((self.get_document(tenant, id).await?, created))
    }

    async fn get_document(&self, tenant: TenantId, id: DocumentId) -> Result<Document> {
        let sql = format!("{DOCUMENT_SELECT} WHERE d.tenant_id = ? AND d.id = ?");
        let row = Sql::new(sql)
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.db)
            .await
            .map_err(db_err)?;
        match row {
            Some(row) => document_from(&row),
            None => Err(not_found(Code::DocumentNotFound, "document", id)),
        }
    }

    async fn get_documents(&self, tenant: TenantId, ids: &[DocumentId]) -> Result<Vec<Document>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for batch in ids.chunks(200) {
            let mut q = Sql::new(format!("{DOCUMENT_SELECT} WHERE d.tenant_id = "));
            q.push_bind(tenant.to_string());
            q.push(" AND d.id IN (");
            q.push_list(batch.iter().map(|id| id.to_string()));
            q.push(")");
            for row in q.fetch_all(&self.db).await.map_err(db_err)? {
                let d = document_from(&row)?;
                found.insert(d.id, d);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn list_documents(
        &self,
        tenant: TenantId,
        filter: DocumentFilter,
        page: PageRequest,
    ) -> Result<Page<Document>> {
        let limit = page.effective_limit();
        let mut q = Sql::new(format!("{DOCUMENT_SELECT} WHERE d.tenant_id = "));
        q.push_bind(tenant.to_string());
        if let Some(c) = filter.collection_id {
            q.push(" AND d.collection_id = ").push_bind(c.to_string());
        }
        if let Some(s) = filter.status {
            q.push(" AND COALESCE(t.status, 'pending') = ")
                .push_bind(s.as_str());
        }
        q.push_in("d.sha256", filter.sha256);
        q.push_contains("d.filename", filter.filename_contains);
        if let Some(c) = cursor::<DocumentId>(&page)? {
            q.push(" AND d.id < ").push_bind(c);
        }
        q.push(" ORDER BY d.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.fetch_all(&self.db).await.map_err(db_err)?;
        let items = rows.iter().map(document_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |d| d.id.to_string()))
    }

    async fn set_document_task(
        &self,
        tenant: TenantId,
        id: DocumentId,
        task: TaskId,
    ) -> Result<()> {
        let res = Sql::new(
            "UPDATE documents SET task_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
        )
        .bind(task.to_string())
        .bind(now())
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&self.db)
        .await
        .map_err(db_err)?;
        if res == 0 {
            return Err(not_found(Code::DocumentNotFound, "document", id));
        }
        Ok(())
    }

    async fn delete_document(&self, tenant: TenantId, id: DocumentId) -> Result<Document> {
        let doc = self.get_document(tenant, id).await?;
        let res = Sql::new("DELETE FROM documents WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&self.db)
            .await
            .map_err(db_err)?;
        if res == 0 {
            return Err(not_found(Code::DocumentNotFound, "document", id));
        }
        Ok(doc)
    }

    async fn replace_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        facts: ExtractionFacts,
        chunks: Vec<NewChunk>,
        model: Option<EmbeddingModel>,
    ) -> Result<u32> {
        let mut tx = self.db.write_tx().await?;
        let collection = document_collection(&mut tx, tenant, document).await?;
        check_model(&mut tx, tenant, &collection, model.as_ref()).await?;
        clear_chunks(&mut tx, tenant, document).await?;
        let count = chunks.len() as u32;
        insert_chunks(&mut tx, tenant, document, &collection, &chunks, false).await?;
        Sql::new("UPDATE documents SET chunk_count = ?, detected_type = ?, page_count = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(i64::from(count))
            .bind(facts.detected_type)
            .bind(facts.page_count.map(i64::from))
            .bind(now())
            .bind(tenant.to_string())
            .bind(document.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
        tx.commit().await?;
        Ok(count)
    }

    async fn stored_chunks(&self, tenant: TenantId, except: DocumentId) -> Result<u64> {
        let n: i64 = Sql::new(
            "SELECT CAST(COALESCE(SUM(chunk_count), 0) AS BIGINT) FROM documents WHERE tenant_id = ? AND id <> ?",
        )
        .bind(tenant.to_string())
        .bind(except.to_string())
        .scalar(&self.db)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn ingest_checkpoint(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
    ) -> Result<Option<u32>> {
        let next: Option<i64> = Sql::new(
            "SELECT next_ordinal FROM ingest_checkpoints WHERE tenant_id = ? AND document_id = ? AND task_id = ?",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .bind(task.to_string())
        .scalar_optional(&self.db)
        .await?;
        Ok(next.map(|n| n as u32))
    }

    async fn begin_batched_ingest(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
        facts: ExtractionFacts,
    ) -> Result<()> {
        let mut tx = self.db.write_tx().await?;
        document_collection(&mut tx, tenant, document).await?;
        clear_chunks(&mut tx, tenant, document).await?;
        let now = now();
        Sql::new("INSERT INTO ingest_checkpoints (document_id, tenant_id, task_id, next_ordinal, updated_at) VALUES (?, ?, ?, 0, ?)")
            .bind(document.to_string())
            .bind(tenant.to_string())
            .bind(task.to_string())
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
        Sql::new("UPDATE documents SET chunk_count = 0, detected_type = ?, page_count = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(facts.detected_type)
            .bind(facts.page_count.map(i64::from))
            .bind(now)
            .bind(tenant.to_string())
            .bind(document.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
        tx.commit().await
    }

    async fn append_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
        batch: ChunkBatch,
        model: Option<EmbeddingModel>,
    ) -> Result<u32> {
        let mut tx = self.db.write_tx().await?;
        let collection = document_collection(&mut tx, tenant, document).await?;
        let now = now();
        if let Some(next) = batch.checkpoint {
            let moved = Sql::new("UPDATE ingest_checkpoints SET next_ordinal = ?, updated_at = ? WHERE tenant_id = ? AND document_id = ? AND task_id = ?")
                .bind(i64::from(next))
                .bind(now)
                .bind(tenant.to_string())
                .bind(document.to_string())
                .bind(task.to_string())
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
            if moved == 0 {
                return Err(Error::new(
                    Code::TaskStateConflict,
                    "another task is processing this document",
                ));
            }
        }
        if !batch.chunks.is_empty() {
            check_model(&mut tx, tenant, &collection, model.as_ref()).await?;
            insert_chunks(&mut tx, tenant, document, &collection, &batch.chunks, true).await?;
        }
        for (row, e) in &batch.failed {
            Sql::new("INSERT INTO failed_rows (document_id, row_number, tenant_id, error_code, message, created_at) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (document_id, row_number) DO UPDATE SET tenant_id = excluded.tenant_id, \
                 error_code = excluded.error_code, message = excluded.message, created_at = excluded.created_at")
                .bind(document.to_string())
                .bind(i64::from(*row))
                .bind(tenant.to_string())
                .bind(&e.code)
                .bind(&e.message)
                .bind(now)
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
        }
        for row in &batch.resolved {
            Sql::new("DELETE FROM failed_rows WHERE tenant_id = ? AND document_id = ? AND row_number = ?")
                .bind(tenant.to_string())
                .bind(document.to_string())
                .bind(i64::from(*row))
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
        }
        let count: i64 =
            Sql::new("SELECT COUNT(*) FROM chunks WHERE tenant_id = ? AND document_id = ?")
                .bind(tenant.to_string())
                .bind(document.to_string())
                .scalar(&mut tx)
                .await?;
        Sql::new(
            "UPDATE documents SET chunk_count = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
        )
        .bind(count)
        .bind(now)
        .bind(tenant.to_string())
        .bind(document.to_string())
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        tx.commit().await?;
        Ok(count as u32)
    }

    async fn list_failed_rows(
        &self,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<Vec<FailedRow>> {
        let rows = Sql::new(
            "SELECT row_number, error_code, message, created_at FROM failed_rows \
             WHERE tenant_id = ? AND document_id = ? ORDER BY row_number",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .fetch_all(&self.db)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(FailedRow {
                    row: r.get::<i64>("row_number")? as u32,
                    code: r.get("error_code")?,
                    message: r.get("message")?,
                    failed_at: r.time("created_at")?,
                })
            })
            .collect()
    }

    async fn chunk_vectors(
        &self,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<Vec<(u32, Option<Vec<f32>>)>> {
        let rows = Sql::new(
            "SELECT ordinal, embedding FROM chunks WHERE tenant_id = ? AND document_id = ? ORDER BY ordinal",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .fetch_all(&self.db)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let ordinal = r.get::<i64>("ordinal")? as u32;
                let v: Option<Vec<u8>> = r.get("embedding")?;
                Ok((ordinal, v.as_deref().map(vector_from_bytes)))
            })
            .collect()
    }

    async fn get_chunks(&self, tenant: TenantId, ids: &[ChunkId]) -> Result<Vec<Chunk>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for batch in ids.chunks(200) {
            // The ids as a VALUES table joined to the primary key, the table first (SQLite's
            // CROSS JOIN keeps that order): with a row-value `IN` list SQLite walks every chunk
            // of the tenant instead.
            let mut q = Sql::new("WITH k (doc, ord) AS (VALUES ");
            for (i, id) in batch.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" })
                    .push_bind(id.document.to_string())
                    .push(", ")
                    .push_bind(i64::from(id.ordinal))
                    .push(")");
            }
            q.push(
                ") SELECT c.document_id, c.ordinal, c.tenant_id, c.collection_id, c.text, \
                 c.char_start, c.char_end, c.page, c.heading_path, c.metadata \
                 FROM k CROSS JOIN chunks c \
                 WHERE c.document_id = k.doc AND c.ordinal = k.ord AND c.tenant_id = ",
            );
            q.push_bind(tenant.to_string());
            for row in q.fetch_all(&self.db).await.map_err(db_err)? {
                let c = chunk_from(&row)?;
                found.insert(c.id, c);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>> {
        let rows: Vec<String> = Sql::new("SELECT id FROM tenants ORDER BY id")
            .scalars(&self.db)
            .await?;
        rows.iter()
            .map(|s| s.parse().map_err(|_| Error::internal("corrupt tenant id")))
            .collect()
    }

    async fn scan_embeddings(
        &self,
        tenant: TenantId,
        after: Option<ChunkId>,
        limit: u32,
    ) -> Result<Vec<(CollectionId, ChunkId, Vec<f32>)>> {
        let (doc, ord) = after.map_or((String::new(), -1), |c| {
            (c.document.to_string(), i64::from(c.ordinal))
        });
        let rows = Sql::new(
            "SELECT collection_id, document_id, ordinal, embedding FROM chunks \
             WHERE tenant_id = ? AND embedding IS NOT NULL AND (document_id > ? OR (document_id = ? AND ordinal > ?)) \
             ORDER BY document_id, ordinal LIMIT ?",
        )
        .bind(tenant.to_string())
        .bind(&doc)
        .bind(&doc)
        .bind(ord)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let blob: Vec<u8> = row.get("embedding")?;
                Ok((
                    row.id("collection_id")?,
                    ChunkId {
                        document: row.id("document_id")?,
                        ordinal: row.get::<i64>("ordinal")? as u32,
                    },
                    vector_from_bytes(&blob),
                ))
            })
            .collect()
    }

    async fn list_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        page: PageRequest,
    ) -> Result<Page<Chunk>> {
        let limit = page.effective_limit();
        let after: i64 = match page.cursor.as_deref() {
            None => -1,
            Some(c) => c.parse().map_err(|_| {
                Error::new(Code::InvalidQuery, "`cursor` is not a valid page cursor")
            })?,
        };
        let rows = Sql::new(
            "SELECT document_id, ordinal, tenant_id, collection_id, text, char_start, char_end, page, heading_path, metadata \
             FROM chunks WHERE tenant_id = ? AND document_id = ? AND ordinal > ? ORDER BY ordinal LIMIT ?",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.db)
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(chunk_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |c| c.id.ordinal.to_string()))
    }

    async fn insert_pending_upload(&self, tenant: TenantId, upload: PendingUpload) -> Result<()> {
        crate::uploads::insert(&self.db, tenant, upload).await
    }

    async fn get_pending_upload(&self, tenant: TenantId, id: DocumentId) -> Result<PendingUpload> {
        crate::uploads::get(&self.db, tenant, id).await
    }

    async fn take_pending_upload(&self, tenant: TenantId, id: DocumentId) -> Result<bool> {
        crate::uploads::take(&self.db, tenant, id).await
    }
}

/// The collection records the model of its first vectors and refuses any other.
async fn check_model(
    tx: &mut Tx,
    tenant: TenantId,
    collection: &str,
    model: Option<&EmbeddingModel>,
) -> Result<()> {
    let Some(model) = model else { return Ok(()) };
    let row = Sql::new(format!(
        "SELECT embedding_model, embedding_dim FROM collections WHERE tenant_id = ? AND id = ?{}",
        tx.dialect().for_update()
    ))
    .bind(tenant.to_string())
    .bind(collection)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_err)?;
    let have: Option<String> = row.get("embedding_model")?;
    let dim: Option<i64> = row.get("embedding_dim")?;
    match have {
        None => {
            Sql::new("UPDATE collections SET embedding_model = ?, embedding_dim = ? WHERE tenant_id = ? AND id = ?")
                .bind(&model.id)
                .bind(i64::from(model.dimension))
                .bind(tenant.to_string())
                .bind(collection)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            Ok(())
        }
        Some(have) if have == model.id && dim == Some(i64::from(model.dimension)) => Ok(()),
        Some(have) => Err(Error::new(
            Code::EmbeddingModelMismatch,
            format!(
                "the collection holds vectors of `{have}` ({} dimensions); refusing vectors of `{}` ({} dimensions) — reindex the collection to change models",
                dim.unwrap_or_default(),
                model.id,
                model.dimension
            ),
        )),
    }
}

/// Inserts chunks (replacing those of the same ordinal when `replace`).
async fn insert_chunks(
    tx: &mut Tx,
    tenant: TenantId,
    document: DocumentId,
    collection: &str,
    chunks: &[NewChunk],
    replace: bool,
) -> Result<()> {
    // Multi-row inserts, well under either engine's bound-parameter limit per statement.
    for batch in chunks.chunks(50) {
        let mut q = Sql::new(
            "INSERT INTO chunks (document_id, ordinal, tenant_id, collection_id, text, char_start, char_end, page, heading_path, metadata, embedding) VALUES ",
        );
        for (i, c) in batch.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.push_list([
                Arg::from(document.to_string()),
                Arg::from(i64::from(c.ordinal)),
                Arg::from(tenant.to_string()),
                Arg::from(collection),
                Arg::from(c.text.clone()),
                Arg::from(c.char_start as i64),
                Arg::from(c.char_end as i64),
                Arg::from(c.page.map(i64::from)),
                Arg::from(serde_json::to_value(&c.heading_path).unwrap_or_else(|_| json!([]))),
                Arg::from(meta_json(&c.metadata)),
                Arg::from(c.embedding.as_deref().map(vector_bytes)),
            ]);
            q.push(")");
        }
        if replace {
            q.push(
                " ON CONFLICT (document_id, ordinal) DO UPDATE SET tenant_id = excluded.tenant_id, \
                 collection_id = excluded.collection_id, text = excluded.text, \
                 char_start = excluded.char_start, char_end = excluded.char_end, page = excluded.page, \
                 heading_path = excluded.heading_path, metadata = excluded.metadata, \
                 embedding = excluded.embedding",
            );
        }
        q.execute(&mut *tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// `collection_not_found` unless the tenant has the collection.
pub(crate) async fn require_collection(
    tx: &mut Tx,
    tenant: TenantId,
    collection: CollectionId,
) -> Result<()> {
    let found = Sql::new("SELECT 1 FROM collections WHERE tenant_id = ? AND id = ?")
        .bind(tenant.to_string())
        .bind(collection.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    match found {
        Some(_) => Ok(()),
        None => Err(not_found(
            Code::CollectionNotFound,
            "collection",
            collection,
        )),
    }
}

/// Deletes a document's chunks, failed rows and ingest checkpoint.
async fn clear_chunks(tx: &mut Tx, tenant: TenantId, document: DocumentId) -> Result<()> {
    for sql in [
        "DELETE FROM chunks WHERE tenant_id = ? AND document_id = ?",
        "DELETE FROM failed_rows WHERE tenant_id = ? AND document_id = ?",
        "DELETE FROM ingest_checkpoints WHERE tenant_id = ? AND document_id = ?",
    ] {
        Sql::new(sql)
            .bind(tenant.to_string())
            .bind(document.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// The collection of a tenant's document, or `document_not_found`.
async fn document_collection(
    tx: &mut Tx,
    tenant: TenantId,
    document: DocumentId,
) -> Result<String> {
    let collection: Option<String> =
        Sql::new("SELECT collection_id FROM documents WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(document.to_string())
            .scalar_optional(&mut *tx)
            .await?;
    collection.ok_or_else(|| not_found(Code::DocumentNotFound, "document", document))
}
