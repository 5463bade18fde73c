//! The embedder factory: `[embedder]` configuration → an [`Embedder`] (or none): the local
//! all-MiniLM-L6-v2, or an OpenAI-compatible API through `docent_llm::embedder` (batched by
//! count and estimated tokens, on a budget of requests/s and tokens/min with retries).
//!
//! The local model is looked for in the configured `model_dir` only, unless that is the
//! default (`models/all-MiniLM-L6-v2` in the docent home): then also next to the executable
//! and in the checkout the binary was built from, so a `cargo install`ed or
//! `target/release/docent` finds the model `scripts/get-model` put in the checkout, from any
//! working directory. A missing model is an error naming every place searched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use docent_config::{EmbedderConfig, Home};
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
    budgets: Arc<dyn docent_domain::budget::BudgetStore>,
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
            let model = find_model(model_dir, &Home::locate())
                .and_then(|(dir, _)| LocalMiniLm::load(&dir, options).map_err(anyhow::Error::from))
                .context(
                    "cannot load the embedding model (fetch it with scripts/get-model DIR, set \
                     [embedder] model_dir, or set [embedder] kind = \"none\" for keyword search only)",
                )?;
            Ok(Some(Arc::new(model)))
        }
    }
}

/// The places the local model is looked for, in order, each with why it is searched: the
/// configured `model_dir`; when that is `home`'s default, also `models/all-MiniLM-L6-v2` next
/// to the executable and in the checkout this binary was built from. Duplicates are left out.
pub fn model_search(model_dir: &Path, home: &Home) -> Vec<(PathBuf, &'static str)> {
    let mut places = vec![(model_dir.to_path_buf(), "embedder.model_dir")];
    if model_dir == home.model_dir() {
        places[0].1 = "embedder.model_dir, the default in the docent home";
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join(docent_config::home::MODEL_DIR)))
        {
            places.push((dir, "next to the docent executable"));
        }
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        places.push((
            checkout
                .canonicalize()
                .unwrap_or(checkout)
                .join(docent_config::home::MODEL_DIR),
            "in the checkout docent was built from",
        ));
    }
    let mut seen = Vec::new();
    places.retain(|(p, _)| {
        let key = p.canonicalize().unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    places
}

/// The first place of [`model_search`] that exists (with why it was searched), or an error
/// naming every place searched.
pub fn find_model(model_dir: &Path, home: &Home) -> anyhow::Result<(PathBuf, &'static str)> {
    let places = model_search(model_dir, home);
    if let Some(found) = places.iter().find(|(p, _)| p.exists()) {
        return Ok(found.clone());
    }
    let searched: Vec<String> = places
        .iter()
        .map(|(p, why)| format!("{} ({why})", p.display()))
        .collect();
    anyhow::bail!(
        "no all-MiniLM-L6-v2 model found; searched {}",
        searched.join(", ")
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_dir_is_looked_for_in_three_places_a_configured_one_in_one() {
        let home = Home::at("/nonexistent/docent-home");
        let places = model_search(&home.model_dir(), &home);
        let whys: Vec<&str> = places.iter().map(|(_, why)| *why).collect();
        assert_eq!(
            whys,
            [
                "embedder.model_dir, the default in the docent home",
                "next to the docent executable",
                "in the checkout docent was built from",
            ]
        );
        assert_eq!(places[0].0, home.model_dir());
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
        match find_model(&home.model_dir(), &home) {
            Ok((found, why)) if checkout.exists() => {
                assert_eq!(why, "in the checkout docent was built from");
                assert_eq!(
                    found.canonicalize().unwrap(),
                    checkout.canonicalize().unwrap()
                );
            }
            Ok((found, _)) => panic!("found a model at {}", found.display()),
            Err(e) => {
                let e = e.to_string();
                for (place, why) in &places {
                    assert!(e.contains(&format!("{} ({why})", place.display())), "{e}");
                }
            }
        }

        let own = Path::new("/nonexistent/model");
        assert_eq!(
            model_search(own, &home),
            vec![(own.to_path_buf(), "embedder.model_dir")]
        );
        let e = find_model(own, &home).unwrap_err().to_string();
        assert_eq!(
            e,
            "no all-MiniLM-L6-v2 model found; searched /nonexistent/model (embedder.model_dir)"
        );
    }
}
