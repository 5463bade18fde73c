//! The blob store for originals: a small facade over [`object_store`] — a local directory, or
//! (with the `s3` cargo feature) an S3 bucket or S3-compatible store through the same
//! `Arc<dyn ObjectStore>`.
//!
//! Uploads stream through [`BlobStore::put_stream`], which hashes (sha256) and counts bytes as
//! they pass and aborts once a size limit is crossed, so nothing is ever held whole in memory.
//! Stores that can sign URLs (S3) also hand out presigned download and upload URLs
//! ([`BlobStore::presigned_get`], [`BlobStore::presigned_put`]); the local store answers `None`.

#[cfg(feature = "s3")]
mod s3;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use docent_config::StorageConfig;
use docent_domain::{CollectionId, DocumentId, Error, Result, TenantId};
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

/// What a streamed put wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Bytes written.
    pub size: u64,
    /// Hex sha256 of the bytes.
    pub sha256: String,
}

/// Why a streamed put stopped.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The stream was longer than the limit; nothing was kept.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The source stream failed (client went away, bad multipart...).
    #[error("reading the upload failed: {0}")]
    Source(String),
    /// The store failed.
    #[error(transparent)]
    Store(Error),
}

/// A presigned request: send `method` to `url` with exactly `headers` (they are part of the
/// signature) before the URL expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// The signed URL.
    pub url: String,
    /// Headers the client must send, as signed.
    pub headers: Vec<(String, String)>,
}

/// Facade over an object store.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// Prepended to every key (`""` or ending in `/`).
    prefix: String,
    /// Signs URLs (S3 only).
    #[cfg(feature = "s3")]
    signer: Option<Arc<s3::Presigner>>,
}

/// Opens the configured store. `data_path` resolves relative paths against the data directory.
/// An S3 store with `create_bucket = true` creates its bucket here when missing.
pub async fn open(
    config: &StorageConfig,
    data_path: impl Fn(&std::path::Path) -> std::path::PathBuf,
) -> Result<BlobStore> {
    match config {
        StorageConfig::Local { path } => {
            let dir = data_path(path);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::unavailable("the blob directory", e))?;
            let fs = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| Error::unavailable("the blob directory", e))?
                .with_automatic_cleanup(true);
            Ok(BlobStore::new(Arc::new(fs)))
        }
        #[cfg(feature = "s3")]
        StorageConfig::S3 { .. } => s3::open(config).await,
        #[cfg(not(feature = "s3"))]
        StorageConfig::S3 { .. } => Err(Error::new(
            docent_domain::Code::FeatureUnavailable,
            "storage.kind = \"s3\" needs a build with the `s3` cargo feature",
        )),
    }
}

fn store_err(e: object_store::Error) -> Error {
    Error::unavailable("the blob store", e)
}

impl BlobStore {
    /// Wraps any object store.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            prefix: String::new(),
            #[cfg(feature = "s3")]
            signer: None,
        }
    }

    /// The store's path of a key (the configured prefix prepended).
    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    /// Key of a document's original: `tenants/{t}/collections/{c}/documents/{d}/original`.
    pub fn original_key(
        tenant: TenantId,
        collection: CollectionId,
        document: DocumentId,
    ) -> String {
        format!("tenants/{tenant}/collections/{collection}/documents/{document}/original")
    }

    /// Staging key of a direct upload (the client `PUT`s there; completion copies it to the
    /// original key): `uploads/tenants/{t}/collections/{c}/{d}`. One top-level prefix, so a
    /// bucket lifecycle rule on `uploads/` can expire abandoned uploads.
    pub fn upload_key(tenant: TenantId, collection: CollectionId, document: DocumentId) -> String {
        format!("uploads/tenants/{tenant}/collections/{collection}/{document}")
    }

    /// Whether this store hands out presigned URLs (S3).
    pub fn can_presign(&self) -> bool {
        #[cfg(feature = "s3")]
        {
            self.signer.is_some()
        }
        #[cfg(not(feature = "s3"))]
        {
            false
        }
    }

    /// A URL that downloads `key` without credentials until `ttl` has passed; `None` for stores
    /// that cannot sign (local). With `attachment`, the download is offered under that file
    /// name (`response-content-disposition`) and, with `content_type`, served as that type.
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: Duration,
        attachment: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<Option<String>> {
        #[cfg(feature = "s3")]
        if let Some(signer) = &self.signer {
            return signer
                .get(&self.path(key), ttl, attachment, content_type)
                .await
                .map(Some);
        }
        let _ = (key, ttl, attachment, content_type);
        Ok(None)
    }

    /// A request that uploads the bytes of `key` without credentials until `ttl` has passed
    /// (`PUT`, with the returned headers: `content-type` and any server-side encryption);
    /// `None` for stores that cannot sign (local).
    pub async fn presigned_put(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
    ) -> Result<Option<PresignedRequest>> {
        #[cfg(feature = "s3")]
        if let Some(signer) = &self.signer {
            return signer
                .put(&self.path(key), ttl, content_type)
                .await
                .map(Some);
        }
        let _ = (key, ttl, content_type);
        Ok(None)
    }

    /// Streams `source` into `key`, hashing as it goes. Past `limit` bytes the upload is
    /// aborted and nothing is left behind.
    pub async fn put_stream<E: std::fmt::Display>(
        &self,
        key: &str,
        mut source: BoxStream<'_, Result<Bytes, E>>,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        let path = self.path(key);
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| PutError::Store(store_err(e)))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let failure = loop {
            match source.next().await {
                None => break None,
                Some(Err(e)) => break Some(PutError::Source(e.to_string())),
                Some(Ok(bytes)) => {
                    size += bytes.len() as u64;
                    if size > limit {
                        break Some(PutError::TooLarge { limit });
                    }
                    hasher.update(&bytes);
                    if let Err(e) = writer.wait_for_capacity(4).await {
                        break Some(PutError::Store(store_err(e)));
                    }
                    writer.write(&bytes);
                }
            }
        };
        if let Some(err) = failure {
            let _ = writer.abort().await;
            return Err(err);
        }
        writer
            .finish()
            .await
            .map_err(|e| PutError::Store(store_err(e)))?;
        Ok(PutOutcome {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Writes a small blob in one go.
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.inner
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map_err(store_err)?;
        Ok(PutOutcome { size, sha256 })
    }

    /// Streams a blob; `None` when it does not exist.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes>>)>> {
        match self.inner.get(&self.path(key)).await {
            Ok(res) => {
                let size = res.meta.size;
                let stream = res.into_stream().map(|r| r.map_err(store_err)).boxed();
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Reads a whole blob; `None` when it does not exist.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        match self.inner.get(&self.path(key)).await {
            Ok(res) => res.bytes().await.map(Some).map_err(store_err),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Size and sha256 of a blob, read as a stream (never whole in memory); `None` when it
    /// does not exist.
    pub async fn digest(&self, key: &str) -> Result<Option<PutOutcome>> {
        let Some((_, mut stream)) = self.get_stream(key).await? else {
            return Ok(None);
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some(PutOutcome {
            size,
            sha256: hex::encode(hasher.finalize()),
        }))
    }

    /// Size of a blob; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>> {
        match self.inner.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Copies a blob inside the store (server-side on S3); `from` must exist.
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner
            .copy(&self.path(from), &self.path(to))
            .await
            .map_err(store_err)
    }

    /// Deletes a blob; deleting a missing blob is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Keys under `prefix` (a key prefix ending at a `/` boundary) with their sizes, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let full = self.path(prefix);
        let mut list = self.inner.list(Some(&full));
        let mut out = Vec::new();
        while let Some(meta) = list.next().await {
            match meta {
                Ok(meta) => {
                    let key = meta.location.as_ref();
                    let key = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
                    out.push((key.to_owned(), meta.size));
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(store_err(e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks the store answers (a listing of one key prefix).
    pub async fn ping(&self) -> Result<()> {
        let mut list = self.inner.list(Some(&self.path("tenants")));
        match list.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Some(Err(e)) => Err(store_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn chunks(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        let parts: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        stream::iter(parts).boxed()
    }

    #[tokio::test]
    async fn put_get_head_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            &StorageConfig::Local {
                path: dir.path().into(),
            },
            |p| p.to_path_buf(),
        )
        .await
        .unwrap();
        let out = store
            .put_stream("a/b/original", chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert_eq!(out.size, 11);
        assert_eq!(
            out.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(store.head("a/b/original").await.unwrap(), Some(11));
        assert_eq!(
            store.get_bytes("a/b/original").await.unwrap().unwrap(),
            "hello world"
        );
        store.delete("a/b/original").await.unwrap();
        assert_eq!(store.head("a/b/original").await.unwrap(), None);
        store.delete("a/b/original").await.unwrap();
        assert!(store.get_stream("a/b/original").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_stream_is_aborted_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            &StorageConfig::Local {
                path: dir.path().into(),
            },
            |p| p.to_path_buf(),
        )
        .await
        .unwrap();
        let err = store
            .put_stream("big", chunks(&[b"0123456789", b"0123456789"]), 15)
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::TooLarge { limit: 15 }));
        assert_eq!(store.head("big").await.unwrap(), None);
    }
}
