//! Shared pieces of the docent-core integration tests.

use async_trait::async_trait;
use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk, ScoredDocument, SearchIndex};
use docent_domain::*;

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
