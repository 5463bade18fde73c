//! Models docent runs: the [`Embedder`] port that turns texts into vectors, and
//! [`LocalMiniLm`], a pure-Rust, CPU-only implementation of
//! `sentence-transformers/all-MiniLM-L6-v2` (384 dimensions) that loads the model from local
//! files and never touches the network.
//!
//! Get the model with `scripts/get-model` (it unpacks `config.json`, `tokenizer.json` and
//! `model.safetensors` into `./models/all-MiniLM-L6-v2/`), or point [`LocalMiniLm::load`] at a
//! Hugging Face hub cache. Embeddings match sentence-transformers' (mean pooling over the
//! tokens, L2-normalised, inputs truncated to 256 word pieces); `tests/parity.rs` checks them
//! against vectors computed by sentence-transformers itself.
//!
//! How it is fast (`bench/embed/run` compares it with sentence-transformers): batches are
//! packed, never padded (`bert`); the linear layers run in bfloat16 on CPUs with
//! AVX512-BF16 (`bf16`, [`Precision`]) and otherwise in f32 through `gemm`, the GEMM candle
//! uses; the element-wise steps are vectorised for the CPU found at run time (`kernels`); and
//! whole batches go to the threads of the model's own pool.

mod bert;
mod bf16;
mod files;
mod kernels;
mod minilm;

use std::path::PathBuf;

pub use files::{HF_CACHE_REPO_DIR, ModelFiles, REQUIRED_FILES, default_hf_cache_repo_dir};
pub use minilm::{
    LocalMiniLm, LocalMiniLmOptions, MINILM_DIMENSION, MINILM_MAX_TOKENS, MINILM_MODEL_ID,
    Precision,
};

/// The embedding port, defined with the other ports in `docent-domain`.
pub use docent_domain::ports::Embedder;

/// Why a model could not be loaded. Every variant about missing files says how to get them.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The path does not exist.
    #[error("model directory {} does not exist; {GET_MODEL_HINT}", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path is a file, not a directory.
    #[error("{} is not a model directory; {GET_MODEL_HINT}", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory lacks some of the required files.
    #[error("model directory {} is incomplete, missing: {missing}; {GET_MODEL_HINT}", dir.display())]
    MissingFiles {
        /// The directory searched.
        dir: PathBuf,
        /// The missing file names, comma-separated.
        missing: String,
    },
    /// A Hugging Face cache directory whose snapshot cannot be chosen.
    #[error("Hugging Face cache {} has no usable snapshot: {reason}; {GET_MODEL_HINT}", dir.display())]
    Snapshot {
        /// The cache repository directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is present but not what the loader expects.
    #[error("invalid model file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The options are out of range.
    #[error("invalid embedder options: {0}")]
    Options(String),
    /// The worker pool could not be started.
    #[error("cannot start the embedding thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
}

/// How to get the model, appended to every "not found" error.
pub const GET_MODEL_HINT: &str = "run scripts/get-model to download all-MiniLM-L6-v2 into \
    ./models/all-MiniLM-L6-v2 (or point at a Hugging Face cache directory \
    models--sentence-transformers--all-MiniLM-L6-v2)";

impl From<LoadError> for docent_domain::Error {
    fn from(e: LoadError) -> Self {
        docent_domain::Error::unavailable("the embedding model", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_become_unavailable_without_leaking_paths() {
        let e: docent_domain::Error = LoadError::NotFound {
            path: "/secret/models".into(),
        }
        .into();
        assert_eq!(e.code, docent_domain::Code::Unavailable);
        assert!(!e.message.contains("/secret"), "{}", e.message);
        assert!(e.chain().contains("scripts/get-model"), "{}", e.chain());
    }
}
