//! Chat and embedding models over OpenAI-compatible HTTP APIs (OpenAI, Azure OpenAI, Gemini's
//! OpenAI endpoint, Ollama, vLLM, llama.cpp's server), and budgeted access to them.
//!
//! - [`OpenAiChat`] implements the domain's [`ChatModel`] port: `/chat/completions`, whole or
//!   streamed over server-sent events ([`sse`]).
//! - [`OpenAiEmbedder`] implements the [`Embedder`] port: `/embeddings`, batched by count and
//!   estimated tokens, vectors checked against the configured dimension and normalised.
//! - [`Budgeted`] wraps either with a provider [`Budget`]: shared token buckets (requests/s,
//!   tokens/min) behind a [`BudgetStore`], `Retry-After`, backoff with full jitter, bounded
//!   attempts and a [`CircuitBreaker`]. Cross-cutting behaviour lives in wrappers, not in the
//!   clients: one client call is one HTTP request.
//! - [`chat_model`] and [`embedder`] build the usual stacks from config.
//!
//! Architecture invariant: API keys are [`secrecy::SecretString`]s, sent as sensitive headers,
//! scrubbed from provider error text, and never part of an error message, a log line or a
//! serialized config.

pub mod budget;
pub mod chat;
pub mod config;
pub mod embed;
pub mod http;
pub mod sse;

use std::sync::Arc;

pub use budget::{Budget, Budgeted, CircuitBreaker, InProcessBudgetStore};
pub use chat::{OpenAiChat, collect_stream};
pub use config::{
    AuthScheme, BudgetConfig, ChatConfig, EmbeddingConfig, LlmConfig, ProviderConfig, SharedApiKey,
    WeakApiKey,
};
pub use docent_domain::llm::{
    ChatDelta, ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Role,
    Usage,
};
pub use docent_domain::ports::Embedder;
pub use embed::{BatchLimits, Batched, OpenAiEmbedder, plan_batches};

use docent_domain::Result;
use docent_domain::budget::BudgetStore;

/// The chat model for `config`: `Budgeted<OpenAiChat>` on the process-shared budget of the
/// provider's name.
pub fn chat_model(config: &ChatConfig) -> Result<Arc<dyn ChatModel>> {
    chat_model_with(config, InProcessBudgetStore::global())
}

/// [`chat_model`] with the budget's buckets in `store` (e.g. Redis, shared by processes).
pub fn chat_model_with(
    config: &ChatConfig,
    store: Arc<dyn BudgetStore>,
) -> Result<Arc<dyn ChatModel>> {
    let client = OpenAiChat::new(config)?;
    let budget = Budget::with_store(
        config.provider.provider_name(),
        config.provider.budget.clone(),
        store,
    );
    Ok(Arc::new(Budgeted::new(client, budget)))
}

/// The embedder for `config`: `Batched<Budgeted<OpenAiEmbedder>>`, so each budgeted call is
/// one request. Without a configured dimension, one probe request learns it.
pub async fn embedder(config: &EmbeddingConfig) -> Result<Arc<dyn Embedder>> {
    embedder_with(config, InProcessBudgetStore::global()).await
}

/// [`embedder`] with the budget's buckets in `store` (e.g. Redis, shared by processes).
pub async fn embedder_with(
    config: &EmbeddingConfig,
    store: Arc<dyn BudgetStore>,
) -> Result<Arc<dyn Embedder>> {
    let client = OpenAiEmbedder::connect(config).await?;
    let limits = client.limits();
    let budget = Budget::with_store(
        config.provider.provider_name(),
        config.provider.budget.clone(),
        store,
    );
    Ok(Arc::new(Batched::new(
        Budgeted::new(client, budget),
        limits,
    )))
}
