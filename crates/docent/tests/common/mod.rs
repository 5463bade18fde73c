//! Test support: `spawn_app()` builds the same `Application` that `docent serve` runs, on port
//! 0 with a fresh temporary data directory, and typed helpers to call it.

#![allow(dead_code)]

pub mod browser;
pub mod servers;

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
    /// The account service (`auth.mode = "builtin"`).
    pub auth: Option<std::sync::Arc<docent_auth::AuthService>>,
    /// The first-run setup link the server printed (`auth.mode = "builtin"`, no users yet).
    pub setup_link: Option<String>,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// An app with default settings except `auth.mode = "none"` (every request acts in the default
/// tenant; tests of accounts set `"builtin"` in their `configure`); workers do not run on their
/// own — call [`TestApp::drain`].
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    spawn_app_in(dir, configure).await
}

/// The all-MiniLM-L6-v2 model directory, when available (`DOCENT_TEST_MODEL_DIR`, or
/// `models/all-MiniLM-L6-v2` at the workspace root, as `scripts/get-model` leaves it).
pub fn model_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("DOCENT_TEST_MODEL_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("model.safetensors").exists())
}

/// Sets the embedder: the local model when available and `want_model`, else none.
pub fn embedder(config: &mut Config, want_model: bool) -> bool {
    match model_dir().filter(|_| want_model) {
        Some(dir) => {
            config.embedder = docent_config::EmbedderConfig::Local {
                model_dir: dir,
                threads: 0,
                batch_size: 32,
            };
            true
        }
        None => {
            config.embedder = docent_config::EmbedderConfig::None;
            false
        }
    }
}

/// Embeds through an OpenAI-compatible server at `base_url` (the fake provider of
/// `docent-fake-openai`), `batch` inputs per request; record files commit in batches as large.
pub fn openai_embedder(config: &mut Config, base_url: String, batch: usize) {
    config.embedder = docent_config::EmbedderConfig::Openai {
        base_url,
        model: docent_fake_openai::EMBED_MODEL.into(),
        api_key: None,
        api_key_file: None,
        dimension: Some(32),
        requests_per_second: 200.0,
        tokens_per_minute: None,
        tenant_share: 0.5,
        batch_size: batch,
        batch_tokens: 300_000,
        max_attempts: 8,
        request_timeout: std::time::Duration::from_secs(30),
    };
    config.ingest.record_batch = batch;
}

/// An app with the local embedding model and `configure`'s settings, or `None` (the test
/// says it is skipped) when the model is not available.
pub async fn spawn_app_with_model(configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    if model_dir().is_none() {
        eprintln!("skipped: model not found (run scripts/get-model or set DOCENT_TEST_MODEL_DIR)");
        return None;
    }
    Some(
        spawn_app_with(|c| {
            embedder(c, true);
            configure(c);
        })
        .await,
    )
}

/// An app over an existing directory (to restart on the same data).
pub async fn spawn_app_in(dir: tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.run_workers = false;
    config.auth.mode = docent_config::AuthMode::None;
    embedder(&mut config, false);
    configure(&mut config);
    let data_dir = config.data_dir.clone();
    let app = Application::build(config)
        .await
        .expect("application builds");
    let base = format!("http://{}", app.local_addr());
    let services = app.services().clone();
    let auth = app.auth().cloned();
    let setup_link = app.setup_link().map(str::to_owned);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        services,
        auth,
        setup_link,
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

    pub async fn stop(self) {
        self.stop_keep_dir().await;
    }

    /// Stops the server and hands back its directory, to start again on the same data.
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server ran cleanly");
        }
        let TestApp { _dir, .. } = self;
        _dir
    }

    pub async fn search(&self, body: Value) -> (StatusCode, Value) {
        self.post_json("/api/v1/search", body).await
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

/// The fake OpenAI-compatible server's chat model as `[llm]`.
pub fn with_llm(fake: &docent_fake_openai::FakeServer) -> impl FnOnce(&mut docent_config::Config) {
    let base_url = fake.base_url();
    move |c| {
        c.llm = docent_config::LlmConfig::Openai {
            base_url,
            model: docent_fake_openai::CHAT_MODEL.into(),
            api_key: None,
            api_key_file: None,
            requests_per_second: 50.0,
            tokens_per_minute: None,
            tenant_share: 0.5,
            request_timeout: std::time::Duration::from_secs(10),
        };
    }
}

/// Built-in accounts with cheap argon2 parameters and no rate limits (tests that exercise the
/// limits turn them back on); mail goes to files under the data directory.
pub fn builtin_auth(config: &mut Config) {
    config.auth.mode = docent_config::AuthMode::Builtin;
    config.auth.password.memory_kib = 64;
    config.auth.password.iterations = 1;
    config.auth.password.parallelism = 1;
    config.auth.rate_limit.enabled = false;
}

/// `[storage] kind = "s3"` at `endpoint` (an S3-compatible server such as moto) on a fresh
/// bucket of its own, created at start, with presigned URLs valid for ten minutes.
pub fn s3_storage(config: &mut Config, endpoint: String) {
    config.storage = docent_config::StorageConfig::S3 {
        bucket: format!(
            "docent-app-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        ),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        endpoint: Some(endpoint),
        prefix: "docent".into(),
        allow_http: true,
        create_bucket: true,
        server_side_encryption: docent_config::ServerSideEncryption::None,
        kms_key_id: None,
        presign_ttl: std::time::Duration::from_secs(600),
        redirect_downloads: false,
    };
}

/// Runs a Python script (`python -c SCRIPT BASE_URL`) that prints one JSON value, and returns
/// it; the script failing fails the test with its stderr.
pub async fn run_python(python: &std::ffi::OsStr, script: &str, base: &str) -> Value {
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(base)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
