//! The embedder factory: `[embedder]` configuration → an [`Embedder`] (or none): the local
//! all-MiniLM-L6-v2, or an OpenAI-compatible API through `docent_llm::embedder` (batched by
//! count and estimated tokens, on a budget of requests/s and tokens/min with retries).

use std::sync::Arc;

use anyhow::Context;
use docent_config::EmbedderConfig;
use docent_domain::ports::Embedder;
use docent_llm::{BudgetConfig, EmbeddingConfig, ProviderConfig};
use docent_models::{LocalMiniLm, LocalMiniLmOptions};

/// Builds the configured embedder; `None` for `kind = "none"`. An `openai` embedder without a
/// configured dimension asks the provider once.
pub async fn open(config: &EmbedderConfig) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    open_with(config, docent_llm::InProcessBudgetStore::global()).await
}

/// [`open`] with an `openai` embedder's budget buckets in `budgets` (Redis, shared by
/// processes, when `[redis]` is configured).
pub async fn open_with(
    config: &EmbedderConfig,
    budgets: Arc<dyn docent_llm::BudgetStore>,
) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    match config {
        EmbedderConfig::Openai { .. } => {
            let cfg = openai_config(config)?.context("an openai embedder config")?;
            let embedder = docent_llm::embedder_with(&cfg, budgets)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))
                .context("cannot reach the embeddings API")?;
            Ok(Some(embedder))
        }
        EmbedderConfig::None | EmbedderConfig::Local { .. } => open_local(config),
    }
}

/// The embedder when it runs in process (`local`); `None` for `none` and `openai` (which
/// count no word pieces, so chunks are sized in chars either way).
pub fn open_local(config: &EmbedderConfig) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    match config {
        EmbedderConfig::None | EmbedderConfig::Openai { .. } => Ok(None),
        EmbedderConfig::Local {
            model_dir,
            threads,
            batch_size,
        } => {
            let options = LocalMiniLmOptions {
                threads: (*threads > 0).then_some(*threads),
                batch_size: (*batch_size).max(1),
                ..LocalMiniLmOptions::default()
            };
            let model = LocalMiniLm::load(model_dir, options).with_context(|| {
                "cannot load the embedding model (set [embedder] kind = \"none\" for keyword search only)"
            })?;
            Ok(Some(Arc::new(model)))
        }
    }
}

/// The `docent_llm` settings of an `openai` embedder (`None` for the other kinds).
pub fn openai_config(config: &EmbedderConfig) -> anyhow::Result<Option<EmbeddingConfig>> {
    let EmbedderConfig::Openai {
        base_url,
        model,
        dimension,
        requests_per_second,
        tokens_per_minute,
        tenant_share,
        batch_size,
        batch_tokens,
        max_attempts,
        request_timeout,
        ..
    } = config
    else {
        return Ok(None);
    };
    let mut provider = ProviderConfig::new(base_url.clone(), model.clone());
    provider.api_key = config.api_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Replaced on SIGHUP (secret rotation).
    provider.shared_key = Some(crate::secrets::api_key(
        crate::secrets::KeySlot::Embedder,
        provider.api_key.clone(),
    ));
    provider.request_timeout = *request_timeout;
    provider.budget = BudgetConfig {
        requests_per_second: *requests_per_second,
        tokens_per_minute: *tokens_per_minute,
        tenant_share: *tenant_share,
        max_attempts: *max_attempts,
        ..BudgetConfig::default()
    };
    let mut cfg = EmbeddingConfig::new(provider, *dimension);
    cfg.max_batch_inputs = *batch_size;
    cfg.max_batch_tokens = *batch_tokens;
    cfg.validate().map_err(|e| anyhow::anyhow!(e.chain()))?;
    Ok(Some(cfg))
}
