//! The search indexes behind [`SearchIndex`]: [`EmbeddedIndex`] for the embedded shape and,
//! with the `postgres` feature, `PgIndex` for the distributed one.
//!
//! The embedded one is two indexes:
//!
//! - [`keyword`]: BM25 over chunk text with tantivy — stemming and stop words in each
//!   collection's language (English by default), the title and heading path as boosted fields. One index for all tenants and
//!   collections, filtered by indexed `tenant/collection` and `tenant/document` terms, so
//!   thousands of collections cost nothing extra.
//! - [`vector`]: exact cosine scan (vectors are L2-normalised, so a dot product) over in-memory
//!   namespaces per (tenant, collection), plus an HNSW graph built in the background for
//!   collections above `index.ann_threshold` vectors. The vectors' durable home is the metadata store; the
//!   index is loaded from it at start and on `docent reindex`.
//!
//! `postgres::PgIndex` (feature `postgres`) keeps keywords and vectors in PostgreSQL tables
//! (full-text search, pgvector HNSW) that every server and worker shares. Both are held to the
//! same contract suite (`docent_testkit::search_index_contract`).
//!
//! [`open`] is the factory of the embedded index from [`IndexConfig`](docent_config::IndexConfig);
//! `PgIndex::open` the PostgreSQL one's.

pub mod keyword;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod vector;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk, ScoredDocument, SearchIndex};
use docent_domain::{CollectionId, DocumentId, Error, Result, TenantId};

pub use keyword::KeywordIndex;
#[cfg(feature = "postgres")]
pub use postgres::{PgIndex, PgIndexOptions};
pub use vector::VectorIndex;

/// Both embedded indexes.
pub struct EmbeddedIndex {
    keyword: KeywordIndex,
    vectors: VectorIndex,
}

impl EmbeddedIndex {
    /// Opens (or creates) the indexes under `dir`; collections with at least `ann_threshold`
    /// vectors get an HNSW graph (0: exact scan only).
    pub fn open(dir: &Path, ann_threshold: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::unavailable("the index directory", e))?;
        Ok(Self {
            keyword: KeywordIndex::open(&dir.join("keyword"))?,
            vectors: VectorIndex::new(ann_threshold),
        })
    }

    /// The vector index (to load stored vectors at start).
    pub fn vectors(&self) -> &VectorIndex {
        &self.vectors
    }

    /// Whether the keyword index was of an older layout and has been started afresh: it needs
    /// filling from the database ([`SearchIndex::upsert_document`] for every document).
    pub fn needs_rebuild(&self) -> bool {
        self.keyword.recreated()
    }

    /// Number of entries in the keyword index (chunks, plus one per document).
    pub fn keyword_len(&self) -> u64 {
        self.keyword.len()
    }
}

/// Opens the configured embedded index (kind `embedded`; `postgres` is an error here).
pub fn open(
    config: &docent_config::IndexConfig,
    data_path: impl Fn(&Path) -> std::path::PathBuf,
) -> Result<Arc<EmbeddedIndex>> {
    match config {
        docent_config::IndexConfig::Embedded {
            path,
            ann_threshold,
        } => Ok(Arc::new(EmbeddedIndex::open(
            &data_path(path),
            *ann_threshold,
        )?)),
        // Not embedded: the binary opens `postgres::PgIndex` for it.
        docent_config::IndexConfig::Postgres { .. } => Err(Error::internal(
            "index kind \"postgres\" is not an embedded index (see docent_index::postgres::PgIndex)",
        )),
    }
}

#[async_trait]
impl SearchIndex for EmbeddedIndex {
    async fn upsert_document(
        &self,
        tenant: TenantId,
        document: DocumentId,
        chunks: Vec<IndexChunk>,
    ) -> Result<()> {
        self.vectors.upsert_document(tenant, document, &chunks);
        let kw = self.keyword.clone();
        tokio::task::spawn_blocking(move || kw.upsert_document(tenant, document, &chunks))
            .await
            .map_err(Error::internal)?
    }

    async fn delete_document(&self, tenant: TenantId, document: DocumentId) -> Result<()> {
        self.vectors.delete_document(tenant, document);
        let kw = self.keyword.clone();
        tokio::task::spawn_blocking(move || kw.delete_document(tenant, document))
            .await
            .map_err(Error::internal)?
    }

    async fn delete_collection(&self, tenant: TenantId, collection: CollectionId) -> Result<()> {
        self.vectors.delete_collection(tenant, collection);
        let kw = self.keyword.clone();
        tokio::task::spawn_blocking(move || kw.delete_collection(tenant, collection))
            .await
            .map_err(Error::internal)?
    }

    async fn keyword(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        let (kw, filter, query) = (self.keyword.clone(), filter.clone(), query.to_owned());
        tokio::task::spawn_blocking(move || kw.search(tenant, &filter, &query, limit))
            .await
            .map_err(Error::internal)?
    }

    async fn keyword_documents(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredDocument>> {
        let (kw, filter, query) = (self.keyword.clone(), filter.clone(), query.to_owned());
        tokio::task::spawn_blocking(move || kw.search_documents(tenant, &filter, &query, limit))
            .await
            .map_err(Error::internal)?
    }

    async fn vector(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        Ok(self.vectors.search(tenant, filter, query, limit))
    }

    async fn clear(&self) -> Result<()> {
        self.vectors.clear();
        let kw = self.keyword.clone();
        tokio::task::spawn_blocking(move || kw.clear())
            .await
            .map_err(Error::internal)?
    }
}
