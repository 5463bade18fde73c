//! Chat with a bot: `POST /api/v1/bots/{id}/chat` (JSON, or server-sent events with
//! `"stream": true` or `Accept: text/event-stream`), the seed alias `POST /api/chat`, and the
//! OpenAI-compatible `POST /v1/chat/completions` where `model` names a bot (its id or name), so
//! OpenAI SDKs can talk to a bot.
//!
//! Server-sent events of the docent routes: `start` (conversation and sources), `delta`
//! (answer text), then `done` (the whole reply, as the JSON answer) or `error` (the error
//! envelope). `start` lists every source `done` may cite, as `done` lists them (an extractive
//! answer's sources are its quoted sentences). The OpenAI route streams `chat.completion.chunk` objects and `[DONE]`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use docent_core::chat::{ChatEvent, ChatInput, ChatReply, Source};
use docent_domain::llm::ChatMessage;
use docent_domain::{BotId, Code, ConversationId, PageRequest, Principal};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Auth, id};

/// A question to a bot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequestBody {
    /// The question.
    pub message: String,
    /// Continue this conversation (default: start one).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Answer as server-sent events (also chosen by `Accept: text/event-stream`).
    #[serde(default)]
    pub stream: bool,
}

/// The seed route's question: the bot is named in the body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedChatRequest {
    /// The bot.
    pub bot_id: String,
    /// The question.
    pub message: String,
    /// Continue this conversation (default: start one).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
}

/// A passage the answer may cite.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceDto {
    /// Its `[n]` number.
    pub marker: u32,
    /// Document.
    pub document_id: String,
    /// The document's file name.
    pub filename: String,
    /// Chunk.
    pub chunk_id: String,
    /// Page, when known.
    pub page: Option<u32>,
    /// Start char offset in the document's extracted text.
    pub char_start: u64,
    /// End char offset (exclusive).
    pub char_end: u64,
    /// The beginning of the passage (or the quoted sentence of an extractive answer).
    pub quote: String,
    /// Search score.
    pub score: f32,
}

impl From<&Source> for SourceDto {
    fn from(s: &Source) -> Self {
        Self {
            marker: s.marker,
            document_id: s.document_id.to_string(),
            filename: s.filename.clone(),
            chunk_id: s.chunk_id.to_string(),
            page: s.page,
            char_start: s.char_start,
            char_end: s.char_end,
            quote: s.quote.clone(),
            score: s.score,
        }
    }
}

/// Token use reported by the model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageDto {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Both.
    pub total_tokens: u32,
}

/// A bot's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatResponse {
    /// The conversation (continue it with `conversation_id`; only its starter may). For a
    /// read-only API key nothing is stored: a fresh id that cannot be continued.
    pub conversation_id: String,
    /// The stored answer message.
    pub message_id: String,
    /// The answer with `[n]` citation markers.
    pub answer: String,
    /// `model`, `extractive` (no model configured) or `no_answer` (nothing relevant found).
    pub answered_by: String,
    /// The model that wrote it, when one did.
    pub model: Option<String>,
    /// The sources the answer cites, by marker.
    pub citations: Vec<SourceDto>,
    /// Every source the answer was given.
    pub sources: Vec<SourceDto>,
    /// Token use, when the model reported it.
    pub usage: Option<UsageDto>,
}

fn usage_dto(u: &docent_domain::llm::Usage) -> UsageDto {
    UsageDto {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
    }
}

impl From<&ChatReply> for ChatResponse {
    fn from(r: &ChatReply) -> Self {
        Self {
            conversation_id: r.conversation_id.to_string(),
            message_id: r.message_id.to_string(),
            answer: r.answer.clone(),
            answered_by: r.answered_by.kind().to_owned(),
            model: match &r.answered_by {
                docent_core::chat::AnsweredBy::Model(m) => Some(m.clone()),
                _ => None,
            },
            citations: r.citations.iter().map(SourceDto::from).collect(),
            sources: r.sources.iter().map(SourceDto::from).collect(),
            usage: r.usage.as_ref().map(usage_dto),
        }
    }
}

fn wants_stream(stream: bool, headers: &HeaderMap) -> bool {
    stream
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

fn error_json(e: &ApiError) -> String {
    serde_json::to_string(&e.envelope()).unwrap_or_else(|_| "{}".into())
}

/// The data of a `start` event (serialized as `done`'s sources are, so a source reads the
/// same in both: a score through `serde_json::Value` would show its f32 widened to f64).
#[derive(Serialize)]
struct StartEvent {
    conversation_id: String,
    sources: Vec<SourceDto>,
}

/// The docent event stream.
fn sse(events: impl Stream<Item = ChatEvent> + Send + 'static) -> Response {
    let events = events.map(|e| {
        let event = match e {
            ChatEvent::Started {
                conversation_id,
                sources,
            } => Event::default().event("start").data(
                serde_json::to_string(&StartEvent {
                    conversation_id: conversation_id.to_string(),
                    sources: sources.iter().map(SourceDto::from).collect(),
                })
                .unwrap_or_else(|_| "{}".into()),
            ),
            ChatEvent::Delta(text) => Event::default()
                .event("delta")
                .data(serde_json::json!({ "text": text }).to_string()),
            ChatEvent::Done(reply) => Event::default().event("done").data(
                serde_json::to_string(&ChatResponse::from(reply.as_ref()))
                    .unwrap_or_else(|_| "{}".into()),
            ),
            ChatEvent::Failed(e) => Event::default()
                .event("error")
                .data(error_json(&ApiError::from(e))),
        };
        Ok::<_, Infallible>(event)
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn run_chat(
    s: &AppState,
    p: &Principal,
    bot: BotId,
    message: String,
    conversation: Option<String>,
    stream: bool,
) -> ApiResult<Response> {
    let conversation = conversation
        .as_deref()
        .map(|c| {
            c.parse::<ConversationId>().map_err(|_| {
                ApiError::new(
                    Code::InvalidField,
                    "`conversation_id` is not a valid conversation id",
                )
            })
        })
        .transpose()?;
    let input = ChatInput {
        message,
        conversation,
        history: Vec::new(),
        store: true,
    };
    if stream {
        let events = s.services.chat_stream(p, bot, input).await?;
        return Ok(sse(events));
    }
    let reply = s.services.chat(p, bot, input).await?;
    Ok(Json(ChatResponse::from(&reply)).into_response())
}

/// Asks a bot: retrieval over its collections, then an answer citing the sources as `[n]`
/// (by the configured model, or extractive without one). JSON, or server-sent events
/// (`start`, `delta`…, `done` | `error`) with `"stream": true` or `Accept: text/event-stream`;
/// the sources of `start` are those of `done`, so every marker `done` cites is among them.
#[utoipa::path(post, path = "/api/v1/bots/{id}/chat", tag = "bots", params(("id" = String, Path, description = "bot id")),
    request_body = ChatRequestBody,
    responses((status = 200, body = ChatResponse, description = "the answer (or an event stream)"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub(crate) async fn chat(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChatRequestBody>,
) -> ApiResult<Response> {
    let bot: BotId = id(&raw, "bot")?;
    let stream = wants_stream(body.stream, &headers);
    run_chat(&s, &p, bot, body.message, body.conversation_id, stream).await
}

/// Seed alias of `POST /api/v1/bots/{id}/chat` with the bot named in the body.
#[utoipa::path(post, path = "/api/chat", tag = "compat", request_body = SeedChatRequest,
    responses((status = 200, body = ChatResponse), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub(crate) async fn seed_chat(
    State(s): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SeedChatRequest>,
) -> ApiResult<Response> {
    let bot: BotId = body
        .bot_id
        .parse()
        .map_err(|_| ApiError::new(Code::InvalidField, "`bot_id` is not a valid bot id"))?;
    let stream = wants_stream(body.stream, &headers);
    run_chat(&s, &p, bot, body.message, body.conversation_id, stream).await
}

/// One message of an OpenAI chat request. `content` may be a string or a list of parts (only
/// text parts are read).
#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenAiMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or `[{"type": "text", "text": "..."}]`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
}

/// An OpenAI chat completion request; `model` names a bot (id or name). Sampling fields
/// (`temperature`, `max_tokens`…) are accepted and ignored: the bot's settings apply. What a
/// bot cannot honour is refused with `400 invalid_field` rather than ignored: `n` above 1,
/// `tools` / `functions` (and a `tool_choice` / `function_call` other than `none`), and a
/// `response_format` other than `text`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenAiChatRequest {
    /// The bot's id or name.
    pub model: String,
    /// The conversation; the last user message is the question.
    pub messages: Vec<OpenAiMessage>,
    /// Stream `chat.completion.chunk` events.
    #[serde(default)]
    pub stream: bool,
    /// `{"include_usage": true}` adds a last chunk with `usage` (and no choices) to a stream.
    #[serde(default)]
    pub stream_options: Option<OpenAiStreamOptions>,
    /// Number of answers: only 1.
    #[serde(default)]
    pub n: Option<u32>,
    /// Refused: bots do not call tools.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tools: Option<serde_json::Value>,
    /// Refused unless `none`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<serde_json::Value>,
    /// Refused (the legacy form of `tools`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub functions: Option<serde_json::Value>,
    /// Refused unless `none`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub function_call: Option<serde_json::Value>,
    /// Refused unless `{"type": "text"}`: answers are cited prose.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<serde_json::Value>,
}

/// OpenAI's `stream_options`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OpenAiStreamOptions {
    /// Send token use in a last chunk.
    #[serde(default)]
    pub include_usage: bool,
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(Code::InvalidField, message)
}

/// Refuses the parameters a bot cannot honour, naming each (an SDK user sees why).
fn refuse_unsupported(body: &OpenAiChatRequest) -> ApiResult<()> {
    fn present(v: &Option<serde_json::Value>) -> bool {
        match v {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        }
    }
    fn is_none_choice(v: &Option<serde_json::Value>) -> bool {
        matches!(v, None | Some(serde_json::Value::Null))
            || v.as_ref().and_then(|v| v.as_str()) == Some("none")
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(unsupported(
            "`n` must be 1: a bot gives one answer per request".into(),
        ));
    }
    if present(&body.tools) || present(&body.functions) {
        return Err(unsupported(
            "`tools` and `functions` are not supported: a bot answers from its documents and \
             calls no tools"
                .into(),
        ));
    }
    if !is_none_choice(&body.tool_choice) || !is_none_choice(&body.function_call) {
        return Err(unsupported(
            "`tool_choice` and `function_call` are not supported (only `none`)".into(),
        ));
    }
    if let Some(format) = body.response_format.as_ref().filter(|v| !v.is_null()) {
        let kind = format["type"].as_str().unwrap_or("");
        if kind != "text" {
            return Err(unsupported(format!(
                "`response_format` `{}` is not supported: a bot answers in cited text (only \
                 `text`)",
                kind.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Word pieces of `text`: the embedder's tokenizer when it has one, else one piece per run of
/// letters or digits and per other visible character, so counts are consistent whatever
/// answered (a model's own report is used where it gives one).
pub(crate) fn count_tokens(s: &AppState, text: &str) -> u32 {
    let n = s
        .services
        .embedder
        .as_deref()
        .and_then(|e| e.count_tokens(text))
        .unwrap_or_else(|| word_pieces(text));
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn word_pieces(text: &str) -> usize {
    let mut n = 0;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if !in_word {
                n += 1;
            }
            in_word = true;
        } else {
            in_word = false;
            if !c.is_whitespace() {
                n += 1;
            }
        }
    }
    n
}

/// The usage of a completion: the model's report, or counted (an extractive answer, or a
/// provider that reports none).
fn completion_usage(
    s: &AppState,
    reported: Option<&docent_domain::llm::Usage>,
    prompt: &str,
    answer: &str,
) -> serde_json::Value {
    let u = match reported {
        Some(u) => usage_dto(u),
        None => {
            let prompt_tokens = count_tokens(s, prompt);
            let completion_tokens = count_tokens(s, answer);
            UsageDto {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens.saturating_add(completion_tokens),
            }
        }
    };
    serde_json::json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    })
}

fn text_of(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The bot `model` names: an id, or a name in the caller's scope.
pub(crate) async fn bot_by_model(s: &AppState, p: &Principal, model: &str) -> ApiResult<BotId> {
    if let Ok(bot) = model.parse::<BotId>() {
        return Ok(bot);
    }
    let mut cursor = None;
    loop {
        let page = s
            .services
            .list_bots(p, PageRequest { limit: 200, cursor })
            .await?;
        if let Some(b) = page.items.iter().find(|b| b.name == model) {
            return Ok(b.id);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => {
                return Err(ApiError::new(
                    Code::BotNotFound,
                    format!(
                        "no bot named `{}`: `model` must be a bot's id or name",
                        model.chars().take(100).collect::<String>()
                    ),
                ));
            }
        }
    }
}

/// Most messages in one `/v1/chat/completions` request.
pub const MAX_COMPLETION_MESSAGES: usize = 100;
/// Most characters of text in one `/v1/chat/completions` request, all messages together.
pub const MAX_COMPLETION_CHARS: usize = 200_000;

fn completion_id(reply_id: &str) -> String {
    format!("chatcmpl-{}", reply_id.replace('-', ""))
}

/// OpenAI-compatible chat completions where `model` names a bot: existing OpenAI SDKs can talk
/// to a bot. The answer's citations come along in a `citations` field; `usage` is always
/// reported (the model's counts, or word pieces counted here for an extractive answer), and in
/// a stream with `stream_options.include_usage`. At most 100 messages and 200,000 characters
/// per request; `n` > 1, `tools` and a non-text `response_format` are refused (`400
/// invalid_field` for each).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "compat", request_body = OpenAiChatRequest,
    responses((status = 200, description = "an OpenAI `chat.completion` (or a stream of `chat.completion.chunk`)"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub(crate) async fn openai_completions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<OpenAiChatRequest>,
) -> ApiResult<Response> {
    // The caller sends the whole history each time: bounded, before anything is looked up.
    if body.messages.len() > MAX_COMPLETION_MESSAGES {
        return Err(ApiError::new(
            Code::InvalidField,
            format!("`messages` holds more than {MAX_COMPLETION_MESSAGES} messages"),
        ));
    }
    let chars: usize = body
        .messages
        .iter()
        .map(|m| text_of(&m.content).chars().count())
        .sum();
    if chars > MAX_COMPLETION_CHARS {
        return Err(ApiError::new(
            Code::InvalidField,
            format!("`messages` holds more than {MAX_COMPLETION_CHARS} characters"),
        ));
    }
    refuse_unsupported(&body)?;
    let bot = bot_by_model(&s, &p, &body.model).await?;
    let Some(last_user) = body.messages.iter().rposition(|m| m.role == "user") else {
        return Err(ApiError::new(
            Code::InvalidField,
            "`messages` must contain a user message",
        ));
    };
    let question = text_of(&body.messages[last_user].content);
    // Earlier user and assistant turns are the history; system prompts are the bot's own.
    let history: Vec<ChatMessage> = body.messages[..last_user]
        .iter()
        .filter_map(|m| match m.role.as_str() {
            "user" => Some(ChatMessage::user(text_of(&m.content))),
            "assistant" => Some(ChatMessage::assistant(text_of(&m.content))),
            _ => None,
        })
        .collect();
    let input = ChatInput {
        message: question,
        conversation: None,
        history,
        store: false,
    };
    // What the caller sent, for counting prompt tokens when no model reports them.
    let prompt: String = body
        .messages
        .iter()
        .map(|m| text_of(&m.content))
        .collect::<Vec<_>>()
        .join("\n");
    let model = body.model.clone();
    let created = chrono::Utc::now().timestamp();
    if !body.stream {
        let reply = s.services.chat(&p, bot, input).await?;
        let usage = completion_usage(&s, reply.usage.as_ref(), &prompt, &reply.answer);
        let cited: Vec<SourceDto> = reply.citations.iter().map(SourceDto::from).collect();
        return Ok(Json(serde_json::json!({
            "id": completion_id(&reply.message_id.to_string()),
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply.answer},
                "finish_reason": "stop",
            }],
            "usage": usage,
            "citations": cited,
        }))
        .into_response());
    }
    let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
    let events = s.services.chat_stream(&p, bot, input).await?;
    let id = completion_id(&uuid::Uuid::now_v7().to_string());
    let usage_chunk = {
        let (id, model, state) = (id.clone(), model.clone(), s.clone());
        move |reply: &ChatReply| {
            serde_json::json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": completion_usage(&state, reply.usage.as_ref(), &prompt, &reply.answer),
            })
        }
    };
    let chunk = move |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let events = events
        .flat_map(move |e| {
            let out: Vec<String> = match e {
                ChatEvent::Started { .. } => {
                    vec![
                        chunk(
                            serde_json::json!({"role": "assistant", "content": ""}),
                            None,
                        )
                        .to_string(),
                    ]
                }
                ChatEvent::Delta(text) => {
                    vec![chunk(serde_json::json!({"content": text}), None).to_string()]
                }
                ChatEvent::Done(reply) => {
                    let mut last = chunk(serde_json::json!({}), Some("stop"));
                    last["citations"] = serde_json::json!(
                        reply
                            .citations
                            .iter()
                            .map(SourceDto::from)
                            .collect::<Vec<_>>()
                    );
                    if let Some(u) = reply.usage.as_ref().map(usage_dto) {
                        last["usage"] = serde_json::json!({
                            "prompt_tokens": u.prompt_tokens,
                            "completion_tokens": u.completion_tokens,
                            "total_tokens": u.total_tokens,
                        });
                    }
                    let mut out = vec![last.to_string()];
                    if include_usage {
                        // OpenAI's shape: a last chunk with no choices, carrying the usage.
                        out.push(usage_chunk(reply.as_ref()).to_string());
                    }
                    out.push("[DONE]".to_owned());
                    out
                }
                ChatEvent::Failed(e) => vec![error_json(&ApiError::from(e))],
            };
            futures::stream::iter(out)
        })
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
