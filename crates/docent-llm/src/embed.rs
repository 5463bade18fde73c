//! [`OpenAiEmbedder`]: the OpenAI-compatible `/embeddings` client, and [`Batched`], which splits
//! texts into requests by count and by estimated tokens.
//!
//! Tokens are estimated as ⌈chars / 4⌉ per text (at least 1): close to OpenAI's tokenizers for
//! English, conservative for code; the estimate only sizes batches and budgets. Batches keep
//! the input order and are filled greedily; a text longer than the token limit goes alone.
//!
//! Vectors are checked (one per text, each of the configured dimension, finite) and
//! L2-normalised, as the [`Embedder`] port promises: providers that return raw vectors (some
//! Ollama and llama.cpp models) compare correctly too.
//!
//! The usual stack is `Batched<Budgeted<OpenAiEmbedder>>` ([`crate::embedder`]): batching
//! outside the budget, so each budgeted call is exactly one HTTP request.

use std::ops::Range;

use async_trait::async_trait;
use base64::Engine as _;
use docent_domain::ports::Embedder;
use docent_domain::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::config::EmbeddingConfig;
use crate::http::{Endpoint, bad_answer};

/// The token estimate for one text: ⌈chars / 4⌉, at least 1.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4).max(1)
}

/// How large one embeddings request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most texts per request.
    pub max_inputs: usize,
    /// Most estimated tokens per request.
    pub max_tokens: usize,
}

impl BatchLimits {
    /// The limits of an embedding config.
    pub fn of(config: &EmbeddingConfig) -> Self {
        Self {
            max_inputs: config.max_batch_inputs.max(1),
            max_tokens: config.max_batch_tokens.max(1),
        }
    }
}

/// Splits `texts` into consecutive batches within `limits` (see the module docs).
pub fn plan_batches(texts: &[String], limits: BatchLimits) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut tokens = 0;
    for (i, text) in texts.iter().enumerate() {
        let t = estimate_tokens(text);
        let full = i - start >= limits.max_inputs.max(1) || tokens + t > limits.max_tokens;
        if i > start && full {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += t;
    }
    if start < texts.len() {
        out.push(start..texts.len());
    }
    out
}

/// An embedding model behind an OpenAI-compatible API.
pub struct OpenAiEmbedder {
    endpoint: Endpoint,
    model: String,
    dimension: usize,
    send_dimensions: bool,
    limits: BatchLimits,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct WireResponse {
    data: Vec<WireEmbedding>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    index: Option<usize>,
    embedding: WireVector,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireVector {
    Floats(Vec<f32>),
    Base64(String),
}

impl OpenAiEmbedder {
    /// A client for `config`, which must name the `dimension` (use [`Self::connect`] to learn
    /// it from the provider).
    pub fn new(config: &EmbeddingConfig) -> Result<OpenAiEmbedder> {
        config.validate()?;
        let Some(dimension) = config.dimension else {
            return Err(Error::new(
                Code::MissingField,
                "the embedding config needs a dimension (or use connect())",
            ));
        };
        Ok(OpenAiEmbedder {
            endpoint: Endpoint::new(&config.provider)?,
            model: config.provider.model.clone(),
            dimension,
            send_dimensions: config.send_dimensions,
            limits: BatchLimits::of(config),
        })
    }

    /// A client for `config`; without a configured `dimension`, one probe request learns it.
    pub async fn connect(config: &EmbeddingConfig) -> Result<OpenAiEmbedder> {
        if config.dimension.is_some() {
            return Self::new(config);
        }
        let mut probe_config = config.clone();
        probe_config.dimension = Some(1);
        let mut probe = Self::new(&probe_config)?;
        let v = probe
            .request(&["dimension probe".to_owned()], false)
            .await?;
        probe.dimension = v.first().map_or(0, Vec::len);
        if probe.dimension == 0 {
            return Err(bad_answer("an empty vector".into()));
        }
        Ok(probe)
    }

    /// The batch limits this embedder keeps.
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// One HTTP request for `texts`.
    async fn request(&self, texts: &[String], check_dimension: bool) -> Result<Vec<Vec<f32>>> {
        let body = WireRequest {
            model: &self.model,
            input: texts,
            encoding_format: "float",
            dimensions: self.send_dimensions.then_some(self.dimension),
        };
        let resp = self.endpoint.post_json("/embeddings", &body, true).await?;
        let answer: WireResponse = self.endpoint.read_json(resp).await?;
        if answer.data.len() != texts.len() {
            return Err(bad_answer(format!(
                "{} vectors for {} texts",
                answer.data.len(),
                texts.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (pos, item) in answer.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            let v = match item.embedding {
                WireVector::Floats(v) => v,
                WireVector::Base64(s) => decode_base64(&s)?,
            };
            match slots.get_mut(i) {
                Some(slot @ None) => *slot = Some(v),
                _ => return Err(bad_answer(format!("bad or repeated vector index {i}"))),
            }
        }
        let mut out = Vec::with_capacity(texts.len());
        for v in slots.into_iter().flatten() {
            if check_dimension && v.len() != self.dimension {
                return Err(Error::new(
                    Code::ModelError,
                    format!(
                        "the embedding model returned vectors of dimension {}, but {} is configured",
                        v.len(),
                        self.dimension
                    ),
                ));
            }
            out.push(normalise(v)?);
        }
        Ok(out)
    }
}

fn decode_base64(s: &str) -> Result<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| bad_answer(format!("bad base64 vector: {e}")))?;
    if bytes.len() % 4 != 0 {
        return Err(bad_answer("base64 vector is not whole f32s".into()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn normalise(mut v: Vec<f32>) -> Result<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(bad_answer("a vector with non-finite values".into()));
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(v)
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    /// Batches `texts` within the configured limits, one request per batch, in order.
    #[instrument(skip_all, fields(model = %self.model, texts = texts.len()))]
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for range in plan_batches(texts, self.limits) {
            out.extend(self.request(&texts[range], true).await?);
        }
        Ok(out)
    }
}

/// Splits every `embed` call into batches within [`BatchLimits`] and embeds them one after the
/// other through the inner embedder.
pub struct Batched<E> {
    inner: E,
    limits: BatchLimits,
}

impl<E> Batched<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, limits: BatchLimits) -> Self {
        Self { inner, limits }
    }

    /// The wrapped embedder.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

#[async_trait]
impl<E: Embedder> Embedder for Batched<E> {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for range in plan_batches(texts, self.limits) {
            out.extend(self.inner.embed(&texts[range]).await?);
        }
        Ok(out)
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.inner.count_tokens(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lens: &[usize]) -> Vec<String> {
        lens.iter().map(|n| "x".repeat(*n)).collect()
    }

    #[test]
    fn batches_respect_count_and_tokens_in_order() {
        let limits = BatchLimits {
            max_inputs: 3,
            max_tokens: 10,
        };
        assert_eq!(
            plan_batches(&texts(&[4; 7]), limits),
            vec![0..3, 3..6, 6..7]
        );
        // 4 + 4 tokens fit, a third 4 would make 12.
        assert_eq!(plan_batches(&texts(&[16; 4]), limits), vec![0..2, 2..4]);
        // A text over the token limit goes alone.
        assert_eq!(
            plan_batches(&texts(&[4, 100, 4]), limits),
            vec![0..1, 1..2, 2..3]
        );
        assert!(plan_batches(&[], limits).is_empty());
    }

    #[test]
    fn estimates_and_normalises() {
        assert_eq!(estimate_tokens(""), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(normalise(vec![3.0, 4.0]).unwrap(), vec![0.6, 0.8]);
        assert!(normalise(vec![f32::NAN]).is_err());
    }
}
