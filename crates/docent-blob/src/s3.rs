//! The S3 backend (feature `s3`): object_store's `AmazonS3` built from the standard AWS
//! credential chain plus `[storage]`, the bucket created on demand, and presigned URLs.
//!
//! Credentials are never read from docent's configuration: `AmazonS3Builder::from_env()` takes
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, web identity, ECS or
//! instance metadata. Nothing here logs them.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use docent_config::{ServerSideEncryption, StorageConfig};
use docent_domain::{Error, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::signer::{HeaderMap, HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};

use crate::{BlobStore, PresignedRequest};

/// Signs URLs for the bucket with the store's own credentials.
pub(crate) struct Presigner {
    store: Arc<AmazonS3>,
    /// Server-side encryption headers a presigned `PUT` must carry.
    sse: Vec<(HeaderName, HeaderValue)>,
}

fn s3_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::unavailable(what, e)
}

fn config_key(name: &str) -> Result<AmazonS3ConfigKey> {
    AmazonS3ConfigKey::from_str(name).map_err(|e| s3_err("the S3 configuration", e))
}

/// Builds the store from `[storage] kind = "s3"`.
pub(crate) async fn open(config: &StorageConfig) -> Result<BlobStore> {
    let StorageConfig::S3 {
        bucket,
        region,
        endpoint,
        prefix,
        allow_http,
        create_bucket,
        server_side_encryption,
        kms_key_id,
        ..
    } = config
    else {
        unreachable!("s3::open is called for the s3 backend only");
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_allow_http(*allow_http);
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    let mut sse = Vec::new();
    match server_side_encryption {
        ServerSideEncryption::None => {}
        ServerSideEncryption::Aes256 => {
            builder = builder.with_config(config_key("aws_server_side_encryption")?, "AES256");
            sse.push((
                HeaderName::from_static("x-amz-server-side-encryption"),
                HeaderValue::from_static("AES256"),
            ));
        }
        ServerSideEncryption::AwsKms => {
            builder = builder.with_config(config_key("aws_server_side_encryption")?, "aws:kms");
            sse.push((
                HeaderName::from_static("x-amz-server-side-encryption"),
                HeaderValue::from_static("aws:kms"),
            ));
            if let Some(key) = kms_key_id {
                builder = builder.with_config(config_key("aws_sse_kms_key_id")?, key);
                let value = HeaderValue::from_str(key).map_err(|e| {
                    Error::new(
                        docent_domain::Code::Internal,
                        "storage.kms_key_id is not a valid header value",
                    )
                    .with_source(e)
                })?;
                sse.push((
                    HeaderName::from_static("x-amz-server-side-encryption-aws-kms-key-id"),
                    value,
                ));
            }
        }
    }
    let store = Arc::new(
        builder
            .build()
            .map_err(|e| s3_err("the S3 bucket configuration", e))?,
    );
    let signer = Arc::new(Presigner { store, sse });
    if *create_bucket {
        signer.create_bucket(region).await?;
    }
    let prefix = prefix.trim_matches('/');
    Ok(BlobStore {
        inner: signer.store.clone(),
        prefix: if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
        signer: Some(signer),
    })
}

impl Presigner {
    /// `PUT /{bucket}`, signed with the store's credentials. A bucket that already exists
    /// (`BucketAlreadyOwnedByYou`, or any 409 while a `HEAD` of it succeeds) is fine.
    async fn create_bucket(&self, region: &str) -> Result<()> {
        // object_store has no create-bucket call; its signer does sign any method on the
        // bucket's own URL (the empty path).
        let url = self
            .store
            .signed_url(Method::PUT, &Path::from(""), Duration::from_secs(60))
            .await
            .map_err(|e| s3_err("the S3 bucket", e))?;
        let body = if region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            )
        };
        let client = reqwest::Client::new();
        let resp = client
            .put(url.as_str())
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .map_err(|e| s3_err("the S3 endpoint", e))?;
        let status = resp.status();
        if status.is_success() {
            tracing::info!("created the S3 bucket");
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 409 && text.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(Error::unavailable(
            "the S3 bucket",
            std::io::Error::other(format!("creating the bucket answered {status}: {text}")),
        ))
    }

    /// A presigned `GET`.
    pub(crate) async fn get(
        &self,
        path: &Path,
        ttl: Duration,
        attachment: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<String> {
        let mut query = Vec::new();
        if let Some(name) = attachment {
            query.push((
                "response-content-disposition".to_owned(),
                content_disposition(name),
            ));
        }
        if let Some(ct) = content_type.filter(|c| !c.is_empty()) {
            query.push(("response-content-type".to_owned(), ct.to_owned()));
        }
        let options = SignedUrlOptions::default().with_query(query);
        let url = self
            .store
            .signed_url_opts(Method::GET, path, ttl, &options)
            .await
            .map_err(|e| s3_err("URL signing", e))?;
        Ok(url.to_string())
    }

    /// A presigned `PUT` binding `content-type` and the encryption headers.
    pub(crate) async fn put(
        &self,
        path: &Path,
        ttl: Duration,
        content_type: &str,
    ) -> Result<PresignedRequest> {
        let mut headers = HeaderMap::new();
        let ct = HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        headers.insert(HeaderName::from_static("content-type"), ct);
        for (k, v) in &self.sse {
            headers.insert(k.clone(), v.clone());
        }
        let mut options = SignedUrlOptions::default();
        for (k, v) in &headers {
            options = options.with_signed_header(k.clone(), v.clone());
        }
        let url = self
            .store
            .signed_url_opts(Method::PUT, path, ttl, &options)
            .await
            .map_err(|e| s3_err("URL signing", e))?;
        Ok(PresignedRequest {
            url: url.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
        })
    }
}

/// `attachment; filename="…"` with an ASCII fallback and the UTF-8 name (RFC 6266).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn dispositions_quote_safely() {
        assert_eq!(
            content_disposition("a \"b\".pdf"),
            "attachment; filename=\"a _b_.pdf\"; filename*=UTF-8''a%20%22b%22.pdf"
        );
    }
}
