//! Presigned downloads and direct uploads, for blob stores that sign URLs (S3).
//!
//! A direct upload keeps the bytes off docent's servers: [`Services::create_direct_upload`]
//! records a pending upload (its id is the id of the document it becomes) and returns a
//! presigned `PUT` to a staging key (`uploads/tenants/{t}/collections/{c}/{id}`); the client sends the bytes there, then
//! [`Services::complete_direct_upload`] checks the object's size (HEAD), copies it to the
//! document's original key (which the still-valid URL cannot overwrite), checks the copy's
//! sha256 (read as a stream) and registers the document exactly like a streamed upload
//! (dedup by content hash per collection, ingest task enqueued). A mismatch deletes the object
//! and the pending upload. With a store that cannot sign (local) every call here is
//! `feature_unavailable` — after the scope checks, so an id outside the scope stays "not found".

use std::time::Duration;

use chrono::{DateTime, Utc};
use docent_blob::BlobStore;
use docent_config::StorageConfig;
use docent_domain::auth::Scope;
use docent_domain::*;

use crate::Services;
use crate::documents::{UploadOutcome, clean_filename};

/// What a client declares before a direct upload.
#[derive(Debug, Clone)]
pub struct DirectUploadRequest {
    /// File name (path components are stripped).
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// MIME type (empty: `application/octet-stream`); the upload must send it as `content-type`.
    pub content_type: String,
    /// User metadata.
    pub metadata: Metadata,
}

/// Where and how to send the bytes of a direct upload.
#[derive(Debug, Clone)]
pub struct DirectUpload {
    /// The upload's id (the id of the document it becomes).
    pub upload_id: DocumentId,
    /// The presigned URL.
    pub url: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// Headers to send with exactly these values (they are signed).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

fn unavailable(what: &str) -> Error {
    Error::new(
        Code::FeatureUnavailable,
        format!(
            "{what} need an S3 blob store ([storage] kind = \"s3\"); this server keeps originals in a local directory"
        ),
    )
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

impl Services {
    /// How long presigned URLs last; `None` when the blob store cannot sign them.
    pub fn presign_ttl(&self) -> Option<Duration> {
        match &self.config.storage {
            StorageConfig::S3 { presign_ttl, .. } if self.blobs.can_presign() => Some(*presign_ttl),
            _ => None,
        }
    }

    /// Whether downloads are always answered with a redirect to a presigned URL.
    pub fn redirect_downloads(&self) -> bool {
        matches!(
            &self.config.storage,
            StorageConfig::S3 {
                redirect_downloads: true,
                ..
            }
        ) && self.blobs.can_presign()
    }

    /// A presigned URL of a document's original (offered under its file name and type) and
    /// when it expires; `feature_unavailable` without an S3 blob store.
    pub async fn document_download_url<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        id: DocumentId,
    ) -> Result<(String, DateTime<Utc>)> {
        let doc = self.get_document(scope, id).await?;
        let ttl = self
            .presign_ttl()
            .ok_or_else(|| unavailable("presigned downloads"))?;
        let expires_at = expiry(ttl);
        let url = self
            .blobs
            .presigned_get(
                &doc.blob_key,
                ttl,
                Some(&doc.filename),
                // Never the uploader's declared type (it could be `text/html`).
                Some("application/octet-stream"),
            )
            .await?
            .ok_or_else(|| unavailable("presigned downloads"))?;
        Ok((url, expires_at))
    }

    /// Records a pending direct upload into `collection` and returns the presigned `PUT` for
    /// its bytes.
    pub async fn create_direct_upload<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        collection: CollectionId,
        req: DirectUploadRequest,
    ) -> Result<DirectUpload> {
        let scope = scope.into();
        let tenant = scope.tenant;
        scope.check_collection(collection)?;
        check_metadata(&req.metadata)?;
        self.store.get_collection(tenant, collection).await?;
        let ttl = self
            .presign_ttl()
            .ok_or_else(|| unavailable("direct uploads"))?;
        let limit = self.config.ingest.max_upload_size.as_u64();
        if req.size == 0 {
            return Err(Error::new(Code::EmptyFile, "`size` must be at least 1"));
        }
        if req.size > limit {
            return Err(Error::new(
                Code::PayloadTooLarge,
                format!("the file exceeds the upload limit of {limit} bytes"),
            ));
        }
        let sha256 = req.sha256.trim().to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::new(
                Code::InvalidField,
                "`sha256` must be 64 hexadecimal digits",
            ));
        }
        let content_type = match req.content_type.trim() {
            "" => "application/octet-stream".to_owned(),
            ct if ct.len() <= 255 && ct.bytes().all(|b| (0x20..0x7f).contains(&b)) => ct.to_owned(),
            _ => {
                return Err(Error::new(
                    Code::InvalidField,
                    "`content_type` must be a printable ASCII MIME type",
                ));
            }
        };
        let id = DocumentId::new();
        let key = BlobStore::upload_key(tenant, collection, id);
        let put = self
            .blobs
            .presigned_put(&key, ttl, &content_type)
            .await?
            .ok_or_else(|| unavailable("direct uploads"))?;
        let now = Utc::now();
        let expires_at = expiry(ttl);
        self.store
            .insert_pending_upload(
                tenant,
                PendingUpload {
                    id,
                    collection_id: collection,
                    filename: clean_filename(&req.filename),
                    declared_mime: content_type,
                    size_bytes: req.size,
                    sha256,
                    blob_key: key,
                    metadata: req.metadata,
                    created_at: now,
                    expires_at,
                },
            )
            .await?;
        Ok(DirectUpload {
            upload_id: id,
            url: put.url,
            method: "PUT",
            headers: put.headers,
            expires_at,
        })
    }

    /// Completes a direct upload: checks the object against the declared size and sha256 and
    /// registers the document (ingest queued; identical bytes already in the collection return
    /// that document). `upload_incomplete` while nothing was uploaded (the upload stays
    /// pending); `upload_mismatch` when the bytes differ (object and upload are removed).
    pub async fn complete_direct_upload<'s>(
        &self,
        scope: impl Into<Scope<'s>>,
        collection: CollectionId,
        upload: DocumentId,
    ) -> Result<UploadOutcome> {
        let scope = scope.into();
        let tenant = scope.tenant;
        scope.check_collection(collection)?;
        self.store.get_collection(tenant, collection).await?;
        self.presign_ttl()
            .ok_or_else(|| unavailable("direct uploads"))?;
        let pending = self.store.get_pending_upload(tenant, upload).await?;
        if pending.collection_id != collection {
            return Err(Error::new(
                Code::UploadNotFound,
                format!("upload {upload} not found"),
            ));
        }
        let staged = pending.blob_key.clone();
        let size = self.blobs.head(&staged).await?.ok_or_else(|| {
            Error::new(
                Code::UploadIncomplete,
                "nothing has been uploaded to the upload URL yet",
            )
        })?;
        // The presigned URL stays valid until it expires, so the bytes are checked in a copy
        // the client cannot write to: the document's original key.
        let key = BlobStore::original_key(tenant, collection, pending.id);
        let mismatch = if size != pending.size_bytes {
            self.blobs.delete(&staged).await?;
            Some(format!(
                "the uploaded object has {size} bytes; the upload declared {}",
                pending.size_bytes
            ))
        } else {
            self.blobs.copy(&staged, &key).await?;
            self.blobs.delete(&staged).await?;
            match self.blobs.digest(&key).await? {
                None => Some("the uploaded object disappeared".to_owned()),
                Some(d) if d.size != pending.size_bytes => Some(format!(
                    "the uploaded object has {} bytes; the upload declared {}",
                    d.size, pending.size_bytes
                )),
                Some(d) if d.sha256 != pending.sha256 => Some(format!(
                    "the uploaded object's sha256 is {}; the upload declared {}",
                    d.sha256, pending.sha256
                )),
                Some(_) => None,
            }
        };
        if let Some(message) = mismatch {
            self.store.take_pending_upload(tenant, upload).await?;
            self.blobs.delete(&key).await?;
            return Err(Error::new(
                Code::UploadMismatch,
                format!("{message}; the object was deleted, start a new upload"),
            ));
        }
        // Exactly one completion registers the document.
        if !self.store.take_pending_upload(tenant, upload).await? {
            return Err(Error::new(
                Code::UploadNotFound,
                format!("upload {upload} not found"),
            ));
        }
        self.register_document(
            tenant,
            NewDocument {
                id: pending.id,
                collection_id: collection,
                filename: pending.filename,
                declared_mime: pending.declared_mime,
                size_bytes: pending.size_bytes,
                sha256: pending.sha256,
                blob_key: key,
                metadata: pending.metadata,
            },
        )
        .await
    }
}
