//! The whole app in the PostgreSQL shape for search: `[database] kind = "postgres"` and
//! `[index] kind = "postgres"` (full-text search + pgvector) on the server of
//! `DOCENT_TEST_PGVECTOR_URL` (`scripts/test-services` starts it; skipped without it). Uploads
//! go through the API and the worker, searches through `POST /api/v1/search`, with the local
//! model when it is available (hybrid), else keyword only.

#![cfg(feature = "postgres")]

mod common;

use common::*;
use docent_config::{Config, DatabaseConfig, IndexConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The server, or `None` (and a note on stderr) to skip.
fn url() -> Option<String> {
    match std::env::var("DOCENT_TEST_PGVECTOR_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: DOCENT_TEST_PGVECTOR_URL not set");
            None
        }
    }
}

/// A database of its own on the pgvector server, dropped on drop.
struct TestDb {
    _db: docent_testkit::pg::TestDatabase,
    url: String,
}

impl TestDb {
    async fn new() -> Option<Self> {
        let db = docent_testkit::pg::TestDatabase::create(&url()?, "docent_app").await;
        let url = db.url().to_owned();
        Some(Self { _db: db, url })
    }

    /// The PostgreSQL shape: metadata and search indexes in this database.
    fn configure(&self, config: &mut Config) {
        embedder(config, true);
        config.database = DatabaseConfig::Postgres {
            url: Some(self.url.clone().into()),
            url_file: None,
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_secs(10),
            statement_timeout: std::time::Duration::from_secs(30),
            tls: Default::default(),
        };
        config.index = IndexConfig::Postgres {
            url: None,
            url_file: None,
            max_connections: 4,
            statement_timeout: std::time::Duration::from_secs(30),
            hnsw_m: 16,
            hnsw_ef_construction: 64,
            hnsw_ef_search: 100,
            tls: Default::default(),
        };
    }
}

const DOCS: &[(&str, &str)] = &[
    (
        "leave.md",
        "# Leave policy\n\nEmployees receive 25 days of paid annual leave per year.\n\n## Sick leave\n\nSick leave is unlimited when a doctor's note is provided.",
    ),
    (
        "security.md",
        "# Security\n\nPasswords must be rotated every 90 days. Two-factor authentication is mandatory for all staff accounts.",
    ),
    (
        "kitchen.md",
        "# Kitchen rules\n\nThe office kitchen closes at 6pm. Please label food in the refrigerator with your name and date.",
    ),
    (
        "travel.md",
        "# Travel\n\nBusiness travel must be approved by a manager. Economy class is used for flights under six hours.",
    ),
];

fn filenames(res: &Value) -> Vec<String> {
    res["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["filename"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_in_the_postgres_shape() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let app = spawn_app_with(|c| db.configure(c)).await;
    let hybrid = model_dir().is_some();
    if !hybrid {
        eprintln!("model not found: keyword search only (run scripts/get-model)");
    }
    let cid = app.create_collection("handbook").await;
    let mut ids = Vec::new();
    for (file, text) in DOCS {
        ids.push(app.upload_ok(&cid, file, text.as_bytes()).await);
    }
    let other = app.create_collection("finance").await;
    let form = reqwest::multipart::Form::new()
        .text("metadata", r#"{"team": "finance", "year": 2024}"#)
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                b"# Budget\n\nThe annual leave budget is tracked by finance.".to_vec(),
            )
            .file_name("budget.md"),
        );
    let r = app
        .client
        .post(app.url(&format!("/api/v1/collections/{other}/documents")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(app.drain().await, DOCS.len() + 1);

    // Keyword: stemmed full-text search ("approves" ~ "approved").
    let (s, res) = app
        .search(json!({"query": "who approves business travel", "mode": "keyword"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert_eq!(filenames(&res)[0], "travel.md", "{res}");

    // Hybrid (the default mode): keyword and vector candidates fused.
    let (s, res) = app
        .search(json!({"query": "how many days of annual leave", "explain": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert_eq!(filenames(&res)[0], "leave.md", "{res}");
    if hybrid {
        assert_eq!(res["mode"], "hybrid");
        assert!(!res["hits"][0]["scores"]["vector"].is_null(), "{res}");
        assert!(!res["hits"][0]["scores"]["keyword"].is_null(), "{res}");
        // No shared words with the answer: only the vectors can find it.
        let (_, res) = app
            .search(json!({"query": "vacation entitlement", "mode": "vector", "top_k": 1}))
            .await;
        assert_eq!(filenames(&res), vec!["leave.md"], "{res}");
    }

    // Filters: collections, documents, metadata and dates, all conditions of the index's SQL
    // (applied before its limit).
    let (_, only) = app
        .search(json!({"query": "annual leave", "collection_ids": [other]}))
        .await;
    assert_eq!(filenames(&only), vec!["budget.md"]);
    let (_, by_doc) = app
        .search(json!({"query": "annual leave", "document_ids": [ids[0]]}))
        .await;
    let by_doc = filenames(&by_doc);
    assert!(
        !by_doc.is_empty() && by_doc.iter().all(|f| f == "leave.md"),
        "{by_doc:?}"
    );
    let (_, by_meta) = app
        .search(json!({"query": "annual leave", "metadata": {"team": "finance"}}))
        .await;
    assert_eq!(filenames(&by_meta), vec!["budget.md"]);
    for mode in ["keyword", "vector"] {
        if mode == "vector" && !hybrid {
            continue;
        }
        let (s, ranged) = app
            .search(json!({
                "query": "annual leave", "mode": mode, "top_k": 1,
                "metadata": {"year": {"gte": 2024, "lt": "2025"}}
            }))
            .await;
        assert_eq!(s, StatusCode::OK, "{ranged}");
        assert_eq!(filenames(&ranged), vec!["budget.md"], "{mode}: {ranged}");
    }
    let (_, future) = app
        .search(json!({"query": "annual leave", "created_after": "2999-01-01T00:00:00Z"}))
        .await;
    assert!(future["hits"].as_array().unwrap().is_empty(), "{future}");

    // A deleted document is gone from both indexes at once.
    let (s, _) = app.delete(&format!("/api/v1/documents/{}", ids[0])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for mode in ["keyword", "vector", "hybrid"] {
        if mode == "vector" && !hybrid {
            continue;
        }
        let (s, after) = app
            .search(
                json!({"query": "annual leave sick doctor vacation", "mode": mode, "top_k": 50}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{after}");
        assert!(
            !filenames(&after).contains(&"leave.md".to_owned()),
            "{mode}: {after}"
        );
    }
    let (s, _) = app.delete(&format!("/api/v1/collections/{other}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, after) = app.search(json!({"query": "budget finance"})).await;
    assert!(
        !filenames(&after).contains(&"budget.md".to_owned()),
        "{after}"
    );

    // A restarted process finds the same index (no rebuild, nothing loaded into memory).
    let q = json!({"query": "kitchen refrigerator", "top_k": 3});
    let (_, before) = app.search(q.clone()).await;
    let dir = app.stop_keep_dir().await;
    let app = spawn_app_in(dir, |c| db.configure(c)).await;
    let (_, again) = app.search(q).await;
    assert_eq!(filenames(&again)[0], "kitchen.md", "{again}");
    assert_eq!(filenames(&before), filenames(&again));
    app.stop().await;
}
