//! The rest of the OpenAI-compatible surface beside chat completions (which live in
//! [`super::chat`]): `GET /v1/models` and `GET /v1/models/{id}`, where each model is a bot the
//! caller can see (so model pickers of OpenAI clients list the bots), and `POST /v1/embeddings`,
//! which serves the configured embedding model (a drop-in local embedding server).
//!
//! Errors keep docent's envelope, which is OpenAI's shape: `{"error": {"message", "type",
//! "code"}}`, so OpenAI SDKs raise their usual exceptions.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine as _;
use docent_domain::{Bot, Code, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::chat::{bot_by_model, count_tokens};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Auth};

/// Most bots `GET /v1/models` lists (OpenAI's list has no pages).
pub const MAX_MODELS: usize = 1000;
/// Most texts in one `/v1/embeddings` request.
pub const MAX_EMBEDDING_INPUTS: usize = 256;
/// Most characters in one `/v1/embeddings` request, all texts together.
pub const MAX_EMBEDDING_CHARS: usize = 200_000;

/// An OpenAI model object: one bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    /// The bot's id (its name works as `model` too).
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// When the bot was created, in Unix seconds.
    pub created: i64,
    /// Always `docent`.
    pub owned_by: &'static str,
    /// The bot's name, for pickers that show one.
    pub name: String,
}

impl From<&Bot> for ModelObject {
    fn from(b: &Bot) -> Self {
        Self {
            id: b.id.to_string(),
            object: "model",
            created: b.created_at.timestamp(),
            owned_by: "docent",
            name: b.name.clone(),
        }
    }
}

/// OpenAI's model list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// The bots, newest first.
    pub data: Vec<ModelObject>,
}

/// The bots the caller can see, as OpenAI models (at most 1,000, newest first): what a model
/// picker of an OpenAI client lists. A key limited to some bots sees only those.
#[utoipa::path(get, path = "/v1/models", tag = "compat",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn list_models(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<ModelList>> {
    let mut data = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .services
            .list_bots(&p, PageRequest { limit: 200, cursor })
            .await?;
        data.extend(page.items.iter().map(ModelObject::from));
        match page.next_cursor {
            Some(c) if data.len() < MAX_MODELS => cursor = Some(c),
            _ => break,
        }
    }
    data.truncate(MAX_MODELS);
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// One bot as an OpenAI model, by id or name; `404 bot_not_found` when the caller cannot see it.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "compat",
    params(("id" = String, Path, description = "the bot's id or name")),
    responses((status = 200, body = ModelObject), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get_model(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<ModelObject>> {
    let id = bot_by_model(&s, &p, &raw).await?;
    let bot = s.services.get_bot(&p, id).await?;
    Ok(Json(ModelObject::from(&bot)))
}

/// An OpenAI embeddings request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// Required by OpenAI's shape; any value is accepted: the configured embedding model
    /// answers, and the response's `model` names it.
    #[allow(dead_code)] // required by the shape, not read
    pub model: String,
    /// A text, or a list of texts (at most 256, 200,000 characters together). Token-id arrays
    /// are refused.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// `float` (default) or `base64` (little-endian `f32`s).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Accepted only when it equals the model's dimension. Other fields (`user`) are ignored.
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// One vector.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingObject {
    /// Always `embedding`.
    pub object: &'static str,
    /// Position of its text in `input`.
    pub index: usize,
    /// The L2-normalised vector: numbers, or a base64 string with `encoding_format: base64`.
    #[schema(value_type = Object)]
    pub embedding: serde_json::Value,
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Word pieces of the input.
    pub prompt_tokens: u32,
    /// The same.
    pub total_tokens: u32,
}

/// OpenAI's embeddings response.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    /// One vector per input text, in order.
    pub data: Vec<EmbeddingObject>,
    /// The embedding model that answered.
    pub model: String,
    /// Token counts.
    pub usage: EmbeddingUsage,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidField, message)
}

/// The texts of `input`, bounded.
fn texts_of(input: serde_json::Value) -> ApiResult<Vec<String>> {
    let texts = match input {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => {
            if items.len() > MAX_EMBEDDING_INPUTS {
                return Err(invalid(format!(
                    "`input` holds more than {MAX_EMBEDDING_INPUTS} texts"
                )));
            }
            items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(invalid(
                        "`input` must be a string or a list of strings (token ids are not \
                         supported)",
                    )),
                })
                .collect::<ApiResult<Vec<_>>>()?
        }
        _ => {
            return Err(invalid("`input` must be a string or a list of strings"));
        }
    };
    if texts.is_empty() {
        return Err(invalid("`input` must hold at least one text"));
    }
    if texts.iter().any(|t| t.trim().is_empty()) {
        return Err(invalid("`input` must not hold empty texts"));
    }
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    if chars > MAX_EMBEDDING_CHARS {
        return Err(invalid(format!(
            "`input` holds more than {MAX_EMBEDDING_CHARS} characters"
        )));
    }
    Ok(texts)
}

/// Embeds texts with the configured embedding model, in OpenAI's shape, so OpenAI clients can
/// use docent as an embedding server. `model` may name anything (the response names the model
/// that answered); at most 256 texts and 200,000 characters per request. A text longer than
/// the model reads (256 word pieces for the local model) is truncated, as at ingest; `usage`
/// counts the whole text. `400 embedder_not_configured` when docent runs without an embedder.
#[utoipa::path(post, path = "/v1/embeddings", tag = "compat", request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingsResponse), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope)))]
pub(crate) async fn embeddings(
    State(s): State<AppState>,
    Auth(_p): Auth,
    ApiJson(body): ApiJson<EmbeddingsRequest>,
) -> ApiResult<Json<EmbeddingsResponse>> {
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(format!(
                "`encoding_format` `{}` is not supported (`float` or `base64`)",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let texts = texts_of(body.input)?;
    let Some(embedder) = s.services.embedder.clone() else {
        return Err(ApiError::new(
            Code::EmbedderNotConfigured,
            "no embedding model is configured on this server (set `[embedder]`)",
        ));
    };
    if let Some(d) = body.dimensions.filter(|d| *d != embedder.dimension()) {
        return Err(invalid(format!(
            "`dimensions` {d} is not supported: this model's vectors have {}",
            embedder.dimension()
        )));
    }
    let tokens = texts
        .iter()
        .map(|t| count_tokens(&s, t))
        .fold(0u32, u32::saturating_add);
    let vectors = embedder.embed(&texts).await?;
    if vectors.len() != texts.len() {
        return Err(ApiError::new(
            Code::Internal,
            "the embedder returned a different number of vectors",
        ));
    }
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingObject {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(v)
            },
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: embedder.model_id().to_owned(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}
