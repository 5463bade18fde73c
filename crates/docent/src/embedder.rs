//! The embedder factory: `[embedder]` configuration → an [`Embedder`] (or none).

use std::sync::Arc;

use anyhow::Context;
use docent_config::EmbedderConfig;
use docent_domain::ports::Embedder;
use docent_models::{LocalMiniLm, LocalMiniLmOptions};

/// Builds the configured embedder; `None` for `kind = "none"`.
pub fn open(config: &EmbedderConfig) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    match config {
        EmbedderConfig::None => Ok(None),
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
