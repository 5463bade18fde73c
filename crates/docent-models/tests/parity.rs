//! Parity with sentence-transformers: the vectors in `fixtures/reference.json` were computed
//! by sentence-transformers (PyTorch) from the same model files (`scripts/gen-embedding-reference`).
//!
//! Needs the model: `$DOCENT_TEST_MODEL_DIR`, else `./models/all-MiniLM-L6-v2` at the
//! workspace root (`scripts/get-model` puts it there). Without it the tests print a skip
//! notice and pass.

use std::path::PathBuf;

use docent_models::{Embedder, LocalMiniLm, LocalMiniLmOptions, MINILM_DIMENSION, Precision};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    model: String,
    max_seq_length: usize,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize, Clone)]
struct Sentence {
    text: String,
    tokens: usize,
    tokens_untruncated: usize,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn model_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCENT_TEST_MODEL_DIR") {
        return Some(PathBuf::from(dir));
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    dir.join("model.safetensors").exists().then_some(dir)
}

fn load(options: LocalMiniLmOptions) -> Option<LocalMiniLm> {
    let Some(dir) = model_dir() else {
        eprintln!("skipped: model not found, run scripts/get-model (or set DOCENT_TEST_MODEL_DIR)");
        return None;
    };
    Some(LocalMiniLm::load(&dir, options).unwrap_or_else(|e| panic!("{e}")))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn assert_parity(reference: &Reference, got: &[Vec<f32>], label: &str) {
    assert_parity_within(reference, got, label, 0.999);
}

fn assert_parity_within(reference: &Reference, got: &[Vec<f32>], label: &str, min_cosine: f64) {
    assert_eq!(got.len(), reference.sentences.len());
    let mut worst = (f64::INFINITY, "");
    for (s, v) in reference.sentences.iter().zip(got) {
        assert_eq!(v.len(), MINILM_DIMENSION);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "{label}: norm {norm} for {:?}",
            s.text
        );
        let c = cosine(v, &s.embedding);
        assert!(c >= min_cosine, "{label}: cosine {c} for {:?}", s.text);
        if c < worst.0 {
            worst = (c, &s.text);
        }
    }
    eprintln!("{label}: lowest cosine {:.7} ({:?})", worst.0, worst.1);
}

#[test]
fn embeddings_match_sentence_transformers() {
    let reference = reference();
    assert_eq!(reference.model, "sentence-transformers/all-MiniLM-L6-v2");
    let Some(model) = load(LocalMiniLmOptions::default()) else {
        return;
    };
    assert_eq!(model.model_id(), reference.model);
    assert_eq!(model.dimension(), MINILM_DIMENSION);
    assert_eq!(model.max_tokens(), reference.max_seq_length);
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    let got = model.embed_blocking(&texts).unwrap();
    assert_parity(
        &reference,
        &got,
        &format!("default options (bf16: {})", model.uses_bf16()),
    );
}

#[test]
fn token_counts_match_the_reference_tokenizer() {
    let reference = reference();
    let Some(model) = load(LocalMiniLmOptions::default()) else {
        return;
    };
    for s in &reference.sentences {
        let n = model.count_tokens(&s.text);
        assert_eq!(n, s.tokens_untruncated, "{:?}", s.text);
        assert_eq!(n.min(model.max_tokens()), s.tokens, "{:?}", s.text);
    }
    assert!(
        reference
            .sentences
            .iter()
            .any(|s| s.tokens_untruncated > model.max_tokens()),
        "the fixtures exercise truncation"
    );
}

#[test]
fn batching_and_threads_do_not_change_results() {
    let reference = reference();
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    for (threads, batch_size, max_batch_tokens) in [(1, 1, 4096), (2, 3, 300), (2, 64, 100_000)] {
        let options = LocalMiniLmOptions {
            threads: Some(threads),
            batch_size,
            max_batch_tokens,
            ..LocalMiniLmOptions::default()
        };
        let Some(model) = load(options) else {
            return;
        };
        let got = model.embed_blocking(&texts).unwrap();
        assert_parity(
            &reference,
            &got,
            &format!("threads {threads}, batch {batch_size}, {max_batch_tokens} tokens"),
        );
    }
}

#[test]
fn f32_precision_matches_even_more_closely() {
    let reference = reference();
    let options = LocalMiniLmOptions {
        precision: Precision::F32,
        ..LocalMiniLmOptions::default()
    };
    let Some(model) = load(options) else {
        return;
    };
    assert!(!model.uses_bf16());
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    let got = model.embed_blocking(&texts).unwrap();
    assert_parity_within(&reference, &got, "f32", 0.99999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_embedder_matches_too_and_keeps_order() {
    let reference = reference();
    let Some(model) = load(LocalMiniLmOptions::default()) else {
        return;
    };
    let model: std::sync::Arc<dyn Embedder> = std::sync::Arc::new(model);
    assert!(model.embed(&[]).await.unwrap().is_empty());
    // Reversed input order, two calls at once.
    let texts: Vec<String> = reference
        .sentences
        .iter()
        .rev()
        .map(|s| s.text.clone())
        .collect();
    let (a, b) = tokio::join!(model.embed(&texts), model.embed(&texts[..3]));
    let mut a = a.unwrap();
    a.reverse();
    assert_parity(&reference, &a, "async");
    let b = b.unwrap();
    assert_eq!(b.len(), 3);
    for (x, y) in b.iter().zip(&texts[..3]) {
        let i = reference
            .sentences
            .iter()
            .position(|s| &s.text == y)
            .unwrap();
        assert!(cosine(x, &reference.sentences[i].embedding) >= 0.999);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_small_requests_each_get_their_own_vectors() {
    // Queries arriving together are coalesced into shared forward passes; each caller must
    // still get its own texts' vectors, in its order, matching the reference.
    let reference = reference();
    let Some(model) = load(LocalMiniLmOptions::default()) else {
        return;
    };
    let sentences = std::sync::Arc::new(reference.sentences.clone());
    let mut tasks = Vec::new();
    for round in 0..4 {
        for i in 0..sentences.len() {
            let (model, sentences) = (model.clone(), sentences.clone());
            tasks.push(tokio::spawn(async move {
                // One or two texts per request (the second from elsewhere in the list).
                let j = (i + 7 * round + 3) % sentences.len();
                let picked: Vec<usize> = if (i + round) % 2 == 0 {
                    vec![i]
                } else {
                    vec![i, j]
                };
                let texts: Vec<String> =
                    picked.iter().map(|&k| sentences[k].text.clone()).collect();
                let got = model.embed(&texts).await.unwrap();
                (picked, got)
            }));
        }
    }
    for t in tasks {
        let (picked, got) = t.await.unwrap();
        assert_eq!(got.len(), picked.len());
        for (k, v) in picked.iter().zip(&got) {
            let c = cosine(v, &sentences[*k].embedding);
            assert!(c >= 0.999, "cosine {c} for {:?}", sentences[*k].text);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn embedding_does_not_block_the_runtime() {
    let reference = reference();
    let Some(model) = load(LocalMiniLmOptions::default()) else {
        return;
    };
    // A single-threaded runtime: if `embed` ran the model on it, the ticker could not tick.
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let started = std::time::Instant::now();
    let got = model.embed(&texts).await.unwrap();
    let elapsed = started.elapsed();
    ticker.abort();
    assert_eq!(got.len(), texts.len());
    let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
    if elapsed > std::time::Duration::from_millis(50) {
        assert!(ticks > 0, "the runtime was blocked for {elapsed:?}");
    }
}

#[cfg(unix)]
#[test]
fn loads_from_a_hugging_face_cache_layout() {
    let Some(dir) = model_dir() else {
        eprintln!("skipped: model not found, run scripts/get-model (or set DOCENT_TEST_MODEL_DIR)");
        return;
    };
    let dir = std::fs::canonicalize(dir).unwrap();
    let hub = tempfile::tempdir().unwrap();
    let repo = hub.path().join(docent_models::HF_CACHE_REPO_DIR);
    let rev = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
    let snapshot = repo.join("snapshots").join(rev);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), rev).unwrap();
    for f in docent_models::REQUIRED_FILES {
        std::os::unix::fs::symlink(dir.join(f), snapshot.join(f)).unwrap();
    }
    let reference = reference();
    for path in [hub.path(), repo.as_path(), snapshot.as_path()] {
        let model = LocalMiniLm::load(path, LocalMiniLmOptions::default()).unwrap();
        let got = model
            .embed_blocking(&[&reference.sentences[0].text])
            .unwrap();
        assert!(cosine(&got[0], &reference.sentences[0].embedding) >= 0.999);
    }
}
