//! Ports: the traits backends implement and services call. Each has one embedded
//! implementation now; distributed ones (PostgreSQL, SQS, Redis) slot in behind the same trait
//! and must pass the same contract suite (`docent-testkit`).
//!
//! Architecture invariant: every method that reads or writes tenant data takes the tenant
//! explicitly, and implementations scope every query by it. An id from another tenant behaves
//! exactly like a missing one.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::bots::*;
pub use crate::delivery::{Delivery, MAX_VISIBILITY, Received};
use crate::error::{ErrorInfo, Result};
use crate::ids::{ChunkId, CollectionId, DocumentId, TaskId, TenantId};
use crate::model::*;
use crate::widget::*;

/// Metadata repositories: tenants, collections, documents, chunks — and, through [`BotStore`]
/// and [`WidgetStore`], bots, their conversations and widget keys, which live in the same
/// database.
#[async_trait]
pub trait MetadataStore: BotStore + WidgetStore + Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;

    /// Creates the tenant if missing and returns it.
    async fn ensure_tenant(&self, id: TenantId, name: &str) -> Result<Tenant>;

    /// Creates a collection; `collection_name_taken` if the name is in use in the tenant.
    async fn create_collection(&self, tenant: TenantId, new: NewCollection) -> Result<Collection>;
    /// A collection, or `collection_not_found`.
    async fn get_collection(&self, tenant: TenantId, id: CollectionId) -> Result<Collection>;
    /// A collection by exact name.
    async fn find_collection_by_name(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<Collection>>;
    /// Collections, newest first.
    async fn list_collections(
        &self,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<Page<Collection>>;
    /// Applies a patch.
    async fn update_collection(
        &self,
        tenant: TenantId,
        id: CollectionId,
        patch: CollectionPatch,
    ) -> Result<Collection>;
    /// Deletes the collection row and, in the same transaction, its documents and chunks.
    /// Returns the blob keys of the deleted originals so the caller can remove them.
    async fn delete_collection(&self, tenant: TenantId, id: CollectionId) -> Result<Vec<String>>;

    /// Registers an original. If the collection already holds a document with the same sha256,
    /// nothing is inserted and that document is returned with `false`.
    async fn insert_document(&self, tenant: TenantId, new: NewDocument)
    -> Result<(Document, bool)>;
    /// A document, or `document_not_found`.
    async fn get_document(&self, tenant: TenantId, id: DocumentId) -> Result<Document>;
    /// Documents by id (missing or other tenants' ids are skipped), in the order asked.
    async fn get_documents(&self, tenant: TenantId, ids: &[DocumentId]) -> Result<Vec<Document>>;
    /// Documents, newest first.
    async fn list_documents(
        &self,
        tenant: TenantId,
        filter: DocumentFilter,
        page: PageRequest,
    ) -> Result<Page<Document>>;
    /// Points the document at the task now responsible for it; the document's status and error
    /// are that task's.
    async fn set_document_task(&self, tenant: TenantId, id: DocumentId, task: TaskId)
    -> Result<()>;
    /// Deletes the document and its chunks; returns it as it was.
    async fn delete_document(&self, tenant: TenantId, id: DocumentId) -> Result<Document>;

    /// Atomically replaces every chunk of a document (deterministic ids, so re-running never
    /// duplicates) and records extraction facts and the chunk count. With `model`, the chunks
    /// carry embeddings from it: the collection records the model on first use and refuses
    /// vectors from any other (`embedding_model_mismatch`).
    async fn replace_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        facts: ExtractionFacts,
        chunks: Vec<NewChunk>,
        model: Option<EmbeddingModel>,
    ) -> Result<u32>;
    /// Chunks the tenant stores in its documents other than `except` (the document being
    /// ingested, whose chunks are replaced): what the per-tenant chunk quota counts.
    async fn stored_chunks(&self, tenant: TenantId, except: DocumentId) -> Result<u64>;
    /// The checkpoint of `task`'s batched ingest of a document: chunks below the returned
    /// ordinal are committed. `None` when that task has not started one (a new task, or
    /// another task's checkpoint).
    async fn ingest_checkpoint(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
    ) -> Result<Option<u32>>;
    /// Starts `task`'s batched ingest of a document, in one transaction: removes its chunks
    /// and failed rows, records the extraction facts, and sets the checkpoint to 0.
    async fn begin_batched_ingest(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
        facts: ExtractionFacts,
    ) -> Result<()>;
    /// Commits one batch in one transaction: stores its chunks (the model rule of
    /// [`replace_chunks`](MetadataStore::replace_chunks) applies), ledgers its failed rows,
    /// drops resolved rows from the ledger, moves `task`'s checkpoint and the chunk count.
    /// Returns the document's chunk count. A checkpoint held by another task is
    /// `task_state_conflict` (a newer task took the document over).
    async fn append_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        task: TaskId,
        batch: ChunkBatch,
        model: Option<EmbeddingModel>,
    ) -> Result<u32>;
    /// A document's failure ledger, by row.
    async fn list_failed_rows(
        &self,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<Vec<FailedRow>>;
    /// The ordinals of a document's stored chunks with their vectors (for re-indexing).
    async fn chunk_vectors(
        &self,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<Vec<(u32, Option<Vec<f32>>)>>;
    /// Chunks by id (missing or other tenants' ids are skipped), in the order asked.
    async fn get_chunks(&self, tenant: TenantId, ids: &[ChunkId]) -> Result<Vec<Chunk>>;
    /// Tenants with data (index rebuilds walk them).
    async fn list_tenants(&self) -> Result<Vec<TenantId>>;
    /// Stored embeddings of a tenant in keyset pages: `(collection, chunk, vector)`.
    async fn scan_embeddings(
        &self,
        tenant: TenantId,
        after: Option<ChunkId>,
        limit: u32,
    ) -> Result<Vec<(CollectionId, ChunkId, Vec<f32>)>>;
    /// A document's chunks in order.
    async fn list_chunks(
        &self,
        tenant: TenantId,
        document: DocumentId,
        page: PageRequest,
    ) -> Result<Page<Chunk>>;

    /// Records a pending direct upload (table `pending_uploads`, SQLite migration `0006`).
    /// The default answers `feature_unavailable`, for stores without the table yet.
    async fn insert_pending_upload(&self, tenant: TenantId, upload: PendingUpload) -> Result<()> {
        let _ = (tenant, upload);
        Err(direct_uploads_unsupported())
    }
    /// A pending direct upload, or `upload_not_found`.
    async fn get_pending_upload(&self, tenant: TenantId, id: DocumentId) -> Result<PendingUpload> {
        let _ = (tenant, id);
        Err(direct_uploads_unsupported())
    }
    /// Removes a pending direct upload; `false` when it was not there (already completed or
    /// removed by a concurrent call), so exactly one caller wins.
    async fn take_pending_upload(&self, tenant: TenantId, id: DocumentId) -> Result<bool> {
        let _ = (tenant, id);
        Err(direct_uploads_unsupported())
    }
}

fn direct_uploads_unsupported() -> crate::error::Error {
    crate::error::Error::new(
        crate::error::Code::FeatureUnavailable,
        "this metadata store does not support direct uploads",
    )
}

/// Bots, their conversations and messages. Every method is scoped by the tenant: another
/// tenant's bot or conversation is "not found" ([`bot_not_found`], [`conversation_not_found`]),
/// exactly like a missing one, and lists of another tenant's bot or conversation are errors,
/// not empty pages.
#[async_trait]
pub trait BotStore: Send + Sync + 'static {
    /// Creates a bot. Its collections must be the tenant's (`collection_not_found` otherwise);
    /// the rules on its fields are the caller's.
    async fn create_bot(&self, tenant: TenantId, draft: BotDraft) -> Result<Bot>;
    /// A bot.
    async fn get_bot(&self, tenant: TenantId, id: BotId) -> Result<Bot>;
    /// Bots passing `filter`, newest first.
    async fn list_bots(
        &self,
        tenant: TenantId,
        filter: BotFilter,
        page: PageRequest,
    ) -> Result<Page<Bot>>;
    /// Applies a patch (collections as in [`create_bot`](BotStore::create_bot)).
    async fn update_bot(&self, tenant: TenantId, id: BotId, patch: BotPatch) -> Result<Bot>;
    /// Deletes the bot and, in the same transaction, its conversations and their messages.
    async fn delete_bot(&self, tenant: TenantId, id: BotId) -> Result<()>;
    /// Documents of the bot's collections, newest first.
    async fn list_bot_documents(
        &self,
        tenant: TenantId,
        id: BotId,
        page: PageRequest,
    ) -> Result<Page<Document>>;

    /// Starts a conversation with a bot.
    async fn create_conversation(
        &self,
        tenant: TenantId,
        bot: BotId,
        new: NewConversation,
    ) -> Result<Conversation>;
    /// A conversation.
    async fn get_conversation(&self, tenant: TenantId, id: ConversationId) -> Result<Conversation>;
    /// Deletes a conversation and, in the same statement, its messages.
    async fn delete_conversation(&self, tenant: TenantId, id: ConversationId) -> Result<()>;
    /// A bot's conversations, newest first.
    async fn list_conversations(
        &self,
        tenant: TenantId,
        bot: BotId,
        page: PageRequest,
    ) -> Result<Page<Conversation>>;
    /// Appends a message and moves the conversation's `updated_at` to it.
    async fn append_message(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        new: NewMessage,
    ) -> Result<Message>;
    /// A conversation's messages, oldest first.
    async fn list_messages(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        page: PageRequest,
    ) -> Result<Page<Message>>;
}

/// Widget keys, their daily usage, the origins widgets refused, the widget's signing secret and
/// visitors' conversations. Keys are tenant-scoped like every row; only
/// [`find_widget_key`](WidgetStore::find_widget_key) and
/// [`origin_has_widget`](WidgetStore::origin_has_widget) look across tenants, as a public
/// request names no tenant (the key names it).
#[async_trait]
pub trait WidgetStore: Send + Sync + 'static {
    /// Stores a key for a bot of the tenant (`bot_not_found` otherwise).
    async fn create_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        new: NewWidgetKey,
    ) -> Result<WidgetKey>;
    /// A bot's keys, revoked ones too, newest first, with their use on `day`.
    async fn list_widget_keys(
        &self,
        tenant: TenantId,
        bot: BotId,
        day: chrono::NaiveDate,
    ) -> Result<Vec<WidgetKey>>;
    /// A key of the bot (`widget_key_not_found` otherwise), with its use on `day`.
    async fn get_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        id: WidgetKeyId,
        day: chrono::NaiveDate,
    ) -> Result<WidgetKey>;
    /// Revokes a key of the bot now (`widget_key_not_found` if it has none such); a revoked
    /// key stays revoked at its first time.
    async fn revoke_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        id: WidgetKeyId,
    ) -> Result<WidgetKey>;
    /// In one transaction: revokes the key (`widget_key_not_found` if the bot has none such,
    /// or it is revoked already) and stores `new` with its name and quota.
    async fn rotate_widget_key(
        &self,
        tenant: TenantId,
        bot: BotId,
        id: WidgetKeyId,
        key: String,
    ) -> Result<WidgetKey>;
    /// The key with this text, revoked or not, in whichever tenant, with its use on `day`.
    async fn find_widget_key(&self, key: &str, day: chrono::NaiveDate)
    -> Result<Option<WidgetKey>>;
    /// Whether some bot with an unrevoked key allows `origin` (answers CORS preflights, which
    /// carry no key).
    async fn origin_has_widget(&self, origin: &str) -> Result<bool>;
    /// Counts one message against the key's quota for `day`: the count after it, or `None`
    /// (nothing counted) when `quota` messages were taken already. Atomic across processes.
    async fn take_widget_message(
        &self,
        tenant: TenantId,
        key: WidgetKeyId,
        day: chrono::NaiveDate,
        quota: u32,
    ) -> Result<Option<u32>>;
    /// Counts a refusal of `origin` for the bot (the most recent hundred per bot are kept).
    async fn record_widget_refusal(
        &self,
        tenant: TenantId,
        bot: BotId,
        origin: &str,
        reason: &str,
    ) -> Result<()>;
    /// A bot's refused origins, most recent first.
    async fn list_widget_refusals(
        &self,
        tenant: TenantId,
        bot: BotId,
    ) -> Result<Vec<WidgetRefusal>>;
    /// The secret widget sessions are signed with: `candidate` is stored if there is none yet,
    /// and the stored one returned (every process of a deployment shares it).
    async fn widget_secret(&self, candidate: &[u8]) -> Result<Vec<u8>>;
    /// The visitor's most recently active conversation with the bot.
    async fn latest_visitor_conversation(
        &self,
        tenant: TenantId,
        bot: BotId,
        visitor: VisitorHash,
    ) -> Result<Option<ConversationId>>;
}

/// A worker's hold on a task. Every state change made through a lease checks that the lease is
/// still the current one, so a worker whose lease expired can no longer touch the task.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The task as it was when leased.
    pub task: Task,
    /// Unique token of this lease.
    pub token: String,
    /// When it runs out unless extended.
    pub expires_at: DateTime<Utc>,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Lease extended; carry on.
    Extended,
    /// Lease extended, but a user asked to cancel: stop and call [`TaskQueue::cancelled`].
    CancelRequested,
    /// The lease is gone (expired and re-leased, or the task deleted): stop at once.
    Lost,
}

/// How a failure was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Will run again after this time.
    Retrying {
        /// Next run time.
        at: DateTime<Utc>,
    },
    /// Failed for good (non-retryable).
    Failed,
    /// Out of attempts: failed and dead-lettered.
    DeadLettered,
    /// The lease was gone; nothing recorded.
    LeaseLost,
}

/// A durable task queue with SQS-like semantics: leases with a visibility timeout, heartbeats,
/// receive counts, exponential backoff with jitter, dead-lettering, cancel and operator retry.
/// Task state is readable through the queue (`get`, `list`) so status queries never need a
/// worker.
#[async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Checks the queue answers.
    async fn ping(&self) -> Result<()>;
    /// Adds a task in `pending`.
    async fn enqueue(&self, tenant: TenantId, new: NewTask) -> Result<Task>;
    /// Leases the next runnable task (pending and due, or running with an expired lease) for
    /// `visibility`, counting an attempt. Tasks whose lease expired with no attempts left are
    /// dead-lettered instead of being handed out.
    ///
    /// Fair across tenants (`queue.max_running_per_tenant`, the *cap*; 0 turns it off): the
    /// oldest runnable task of a tenant holding fewer than the cap live leases goes first; only
    /// when no such tenant has one is the oldest runnable task of any tenant leased, so a tenant
    /// alone still gets every worker. A tenant at its cap gets no new lease while another
    /// tenant under it has a runnable task.
    async fn lease(&self, worker: &str, visibility: Duration) -> Result<Option<Lease>>;
    /// Whether the holder of `lease` should give its task back at the next safe point
    /// ([`release`](Self::release), no attempt counted) so that another tenant gets the
    /// worker: its tenant holds more live leases than the cap while a tenant under the cap has
    /// a runnable task. Always false with fairness off.
    async fn should_yield(&self, lease: &Lease) -> Result<bool>;
    /// Extends the lease by `visibility` from now.
    async fn heartbeat(&self, lease: &Lease, visibility: Duration) -> Result<Heartbeat>;
    /// Persists progress and the running status (`processing` or `processing_chunks`).
    /// Returns false if the lease is gone.
    async fn progress(&self, lease: &Lease, status: TaskStatus, progress: Progress)
    -> Result<bool>;
    /// Marks it `completed` or `partially_completed`. Returns false if the lease is gone.
    async fn complete(&self, lease: &Lease, status: TaskStatus, progress: Progress)
    -> Result<bool>;
    /// Records a failure: retryable ones back off (at least `retry_after`) until attempts run out.
    async fn fail(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Result<FailOutcome>;
    /// Marks a task whose cancel was requested as `cancelled`. Returns false if the lease is gone.
    async fn cancelled(&self, lease: &Lease) -> Result<bool>;
    /// Gives the task back without counting the attempt (graceful shutdown).
    async fn release(&self, lease: &Lease) -> Result<bool>;
    /// Cancels: a pending task at once, a running one by request (its worker stops at the next
    /// heartbeat). `task_state_conflict` for a terminal task.
    async fn cancel(&self, tenant: TenantId, id: TaskId) -> Result<Task>;
    /// Puts a failed or cancelled task (dead-lettered included) back to `pending` with fresh
    /// attempts. `task_state_conflict` otherwise.
    async fn retry(&self, tenant: TenantId, id: TaskId) -> Result<Task>;
    /// A task, or `task_not_found`.
    async fn get(&self, tenant: TenantId, id: TaskId) -> Result<Task>;
    /// Tasks, newest first.
    async fn list(
        &self,
        tenant: TenantId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>>;
    /// Counts by status across all tenants (operator metrics).
    async fn depth(&self) -> Result<QueueDepth>;
    /// Counts by status of one tenant's tasks; with `collections`, only the tasks of those
    /// collections (an empty list counts nothing).
    async fn tenant_depth(
        &self,
        tenant: TenantId,
        collections: Option<&[CollectionId]>,
    ) -> Result<QueueDepth>;
}

/// The record side of a queue whose deliveries travel through a broker (the SQS queue): a
/// [`TaskQueue`] over the `tasks` table that can also lease one named task. The broker carries
/// task ids; the ledger keeps every task's state, decides whether a delivery may run and answers
/// every status query, so those never touch the broker.
#[async_trait]
pub trait TaskLedger: TaskQueue {
    /// Leases task `id` of `tenant` for `visibility` if it is runnable — pending and due, or
    /// running with a lapsed lease, attempts left and no cancel request — counting an attempt,
    /// with the rules of [`TaskQueue::lease`]. Lapsed leases that must not run again are settled
    /// first, as [`TaskLedger::settle_lapsed`] does. `None` when the task is missing or not
    /// runnable (`get` tells why), and also — fairness — when its tenant holds its cap of live
    /// leases while a tenant under the cap has a runnable task: the task stays runnable (no
    /// attempt counted, `get` shows it pending and due) and the broker delivers it again shortly.
    async fn lease_task(
        &self,
        tenant: TenantId,
        id: TaskId,
        worker: &str,
        visibility: Duration,
    ) -> Result<Option<Lease>>;
    /// Records a failure like [`TaskQueue::fail`], except that a retryable one with attempts
    /// left runs again exactly `delay` from now: the caller chose the delay (its broker's
    /// redelivery is timed to match), so the ledger's own backoff is not used.
    async fn fail_after(
        &self,
        lease: &Lease,
        error: ErrorInfo,
        retryable: bool,
        delay: Duration,
    ) -> Result<FailOutcome>;
    /// Settles every lapsed lease that must not run again: out of attempts → failed and
    /// dead-lettered (`worker_lost`); cancel requested → `cancelled`.
    async fn settle_lapsed(&self) -> Result<()>;
    /// Tasks that were already runnable at `since` (pending and due, or a lapsed lease with
    /// attempts left and no cancel request), across tenants, longest waiting first, at most
    /// `limit`: the ones whose delivery a broker may have lost.
    async fn overdue(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<(TenantId, TaskId)>>;
    /// [`overdue`](Self::overdue) since `wait` ago: the tasks that have been runnable for at
    /// least `wait` (a broker's sweep for lost deliveries).
    async fn runnable_for(&self, wait: Duration, limit: u32) -> Result<Vec<(TenantId, TaskId)>> {
        let since = chrono::Duration::from_std(wait)
            .ok()
            .and_then(|d| Utc::now().checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.overdue(since, limit).await
    }
}

/// What a cache key is for — its part before the first `:` (`qvec`, `summary`, ...) — for
/// logs and traces: keys can hold user text (a query vector's key holds the query), which
/// never goes to a log.
pub fn cache_key_kind(key: &str) -> &str {
    key.split(':').next().unwrap_or_default()
}

/// A byte cache with per-entry time to live (summaries, rate-limit state, ...).
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value, if present and fresh.
    async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>>;
    /// Stores a value for `ttl`.
    async fn put(&self, key: &str, value: bytes::Bytes, ttl: Duration) -> Result<()>;
    /// Removes a value.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Checks the cache answers (readiness); in-process caches always do.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// Retry delays of the task queues: `base * 2^(attempt-1)`, capped at `max`, with equal jitter
/// (a random point in the upper half), so a retry never comes sooner than half the nominal
/// delay. One policy for every queue backend.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before the retry that follows `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = nominal / 2;
        half + rand::Rng::random_range(&mut rand::rng(), Duration::ZERO..=half)
    }
}

/// A chunk as the search indexes see it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexChunk {
    /// Chunk id.
    pub id: ChunkId,
    /// Collection.
    pub collection_id: CollectionId,
    /// Text (BM25 field).
    pub text: String,
    /// Char offset of the text in the document's extracted text (chunks may overlap).
    pub char_start: u64,
    /// Headings above it (boosted field).
    pub heading_path: Vec<String>,
    /// Document title or file name (boosted field).
    pub title: String,
    /// Language the text is analysed in (the collection's).
    pub language: TextLanguage,
    /// Embedding, when an embedder is configured.
    pub vector: Option<Vec<f32>>,
    /// The document's metadata overlaid with the chunk's (what metadata filters test).
    pub metadata: crate::Metadata,
    /// When the document was uploaded (what date filters test).
    pub created_at: DateTime<Utc>,
}

/// Which chunks a search may return. Empty lists and `None` mean "no restriction".
///
/// Every index applies the tenant, `collections` and `documents` before its limit. The
/// metadata and date conditions are applied before the limit by indexes whose
/// [`SearchIndex::filters_metadata`] is true (PostgreSQL, in SQL); others leave them to the
/// search service, which re-checks every hit against them either way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexFilter {
    /// Only these collections.
    pub collections: Vec<CollectionId>,
    /// Only these documents.
    pub documents: Vec<DocumentId>,
    /// Metadata conditions ([`crate::meta_matches`]), all of which must hold.
    pub metadata: Vec<crate::MetaFilter>,
    /// Only documents uploaded at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Only documents uploaded before.
    pub created_before: Option<DateTime<Utc>>,
}

impl IndexFilter {
    /// Whether metadata or date conditions are set.
    pub fn has_conditions(&self) -> bool {
        !self.metadata.is_empty() || self.created_after.is_some() || self.created_before.is_some()
    }
}

/// A document-level hit from one index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredDocument {
    /// Document.
    pub id: DocumentId,
    /// Score; higher is better.
    pub score: f32,
}

/// A search hit from one index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredChunk {
    /// Chunk.
    pub id: ChunkId,
    /// Score (BM25, or cosine similarity for vectors); higher is better.
    pub score: f32,
}

/// Keyword and vector indexes over chunks. Derived data: everything in them can be rebuilt from
/// the metadata store (`docent reindex`).
#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// Replaces every indexed chunk of a document.
    async fn upsert_document(
        &self,
        tenant: TenantId,
        document: DocumentId,
        chunks: Vec<IndexChunk>,
    ) -> Result<()>;
    /// Removes a document's chunks; visible to the next search.
    async fn delete_document(&self, tenant: TenantId, document: DocumentId) -> Result<()>;
    /// Removes a collection's chunks.
    async fn delete_collection(&self, tenant: TenantId, collection: CollectionId) -> Result<()>;
    /// BM25 search.
    async fn keyword(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>>;
    /// BM25 over whole documents (each document's chunks as one text), best first: how
    /// documents rather than passages are ranked.
    async fn keyword_documents(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredDocument>>;
    /// Nearest chunks by cosine similarity (vectors are L2-normalised).
    async fn vector(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<ScoredChunk>>;
    /// Drops everything (before a rebuild).
    async fn clear(&self) -> Result<()>;
    /// Whether searches apply [`IndexFilter`]'s metadata and date conditions before their
    /// limit. When false the search service filters hits afterwards, asking for more of them.
    fn filters_metadata(&self) -> bool {
        false
    }
}

/// Turns texts into L2-normalised vectors.
#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// Model id recorded on collections, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    fn model_id(&self) -> &str;
    /// Vector dimension.
    fn dimension(&self) -> usize;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
    /// The number of word pieces the model sees for `text` (special tokens excluded, no
    /// truncation), when the model can tell; chunks are then sized in word pieces.
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_kinds_never_carry_the_rest_of_the_key() {
        assert_eq!(
            cache_key_kind("qvec:sentence-transformers/all-MiniLM-L6-v2:my secret query"),
            "qvec"
        );
        assert_eq!(cache_key_kind("plain"), "plain");
        assert_eq!(cache_key_kind(""), "");
    }
}
