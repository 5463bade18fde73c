//! Issue 21: what one workspace computes is never served from the cache to another (a hit, or
//! its speed, would tell it that someone summarized those bytes or searched that query), cache
//! keys stay short whatever the input, and queries have a length limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use docent_config::Config;
use docent_core::Services;
use docent_core::search::{MAX_QUERY_CHARS, SearchMode, SearchParams};
use docent_domain::ports::Embedder;
use docent_domain::*;
use tempfile::TempDir;

mod common;

/// Counts the texts it embeds.
#[derive(Default)]
struct CountingEmbedder {
    texts: AtomicUsize,
}

#[async_trait]
impl Embedder for CountingEmbedder {
    fn model_id(&self) -> &str {
        "counting"
    }
    fn dimension(&self) -> usize {
        2
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
    }
}

struct App {
    svc: Services,
    embedder: Arc<CountingEmbedder>,
    _dir: TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let embedder = Arc::new(CountingEmbedder::default());
    let svc = common::services(config, Some(embedder.clone() as Arc<dyn Embedder>)).await;
    App {
        svc,
        embedder,
        _dir: dir,
    }
}

/// A tenant with one processed document of `text` (sha256 `sha`).
async fn tenant_with_document(svc: &Services, sha: &str, text: &str) -> (TenantId, Document) {
    let (t, c) = common::tenant_with_collection(svc).await;
    let id = DocumentId::new();
    svc.store
        .insert_document(
            t,
            NewDocument {
                id,
                collection_id: c,
                filename: "same.txt".into(),
                declared_mime: "text/plain".into(),
                size_bytes: text.len() as u64,
                sha256: sha.into(),
                blob_key: format!("k/{id}"),
                metadata: Metadata::new(),
            },
        )
        .await
        .expect("document");
    svc.store
        .replace_chunks(
            t,
            id,
            ExtractionFacts::default(),
            vec![NewChunk {
                ordinal: 0,
                text: text.into(),
                char_start: 0,
                char_end: text.chars().count() as u64,
                page: None,
                heading_path: Vec::new(),
                metadata: Metadata::new(),
                embedding: None,
            }],
            None,
        )
        .await
        .expect("chunks");
    let doc = svc.store.get_document(t, id).await.expect("document");
    (t, doc)
}

/// M2: the same bytes summarized in two workspaces are computed separately — the second
/// workspace's first look is a cache miss, not a hit that reveals the first one's summary.
#[tokio::test]
async fn summaries_are_cached_per_tenant() {
    let app = app().await;
    let text = "The merger closes in March. Staff move to the new site. Budgets are frozen.";
    let sha = "a".repeat(64);
    let (a, doc_a) = tenant_with_document(&app.svc, &sha, text).await;
    let (b, doc_b) = tenant_with_document(&app.svc, &sha, text).await;
    assert_eq!(doc_a.sha256, doc_b.sha256);

    let summary = app.svc.summarize(a, &doc_a, 2).await.expect("summary");
    let embedded = app.embedder.texts.load(Ordering::SeqCst);
    assert!(embedded > 0, "computed with the embedder");
    assert!(app.svc.cached_summary(&doc_a, 2).await.unwrap().is_some());
    assert!(
        app.svc.cached_summary(&doc_b, 2).await.unwrap().is_none(),
        "another workspace's summary of the same bytes must be a miss"
    );
    let again = app.svc.summarize(b, &doc_b, 2).await.expect("summary");
    assert_eq!(again.summary, summary.summary);
    assert!(
        app.embedder.texts.load(Ordering::SeqCst) > embedded,
        "computed again for the second workspace"
    );
    let key = app.svc.summary_key(&doc_a, 2);
    assert!(key.contains(&a.to_string()) && !key.contains(&sha), "{key}");
}

/// Query vectors are cached per tenant too (a hit is faster: its timing would tell that
/// another workspace searched exactly that), under a hashed key.
#[tokio::test]
async fn query_vectors_are_cached_per_tenant_under_hashed_keys() {
    let app = app().await;
    let (a, _) = tenant_with_document(&app.svc, &"b".repeat(64), "x").await;
    let (b, _) = tenant_with_document(&app.svc, &"c".repeat(64), "x").await;
    let query = "the acquisition of acme corporation";
    let p = SearchParams {
        mode: SearchMode::Hybrid,
        ..SearchParams::new(query)
    };
    app.svc.search(a, &p).await.expect("search");
    assert_eq!(app.embedder.texts.load(Ordering::SeqCst), 1);
    app.svc.search(a, &p).await.expect("search");
    assert_eq!(app.embedder.texts.load(Ordering::SeqCst), 1, "a hit in A");
    app.svc.search(b, &p).await.expect("search");
    assert_eq!(
        app.embedder.texts.load(Ordering::SeqCst),
        2,
        "B's first search of the same words is a miss"
    );
    let key = docent_core::search::query_vector_key(a, "counting", query);
    assert!(!key.contains("acme"), "{key}");
    assert!(key.len() < 120, "{key}");
    assert!(app.svc.cache.get(&key).await.unwrap().is_some());
}

/// A query longer than the limit is refused with its own code before any work; the limit
/// itself passes. (A 1 MB query used to cost 13 s of CPU and sit whole in a cache key.)
#[tokio::test]
async fn long_queries_are_refused() {
    let app = app().await;
    let (t, _) = tenant_with_document(&app.svc, &"d".repeat(64), "x").await;
    let at_limit = "word ".repeat(MAX_QUERY_CHARS / 5);
    app.svc
        .search(t, &SearchParams::new(at_limit))
        .await
        .expect("a query at the limit");
    let calls = app.embedder.texts.load(Ordering::SeqCst);
    let err = app
        .svc
        .search(t, &SearchParams::new("é".repeat(MAX_QUERY_CHARS + 1)))
        .await
        .expect_err("too long");
    assert_eq!(err.code, Code::QueryTooLong);
    assert_eq!(err.code.as_str(), "query_too_long");
    assert_eq!(app.embedder.texts.load(Ordering::SeqCst), calls, "no work");
    let err = app
        .svc
        .ask(t, SearchParams::new("q".repeat(1 << 20)))
        .await
        .expect_err("too long");
    assert_eq!(err.code, Code::QueryTooLong);
}
