//! Documents: `/api/v1/collections/{id}/documents` (upload, list; `…/lookup` by content),
//! `/api/v1/documents/{id}`
//! (get, download, chunks, reprocess, delete; a record file's failed rows and their retry),
//! presigned downloads (`/api/v1/documents/{id}/download-url`, `content?redirect=true`) and
//! direct uploads (`/api/v1/collections/{id}/documents/uploads[/{upload_id}/complete]`) with
//! an S3 blob store,
//! and the seed-compatible uploads `POST /upload`
//! and `POST /api/upload` (the same upload, the collection named in the form or the query, or
//! the `default` collection). The services check the caller's scope; the handlers parse and
//! answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docent_core::direct::DirectUploadRequest;
use docent_core::documents::{Upload, UploadOutcome};
use docent_domain::{
    Code, CollectionId, DocumentFilter, DocumentId, Principal, check_metadata, metadata_limits,
};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{page, parse_enum};
use crate::AppState;
use crate::dto::{
    ChunkList, Document, DocumentList, DocumentLookup, DocumentLookupRequest, DocumentQuery,
    PageQuery, UploadResult,
};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Auth, id, query_id};

/// Multipart form of an upload. Send `metadata` (optional) before `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// Optional JSON object of user metadata.
    metadata: Option<String>,
    /// The file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Multipart form of a seed-compatible upload. Send `collection_id` and `metadata` (both
/// optional) before `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SeedUploadForm {
    /// The target collection's id (`collection` is accepted too, and so is a query parameter
    /// of either name). Without one: the workspace's collection named `default`, created on
    /// first use.
    collection_id: Option<String>,
    /// Optional JSON object of user metadata.
    metadata: Option<String>,
    /// The file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Query of the seed-compatible upload routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeedUploadQuery {
    /// The target collection's id (default: the workspace's `default` collection).
    collection_id: Option<String>,
    /// Same as `collection_id`.
    collection: Option<String>,
}

/// Where an upload goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The collection of the path (`/api/v1/collections/{id}/documents`).
    Path(CollectionId),
    /// Seed aliases: a collection named by the query (if any) or a form part before `file`;
    /// without either, the `default` collection.
    Named(Option<CollectionId>),
}

/// The one collection named by `a` and `b` (either may be absent); `conflict` when they differ.
fn one_collection(
    a: Option<CollectionId>,
    b: Option<CollectionId>,
    conflict: impl FnOnce() -> ApiError,
) -> Result<Option<CollectionId>, ApiError> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(conflict()),
        (a, b) => Ok(a.or(b)),
    }
}

fn upload_result(o: UploadOutcome) -> (StatusCode, Json<UploadResult>) {
    let status = if o.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        Json(UploadResult {
            document: o.document.into(),
            task: o.task.map(Into::into),
            duplicate: o.duplicate,
        }),
    )
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(Code::PayloadTooLarge, "the upload exceeds the size limit")
    } else {
        ApiError::new(
            Code::InvalidMultipart,
            format!("invalid multipart body: {}", e.body_text()),
        )
    }
}

/// A small form part, read chunk by chunk and refused (`too_large()`) as soon as it passes
/// `max` bytes: an oversized part is never buffered whole.
async fn read_part(
    mut field: axum::extract::multipart::Field<'_>,
    max: usize,
    too_large: impl FnOnce() -> ApiError,
) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > max {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Uploads a document (multipart `file`, optional `metadata` JSON before it). The original is
/// stored and an ingest task queued: 202. Identical bytes already in the collection: 200 with the
/// existing document and `duplicate: true`.
#[utoipa::path(post, path = "/api/v1/collections/{id}/documents", tag = "documents",
    params(("id" = String, Path, description = "collection id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = UploadResult, description = "stored; processing queued"),
        (status = 200, body = UploadResult, description = "identical file already in the collection"),
        (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "read-only key, or `quota_exceeded`"),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope)))]
pub(crate) async fn upload_document(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let cid: CollectionId = id(&raw, "collection")?;
    upload(&s, &p, Target::Path(cid), multipart).await
}

/// Seed-compatible upload: `POST /api/v1/collections/{id}/documents` with the collection named
/// by `collection_id` (or `collection`) as a query parameter or a form part before `file`, and
/// the workspace's `default` collection (created on first use) when none is named. Same
/// authorization, errors and answers.
#[utoipa::path(post, path = "/upload", tag = "documents", params(SeedUploadQuery),
    request_body(content = SeedUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = UploadResult, description = "stored; processing queued"),
        (status = 200, body = UploadResult, description = "identical file already in the collection"),
        (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "read-only key, or `quota_exceeded`"),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope)))]
pub(crate) async fn seed_upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SeedUploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let named = |raw: Option<String>, param: &str| {
        raw.map(|r| query_id::<CollectionId>(&r, param)).transpose()
    };
    let collection = one_collection(
        named(q.collection_id, "collection_id")?,
        named(q.collection, "collection")?,
        || {
            ApiError::new(
                Code::InvalidQuery,
                "`collection_id` and `collection` name different collections",
            )
        },
    )?;
    upload(&s, &p, Target::Named(collection), multipart).await
}

/// Alias of `POST /upload`.
#[utoipa::path(post, path = "/api/upload", tag = "documents", params(SeedUploadQuery),
    request_body(content = SeedUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, body = UploadResult, description = "stored; processing queued"),
        (status = 200, body = UploadResult, description = "identical file already in the collection"),
        (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "read-only key, or `quota_exceeded`"),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope)))]
pub(crate) async fn seed_api_upload(
    state: State<AppState>,
    auth: Auth,
    query: ApiQuery<SeedUploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    seed_upload(state, auth, query, multipart).await
}

/// The upload itself, shared by the main route and the seed aliases: checks, quota headroom,
/// then the form parts, streaming `file` into [`docent_core::Services::upload_document`].
async fn upload(
    s: &AppState,
    p: &Principal,
    target: Target,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let t = p.tenant_id;
    p.require_write()?;
    if let Target::Path(cid) | Target::Named(Some(cid)) = target {
        p.scope().check_collection(cid)?;
    }
    // Per-tenant quotas (builtin mode): one more document must fit, and the stream is cut off
    // past the bytes left, before anything is registered.
    let mut headroom = match &s.auth {
        Some(auth) => auth.upload_headroom(t).await?,
        None => None,
    };
    let mut form = multipart.map_err(|_| {
        ApiError::new(
            Code::UnsupportedMediaType,
            "expected a `multipart/form-data` body with a `file` part",
        )
    })?;
    let mut metadata = Map::new();
    let mut form_collection = None;
    let seed = matches!(target, Target::Named(_));
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("metadata") => {
                let text = read_part(field, metadata_limits::MAX_BYTES, || {
                    ApiError::new(
                        Code::MetadataTooLarge,
                        format!(
                            "`metadata` is over {} bytes of JSON",
                            metadata_limits::MAX_BYTES
                        ),
                    )
                })
                .await?;
                metadata = match serde_json::from_slice::<Value>(&text) {
                    Ok(Value::Object(m)) => m,
                    _ => {
                        return Err(ApiError::new(
                            Code::InvalidField,
                            "`metadata` must be a JSON object",
                        ));
                    }
                };
                // Checked here too so that its bytes come off the quota headroom of `file`.
                let size = check_metadata(&metadata)?;
                if let Some(h) = headroom {
                    if size > h {
                        return Err(match &s.auth {
                            Some(auth) => auth.stored_bytes_exceeded().into(),
                            None => ApiError::new(Code::QuotaExceeded, "over the byte quota"),
                        });
                    }
                    headroom = Some(h - size);
                }
            }
            Some(name @ ("collection_id" | "collection")) if seed => {
                let name = name.to_owned();
                let text = read_part(field, 256, || {
                    ApiError::new(
                        Code::InvalidField,
                        format!("`{name}` is not a valid collection id"),
                    )
                })
                .await?;
                let text = String::from_utf8_lossy(&text);
                let cid: CollectionId = text.trim().parse().map_err(|_| {
                    ApiError::new(
                        Code::InvalidField,
                        format!("`{name}` is not a valid collection id"),
                    )
                })?;
                p.scope().check_collection(cid)?;
                form_collection = one_collection(form_collection, Some(cid), || {
                    ApiError::new(
                        Code::InvalidField,
                        "`collection_id` and `collection` name different collections",
                    )
                })?;
            }
            Some("file") => {
                let cid = match target {
                    Target::Path(cid) => cid,
                    Target::Named(query) => {
                        let named = one_collection(query, form_collection, || {
                            ApiError::new(
                                Code::InvalidField,
                                "the query and the form name different collections",
                            )
                        })?;
                        match named {
                            Some(cid) => cid,
                            None => s.services.default_collection(p).await?.id,
                        }
                    }
                };
                let filename = field.file_name().unwrap_or("upload").to_owned();
                let declared_mime = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let over_quota = Arc::new(AtomicBool::new(false));
                let flag = over_quota.clone();
                let mut seen = 0u64;
                let body = field
                    .map_err(|e| e.body_text())
                    .map(move |chunk| {
                        let bytes = chunk?;
                        seen += bytes.len() as u64;
                        if headroom.is_some_and(|h| seen > h) {
                            flag.store(true, Ordering::Relaxed);
                            return Err("the upload exceeds the workspace quota".to_owned());
                        }
                        Ok(bytes)
                    })
                    .boxed();
                let outcome = s
                    .services
                    .upload_document(
                        p,
                        cid,
                        Upload {
                            filename,
                            declared_mime,
                            metadata,
                            body,
                        },
                    )
                    .await;
                return match (outcome, &s.auth) {
                    (Err(_), Some(auth)) if over_quota.load(Ordering::Relaxed) => {
                        Err(auth.stored_bytes_exceeded().into())
                    }
                    (outcome, _) => Ok(upload_result(outcome?)),
                };
            }
            other => {
                let expected = if seed {
                    "`collection_id`, `metadata` and `file`"
                } else {
                    "`metadata` and `file`"
                };
                return Err(ApiError::new(
                    Code::InvalidMultipart,
                    format!(
                        "unexpected part `{}`; expected {expected}",
                        other.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Err(ApiError::new(
        Code::MissingField,
        "the multipart body has no `file` part",
    ))
}

/// Lists a collection's documents, newest first.
#[utoipa::path(get, path = "/api/v1/collections/{id}/documents", tag = "documents",
    params(("id" = String, Path, description = "collection id"), DocumentQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<DocumentQuery>,
) -> ApiResult<Json<DocumentList>> {
    let cid: CollectionId = id(&raw, "collection")?;
    let status = parse_enum(q.status, "status")?;
    let page = page(q.limit, q.cursor)?;
    let docs = s
        .services
        .list_documents(
            &p,
            DocumentFilter {
                collection_id: Some(cid),
                status,
                filename_contains: q.filename.map(|f| f.trim().to_owned()),
                ..Default::default()
            },
            page,
        )
        .await?;
    Ok(Json(docs.into()))
}

/// Looks up documents by content: which of the given sha256s the collection already holds,
/// with each document's processing status, plus the largest upload the server takes. A bulk
/// uploader asks this before sending bytes; it counts as a read (`read` rate limit class), so
/// skipping files never spends upload budget.
#[utoipa::path(post, path = "/api/v1/collections/{id}/documents/lookup", tag = "documents",
    params(("id" = String, Path, description = "collection id")),
    request_body = DocumentLookupRequest,
    responses((status = 200, body = DocumentLookup), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn lookup(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<DocumentLookupRequest>,
) -> ApiResult<Json<DocumentLookup>> {
    let cid: CollectionId = id(&raw, "collection")?;
    let docs = s
        .services
        .documents_by_content(&p, cid, &body.sha256)
        .await?;
    Ok(Json(DocumentLookup {
        items: docs.into_iter().map(Into::into).collect(),
        max_upload_size: s.services.config.ingest.max_upload_size.as_u64(),
    }))
}

/// Gets a document with its processing status.
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 200, body = Document), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Document>> {
    let did: DocumentId = id(&raw, "document")?;
    Ok(Json(s.services.get_document(&p, did).await?.into()))
}

/// Deletes a document: its chunks, index entries and original are gone when this returns.
#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let did: DocumentId = id(&raw, "document")?;
    p.require_write()?;
    s.services.delete_document(&p, did).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the download route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ContentQuery {
    /// With an S3 blob store: `true` answers `307` to a presigned URL of the original instead
    /// of streaming it through the server (default: `storage.redirect_downloads`). A local
    /// store always streams.
    redirect: Option<bool>,
}

/// Downloads the original file (or, with an S3 blob store and `redirect=true`, redirects to a
/// presigned URL of it), always as `application/octet-stream` with `Content-Disposition:
/// attachment` and `Content-Security-Policy: sandbox`, whatever type the uploader declared.
#[utoipa::path(get, path = "/api/v1/documents/{id}/content", tag = "documents",
    params(("id" = String, Path, description = "document id"), ContentQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 307, description = "redirect to a presigned URL of the original (S3)"),
        (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn content(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> ApiResult<Response> {
    let did: DocumentId = id(&raw, "document")?;
    if q.redirect.unwrap_or(s.services.redirect_downloads()) && s.services.presign_ttl().is_some() {
        let (url, _) = s.services.document_download_url(&p, did).await?;
        let location = HeaderValue::from_str(&url)
            .map_err(|e| docent_domain::Error::internal(e.to_string()))?;
        let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
        resp.headers_mut().insert(header::LOCATION, location);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(resp);
    }
    let (doc, size, stream) = s.services.download_document(&p, did).await?;
    let ascii: String = doc
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"");
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    // Never the uploader's declared type: a file declared `text/html` must not render (and
    // run scripts) on this origin. Bytes, an attachment, and a sandbox if a browser renders
    // it anyway.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        "x-content-sha256",
        HeaderValue::from_str(&doc.sha256).unwrap_or(HeaderValue::from_static("")),
    );
    Ok(resp)
}

/// Lists a document's chunks in order.
#[utoipa::path(get, path = "/api/v1/documents/{id}/chunks", tag = "documents", params(("id" = String, Path, description = "document id"), PageQuery),
    responses((status = 200, body = ChunkList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn chunks(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ChunkList>> {
    let did: DocumentId = id(&raw, "document")?;
    let page = page(q.limit, q.cursor)?;
    Ok(Json(s.services.list_chunks(&p, did, page).await?.into()))
}

/// Queues the document for processing again (after a failure, or a configuration change).
#[utoipa::path(post, path = "/api/v1/documents/{id}/reprocess", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 202, body = UploadResult), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn reprocess(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let did: DocumentId = id(&raw, "document")?;
    p.require_write()?;
    let o = s.services.reprocess_document(&p, did).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadResult {
            document: o.document.into(),
            task: o.task.map(Into::into),
            duplicate: false,
        }),
    ))
}

/// A row of a record file that could not be processed.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct FailedRow {
    /// Row (record) number from 1; the header row is not counted.
    pub row: u32,
    /// Error code (see `/api/v1/errors`), e.g. `model_error`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// When the row failed.
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// A document's failure ledger.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct FailedRowList {
    /// Failed rows, by row number.
    pub items: Vec<FailedRow>,
}

/// Lists the rows of a record file that could not be processed (its task then ended
/// `partially_completed`).
#[utoipa::path(get, path = "/api/v1/documents/{id}/failed-rows", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 200, body = FailedRowList), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn failed_rows(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<FailedRowList>> {
    let did: DocumentId = id(&raw, "document")?;
    let items = s
        .services
        .failed_rows(&p, did)
        .await?
        .into_iter()
        .map(|f| FailedRow {
            row: f.row,
            code: f.code,
            message: f.message,
            failed_at: f.failed_at,
        })
        .collect();
    Ok(Json(FailedRowList { items }))
}

/// Queues a task that processes only the document's failed rows again; rows that now succeed
/// leave the ledger (409 while the document is being processed or when no row failed).
#[utoipa::path(post, path = "/api/v1/documents/{id}/retry-failed-rows", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 202, body = UploadResult), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn retry_failed_rows(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let did: DocumentId = id(&raw, "document")?;
    p.require_write()?;
    let o = s.services.retry_failed_rows(&p, did).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadResult {
            document: o.document.into(),
            task: o.task.map(Into::into),
            duplicate: false,
        }),
    ))
}

/// A presigned URL of a document's original.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct DownloadUrl {
    /// Downloads the original without credentials (offered under its file name).
    pub url: String,
    /// When the URL stops working (`storage.presign_ttl` after it was made).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A presigned URL that downloads the original straight from the S3 blob store. With a local
/// blob store: `409 feature_unavailable` (download through `/content` instead).
#[utoipa::path(get, path = "/api/v1/documents/{id}/download-url", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 200, body = DownloadUrl), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "`feature_unavailable`: the blob store is local")))]
pub(crate) async fn download_url(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<([(header::HeaderName, HeaderValue); 1], Json<DownloadUrl>)> {
    let did: DocumentId = id(&raw, "document")?;
    let (url, expires_at) = s.services.document_download_url(&p, did).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(DownloadUrl { url, expires_at }),
    ))
}

/// A direct upload's declaration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDirectUpload {
    /// File name.
    pub filename: String,
    /// Size in bytes (at most `ingest.max_upload_size`).
    pub size: u64,
    /// Hex sha256 of the bytes; completion refuses other bytes.
    pub sha256: String,
    /// MIME type (default `application/octet-stream`); send it as `content-type` with the PUT.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Optional JSON object of user metadata.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Where to send the bytes of a direct upload.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct DirectUploadTicket {
    /// Completes the upload (`…/uploads/{upload_id}/complete`); also the future document's id.
    pub upload_id: String,
    /// The presigned URL.
    pub url: String,
    /// `PUT`.
    pub method: String,
    /// Headers to send with the PUT, exactly as given (they are signed).
    pub headers: std::collections::BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Starts a direct upload: the client `PUT`s the bytes to the returned presigned URL (S3),
/// then calls `…/uploads/{upload_id}/complete`. With a local blob store: `409
/// feature_unavailable` (use the multipart upload).
#[utoipa::path(post, path = "/api/v1/collections/{id}/documents/uploads", tag = "documents",
    params(("id" = String, Path, description = "collection id")),
    request_body = CreateDirectUpload,
    responses(
        (status = 201, body = DirectUploadTicket),
        (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "read-only key, or `quota_exceeded`"),
        (status = 409, body = ErrorEnvelope, description = "`feature_unavailable`: the blob store is local"),
        (status = 413, body = ErrorEnvelope)))]
pub(crate) async fn create_direct_upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<CreateDirectUpload>,
) -> ApiResult<(StatusCode, Json<DirectUploadTicket>)> {
    let cid: CollectionId = id(&raw, "collection")?;
    p.require_write()?;
    p.scope().check_collection(cid)?;
    // The metadata's bytes count toward the byte quota, as for a multipart upload.
    let metadata = body.metadata.unwrap_or_default();
    let metadata_size = check_metadata(&metadata)?;
    if let Some(auth) = &s.auth
        && auth
            .upload_headroom(p.tenant_id)
            .await?
            .is_some_and(|h| body.size.saturating_add(metadata_size) > h)
    {
        return Err(auth.stored_bytes_exceeded().into());
    }
    let ticket = s
        .services
        .create_direct_upload(
            &p,
            cid,
            DirectUploadRequest {
                filename: body.filename,
                size: body.size,
                sha256: body.sha256,
                content_type: body.content_type.unwrap_or_default(),
                metadata,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DirectUploadTicket {
            upload_id: ticket.upload_id.to_string(),
            url: ticket.url,
            method: ticket.method.to_owned(),
            headers: ticket.headers.into_iter().collect(),
            expires_at: ticket.expires_at,
        }),
    ))
}

/// Completes a direct upload: the object's size and sha256 must match the declaration (else
/// `422 upload_mismatch`, and the object is deleted); the document is registered and its
/// processing queued exactly like a multipart upload (202; identical bytes already in the
/// collection: 200 with `duplicate: true`). Nothing uploaded yet: `409 upload_incomplete`.
#[utoipa::path(post, path = "/api/v1/collections/{id}/documents/uploads/{upload_id}/complete", tag = "documents",
    params(("id" = String, Path, description = "collection id"),
        ("upload_id" = String, Path, description = "upload id")),
    responses(
        (status = 202, body = UploadResult, description = "verified; processing queued"),
        (status = 200, body = UploadResult, description = "identical file already in the collection"),
        (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "`upload_incomplete`, or `feature_unavailable`: the blob store is local"),
        (status = 422, body = ErrorEnvelope, description = "`upload_mismatch`")))]
pub(crate) async fn complete_direct_upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((raw, raw_upload)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let cid: CollectionId = id(&raw, "collection")?;
    let upload: DocumentId = id(&raw_upload, "upload")?;
    p.require_write()?;
    let outcome = s.services.complete_direct_upload(&p, cid, upload).await?;
    Ok(upload_result(outcome))
}
