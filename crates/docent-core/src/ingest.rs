//! The ingest task: read the original, extract text (on a blocking thread, with a deadline and
//! panic isolation), chunk it, and replace the document's chunks in one transaction. Re-running
//! it rewrites the same deterministic chunk ids, so it never duplicates.

use std::time::Duration;

use docent_chunk::ChunkConfig;
use docent_domain::ports::IndexChunk;
use docent_domain::*;
use docent_extract::{ExtractError, Limits};

use crate::worker::{JobError, TaskContext};

/// Longest a single document's extraction may run.
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
        ExtractError::Failed(_) => Code::ExtractionFailed,
    };
    debug_assert_eq!(code.as_str(), e.code());
    let message = match e {
        ExtractError::Unsupported { detected } => {
            format!("unsupported format: the file looks like {detected}")
        }
        ExtractError::TooLarge(m) => m,
        other => other.to_string(),
    };
    Error::new(code, message)
}

/// Runs an ingest task. Returns the final progress.
pub async fn run(ctx: &TaskContext) -> Result<Progress, JobError> {
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
    let limits = Limits {
        max_input_bytes: ingest.max_upload_size.as_u64(),
        ..Limits::default()
    };
    let ingest_cfg = ingest.clone();
    let embedder = svc.embedder.clone();
    let (filename, mime) = (doc.filename.clone(), doc.declared_mime.clone());
    let work = tokio::task::spawn_blocking(move || {
        // Its own thread, deadline and panic isolation; the outer timeout below stays as a
        // guard for the chunking step.
        let extracted = docent_extract::extract_isolated(
            Vec::from(bytes),
            filename,
            mime,
            limits,
            EXTRACTION_DEADLINE,
        )?;
        let pieces = chunk_document(&extracted, &ingest_cfg, embedder.as_deref());
        Ok::<_, ExtractError>((extracted.detected_type, extracted.meta.page_count, pieces))
    });
    let (detected, page_count, pieces) = match tokio::time::timeout(EXTRACTION_DEADLINE, work).await
    {
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
        Ok(Ok(Err(e))) => return Err(JobError::Failed(extract_error(e))),
        Ok(Ok(Ok(v))) => v,
    };
    ctx.checkpoint()?;

    let total = pieces.len() as u64;
    ctx.progress(
        TaskStatus::ProcessingChunks,
        Progress {
            chunks_total: total,
            ..Default::default()
        },
    )
    .await?;
    let mut chunks: Vec<NewChunk> = pieces
        .into_iter()
        .map(|p| NewChunk {
            ordinal: p.ordinal,
            text: p.text,
            char_start: p.char_start as u64,
            char_end: p.char_end as u64,
            page: p.page,
            heading_path: p.heading_path,
            metadata: p
                .fields
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
            embedding: None,
        })
        .collect();
    let model = match &svc.embedder {
        Some(embedder) => {
            embed_chunks(ctx, embedder.as_ref(), &mut chunks, total).await?;
            Some(EmbeddingModel {
                id: embedder.model_id().to_owned(),
                dimension: embedder.dimension() as u32,
            })
        }
        None => None,
    };
    let facts = ExtractionFacts {
        detected_type: Some(detected.to_owned()),
        page_count,
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
    svc.index.upsert_document(tenant, doc_id, indexed).await?;
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

/// Splits an extraction the way ingest does: in the embedder's word pieces when it can count
/// them (so no chunk is truncated by the model), else in chars.
pub fn chunk_document(
    extracted: &docent_extract::Extracted,
    cfg: &docent_config::IngestConfig,
    embedder: Option<&dyn docent_domain::ports::Embedder>,
) -> Vec<docent_chunk::Piece> {
    match embedder.filter(|e| e.count_tokens("probe").is_some()) {
        Some(e) => {
            let tokens = docent_chunk::Tokens(|t: &str| e.count_tokens(t).unwrap_or_default());
            // The model adds two special tokens to every input.
            docent_chunk::chunk_by(
                extracted,
                cfg.chunk_tokens.saturating_sub(2),
                cfg.chunk_overlap_tokens,
                &tokens,
            )
        }
        None => docent_chunk::chunk(
            extracted,
            ChunkConfig {
                max_chars: cfg.chunk_chars,
                overlap: cfg.chunk_overlap,
            },
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
