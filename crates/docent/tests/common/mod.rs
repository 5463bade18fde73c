//! Test support: `spawn_app()` builds the same `Application` that `docent serve` runs, on port
//! 0 with a fresh temporary data directory, and typed helpers to call it.

#![allow(dead_code)]

use std::path::PathBuf;

use docent::app::Application;
use docent_config::Config;
use docent_core::Services;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub services: Services,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// An app with default settings; workers do not run on their own — call [`TestApp::drain`].
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.run_workers = false;
    configure(&mut config);
    let data_dir = config.data_dir.clone();
    let app = Application::build(config)
        .await
        .expect("application builds");
    let base = format!("http://{}", app.local_addr());
    let services = app.services().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        services,
        data_dir,
        _dir: dir,
        stop: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs queued tasks until none is runnable; returns how many ran.
    pub async fn drain(&self) -> usize {
        docent_core::worker::drain(&self.services, "test-worker")
            .await
            .expect("drain")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_collection(&self, name: &str) -> String {
        let (status, body) = self
            .post_json("/api/v1/collections", json!({ "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn upload(
        &self,
        collection: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = self
            .client
            .post(self.url(&format!("/api/v1/collections/{collection}/documents")))
            .multipart(form)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Uploads and returns the document id (asserting success).
    pub async fn upload_ok(&self, collection: &str, filename: &str, bytes: &[u8]) -> String {
        let (status, body) = self.upload(collection, filename, bytes.to_vec()).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "{status}: {body}"
        );
        body["document"]["id"].as_str().unwrap().to_owned()
    }

    /// Files under the blob directory.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        fn walk(p: &std::path::Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out)
                    } else {
                        out.push(path)
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir.join("blobs"), &mut out);
        out
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server ran cleanly");
        }
    }
}

/// Asserts an error envelope with the given status and code.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "body: {body}");
    assert_eq!(body["error"]["code"], want_code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert!(body["error"]["type"].is_string(), "body: {body}");
    assert_eq!(
        body["error"]["link"],
        format!("/api/v1/errors#{want_code}"),
        "body: {body}"
    );
}

/// A Markdown document with `sections` sections of a few paragraphs each.
pub fn markdown_doc(seed: usize, sections: usize) -> Vec<u8> {
    let mut s = format!("# Document {seed}\n\n");
    for i in 0..sections {
        s.push_str(&format!("## Section {i} of {seed}\n\n"));
        for j in 0..3 {
            s.push_str(&format!(
                "Paragraph {j} of section {i} in document {seed} talks about topic {}. It has two sentences.\n\n",
                (seed * 31 + i * 7 + j) % 97
            ));
        }
    }
    s.into_bytes()
}
