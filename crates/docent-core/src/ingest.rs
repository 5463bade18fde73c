//! The ingest task: read the original, extract text (on a blocking thread, with a deadline and
//! panic isolation), chunk it, and replace the document's chunks in one transaction. Re-running
//! it rewrites the same deterministic chunk ids, so it never duplicates.

use std::time::Duration;

use docent_chunk::ChunkConfig;
use docent_domain::*;
use docent_extract::{ExtractError, Limits};

use crate::worker::{JobError, TaskContext};

/// Longest a single document's extraction may run.
pub const EXTRACTION_DEADLINE: Duration = Duration::from_secs(120);

/// Maps an extraction failure to its stable code.
pub fn extract_error(e: ExtractError) -> Error {
    match e {
        ExtractError::Unsupported { detected } => Error::new(
            Code::UnsupportedFormat,
            format!("unsupported format: the file looks like {detected}"),
        ),
        ExtractError::NoText => Error::new(Code::NoText, "the document contains no text"),
        ExtractError::TooLarge(m) => Error::new(Code::PayloadTooLarge, m),
        ExtractError::Failed(m) => Error::new(Code::ExtractionFailed, m),
    }
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
        max_output_chars: Limits::default().max_output_chars,
    };
    let chunk_cfg = ChunkConfig {
        max_chars: ingest.chunk_chars,
        overlap: ingest.chunk_overlap,
    };
    let (filename, mime) = (doc.filename.clone(), doc.declared_mime.clone());
    let work = tokio::task::spawn_blocking(move || {
        let extracted = docent_extract::extract(&bytes, &filename, &mime, limits)?;
        let pieces = docent_chunk::chunk(&extracted, chunk_cfg);
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
    let chunks = pieces
        .into_iter()
        .map(|p| NewChunk {
            ordinal: p.ordinal,
            text: p.text,
            char_start: p.char_start as u64,
            char_end: p.char_end as u64,
            page: p.page,
            heading_path: p.heading_path,
            metadata: Metadata::new(),
        })
        .collect();
    let facts = ExtractionFacts {
        detected_type: Some(detected.to_owned()),
        page_count,
    };
    match svc
        .store
        .replace_chunks(tenant, doc_id, facts, chunks)
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == Code::DocumentNotFound => return Err(JobError::Cancelled),
        Err(e) => return Err(JobError::Failed(e)),
    }
    Ok(Progress {
        chunks_total: total,
        chunks_done: total,
        rows_failed: 0,
    })
}
