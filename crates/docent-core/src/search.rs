//! Hybrid search: BM25 and vector candidates fused (normalised weighted fusion by default, or
//! reciprocal rank fusion), filtered by collection, document, metadata and upload date,
//! hydrated with chunk text, page and offsets, and highlighted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use docent_domain::llm::caller::for_tenant;
use docent_domain::ports::{IndexFilter, ScoredChunk, ScoredDocument};
use docent_domain::*;

pub use docent_domain::filter::{MetaFilter, MetaOp, meta_matches};

use crate::Services;

/// Which indexes to consult.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// BM25 + vectors, fused (vectors skipped when no embedder is configured).
    Hybrid,
    /// BM25 only.
    Keyword,
    /// Vectors only.
    Vector,
}

/// How keyword and vector rankings are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: `Σ 1 / (k + rank)`.
    Rrf {
        /// The constant `k` (60 by default).
        k: f32,
    },
    /// Normalised scores, `w · vector + (1 − w) · keyword`: each list's scores are mapped to
    /// 0..1 by the mean ± 3σ of its first [`NORM_DEPTH`] entries (an outlier above goes beyond
    /// 1), and the sum is kept within 0..1: as it is up to 0.9, pressed towards 1 above, in
    /// the same order (the default, see [`Fusion::from_config`]).
    Weighted {
        /// Weight of the vector score, 0..=1.
        vector_weight: f32,
    },
}

impl Fusion {
    /// The configured default fusion (`[search]`).
    pub fn from_config(c: &docent_config::SearchConfig) -> Self {
        match c.fusion {
            docent_config::FusionKind::Weighted => Self::Weighted {
                vector_weight: c.vector_weight,
            },
            docent_config::FusionKind::Rrf => Self::Rrf { k: c.rrf_k },
        }
    }

    /// The method's name in the API: `weighted` or `rrf`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rrf { .. } => "rrf",
            Self::Weighted { .. } => "weighted",
        }
    }
}

/// The entries of each ranking whose scores set the normalisation of weighted fusion, and the
/// fewest candidates asked of each index: a page's scores then do not depend on how deep the
/// lists were read for it, so pages agree with each other.
pub const NORM_DEPTH: usize = 100;

/// What one hit stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    /// Every matching chunk is a hit.
    #[default]
    Chunk,
    /// One hit per document: documents are ranked by their best chunk in each index, fused at
    /// document level, and shown with their best-scoring chunk.
    Document,
}

/// A search request.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// Free text.
    pub query: String,
    /// Only these collections (empty: all of the tenant's).
    pub collections: Vec<CollectionId>,
    /// Only these documents.
    pub documents: Vec<DocumentId>,
    /// Metadata conditions, all of which must hold.
    pub metadata: Vec<MetaFilter>,
    /// Only documents uploaded at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Only documents uploaded before.
    pub created_before: Option<DateTime<Utc>>,
    /// Hits per page.
    pub top_k: usize,
    /// Hits to skip (pagination).
    pub offset: usize,
    /// Indexes to use.
    pub mode: SearchMode,
    /// Fusion method; `None`: the configured default ([`Fusion::from_config`]).
    pub fusion: Option<Fusion>,
    /// Chunks or documents.
    pub group: Grouping,
}

impl SearchParams {
    /// Hybrid search for `query` with the default fusion, top 10.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            collections: Vec::new(),
            documents: Vec::new(),
            metadata: Vec::new(),
            created_after: None,
            created_before: None,
            top_k: 10,
            offset: 0,
            mode: SearchMode::Hybrid,
            fusion: None,
            group: Grouping::Chunk,
        }
    }
}

/// One index's view of a hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// 1-based rank in that index.
    pub rank: usize,
    /// Raw score there.
    pub score: f32,
}

/// A search hit.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The chunk.
    pub chunk: Chunk,
    /// Its document's file name.
    pub filename: String,
    /// Fused score: 0..1 with weighted fusion; `Σ 1 / (k + rank)` with reciprocal rank
    /// fusion, at most `2 / (k + 1)` (`1 / (k + 1)` when one index is searched).
    pub score: f32,
    /// BM25 signal, if the chunk was a keyword candidate.
    pub keyword: Option<Signal>,
    /// Vector signal, if it was a vector candidate.
    pub vector: Option<Signal>,
    /// A window of the chunk text around the matches.
    pub snippet: String,
    /// Char offset of the snippet within the chunk text.
    pub snippet_offset: usize,
    /// Matched terms as char ranges within the snippet.
    pub highlights: Vec<(usize, usize)>,
}

/// Search results.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// Hits of the requested page.
    pub hits: Vec<Hit>,
    /// The mode actually used (hybrid degrades to keyword without an embedder).
    pub mode: SearchMode,
    /// The fusion used: `None` unless the mode is hybrid.
    pub fusion: Option<Fusion>,
    /// Whether more hits exist after this page.
    pub has_more: bool,
}

/// The facts of a document that never change after its upload — file name, upload time and
/// metadata — as search hits need them, kept per process (bounded, idle entries dropped) so
/// that a search looks up only the documents it has not seen lately. Deleted documents need
/// no eviction: a hit is kept only while its chunk is in the store.
#[derive(Clone)]
pub struct DocumentFacts {
    cache: Arc<moka::future::Cache<(TenantId, DocumentId), Arc<Facts>>>,
}

struct Facts {
    filename: String,
    created_at: DateTime<Utc>,
    metadata: Metadata,
}

impl Default for DocumentFacts {
    fn default() -> Self {
        Self {
            // Weighed in bytes (metadata can be large): 64 MiB at most.
            cache: Arc::new(
                moka::future::Cache::builder()
                    .max_capacity(64 * 1024 * 1024)
                    .weigher(|_, f: &Arc<Facts>| {
                        let meta: usize =
                            f.metadata.iter().map(|(k, v)| k.len() + json_size(v)).sum();
                        u32::try_from(64 + f.filename.len() + meta).unwrap_or(u32::MAX)
                    })
                    .time_to_idle(std::time::Duration::from_secs(600))
                    .build(),
            ),
        }
    }
}

/// Roughly the memory a JSON value holds, in bytes.
fn json_size(v: &serde_json::Value) -> usize {
    use serde_json::Value as V;
    match v {
        V::Null | V::Bool(_) | V::Number(_) => 16,
        V::String(s) => 24 + s.len(),
        V::Array(a) => 24 + a.iter().map(json_size).sum::<usize>(),
        V::Object(o) => 48 + o.iter().map(|(k, v)| k.len() + json_size(v)).sum::<usize>(),
    }
}

/// Largest `top_k`.
pub const MAX_TOP_K: usize = 100;
/// Largest `offset`.
pub const MAX_OFFSET: usize = 1000;
/// Longest query, in characters (`query_too_long` beyond). Every word of a query is a term of
/// the keyword query and is stemmed for highlighting, so cost grows with length (a 1 MB query
/// took 13 s of CPU); the embedding model reads only its first 256 word pieces anyway.
pub const MAX_QUERY_CHARS: usize = 2048;

/// Refuses a query longer than [`MAX_QUERY_CHARS`] with `query_too_long`; `what` names the
/// field.
pub fn check_query_length(query: &str, what: &str) -> Result<()> {
    // Bytes bound chars from above: most queries are decided without counting.
    if query.len() > MAX_QUERY_CHARS && query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::new(
            Code::QueryTooLong,
            format!("`{what}` must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(())
}

type Fused = (ChunkId, f32, Option<Signal>, Option<Signal>);

/// Fuses the rankings, per chunk or per document. `kw_docs` is the whole-document BM25
/// ranking (used when grouping by document; the chunk lists then only pick each document's
/// best chunk).
fn fuse(
    kw: &[ScoredChunk],
    vec: &[ScoredChunk],
    kw_docs: &[ScoredDocument],
    fusion: Fusion,
    group: Grouping,
) -> Vec<Fused> {
    let by_chunk = fuse_lists(kw, vec, fusion, (NORM_DEPTH, NORM_DEPTH));
    if group == Grouping::Chunk {
        return by_chunk;
    }
    // A document is shown with its best chunk after chunk-level fusion (or its first, when
    // only its whole text matched). Documents are ranked by fusing whole-document BM25 with
    // the vector list collapsed to documents (each at the rank of its best chunk), so a
    // document split into many chunks neither crowds out others nor loses the words that are
    // spread over its chunks.
    let mut best: HashMap<DocumentId, ChunkId> = HashMap::new();
    for f in &by_chunk {
        best.entry(f.0.document).or_insert(f.0);
    }
    let rep = |d: DocumentId| {
        best.get(&d).copied().unwrap_or(ChunkId {
            document: d,
            ordinal: 0,
        })
    };
    let docs: Vec<ScoredChunk> = kw_docs
        .iter()
        .map(|d| ScoredChunk {
            id: rep(d.id),
            score: d.score,
        })
        .collect();
    let mut seen = HashSet::new();
    // The documents of the vector list's first NORM_DEPTH chunks set its normalisation, so
    // that a deeper read of the chunk list leaves them alone.
    let mut vec_head = 0;
    let vec_docs: Vec<ScoredChunk> = vec
        .iter()
        .enumerate()
        .filter(|&(i, s)| {
            let first = seen.insert(s.id.document);
            vec_head += usize::from(first && i < NORM_DEPTH);
            first
        })
        .map(|(_, s)| ScoredChunk {
            id: rep(s.id.document),
            score: s.score,
        })
        .collect();
    fuse_lists(&docs, &vec_docs, fusion, (NORM_DEPTH, vec_head))
}

/// Fuses two rankings; `heads` are the entries of each whose scores set its normalisation in
/// weighted fusion. A ranking fused with an empty one keeps its order (a single-index search,
/// or one index without candidates): in weighted fusion it then counts whole.
fn fuse_lists(
    kw: &[ScoredChunk],
    vec: &[ScoredChunk],
    fusion: Fusion,
    heads: (usize, usize),
) -> Vec<Fused> {
    let mut map: HashMap<ChunkId, (f32, Option<Signal>, Option<Signal>)> = HashMap::new();
    // Distribution-based normalisation: the mean ± 3 standard deviations of a list's first
    // NORM_DEPTH scores map to 0..1 (lower scores deeper down count 0, as if absent; an
    // outlier above goes beyond 1, keeping its lead: clamping it to 1 cost SciFact 0.018
    // nDCG@10), so one outlying score does not squash the rest as min-max scaling would, and a
    // deeper read of the list (a later page) leaves the scores of its head unchanged. The
    // weighted sum is bounded afterwards ([`bounded`]), which keeps the order.
    let norm = |list: &[ScoredChunk], head: usize| -> Vec<f32> {
        let head = &list[..list.len().min(head.max(1))];
        let n = head.len().max(1) as f32;
        let mean = head.iter().map(|s| s.score).sum::<f32>() / n;
        let sd = (head.iter().map(|s| (s.score - mean).powi(2)).sum::<f32>() / n).sqrt();
        let (lo, hi) = (mean - 3.0 * sd, mean + 3.0 * sd);
        list.iter()
            .map(|s| {
                if hi > lo {
                    ((s.score - lo) / (hi - lo)).max(0.0)
                } else if s.score >= lo {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    };
    let (kw_weight, vec_weight) = match fusion {
        Fusion::Weighted { .. } if kw.is_empty() || vec.is_empty() => (1.0, 1.0),
        Fusion::Weighted { vector_weight } => (1.0 - vector_weight, vector_weight),
        Fusion::Rrf { .. } => (1.0, 1.0),
    };
    let lists = [
        (kw, heads.0, kw_weight, false),
        (vec, heads.1, vec_weight, true),
    ];
    for (list, head, weight, is_vector) in lists {
        let normed = match fusion {
            Fusion::Weighted { .. } => norm(list, head),
            Fusion::Rrf { .. } => Vec::new(),
        };
        for (i, s) in list.iter().enumerate() {
            let contrib = match fusion {
                Fusion::Rrf { k } => 1.0 / (k + (i + 1) as f32),
                Fusion::Weighted { .. } => weight * normed[i],
            };
            let e = map.entry(s.id).or_insert((0.0, None, None));
            e.0 += contrib;
            let signal = Some(Signal {
                rank: i + 1,
                score: s.score,
            });
            if is_vector {
                e.2 = signal;
            } else {
                e.1 = signal;
            }
        }
    }
    let weighted = matches!(fusion, Fusion::Weighted { .. });
    let mut out: Vec<_> = map
        .into_iter()
        .map(|(id, (s, k, v))| (id, if weighted { bounded(s) } else { s }, k, v))
        .collect();
    // Ties (e.g. deep entries that all normalise to 0) go to the better rank in either list,
    // then to the chunk id descending (trec_eval's docid convention), so results are stable.
    let best_rank = |f: &Fused| {
        f.2.map_or(usize::MAX, |s| s.rank)
            .min(f.3.map_or(usize::MAX, |s| s.rank))
    };
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| best_rank(a).cmp(&best_rank(b)))
            .then_with(|| b.0.cmp(&a.0))
    });
    out
}

/// A weighted fusion score within 0..1: unchanged up to 0.9; above, pressed towards 1 as
/// `1 − 0.01 / (s − 0.8)` (continuous, with the same slope at 0.9), so outliers beyond their
/// list's mean + 3σ keep their order and their lead over the rest without reaching 1.
fn bounded(s: f32) -> f32 {
    if s <= 0.9 { s } else { 1.0 - 0.01 / (s - 0.8) }
}

/// Lowercased word stems of a text, for highlighting (suffix stripping, not a full stemmer).
pub fn stem(word: &str) -> String {
    let mut w = String::with_capacity(word.len());
    stem_into(word, &mut w);
    w
}

/// [`stem`] into a buffer the caller reuses (cleared first).
fn stem_into(word: &str, out: &mut String) {
    out.clear();
    if word.is_ascii() {
        out.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        // `str::to_lowercase` knows context rules (a word-final Σ is ς) that per-char
        // lowercasing does not.
        out.push_str(&word.to_lowercase());
    }
    for suffix in ["ing", "ed", "es", "ly", "s"] {
        if out.len() > suffix.len() + 2 && out.ends_with(suffix) {
            out.truncate(out.len() - suffix.len());
            return;
        }
    }
}

const STOP: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it", "of",
    "on", "or", "that", "the", "this", "to", "was", "what", "when", "where", "which", "who", "why",
    "with", "do", "does", "did", "i", "you",
];

/// Cache key of a query's vector: the tenant's own, with the model and query hashed.
pub fn query_vector_key(tenant: TenantId, model: &str, query: &str) -> String {
    format!("qvec:v2:{tenant}:{}", crate::key_hash(&[model, query]))
}

/// Distinct query terms (stemmed, stop words dropped).
pub fn query_terms(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !STOP.contains(&w.to_lowercase().as_str()))
        .map(stem)
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Words of `text` as `(char_start, char_end, stem)`.
pub fn words(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (char index, byte index)
    for (ci, (bi, c)) in text.char_indices().enumerate() {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some((ci, bi));
            }
        } else if let Some((cs, bs)) = start.take() {
            out.push((cs, ci, stem(&text[bs..bi])));
        }
    }
    if let Some((cs, bs)) = start {
        out.push((cs, text.chars().count(), stem(&text[bs..])));
    }
    out
}

const SNIPPET_CHARS: usize = 320;

/// Char spans of the words of `text` whose stem is one of `terms` (one stem buffer for all
/// words: this runs over every hit's text).
fn matching_words(text: &str, terms: &[String]) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut start: Option<(usize, usize)> = None; // (char index, byte index)
    let mut chars = 0;
    let mut check = |cs: usize, ce: usize, word: &str, out: &mut Vec<(usize, usize)>| {
        stem_into(word, &mut buf);
        if terms.contains(&buf) {
            out.push((cs, ce));
        }
    };
    for (bi, c) in text.char_indices() {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some((chars, bi));
            }
        } else if let Some((cs, bs)) = start.take() {
            check(cs, chars, &text[bs..bi], &mut out);
        }
        chars += 1;
    }
    if let Some((cs, bs)) = start {
        check(cs, chars, &text[bs..], &mut out);
    }
    (out, chars)
}

/// A window of `text` around the first match, and the matches within it.
pub fn snippet(text: &str, terms: &[String]) -> (String, usize, Vec<(usize, usize)>) {
    let (matches, total) = matching_words(text, terms);
    let start = if total <= SNIPPET_CHARS {
        0
    } else {
        let first = matches.first().map_or(0, |m| m.0);
        let mut s = first
            .saturating_sub(SNIPPET_CHARS / 4)
            .min(total - SNIPPET_CHARS);
        // Start at a word boundary.
        let mut rest = text.chars().skip(s.saturating_sub(1));
        if s > 0 {
            let mut prev = rest.next();
            while s < total && prev.is_some_and(char::is_alphanumeric) {
                prev = rest.next();
                s += 1;
            }
        }
        s
    };
    let end = (start + SNIPPET_CHARS).min(total);
    let snippet: String = text.chars().skip(start).take(end - start).collect();
    let highlights = matches
        .into_iter()
        .filter(|&(a, b)| a >= start && b <= end)
        .map(|(a, b)| (a - start, b - start))
        .collect();
    (snippet, start, highlights)
}

impl Services {
    /// Runs a search in the scope (a tenant, or an API key's collections).
    pub async fn search<'s>(
        &self,
        scope: impl Into<docent_domain::auth::Scope<'s>>,
        p: &SearchParams,
    ) -> Result<SearchResults> {
        let scope = scope.into();
        let tenant = scope.tenant;
        if p.query.trim().is_empty() {
            return Err(Error::new(Code::InvalidField, "`query` must not be empty"));
        }
        check_query_length(&p.query, "query")?;
        if p.top_k == 0 || p.top_k > MAX_TOP_K {
            return Err(Error::new(
                Code::InvalidField,
                format!("`top_k` must be between 1 and {MAX_TOP_K}"),
            ));
        }
        if p.offset > MAX_OFFSET {
            return Err(Error::new(
                Code::InvalidField,
                format!("`offset` must be at most {MAX_OFFSET}"),
            ));
        }
        let scoped = crate::scope::search_within(scope, p)?;
        let Some(p) = scoped.as_deref() else {
            return Ok(SearchResults {
                hits: Vec::new(),
                mode: p.mode,
                fusion: None,
                has_more: false,
            });
        };
        for c in &p.collections {
            self.store.get_collection(tenant, *c).await?;
        }
        let mode = match (p.mode, &self.embedder) {
            (SearchMode::Vector, None) => {
                return Err(Error::new(
                    Code::EmbedderNotConfigured,
                    "vector search needs an embedder: set [embedder] kind = \"local\"",
                ));
            }
            (SearchMode::Hybrid, None) => SearchMode::Keyword,
            (m, _) => m,
        };
        let filter = IndexFilter {
            collections: p.collections.clone(),
            documents: p.documents.clone(),
            metadata: p.metadata.clone(),
            created_after: p.created_after,
            created_before: p.created_before,
        };
        // Conditions the index does not apply itself are checked on its hits: ask for more.
        let post_filtered = filter.has_conditions() && !self.index.filters_metadata();
        let wanted = p.offset + p.top_k + 1;
        let mut depth = (wanted * 3).max(NORM_DEPTH);
        if post_filtered {
            depth *= 5;
        }
        let query_vec = match (mode, &self.embedder) {
            (SearchMode::Hybrid | SearchMode::Vector, Some(e)) => {
                Some(for_tenant(tenant, self.embed_query(tenant, e.as_ref(), &p.query)).await?)
            }
            _ => None,
        };
        let fusion = p
            .fusion
            .unwrap_or_else(|| Fusion::from_config(&self.config.search));
        let terms = query_terms(&p.query);
        let by_document = p.group == Grouping::Document;
        loop {
            let (kw, kw_docs, vec) = tokio::try_join!(
                async {
                    match mode {
                        SearchMode::Vector => Ok(Vec::new()),
                        _ => self.index.keyword(tenant, &filter, &p.query, depth).await,
                    }
                },
                async {
                    match mode {
                        SearchMode::Keyword | SearchMode::Hybrid if by_document => {
                            self.index
                                .keyword_documents(tenant, &filter, &p.query, depth)
                                .await
                        }
                        _ => Ok(Vec::new()),
                    }
                },
                async {
                    match &query_vec {
                        Some(q) => self.index.vector(tenant, &filter, q, depth).await,
                        None => Ok(Vec::new()),
                    }
                }
            )?;
            let exhausted = kw.len() < depth && kw_docs.len() < depth && vec.len() < depth;
            let fused = fuse(&kw, &vec, &kw_docs, fusion, p.group);
            let hits = self.hydrate(tenant, p, &fused, &terms, wanted).await?;
            if hits.len() >= wanted || exhausted || depth >= 20_000 {
                let has_more = hits.len() > p.offset + p.top_k;
                let hits = hits.into_iter().skip(p.offset).take(p.top_k).collect();
                return Ok(SearchResults {
                    hits,
                    mode,
                    fusion: (mode == SearchMode::Hybrid).then_some(fusion),
                    has_more,
                });
            }
            depth *= 4;
        }
    }

    /// The query's vector, cached per tenant: a vector shared between tenants would answer
    /// another tenant's repeat of a query faster (no model call), telling it that someone
    /// searched exactly that within the last ten minutes. The key holds a hash of the model
    /// and query, never the query itself (bounded keys; no user text in a shared cache).
    async fn embed_query(
        &self,
        tenant: TenantId,
        embedder: &dyn docent_domain::ports::Embedder,
        query: &str,
    ) -> Result<Vec<f32>> {
        let key = query_vector_key(tenant, embedder.model_id(), query);
        if let Some(bytes) = self.cache_get(&key).await {
            return Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect());
        }
        let v = embedder
            .embed(&[query.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| Error::internal("no query vector"))?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.cache_put(&key, bytes.into(), std::time::Duration::from_secs(600))
            .await;
        Ok(v)
    }

    /// Loads fused candidates in rank order, applying post-filters, until `wanted` pass.
    async fn hydrate(
        &self,
        tenant: TenantId,
        p: &SearchParams,
        fused: &[Fused],
        terms: &[String],
        wanted: usize,
    ) -> Result<Vec<Hit>> {
        let mut hits = Vec::new();
        let mut docs: HashMap<DocumentId, Arc<Facts>> = HashMap::new();
        for batch in fused.chunks(wanted.max(16)) {
            let ids: Vec<ChunkId> = batch.iter().map(|f| f.0).collect();
            let chunks: HashMap<ChunkId, Chunk> = self
                .store
                .get_chunks(tenant, &ids)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
            let mut missing = Vec::new();
            for d in batch.iter().map(|f| f.0.document) {
                if docs.contains_key(&d) || missing.contains(&d) {
                    continue;
                }
                match self.facts.cache.get(&(tenant, d)).await {
                    Some(f) => {
                        docs.insert(d, f);
                    }
                    None => missing.push(d),
                }
            }
            if !missing.is_empty() {
                for d in self.store.get_documents(tenant, &missing).await? {
                    let f = Arc::new(Facts {
                        filename: d.filename,
                        created_at: d.created_at,
                        metadata: d.metadata,
                    });
                    self.facts.cache.insert((tenant, d.id), f.clone()).await;
                    docs.insert(d.id, f);
                }
            }
            for (id, score, kw, vec) in batch {
                // A chunk in the index but gone from the store (deleted mid-search) is skipped.
                let (Some(chunk), Some(doc)) = (chunks.get(id), docs.get(&id.document)) else {
                    continue;
                };
                if p.created_after.is_some_and(|t| doc.created_at < t)
                    || p.created_before.is_some_and(|t| doc.created_at >= t)
                {
                    continue;
                }
                if !p.metadata.is_empty() {
                    let meta = crate::ingest::overlay(&doc.metadata, &chunk.metadata);
                    if !p.metadata.iter().all(|f| meta_matches(&meta, f)) {
                        continue;
                    }
                }
                let (snippet, snippet_offset, highlights) = snippet(&chunk.text, terms);
                hits.push(Hit {
                    chunk: chunk.clone(),
                    filename: doc.filename.clone(),
                    score: *score,
                    keyword: *kw,
                    vector: *vec,
                    snippet,
                    snippet_offset,
                    highlights,
                });
                if hits.len() >= wanted {
                    return Ok(hits);
                }
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let d = DocumentId::new();
        let id = |o| ChunkId {
            document: d,
            ordinal: o,
        };
        let kw = vec![
            ScoredChunk {
                id: id(1),
                score: 9.0,
            },
            ScoredChunk {
                id: id(2),
                score: 5.0,
            },
        ];
        let vec = vec![
            ScoredChunk {
                id: id(2),
                score: 0.9,
            },
            ScoredChunk {
                id: id(3),
                score: 0.8,
            },
        ];
        let fused = fuse(&kw, &vec, &[], Fusion::Rrf { k: 60.0 }, Grouping::Chunk);
        assert_eq!(fused[0].0, id(2), "in both lists beats first in one");
        assert_eq!(fused[0].2.unwrap().rank, 2);
        assert_eq!(fused[0].3.unwrap().rank, 1);
        let weighted = fuse(
            &kw,
            &vec,
            &[],
            Fusion::Weighted { vector_weight: 1.0 },
            Grouping::Chunk,
        );
        assert_eq!(weighted[0].0, id(2));
    }

    #[test]
    fn weighted_scores_of_the_head_do_not_depend_on_the_depth_read() {
        let doc = DocumentId::new();
        // A tightly spread head, then a tail far below its range.
        let list = |n: usize, scale: f32| -> Vec<ScoredChunk> {
            (0..n)
                .map(|i| ScoredChunk {
                    id: ChunkId {
                        document: doc,
                        ordinal: i as u32,
                    },
                    score: scale
                        * if i < NORM_DEPTH {
                            1.0 - 0.001 * i as f32
                        } else {
                            0.1 - 0.0001 * i as f32
                        },
                })
                .collect()
        };
        let w = Fusion::Weighted { vector_weight: 0.5 };
        let shallow = fuse(
            &list(NORM_DEPTH, 20.0),
            &list(NORM_DEPTH, 0.9),
            &[],
            w,
            Grouping::Chunk,
        );
        let deep = fuse(
            &list(4 * NORM_DEPTH, 20.0),
            &list(4 * NORM_DEPTH, 0.9),
            &[],
            w,
            Grouping::Chunk,
        );
        assert_eq!(deep.len(), 4 * NORM_DEPTH);
        for (a, b) in shallow.iter().zip(&deep) {
            assert_eq!((a.0, a.1), (b.0, b.1), "the head is scored alike");
        }
        let tail = &deep[NORM_DEPTH..];
        assert!(
            tail.iter().all(|f| f.1 == 0.0),
            "scores below the head's range count as 0, never less than being absent"
        );
        let ordinals: Vec<u32> = tail.iter().map(|f| f.0.ordinal).collect();
        assert!(
            ordinals.windows(2).all(|w| w[0] < w[1]),
            "tied entries keep their rank order"
        );
    }

    #[test]
    fn one_ranking_alone_keeps_its_order_under_weighted_fusion() {
        let doc = DocumentId::new();
        let kw: Vec<ScoredChunk> = (0..5)
            .map(|i| ScoredChunk {
                id: ChunkId {
                    document: doc,
                    ordinal: i,
                },
                score: 10.0 - i as f32,
            })
            .collect();
        for w in [0.0, 0.5, 1.0] {
            let fused = fuse(
                &kw,
                &[],
                &[],
                Fusion::Weighted { vector_weight: w },
                Grouping::Chunk,
            );
            let order: Vec<u32> = fused.iter().map(|f| f.0.ordinal).collect();
            assert_eq!(order, vec![0, 1, 2, 3, 4], "weight {w}");
            assert!(fused.windows(2).all(|p| p[0].1 > p[1].1), "weight {w}");
        }
    }

    #[test]
    fn weighted_scores_stay_within_0_and_1_beside_an_outlier() {
        let doc = DocumentId::new();
        let list = |top: f32| -> Vec<ScoredChunk> {
            // One score far above 30 alike: beyond the mean + 3σ of the head.
            (0..31)
                .map(|i| ScoredChunk {
                    id: ChunkId {
                        document: doc,
                        ordinal: i,
                    },
                    score: if i == 0 { top } else { 1.0 - i as f32 * 0.001 },
                })
                .collect()
        };
        for (kw, vec) in [(list(50.0), list(5.0)), (list(50.0), Vec::new())] {
            for w in [0.0, 0.3, 1.0] {
                let fused = fuse(
                    &kw,
                    &vec,
                    &[],
                    Fusion::Weighted { vector_weight: w },
                    Grouping::Chunk,
                );
                assert_eq!(fused[0].0.ordinal, 0);
                assert!(
                    fused.iter().all(|f| (0.0..=1.0).contains(&f.1)),
                    "weight {w}: {:?}",
                    fused.iter().map(|f| f.1).collect::<Vec<_>>()
                );
                let order: Vec<u32> = fused.iter().map(|f| f.0.ordinal).collect();
                assert_eq!(order, (0..31).collect::<Vec<_>>(), "the order stays");
            }
        }
        // The bound keeps scores up to 0.9 and the order of those above.
        assert_eq!(bounded(0.5), 0.5);
        assert_eq!(bounded(0.9), 0.9);
        let above: Vec<f32> = [0.91, 1.0, 1.5, 3.0, 20.0].map(bounded).to_vec();
        assert!(
            above
                .windows(2)
                .all(|p| 0.9 < p[0] && p[0] < p[1] && p[1] < 1.0)
        );
    }

    #[test]
    fn document_grouping_ranks_documents_not_chunks() {
        let (a, b, c, d) = (
            DocumentId::new(),
            DocumentId::new(),
            DocumentId::new(),
            DocumentId::new(),
        );
        let sc = |document, ordinal, score| ScoredChunk {
            id: ChunkId { document, ordinal },
            score,
        };
        let sd = |id, score| ScoredDocument { id, score };
        // Document a fills the top of the chunk keyword list with three chunks; by whole text,
        // b leads. d matches only by its whole text.
        let kw = vec![sc(a, 0, 9.0), sc(a, 1, 8.0), sc(a, 2, 7.0), sc(b, 5, 6.0)];
        let vec = vec![sc(b, 4, 0.9), sc(c, 0, 0.85), sc(a, 2, 0.8)];
        let kw_docs = vec![sd(b, 12.0), sd(a, 11.0), sd(d, 3.0)];
        let chunks = fuse(
            &kw,
            &vec,
            &kw_docs,
            Fusion::Rrf { k: 60.0 },
            Grouping::Chunk,
        );
        assert_eq!(
            chunks.len(),
            6,
            "per chunk, whole-document entries play no part"
        );
        assert_eq!(
            chunks[0].0.document, a,
            "per chunk, a's chunk in both lists leads"
        );
        let docs = fuse(
            &kw,
            &vec,
            &kw_docs,
            Fusion::Rrf { k: 60.0 },
            Grouping::Document,
        );
        let order: Vec<DocumentId> = docs.iter().map(|f| f.0.document).collect();
        assert_eq!(order, vec![b, a, c, d], "one entry per document");
        assert_eq!(docs[0].2.unwrap().rank, 1, "whole-document BM25 rank");
        assert_eq!(docs[0].3.unwrap().rank, 1, "vector rank among documents");
        assert_eq!(docs[0].0.ordinal, 4, "b shows its best chunk");
        assert_eq!(
            docs[1].0,
            ChunkId {
                document: a,
                ordinal: 2
            },
            "a document shows its best chunk after chunk-level fusion"
        );
        assert_eq!(docs[3].0.ordinal, 0, "no matching chunk: the first one");
    }

    #[test]
    fn snippets_highlight_stems() {
        let terms = query_terms("What are the leave policies?");
        assert_eq!(terms, vec!["leave", "polici"]);
        let (s, off, hl) = snippet("Our policies on leaving: leave is 25 days.", &terms);
        assert_eq!(off, 0);
        let marked: Vec<String> = hl
            .iter()
            .map(|&(a, b)| s.chars().skip(a).take(b - a).collect())
            .collect();
        assert_eq!(marked, vec!["policies", "leave"]);
        let long = format!(
            "{} the needle is here {}",
            "word ".repeat(200),
            "tail ".repeat(200)
        );
        let (s, off, hl) = snippet(&long, &query_terms("needle"));
        assert!(off > 0 && s.contains("needle") && hl.len() == 1);
        // Starts at a word boundary: not inside "wordword".
        let glued = format!("{}needle{}", "wordword ".repeat(40), " x".repeat(300));
        let (s, off, _) = snippet(&glued, &query_terms("needle"));
        assert!(
            s.starts_with("wordword") || s.starts_with("needle"),
            "{off}: {s}"
        );
    }

    #[test]
    fn matching_words_agree_with_words() {
        let text = "Ärzte ÉTUDIANTS running ran; leave-policies 25 days, Straße—naïve résumés.";
        let terms = query_terms("arzte etudiant run leave polici 25 strasse naive resum");
        let want: Vec<(usize, usize)> = words(text)
            .into_iter()
            .filter(|(_, _, s)| terms.contains(s))
            .map(|(a, b, _)| (a, b))
            .collect();
        let (got, total) = matching_words(text, &terms);
        assert_eq!(got, want);
        assert!(!got.is_empty());
        assert_eq!(total, text.chars().count());
    }
}
