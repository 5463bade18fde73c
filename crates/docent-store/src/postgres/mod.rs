//! [`MetadataStore`], [`AuthStore`](docent_domain::auth::AuthStore) and
//! [`BotStore`](docent_domain::ports::BotStore) on PostgreSQL, plus the SQL-table queue
//! ([`PgQueue`]) over the same pool.
//!
//! The same repositories as the SQLite ones, statement for statement, over the schema in
//! `migrations/postgres` (native `TIMESTAMPTZ`, `BIGINT`, `BOOLEAN`, `JSONB`, `BYTEA` columns).
//! Every statement over tenant data filters by `tenant_id` in SQL. Where SQLite's single writer
//! made a read-then-write sequence atomic, the PostgreSQL version takes a row lock
//! (`FOR UPDATE`) or a transaction-scoped advisory lock on the natural key.
//!
//! Connections get `statement_timeout` (and, for isolated test schemas, `search_path`) set in
//! `after_connect`, so a runaway query fails with a retryable `service_unavailable`.

mod auth;
mod bots;
pub mod index;
mod util;

use std::time::Duration;

use async_trait::async_trait;
use docent_domain::ports::MetadataStore;
use docent_domain::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, QueryBuilder, Row};

pub use crate::queue::{PgQueue, TASKS_CHANNEL};
pub use crate::store::PgStore;
pub use index::{PgIndex, PgIndexOptions};
use util::*;

/// The migrations embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How to connect to PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing with `service_unavailable`.
    pub acquire_timeout: Duration,
    /// Per-statement limit (`SET statement_timeout`); `None` keeps the server's setting.
    pub statement_timeout: Option<Duration>,
    /// A schema to work in (`SET search_path`), created if missing; `None` keeps the server's
    /// `search_path` (normally `public`). Tests use a fresh schema each to run in parallel.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
            schema: None,
        }
    }
}

/// Quotes an identifier for PostgreSQL.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgStore {
    /// Connects to `url` and applies pending migrations.
    pub async fn connect(url: &str, options: &PgOptions) -> Result<Self> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::unavailable("the database (invalid URL)", e))?;
        // Shown in pg_stat_activity; a schema's own name, so its connections can be found.
        let connect = connect.application_name(options.schema.as_deref().unwrap_or("docent"));
        let mut setup = String::new();
        if let Some(t) = options.statement_timeout {
            setup.push_str(&format!("SET statement_timeout = {};", t.as_millis()));
        }
        if let Some(schema) = &options.schema {
            let schema = quote_ident(schema);
            // Created on a plain connection first, so every pooled one can point at it.
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect)
                .await
                .map_err(|e| Error::unavailable("the database", e))?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .await
            .map_err(db_err)?;
            sqlx::Connection::close(conn).await.ok();
            setup.push_str(&format!("SET search_path TO {schema};"));
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let setup = setup.clone();
                Box::pin(async move {
                    if !setup.is_empty() {
                        conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await
            .map_err(|e| Error::unavailable("the database", e))?;
        MIGRATOR.run(&pool).await.map_err(Error::internal)?;
        Ok(Self::new(pool))
    }

    /// Points the connections opened from now on at `url` (a rotated password, say); open
    /// connections are kept until the pool retires them. Settings made at connect time
    /// (`statement_timeout`, `search_path`, the application name) stay.
    pub fn set_url(&self, url: &str) -> Result<()> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::unavailable("the database (invalid URL)", e))?;
        let name = self
            .pool
            .connect_options()
            .get_application_name()
            .unwrap_or("docent")
            .to_owned();
        self.pool
            .set_connect_options(connect.application_name(&name));
        Ok(())
    }

    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }
}

const COLLECTION_COLS: &str = "c.id, c.tenant_id, c.name, c.description, c.metadata, \
     c.embedding_model, c.embedding_dim, c.language, c.created_at, c.updated_at, \
     (SELECT COUNT(*) FROM documents d WHERE d.tenant_id = c.tenant_id AND d.collection_id = c.id) AS document_count";

fn collection_from(row: &PgRow) -> Result<Collection> {
    Ok(Collection {
        id: parse_id(row, "id")?,
        tenant_id: parse_id(row, "tenant_id")?,
        name: row.try_get("name").map_err(db_err)?,
        description: row.try_get("description").map_err(db_err)?,
        metadata: parse_meta(json(row, "metadata")?),
        embedding_model: row.try_get("embedding_model").map_err(db_err)?,
        embedding_dim: row
            .try_get::<Option<i64>, _>("embedding_dim")
            .map_err(db_err)?
            .map(|d| d as u32),
        language: TextLanguage::parse(&row.try_get::<String, _>("language").map_err(db_err)?)
            .ok_or_else(|| Error::internal("corrupt collection language"))?,
        document_count: row.try_get::<i64, _>("document_count").map_err(db_err)? as u64,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        updated_at: to_dt(row.try_get("updated_at").map_err(db_err)?),
    })
}

/// A document's status and error are its current task's: derived with a join, never copied.
pub(crate) const DOCUMENT_SELECT: &str = "SELECT d.id, d.tenant_id, d.collection_id, d.filename, \
     d.declared_mime, d.detected_type, d.size_bytes, d.sha256, d.blob_key, d.metadata, \
     d.page_count, d.chunk_count, d.task_id, d.created_at, d.updated_at, \
     COALESCE(t.status, 'pending') AS status, t.error_code, t.error_message \
     FROM documents d LEFT JOIN tasks t ON t.id = d.task_id AND t.tenant_id = d.tenant_id";

pub(crate) fn document_from(row: &PgRow) -> Result<Document> {
    let status: String = row.try_get("status").map_err(db_err)?;
    Ok(Document {
        id: parse_id(row, "id")?,
        tenant_id: parse_id(row, "tenant_id")?,
        collection_id: parse_id(row, "collection_id")?,
        filename: row.try_get("filename").map_err(db_err)?,
        declared_mime: row.try_get("declared_mime").map_err(db_err)?,
        detected_type: row.try_get("detected_type").map_err(db_err)?,
        size_bytes: row.try_get::<i64, _>("size_bytes").map_err(db_err)? as u64,
        sha256: row.try_get("sha256").map_err(db_err)?,
        blob_key: row.try_get("blob_key").map_err(db_err)?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("corrupt status {status}")))?,
        error: error_info(row)?,
        metadata: parse_meta(json(row, "metadata")?),
        page_count: row
            .try_get::<Option<i64>, _>("page_count")
            .map_err(db_err)?
            .map(|p| p as u32),
        chunk_count: row.try_get::<i64, _>("chunk_count").map_err(db_err)? as u32,
        task_id: parse_opt_id(row, "task_id")?,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        updated_at: to_dt(row.try_get("updated_at").map_err(db_err)?),
    })
}

fn chunk_from(row: &PgRow) -> Result<Chunk> {
    let heading = json(row, "heading_path")?;
    Ok(Chunk {
        id: ChunkId {
            document: parse_id(row, "document_id")?,
            ordinal: row.try_get::<i64, _>("ordinal").map_err(db_err)? as u32,
        },
        tenant_id: parse_id(row, "tenant_id")?,
        collection_id: parse_id(row, "collection_id")?,
        text: row.try_get("text").map_err(db_err)?,
        char_start: row.try_get::<i64, _>("char_start").map_err(db_err)? as u64,
        char_end: row.try_get::<i64, _>("char_end").map_err(db_err)? as u64,
        page: row
            .try_get::<Option<i64>, _>("page")
            .map_err(db_err)?
            .map(|p| p as u32),
        heading_path: serde_json::from_value(heading).unwrap_or_default(),
        metadata: parse_meta(json(row, "metadata")?),
    })
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn ensure_tenant(&self, id: TenantId, name: &str) -> Result<Tenant> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(id.to_string())
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(Tenant {
            id,
            name: row.try_get("name").map_err(db_err)?,
            created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        })
    }

    async fn create_collection(&self, tenant: TenantId, new: NewCollection) -> Result<Collection> {
        let id = CollectionId::new();
        let now = now_ms();
        let res = sqlx::query(
            "INSERT INTO collections (id, tenant_id, name, description, metadata, language, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(&new.name)
        .bind(&new.description)
        .bind(meta_json(&new.metadata))
        .bind(new.language.as_str())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
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
            "SELECT {COLLECTION_COLS} FROM collections c WHERE c.tenant_id = $1 AND c.id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
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
            "SELECT {COLLECTION_COLS} FROM collections c WHERE c.tenant_id = $1 AND c.name = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(name)
            .fetch_optional(&self.pool)
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
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {COLLECTION_COLS} FROM collections c WHERE c.tenant_id = "
        ));
        q.push_bind(tenant.to_string());
        if let Some(c) = cursor::<CollectionId>(&page)? {
            q.push(" AND c.id < ").push_bind(c);
        }
        q.push(" ORDER BY c.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(&self.pool).await.map_err(db_err)?;
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
        let mut q = QueryBuilder::<Postgres>::new("UPDATE collections SET updated_at = ");
        q.push_bind(now_ms());
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
        match q.build().execute(&self.pool).await {
            Ok(r) if r.rows_affected() == 0 => {
                Err(not_found(Code::CollectionNotFound, "collection", id))
            }
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
        let mut tx = self.write_tx().await?;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT blob_key FROM documents WHERE tenant_id = $1 AND collection_id = $2",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        // Chunks and documents go with the collection (ON DELETE CASCADE).
        let res = sqlx::query("DELETE FROM collections WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(not_found(Code::CollectionNotFound, "collection", id));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(keys)
    }

    async fn insert_document(
        &self,
        tenant: TenantId,
        new: NewDocument,
    ) -> Result<(Document, bool)> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM collections WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.to_string())
                .bind(new.collection_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if exists.is_none() {
            return Err(not_found(
                Code::CollectionNotFound,
                "collection",
                new.collection_id,
            ));
        }
        // Concurrent uploads of the same bytes queue here, so the second finds the first.
        lock_key(
            &mut tx,
            &format!("document:{tenant}:{}:{}", new.collection_id, new.sha256),
        )
        .await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE tenant_id = $1 AND collection_id = $2 AND sha256 = $3",
        )
        .bind(tenant.to_string())
        .bind(new.collection_id.to_string())
        .bind(&new.sha256)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let (id, created) = match existing {
            Some(id) => (
                id.parse()
                    .map_err(|_| Error::internal("corrupt document id"))?,
                false,
            ),
            None => {
                sqlx::query(
                    "INSERT INTO documents (id, tenant_id, collection_id, filename, declared_mime, size_bytes, \
                     sha256, blob_key, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                (new.id, true)
            }
        };
        tx.commit().await.map_err(db_err)?;
        Ok((self.get_document(tenant, id).await?, created))
    }

    async fn get_document(&self, tenant: TenantId, id: DocumentId) -> Result<Document> {
        let sql = format!("{DOCUMENT_SELECT} WHERE d.tenant_id = $1 AND d.id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
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
            let mut q =
                QueryBuilder::<Postgres>::new(format!("{DOCUMENT_SELECT} WHERE d.tenant_id = "));
            q.push_bind(tenant.to_string());
            q.push(" AND d.id IN (");
            let mut sep = q.separated(", ");
            for id in batch {
                sep.push_bind(id.to_string());
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await.map_err(db_err)? {
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
        let mut q =
            QueryBuilder::<Postgres>::new(format!("{DOCUMENT_SELECT} WHERE d.tenant_id = "));
        q.push_bind(tenant.to_string());
        if let Some(c) = filter.collection_id {
            q.push(" AND d.collection_id = ").push_bind(c.to_string());
        }
        if let Some(s) = filter.status {
            q.push(" AND COALESCE(t.status, 'pending') = ")
                .push_bind(s.as_str());
        }
        push_in(&mut q, "d.sha256", filter.sha256);
        if let Some(c) = cursor::<DocumentId>(&page)? {
            q.push(" AND d.id < ").push_bind(c);
        }
        q.push(" ORDER BY d.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(&self.pool).await.map_err(db_err)?;
        let items = rows.iter().map(document_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |d| d.id.to_string()))
    }

    async fn set_document_task(
        &self,
        tenant: TenantId,
        id: DocumentId,
        task: TaskId,
    ) -> Result<()> {
        let res = sqlx::query(
            "UPDATE documents SET task_id = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(task.to_string())
        .bind(now_ms())
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(not_found(Code::DocumentNotFound, "document", id));
        }
        Ok(())
    }

    async fn delete_document(&self, tenant: TenantId, id: DocumentId) -> Result<Document> {
        let doc = self.get_document(tenant, id).await?;
        let res = sqlx::query("DELETE FROM documents WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
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
        let mut tx = self.write_tx().await?;
        let collection: Option<String> = sqlx::query_scalar(
            "SELECT collection_id FROM documents WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(collection) = collection else {
            return Err(not_found(Code::DocumentNotFound, "document", document));
        };
        check_model(&mut tx, tenant, &collection, model.as_ref()).await?;
        for sql in [
            "DELETE FROM chunks WHERE tenant_id = $1 AND document_id = $2",
            "DELETE FROM failed_rows WHERE tenant_id = $1 AND document_id = $2",
            "DELETE FROM ingest_checkpoints WHERE tenant_id = $1 AND document_id = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant.to_string())
                .bind(document.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let count = chunks.len() as u32;
        insert_chunks(&mut tx, tenant, document, &collection, &chunks, false).await?;
        sqlx::query("UPDATE documents SET chunk_count = $1, detected_type = $2, page_count = $3, updated_at = $4 WHERE tenant_id = $5 AND id = $6")
            .bind(i64::from(count))
            .bind(facts.detected_type)
            .bind(facts.page_count.map(i64::from))
            .bind(now_ms())
            .bind(tenant.to_string())
            .bind(document.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(count)
    }

    async fn stored_chunks(&self, tenant: TenantId, except: DocumentId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(chunk_count), 0)::BIGINT FROM documents WHERE tenant_id = $1 AND id <> $2",
        )
        .bind(tenant.to_string())
        .bind(except.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(n.max(0) as u64)
    }

    async fn ingest_checkpoint(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
    ) -> Result<Option<u32>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_ordinal FROM ingest_checkpoints WHERE tenant_id = $1 AND document_id = $2 AND task_id = $3",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .bind(task.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(next.map(|n| n as u32))
    }

    async fn begin_batched_ingest(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
        facts: ExtractionFacts,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        document_collection(&mut tx, tenant, document).await?;
        for sql in [
            "DELETE FROM chunks WHERE tenant_id = $1 AND document_id = $2",
            "DELETE FROM failed_rows WHERE tenant_id = $1 AND document_id = $2",
            "DELETE FROM ingest_checkpoints WHERE tenant_id = $1 AND document_id = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant.to_string())
                .bind(document.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let now = now_ms();
        sqlx::query("INSERT INTO ingest_checkpoints (document_id, tenant_id, task_id, next_ordinal, updated_at) VALUES ($1, $2, $3, 0, $4)")
            .bind(document.to_string())
            .bind(tenant.to_string())
            .bind(task.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE documents SET chunk_count = 0, detected_type = $1, page_count = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5")
            .bind(facts.detected_type)
            .bind(facts.page_count.map(i64::from))
            .bind(now)
            .bind(tenant.to_string())
            .bind(document.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn append_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
        batch: ChunkBatch,
        model: Option<EmbeddingModel>,
    ) -> Result<u32> {
        let mut tx = self.write_tx().await?;
        let collection = document_collection(&mut tx, tenant, document).await?;
        let now = now_ms();
        if let Some(next) = batch.checkpoint {
            let moved = sqlx::query("UPDATE ingest_checkpoints SET next_ordinal = $1, updated_at = $2 WHERE tenant_id = $3 AND document_id = $4 AND task_id = $5")
                .bind(i64::from(next))
                .bind(now)
                .bind(tenant.to_string())
                .bind(document.to_string())
                .bind(task.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if moved.rows_affected() == 0 {
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
            sqlx::query("INSERT INTO failed_rows (document_id, row_number, tenant_id, error_code, message, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (document_id, row_number) DO UPDATE SET tenant_id = excluded.tenant_id, \
                 error_code = excluded.error_code, message = excluded.message, created_at = excluded.created_at")
                .bind(document.to_string())
                .bind(i64::from(*row))
                .bind(tenant.to_string())
                .bind(&e.code)
                .bind(&e.message)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for row in &batch.resolved {
            sqlx::query("DELETE FROM failed_rows WHERE tenant_id = $1 AND document_id = $2 AND row_number = $3")
                .bind(tenant.to_string())
                .bind(document.to_string())
                .bind(i64::from(*row))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM chunks WHERE tenant_id = $1 AND document_id = $2",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE documents SET chunk_count = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(count)
        .bind(now)
        .bind(tenant.to_string())
        .bind(document.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(count as u32)
    }

    async fn list_failed_rows(
        &self,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<Vec<FailedRow>> {
        let rows = sqlx::query(
            "SELECT row_number, error_code, message, created_at FROM failed_rows \
             WHERE tenant_id = $1 AND document_id = $2 ORDER BY row_number",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(FailedRow {
                    row: r.try_get::<i64, _>("row_number").map_err(db_err)? as u32,
                    code: r.try_get("error_code").map_err(db_err)?,
                    message: r.try_get("message").map_err(db_err)?,
                    failed_at: to_dt(r.try_get("created_at").map_err(db_err)?),
                })
            })
            .collect()
    }

    async fn chunk_vectors(
        &self,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<Vec<(u32, Option<Vec<f32>>)>> {
        let rows = sqlx::query(
            "SELECT ordinal, embedding FROM chunks WHERE tenant_id = $1 AND document_id = $2 ORDER BY ordinal",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let ordinal = r.try_get::<i64, _>("ordinal").map_err(db_err)? as u32;
                let v: Option<Vec<u8>> = r.try_get("embedding").map_err(db_err)?;
                Ok((ordinal, v.as_deref().map(vector_from_bytes)))
            })
            .collect()
    }

    async fn get_chunks(&self, tenant: TenantId, ids: &[ChunkId]) -> Result<Vec<Chunk>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for batch in ids.chunks(200) {
            // The ids as a VALUES table joined to the primary key.
            let mut q = QueryBuilder::<Postgres>::new(
                "SELECT c.document_id, c.ordinal, c.tenant_id, c.collection_id, c.text, \
                 c.char_start, c.char_end, c.page, c.heading_path, c.metadata FROM (VALUES ",
            );
            let mut sep = q.separated(", ");
            for id in batch {
                sep.push("(");
                sep.push_bind_unseparated(id.document.to_string());
                sep.push_unseparated(", ");
                sep.push_bind_unseparated(i64::from(id.ordinal));
                sep.push_unseparated(")");
            }
            q.push(
                ") AS k (doc, ord) JOIN chunks c ON c.document_id = k.doc AND c.ordinal = k.ord \
                 WHERE c.tenant_id = ",
            );
            q.push_bind(tenant.to_string());
            for row in q.build().fetch_all(&self.pool).await.map_err(db_err)? {
                let c = chunk_from(&row)?;
                found.insert(c.id, c);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
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
        let rows = sqlx::query(
            "SELECT collection_id, document_id, ordinal, embedding FROM chunks \
             WHERE tenant_id = $1 AND embedding IS NOT NULL AND (document_id > $2 OR (document_id = $3 AND ordinal > $4)) \
             ORDER BY document_id, ordinal LIMIT $5",
        )
        .bind(tenant.to_string())
        .bind(&doc)
        .bind(&doc)
        .bind(ord)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let blob: Vec<u8> = row.try_get("embedding").map_err(db_err)?;
                Ok((
                    parse_id(row, "collection_id")?,
                    ChunkId {
                        document: parse_id(row, "document_id")?,
                        ordinal: row.try_get::<i64, _>("ordinal").map_err(db_err)? as u32,
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
        let rows = sqlx::query(
            "SELECT document_id, ordinal, tenant_id, collection_id, text, char_start, char_end, page, heading_path, metadata \
             FROM chunks WHERE tenant_id = $1 AND document_id = $2 AND ordinal > $3 ORDER BY ordinal LIMIT $4",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let items = rows.iter().map(chunk_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |c| c.id.ordinal.to_string()))
    }

    async fn insert_pending_upload(&self, tenant: TenantId, upload: PendingUpload) -> Result<()> {
        crate::uploads::insert(self.db(), tenant, upload).await
    }

    async fn get_pending_upload(&self, tenant: TenantId, id: DocumentId) -> Result<PendingUpload> {
        crate::uploads::get(self.db(), tenant, id).await
    }

    async fn take_pending_upload(&self, tenant: TenantId, id: DocumentId) -> Result<bool> {
        crate::uploads::take(self.db(), tenant, id).await
    }
}

/// The collection records the model of its first vectors and refuses any other.
async fn check_model(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    tenant: TenantId,
    collection: &str,
    model: Option<&EmbeddingModel>,
) -> Result<()> {
    let Some(model) = model else { return Ok(()) };
    let row = sqlx::query(
        "SELECT embedding_model, embedding_dim FROM collections WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.to_string())
    .bind(collection)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    let have: Option<String> = row.try_get("embedding_model").map_err(db_err)?;
    let dim: Option<i64> = row.try_get("embedding_dim").map_err(db_err)?;
    match have {
        None => {
            sqlx::query("UPDATE collections SET embedding_model = $1, embedding_dim = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(&model.id)
                .bind(i64::from(model.dimension))
                .bind(tenant.to_string())
                .bind(collection)
                .execute(&mut **tx)
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
    tx: &mut sqlx::Transaction<'static, Postgres>,
    tenant: TenantId,
    document: DocumentId,
    collection: &str,
    chunks: &[NewChunk],
    replace: bool,
) -> Result<()> {
    // Multi-row inserts, well under PostgreSQL's bound-parameter limit per statement.
    for batch in chunks.chunks(50) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO chunks (document_id, ordinal, tenant_id, collection_id, text, char_start, char_end, page, heading_path, metadata, embedding) ",
        );
        q.push_values(batch, |mut b, c| {
            b.push_bind(document.to_string())
                .push_bind(i64::from(c.ordinal))
                .push_bind(tenant.to_string())
                .push_bind(collection.to_owned())
                .push_bind(c.text.clone())
                .push_bind(c.char_start as i64)
                .push_bind(c.char_end as i64)
                .push_bind(c.page.map(i64::from))
                .push_bind(
                    serde_json::to_value(&c.heading_path).unwrap_or_else(|_| serde_json::json!([])),
                )
                .push_bind(meta_json(&c.metadata))
                .push_bind(c.embedding.as_deref().map(vector_bytes));
        });
        if replace {
            q.push(
                " ON CONFLICT (document_id, ordinal) DO UPDATE SET tenant_id = excluded.tenant_id, \
                 collection_id = excluded.collection_id, text = excluded.text, \
                 char_start = excluded.char_start, char_end = excluded.char_end, page = excluded.page, \
                 heading_path = excluded.heading_path, metadata = excluded.metadata, \
                 embedding = excluded.embedding",
            );
        }
        q.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// The collection of a tenant's document, or `document_not_found`.
async fn document_collection(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    tenant: TenantId,
    document: DocumentId,
) -> Result<String> {
    let collection: Option<String> =
        sqlx::query_scalar("SELECT collection_id FROM documents WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(document.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
    collection.ok_or_else(|| not_found(Code::DocumentNotFound, "document", document))
}
