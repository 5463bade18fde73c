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
pub mod worker;

use std::sync::Arc;

use docent_blob::BlobStore;
use docent_config::Config;
use docent_domain::ports::{Cache, Embedder, MetadataStore, SearchIndex, TaskQueue};
use tokio::sync::Notify;

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
}

/// Dependency health, for readiness.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `(dependency, error)` for each check; `None` means healthy.
    pub checks: Vec<(&'static str, Option<String>)>,
}

impl Readiness {
    /// Whether every dependency is healthy.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|(_, e)| e.is_none())
    }
}

impl Services {
    /// Checks the database, blob store and queue.
    pub async fn readiness(&self) -> Readiness {
        let (db, blobs, queue) =
            tokio::join!(self.store.ping(), self.blobs.ping(), self.queue.ping());
        let msg = |r: docent_domain::Result<()>| r.err().map(|e| e.message);
        Readiness {
            checks: vec![
                ("database", msg(db)),
                ("blob_store", msg(blobs)),
                ("queue", msg(queue)),
            ],
        }
    }
}
