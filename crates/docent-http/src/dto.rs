//! Wire types: what the API accepts and returns. Domain types stay free of serialization;
//! these mirror them for JSON and the OpenAPI schema.

use chrono::{DateTime, Utc};
use docent_domain as d;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// A persisted error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// Stable code.
    pub code: String,
    /// Message.
    pub message: String,
}

impl From<&d::ErrorInfo> for ErrorInfo {
    fn from(e: &d::ErrorInfo) -> Self {
        Self {
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }
}

/// A collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct Collection {
    /// Id.
    pub id: String,
    /// Name (unique).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// User metadata.
    pub metadata: Map<String, Value>,
    /// Embedding model of its vectors, once it has some.
    pub embedding_model: Option<String>,
    /// Their dimension.
    pub embedding_dim: Option<u32>,
    /// Language keyword search analyses its text in (ISO 639-1 code, or `none`).
    pub language: String,
    /// Documents in it.
    pub document_count: u64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<d::Collection> for Collection {
    fn from(c: d::Collection) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name,
            description: c.description,
            metadata: c.metadata,
            embedding_model: c.embedding_model,
            embedding_dim: c.embedding_dim,
            language: c.language.as_str().to_owned(),
            document_count: c.document_count,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Body of `POST /api/v1/collections`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// Name, unique in the workspace (1–128 characters).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// User metadata (a JSON object).
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Language of the text, for keyword search's stemming and stop words: an ISO 639-1 code
    /// (ar, da, de, el, en, es, fi, fr, hu, it, nl, no, pt, ro, ru, sv, ta, tr) or `none`.
    /// Default `en`. Fixed once the collection exists.
    #[serde(default)]
    pub language: Option<String>,
}

/// Body of `PATCH /api/v1/collections/{id}`; absent fields are left alone, `"description": null`
/// clears the description.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollection {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Replacement metadata.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A field that may be absent (`None`: leave it alone), `null` (`Some(None)`: clear it) or set.
fn double_option<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Document {
    /// Id.
    pub id: String,
    /// Collection.
    pub collection_id: String,
    /// File name.
    pub filename: String,
    /// MIME type declared at upload.
    pub declared_mime: String,
    /// Type detected from the bytes.
    pub detected_type: Option<String>,
    /// Size of the original.
    pub size_bytes: u64,
    /// Hex sha256 of the original.
    pub sha256: String,
    /// pending, processing, processing_chunks, completed, partially_completed, failed, cancelled.
    pub status: String,
    /// Why processing failed.
    pub error: Option<ErrorInfo>,
    /// User metadata.
    pub metadata: Map<String, Value>,
    /// Pages, when known.
    pub page_count: Option<u32>,
    /// Chunks stored.
    pub chunk_count: u32,
    /// The task processing it.
    pub task_id: Option<String>,
    /// Uploaded.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<d::Document> for Document {
    fn from(x: d::Document) -> Self {
        Self {
            id: x.id.to_string(),
            collection_id: x.collection_id.to_string(),
            filename: x.filename,
            declared_mime: x.declared_mime,
            detected_type: x.detected_type,
            size_bytes: x.size_bytes,
            sha256: x.sha256,
            status: x.status.as_str().into(),
            error: x.error.as_ref().map(Into::into),
            metadata: x.metadata,
            page_count: x.page_count,
            chunk_count: x.chunk_count,
            task_id: x.task_id.map(|t| t.to_string()),
            created_at: x.created_at,
            updated_at: x.updated_at,
        }
    }
}

/// Progress counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Chunks (rows) to process.
    pub chunks_total: u64,
    /// Processed.
    pub chunks_done: u64,
    /// Failed rows.
    pub rows_failed: u64,
}

/// A task.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    /// Id.
    pub id: String,
    /// What it does.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Document concerned.
    pub document_id: Option<String>,
    /// Collection concerned.
    pub collection_id: Option<String>,
    /// Times leased.
    pub attempts: u32,
    /// Leases allowed before dead-lettering.
    pub max_attempts: u32,
    /// Progress.
    pub progress: Progress,
    /// Last error.
    pub error: Option<ErrorInfo>,
    /// Out of attempts; waits for an operator's retry.
    pub dead_lettered: bool,
    /// Cancel requested while running.
    pub cancel_requested: bool,
    /// Earliest next run.
    pub run_after: DateTime<Utc>,
    /// Current lease expiry.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<d::Task> for Task {
    fn from(t: d::Task) -> Self {
        Self {
            id: t.id.to_string(),
            kind: t.kind.as_str().into(),
            status: t.status.as_str().into(),
            document_id: t.document_id.map(|x| x.to_string()),
            collection_id: t.collection_id.map(|x| x.to_string()),
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            progress: Progress {
                chunks_total: t.progress.chunks_total,
                chunks_done: t.progress.chunks_done,
                rows_failed: t.progress.rows_failed,
            },
            error: t.error.as_ref().map(Into::into),
            dead_lettered: t.dead_lettered,
            cancel_requested: t.cancel_requested,
            run_after: t.run_after,
            lease_expires_at: t.lease_expires_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
            started_at: t.started_at,
            finished_at: t.finished_at,
        }
    }
}

/// A chunk of a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Chunk {
    /// Id (`{document}:{ordinal}`).
    pub id: String,
    /// Position.
    pub ordinal: u32,
    /// Text.
    pub text: String,
    /// Start char offset in the extracted text.
    pub char_start: u64,
    /// End char offset (exclusive).
    pub char_end: u64,
    /// Page, when known.
    pub page: Option<u32>,
    /// Headings above it.
    pub heading_path: Vec<String>,
    /// Extra metadata.
    pub metadata: Map<String, Value>,
}

impl From<d::Chunk> for Chunk {
    fn from(c: d::Chunk) -> Self {
        Self {
            id: c.id.to_string(),
            ordinal: c.id.ordinal,
            text: c.text,
            char_start: c.char_start,
            char_end: c.char_end,
            page: c.page,
            heading_path: c.heading_path,
            metadata: c.metadata,
        }
    }
}

/// Result of an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResult {
    /// The document (the existing one for a duplicate).
    pub document: Document,
    /// Its task.
    pub task: Option<Task>,
    /// Identical bytes were already in the collection.
    pub duplicate: bool,
}

/// Body of `POST /api/v1/collections/{id}/documents/lookup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentLookupRequest {
    /// The hex sha256 of each content to look for (at most 200).
    pub sha256: Vec<String>,
}

/// Which of the contents asked for a collection holds, and the largest upload it takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentLookup {
    /// The collection's documents holding one of the contents, newest first, each with its
    /// processing status (a content the collection lacks is simply absent).
    pub items: Vec<Document>,
    /// The largest file an upload may send, in bytes (`ingest.max_upload_size`): a client can
    /// leave out a file that would be refused instead of sending it.
    pub max_upload_size: u64,
}

macro_rules! list_type {
    ($name:ident, $item:ty) => {
        /// One page of results.
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            /// Items, newest first.
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; null on the last page.
            pub next_cursor: Option<String>,
        }

        impl<D> From<d::Page<D>> for $name
        where
            $item: From<D>,
        {
            fn from(p: d::Page<D>) -> Self {
                Self {
                    items: p.items.into_iter().map(Into::into).collect(),
                    next_cursor: p.next_cursor,
                }
            }
        }
    };
}

list_type!(CollectionList, Collection);
list_type!(BotList, Bot);
list_type!(ConversationList, Conversation);
list_type!(DocumentList, Document);
list_type!(TaskList, Task);

/// The caller's tasks counted by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCounts {
    /// Every status with its count (zero included).
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Failed tasks that ran out of attempts (they are also counted as `failed`).
    pub dead_lettered: u64,
}

impl From<docent_domain::QueueDepth> for TaskCounts {
    fn from(d: docent_domain::QueueDepth) -> Self {
        let by_status = docent_domain::TaskStatus::ALL
            .iter()
            .map(|&s| {
                let n = d
                    .by_status
                    .iter()
                    .filter(|(t, _)| *t == s)
                    .map(|(_, n)| n)
                    .sum();
                (s.as_str().to_owned(), n)
            })
            .collect();
        Self {
            by_status,
            dead_lettered: d.dead_lettered,
        }
    }
}
list_type!(ChunkList, Chunk);

/// Pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Filters for listing documents.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only documents whose file name contains this text (case-insensitive).
    pub filename: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Filters for listing tasks.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only tasks of this document.
    pub document_id: Option<String>,
    /// Only tasks of this collection.
    pub collection_id: Option<String>,
    /// Only dead-lettered tasks (true) or only others (false).
    pub dead_lettered: Option<bool>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    /// docent version.
    pub version: &'static str,
}

/// Readiness of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// `ok`, or the failure, per dependency (database, blob_store, queue).
    pub checks: Map<String, Value>,
}

/// One row of the error code table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorCodeInfo {
    /// Code.
    pub code: &'static str,
    /// Class.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Whether retrying later may succeed.
    pub retryable: bool,
}

/// How a bot retrieves the passages it answers from.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotRetrieval {
    /// Passages handed to the model per question (1–50).
    pub top_k: u32,
    /// `hybrid`, `keyword` or `vector`.
    pub mode: &'static str,
    /// Passages whose fused search `score` is below this are dropped; null keeps all `top_k`.
    /// The scale is the fusion's: 0–1 with weighted fusion (the default), at most 2 / (k + 1)
    /// with `rrf`.
    pub min_score: Option<f32>,
}

/// A bot: a system prompt and model settings answering from some of the workspace's
/// collections.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bot {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Instructions given to the model (empty: the server's default instructions).
    pub system_prompt: String,
    /// Chat model; null: the server's default model.
    pub model: Option<String>,
    /// Sampling temperature (0–2).
    pub temperature: f32,
    /// Longest answer in model tokens; null: the model's default.
    pub max_tokens: Option<u32>,
    /// Collections it answers from, in order.
    pub collection_ids: Vec<String>,
    /// Retrieval settings.
    pub retrieval: BotRetrieval,
    /// First message the widget shows.
    pub welcome_message: Option<String>,
    /// Browser origins (`https://host[:port]`) its widget may be embedded in.
    pub allowed_origins: Vec<String>,
    /// Widget settings.
    pub widget: BotWidget,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A bot's widget settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct BotWidget {
    /// What visitors see of cited sources: `none` (only the `[n]` numbers; the default),
    /// `names` (document file names) or `snippets` (names and the passage's opening words).
    pub sources: &'static str,
    /// Accent colour `#rrggbb`; null: the widget's own.
    pub color: Option<String>,
}

/// Widget settings in a request; on update, absent fields keep their current value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotWidgetInput {
    /// `none` (default), `names` or `snippets`.
    #[serde(default)]
    pub sources: Option<String>,
    /// Accent colour `#rrggbb`; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub color: Option<Option<String>>,
}

impl From<d::Bot> for Bot {
    fn from(b: d::Bot) -> Self {
        Self {
            id: b.id.to_string(),
            name: b.name,
            description: b.description,
            system_prompt: b.system_prompt,
            model: b.model,
            temperature: b.temperature,
            max_tokens: b.max_tokens,
            collection_ids: b.collections.iter().map(ToString::to_string).collect(),
            retrieval: BotRetrieval {
                top_k: b.retrieval.top_k,
                mode: b.retrieval.mode.as_str(),
                min_score: b.retrieval.min_score,
            },
            welcome_message: b.welcome_message,
            allowed_origins: b.allowed_origins,
            widget: BotWidget {
                sources: b.widget.sources.as_str(),
                color: b.widget.color,
            },
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// Retrieval settings in a request; absent fields keep their default (create) or current
/// value (update).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotRetrievalInput {
    /// Passages per question (1–50, default 8).
    #[serde(default)]
    pub top_k: Option<u32>,
    /// `hybrid` (default), `keyword` or `vector`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Minimum fused passage score (at least 0; 0–1 with weighted fusion, the default, at most
    /// 2 / (k + 1) with `rrf`); null: no minimum.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f32>)]
    pub min_score: Option<Option<f32>>,
}

/// Body of `POST /api/v1/bots`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBot {
    /// Display name (1–200 characters).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Instructions given to the model (default: the server's default instructions).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Chat model (default: the server's default model).
    #[serde(default)]
    pub model: Option<String>,
    /// Sampling temperature, 0–2 (default 0.2).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Longest answer in model tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Collections of the workspace it answers from.
    #[serde(default)]
    pub collection_ids: Vec<String>,
    /// Retrieval settings.
    #[serde(default)]
    pub retrieval: Option<BotRetrievalInput>,
    /// First message the widget shows.
    #[serde(default)]
    pub welcome_message: Option<String>,
    /// Browser origins its widget may be embedded in: `http(s)://host[:port]`, no path or
    /// wildcard. Empty (the default): the widget works nowhere.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Widget settings.
    #[serde(default)]
    pub widget: Option<BotWidgetInput>,
}

/// Body of `PATCH /api/v1/bots/{id}`: absent fields are left alone, `null` clears an optional
/// one (`model: null`: back to the server's default). Lists are replaced whole; `retrieval`
/// fields are changed one by one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBot {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// New model.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    /// New temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// New answer length limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_tokens: Option<Option<u32>>,
    /// New collections.
    #[serde(default)]
    pub collection_ids: Option<Vec<String>>,
    /// Retrieval settings to change.
    #[serde(default)]
    pub retrieval: Option<BotRetrievalInput>,
    /// New welcome message.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub welcome_message: Option<Option<String>>,
    /// New widget origins.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// Widget settings to change.
    #[serde(default)]
    pub widget: Option<BotWidgetInput>,
}

/// A conversation with a bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct Conversation {
    /// Id.
    pub id: String,
    /// The bot it talks to.
    pub bot_id: String,
    /// `api` (the API, the console, the CLI) or `widget` (an anonymous visitor of the
    /// bot's website widget).
    pub source: &'static str,
    /// The widget key a widget conversation came through (null: the API, or the console's
    /// preview).
    pub widget_key_id: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Started.
    pub created_at: DateTime<Utc>,
    /// Time of the last message.
    pub updated_at: DateTime<Utc>,
}

impl From<d::Conversation> for Conversation {
    fn from(c: d::Conversation) -> Self {
        let widget_key_id = match c.owner {
            Some(d::ConversationOwner::Visitor { key, .. }) => key.map(|k| k.to_string()),
            _ => None,
        };
        Self {
            id: c.id.to_string(),
            bot_id: c.bot_id.to_string(),
            source: if c.from_widget() { "widget" } else { "api" },
            widget_key_id,
            title: c.title,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A passage an answer cites; `[marker]` in the message text points at it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Citation {
    /// The `n` of `[n]` in the text, from 1.
    pub marker: u32,
    /// The cited document.
    pub document_id: String,
    /// The cited chunk.
    pub chunk_id: String,
    /// Page, when known.
    pub page: Option<u32>,
    /// Start char offset in the document's extracted text.
    pub char_start: u64,
    /// End char offset (exclusive).
    pub char_end: u64,
}

impl From<d::Citation> for Citation {
    fn from(c: d::Citation) -> Self {
        Self {
            marker: c.marker,
            document_id: c.document_id.to_string(),
            chunk_id: c.chunk_id.to_string(),
            page: c.page,
            char_start: c.char_start,
            char_end: c.char_end,
        }
    }
}

/// Model tokens an answer took.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageUsage {
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens of the answer.
    pub completion_tokens: u32,
}

/// A message in a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// Id.
    pub id: String,
    /// The conversation.
    pub conversation_id: String,
    /// `user`, `assistant` or `system`.
    pub role: &'static str,
    /// Text.
    pub content: String,
    /// Passages cited by `[n]` markers in the text.
    pub citations: Vec<Citation>,
    /// Tokens used (answers, when the model reports them).
    pub usage: Option<MessageUsage>,
    /// Written.
    pub created_at: DateTime<Utc>,
}

impl From<d::Message> for Message {
    fn from(m: d::Message) -> Self {
        Self {
            id: m.id.to_string(),
            conversation_id: m.conversation_id.to_string(),
            role: m.role.as_str(),
            content: m.content,
            citations: m.citations.into_iter().map(Into::into).collect(),
            usage: m.usage.map(|u| MessageUsage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            }),
            created_at: m.created_at,
        }
    }
}

/// One page of a conversation's messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// Messages, oldest first.
    pub items: Vec<Message>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<d::Page<d::Message>> for MessageList {
    fn from(p: d::Page<d::Message>) -> Self {
        Self {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}
