//! The blob store for originals: a small facade over [`object_store`] (local directory now; S3
//! and S3-compatible stores slot in through the same `Arc<dyn ObjectStore>`).
//!
//! Uploads stream through [`BlobStore::put_stream`], which hashes (sha256) and counts bytes as
//! they pass and aborts once a size limit is crossed, so nothing is ever held whole in memory.

use std::sync::Arc;

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

/// Facade over an object store.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

/// Opens the configured store. `data_path` resolves relative paths against the data directory.
pub fn open(
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
    }
}

fn store_err(e: object_store::Error) -> Error {
    Error::unavailable("the blob store", e)
}

impl BlobStore {
    /// Wraps any object store.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// Key of a document's original: `tenants/{t}/collections/{c}/documents/{d}/original`.
    pub fn original_key(
        tenant: TenantId,
        collection: CollectionId,
        document: DocumentId,
    ) -> String {
        format!("tenants/{tenant}/collections/{collection}/documents/{document}/original")
    }

    /// Streams `source` into `key`, hashing as it goes. Past `limit` bytes the upload is
    /// aborted and nothing is left behind.
    pub async fn put_stream<E: std::fmt::Display>(
        &self,
        key: &str,
        mut source: BoxStream<'_, Result<Bytes, E>>,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        let path = Path::from(key);
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
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map_err(store_err)?;
        Ok(PutOutcome { size, sha256 })
    }

    /// Streams a blob; `None` when it does not exist.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes>>)>> {
        match self.inner.get(&Path::from(key)).await {
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
        match self.inner.get(&Path::from(key)).await {
            Ok(res) => res.bytes().await.map(Some).map_err(store_err),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Size of a blob; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>> {
        match self.inner.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Deletes a blob; deleting a missing blob is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Checks the store answers (a listing of one key prefix).
    pub async fn ping(&self) -> Result<()> {
        let mut list = self.inner.list(Some(&Path::from("tenants")));
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
        .unwrap();
        let err = store
            .put_stream("big", chunks(&[b"0123456789", b"0123456789"]), 15)
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::TooLarge { limit: 15 }));
        assert_eq!(store.head("big").await.unwrap(), None);
    }
}
