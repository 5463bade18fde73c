//! Bots: `/api/v1/bots` (create, list, get, update, delete, a bot's documents and
//! conversations), `/api/v1/conversations/{id}` (a conversation and its messages; delete), and the
//! seed-compatible aliases `GET /api/bots`, `GET|DELETE /api/bots/{bot_id}` and
//! `GET /api/bots/{bot_id}/documents` (the same handlers). The services check the caller's
//! scope (tenant, an API key's collections and bots); the handlers parse and answer.
//!
//! Chat (`POST /api/v1/bots/{id}/chat`, `POST /api/chat`, `POST /v1/chat/completions`) lives
//! beside these routes, in its own module.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use docent_core::Services;
use docent_domain::{
    BotDraft, BotId, BotPatch, BotRetrieval, Code, CollectionId, ConversationId, Error, Principal,
    RetrievalMode, WidgetSettings,
};

use super::page;
use crate::AppState;
use crate::dto::{
    Bot, BotList, BotRetrievalInput, BotWidgetInput, Conversation, ConversationList, CreateBot,
    DocumentList, MessageList, PageQuery, UpdateBot,
};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Auth, id};

/// `collection_ids` of a request as ids: each one well-formed, at most
/// [`docent_core::bots::MAX_COLLECTIONS`].
fn collection_ids(raw: &[String]) -> Result<Vec<CollectionId>, ApiError> {
    let max = docent_core::bots::MAX_COLLECTIONS;
    if raw.len() > max {
        return Err(ApiError::new(
            Code::InvalidField,
            format!("`collection_ids` may hold at most {max} collections"),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            c.trim().parse().map_err(|_| {
                ApiError::new(
                    Code::InvalidField,
                    format!("`collection_ids[{i}]` is not a valid collection id"),
                )
            })
        })
        .collect()
}

fn retrieval_mode(raw: &str) -> Result<RetrievalMode, ApiError> {
    raw.parse()
        .map_err(|e: String| ApiError::new(Code::InvalidField, format!("`retrieval.mode`: {e}")))
}

/// Retrieval settings: `base` with the request's fields applied.
fn retrieval(base: BotRetrieval, input: BotRetrievalInput) -> Result<BotRetrieval, ApiError> {
    Ok(BotRetrieval {
        top_k: input.top_k.unwrap_or(base.top_k),
        mode: match input.mode.as_deref() {
            Some(m) => retrieval_mode(m)?,
            None => base.mode,
        },
        min_score: input.min_score.unwrap_or(base.min_score),
    })
}

/// The services name a bot's collections `collections` (the domain's field); on the wire they
/// are `collection_ids`, so messages naming the field are told in the wire's terms.
fn wire_names(e: Error) -> ApiError {
    if e.message.starts_with("`collections") {
        let message = e.message.replacen("`collections", "`collection_ids", 1);
        ApiError(Error { message, ..e })
    } else {
        ApiError(e)
    }
}

/// Widget settings: `base` with the request's fields applied.
pub(crate) fn widget(
    base: WidgetSettings,
    input: BotWidgetInput,
) -> Result<WidgetSettings, ApiError> {
    Ok(WidgetSettings {
        sources: match input.sources.as_deref() {
            Some(raw) => raw.parse().map_err(|e: String| {
                ApiError::new(Code::InvalidField, format!("`widget.sources`: {e}"))
            })?,
            None => base.sources,
        },
        color: input.color.unwrap_or(base.color),
    })
}

/// A create request as a draft (the field rules themselves are the service's).
pub(crate) fn draft(body: CreateBot) -> Result<BotDraft, ApiError> {
    let defaults = BotDraft::default();
    Ok(BotDraft {
        name: body.name,
        description: body.description,
        system_prompt: body.system_prompt.unwrap_or_default(),
        model: body.model,
        temperature: body.temperature.unwrap_or(defaults.temperature),
        max_tokens: body.max_tokens,
        collections: collection_ids(&body.collection_ids)?,
        retrieval: retrieval(defaults.retrieval, body.retrieval.unwrap_or_default())?,
        welcome_message: body.welcome_message,
        allowed_origins: body.allowed_origins,
        widget: widget(WidgetSettings::default(), body.widget.unwrap_or_default())?,
    })
}

/// Creates a bot as `p` (after [`Principal::require_write`]).
pub(crate) async fn create_bot(
    services: &Services,
    p: &Principal,
    body: CreateBot,
) -> Result<Bot, ApiError> {
    p.require_write()?;
    let draft = draft(body)?;
    let bot = services.create_bot(p, draft).await.map_err(wire_names)?;
    Ok(bot.into())
}

/// Updates a bot as `p` (after [`Principal::require_write`]). Retrieval fields not in the
/// request keep the bot's current values.
pub(crate) async fn update_bot(
    services: &Services,
    p: &Principal,
    bid: BotId,
    body: UpdateBot,
) -> Result<Bot, ApiError> {
    p.require_write()?;
    let current = match (&body.retrieval, &body.widget) {
        (None, None) => None,
        _ => Some(services.get_bot(p, bid).await?),
    };
    let retrieval = match (body.retrieval, &current) {
        (Some(input), Some(current)) => Some(self::retrieval(current.retrieval, input)?),
        _ => None,
    };
    let widget = match (body.widget, current) {
        (Some(input), Some(current)) => Some(self::widget(current.widget, input)?),
        _ => None,
    };
    let patch = BotPatch {
        name: body.name,
        description: body.description,
        system_prompt: body.system_prompt,
        model: body.model,
        temperature: body.temperature,
        max_tokens: body.max_tokens,
        collections: body
            .collection_ids
            .as_deref()
            .map(collection_ids)
            .transpose()?,
        retrieval,
        welcome_message: body.welcome_message,
        allowed_origins: body.allowed_origins,
        widget,
    };
    let bot = services
        .update_bot(p, bid, patch)
        .await
        .map_err(wire_names)?;
    Ok(bot.into())
}

/// Lists the bots the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/bots", tag = "bots", params(PageQuery),
    responses((status = 200, body = BotList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<BotList>> {
    let bots = s.services.list_bots(&p, page(q.limit, q.cursor)?).await?;
    Ok(Json(bots.into()))
}

/// Creates a bot over some of the workspace's collections.
#[utoipa::path(post, path = "/api/v1/bots", tag = "bots", request_body = CreateBot,
    responses((status = 201, body = Bot), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "read-only key, viewer, or a key limited to some bots"),
        (status = 404, body = ErrorEnvelope, description = "`collection_not_found`: a collection of `collection_ids`")))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateBot>,
) -> ApiResult<(StatusCode, Json<Bot>)> {
    Ok((
        StatusCode::CREATED,
        Json(create_bot(&s.services, &p, body).await?),
    ))
}

/// Gets a bot.
#[utoipa::path(get, path = "/api/v1/bots/{id}", tag = "bots", params(("id" = String, Path, description = "bot id")),
    responses((status = 200, body = Bot), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Bot>> {
    let bid: BotId = id(&raw, "bot")?;
    Ok(Json(s.services.get_bot(&p, bid).await?.into()))
}

/// Updates a bot: absent fields are left alone, `null` clears an optional one.
#[utoipa::path(patch, path = "/api/v1/bots/{id}", tag = "bots", params(("id" = String, Path, description = "bot id")),
    request_body = UpdateBot,
    responses((status = 200, body = Bot), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<UpdateBot>,
) -> ApiResult<Json<Bot>> {
    let bid: BotId = id(&raw, "bot")?;
    Ok(Json(update_bot(&s.services, &p, bid, body).await?))
}

/// Deletes a bot with its conversations and messages (its collections stay).
#[utoipa::path(delete, path = "/api/v1/bots/{id}", tag = "bots", params(("id" = String, Path, description = "bot id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let bid: BotId = id(&raw, "bot")?;
    p.require_write()?;
    s.services.delete_bot(&p, bid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the documents of a bot's collections, newest first.
#[utoipa::path(get, path = "/api/v1/bots/{id}/documents", tag = "bots",
    params(("id" = String, Path, description = "bot id"), PageQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn documents(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<DocumentList>> {
    let bid: BotId = id(&raw, "bot")?;
    let page = page(q.limit, q.cursor)?;
    Ok(Json(s.services.bot_documents(&p, bid, page).await?.into()))
}

/// Lists a bot's conversations, newest first.
#[utoipa::path(get, path = "/api/v1/bots/{id}/conversations", tag = "bots",
    params(("id" = String, Path, description = "bot id"), PageQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn conversations(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ConversationList>> {
    let bid: BotId = id(&raw, "bot")?;
    let page = page(q.limit, q.cursor)?;
    Ok(Json(
        s.services.list_conversations(&p, bid, page).await?.into(),
    ))
}

/// Gets a conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "bots",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = Conversation), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn conversation(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<Conversation>> {
    let cid: ConversationId = id(&raw, "conversation")?;
    Ok(Json(s.services.get_conversation(&p, cid).await?.into()))
}

/// Deletes a conversation with its messages: the caller's own (admins: also those started by
/// the operator); another's is `404`.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "bots",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn delete_conversation(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let cid: ConversationId = id(&raw, "conversation")?;
    s.services.delete_conversation(&p, cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a conversation's messages, oldest first, with their citations.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "bots",
    params(("id" = String, Path, description = "conversation id"), PageQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn messages(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<MessageList>> {
    let cid: ConversationId = id(&raw, "conversation")?;
    let page = page(q.limit, q.cursor)?;
    Ok(Json(
        s.services
            .conversation_messages(&p, cid, page)
            .await?
            .into(),
    ))
}

// Seed-compatible aliases: the same handlers, listed in the OpenAPI document under their own
// paths.

/// Alias of `GET /api/v1/bots`.
#[utoipa::path(get, path = "/api/bots", tag = "bots", params(PageQuery),
    responses((status = 200, body = BotList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn seed_list(
    state: State<AppState>,
    auth: Auth,
    query: ApiQuery<PageQuery>,
) -> ApiResult<Json<BotList>> {
    list(state, auth, query).await
}

/// Alias of `GET /api/v1/bots/{id}`.
#[utoipa::path(get, path = "/api/bots/{bot_id}", tag = "bots", params(("bot_id" = String, Path, description = "bot id")),
    responses((status = 200, body = Bot), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn seed_get(
    state: State<AppState>,
    auth: Auth,
    path: Path<String>,
) -> ApiResult<Json<Bot>> {
    get(state, auth, path).await
}

/// Alias of `DELETE /api/v1/bots/{id}`.
#[utoipa::path(delete, path = "/api/bots/{bot_id}", tag = "bots", params(("bot_id" = String, Path, description = "bot id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn seed_delete(
    state: State<AppState>,
    auth: Auth,
    path: Path<String>,
) -> ApiResult<StatusCode> {
    delete(state, auth, path).await
}

/// Alias of `GET /api/v1/bots/{id}/documents`.
#[utoipa::path(get, path = "/api/bots/{bot_id}/documents", tag = "bots",
    params(("bot_id" = String, Path, description = "bot id"), PageQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn seed_documents(
    state: State<AppState>,
    auth: Auth,
    path: Path<String>,
    query: ApiQuery<PageQuery>,
) -> ApiResult<Json<DocumentList>> {
    documents(state, auth, path, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<impl std::fmt::Debug, ApiError>, name: &str) {
        let e = r.expect_err("refused").0;
        assert_eq!(e.code, Code::InvalidField);
        assert!(e.message.contains(name), "{name} not named: {}", e.message);
    }

    #[test]
    fn request_fields_are_parsed_and_named() {
        field(collection_ids(&["nope".into()]), "`collection_ids[0]`");
        field(
            collection_ids(&vec![
                CollectionId::new().to_string();
                docent_core::bots::MAX_COLLECTIONS + 1
            ]),
            "`collection_ids`",
        );
        field(retrieval_mode("bm25"), "`retrieval.mode`");
        let merged = retrieval(
            BotRetrieval {
                top_k: 3,
                mode: RetrievalMode::Keyword,
                min_score: Some(0.5),
            },
            BotRetrievalInput {
                top_k: Some(9),
                mode: None,
                min_score: Some(None),
            },
        )
        .unwrap();
        assert_eq!(merged.top_k, 9);
        assert_eq!(merged.mode, RetrievalMode::Keyword);
        assert_eq!(merged.min_score, None);
    }

    #[test]
    fn service_field_names_become_wire_names() {
        let e = wire_names(Error::new(
            Code::CollectionNotFound,
            "`collections[1]`: collection x not found",
        ));
        assert_eq!(e.0.message, "`collection_ids[1]`: collection x not found");
        assert_eq!(e.0.code, Code::CollectionNotFound);
        let e = wire_names(Error::new(Code::InvalidField, "`name` must not be empty"));
        assert_eq!(e.0.message, "`name` must not be empty");
    }
}
