//! `/api/v1/search`, `/api/v1/collections/{id}/search`, `/api/v1/ask` and
//! `/api/v1/documents/{id}/summary`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use docent_config::{FusionKind, SearchConfig};
use docent_core::answer::SummaryState;
use docent_core::search::{Fusion, Grouping, Hit, MetaFilter, MetaOp, SearchMode, SearchParams};
use docent_domain::{Code, CollectionId, DocumentId, Principal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::dto::Task;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Auth, id};

/// A search (or question) and its filters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Free text, at most 2048 characters (`query_too_long` beyond).
    pub query: String,
    /// Only these collections (default: all).
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Only these documents.
    #[serde(default)]
    pub document_ids: Vec<String>,
    /// Metadata conditions: `{"team": "hr", "year": {"gte": 2020, "lt": 2024}, "lang": {"in": ["en", "de"]}}`.
    /// Document metadata, overlaid with chunk metadata (record fields).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Only documents uploaded at or after (RFC 3339).
    #[serde(default)]
    pub created_after: Option<DateTime<Utc>>,
    /// Only documents uploaded before (RFC 3339).
    #[serde(default)]
    pub created_before: Option<DateTime<Utc>>,
    /// Hits to return (1–100, default 10).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Hits to skip (pagination, at most 1000).
    #[serde(default)]
    pub offset: Option<usize>,
    /// `hybrid` (default), `keyword` or `vector`.
    #[serde(default)]
    pub mode: Option<String>,
    /// How hybrid search combines its rankings: `weighted` (normalised scores; the default
    /// unless the server's `[search] fusion` says otherwise) or `rrf` (reciprocal rank
    /// fusion). Without it, `rrf_k` alone means `rrf` and `vector_weight` alone `weighted`.
    #[serde(default)]
    pub fusion: Option<String>,
    /// Constant `k` of `rrf` fusion, at least 0 (default: the server's `[search] rrf_k`, 60);
    /// given alone, it selects `rrf`.
    #[serde(default)]
    pub rrf_k: Option<f32>,
    /// Weight of the vector score in `weighted` fusion, 0–1 (default: the server's `[search]
    /// vector_weight`, 0.5); given alone, it selects `weighted`.
    #[serde(default)]
    pub vector_weight: Option<f32>,
    /// `chunk` (default: every matching chunk is a hit) or `document` (one hit per document,
    /// its best chunk; documents ranked by fusing each index's document ranking).
    #[serde(default)]
    pub group_by: Option<String>,
    /// Include each index's rank and score.
    #[serde(default)]
    pub explain: bool,
}

/// One index's contribution to a hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalDto {
    /// 1-based rank in that index.
    pub rank: usize,
    /// Raw score (BM25, or cosine similarity).
    pub score: f32,
}

/// Score breakdown of a hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreBreakdown {
    /// BM25.
    pub keyword: Option<SignalDto>,
    /// Vector.
    pub vector: Option<SignalDto>,
}

/// A search hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    /// 1-based rank (offset included).
    pub rank: usize,
    /// Fused score, by the `fusion` of the response: 0–1 with `weighted` (each index's scores
    /// normalised by the mean ± 3σ of its first 100, weighted by `vector_weight` and
    /// `1 − vector_weight` and summed; a sum above 0.9, from a score beyond its index's
    /// mean + 3σ, is pressed towards 1 in the same order); with `rrf`, `Σ 1 / (k + rank)` over
    /// the indexes that found the chunk, at most `2 / (k + 1)`. A
    /// keyword- or vector-only search (`fusion` null) scores its one ranking the same way, by
    /// the fusion asked for or the server's default.
    pub score: f32,
    /// Document.
    pub document_id: String,
    /// Its file name.
    pub filename: String,
    /// Collection.
    pub collection_id: String,
    /// Chunk id.
    pub chunk_id: String,
    /// Page, when known.
    pub page: Option<u32>,
    /// Start char offset of the chunk in the document's extracted text.
    pub char_start: u64,
    /// End char offset (exclusive).
    pub char_end: u64,
    /// Headings above the chunk.
    pub heading_path: Vec<String>,
    /// The chunk text.
    pub text: String,
    /// A window of the text around the matches.
    pub snippet: String,
    /// Matched words as `[start, end)` char ranges within `snippet`.
    pub highlights: Vec<[usize; 2]>,
    /// Chunk metadata (record fields).
    pub metadata: Map<String, Value>,
    /// With `explain`: each index's rank and score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<ScoreBreakdown>,
}

/// Search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Hits.
    pub hits: Vec<SearchHit>,
    /// Mode used (`hybrid` becomes `keyword` when no embedder is configured).
    pub mode: String,
    /// Fusion used (`weighted` or `rrf`) when the mode is `hybrid`.
    pub fusion: Option<String>,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

fn meta_filters(m: &Map<String, Value>) -> Result<Vec<MetaFilter>, ApiError> {
    let bad = |k: &str| {
        ApiError::new(
            Code::InvalidField,
            format!("`metadata.{k}`: use a value, or an object of gt/gte/lt/lte/in/eq"),
        )
    };
    let mut out = Vec::new();
    for (key, v) in m {
        match v {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(bad(key));
                }
                for (op, x) in ops {
                    let op = match op.as_str() {
                        "eq" => MetaOp::Eq(x.clone()),
                        "gt" => MetaOp::Gt(x.clone()),
                        "gte" => MetaOp::Gte(x.clone()),
                        "lt" => MetaOp::Lt(x.clone()),
                        "lte" => MetaOp::Lte(x.clone()),
                        "in" => MetaOp::In(x.as_array().cloned().ok_or_else(|| bad(key))?),
                        _ => return Err(bad(key)),
                    };
                    out.push(MetaFilter {
                        key: key.clone(),
                        op,
                    });
                }
            }
            other => out.push(MetaFilter {
                key: key.clone(),
                op: MetaOp::Eq(other.clone()),
            }),
        }
    }
    Ok(out)
}

fn field_id<T: std::str::FromStr>(raw: &str, field: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            Code::InvalidField,
            format!("`{field}` contains an invalid id"),
        )
    })
}

/// Validates a request into search parameters; a fusion the request leaves open takes the
/// server's `[search]` values.
pub(crate) fn params(
    r: SearchRequest,
    collection: Option<CollectionId>,
    defaults: &SearchConfig,
) -> Result<SearchParams, ApiError> {
    let mut p = SearchParams::new(r.query);
    p.collections = match collection {
        Some(c) => vec![c],
        None => r
            .collection_ids
            .iter()
            .map(|c| field_id(c, "collection_ids"))
            .collect::<Result<_, _>>()?,
    };
    p.documents = r
        .document_ids
        .iter()
        .map(|d| field_id(d, "document_ids"))
        .collect::<Result<_, _>>()?;
    p.metadata = meta_filters(&r.metadata)?;
    p.created_after = r.created_after;
    p.created_before = r.created_before;
    p.top_k = r.top_k.unwrap_or(10);
    p.offset = r.offset.unwrap_or(0);
    p.mode = match r.mode.as_deref() {
        None | Some("hybrid") => SearchMode::Hybrid,
        Some("keyword") => SearchMode::Keyword,
        Some("vector") => SearchMode::Vector,
        Some(_) => {
            return Err(ApiError::new(
                Code::InvalidField,
                "`mode` must be hybrid, keyword or vector",
            ));
        }
    };
    p.group = match r.group_by.as_deref() {
        None | Some("chunk") => Grouping::Chunk,
        Some("document") => Grouping::Document,
        Some(_) => {
            return Err(ApiError::new(
                Code::InvalidField,
                "`group_by` must be chunk or document",
            ));
        }
    };
    // A parameter of one fusion names it; a parameter of the other is refused below.
    let kind = match r.fusion.as_deref() {
        Some("rrf") => Some(FusionKind::Rrf),
        Some("weighted") => Some(FusionKind::Weighted),
        Some(_) => {
            return Err(ApiError::new(
                Code::InvalidField,
                "`fusion` must be weighted or rrf",
            ));
        }
        None if r.rrf_k.is_some() => Some(FusionKind::Rrf),
        None if r.vector_weight.is_some() => Some(FusionKind::Weighted),
        None => None,
    };
    p.fusion = match kind {
        None => None,
        Some(FusionKind::Rrf) if r.vector_weight.is_some() => {
            return Err(ApiError::new(
                Code::InvalidField,
                "`vector_weight` is for `weighted` fusion, not `rrf`",
            ));
        }
        Some(FusionKind::Weighted) if r.rrf_k.is_some() => {
            return Err(ApiError::new(
                Code::InvalidField,
                "`rrf_k` is for `rrf` fusion, not `weighted`",
            ));
        }
        Some(FusionKind::Rrf) => {
            let k = r.rrf_k.unwrap_or(defaults.rrf_k);
            if !(k >= 0.0 && k.is_finite()) {
                return Err(ApiError::new(
                    Code::InvalidField,
                    "`rrf_k` must be a number of at least 0",
                ));
            }
            Some(Fusion::Rrf { k })
        }
        Some(FusionKind::Weighted) => {
            let w = r.vector_weight.unwrap_or(defaults.vector_weight);
            if !(0.0..=1.0).contains(&w) {
                return Err(ApiError::new(
                    Code::InvalidField,
                    "`vector_weight` must be between 0 and 1",
                ));
            }
            Some(Fusion::Weighted { vector_weight: w })
        }
    };
    Ok(p)
}

fn hit_dto(rank: usize, h: Hit, explain: bool) -> SearchHit {
    let signal = |s: Option<docent_core::search::Signal>| {
        s.map(|s| SignalDto {
            rank: s.rank,
            score: s.score,
        })
    };
    SearchHit {
        rank,
        score: h.score,
        document_id: h.chunk.id.document.to_string(),
        filename: h.filename,
        collection_id: h.chunk.collection_id.to_string(),
        chunk_id: h.chunk.id.to_string(),
        page: h.chunk.page,
        char_start: h.chunk.char_start,
        char_end: h.chunk.char_end,
        heading_path: h.chunk.heading_path,
        text: h.chunk.text,
        snippet: h.snippet,
        highlights: h.highlights.into_iter().map(|(a, b)| [a, b]).collect(),
        metadata: h.chunk.metadata,
        scores: explain.then(|| ScoreBreakdown {
            keyword: signal(h.keyword),
            vector: signal(h.vector),
        }),
    }
}

pub(crate) async fn run(
    services: &docent_core::Services,
    principal: &Principal,
    r: SearchRequest,
    collection: Option<CollectionId>,
) -> ApiResult<SearchResponse> {
    let explain = r.explain;
    let p = params(r, collection, &services.config.search)?;
    // The service narrows the search to the principal's scope (an API key's collections).
    let res = services.search(principal, &p).await?;
    let next_offset = res.has_more.then_some(p.offset + p.top_k);
    let hits = res
        .hits
        .into_iter()
        .enumerate()
        .map(|(i, h)| hit_dto(p.offset + i + 1, h, explain))
        .collect();
    let mode = match res.mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::Keyword => "keyword",
        SearchMode::Vector => "vector",
    };
    Ok(SearchResponse {
        hits,
        mode: mode.into(),
        fusion: res.fusion.map(|f| f.name().to_owned()),
        next_offset,
    })
}

/// Hybrid search across the workspace's collections.
#[utoipa::path(post, path = "/api/v1/search", tag = "search", request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn search(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(r): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    run(&s.services, &p, r, None).await.map(Json)
}

/// Hybrid search within one collection.
#[utoipa::path(post, path = "/api/v1/collections/{id}/search", tag = "search", params(("id" = String, Path, description = "collection id")),
    request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn search_collection(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiJson(r): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let cid: CollectionId = id(&raw, "collection")?;
    run(&s.services, &p, r, Some(cid)).await.map(Json)
}

/// A question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question, at most 2048 characters (`query_too_long` beyond).
    pub question: String,
    /// Only these collections (default: all).
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Only these documents.
    #[serde(default)]
    pub document_ids: Vec<String>,
    /// Metadata conditions, as in search.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A cited sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct CitationDto {
    /// Marker number in the answer (`[1]`).
    pub n: usize,
    /// Document.
    pub document_id: String,
    /// File name.
    pub filename: String,
    /// Chunk.
    pub chunk_id: String,
    /// Page, when known.
    pub page: Option<u32>,
    /// Start char offset of the quote in the document's extracted text.
    pub char_start: u64,
    /// End char offset.
    pub char_end: u64,
    /// The quoted sentence.
    pub quote: String,
    /// Relevance (0–1).
    pub score: f32,
}

/// An extractive answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskResponse {
    /// Whether a relevant passage was found.
    pub found: bool,
    /// The answer: cited sentences with `[n]` markers; a "no relevant passage" message otherwise.
    pub answer: String,
    /// `extractive` (no LLM configured).
    pub mode: &'static str,
    /// The cited passages.
    pub citations: Vec<CitationDto>,
}

/// Answers a question with the sentences that best answer it, each cited.
#[utoipa::path(post, path = "/api/v1/ask", tag = "search", request_body = AskRequest,
    responses((status = 200, body = AskResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn ask(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(r): ApiJson<AskRequest>,
) -> ApiResult<Json<AskResponse>> {
    answer(&s.services, &p, r).await.map(Json)
}

pub(crate) async fn answer(
    services: &docent_core::Services,
    principal: &Principal,
    r: AskRequest,
) -> ApiResult<AskResponse> {
    let req = SearchRequest {
        query: r.question,
        collection_ids: r.collection_ids,
        document_ids: r.document_ids,
        metadata: r.metadata,
        created_after: None,
        created_before: None,
        top_k: Some(8),
        offset: None,
        mode: None,
        fusion: None,
        rrf_k: None,
        vector_weight: None,
        group_by: None,
        explain: false,
    };
    let p = params(req, None, &services.config.search)?;
    let a = services.ask(principal, p).await?;
    Ok(AskResponse {
        found: a.answer.is_some(),
        answer: a
            .answer
            .unwrap_or_else(|| "No relevant passage was found in the documents.".into()),
        mode: "extractive",
        citations: a
            .citations
            .into_iter()
            .map(|c| CitationDto {
                n: c.n,
                document_id: c.document_id,
                filename: c.filename,
                chunk_id: c.chunk_id,
                page: c.page,
                char_start: c.char_start,
                char_end: c.char_end,
                quote: c.quote,
                score: c.score,
            })
            .collect(),
    })
}

/// Summary parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Sentences (1–20, default 5).
    pub length: Option<usize>,
}

/// A summary sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummarySentenceDto {
    /// Text.
    pub text: String,
    /// Start char offset in the document's extracted text.
    pub char_start: u64,
    /// End char offset.
    pub char_end: u64,
    /// Page, when known.
    pub page: Option<u32>,
}

/// An extractive summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryResponse {
    /// Document.
    pub document_id: String,
    /// The summary.
    pub summary: String,
    /// Its sentences with their spans.
    pub sentences: Vec<SummarySentenceDto>,
    /// `embedding-centroid` or `tfidf-centroid`.
    pub method: String,
}

/// A summary being computed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryPending {
    /// The task computing it; ask again when it completes.
    pub task: Task,
}

/// An extractive summary of a document. Long documents are summarized by a background task:
/// 202 with the task, then 200 once it is done. Summaries are cached by content hash and length.
/// A read-only API key gets only a summary already cached (`403 insufficient_scope` otherwise).
#[utoipa::path(get, path = "/api/v1/documents/{id}/summary", tag = "search", params(("id" = String, Path, description = "document id"), SummaryQuery),
    responses((status = 200, body = SummaryResponse), (status = 202, body = SummaryPending),
        (status = 403, body = ErrorEnvelope, description = "a read-only key, and no cached summary"),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn summary(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> ApiResult<Response> {
    let did: DocumentId = id(&raw, "document")?;
    let length = q.length.unwrap_or(5);
    // A read-only key writes nothing, model-written summaries included: it reads a summary
    // someone else had computed, or is refused.
    let state = if p
        .key_scope
        .as_ref()
        .is_some_and(|k| k.access == docent_domain::KeyAccess::Read)
    {
        let doc = s.services.get_document(&p, did).await?;
        match s.services.cached_summary(&doc, length).await? {
            Some(sm) => SummaryState::Ready(sm),
            None => {
                return Err(ApiError::new(
                    Code::InsufficientScope,
                    "this API key is read-only and this summary is not computed yet; \
                     ask with a read-write key or as a user",
                ));
            }
        }
    } else {
        s.services.document_summary(&p, did, length).await?
    };
    Ok(match state {
        SummaryState::Ready(sm) => Json(SummaryResponse {
            document_id: did.to_string(),
            summary: sm.summary,
            sentences: sm
                .sentences
                .into_iter()
                .map(|x| SummarySentenceDto {
                    text: x.text,
                    char_start: x.char_start,
                    char_end: x.char_end,
                    page: x.page,
                })
                .collect(),
            method: sm.method,
        })
        .into_response(),
        SummaryState::Pending(task) => (
            StatusCode::ACCEPTED,
            Json(SummaryPending {
                task: (*task).into(),
            }),
        )
            .into_response(),
    })
}
