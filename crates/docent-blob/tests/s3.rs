//! The S3 backend against a real S3-compatible server (moto in CI): the facade's put / get /
//! head / list / copy / delete, bucket creation, and presigned GET and PUT used by a plain HTTP
//! client. Runs when `DOCENT_TEST_AWS_ENDPOINT` names the server (credentials and region from
//! the usual `AWS_*` variables); otherwise each test says it was skipped.

#![cfg(feature = "s3")]

use std::time::Duration;

use bytes::Bytes;
use docent_blob::BlobStore;
use docent_config::{ServerSideEncryption, StorageConfig};
use futures::StreamExt;

fn endpoint() -> Option<String> {
    let e = std::env::var("DOCENT_TEST_AWS_ENDPOINT").ok();
    if e.is_none() {
        eprintln!("skipped: DOCENT_TEST_AWS_ENDPOINT not set");
    }
    e
}

fn config(endpoint: &str, bucket: &str, prefix: &str) -> StorageConfig {
    StorageConfig::S3 {
        bucket: bucket.to_owned(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        endpoint: Some(endpoint.to_owned()),
        prefix: prefix.to_owned(),
        allow_http: true,
        create_bucket: true,
        server_side_encryption: ServerSideEncryption::None,
        kms_key_id: None,
        presign_ttl: Duration::from_secs(300),
        redirect_downloads: false,
    }
}

fn bucket() -> String {
    format!(
        "docent-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

async fn open(endpoint: &str, bucket: &str, prefix: &str) -> BlobStore {
    docent_blob::open(&config(endpoint, bucket, prefix), |p| p.to_path_buf())
        .await
        .expect("S3 store opens (bucket created)")
}

#[tokio::test]
async fn facade_put_get_head_list_copy_delete() {
    let Some(ep) = endpoint() else { return };
    let bucket = bucket();
    let store = open(&ep, &bucket, "/tenant-data/").await;
    store.ping().await.unwrap();
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"hello ")),
        Ok(Bytes::from_static(b"world")),
    ];
    let out = store
        .put_stream("tenants/a/one", futures::stream::iter(parts).boxed(), 100)
        .await
        .unwrap();
    assert_eq!(out.size, 11);
    assert_eq!(
        out.sha256,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    store
        .put_bytes("tenants/a/two", Bytes::from_static(b"second"))
        .await
        .unwrap();
    store
        .put_bytes("tenants/b/three", Bytes::from_static(b"third"))
        .await
        .unwrap();
    assert_eq!(store.head("tenants/a/one").await.unwrap(), Some(11));
    assert_eq!(
        store.get_bytes("tenants/a/one").await.unwrap().unwrap(),
        "hello world"
    );
    assert_eq!(
        store.digest("tenants/a/one").await.unwrap().unwrap(),
        out,
        "the streamed digest matches the put"
    );
    assert_eq!(
        store.list("tenants/a").await.unwrap(),
        vec![
            ("tenants/a/one".to_owned(), 11),
            ("tenants/a/two".to_owned(), 6)
        ],
        "keys are listed without the store's prefix"
    );
    // The prefix is real: a store without it sees the keys under it.
    let raw = open(&ep, &bucket, "").await;
    assert_eq!(
        raw.head("tenant-data/tenants/a/one").await.unwrap(),
        Some(11)
    );
    store.copy("tenants/a/one", "tenants/a/copy").await.unwrap();
    assert_eq!(
        store.get_bytes("tenants/a/copy").await.unwrap().unwrap(),
        "hello world"
    );
    for key in ["tenants/a/one", "tenants/a/two", "tenants/a/copy"] {
        store.delete(key).await.unwrap();
    }
    store.delete("tenants/a/one").await.unwrap();
    assert_eq!(store.head("tenants/a/one").await.unwrap(), None);
    assert!(store.get_stream("tenants/a/one").await.unwrap().is_none());
    assert!(store.list("tenants/a").await.unwrap().is_empty());
    assert_eq!(store.list("tenants").await.unwrap().len(), 1);

    // An oversized stream leaves nothing behind.
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from(vec![7u8; 64]))];
    let err = store
        .put_stream("tenants/a/big", futures::stream::iter(parts).boxed(), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, docent_blob::PutError::TooLarge { limit: 10 }));
    assert_eq!(store.head("tenants/a/big").await.unwrap(), None);
}

#[tokio::test]
async fn creating_an_existing_bucket_is_fine() {
    let Some(ep) = endpoint() else { return };
    let bucket = bucket();
    let a = open(&ep, &bucket, "").await;
    a.put_bytes("k", Bytes::from_static(b"v")).await.unwrap();
    let b = open(&ep, &bucket, "").await;
    assert_eq!(b.get_bytes("k").await.unwrap().unwrap(), "v");
}

#[tokio::test]
async fn presigned_get_and_put_work_with_a_plain_http_client() {
    let Some(ep) = endpoint() else { return };
    let store = open(&ep, &bucket(), "pre").await;
    assert!(store.can_presign());
    let http = reqwest::Client::new();

    // Upload through a presigned PUT with the signed headers.
    let put = store
        .presigned_put("tenants/a/up", Duration::from_secs(60), "text/plain")
        .await
        .unwrap()
        .expect("S3 signs");
    assert!(
        put.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "text/plain"),
        "{:?}",
        put.headers
    );
    let mut req = http.put(&put.url).body("sent without credentials");
    for (k, v) in &put.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        store.get_bytes("tenants/a/up").await.unwrap().unwrap(),
        "sent without credentials"
    );

    // Download through a presigned GET, offered under a file name.
    let url = store
        .presigned_get(
            "tenants/a/up",
            Duration::from_secs(60),
            Some("notes \"1\".txt"),
            Some("text/plain"),
        )
        .await
        .unwrap()
        .expect("S3 signs");
    assert!(url.contains("X-Amz-Signature"), "{url}");
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "sent without credentials");

    // A presigned URL of a missing key is a 404, not an empty body.
    let missing = store
        .presigned_get("tenants/a/missing", Duration::from_secs(60), None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(http.get(&missing).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_local_store_does_not_presign() {
    let dir = tempfile::tempdir().unwrap();
    let store = docent_blob::open(
        &StorageConfig::Local {
            path: dir.path().into(),
        },
        |p| p.to_path_buf(),
    )
    .await
    .unwrap();
    assert!(!store.can_presign());
    assert!(
        store
            .presigned_get("k", Duration::from_secs(60), None, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .presigned_put("k", Duration::from_secs(60), "text/plain")
            .await
            .unwrap()
            .is_none()
    );
}
