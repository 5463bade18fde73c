//! Exact nearest-neighbour search over L2-normalised vectors, by namespace.
//!
//! A namespace is one (tenant, collection): a flat `Vec<f32>` of rows plus their chunk ids.
//! Thousands of collections cost one small allocation each. The scan is a dot product written so
//! the compiler vectorises it (about 10 ms per 100k 384-d vectors per core).

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::RwLock;

use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk};
use docent_domain::{ChunkId, CollectionId, DocumentId, TenantId};

#[derive(Default)]
struct Namespace {
    dim: usize,
    ids: Vec<ChunkId>,
    rows: Vec<f32>,
}

impl Namespace {
    fn remove_document(&mut self, document: DocumentId) {
        if !self.ids.iter().any(|id| id.document == document) {
            return;
        }
        let dim = self.dim;
        let mut ids = Vec::with_capacity(self.ids.len());
        let mut rows = Vec::with_capacity(self.rows.len());
        for (i, id) in self.ids.iter().enumerate() {
            if id.document != document {
                ids.push(*id);
                rows.extend_from_slice(&self.rows[i * dim..(i + 1) * dim]);
            }
        }
        self.ids = ids;
        self.rows = rows;
    }
}

/// In-memory exact vector index.
#[derive(Default)]
pub struct VectorIndex {
    spaces: RwLock<HashMap<(TenantId, CollectionId), Namespace>>,
}

/// Dot product, in 8 independent lanes so it vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[derive(PartialEq)]
struct Candidate(f32, ChunkId);
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    // Reversed: the heap keeps the worst of the current top-k on top.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

impl VectorIndex {
    /// Adds vectors loaded from the store (`(collection, chunk, vector)`), at start or rebuild.
    pub fn load(
        &self,
        tenant: TenantId,
        rows: impl IntoIterator<Item = (CollectionId, ChunkId, Vec<f32>)>,
    ) {
        let mut spaces = self.spaces.write().expect("vector index lock");
        for (collection, id, v) in rows {
            let ns = spaces.entry((tenant, collection)).or_default();
            if ns.dim == 0 {
                ns.dim = v.len();
            }
            if v.len() == ns.dim {
                ns.ids.push(id);
                ns.rows.extend_from_slice(&v);
            }
        }
    }

    /// Replaces a document's vectors.
    pub fn upsert_document(&self, tenant: TenantId, document: DocumentId, chunks: &[IndexChunk]) {
        self.delete_document(tenant, document);
        self.load(
            tenant,
            chunks
                .iter()
                .filter_map(|c| c.vector.clone().map(|v| (c.collection_id, c.id, v))),
        );
    }

    /// Removes a document's vectors.
    pub fn delete_document(&self, tenant: TenantId, document: DocumentId) {
        let mut spaces = self.spaces.write().expect("vector index lock");
        for ((t, _), ns) in spaces.iter_mut() {
            if *t == tenant {
                ns.remove_document(document);
            }
        }
    }

    /// Removes a collection's vectors.
    pub fn delete_collection(&self, tenant: TenantId, collection: CollectionId) {
        self.spaces
            .write()
            .expect("vector index lock")
            .remove(&(tenant, collection));
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.spaces.write().expect("vector index lock").clear();
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.spaces
            .read()
            .expect("vector index lock")
            .values()
            .map(|n| n.ids.len())
            .sum()
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `limit` most similar chunks within the tenant and filter.
    pub fn search(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
    ) -> Vec<ScoredChunk> {
        let spaces = self.spaces.read().expect("vector index lock");
        let docs: HashSet<DocumentId> = filter.documents.iter().copied().collect();
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(limit + 1);
        for ((t, c), ns) in spaces.iter() {
            if *t != tenant
                || ns.dim != query.len()
                || (!filter.collections.is_empty() && !filter.collections.contains(c))
            {
                continue;
            }
            for (i, id) in ns.ids.iter().enumerate() {
                if !docs.is_empty() && !docs.contains(&id.document) {
                    continue;
                }
                let score = dot(query, &ns.rows[i * ns.dim..(i + 1) * ns.dim]);
                if heap.len() < limit {
                    heap.push(Candidate(score, *id));
                } else if heap.peek().is_some_and(|w| score > w.0) {
                    heap.pop();
                    heap.push(Candidate(score, *id));
                }
            }
        }
        let mut out: Vec<ScoredChunk> = heap
            .into_iter()
            .map(|Candidate(score, id)| ScoredChunk { id, score })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..389).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..389).map(|i| (i as f32).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn top_k_filters_and_deletes() {
        let idx = VectorIndex::default();
        let (t, other) = (TenantId::new(), TenantId::new());
        let (c1, c2) = (CollectionId::new(), CollectionId::new());
        let (d1, d2) = (DocumentId::new(), DocumentId::new());
        let ch = |d, o, c, v: &[f32]| IndexChunk {
            id: ChunkId {
                document: d,
                ordinal: o,
            },
            collection_id: c,
            text: String::new(),
            heading_path: vec![],
            title: String::new(),
            vector: Some(unit(v)),
        };
        idx.upsert_document(
            t,
            d1,
            &[
                ch(d1, 0, c1, &[1.0, 0.0, 0.0]),
                ch(d1, 1, c1, &[0.7, 0.7, 0.0]),
            ],
        );
        idx.upsert_document(t, d2, &[ch(d2, 0, c2, &[0.0, 1.0, 0.0])]);
        idx.load(
            other,
            [(
                c1,
                ChunkId {
                    document: DocumentId::new(),
                    ordinal: 0,
                },
                unit(&[1.0, 0.0, 0.0]),
            )],
        );
        let q = unit(&[1.0, 0.1, 0.0]);
        let hits = idx.search(t, &IndexFilter::default(), &q, 2);
        assert_eq!(
            hits.iter().map(|h| h.id.ordinal).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(hits.iter().all(|h| h.id.document == d1));
        let hits = idx.search(
            t,
            &IndexFilter {
                collections: vec![c2],
                ..Default::default()
            },
            &q,
            5,
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id.document, d2);
        let hits = idx.search(
            t,
            &IndexFilter {
                documents: vec![d2],
                ..Default::default()
            },
            &q,
            5,
        );
        assert_eq!(hits.len(), 1);
        idx.delete_document(t, d1);
        assert!(
            idx.search(t, &IndexFilter::default(), &q, 5)
                .iter()
                .all(|h| h.id.document != d1)
        );
        assert_eq!(idx.len(), 2);
        idx.delete_collection(t, c2);
        assert!(idx.search(t, &IndexFilter::default(), &q, 5).is_empty());
        assert_eq!(idx.search(other, &IndexFilter::default(), &q, 5).len(), 1);
    }
}
