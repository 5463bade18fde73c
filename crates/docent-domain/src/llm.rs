//! The chat-model port: messages in, an answer (whole or streamed as deltas) out.
//!
//! Implementations live outside the domain (`docent-llm` has the OpenAI-compatible client and
//! the budget/retry wrapper). The types here carry no serialization: wire shapes belong to the
//! client that speaks them. Errors use the domain [`Code`](crate::Code) table:
//! `model_unavailable` (retry later), `model_rate_limited` (retry after `retry_after`),
//! `model_error` (the provider refused the request; retrying the same request will not help).

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person asking.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl Role {
    /// The OpenAI wire name (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// Plain text content.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat completion request. The model is the implementation's (see [`ChatModel::model_id`])
/// unless `model` names another one at the same provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Another model at the same provider (a bot's own model setting); `None`: the
    /// implementation's.
    pub model: Option<String>,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
    /// Upper bound on generated tokens; `None` leaves the provider's default.
    pub max_tokens: Option<u32>,
    /// Sequences that end generation.
    pub stop: Vec<String>,
    /// Seed for providers that support reproducible sampling.
    pub seed: Option<u64>,
}

impl ChatRequest {
    /// A request with these messages and provider defaults for everything else.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

impl Usage {
    /// Prompt plus completion.
    pub fn total(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The model finished, or hit a stop sequence.
    Stop,
    /// `max_tokens` (or the context window) cut the answer short.
    Length,
    /// The provider's content filter withheld output.
    ContentFilter,
    /// The model asked to call tools.
    ToolCalls,
    /// A reason this version does not know.
    Other(String),
}

impl FinishReason {
    /// Parses the OpenAI wire name.
    pub fn parse(s: &str) -> Self {
        match s {
            "stop" | "eos" | "end_turn" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            other => FinishReason::Other(other.to_owned()),
        }
    }

    /// The OpenAI wire name.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::Other(s) => s,
        }
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The generated text.
    pub content: String,
    /// Token counts, when the provider reports them.
    pub usage: Option<Usage>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

/// One piece of a streamed answer. A well-formed stream ends with a delta carrying
/// `finish_reason`; `usage` comes on that or a later delta when the provider reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatDelta {
    /// Text to append (may be empty).
    pub content: String,
    /// Set on the delta that ends the answer.
    pub finish_reason: Option<FinishReason>,
    /// Token counts, usually on the last delta.
    pub usage: Option<Usage>,
}

/// A streamed answer. An error item ends it (a cut connection is an error, never a silent end).
pub type ChatStream = BoxStream<'static, Result<ChatDelta>>;

/// A chat model.
#[async_trait]
pub trait ChatModel: Send + Sync + 'static {
    /// The model name sent to the provider, e.g. `gpt-4o-mini`.
    fn model_id(&self) -> &str;
    /// Generates a whole answer.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse>;
    /// Generates an answer as a stream of deltas. The returned future resolves once the
    /// provider has accepted the request; failures after that arrive as stream items.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream>;
}

/// The tenant on whose behalf model calls are made, for per-tenant model budgets: a future run
/// with [`for_tenant`] makes [`calling_tenant`] answer that tenant inside it (on whichever
/// thread polls it). Model ports take no tenant argument; the budget wrapper reads this instead,
/// and a call made outside any scope (the CLI, tests) is charged to the provider's budget only.
pub mod caller {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use crate::TenantId;

    thread_local! {
        static CURRENT: Cell<Option<TenantId>> = const { Cell::new(None) };
    }

    /// `fut`, run with `tenant` as the [`calling_tenant`].
    pub fn for_tenant<F: Future>(tenant: TenantId, fut: F) -> ForTenant<F> {
        ForTenant {
            tenant,
            inner: Box::pin(fut),
        }
    }

    /// The tenant of the innermost [`for_tenant`] being polled on this thread, if any.
    pub fn calling_tenant() -> Option<TenantId> {
        CURRENT.with(Cell::get)
    }

    /// The future of [`for_tenant`].
    pub struct ForTenant<F> {
        tenant: TenantId,
        inner: Pin<Box<F>>,
    }

    /// Puts back the outer tenant when a poll ends, panics included.
    struct Restore(Option<TenantId>);

    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }

    impl<F: Future> Future for ForTenant<F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = &mut *self;
            let _restore = Restore(CURRENT.with(|c| c.replace(Some(this.tenant))));
            this.inner.as_mut().poll(cx)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_tenant_is_seen_inside_the_scope_only_and_nests() {
            let (a, b) = (TenantId::new(), TenantId::new());
            assert_eq!(calling_tenant(), None);
            let seen = futures::executor::block_on(for_tenant(a, async move {
                let outer = calling_tenant();
                let inner = for_tenant(b, async { calling_tenant() }).await;
                (outer, inner, calling_tenant())
            }));
            assert_eq!(seen, (Some(a), Some(b), Some(a)));
            assert_eq!(calling_tenant(), None);
        }
    }
}
