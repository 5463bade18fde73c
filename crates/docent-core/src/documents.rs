//! Documents: streamed upload (dedup by content hash within a collection), read, list,
//! download, delete (rows and original gone before it returns), reprocess. Each takes a
//! [`Scope`]: a document in a collection outside it is `document_not_found`.

use bytes::Bytes;
use docent_blob::{BlobStore, PutError};
use docent_domain::auth::Scope;
use docent_domain::*;
use futures::stream::BoxStream;

use crate::Services;

/// What an upload did.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    /// The document (the existing one for a duplicate).
    pub document: Document,
    /// The task processing it, if any.
    pub task: Option<Task>,
    /// True when identical bytes were already in the collection.
    pub duplicate: bool,
}

/// An upload as it arrives.
pub struct Upload<'a, E> {
    /// File name (path components are stripped).
    pub filename: String,
    /// Declared MIME type (may be empty).
    pub declared_mime: String,
    /// User metadata.
    pub metadata: Metadata,
    /// The bytes.
    pub body: BoxStream<'a, std::result::Result<Bytes, E>>,
}

/// Unicode bidirectional controls and invisible format characters: in a file name they can
/// make `invoice\u{202E}fdp.exe` display as `invoiceexe.pdf`.
fn is_format_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'                     // arabic letter mark
            | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}'   // embeddings and overrides
            | '\u{2060}'..='\u{2069}'   // word joiner, invisible operators, isolates
            | '\u{FEFF}'                 // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
    )
}

/// Keeps the last path component and drops control characters, bidirectional controls and
/// invisible format characters; never empty.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_format_control(*c))
        .take(255)
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload".into()
    } else {
        cleaned
    }
}

impl Services {
    /// Streams an upload into the blob store, registers the document and enqueues its ingest
    /// task. Identical bytes in the same collection return the existing document.
    pub async fn upload_document<'s, E: std::fmt::Display>(
        &self,
        scope: impl Into<Scope<'s>>,
        collection: CollectionId,
        upload: Upload<'_, E>,
    ) -> Result<UploadOutcome> {
        let scope = scope.into();
        let tenant = scope.tenant;
        scope.check_collection(collection)?;
        check_metadata(&upload.metadata)?;
        self.store.get_collection(tenant, collection).await?;
        let id = DocumentId::new();
        let key = BlobStore::original_key(tenant, collection, id);
        let limit = self.config.ingest.max_upload_size.as_u64();
        let put = self
            .blobs
            .put_stream(&key, upload.body, limit)
            .await
            .map_err(|e| match e {
                PutError::TooLarge { limit } => Error::new(
                    Code::PayloadTooLarge,
                    format!("the file exceeds the upload limit of {limit} bytes"),
                ),
                PutError::Source(m) => Error::new(
                    Code::InvalidMultipart,
                    format!("reading the upload failed: {m}"),
                ),
                PutError::Store(e) => e,
            })?;
        if put.size == 0 {
            self.blobs.delete(&key).await?;
            return Err(Error::new(Code::EmptyFile, "the uploaded file is empty"));
        }
        let new = NewDocument {
            id,
            collection_id: collection,
            filename: clean_filename(&upload.filename),
            declared_mime: upload.declared_mime,
            size_bytes: put.size,
            sha256: put.sha256,
            blob_key: key.clone(),
            metadata: upload.metadata,
        };
        self.register_document(tenant, new).await
    }

    /// Registers a stored original and enqueues its ingest task; identical bytes already in
    /// the collection return that document (and the new original is deleted). Shared by
    /// streamed and direct uploads.
    pub(crate) async fn register_document(
        &self,
        tenant: TenantId,
        new: NewDocument,
    ) -> Result<UploadOutcome> {
        let key = new.blob_key.clone();
        if let Err(e) = check_metadata(&new.metadata) {
            let _ = self.blobs.delete(&key).await;
            return Err(e);
        }
        let (document, created) = match self.store.insert_document(tenant, new).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.blobs.delete(&key).await;
                return Err(e);
            }
        };
        if !created {
            self.blobs.delete(&key).await?;
            let task = match document.task_id {
                Some(t) => Some(self.queue.get(tenant, t).await?),
                // Registered by an upload that died before enqueueing: finish its job now.
                None => return self.enqueue_ingest(tenant, document, true).await,
            };
            return Ok(UploadOutcome {
                document,
                task,
                duplicate: true,
            });
        }
        self.enqueue_ingest(tenant, document, false).await
    }

    async fn enqueue_ingest(
        &self,
        tenant: TenantId,
        document: Document,
        duplicate: bool,
    ) -> Result<UploadOutcome> {
        let task = crate::trace_context::enqueue(
            self.queue.as_ref(),
            tenant,
            NewTask {
                kind: TaskKind::IngestDocument,
                document_id: Some(document.id),
                collection_id: Some(document.collection_id),
                max_attempts: None,
                payload: serde_json::Value::Null,
                traceparent: None,
            },
        )
        .await?;
        self.store
            .set_document_task(tenant, document.id, task.id)
            .await?;
        self.wake.notify_waiters();
        metrics::counter!("docent_documents_uploaded_total").increment(1);
        let document = self.store.get_document(tenant, document.id).await?;
        Ok(UploadOutcome {
            document,
            task: Some(task),
            duplicate,
        })
    }

    /// A document with its processing status.
    pub async fn get_document<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<Document> {
        let scope = scope.into();
        let doc = self.store.get_document(scope.tenant, id).await?;
        scope.check_document(id, doc.collection_id)?;
        Ok(doc)
    }

    /// Documents, newest first. With a collection, that collection's (`collection_not_found`
    /// when it does not exist or is outside the scope); without one, every document in the
    /// scope (a page may then hold fewer items than asked for; follow `next_cursor`).
    pub async fn list_documents<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        filter: DocumentFilter,
        page: PageRequest,
    ) -> Result<Page<Document>> {
        let scope = scope.into();
        if let Some(c) = filter.collection_id {
            scope.check_collection(c)?;
            self.store.get_collection(scope.tenant, c).await?;
        }
        let mut docs = self
            .store
            .list_documents(scope.tenant, filter, page)
            .await?;
        docs.items.retain(|d| scope.allows(d.collection_id));
        Ok(docs)
    }

    /// The documents of `collection` holding any of `sha256` (hex, either case; at most
    /// [`PageRequest::MAX_LIMIT`] of them), newest first: what a bulk uploader asks before
    /// sending bytes the collection already has (and, for those it sent, how processing goes).
    /// A hash that is not 64 hex digits is `invalid_field`.
    pub async fn documents_by_content<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        collection: CollectionId,
        sha256: &[String],
    ) -> Result<Vec<Document>> {
        if sha256.len() > PageRequest::MAX_LIMIT as usize {
            return Err(Error::new(
                Code::InvalidField,
                format!(
                    "`sha256` lists {} hashes; at most {} at once",
                    sha256.len(),
                    PageRequest::MAX_LIMIT
                ),
            ));
        }
        let mut hashes = Vec::with_capacity(sha256.len());
        for h in sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::new(
                    Code::InvalidField,
                    format!(
                        "`sha256`: `{}` is not 64 hex digits",
                        h.chars().take(70).collect::<String>().escape_debug()
                    ),
                ));
            }
            hashes.push(h.to_ascii_lowercase());
        }
        if hashes.is_empty() {
            // Still checks the collection and the scope.
            let scope = scope.into();
            scope.check_collection(collection)?;
            self.store.get_collection(scope.tenant, collection).await?;
            return Ok(Vec::new());
        }
        let filter = DocumentFilter {
            collection_id: Some(collection),
            sha256: hashes,
            ..Default::default()
        };
        let page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            cursor: None,
        };
        Ok(self.list_documents(scope, filter, page).await?.items)
    }

    /// A page of a document's chunks, in order.
    pub async fn list_chunks<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
        page: PageRequest,
    ) -> Result<Page<Chunk>> {
        let scope = scope.into();
        self.get_document(scope, id).await?;
        self.store.list_chunks(scope.tenant, id, page).await
    }

    /// Streams a document's original: `(document, size, bytes)`.
    pub async fn download_document<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<(Document, u64, BoxStream<'static, Result<Bytes>>)> {
        let doc = self.get_document(scope, id).await?;
        match self.blobs.get_stream(&doc.blob_key).await? {
            Some((size, stream)) => Ok((doc, size, stream)),
            None => Err(Error::new(
                Code::BlobMissing,
                "the original file is missing from storage",
            )),
        }
    }

    /// Deletes a document: cancels its open tasks, removes its rows and chunks, then the
    /// original. Returns once all are gone.
    pub async fn delete_document<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<Document> {
        let scope = scope.into();
        let tenant = scope.tenant;
        self.get_document(scope, id).await?;
        self.cancel_open_tasks(
            tenant,
            TaskFilter {
                document_id: Some(id),
                ..Default::default()
            },
        )
        .await?;
        let doc = self.store.delete_document(tenant, id).await?;
        self.index.delete_document(tenant, id).await?;
        self.blobs.delete(&doc.blob_key).await?;
        Ok(doc)
    }

    /// Every chunk of a document, in order (all pages).
    pub async fn document_chunks<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<Vec<Chunk>> {
        let scope = scope.into();
        let tenant = scope.tenant;
        if scope.collections.is_some() {
            self.get_document(scope, id).await?;
        }
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list_chunks(
                    tenant,
                    id,
                    PageRequest {
                        limit: PageRequest::MAX_LIMIT,
                        cursor,
                    },
                )
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Queues a fresh ingest of a document whose last task has finished.
    pub async fn reprocess_document<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<UploadOutcome> {
        let scope = scope.into();
        let tenant = scope.tenant;
        let doc = self.get_document(scope, id).await?;
        if !doc.status.is_terminal() && doc.task_id.is_some() {
            return Err(Error::new(
                Code::DocumentStateConflict,
                format!(
                    "document {id} is {}; wait for its task to finish or cancel it",
                    doc.status
                ),
            ));
        }
        self.enqueue_ingest(tenant, doc, false).await
    }

    /// The failure ledger of a record file: rows that could not be processed, by row.
    pub async fn failed_rows<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<Vec<FailedRow>> {
        let scope = scope.into();
        let doc = self.get_document(scope, id).await?;
        self.store.list_failed_rows(doc.tenant_id, id).await
    }

    /// Queues a task that embeds and stores again only the rows in the document's failure
    /// ledger (`document_state_conflict` while it is being processed or when no row failed).
    pub async fn retry_failed_rows<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<UploadOutcome> {
        let scope = scope.into();
        let tenant = scope.tenant;
        let doc = self.get_document(scope, id).await?;
        if !doc.status.is_terminal() && doc.task_id.is_some() {
            return Err(Error::new(
                Code::DocumentStateConflict,
                format!(
                    "document {id} is {}; wait for its task to finish or cancel it",
                    doc.status
                ),
            ));
        }
        if self.store.list_failed_rows(tenant, id).await?.is_empty() {
            return Err(Error::new(
                Code::DocumentStateConflict,
                format!("document {id} has no failed rows to retry"),
            ));
        }
        let task = crate::trace_context::enqueue(
            self.queue.as_ref(),
            tenant,
            NewTask {
                kind: TaskKind::RetryFailedRows,
                document_id: Some(id),
                collection_id: Some(doc.collection_id),
                max_attempts: None,
                payload: serde_json::Value::Null,
                traceparent: None,
            },
        )
        .await?;
        self.store.set_document_task(tenant, id, task.id).await?;
        self.wake.notify_waiters();
        let document = self.store.get_document(tenant, id).await?;
        Ok(UploadOutcome {
            document,
            task: Some(task),
            duplicate: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn filenames_lose_paths_and_control_chars() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\docs\\a.txt"), "a.txt");
        assert_eq!(clean_filename("a\u{0}b\n.md"), "ab.md");
        assert_eq!(clean_filename(".."), "upload");
        assert_eq!(clean_filename(""), "upload");
        // Bidi overrides and isolates, marks and zero-width characters go too.
        assert_eq!(clean_filename("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(
            clean_filename("\u{2067}a\u{2069}\u{200F}b\u{200B}\u{FEFF}.txt"),
            "ab.txt"
        );
        assert_eq!(clean_filename("\u{202D}\u{202C}"), "upload");
    }
}
