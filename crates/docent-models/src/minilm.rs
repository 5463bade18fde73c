//! [`LocalMiniLm`]: all-MiniLM-L6-v2 on the CPU, with its own worker threads.

use std::cmp::Reverse;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use docent_domain::Error;
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::bert::{Bert, BertConfig};
use crate::kernels::Parallelism;
use crate::{Embedder, LoadError, ModelFiles};

/// The model id [`LocalMiniLm`] reports.
pub const MINILM_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// The length of an all-MiniLM-L6-v2 vector.
pub const MINILM_DIMENSION: usize = 384;
/// The longest input, in word pieces with `[CLS]` and `[SEP]`, the model was trained on
/// (its `sentence_bert_config.json` `max_seq_length`); longer inputs are truncated.
pub const MINILM_MAX_TOKENS: usize = 256;

/// The arithmetic of the linear layers (about 90 % of the work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bfloat16 products with f32 sums where the CPU has AVX512-BF16 (about twice as fast;
    /// embeddings within a cosine distance of 1e-4 of the f32 ones), f32 elsewhere.
    #[default]
    Auto,
    /// f32 everywhere.
    F32,
}

/// Tuning for [`LocalMiniLm`]. The defaults suit a small machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMiniLmOptions {
    /// Threads doing inference, in a pool of their own; `None`: one per available CPU.
    pub threads: Option<usize>,
    /// The most texts in one forward pass.
    pub batch_size: usize,
    /// The most tokens (summed over its texts) in one forward pass; bounds memory, which is
    /// about 16 KiB per token of a batch.
    pub max_batch_tokens: usize,
    /// Inputs are truncated to this many word pieces, special tokens included (at most the
    /// model's 512 positions).
    pub max_tokens: usize,
    /// The arithmetic of the linear layers.
    pub precision: Precision,
    /// Whether small concurrent requests share forward passes (see [`LocalMiniLm`]).
    pub coalesce: bool,
}

impl Default for LocalMiniLmOptions {
    fn default() -> Self {
        Self {
            threads: None,
            batch_size: 32,
            max_batch_tokens: 2048,
            max_tokens: MINILM_MAX_TOKENS,
            precision: Precision::Auto,
            coalesce: true,
        }
    }
}

/// `sentence-transformers/all-MiniLM-L6-v2` running locally on the CPU.
///
/// Texts are tokenized (truncated to [`LocalMiniLmOptions::max_tokens`]), sorted by length and
/// grouped into batches of similar lengths, run through the encoder without padding, mean
/// pooled and L2-normalised; the vectors come back in the caller's order. All of it runs on a
/// dedicated thread pool of [`LocalMiniLmOptions::threads`] threads: [`Embedder::embed`] only
/// waits for the result, so it never blocks the async runtime. Small requests (a few short
/// texts: search queries) that arrive while the pool is busy are coalesced into one forward
/// pass.
///
/// Cloning is cheap and shares the model and its pool.
#[derive(Clone)]
pub struct LocalMiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    model: Bert,
    /// Truncates to `max_tokens`, never pads: what the model sees.
    truncating: Tokenizer,
    /// Neither truncates nor pads: for counting.
    counting: Tokenizer,
    pool: rayon::ThreadPool,
    threads: usize,
    bf16: bool,
    options: LocalMiniLmOptions,
    /// Small requests waiting for a forward pass (see [`LocalMiniLm::embed`]).
    waiting: Mutex<Vec<Waiting>>,
}

/// A small request queued for coalescing, and where its vectors go.
struct Waiting {
    texts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, Error>>,
}

/// Requests of at most this many texts (queries, mostly) are coalesced.
const COALESCE_TEXTS: usize = 4;
/// ... and at most this many bytes of text.
const COALESCE_BYTES: usize = 2048;

impl fmt::Debug for LocalMiniLm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMiniLm")
            .field("model_id", &MINILM_MODEL_ID)
            .field("threads", &self.inner.threads)
            .field("bf16", &self.inner.bf16)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl LocalMiniLm {
    /// Loads the model from `path`: a model directory or a Hugging Face cache (see
    /// [`ModelFiles::locate`]).
    ///
    /// # Errors
    /// A [`LoadError`] when the files are missing (its message says how to get them) or
    /// invalid, or the options are out of range.
    pub fn load(path: impl AsRef<Path>, options: LocalMiniLmOptions) -> Result<Self, LoadError> {
        Self::from_files(&ModelFiles::locate(path)?, options)
    }

    /// Loads the model from located files.
    ///
    /// # Errors
    /// As [`LocalMiniLm::load`].
    pub fn from_files(files: &ModelFiles, options: LocalMiniLmOptions) -> Result<Self, LoadError> {
        if options.batch_size == 0 || options.max_batch_tokens == 0 {
            return Err(LoadError::Options(
                "batch_size and max_batch_tokens must be at least 1".into(),
            ));
        }
        if options.threads == Some(0) {
            return Err(LoadError::Options("threads must be at least 1".into()));
        }
        let config = BertConfig::from_file(&files.config)?;
        if config.hidden_size != MINILM_DIMENSION {
            return Err(LoadError::Invalid {
                path: files.config.clone(),
                reason: format!(
                    "hidden_size is {}, all-MiniLM-L6-v2 has {MINILM_DIMENSION}",
                    config.hidden_size
                ),
            });
        }
        if options.max_tokens < 2 || options.max_tokens > config.max_position_embeddings {
            return Err(LoadError::Options(format!(
                "max_tokens must be between 2 and {}",
                config.max_position_embeddings
            )));
        }

        let invalid = |reason: String| LoadError::Invalid {
            path: files.tokenizer.clone(),
            reason,
        };
        let mut counting =
            Tokenizer::from_file(&files.tokenizer).map_err(|e| invalid(e.to_string()))?;
        // tokenizer.json ships with truncation 128 and fixed padding 128: neither is wanted.
        counting.with_padding(None);
        counting
            .with_truncation(None)
            .map_err(|e| invalid(e.to_string()))?;
        let mut truncating = counting.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: options.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| invalid(e.to_string()))?;
        if counting.get_vocab_size(true) > config.vocab_size {
            return Err(invalid(format!(
                "the tokenizer has {} tokens, the model {}",
                counting.get_vocab_size(true),
                config.vocab_size
            )));
        }

        let use_bf16 = options.precision == Precision::Auto && crate::bf16::available();
        let model = Bert::load(&config, &files.weights, use_bf16)?;
        debug_assert_eq!(model.hidden(), MINILM_DIMENSION);
        debug_assert!(options.max_tokens <= model.max_positions());

        let threads = options.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("docent-embed-{i}"))
            .build()?;
        tracing::info!(
            dir = %files.dir.display(),
            threads,
            batch_size = options.batch_size,
            bf16 = use_bf16,
            "loaded {MINILM_MODEL_ID}"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                truncating,
                counting,
                pool,
                threads,
                bf16: use_bf16,
                options,
                waiting: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The tokenizer, with truncation and padding turned off: for sizing chunks in word
    /// pieces. What the model sees is this, truncated to [`LocalMiniLm::max_tokens`].
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.counting
    }

    /// The number of word pieces in `text`, `[CLS]` and `[SEP]` included, before truncation.
    /// A text is embedded whole when this is at most [`LocalMiniLm::max_tokens`].
    pub fn count_tokens(&self, text: &str) -> usize {
        self.inner
            .counting
            .encode_fast(text, true)
            .map_or(0, |e| e.get_ids().len())
    }

    /// Inputs longer than this many word pieces (special tokens included) are truncated.
    pub fn max_tokens(&self) -> usize {
        self.inner.options.max_tokens
    }

    /// The number of inference threads.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Whether the linear layers run in bfloat16 (see [`Precision::Auto`]).
    pub fn uses_bf16(&self) -> bool {
        self.inner.bf16
    }

    /// [`Embedder::embed`] for synchronous callers: runs on the model's pool and blocks the
    /// calling thread until done. Do not call it from an async task.
    ///
    /// # Errors
    /// As [`Embedder::embed`].
    pub fn embed_blocking<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        inner.pool.install(|| inner.embed_guarded(texts, true))
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::internal(std::io::Error::other(format!("embedding panicked: {what}")))
}

fn lock(waiting: &Mutex<Vec<Waiting>>) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
    // The queue is only pushed to and taken whole: a panic elsewhere cannot leave it
    // half-changed, so a poisoned lock is still usable.
    waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    /// [`Inner::embed`] with a panic turned into an error. Runs inside the pool.
    fn embed_guarded<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        spread: bool,
    ) -> Result<Vec<Vec<f32>>, Error> {
        catch_unwind(AssertUnwindSafe(|| self.embed(texts, spread)))
            .unwrap_or_else(|panic| Err(panicked(panic)))
    }

    /// Embeds every waiting request in one call and answers each. Runs inside the pool.
    fn drain_waiting(&self) {
        let batch = std::mem::take(&mut *lock(&self.waiting));
        if batch.is_empty() {
            return;
        }
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|w| w.texts.iter().map(String::as_str))
            .collect();
        // One thread each: a thread that waited inside a parallel section could pick up the
        // next drain job and hold this one's callers until that finished too.
        match self.embed_guarded(&texts, false) {
            Ok(mut vectors) => {
                // Hand each request its own vectors, in order.
                for w in batch.into_iter().rev() {
                    let mine = vectors.split_off(vectors.len() - w.texts.len());
                    let _ = w.reply.send(Ok(mine));
                }
            }
            // One bad text must not fail its neighbours: answer each on its own.
            Err(_) => {
                for w in batch {
                    let _ = w.reply.send(self.embed_guarded(&w.texts, false));
                }
            }
        }
    }

    /// Runs inside the pool; with `spread`, over all of its threads, else on this one.
    fn embed<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        spread: bool,
    ) -> Result<Vec<Vec<f32>>, Error> {
        let threads = if spread { self.threads } else { 1 };
        let encode = |t: &S| {
            self.truncating
                .encode_fast(t.as_ref(), true)
                .map(|e| e.get_ids().to_vec())
        };
        let ids: Vec<Vec<u32>> = if threads > 1 {
            texts.par_iter().map(encode).collect::<Result<_, _>>()
        } else {
            texts.iter().map(encode).collect::<Result<_, _>>()
        }
        .map_err(|e| Error::internal(std::io::Error::other(format!("tokenization failed: {e}"))))?;

        // Longest first, so that one batch holds texts of similar lengths and the costliest
        // batches start first; the encoder does not pad, so this evens out the batches.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| Reverse(ids[i].len()));
        let batches = make_batches(&order, |i| ids[i].len(), &self.options);

        let run = |batch: &[usize], par: Parallelism| {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            self.model.embed(&seqs, par)
        };
        // With enough batches, give each thread whole batches (no synchronisation inside a
        // forward pass); otherwise split each forward pass across the threads.
        let vectors: Vec<Vec<f32>> = if threads > 1 && batches.len() >= 2 * threads {
            batches
                .par_iter()
                .map(|b| run(b, Parallelism::None))
                .collect()
        } else {
            let par = if threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            };
            batches.iter().map(|b| run(b, par)).collect()
        };

        let mut out = vec![Vec::new(); texts.len()];
        for (batch, flat) in batches.iter().zip(vectors) {
            for (&i, v) in batch.iter().zip(flat.chunks_exact(MINILM_DIMENSION)) {
                out[i] = v.to_vec();
            }
        }
        Ok(out)
    }
}

/// Cuts `order` into consecutive batches of at most `batch_size` texts and
/// `max_batch_tokens` tokens (a longer single text gets a batch of its own).
fn make_batches(
    order: &[usize],
    len: impl Fn(usize) -> usize,
    o: &LocalMiniLmOptions,
) -> Vec<Vec<usize>> {
    let mut batches = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for &i in order {
        let l = len(i);
        if !cur.is_empty() && (cur.len() == o.batch_size || tokens + l > o.max_batch_tokens) {
            batches.push(std::mem::take(&mut cur));
            tokens = 0;
        }
        cur.push(i);
        tokens += l;
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

#[async_trait]
impl Embedder for LocalMiniLm {
    fn model_id(&self) -> &str {
        MINILM_MODEL_ID
    }

    fn dimension(&self) -> usize {
        MINILM_DIMENSION
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        // [CLS] and [SEP] are the model's, not the text's.
        Some(LocalMiniLm::count_tokens(self, text).saturating_sub(2))
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let small = self.inner.options.coalesce
            && texts.len() <= COALESCE_TEXTS
            && texts.iter().map(String::len).sum::<usize>() <= COALESCE_BYTES;
        if small {
            // Coalescing: small requests (search queries) that arrive while the pool is busy
            // wait in a queue and go through the model together, in one forward pass. The
            // weights are then read once for all of them instead of once each, which is most
            // of the cost of embedding a short text. A request that finds the queue empty
            // schedules the job that drains it, so an idle model adds no delay.
            let first = {
                let mut waiting = lock(&self.inner.waiting);
                waiting.push(Waiting { texts, reply: tx });
                waiting.len() == 1
            };
            if first {
                self.inner.pool.spawn(move || inner.drain_waiting());
            }
        } else {
            self.inner.pool.spawn(move || {
                // The caller may have gone away; then nobody wants the result.
                let _ = tx.send(inner.embed_guarded(&texts, true));
            });
        }
        rx.await
            .map_err(|e| Error::unavailable("the embedding model", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_limits_and_keep_every_text() {
        let lens = [300, 200, 100, 100, 50, 10, 10, 10, 5];
        let order: Vec<usize> = (0..lens.len()).collect();
        let o = LocalMiniLmOptions {
            batch_size: 3,
            max_batch_tokens: 250,
            ..LocalMiniLmOptions::default()
        };
        let b = make_batches(&order, |i| lens[i], &o);
        assert_eq!(
            b,
            vec![vec![0], vec![1], vec![2, 3, 4], vec![5, 6, 7], vec![8]]
        );
    }

    #[test]
    fn options_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        for f in crate::REQUIRED_FILES {
            std::fs::write(tmp.path().join(f), b"x").unwrap();
        }
        let bad = LocalMiniLmOptions {
            batch_size: 0,
            ..LocalMiniLmOptions::default()
        };
        let err = LocalMiniLm::load(tmp.path(), bad).unwrap_err();
        assert!(matches!(err, LoadError::Options(_)), "{err}");
        // The files exist but are not a model.
        let err = LocalMiniLm::load(tmp.path(), LocalMiniLmOptions::default()).unwrap_err();
        assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
