//! Documents: `/api/v1/collections/{id}/documents` (upload, list) and `/api/v1/documents/{id}`
//! (get, download, chunks, reprocess, delete).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use docent_core::documents::{Upload, UploadOutcome};
use docent_domain::{Code, CollectionId, DocumentFilter, DocumentId};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{page, parse_enum};
use crate::AppState;
use crate::dto::{ChunkList, Document, DocumentList, DocumentQuery, PageQuery, UploadResult};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, Auth, id, scope_collection, scope_document};

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
    let t = p.tenant_id;
    let cid: CollectionId = id(&raw, "collection")?;
    p.require_write()?;
    scope_collection(&p, cid)?;
    // Per-tenant quotas (builtin mode): one more document must fit, and the stream is cut off
    // past the bytes left, before anything is registered.
    let headroom = match &s.auth {
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
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("metadata") => {
                let text = field.text().await.map_err(multipart_error)?;
                metadata = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => m,
                    _ => {
                        return Err(ApiError::new(
                            Code::InvalidField,
                            "`metadata` must be a JSON object",
                        ));
                    }
                };
            }
            Some("file") => {
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
                        t,
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
                return Err(ApiError::new(
                    Code::InvalidMultipart,
                    format!(
                        "unexpected part `{}`; expected `metadata` and `file`",
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
    let t = p.tenant_id;
    let cid: CollectionId = id(&raw, "collection")?;
    let status = parse_enum(q.status, "status")?;
    let page = page(q.limit, q.cursor)?;
    scope_collection(&p, cid)?;
    s.services.store.get_collection(t, cid).await?;
    let docs = s
        .services
        .store
        .list_documents(
            t,
            DocumentFilter {
                collection_id: Some(cid),
                status,
            },
            page,
        )
        .await?;
    Ok(Json(docs.into()))
}

/// Gets a document with its processing status.
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 200, body = Document), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Document>> {
    let t = p.tenant_id;
    let did: DocumentId = id(&raw, "document")?;
    let doc = s.services.store.get_document(t, did).await?;
    scope_document(&p, did, doc.collection_id)?;
    Ok(Json(doc.into()))
}

/// Deletes a document: its chunks, index entries and original are gone when this returns.
#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let t = p.tenant_id;
    let did: DocumentId = id(&raw, "document")?;
    p.require_write()?;
    let doc = s.services.store.get_document(t, did).await?;
    scope_document(&p, did, doc.collection_id)?;
    s.services.delete_document(t, did).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Downloads the original file.
#[utoipa::path(get, path = "/api/v1/documents/{id}/content", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn content(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let t = p.tenant_id;
    let did: DocumentId = id(&raw, "document")?;
    let (doc, size, stream) = s.services.download_document(t, did).await?;
    scope_document(&p, did, doc.collection_id)?;
    let mime = HeaderValue::from_str(&doc.declared_mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
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
    h.insert(header::CONTENT_TYPE, mime);
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
    let t = p.tenant_id;
    let did: DocumentId = id(&raw, "document")?;
    let page = page(q.limit, q.cursor)?;
    let doc = s.services.store.get_document(t, did).await?;
    scope_document(&p, did, doc.collection_id)?;
    Ok(Json(
        s.services.store.list_chunks(t, did, page).await?.into(),
    ))
}

/// Queues the document for processing again (after a failure, or a configuration change).
#[utoipa::path(post, path = "/api/v1/documents/{id}/reprocess", tag = "documents", params(("id" = String, Path, description = "document id")),
    responses((status = 202, body = UploadResult), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn reprocess(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<(StatusCode, Json<UploadResult>)> {
    let t = p.tenant_id;
    let did: DocumentId = id(&raw, "document")?;
    p.require_write()?;
    let doc = s.services.store.get_document(t, did).await?;
    scope_document(&p, did, doc.collection_id)?;
    let o = s.services.reprocess_document(t, did).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadResult {
            document: o.document.into(),
            task: o.task.map(Into::into),
            duplicate: false,
        }),
    ))
}
