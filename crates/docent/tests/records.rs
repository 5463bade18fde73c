//! Large record files through the OpenAI-compatible embedder against the fake provider:
//! batched commits with injected 429/500 faults, rows the provider refuses (ledgered, the
//! document `partially_completed`, retried through the API), and resuming after kill -9 of
//! the real binary without duplicating rows.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{openai_embedder, spawn_app_with};
use docent_fake_openai::{FakeConfig, FakeServer, Faults, RetryAfter};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MARKER: &str = "POISON";

/// A CSV of `rows` data rows; rows (1-based) in `poisoned` carry the reject marker.
fn csv(rows: usize, poisoned: &[usize]) -> Vec<u8> {
    let mut out = String::from("id,name,city,notes\n");
    for i in 1..=rows {
        let note = if poisoned.contains(&i) {
            format!("{MARKER} row {i}")
        } else {
            format!("note number {i} about item {}", i * 7)
        };
        out.push_str(&format!("{i},name {i},city {},{note}\n", i % 97));
    }
    out.into_bytes()
}

fn faults() -> Faults {
    Faults {
        rate_limit_share: 0.15,
        retry_after: RetryAfter::Millis(20),
        server_error_share: 0.15,
        ..Faults::default()
    }
}

async fn failed_rows(app: &common::TestApp, doc: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/documents/{doc}/failed-rows"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_is_embedded_through_faults() {
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        faults: faults(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.base_url();
    let app = spawn_app_with(|c| openai_embedder(c, url, 400)).await;
    let cid = app.create_collection("records").await;
    let rows = 3000;
    let doc = app.upload_ok(&cid, "items.csv", &csv(rows, &[])).await;
    app.drain().await;
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(d["chunk_count"], rows, "{d}");
    let (_, t) = app
        .get(&format!("/api/v1/tasks/{}", d["task_id"].as_str().unwrap()))
        .await;
    assert_eq!(t["progress"]["chunks_total"], rows, "{t}");
    assert_eq!(t["progress"]["chunks_done"], rows, "{t}");
    assert_eq!(t["progress"]["rows_failed"], 0, "{t}");
    assert!(failed_rows(&app, &doc).await.is_empty());
    let log = fake.log();
    assert!(
        log.iter().any(|e| e.fault.is_some()),
        "faults were injected"
    );
    let embedded: usize = log
        .iter()
        .filter(|e| e.status == 200 && e.path == "/v1/embeddings")
        .filter_map(|e| e.inputs)
        .sum();
    assert_eq!(embedded, rows, "each row embedded exactly once");
    // The rows are searchable, vector side included.
    let (status, hits) = app
        .search(json!({ "query": "note number 1234 about item 8638", "top_k": 3 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert!(hits.to_string().contains("note number 1234 "), "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rows_are_ledgered_and_retried() {
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        faults: Faults {
            reject_inputs_containing: Some(MARKER.into()),
            ..faults()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.base_url();
    let app = spawn_app_with(|c| openai_embedder(c, url, 256)).await;
    let cid = app.create_collection("records").await;
    let rows = 2000;
    let poisoned = [1, 7, 700, 1999];
    let doc = app
        .upload_ok(&cid, "items.csv", &csv(rows, &poisoned))
        .await;
    app.drain().await;
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "partially_completed", "{d}");
    assert_eq!(d["chunk_count"], rows - poisoned.len(), "{d}");
    let (_, t) = app
        .get(&format!("/api/v1/tasks/{}", d["task_id"].as_str().unwrap()))
        .await;
    assert_eq!(t["progress"]["rows_failed"], poisoned.len(), "{t}");
    let ledger = failed_rows(&app, &doc).await;
    let numbers: Vec<u64> = ledger.iter().map(|r| r["row"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 7, 700, 1999], "{ledger:?}");
    assert!(
        ledger
            .iter()
            .all(|r| r["code"] == "model_error" && !r["message"].as_str().unwrap().is_empty()),
        "{ledger:?}"
    );

    // Retrying while the provider still refuses them keeps them in the ledger.
    let (status, body) = app
        .post_json(
            &format!("/api/v1/documents/{doc}/retry-failed-rows"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["task"]["kind"], "retry_failed_rows", "{body}");
    app.drain().await;
    assert_eq!(failed_rows(&app, &doc).await.len(), poisoned.len());
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "partially_completed", "{d}");

    // The provider accepts them now: only those rows are embedded, and the ledger empties.
    fake.set_faults(faults());
    fake.clear_log();
    let (status, body) = app
        .post_json(
            &format!("/api/v1/documents/{doc}/retry-failed-rows"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.drain().await;
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(d["chunk_count"], rows, "{d}");
    assert!(failed_rows(&app, &doc).await.is_empty());
    let embedded: usize = fake
        .log()
        .iter()
        .filter(|e| e.status == 200 && e.path == "/v1/embeddings")
        .filter_map(|e| e.inputs)
        .sum();
    assert_eq!(
        embedded,
        poisoned.len(),
        "only the failed rows are embedded again"
    );
    let (status, hits) = app
        .search(json!({ "query": "POISON row 700", "top_k": 3 }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(hits.to_string().contains("POISON row 700"), "{hits}");

    // Nothing left to retry; unknown documents are 404.
    let (status, body) = app
        .post_json(
            &format!("/api/v1/documents/{doc}/retry-failed-rows"),
            json!({}),
        )
        .await;
    common::assert_error(status, &body, 409, "document_state_conflict");
    let missing = "01890000-0000-7000-8000-000000000000";
    let (status, body) = app
        .get(&format!("/api/v1/documents/{missing}/failed-rows"))
        .await;
    common::assert_error(status, &body, 404, "document_not_found");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &std::path::Path, port: u16, fake: &str) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DOCENT__DATA_DIR", data)
        .env("DOCENT__QUEUE__VISIBILITY_TIMEOUT", "2s")
        .env("DOCENT__QUEUE__BACKOFF_BASE", "100ms")
        .env("DOCENT__QUEUE__POLL_INTERVAL", "50ms")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env("DOCENT__AUTH__MODE", "none")
        .env("DOCENT__EMBEDDER__KIND", "openai")
        .env("DOCENT__EMBEDDER__BASE_URL", fake)
        .env("DOCENT__EMBEDDER__MODEL", docent_fake_openai::EMBED_MODEL)
        .env("DOCENT__EMBEDDER__DIMENSION", "32")
        .env("DOCENT__EMBEDDER__REQUESTS_PER_SECOND", "100.0")
        .env("DOCENT__EMBEDDER__BATCH_SIZE", "100")
        .env("DOCENT__INGEST__RECORD_BATCH", "100")
        .env_remove("DOCENT_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("docent starts");
    Child(child)
}

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_file_resumes_at_the_checkpoint_without_duplicates() {
    // Each request takes a while, so the kill lands mid-file.
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        faults: Faults {
            latency: Duration::from_millis(60),
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve(data.path(), port, &fake.base_url());
    wait_for("healthy", async || {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let c: Value = client
        .post(format!("{base}/api/v1/collections"))
        .json(&json!({ "name": "records" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = c["id"].as_str().unwrap().to_owned();
    let rows = 3000;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv(rows, &[])).file_name("items.csv"),
    );
    let up: Value = client
        .post(format!("{base}/api/v1/collections/{cid}/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doc = up["document"]["id"].as_str().unwrap().to_owned();
    let task = up["task"]["id"].as_str().unwrap().to_owned();
    let get = async |url: String| -> Value {
        client.get(url).send().await.unwrap().json().await.unwrap()
    };
    wait_for("the file to be part-way", async || {
        let t = get(format!("{base}/api/v1/tasks/{task}")).await;
        t["progress"]["chunks_done"].as_u64().unwrap_or(0) >= 500
    })
    .await;
    server.0.kill().unwrap(); // SIGKILL
    let _ = server.0.wait();
    let before: usize = fake
        .log()
        .iter()
        .filter(|e| e.status == 200)
        .filter_map(|e| e.inputs)
        .sum();
    assert!(before < rows, "killed before the end ({before} embedded)");

    let _server = serve(data.path(), port, &fake.base_url());
    wait_for("healthy again", async || {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    wait_for("the task to finish after the restart", async || {
        let t = get(format!("{base}/api/v1/tasks/{task}")).await;
        t["status"] == "completed"
    })
    .await;
    let t = get(format!("{base}/api/v1/tasks/{task}")).await;
    assert!(t["attempts"].as_u64().unwrap() >= 2, "re-leased: {t}");
    let d = get(format!("{base}/api/v1/documents/{doc}")).await;
    assert_eq!(d["chunk_count"], rows, "{d}");
    // Every row once: walk the chunks.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/documents/{doc}/chunks?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get(url).await;
        for c in page["items"].as_array().unwrap() {
            let id = c["metadata"]["id"].as_str().unwrap().to_owned();
            assert!(seen.insert(id.clone()), "row {id} twice");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), rows);
    // Resumed, not restarted: rows embedded after the restart are about those left at the
    // kill (the batch in flight then is embedded again, at most).
    let total: usize = fake
        .log()
        .iter()
        .filter(|e| e.status == 200)
        .filter_map(|e| e.inputs)
        .sum();
    assert!(
        total <= rows + 200,
        "{total} inputs embedded for {rows} rows: the restart did not resume"
    );
}
