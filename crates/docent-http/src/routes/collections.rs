//! `/api/v1/collections`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use docent_domain::{Code, CollectionId, CollectionPatch, NewCollection, TextLanguage};

use super::page;
use crate::AppState;
use crate::dto::{Collection, CollectionList, CreateCollection, PageQuery, UpdateCollection};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Auth, id};

/// Lists collections, newest first.
#[utoipa::path(get, path = "/api/v1/collections", tag = "collections", params(PageQuery),
    responses((status = 200, body = CollectionList), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<CollectionList>> {
    let list = s
        .services
        .list_collections(&p, page(q.limit, q.cursor)?)
        .await?;
    Ok(Json(list.into()))
}

/// Creates a collection.
#[utoipa::path(post, path = "/api/v1/collections", tag = "collections", request_body = CreateCollection,
    responses((status = 201, body = Collection), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateCollection>,
) -> ApiResult<(StatusCode, Json<Collection>)> {
    p.require_write()?;
    let language = match body.language.as_deref() {
        None => TextLanguage::default(),
        Some(l) => l
            .parse()
            .map_err(|e: String| ApiError::new(Code::InvalidField, format!("`language`: {e}")))?,
    };
    let c = s
        .services
        .create_collection(
            &p,
            NewCollection {
                name: body.name,
                description: body.description,
                metadata: body.metadata.unwrap_or_default(),
                language,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Gets a collection.
#[utoipa::path(get, path = "/api/v1/collections/{id}", tag = "collections", params(("id" = String, Path, description = "collection id")),
    responses((status = 200, body = Collection), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Collection>> {
    let cid: CollectionId = id(&raw, "collection")?;
    Ok(Json(s.services.get_collection(&p, cid).await?.into()))
}

/// Updates a collection's name, description or metadata.
#[utoipa::path(patch, path = "/api/v1/collections/{id}", tag = "collections", params(("id" = String, Path, description = "collection id")),
    request_body = UpdateCollection,
    responses((status = 200, body = Collection), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<UpdateCollection>,
) -> ApiResult<Json<Collection>> {
    let cid: CollectionId = id(&raw, "collection")?;
    p.require_write()?;
    let patch = CollectionPatch {
        name: body.name,
        description: body.description,
        metadata: body.metadata,
    };
    Ok(Json(
        s.services.update_collection(&p, cid, patch).await?.into(),
    ))
}

/// Deletes a collection with all its documents, chunks and originals.
#[utoipa::path(delete, path = "/api/v1/collections/{id}", tag = "collections", params(("id" = String, Path, description = "collection id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let cid: CollectionId = id(&raw, "collection")?;
    p.require_write()?;
    s.services.delete_collection(&p, cid).await?;
    Ok(StatusCode::NO_CONTENT)
}
