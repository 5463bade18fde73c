//! Domain records: tenants, collections, documents, chunks and tasks, with their statuses and the
//! inputs used to create or change them. Plain data; no I/O.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::ErrorInfo;
use crate::ids::{ChunkId, CollectionId, DocumentId, TaskId, TenantId};

/// Free-form JSON object attached to collections, documents and chunks.
pub type Metadata = Map<String, Value>;

/// Caps on the user metadata of a document or collection: it is stored with every row, copied
/// into every chunk's filterable metadata and returned by every listing, so it must stay small.
pub mod metadata_limits {
    /// Serialized JSON, in bytes (the multipart `metadata` part is read no further).
    pub const MAX_BYTES: usize = 64 * 1024;
    /// Object keys, counted at every level.
    pub const MAX_KEYS: usize = 256;
    /// Nesting of objects and arrays (the top-level object is depth 1).
    pub const MAX_DEPTH: usize = 8;
    /// One key, in bytes.
    pub const MAX_KEY_BYTES: usize = 256;
    /// One string value, in bytes.
    pub const MAX_STRING_BYTES: usize = 8 * 1024;
}

/// Checks user metadata against [`metadata_limits`]: `metadata_too_large` when over a cap.
/// Returns its serialized size in bytes, which counts toward the tenant's byte quota.
pub fn check_metadata(metadata: &Metadata) -> crate::Result<u64> {
    use metadata_limits::*;
    fn walk(v: &Value, depth: usize, keys: &mut usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("is nested deeper than {MAX_DEPTH} levels"));
        }
        match v {
            Value::String(s) if s.len() > MAX_STRING_BYTES => {
                Err(format!("has a string value over {MAX_STRING_BYTES} bytes"))
            }
            Value::Array(items) => items.iter().try_for_each(|i| walk(i, depth + 1, keys)),
            Value::Object(m) => {
                *keys += m.len();
                if *keys > MAX_KEYS {
                    return Err(format!("has more than {MAX_KEYS} keys"));
                }
                if m.keys().any(|k| k.len() > MAX_KEY_BYTES) {
                    return Err(format!("has a key over {MAX_KEY_BYTES} bytes"));
                }
                m.values().try_for_each(|i| walk(i, depth + 1, keys))
            }
            _ => Ok(()),
        }
    }
    let too_large =
        |why: String| crate::Error::new(crate::Code::MetadataTooLarge, format!("`metadata` {why}"));
    // Keys and depth first: they bound the cost of serializing below.
    let mut keys = 0;
    for v in metadata.values() {
        walk(v, 2, &mut keys).map_err(too_large)?;
    }
    keys += metadata.len();
    if keys > MAX_KEYS {
        return Err(too_large(format!("has more than {MAX_KEYS} keys")));
    }
    if metadata.keys().any(|k| k.len() > MAX_KEY_BYTES) {
        return Err(too_large(format!("has a key over {MAX_KEY_BYTES} bytes")));
    }
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |b| b.len());
    if size > MAX_BYTES {
        return Err(too_large(format!("is over {MAX_BYTES} bytes of JSON")));
    }
    Ok(size as u64)
}

/// A tenant (workspace).
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A collection (knowledge base) of documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// Id.
    pub id: CollectionId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Unique (per tenant) name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// User metadata.
    pub metadata: Metadata,
    /// Embedding model whose vectors the collection holds, once it has any.
    pub embedding_model: Option<String>,
    /// Dimension of those vectors.
    pub embedding_dim: Option<u32>,
    /// Language of its text: keyword search stems and drops stop words for it. Set at creation.
    pub language: TextLanguage,
    /// Number of documents.
    pub document_count: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create a collection.
#[derive(Debug, Clone, Default)]
pub struct NewCollection {
    /// Name, unique per tenant.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// User metadata.
    pub metadata: Metadata,
    /// Text language (English by default).
    pub language: TextLanguage,
}

/// A partial update of a collection; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct CollectionPatch {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Replacement metadata.
    pub metadata: Option<Metadata>,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $s:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),* }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The stable string form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }
            /// Parses the string form.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s).ok_or_else(|| {
                    let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown value `{s}`, expected one of: {}", all.join(", "))
                })
            }
        }
    };
}

// For the other record modules of this crate (`bots`).
pub(crate) use string_enum;

string_enum!(
    /// Language a collection's text is analysed in for keyword search (stemming and stop
    /// words), as an ISO 639-1 code; `none` only lowercases and splits words.
    TextLanguage {
        /// Arabic.
        Arabic => "ar",
        /// Danish.
        Danish => "da",
        /// German.
        German => "de",
        /// Greek.
        Greek => "el",
        /// English (the default).
        English => "en",
        /// Spanish.
        Spanish => "es",
        /// Finnish.
        Finnish => "fi",
        /// French.
        French => "fr",
        /// Hungarian.
        Hungarian => "hu",
        /// Italian.
        Italian => "it",
        /// Dutch.
        Dutch => "nl",
        /// Norwegian.
        Norwegian => "no",
        /// Portuguese.
        Portuguese => "pt",
        /// Romanian.
        Romanian => "ro",
        /// Russian.
        Russian => "ru",
        /// Swedish.
        Swedish => "sv",
        /// Tamil.
        Tamil => "ta",
        /// Turkish.
        Turkish => "tr",
        /// No stemming or stop words (any other language).
        Unspecified => "none",
    }
);

// `string_enum!` derives a fixed set of traits, so the default is written out.
#[allow(clippy::derivable_impls)]
impl Default for TextLanguage {
    fn default() -> Self {
        Self::English
    }
}

string_enum!(
    /// Lifecycle of a task (and, mirrored, of the document it processes).
    TaskStatus {
        /// Waiting to run (new, or backing off before a retry).
        Pending => "pending",
        /// Leased by a worker and running.
        Processing => "processing",
        /// Running, past extraction, writing chunks.
        ProcessingChunks => "processing_chunks",
        /// Finished with no failures.
        Completed => "completed",
        /// Finished; some rows failed (see the task's counters).
        PartiallyCompleted => "partially_completed",
        /// Failed for good (non-retryable, or out of attempts: then dead-lettered).
        Failed => "failed",
        /// Cancelled by a user.
        Cancelled => "cancelled",
    }
);

impl TaskStatus {
    /// Whether no more work will happen without an explicit retry.
    pub fn is_terminal(self) -> bool {
        match self {
            TaskStatus::Completed
            | TaskStatus::PartiallyCompleted
            | TaskStatus::Failed
            | TaskStatus::Cancelled => true,
            TaskStatus::Pending | TaskStatus::Processing | TaskStatus::ProcessingChunks => false,
        }
    }

    /// Whether a worker currently holds it.
    pub fn is_running(self) -> bool {
        matches!(self, TaskStatus::Processing | TaskStatus::ProcessingChunks)
    }
}

/// A document's processing status mirrors its latest task's.
pub type DocumentStatus = TaskStatus;

string_enum!(
    /// What a task does.
    TaskKind {
        /// Extract, chunk and store one document.
        IngestDocument => "ingest_document",
        /// Compute and cache a long document's summary.
        SummarizeDocument => "summarize_document",
        /// Embed and store again only the rows in a record file's failure ledger.
        RetryFailedRows => "retry_failed_rows",
    }
);

/// A stored original and what docent made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Id.
    pub id: DocumentId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Collection it belongs to.
    pub collection_id: CollectionId,
    /// File name as uploaded.
    pub filename: String,
    /// MIME type as declared by the uploader (or guessed from the name).
    pub declared_mime: String,
    /// Type detected from the bytes during extraction.
    pub detected_type: Option<String>,
    /// Size of the original in bytes.
    pub size_bytes: u64,
    /// Hex sha256 of the original.
    pub sha256: String,
    /// Key of the original in the blob store.
    pub blob_key: String,
    /// Processing status.
    pub status: DocumentStatus,
    /// Why processing failed, if it did.
    pub error: Option<ErrorInfo>,
    /// User metadata.
    pub metadata: Metadata,
    /// Pages (or slides, sheets) when known.
    pub page_count: Option<u32>,
    /// Number of chunks stored.
    pub chunk_count: u32,
    /// The latest task processing this document.
    pub task_id: Option<TaskId>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to register an uploaded original.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Id chosen before the upload (the blob key contains it).
    pub id: DocumentId,
    /// Target collection.
    pub collection_id: CollectionId,
    /// File name.
    pub filename: String,
    /// Declared MIME type.
    pub declared_mime: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Hex sha256.
    pub sha256: String,
    /// Blob key of the original.
    pub blob_key: String,
    /// User metadata.
    pub metadata: Metadata,
}

/// A direct upload waiting for its bytes (sent by the client to a presigned URL) and for its
/// completion, which verifies them and registers the document.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpload {
    /// The upload's id, which is also the id of the document it becomes.
    pub id: DocumentId,
    /// Target collection.
    pub collection_id: CollectionId,
    /// File name (cleaned).
    pub filename: String,
    /// Declared MIME type.
    pub declared_mime: String,
    /// Declared size in bytes.
    pub size_bytes: u64,
    /// Declared hex sha256 (lower case).
    pub sha256: String,
    /// Where the client puts the bytes (the document's original key).
    pub blob_key: String,
    /// User metadata.
    pub metadata: Metadata,
    /// When the upload was created.
    pub created_at: DateTime<Utc>,
    /// When its presigned URL expires.
    pub expires_at: DateTime<Utc>,
}

/// A filter for listing documents.
#[derive(Debug, Clone, Default)]
pub struct DocumentFilter {
    /// Only this collection.
    pub collection_id: Option<CollectionId>,
    /// Only this status.
    pub status: Option<DocumentStatus>,
    /// Only documents whose original has one of these hex sha256s (none: any). A collection
    /// holds each content once, so with a collection this names at most one document per hash.
    pub sha256: Vec<String>,
    /// Only documents whose file name contains this text, ignoring ASCII case (none or empty:
    /// any).
    pub filename_contains: Option<String>,
}

/// What extraction learned about a document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtractionFacts {
    /// Type detected from the bytes.
    pub detected_type: Option<String>,
    /// Pages, slides or sheets.
    pub page_count: Option<u32>,
}

/// A piece of a document's text, the unit of indexing and citation.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Deterministic id (document + ordinal).
    pub id: ChunkId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Collection.
    pub collection_id: CollectionId,
    /// The chunk's text.
    pub text: String,
    /// Start offset (in chars) in the document's extracted text.
    pub char_start: u64,
    /// End offset (exclusive, in chars).
    pub char_end: u64,
    /// Page (or slide, sheet) number, from 1, when known.
    pub page: Option<u32>,
    /// Headings enclosing the chunk, outermost first.
    pub heading_path: Vec<String>,
    /// Extra metadata (record fields, ...).
    pub metadata: Metadata,
}

/// A chunk about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// Position in the document.
    pub ordinal: u32,
    /// Text.
    pub text: String,
    /// Start char offset.
    pub char_start: u64,
    /// End char offset (exclusive).
    pub char_end: u64,
    /// Page when known.
    pub page: Option<u32>,
    /// Heading path.
    pub heading_path: Vec<String>,
    /// Extra metadata.
    pub metadata: Metadata,
    /// Embedding of the text, when an embedder is configured.
    pub embedding: Option<Vec<f32>>,
}

/// The embedding model whose vectors a collection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingModel {
    /// Model id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub id: String,
    /// Vector dimension.
    pub dimension: u32,
}

/// A row of a record file that could not be processed, kept in the document's failure ledger
/// until a retry succeeds or the document is processed again.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRow {
    /// Row (record) number from 1, the header row not counted.
    pub row: u32,
    /// Why, as an error code (`model_error`, ...).
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// When the row failed.
    pub failed_at: DateTime<Utc>,
}

/// One committed batch of a record file's ingest: stored and ledgered together with the
/// task's checkpoint, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ChunkBatch {
    /// Chunks to store (an existing chunk of the same ordinal is replaced).
    pub chunks: Vec<NewChunk>,
    /// Rows that failed (an existing ledger entry of the same row is replaced).
    pub failed: Vec<(u32, ErrorInfo)>,
    /// Rows that now succeeded: removed from the ledger.
    pub resolved: Vec<u32>,
    /// Chunks below this ordinal are done; `None` leaves the checkpoint alone (row retries).
    pub checkpoint: Option<u32>,
}

/// Progress counters persisted while a task runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Chunks (or rows) to process, once known.
    pub chunks_total: u64,
    /// Chunks (or rows) processed.
    pub chunks_done: u64,
    /// Rows that failed.
    pub rows_failed: u64,
}

/// A unit of background work and its full state.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// What it does.
    pub kind: TaskKind,
    /// Status.
    pub status: TaskStatus,
    /// Document it concerns, if any.
    pub document_id: Option<DocumentId>,
    /// Collection it concerns, if any.
    pub collection_id: Option<CollectionId>,
    /// Times it has been leased (the SQS receive count).
    pub attempts: u32,
    /// Leases allowed before it is dead-lettered.
    pub max_attempts: u32,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease runs out and the task becomes visible again.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Earliest time it may run (backoff).
    pub run_after: DateTime<Utc>,
    /// Progress counters.
    pub progress: Progress,
    /// Last error.
    pub error: Option<ErrorInfo>,
    /// Failed after exhausting its attempts; waits for an operator's retry.
    pub dead_lettered: bool,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First start.
    pub started_at: Option<DateTime<Utc>>,
    /// Time it reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Kind-specific parameters.
    pub payload: Value,
    /// The W3C `traceparent` of the operation that enqueued it (opaque here; the worker's span
    /// continues that trace when tracing is exported).
    pub traceparent: Option<String>,
}

/// Input to enqueue a task.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// What it does.
    pub kind: TaskKind,
    /// Document it concerns.
    pub document_id: Option<DocumentId>,
    /// Collection it concerns.
    pub collection_id: Option<CollectionId>,
    /// Override of the queue's default attempt limit.
    pub max_attempts: Option<u32>,
    /// Kind-specific parameters (`Value::Null` for none).
    pub payload: Value,
    /// The W3C `traceparent` of the enqueuing operation, carried with the task to its worker
    /// (opaque to the queue; `None` when no trace is exported).
    pub traceparent: Option<String>,
}

/// A filter for listing tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// Only this kind.
    pub kind: Option<TaskKind>,
    /// Only tasks of this document.
    pub document_id: Option<DocumentId>,
    /// Only tasks of this collection.
    pub collection_id: Option<CollectionId>,
    /// Only dead-lettered (or only not).
    pub dead_lettered: Option<bool>,
}

/// Keyset pagination: at most `limit` items after the opaque `cursor`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Maximum items to return (the store caps it).
    pub limit: u32,
    /// Continue after this cursor (from a previous [`Page::next_cursor`]).
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Largest page the stores return.
    pub const MAX_LIMIT: u32 = 200;
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The limit, clamped to `1..=MAX_LIMIT`.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Items, newest first.
    pub items: Vec<T>,
    /// Cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Counts of tasks by status, for metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// `(status, count)` for every status with at least one task.
    pub by_status: Vec<(TaskStatus, u64)>,
    /// Dead-lettered tasks.
    pub dead_lettered: u64,
    /// Since when the oldest runnable task (pending and due, or a lapsed lease with attempts
    /// left) has been waiting; `None` when none is runnable.
    pub oldest_runnable_since: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(v: Value) -> Metadata {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn metadata_is_checked_against_every_cap() {
        use metadata_limits::*;
        let ok = meta(json!({ "team": "hr", "tags": ["a", "b"], "n": { "x": 1 } }));
        assert_eq!(
            check_metadata(&ok).unwrap(),
            serde_json::to_vec(&ok).unwrap().len() as u64
        );
        assert_eq!(check_metadata(&Metadata::new()).unwrap(), 2);
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!({ "d": deep });
        }
        let too_wide: Metadata = (0..=MAX_KEYS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let nested_keys = meta(json!({
            "a": (0..MAX_KEYS).map(|i| (format!("k{i}"), json!(i))).collect::<Metadata>()
        }));
        let too_big: Metadata = (0..16)
            .map(|i| (format!("k{i}"), json!("x".repeat(MAX_STRING_BYTES - 16))))
            .collect();
        for bad in [
            meta(deep),
            too_wide,
            nested_keys,
            too_big,
            meta(json!({ "s": "x".repeat(MAX_STRING_BYTES + 1) })),
            meta(json!({ "k".repeat(MAX_KEY_BYTES + 1): 1 })),
            meta(json!({ "arr": [[[[[[[[1]]]]]]]] })),
        ] {
            assert_eq!(
                check_metadata(&bad).unwrap_err().code,
                crate::Code::MetadataTooLarge
            );
        }
    }
}
