//! Bots, their conversations and the messages in them. A [`Bot`] is a system prompt and model
//! settings over some of its tenant's collections (what it retrieves from), with the browser
//! origins its widget may be embedded in. A [`Conversation`] belongs to one bot; its
//! [`Message`]s carry the [`Citation`]s of the passages an answer used.
//!
//! Plain data, no I/O and no serialization: the store maps these to rows, the HTTP layer to wire
//! types. The rules (limits, origin syntax, which collections a bot may name) are
//! `docent-core`'s; [`BotStore`](crate::ports::BotStore) is the storage port.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use crate::auth::BotId;
use crate::auth::{ApiKeyId, UserId};
use crate::error::{Code, Error};
use crate::ids::{ChunkId, CollectionId, DocumentId, IdParseError, TenantId};
use crate::model::string_enum;
use crate::widget::{VisitorHash, WidgetKeyId, WidgetSettings};

uuid_id!(
    /// A conversation with a bot.
    ConversationId
);
uuid_id!(
    /// A message in a conversation.
    MessageId
);

/// The code of "no such bot (in this tenant)"; every bot path builds its error with
/// [`bot_not_found`].
pub const BOT_NOT_FOUND: Code = Code::BotNotFound;

/// The code of "no such conversation (in this tenant)"; see [`BOT_NOT_FOUND`].
pub const CONVERSATION_NOT_FOUND: Code = Code::ConversationNotFound;

/// "bot {id} not found".
pub fn bot_not_found(id: BotId) -> Error {
    Error::new(BOT_NOT_FOUND, format!("bot {id} not found"))
}

/// "conversation {id} not found".
pub fn conversation_not_found(id: ConversationId) -> Error {
    Error::new(
        CONVERSATION_NOT_FOUND,
        format!("conversation {id} not found"),
    )
}

string_enum!(
    /// Which indexes a bot retrieves passages from (the search modes of `docent-core`).
    RetrievalMode {
        /// Keyword and vector candidates, fused.
        Hybrid => "hybrid",
        /// Keyword (BM25) only.
        Keyword => "keyword",
        /// Vectors only.
        Vector => "vector",
    }
);

// `string_enum!` derives a fixed set of traits, so the default is written out.
#[allow(clippy::derivable_impls)]
impl Default for RetrievalMode {
    fn default() -> Self {
        Self::Hybrid
    }
}

string_enum!(
    /// Who wrote a message.
    MessageRole {
        /// The person chatting.
        User => "user",
        /// The bot's answer.
        Assistant => "assistant",
        /// An instruction or notice recorded in the conversation.
        System => "system",
    }
);

/// How a bot retrieves the passages it answers from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BotRetrieval {
    /// Passages handed to the model per question.
    pub top_k: u32,
    /// Indexes consulted.
    pub mode: RetrievalMode,
    /// Passages whose fused search score is below this are dropped (on the scale of the
    /// server's fusion: 0–1 weighted, at most 2 / (k + 1) with RRF); `None` keeps every one
    /// of the `top_k`.
    pub min_score: Option<f32>,
}

impl BotRetrieval {
    /// Passages per question when none is asked for.
    pub const DEFAULT_TOP_K: u32 = 8;
}

impl Default for BotRetrieval {
    fn default() -> Self {
        Self {
            top_k: Self::DEFAULT_TOP_K,
            mode: RetrievalMode::Hybrid,
            min_score: None,
        }
    }
}

/// A bot: a system prompt and model settings answering from some of the tenant's collections.
#[derive(Debug, Clone, PartialEq)]
pub struct Bot {
    /// Id.
    pub id: BotId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Instructions given to the model before every conversation.
    pub system_prompt: String,
    /// Chat model name; `None`: the server's default model.
    pub model: Option<String>,
    /// Sampling temperature, `0.0..=2.0`.
    pub temperature: f32,
    /// Longest answer in model tokens; `None`: the model's default.
    pub max_tokens: Option<u32>,
    /// Collections it retrieves from, in the order given (all in the bot's tenant). A deleted
    /// collection leaves every bot that named it.
    pub collections: Vec<CollectionId>,
    /// Retrieval settings.
    pub retrieval: BotRetrieval,
    /// First message the widget shows.
    pub welcome_message: Option<String>,
    /// Browser origins (`https://host[:port]`) its widget may be embedded in.
    pub allowed_origins: Vec<String>,
    /// Widget settings.
    pub widget: WidgetSettings,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Bot {
    /// Temperature when none is asked for.
    pub const DEFAULT_TEMPERATURE: f32 = 0.2;
}

/// Input to create a bot.
#[derive(Debug, Clone, PartialEq)]
pub struct BotDraft {
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// System prompt (may be empty: the server's default instructions apply).
    pub system_prompt: String,
    /// Chat model name; `None` for the server's default.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Longest answer in tokens.
    pub max_tokens: Option<u32>,
    /// Collections to retrieve from.
    pub collections: Vec<CollectionId>,
    /// Retrieval settings.
    pub retrieval: BotRetrieval,
    /// Widget welcome message.
    pub welcome_message: Option<String>,
    /// Widget origins.
    pub allowed_origins: Vec<String>,
    /// Widget settings.
    pub widget: WidgetSettings,
}

impl Default for BotDraft {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            system_prompt: String::new(),
            model: None,
            temperature: Bot::DEFAULT_TEMPERATURE,
            max_tokens: None,
            collections: Vec::new(),
            retrieval: BotRetrieval::default(),
            welcome_message: None,
            allowed_origins: Vec::new(),
            widget: WidgetSettings::default(),
        }
    }
}

/// A partial update of a bot; `None` leaves a field alone, `Some(None)` clears an optional one.
/// Lists (collections, origins) and the retrieval settings are replaced whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<Option<String>>,
    /// New system prompt.
    pub system_prompt: Option<String>,
    /// New model (`Some(None)`: back to the server's default).
    pub model: Option<Option<String>>,
    /// New temperature.
    pub temperature: Option<f32>,
    /// New answer length limit.
    pub max_tokens: Option<Option<u32>>,
    /// New collections.
    pub collections: Option<Vec<CollectionId>>,
    /// New retrieval settings.
    pub retrieval: Option<BotRetrieval>,
    /// New welcome message.
    pub welcome_message: Option<Option<String>>,
    /// New widget origins.
    pub allowed_origins: Option<Vec<String>>,
    /// New widget settings (replaced whole).
    pub widget: Option<WidgetSettings>,
}

/// Which of a tenant's bots a list returns (a caller's scope, applied in the store so pages
/// stay full). `None` means no restriction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotFilter {
    /// Only these bots.
    pub ids: Option<Vec<BotId>>,
    /// Only bots all of whose collections are among these.
    pub within_collections: Option<Vec<CollectionId>>,
}

/// A conversation with a bot.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Id.
    pub id: ConversationId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The bot it talks to.
    pub bot_id: BotId,
    /// Who started it; `None` for conversations from before owners were recorded, and for
    /// those the operator (CLI) started.
    pub owner: Option<ConversationOwner>,
    /// Optional title.
    pub title: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last message (or creation).
    pub updated_at: DateTime<Utc>,
}

/// Input to start a conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewConversation {
    /// Optional title.
    pub title: Option<String>,
    /// Who starts it (set by the service from the caller, never by the client).
    pub owner: Option<ConversationOwner>,
}

/// Who started a conversation: only they may continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationOwner {
    /// A signed-in user.
    User(UserId),
    /// An API key.
    ApiKey(ApiKeyId),
    /// An anonymous visitor of the bot's widget (a *widget conversation*), through a widget key
    /// (`None`: the owner's live preview in the console).
    Visitor {
        /// The visitor.
        visitor: VisitorHash,
        /// The key they came through.
        key: Option<WidgetKeyId>,
    },
}

impl ConversationOwner {
    /// Whether `self` and `other` are the same person: a visitor stays the same visitor
    /// whichever of the bot's keys they come through (a rotated key keeps its conversations).
    pub fn same_as(&self, other: &ConversationOwner) -> bool {
        match (self, other) {
            (Self::Visitor { visitor: a, .. }, Self::Visitor { visitor: b, .. }) => a == b,
            _ => self == other,
        }
    }
}

impl Conversation {
    /// Whether a widget visitor started it (`source: widget` on the wire).
    pub fn from_widget(&self) -> bool {
        matches!(self.owner, Some(ConversationOwner::Visitor { .. }))
    }
}

/// A passage an answer cites: `[n]` in the message text points at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    /// The `n` of the `[n]` marker in the text, from 1.
    pub marker: u32,
    /// The cited document.
    pub document_id: DocumentId,
    /// The cited chunk (of that document).
    pub chunk_id: ChunkId,
    /// Page (or slide, sheet), from 1, when known.
    pub page: Option<u32>,
    /// Start offset (in chars) of the passage in the document's extracted text.
    pub char_start: u64,
    /// End offset (exclusive, in chars).
    pub char_end: u64,
}

/// Model tokens an answer took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageUsage {
    /// Tokens of the prompt (system prompt, passages, history, question).
    pub prompt_tokens: u32,
    /// Tokens of the answer.
    pub completion_tokens: u32,
}

/// A message in a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Id (time-ordered: messages list in the order they were written).
    pub id: MessageId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Who wrote it.
    pub role: MessageRole,
    /// Text.
    pub content: String,
    /// Passages cited by `[n]` markers in the text (answers only).
    pub citations: Vec<Citation>,
    /// Tokens used, for answers when the model reports them.
    pub usage: Option<MessageUsage>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Input to append a message.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Who wrote it.
    pub role: MessageRole,
    /// Text.
    pub content: String,
    /// Cited passages.
    pub citations: Vec<Citation>,
    /// Tokens used.
    pub usage: Option<MessageUsage>,
}

impl NewMessage {
    /// A user's message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::User,
            content: content.into(),
            citations: Vec::new(),
            usage: None,
        }
    }

    /// An answer with its citations.
    pub fn assistant(content: impl Into<String>, citations: Vec<Citation>) -> Self {
        Self {
            role: MessageRole::Assistant,
            content: content.into(),
            citations,
            usage: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for m in RetrievalMode::ALL {
            assert_eq!(RetrievalMode::parse(m.as_str()), Some(*m));
        }
        for r in MessageRole::ALL {
            assert_eq!(r.to_string().parse::<MessageRole>(), Ok(*r));
        }
        assert!("bm25".parse::<RetrievalMode>().is_err());
        assert_eq!(RetrievalMode::default(), RetrievalMode::Hybrid);
    }

    #[test]
    fn ids_round_trip() {
        let c = ConversationId::new();
        assert_eq!(c.to_string().parse::<ConversationId>().unwrap(), c);
        assert!("nope".parse::<MessageId>().is_err());
        assert!(bot_not_found(BotId::new()).code.http_status() == 404);
        assert!(conversation_not_found(c).message.contains(&c.to_string()));
    }
}
