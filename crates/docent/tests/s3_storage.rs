//! The S3 blob store through the whole app, against a real S3-compatible server (moto in CI):
//! direct uploads (presigned PUT → complete → ingest), presigned downloads and redirects,
//! refused bytes, tenant isolation of uploads — and the answers of a local store. The S3 tests
//! run when `DOCENT_TEST_AWS_ENDPOINT` names the server (credentials and region from the usual
//! `AWS_*` variables), each with a bucket of its own; otherwise they say they were skipped.

mod common;

use common::{TestApp, assert_error, builtin_auth, s3_storage, spawn_app, spawn_app_with};
use docent_config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TEXT: &[u8] = b"# Okapis\n\nThe okapi is a giraffid mammal of the Congo rainforest.\n";

fn endpoint() -> Option<String> {
    let e = std::env::var("DOCENT_TEST_AWS_ENDPOINT").ok();
    if e.is_none() {
        eprintln!("skipped: DOCENT_TEST_AWS_ENDPOINT not set");
    }
    e
}

/// `[storage] kind = "s3"` on a fresh bucket, created at start.
fn s3(endpoint: String) -> impl FnOnce(&mut Config) {
    move |config| s3_storage(config, endpoint)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Starts a direct upload of `bytes` declared as `declared` (size and sha256).
async fn start(
    app: &TestApp,
    token: Option<&str>,
    collection: &str,
    name: &str,
    declared: &[u8],
) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/collections/{collection}/documents/uploads"),
        token,
        json!({
            "filename": name,
            "size": declared.len(),
            "sha256": sha256(declared),
            "content_type": "text/markdown",
            "metadata": { "source": "direct" },
        }),
    )
    .await
}

/// PUTs `bytes` to the ticket's URL with its headers, without docent credentials.
async fn put(ticket: &Value, bytes: &[u8]) {
    assert_eq!(ticket["method"], "PUT", "{ticket}");
    let mut req = reqwest::Client::new()
        .put(ticket["url"].as_str().unwrap())
        .body(bytes.to_vec());
    for (k, v) in ticket["headers"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    let r = req.send().await.expect("PUT to the presigned URL");
    assert!(r.status().is_success(), "{}", r.status());
}

async fn complete(
    app: &TestApp,
    token: Option<&str>,
    collection: &str,
    upload: &str,
) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/collections/{collection}/documents/uploads/{upload}/complete"),
        token,
        json!({}),
    )
    .await
}

#[tokio::test]
async fn direct_upload_is_verified_ingested_searchable_and_downloadable() {
    let Some(ep) = endpoint() else { return };
    let app = spawn_app_with(s3(ep)).await;
    let c = app.create_collection("direct").await;

    let (s, ticket) = start(&app, None, &c, "okapi.md", TEXT).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["headers"]["content-type"], "text/markdown");
    assert!(ticket["expires_at"].is_string(), "{ticket}");
    let upload = ticket["upload_id"].as_str().unwrap().to_owned();

    // Completing before the bytes arrive keeps the upload pending.
    let (s, b) = complete(&app, None, &c, &upload).await;
    assert_error(s, &b, 409, "upload_incomplete");

    put(&ticket, TEXT).await;
    let (s, b) = complete(&app, None, &c, &upload).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(
        b["document"]["id"],
        upload.as_str(),
        "the upload id is the document id"
    );
    assert_eq!(b["document"]["metadata"]["source"], "direct");
    assert_eq!(b["duplicate"], false);
    assert!(b["task"]["id"].is_string(), "{b}");
    // Completed once only.
    let (s, b) = complete(&app, None, &c, &upload).await;
    assert_error(s, &b, 404, "upload_not_found");

    assert_eq!(app.drain().await, 1);
    let (s, doc) = app.get(&format!("/api/v1/documents/{upload}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(doc["sha256"], sha256(TEXT));
    assert_eq!(doc["filename"], "okapi.md");
    let (s, hits) = app.search(json!({ "query": "okapi giraffid" })).await;
    assert_eq!(s, StatusCode::OK, "{hits}");
    assert_eq!(hits["hits"][0]["document_id"], upload.as_str(), "{hits}");

    // Only the original is left in the bucket: the staging object is gone.
    let keys = app.services.blobs.list("tenants").await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(app.services.blobs.list("uploads").await.unwrap().is_empty());
    assert!(
        keys[0]
            .0
            .ends_with(&format!("/documents/{upload}/original"))
    );

    // Presigned download, by URL and by redirect; streaming still works.
    let (s, link) = app
        .get(&format!("/api/v1/documents/{upload}/download-url"))
        .await;
    assert_eq!(s, StatusCode::OK, "{link}");
    assert!(link["expires_at"].is_string());
    let r = reqwest::get(link["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), TEXT);
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(app.url(&format!("/api/v1/documents/{upload}/content?redirect=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        reqwest::get(&location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        TEXT
    );
    let r = no_follow
        .get(app.url(&format!("/api/v1/documents/{upload}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), TEXT);

    // The same bytes again: the existing document, and nothing new kept.
    let (s, again) = start(&app, None, &c, "copy.md", TEXT).await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    put(&again, TEXT).await;
    let (s, b) = complete(&app, None, &c, again["upload_id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["duplicate"], true);
    assert_eq!(b["document"]["id"], upload.as_str());
    assert_eq!(app.services.blobs.list("tenants").await.unwrap().len(), 1);
    assert!(app.services.blobs.list("uploads").await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bytes_other_than_declared_are_refused_and_nothing_is_stored() {
    let Some(ep) = endpoint() else { return };
    let app = spawn_app_with(s3(ep)).await;
    let c = app.create_collection("refused").await;

    // Same size, other bytes: the hash differs.
    let mut other = TEXT.to_vec();
    other[3] = b'X';
    let (s, ticket) = start(&app, None, &c, "okapi.md", TEXT).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    put(&ticket, &other).await;
    let upload = ticket["upload_id"].as_str().unwrap();
    let (s, b) = complete(&app, None, &c, upload).await;
    assert_error(s, &b, 422, "upload_mismatch");
    assert!(b["error"]["message"].as_str().unwrap().contains("sha256"));
    // The upload is gone with its object.
    let (s, b) = complete(&app, None, &c, upload).await;
    assert_error(s, &b, 404, "upload_not_found");

    // Other size.
    let (s, ticket) = start(&app, None, &c, "okapi.md", TEXT).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    put(&ticket, &TEXT[..10]).await;
    let (s, b) = complete(&app, None, &c, ticket["upload_id"].as_str().unwrap()).await;
    assert_error(s, &b, 422, "upload_mismatch");
    assert!(b["error"]["message"].as_str().unwrap().contains("bytes"));

    assert!(
        app.services.blobs.list("tenants").await.unwrap().is_empty()
            && app.services.blobs.list("uploads").await.unwrap().is_empty(),
        "nothing is stored"
    );
    let (_, docs) = app.get(&format!("/api/v1/collections/{c}/documents")).await;
    assert_eq!(docs["items"].as_array().unwrap().len(), 0, "{docs}");
    assert_eq!(app.drain().await, 0);

    // Declarations are checked up front.
    let path = format!("/api/v1/collections/{c}/documents/uploads");
    let (s, b) = post(
        &app,
        &path,
        None,
        json!({ "filename": "a.md", "size": 3, "sha256": "nope" }),
    )
    .await;
    assert_error(s, &b, 400, "invalid_field");
    let (s, b) = post(
        &app,
        &path,
        None,
        json!({ "filename": "a.md", "size": 0, "sha256": sha256(b"") }),
    )
    .await;
    assert_error(s, &b, 400, "empty_file");
    let (s, b) = post(
        &app,
        &path,
        None,
        json!({ "filename": "a.md", "size": 1u64 << 40, "sha256": sha256(b"x") }),
    )
    .await;
    assert_error(s, &b, 413, "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn another_tenant_cannot_see_or_complete_an_upload() {
    let Some(ep) = endpoint() else { return };
    let configure = s3(ep);
    let app = spawn_app_with(|c| {
        builtin_auth(c);
        configure(c);
    })
    .await;
    let session = |email: &'static str| {
        let app = &app;
        async move {
            let (s, b) = post(
                app,
                "/api/v1/auth/signup",
                None,
                json!({ "email": email, "password": "correct horse battery" }),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            b["access_token"].as_str().unwrap().to_owned()
        }
    };
    let a = session("a@example.com").await;
    let b = session("b@example.com").await;
    let collection = |token: String| {
        let app = &app;
        async move {
            let (s, body) = post(
                app,
                "/api/v1/collections",
                Some(&token),
                json!({ "name": "mine" }),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let ca = collection(a.clone()).await;
    let cb = collection(b.clone()).await;

    let (s, ticket) = start(&app, Some(&a), &ca, "okapi.md", TEXT).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    put(&ticket, TEXT).await;
    let upload = ticket["upload_id"].as_str().unwrap();

    // B can neither start an upload into A's collection nor complete A's upload.
    let (s, body) = start(&app, Some(&b), &ca, "x.md", TEXT).await;
    assert_error(s, &body, 404, "collection_not_found");
    let (s, body) = complete(&app, Some(&b), &ca, upload).await;
    assert_error(s, &body, 404, "collection_not_found");
    let (s, body) = complete(&app, Some(&b), &cb, upload).await;
    assert_error(s, &body, 404, "upload_not_found");
    // A naming B's collection meets nothing either.
    let (s, body) = complete(&app, Some(&a), &cb, upload).await;
    assert_error(s, &body, 404, "collection_not_found");

    let (s, body) = complete(&app, Some(&a), &ca, upload).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let r = app
        .client
        .get(app.url(&format!("/api/v1/documents/{upload}/download-url")))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_local_store_offers_no_presigned_urls() {
    let app = spawn_app().await;
    let c = app.create_collection("local").await;
    let (s, b) = start(&app, None, &c, "okapi.md", TEXT).await;
    assert_error(s, &b, 409, "feature_unavailable");
    let doc = app.upload_ok(&c, "okapi.md", TEXT).await;
    let (s, b) = app
        .get(&format!("/api/v1/documents/{doc}/download-url"))
        .await;
    assert_error(s, &b, 409, "feature_unavailable");
    let (s, b) = complete(&app, None, &c, &doc).await;
    assert_error(s, &b, 409, "feature_unavailable");
    // `redirect=true` streams from a local store.
    let r = app
        .client
        .get(app.url(&format!("/api/v1/documents/{doc}/content?redirect=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), TEXT);
    app.stop().await;
}
