//! Ingest limits through the real app (issue 21, C1 and M6): a CSV row of a million columns,
//! and a 100k-field JSONL object, fail their document with `record_too_large` in bounded
//! memory instead of taking the server down; a wide record within the limits is stored with
//! each field about once across its chunks; per-document row and chunk limits and the
//! per-tenant chunk quota fail documents with their own codes.

mod common;

use common::{TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The file: one header and one row of `n` columns.
fn wide_csv(n: usize) -> Vec<u8> {
    let header: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    format!("{}\n{}\n", header.join(","), vec!["x"; n].join(",")).into_bytes()
}

/// A CSV of `rows` short rows.
fn rows_csv(rows: usize) -> Vec<u8> {
    tagged_csv("name", rows)
}

/// A CSV of `rows` short rows whose text carries `tag` (different bytes, no deduplication).
fn tagged_csv(tag: &str, rows: usize) -> Vec<u8> {
    let mut s = String::from("id,name\n");
    for i in 0..rows {
        s.push_str(&format!("{i},{tag} {i}\n"));
    }
    s.into_bytes()
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

async fn document(app: &TestApp, id: &str) -> Value {
    let (status, doc) = app.get(&format!("/api/v1/documents/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    doc
}

async fn all_chunks(app: &TestApp, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/documents/{id}/chunks?limit=100&cursor={c}"),
            None => format!("/api/v1/documents/{id}/chunks?limit=100"),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_column_csv_fails_its_document_in_bounded_memory() {
    let app = spawn_app().await;
    let cid = app.create_collection("wide").await;
    let csv = wide_csv(1_000_000);
    assert!(csv.len() > 9_000_000);
    let wide = app.upload_ok(&cid, "wide.csv", &csv).await;
    drop(csv);
    let fields: Vec<String> = (0..100_000).map(|i| format!("\"c{i}\":\"x\"")).collect();
    let jsonl = format!("{{{}}}\n", fields.join(","));
    let wide_json = app.upload_ok(&cid, "wide.jsonl", jsonl.as_bytes()).await;
    app.drain().await;
    for id in [&wide, &wide_json] {
        let doc = document(&app, id).await;
        assert_eq!(doc["status"], "failed", "{doc}");
        assert_eq!(doc["error"]["code"], "record_too_large", "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains("limit of 10000 fields"), "{message}");
    }
    let (status, _) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    // Before the fix this file took the server past 22 GB; the test process as a whole
    // (server, worker, both files) now stays far below 1 GiB.
    if let Some(peak) = peak_rss_mib() {
        println!("peak RSS of the test process: {peak} MiB");
        assert!(peak < 1024, "peak RSS {peak} MiB");
    }
    // Other documents still ingest.
    let ok = app.upload_ok(&cid, "ok.csv", &rows_csv(3)).await;
    app.drain().await;
    assert_eq!(document(&app, &ok).await["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_record_within_the_limits_holds_each_field_about_once() {
    let app = spawn_app_with(|c| c.ingest.max_record_chunks = 1_000).await;
    let cid = app.create_collection("wide").await;
    let n = 3_000;
    let id = app.upload_ok(&cid, "wide.csv", &wide_csv(n)).await;
    app.drain().await;
    let doc = document(&app, &id).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    let chunks = all_chunks(&app, &id).await;
    assert!(chunks.len() > 10, "{}", chunks.len());
    assert_eq!(doc["chunk_count"], chunks.len());
    // Stored metadata across the record's chunks: about one entry per field (overlaps repeat
    // a few), where copying every field into every chunk stored chunks × fields.
    let stored: usize = chunks
        .iter()
        .map(|c| c["metadata"].as_object().map_or(0, |m| m.len()))
        .sum();
    assert!(
        stored >= n && stored < n + n / 4,
        "{stored} entries for {n} fields"
    );
    for c in &chunks {
        let text = c["text"].as_str().unwrap();
        for key in c["metadata"].as_object().unwrap().keys() {
            assert!(text.contains(&format!("{key}:")), "{key} not in its chunk");
        }
    }
    // A record that needs more chunks than allowed fails its document.
    let app2 = spawn_app_with(|c| c.ingest.max_record_chunks = 5).await;
    let cid = app2.create_collection("wide").await;
    let id = app2.upload_ok(&cid, "wide.csv", &wide_csv(n)).await;
    app2.drain().await;
    let doc = document(&app2, &id).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["error"]["code"], "record_too_large", "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_document_row_and_chunk_limits_fail_the_document() {
    let app = spawn_app_with(|c| {
        c.ingest.max_document_rows = 10;
        c.ingest.max_document_chunks = 3;
    })
    .await;
    let cid = app.create_collection("limits").await;
    let fits = app.upload_ok(&cid, "fits.csv", &rows_csv(3)).await;
    let rows = app.upload_ok(&cid, "rows.csv", &rows_csv(11)).await;
    let chunks = app.upload_ok(&cid, "chunks.csv", &rows_csv(5)).await;
    let text = common::markdown_doc(1, 20);
    let long = app.upload_ok(&cid, "long.md", &text).await;
    app.drain().await;
    assert_eq!(document(&app, &fits).await["status"], "completed");
    for (id, what) in [(&rows, "rows"), (&chunks, "chunks"), (&long, "chunks")] {
        let doc = document(&app, id).await;
        assert_eq!(doc["status"], "failed", "{doc}");
        assert_eq!(doc["error"]["code"], "document_too_large", "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains(what), "{message}");
        assert_eq!(doc["chunk_count"], 0, "{doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_chunk_quota_fails_documents_past_it() {
    let app = spawn_app_with(|c| c.auth.quotas.max_chunks = 15).await;
    let cid = app.create_collection("quota").await;
    let first = app.upload_ok(&cid, "first.csv", &rows_csv(10)).await;
    app.drain().await;
    assert_eq!(document(&app, &first).await["chunk_count"], 10);
    let second = app
        .upload_ok(&cid, "second.csv", &tagged_csv("second", 10))
        .await;
    app.drain().await;
    let doc = document(&app, &second).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(doc["error"]["code"], "chunk_quota_exceeded", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 15 chunks"),
        "{doc}"
    );
    // A document's own chunks are replaced, not added: reprocessing the first still fits.
    let (status, body) = app
        .post_json(&format!("/api/v1/documents/{first}/reprocess"), json!({}))
        .await;
    assert!(status.is_success(), "{status}: {body}");
    app.drain().await;
    let doc = document(&app, &first).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(doc["chunk_count"], 10);
    // A small one still fits beside it.
    let small = app.upload_ok(&cid, "small.csv", &rows_csv(5)).await;
    app.drain().await;
    assert_eq!(document(&app, &small).await["status"], "completed");
}
