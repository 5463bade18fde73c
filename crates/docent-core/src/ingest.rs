//! The ingest task: read the original, extract text (on a blocking thread, with a deadline and
//! panic isolation), chunk it, and replace the document's chunks in one transaction. Re-running
//! it rewrites the same deterministic chunk ids, so it never duplicates.
//!
//! Record files (CSV/TSV/JSONL/XLSX: chunks that are records) go through [`run_batched`]
//! instead: the chunks are embedded and committed in batches of whole rows
//! (`ingest.record_batch` chunks), each batch stored with the task's checkpoint in one
//! transaction ([`MetadataStore::append_chunks`]). A re-leased task (after a crash) re-extracts
//! the file (extraction and chunking are deterministic) and continues after its checkpoint, so
//! rows are neither embedded twice nor duplicated. The same checkpoint lets a record file
//! stop after any batch once past the worker's soft time limit (or to give its worker to
//! another tenant) and resume there on its next lease. Rows the embedder refuses with a
//! non-retryable error are found by bisecting the batch and go to the document's failure
//! ledger (row number, code, message); the task then ends `partially_completed`.
//! [`run_retry_failed_rows`] embeds only the ledgered rows again and clears those that now
//! succeed. The search index is filled once at the end, from the stored chunks.
//!
//! Every step is bounded. Extraction and chunking share one deadline
//! ([`EXTRACTION_DEADLINE`]) held by a cancellation token that every extractor and chunker loop
//! checks, so the blocking thread really stops at the deadline, and also when the task is
//! cancelled, loses its lease or passes its hard time limit (the job's future is dropped and
//! trips the token). `[ingest]` bounds a document: fields per record and chunks per record
//! (`record_too_large`), rows and chunks per document (`document_too_large`); the tenant's
//! `[auth.quotas] max_chunks` bounds the chunks it stores (`chunk_quota_exceeded`). Each of
//! these fails the document with its code before anything is embedded or stored.
//!
//! Each stage — `extract`, `chunk`, `embed` (per call batch), `index` — runs in a span of its
//! own under the task's and is timed into `docent_ingest_stage_duration_seconds{stage}`;
//! finished documents count into `docent_ingest_documents_total{outcome}` and record rows into
//! `docent_ingest_rows_total{outcome}` (a row counts as failed when refused, and as succeeded
//! when stored, by its first run or by a retry of the failed rows).
//!
//! [`MetadataStore::append_chunks`]: docent_domain::ports::MetadataStore::append_chunks

use std::future::Future;
use std::time::{Duration, Instant};

use docent_chunk::ChunkConfig;
use docent_domain::ports::IndexChunk;
use docent_domain::*;
use docent_extract::{Cancel, CancelOnDrop, ExtractError, Limits};

use tracing::{Instrument, Span};

use crate::worker::{JobError, TaskContext};

/// The span of ingest stage `stage` (named after it in exported traces).
fn stage_span(parent: Option<&Span>, stage: &'static str) -> Span {
    match parent {
        Some(parent) => tracing::info_span!(parent: parent, "stage", otel.name = stage, stage),
        None => tracing::info_span!("stage", otel.name = stage, stage),
    }
}

fn record_stage(stage: &'static str, started: Instant) {
    metrics::histogram!("docent_ingest_stage_duration_seconds", "stage" => stage)
        .record(started.elapsed().as_secs_f64());
}

/// Runs `work` as ingest stage `stage`: in its span, timed.
async fn in_stage<T>(stage: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.instrument(stage_span(None, stage)).await;
    record_stage(stage, started);
    out
}

/// Runs blocking `work` as ingest stage `stage` under `parent` (a blocking thread does not
/// inherit the caller's span).
fn in_stage_blocking<T>(parent: &Span, stage: &'static str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = stage_span(Some(parent), stage).in_scope(work);
    record_stage(stage, started);
    out
}

/// Counts an ingest task's recorded outcome: completed (partially or not) documents as
/// succeeded, failed ones (not retried again) as failed; a retry, release or lost lease is no
/// outcome yet.
pub(crate) fn count_document(status: Option<TaskStatus>) {
    let outcome = match status {
        Some(TaskStatus::Completed | TaskStatus::PartiallyCompleted) => "succeeded",
        Some(TaskStatus::Failed) => "failed",
        _ => return,
    };
    metrics::counter!("docent_ingest_documents_total", "outcome" => outcome).increment(1);
}

/// Counts record rows stored (`succeeded`) and refused (`failed`).
fn count_rows(succeeded: usize, failed: usize) {
    for (outcome, n) in [("succeeded", succeeded), ("failed", failed)] {
        if n > 0 {
            metrics::counter!("docent_ingest_rows_total", "outcome" => outcome).increment(n as u64);
        }
    }
}

/// Longest a single document's extraction and chunking may run together.
pub const EXTRACTION_DEADLINE: Duration = Duration::from_secs(120);

/// Maps an extraction failure to its stable code (the same string as [`ExtractError::code`]).
pub fn extract_error(e: ExtractError) -> Error {
    let code = match &e {
        ExtractError::Unsupported { .. } => Code::UnsupportedFormat,
        ExtractError::NoText => Code::NoText,
        ExtractError::TooLarge(_) => Code::PayloadTooLarge,
        ExtractError::Encrypted => Code::DocumentEncrypted,
        ExtractError::NoTextLayer => Code::NoTextLayer,
        ExtractError::Timeout(_) => Code::ExtractionTimeout,
        ExtractError::Cancelled => Code::ExtractionCancelled,
        ExtractError::RecordTooLarge(_) => Code::RecordTooLarge,
        ExtractError::DocumentTooLarge(_) => Code::DocumentTooLarge,
        ExtractError::Failed(_) => Code::ExtractionFailed,
    };
    debug_assert_eq!(code.as_str(), e.code());
    let message = match e {
        ExtractError::Unsupported { detected } => {
            format!("unsupported format: the file looks like {detected}")
        }
        ExtractError::TooLarge(m)
        | ExtractError::RecordTooLarge(m)
        | ExtractError::DocumentTooLarge(m) => m,
        other => other.to_string(),
    };
    Error::new(code, message)
}

/// A document read, extracted and chunked.
struct Prepared {
    doc: Document,
    facts: ExtractionFacts,
    pieces: Vec<docent_chunk::Piece>,
}

/// Reads, extracts and chunks the task's document.
async fn prepare(ctx: &TaskContext) -> Result<Prepared, JobError> {
    let svc = &ctx.services;
    let task = &ctx.lease.task;
    let tenant = task.tenant_id;
    let doc_id = task
        .document_id
        .ok_or_else(|| JobError::Failed(Error::internal("ingest task without a document")))?;
    let doc = match svc.store.get_document(tenant, doc_id).await {
        Ok(d) => d,
        Err(e) if e.code == Code::DocumentNotFound => return Err(JobError::Cancelled),
        Err(e) => return Err(JobError::Failed(e)),
    };
    ctx.checkpoint()?;
    let bytes = svc.blobs.get_bytes(&doc.blob_key).await?.ok_or_else(|| {
        Error::new(
            Code::BlobMissing,
            "the original file is missing from storage",
        )
    })?;

    let ingest = &svc.config.ingest;
    // One budget for extraction and chunking. Dropping this future (the task cancelled, its
    // lease lost, its hard time limit passed) trips the token too, so the blocking work stops.
    let cancel = Cancel::with_deadline(EXTRACTION_DEADLINE);
    let _stop_on_drop = CancelOnDrop(cancel.clone());
    let limits = extract_limits(ingest, &cancel);
    let ingest_cfg = ingest.clone();
    let embedder = svc.embedder.clone();
    let (filename, mime) = (doc.filename.clone(), doc.declared_mime.clone());
    let task_span = Span::current();
    let work = tokio::task::spawn_blocking(move || {
        // Its own thread, deadline and panic isolation.
        let extracted = in_stage_blocking(&task_span, "extract", || {
            docent_extract::extract_isolated(
                Vec::from(bytes),
                filename,
                mime,
                limits,
                EXTRACTION_DEADLINE,
            )
        })?;
        let pieces = in_stage_blocking(&task_span, "chunk", || {
            chunk_document(&extracted, &ingest_cfg, embedder.as_deref(), &cancel)
        })?;
        Ok::<_, ExtractError>((extracted.detected_type, extracted.meta.page_count, pieces))
    });
    // The token stops the work at the deadline; this is only a backstop.
    let backstop = EXTRACTION_DEADLINE + Duration::from_secs(10);
    let (detected, page_count, pieces) = match tokio::time::timeout(backstop, work).await {
        Err(_) => {
            return Err(JobError::Failed(Error::new(
                Code::ExtractionTimeout,
                format!(
                    "extraction did not finish within {}s",
                    EXTRACTION_DEADLINE.as_secs()
                ),
            )));
        }
        Ok(Err(join)) => {
            tracing::error!(document = %doc_id, error = %join, "extraction panicked");
            return Err(JobError::Failed(Error::new(
                Code::ExtractionFailed,
                "the extractor failed on this file",
            )));
        }
        Ok(Ok(Err(ExtractError::Cancelled))) => {
            ctx.checkpoint()?;
            return Err(JobError::Failed(extract_error(ExtractError::Cancelled)));
        }
        Ok(Ok(Err(e))) => return Err(JobError::Failed(extract_error(e))),
        Ok(Ok(Ok(v))) => v,
    };
    ctx.checkpoint()?;
    check_chunk_quota(ctx, &doc, pieces.len() as u64).await?;
    Ok(Prepared {
        doc,
        facts: ExtractionFacts {
            detected_type: Some(detected.to_owned()),
            page_count,
        },
        pieces,
    })
}

/// The extraction limits of `[ingest]`, stopped by `cancel`.
pub fn extract_limits(ingest: &docent_config::IngestConfig, cancel: &Cancel) -> Limits {
    Limits {
        max_input_bytes: ingest.max_upload_size.as_u64(),
        max_record_fields: ingest.max_record_fields,
        max_records: ingest.max_document_rows,
        cancel: cancel.clone(),
        ..Limits::default()
    }
}

/// `chunk_quota_exceeded` when storing `chunks` chunks for `doc` (replacing its own) would pass
/// the tenant's `[auth.quotas] max_chunks`.
async fn check_chunk_quota(ctx: &TaskContext, doc: &Document, chunks: u64) -> Result<(), JobError> {
    let max = ctx.services.config.auth.quotas.max_chunks;
    if max == 0 {
        return Ok(());
    }
    let stored = ctx
        .services
        .store
        .stored_chunks(doc.tenant_id, doc.id)
        .await
        .map_err(gone)?;
    if stored.saturating_add(chunks) > max {
        return Err(JobError::Failed(Error::new(
            Code::ChunkQuotaExceeded,
            format!(
                "this workspace may store at most {max} chunks; it stores {stored} and this document would add {chunks}"
            ),
        )));
    }
    Ok(())
}

/// Runs an ingest task. Returns the final progress.
pub async fn run(ctx: &TaskContext) -> Result<Progress, JobError> {
    let prepared = prepare(ctx).await?;
    if prepared.pieces.iter().any(|p| p.record.is_some()) {
        return run_batched(ctx, prepared).await;
    }
    let Prepared { doc, facts, pieces } = prepared;
    let svc = &ctx.services;
    let tenant = doc.tenant_id;
    let doc_id = doc.id;

    let total = pieces.len() as u64;
    ctx.progress(
        TaskStatus::ProcessingChunks,
        Progress {
            chunks_total: total,
            ..Default::default()
        },
    )
    .await?;
    let mut chunks: Vec<NewChunk> = pieces.iter().map(new_chunk).collect();
    let model = match &svc.embedder {
        Some(embedder) => {
            in_stage(
                "embed",
                embed_chunks(ctx, embedder.as_ref(), &mut chunks, total),
            )
            .await?;
            Some(EmbeddingModel {
                id: embedder.model_id().to_owned(),
                dimension: embedder.dimension() as u32,
            })
        }
        None => None,
    };
    let title = doc.filename.clone();
    let language = match svc.store.get_collection(tenant, doc.collection_id).await {
        Ok(c) => c.language,
        Err(e) if e.code == Code::CollectionNotFound => return Err(JobError::Cancelled),
        Err(e) => return Err(JobError::Failed(e)),
    };
    let indexed: Vec<IndexChunk> = chunks
        .iter()
        .map(|c| IndexChunk {
            id: ChunkId {
                document: doc_id,
                ordinal: c.ordinal,
            },
            collection_id: doc.collection_id,
            text: c.text.clone(),
            char_start: c.char_start,
            heading_path: c.heading_path.clone(),
            title: title.clone(),
            language,
            vector: c.embedding.clone(),
            metadata: overlay(&doc.metadata, &c.metadata),
            created_at: doc.created_at,
        })
        .collect();
    match svc
        .store
        .replace_chunks(tenant, doc_id, facts, chunks, model)
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == Code::DocumentNotFound => return Err(JobError::Cancelled),
        Err(e) => return Err(JobError::Failed(e)),
    }
    ctx.checkpoint()?;
    in_stage("index", svc.index.upsert_document(tenant, doc_id, indexed)).await?;
    // Deleted while we indexed: take it back out (the delete may have run before our upsert).
    if let Err(e) = svc.store.get_document(tenant, doc_id).await
        && e.code == Code::DocumentNotFound
    {
        svc.index.delete_document(tenant, doc_id).await?;
        return Err(JobError::Cancelled);
    }
    Ok(Progress {
        chunks_total: total,
        chunks_done: total,
        rows_failed: 0,
    })
}

/// A piece as a chunk to store (record fields become string metadata).
fn new_chunk(p: &docent_chunk::Piece) -> NewChunk {
    NewChunk {
        ordinal: p.ordinal,
        text: p.text.clone(),
        char_start: p.char_start as u64,
        char_end: p.char_end as u64,
        page: p.page,
        heading_path: p.heading_path.clone(),
        metadata: piece_metadata(p),
        embedding: None,
    }
}

/// A chunk's own metadata: a record's fields.
fn piece_metadata(p: &docent_chunk::Piece) -> Metadata {
    p.fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// A document's metadata overlaid with a chunk's: what search metadata filters test.
pub fn overlay(document: &Metadata, chunk: &Metadata) -> Metadata {
    let mut meta = document.clone();
    meta.extend(chunk.clone());
    meta
}

/// A missing document (deleted while we worked) cancels the job.
fn gone(e: Error) -> JobError {
    if e.code == Code::DocumentNotFound {
        JobError::Cancelled
    } else {
        JobError::Failed(e)
    }
}

/// The 1-based row number of a record piece.
fn row_of(p: &docent_chunk::Piece) -> Option<u32> {
    p.record.map(|r| r + 1)
}

/// Splits pieces into consecutive batches of about `size` chunks, never splitting a row.
fn row_batches<'a>(
    pieces: &'a [&'a docent_chunk::Piece],
    size: usize,
) -> Vec<&'a [&'a docent_chunk::Piece]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=pieces.len() {
        let full = i - start >= size.max(1);
        let row_boundary = i == pieces.len()
            || pieces[i].record != pieces[i - 1].record
            || pieces[i].record.is_none();
        if i == pieces.len() || (full && row_boundary) {
            out.push(&pieces[start..i]);
            start = i;
        }
    }
    out
}

/// The embedding model of the configured embedder.
fn embedding_model(svc: &crate::Services) -> Option<EmbeddingModel> {
    svc.embedder.as_ref().map(|e| EmbeddingModel {
        id: e.model_id().to_owned(),
        dimension: e.dimension() as u32,
    })
}

/// Embeds a batch of record pieces. Returns the chunks of the rows that succeeded and the rows
/// that failed. A non-retryable refusal of a batch is bisected down to single chunks, and a
/// row fails when any of its chunks does. Retryable errors (rate limits, outages, after the
/// embedder's own retries) fail the whole call: the task backs off and resumes at its
/// checkpoint. With `strict`, a batch of several rows that all fail is the embedder's fault,
/// not the rows': the error fails the task instead of ledgering every row.
async fn embed_rows(
    ctx: &TaskContext,
    pieces: &[&docent_chunk::Piece],
    strict: bool,
) -> Result<(Vec<NewChunk>, Vec<(u32, ErrorInfo)>), JobError> {
    let mut chunks: Vec<NewChunk> = pieces.iter().map(|p| new_chunk(p)).collect();
    let Some(embedder) = ctx.services.embedder.as_deref() else {
        return Ok((chunks, Vec::new()));
    };
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| embedding_text(&c.heading_path, &c.text))
        .collect();
    let mut errors: Vec<Option<Error>> = (0..texts.len()).map(|_| None).collect();
    let mut stack: Vec<std::ops::Range<usize>> = Vec::new();
    stack.push(0..texts.len());
    while let Some(range) = stack.pop() {
        ctx.checkpoint()?;
        if range.is_empty() {
            continue;
        }
        match embedder.embed(&texts[range.clone()]).await {
            Ok(vectors) if vectors.len() == range.len() => {
                for (c, v) in chunks[range].iter_mut().zip(vectors) {
                    c.embedding = Some(v);
                }
            }
            Ok(_) => {
                return Err(JobError::Failed(Error::internal(
                    "the embedder returned a different number of vectors",
                )));
            }
            Err(e) if e.is_retryable() => return Err(JobError::Failed(e)),
            Err(e) if range.len() == 1 => errors[range.start] = Some(e),
            Err(_) => {
                let mid = range.start + range.len() / 2;
                stack.push(mid..range.end);
                stack.push(range.start..mid);
            }
        }
    }
    let mut failed: Vec<(u32, ErrorInfo)> = Vec::new();
    for (p, e) in pieces.iter().zip(&errors) {
        if let Some(e) = e {
            let Some(row) = row_of(p) else {
                // Not a row: nothing to ledger it under.
                return Err(JobError::Failed(Error::new(e.code, e.message.clone())));
            };
            if failed.last().is_none_or(|(r, _)| *r != row) {
                failed.push((row, e.info()));
            }
        }
    }
    let rows = pieces
        .iter()
        .filter_map(|p| row_of(p))
        .collect::<std::collections::BTreeSet<_>>();
    if strict
        && rows.len() > 1
        && failed.len() == rows.len()
        && let Some(e) = errors.into_iter().flatten().next()
    {
        return Err(JobError::Failed(e));
    }
    let bad: std::collections::HashSet<u32> = failed.iter().map(|(r, _)| *r).collect();
    let kept = pieces
        .iter()
        .zip(chunks)
        .filter(|(p, _)| row_of(p).is_none_or(|r| !bad.contains(&r)))
        .map(|(_, c)| c)
        .collect();
    Ok((kept, failed))
}

/// Ingests a record file in committed batches, resuming after the task's checkpoint.
async fn run_batched(ctx: &TaskContext, prepared: Prepared) -> Result<Progress, JobError> {
    let svc = &ctx.services;
    let Prepared { doc, facts, pieces } = prepared;
    let (tenant, doc_id, task_id) = (doc.tenant_id, doc.id, ctx.lease.task.id);
    let total = pieces.len() as u64;
    let (start, mut done) = match svc
        .store
        .ingest_checkpoint(tenant, doc_id, task_id)
        .await
        .map_err(gone)?
    {
        Some(next) => {
            tracing::info!(document = %doc_id, task = %task_id, next_ordinal = next, "resuming a record file at its checkpoint");
            (next as usize, u64::from(doc.chunk_count))
        }
        None => {
            svc.store
                .begin_batched_ingest(tenant, doc_id, task_id, facts)
                .await
                .map_err(gone)?;
            (0, 0)
        }
    };
    let mut failed = svc
        .store
        .list_failed_rows(tenant, doc_id)
        .await
        .map_err(gone)?
        .len() as u64;
    let progress = |done: u64, failed: u64| Progress {
        chunks_total: total,
        chunks_done: done,
        rows_failed: failed,
    };
    ctx.progress(TaskStatus::ProcessingChunks, progress(done, failed))
        .await?;
    let model = embedding_model(svc);
    let rest: Vec<&docent_chunk::Piece> = pieces.iter().skip(start).collect();
    let batches = row_batches(&rest, svc.config.ingest.record_batch);
    let last = batches.len().saturating_sub(1);
    for (n, batch) in batches.into_iter().enumerate() {
        let (chunks, bad) = in_stage("embed", embed_rows(ctx, batch, true)).await?;
        let next = batch.last().map_or(0, |p| p.ordinal + 1);
        let refused = bad.len();
        let rows = batch
            .iter()
            .filter_map(|p| row_of(p))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        failed += refused as u64;
        ctx.checkpoint()?;
        done = u64::from(
            svc.store
                .append_chunks(
                    tenant,
                    doc_id,
                    task_id,
                    ChunkBatch {
                        chunks,
                        failed: bad,
                        resolved: Vec::new(),
                        checkpoint: Some(next),
                    },
                    model.clone(),
                )
                .await
                .map_err(gone)?,
        );
        count_rows(rows.saturating_sub(refused), refused);
        ctx.progress(TaskStatus::ProcessingChunks, progress(done, failed))
            .await?;
        // The batch and its checkpoint are committed: past the soft time limit, or while a
        // waiting tenant should get the worker, the task gives its lease back and resumes here.
        if n < last {
            ctx.safe_point().await?;
        }
    }
    index_stored(ctx, &doc, &pieces).await?;
    Ok(progress(done, failed))
}

/// Embeds and stores again only the rows of the document's failure ledger.
pub async fn run_retry_failed_rows(ctx: &TaskContext) -> Result<Progress, JobError> {
    let prepared = prepare(ctx).await?;
    let svc = &ctx.services;
    let Prepared { doc, pieces, .. } = prepared;
    let (tenant, doc_id, task_id) = (doc.tenant_id, doc.id, ctx.lease.task.id);
    let total = pieces.len() as u64;
    let ledger = svc
        .store
        .list_failed_rows(tenant, doc_id)
        .await
        .map_err(gone)?;
    let wanted: std::collections::HashSet<u32> = ledger.iter().map(|f| f.row).collect();
    let mut done = u64::from(doc.chunk_count);
    ctx.progress(
        TaskStatus::ProcessingChunks,
        Progress {
            chunks_total: total,
            chunks_done: done,
            rows_failed: wanted.len() as u64,
        },
    )
    .await?;
    let selected: Vec<&docent_chunk::Piece> = pieces
        .iter()
        .filter(|p| row_of(p).is_some_and(|r| wanted.contains(&r)))
        .collect();
    let model = embedding_model(svc);
    for batch in row_batches(&selected, svc.config.ingest.record_batch) {
        let (chunks, bad) = in_stage("embed", embed_rows(ctx, batch, false)).await?;
        let bad_rows: std::collections::HashSet<u32> = bad.iter().map(|(r, _)| *r).collect();
        let mut resolved: Vec<u32> = batch
            .iter()
            .filter_map(|p| row_of(p))
            .filter(|r| !bad_rows.contains(r))
            .collect();
        resolved.dedup();
        let stored = resolved.len();
        ctx.checkpoint()?;
        done = u64::from(
            svc.store
                .append_chunks(
                    tenant,
                    doc_id,
                    task_id,
                    ChunkBatch {
                        chunks,
                        failed: bad,
                        resolved,
                        checkpoint: None,
                    },
                    model.clone(),
                )
                .await
                .map_err(gone)?,
        );
        // Refused again: already counted as failed by the run that refused them first.
        count_rows(stored, 0);
    }
    index_stored(ctx, &doc, &pieces).await?;
    let failed = svc
        .store
        .list_failed_rows(tenant, doc_id)
        .await
        .map_err(gone)?
        .len() as u64;
    Ok(Progress {
        chunks_total: total,
        chunks_done: done,
        rows_failed: failed,
    })
}

/// Puts the document's stored chunks (with their stored vectors) into the search index.
async fn index_stored(
    ctx: &TaskContext,
    doc: &Document,
    pieces: &[docent_chunk::Piece],
) -> Result<(), JobError> {
    let svc = &ctx.services;
    let (tenant, doc_id) = (doc.tenant_id, doc.id);
    let language = match svc.store.get_collection(tenant, doc.collection_id).await {
        Ok(c) => c.language,
        Err(e) if e.code == Code::CollectionNotFound => return Err(JobError::Cancelled),
        Err(e) => return Err(JobError::Failed(e)),
    };
    ctx.checkpoint()?;
    let stored = svc
        .store
        .chunk_vectors(tenant, doc_id)
        .await
        .map_err(gone)?;
    let indexed: Vec<IndexChunk> = stored
        .into_iter()
        .filter_map(|(ordinal, vector)| {
            let p = pieces.get(ordinal as usize)?;
            Some(IndexChunk {
                id: ChunkId {
                    document: doc_id,
                    ordinal,
                },
                collection_id: doc.collection_id,
                text: p.text.clone(),
                char_start: p.char_start as u64,
                heading_path: p.heading_path.clone(),
                title: doc.filename.clone(),
                language,
                vector,
                metadata: overlay(&doc.metadata, &piece_metadata(p)),
                created_at: doc.created_at,
            })
        })
        .collect();
    in_stage("index", svc.index.upsert_document(tenant, doc_id, indexed)).await?;
    // Deleted while we indexed: take it back out (the delete may have run before our upsert).
    if let Err(e) = svc.store.get_document(tenant, doc_id).await
        && e.code == Code::DocumentNotFound
    {
        svc.index.delete_document(tenant, doc_id).await?;
        return Err(JobError::Cancelled);
    }
    Ok(())
}

/// Splits an extraction the way ingest does: in the embedder's word pieces when it can count
/// them (so no chunk is truncated by the model), else in chars; within `[ingest]`'s chunks per
/// record and per document, stopped by `cancel`.
pub fn chunk_document(
    extracted: &docent_extract::Extracted,
    cfg: &docent_config::IngestConfig,
    embedder: Option<&dyn docent_domain::ports::Embedder>,
    cancel: &Cancel,
) -> Result<Vec<docent_chunk::Piece>, ExtractError> {
    let bounds = docent_chunk::Bounds {
        max_record_pieces: cfg.max_record_chunks,
        max_pieces: usize::try_from(cfg.max_document_chunks).unwrap_or(usize::MAX),
        cancel: cancel.clone(),
    };
    match embedder.filter(|e| e.count_tokens("probe").is_some()) {
        Some(e) => {
            let tokens = docent_chunk::Tokens(|t: &str| e.count_tokens(t).unwrap_or_default());
            // The model adds two special tokens to every input.
            docent_chunk::chunk_by(
                extracted,
                cfg.chunk_tokens.saturating_sub(2),
                cfg.chunk_overlap_tokens,
                &tokens,
                &bounds,
            )
        }
        None => docent_chunk::chunk(
            extracted,
            ChunkConfig {
                max_chars: cfg.chunk_chars,
                overlap: cfg.chunk_overlap,
            },
            &bounds,
        ),
    }
}

/// Chunks embedded per call to the embedder.
const EMBED_BATCH: usize = 64;

/// Embeds every chunk, reporting progress per batch.
async fn embed_chunks(
    ctx: &TaskContext,
    embedder: &dyn docent_domain::ports::Embedder,
    chunks: &mut [NewChunk],
    total: u64,
) -> Result<(), JobError> {
    let mut done = 0u64;
    for batch in chunks.chunks_mut(EMBED_BATCH) {
        ctx.checkpoint()?;
        let texts: Vec<String> = batch
            .iter()
            .map(|c| embedding_text(&c.heading_path, &c.text))
            .collect();
        let vectors = embedder.embed(&texts).await?;
        if vectors.len() != batch.len() {
            return Err(JobError::Failed(Error::internal(
                "the embedder returned a different number of vectors",
            )));
        }
        for (c, v) in batch.iter_mut().zip(vectors) {
            c.embedding = Some(v);
        }
        done += batch.len() as u64;
        ctx.progress(
            TaskStatus::ProcessingChunks,
            Progress {
                chunks_total: total,
                chunks_done: done,
                rows_failed: 0,
            },
        )
        .await?;
    }
    Ok(())
}

/// What is embedded for a chunk: its innermost heading, then its text.
pub fn embedding_text(heading_path: &[String], text: &str) -> String {
    match heading_path.last() {
        Some(h) if !text.starts_with(h.as_str()) => format!("{h}\n{text}"),
        _ => text.to_owned(),
    }
}
