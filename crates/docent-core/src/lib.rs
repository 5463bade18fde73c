//! Services: the rules of docent over the ports, with no HTTP in them.
//!
//! - [`Services`] bundles the backends chosen by configuration (metadata store, task queue, blob
//!   store, cache) and is what the HTTP layer and the CLI call.
//! - [`collections`], [`documents`], [`tasks`]: the operations behind the API, each taking the
//!   caller's tenant — or, where a collection or document is involved, its
//!   [`Scope`](docent_domain::auth::Scope) (a tenant, narrowed to an API key's collections), so
//!   a key's collection limit is enforced here and not only at the HTTP edge ([`scope`]).
//! - [`bots`], [`chat`]: bots over collections, and cited chat with them (retrieval → a
//!   prompt with numbered sources → an answer with validated `[n]` citations).
//! - [`direct`]: presigned downloads and direct uploads (the client sends the bytes to the
//!   S3 blob store itself; completing the upload verifies them and registers the document).
//! - [`widget`]: the embeddable chat widget — publishable keys, signed visitor sessions,
//!   origin checks, rate limits and the daily quota, visitors' conversations.
//! - [`worker`]: the lease → run → complete loop, heartbeats, time limits and graceful shutdown.
//! - [`ingest`]: the ingest task — blob → extract → chunk → store chunks, idempotently.

pub mod answer;
pub mod bots;
pub mod chat;
pub mod collections;
pub mod direct;
pub mod documents;
pub mod ingest;
pub mod scope;
pub mod search;
pub mod tasks;
pub mod widget;
pub mod worker;

use std::sync::Arc;

use docent_blob::BlobStore;
use docent_config::Config;
use docent_domain::ports::{Cache, Embedder, MetadataStore, SearchIndex, TaskQueue};
use tokio::sync::Notify;

/// A hex SHA-256 of `parts` (each length-prefixed, so no two lists share a hash), for cache
/// keys: keys stay short whatever the input, and user text never sits in a shared cache's keys.
/// Every cache key also names its tenant, so no workspace can learn from a hit, or from its
/// speed, what another one searched or summarized.
pub fn key_hash(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The backends and settings every operation needs. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Metadata repositories.
    pub store: Arc<dyn MetadataStore>,
    /// Task queue (and task state).
    pub queue: Arc<dyn TaskQueue>,
    /// Originals.
    pub blobs: BlobStore,
    /// Cache.
    pub cache: Arc<dyn Cache>,
    /// Keyword and vector indexes.
    pub index: Arc<dyn SearchIndex>,
    /// Embedding model; `None` means keyword search only.
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Chat model; `None` means extractive answers.
    pub llm: Option<Arc<dyn docent_domain::llm::ChatModel>>,
    /// Wakes this process's idle workers when it enqueues work.
    pub wake: Arc<Notify>,
    /// Recently seen documents' immutable facts, for search hits.
    pub facts: search::DocumentFacts,
    /// The widget's signing secret (once read) and rate limiters.
    pub widget: Arc<widget::WidgetRuntime>,
}

/// Dependency health, for readiness.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// One check per dependency.
    pub checks: Vec<Check>,
}

/// One dependency's health.
#[derive(Debug, Clone)]
pub struct Check {
    /// `database`, `blob_store`, `queue`, `cache`.
    pub name: &'static str,
    /// Why it failed; `None` means healthy.
    pub error: Option<String>,
    /// Whether the process can serve without it: the cache (its reads and writes fall through
    /// an outage) and a queue's delivery service are; a failing optional dependency is
    /// reported (`degraded: …`) but keeps the process ready.
    pub optional: bool,
}

impl Readiness {
    /// Whether every required dependency is healthy.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.optional || c.error.is_none())
    }
}

impl Services {
    /// A cached value; a cache that fails counts as a miss (logged and counted in
    /// `docent_cache_errors_total`): the cache only ever saves work, so its outage must not
    /// fail a request.
    pub async fn cache_get(&self, key: &str) -> Option<bytes::Bytes> {
        match self.cache.get(key).await {
            Ok(v) => v,
            Err(e) => {
                metrics::counter!("docent_cache_errors_total", "op" => "get").increment(1);
                tracing::warn!(error = %e.chain(), "cache read failed; treated as a miss");
                None
            }
        }
    }

    /// Stores a value; a failure is logged and counted, never returned (see [`Self::cache_get`]).
    pub async fn cache_put(&self, key: &str, value: bytes::Bytes, ttl: std::time::Duration) {
        if let Err(e) = self.cache.put(key, value, ttl).await {
            metrics::counter!("docent_cache_errors_total", "op" => "put").increment(1);
            tracing::warn!(error = %e.chain(), "cache write failed; value not cached");
        }
    }

    /// Checks the database, blob store, queue and cache, each within `READY_TIMEOUT`.
    pub async fn readiness(&self) -> Readiness {
        const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
        async fn bounded(
            f: impl std::future::Future<Output = docent_domain::Result<()>>,
        ) -> Option<String> {
            match tokio::time::timeout(READY_TIMEOUT, f).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.message),
                Err(_) => Some(format!("no answer within {READY_TIMEOUT:?}")),
            }
        }
        let (db, blobs, queue, cache) = tokio::join!(
            bounded(self.store.ping()),
            bounded(self.blobs.ping()),
            bounded(self.queue.ping()),
            bounded(self.cache.ping()),
        );
        let check = |name, error, optional| Check {
            name,
            error,
            optional,
        };
        Readiness {
            checks: vec![
                check("database", db, false),
                check("blob_store", blobs, false),
                // The SQL queue is the database (checked above); a delivery service (SQS, a Redis
                // Stream) being down stops workers leasing, not the API: uploads and status still
                // work, so replicas stay in the load balancer.
                check("queue", queue, true),
                check("cache", cache, true),
            ],
        }
    }
}
