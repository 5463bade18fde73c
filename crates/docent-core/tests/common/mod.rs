//! Shared pieces of the docent-core integration tests.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use docent_config::Config;
use docent_core::Services;
use docent_domain::ports::{
    Embedder, IndexChunk, IndexFilter, ScoredChunk, ScoredDocument, SearchIndex,
};
use docent_domain::*;
use tokio::sync::Notify;

/// Services over the real SQLite store and queue and local blob store of `config` (whose
/// `data_dir` is a temporary directory), with no search index and the given embedder.
pub async fn services(config: Config, embedder: Option<Arc<dyn Embedder>>) -> Services {
    let config = Arc::new(config);
    let data_path = |p: &std::path::Path| config.data_path(p);
    let db = docent_store::open(&config.database, data_path)
        .await
        .expect("open the database");
    Services {
        config: config.clone(),
        store: db.metadata(),
        queue: db.queue(&config.queue),
        blobs: docent_blob::open(&config.storage, data_path)
            .await
            .expect("blob store"),
        cache: docent_cache::open(&config.cache).expect("the default cache is in process"),
        index: Arc::new(NoIndex),
        embedder,
        llm: None,
        wake: Arc::new(Notify::new()),
        facts: Default::default(),
        widget: Arc::new(docent_core::widget::WidgetRuntime::new(&config.widget)),
    }
}

/// A new tenant with one collection, `c`.
pub async fn tenant_with_collection(svc: &Services) -> (TenantId, CollectionId) {
    let t = TenantId::new();
    svc.store.ensure_tenant(t, "t").await.expect("tenant");
    let c = svc
        .create_collection(
            t,
            NewCollection {
                name: "c".into(),
                ..Default::default()
            },
        )
        .await
        .expect("collection")
        .id;
    (t, c)
}

/// A search index that holds nothing and finds nothing: for services tests that never search,
/// or test only what happens around the index.
pub struct NoIndex;

#[async_trait]
impl SearchIndex for NoIndex {
    async fn upsert_document(&self, _: TenantId, _: DocumentId, _: Vec<IndexChunk>) -> Result<()> {
        Ok(())
    }
    async fn delete_document(&self, _: TenantId, _: DocumentId) -> Result<()> {
        Ok(())
    }
    async fn delete_collection(&self, _: TenantId, _: CollectionId) -> Result<()> {
        Ok(())
    }
    async fn keyword(
        &self,
        _: TenantId,
        _: &IndexFilter,
        _: &str,
        _: usize,
    ) -> Result<Vec<ScoredChunk>> {
        Ok(vec![])
    }
    async fn keyword_documents(
        &self,
        _: TenantId,
        _: &IndexFilter,
        _: &str,
        _: usize,
    ) -> Result<Vec<ScoredDocument>> {
        Ok(vec![])
    }
    async fn vector(
        &self,
        _: TenantId,
        _: &IndexFilter,
        _: &[f32],
        _: usize,
    ) -> Result<Vec<ScoredChunk>> {
        Ok(vec![])
    }
    async fn clear(&self) -> Result<()> {
        Ok(())
    }
}
