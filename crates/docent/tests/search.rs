//! Retrieval through the API: keyword and (when the model is available) hybrid search, filters,
//! deletes, restarts, extractive answers and summaries.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

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

async fn seeded(app: &TestApp, name: &str) -> (String, Vec<String>) {
    let cid = app.create_collection(name).await;
    let mut ids = Vec::new();
    for (file, text) in DOCS {
        ids.push(app.upload_ok(&cid, file, text.as_bytes()).await);
    }
    app.drain().await;
    (cid, ids)
}

fn filenames(res: &Value) -> Vec<String> {
    res["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["filename"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn keyword_search_finds_exact_terms_with_citations() {
    let app = spawn_app().await;
    let (cid, _) = seeded(&app, "handbook").await;
    let (s, res) = app
        .search(json!({"query": "how many days of annual leave", "explain": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert_eq!(
        res["mode"], "keyword",
        "no embedder: hybrid degrades to keyword"
    );
    assert!(res["fusion"].is_null(), "nothing is fused: {res}");
    // Weighted fusion over the keyword ranking alone keeps it whole, whatever the weight.
    let (_, ranked) = app
        .search(json!({"query": "leave days policy", "explain": true}))
        .await;
    let (s, weighted) = app
        .search(json!({"query": "leave days policy", "vector_weight": 1.0, "explain": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{weighted}");
    assert_eq!(filenames(&weighted), filenames(&ranked));
    for (i, h) in weighted["hits"].as_array().unwrap().iter().enumerate() {
        assert_eq!(h["scores"]["keyword"]["rank"], i + 1, "{weighted}");
        assert!(h["score"].as_f64().unwrap() > 0.0, "{weighted}");
    }
    let top = &res["hits"][0];
    assert_eq!(top["filename"], "leave.md", "{res}");
    assert_eq!(top["rank"], 1);
    assert_eq!(top["collection_id"], cid.as_str());
    assert!(top["scores"]["keyword"]["rank"] == 1);
    assert!(top["scores"]["vector"].is_null());
    // Offsets point into the document's text; highlights into the snippet.
    let snippet = top["snippet"].as_str().unwrap();
    let marked: Vec<String> = top["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            snippet
                .chars()
                .skip(r[0].as_u64().unwrap() as usize)
                .take((r[1].as_u64().unwrap() - r[0].as_u64().unwrap()) as usize)
                .collect()
        })
        .collect();
    assert!(
        marked.iter().any(|m| m.eq_ignore_ascii_case("annual")),
        "{marked:?}"
    );
    assert!(top["char_end"].as_u64() > top["char_start"].as_u64());

    let (_, res) = app
        .search(json!({"query": "two-factor authentication"}))
        .await;
    assert_eq!(filenames(&res)[0], "security.md");
    let (_, res) = app
        .post_json(
            &format!("/api/v1/collections/{cid}/search"),
            json!({"query": "refrigerator"}),
        )
        .await;
    assert_eq!(filenames(&res), vec!["kitchen.md"]);
    let (_, res) = app.search(json!({"query": "xylophone quantum"})).await;
    assert!(res["hits"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn search_bad_input_gets_the_envelope() {
    let app = spawn_app().await;
    let (cid, _) = seeded(&app, "h").await;
    for (body, code) in [
        (json!({"query": "  "}), "invalid_field"),
        (json!({"query": "x", "top_k": 0}), "invalid_field"),
        (json!({"query": "x", "top_k": 1000}), "invalid_field"),
        (json!({"query": "x", "offset": 100000}), "invalid_field"),
        (json!({"query": "x", "mode": "magic"}), "invalid_field"),
        (json!({"query": "x", "group_by": "page"}), "invalid_field"),
        (
            json!({"query": "x", "fusion": "weighted", "vector_weight": 2}),
            "invalid_field",
        ),
        (json!({"query": "x", "fusion": "magic"}), "invalid_field"),
        (json!({"query": "x", "rrf_k": -1}), "invalid_field"),
        (
            json!({"query": "x", "rrf_k": 10, "vector_weight": 0.5}),
            "invalid_field",
        ),
        (
            json!({"query": "x", "fusion": "rrf", "vector_weight": 5}),
            "invalid_field",
        ),
        (
            json!({"query": "x", "fusion": "weighted", "rrf_k": 10}),
            "invalid_field",
        ),
        (
            json!({"query": "x", "collection_ids": ["nope"]}),
            "invalid_field",
        ),
        (
            json!({"query": "x", "metadata": {"year": {"between": 1}}}),
            "invalid_field",
        ),
        (json!({"query": "x", "colour": 1}), "invalid_json"),
        (json!({"q": "x"}), "invalid_json"),
        (
            json!({"query": "x", "mode": "vector"}),
            "embedder_not_configured",
        ),
    ] {
        let (s, b) = app.search(body.clone()).await;
        assert_eq!(b["error"]["code"], code, "{body} → {b}");
        assert_error(s, &b, 400, code);
    }
    let (s, b) = app
        .search(json!({"query": "x", "collection_ids": ["01a20000-0000-7000-8000-000000000000"]}))
        .await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = app
        .post_json(
            "/api/v1/collections/01a20000-0000-7000-8000-000000000000/search",
            json!({"query": "x"}),
        )
        .await;
    assert_error(s, &b, 404, "collection_not_found");
    let _ = cid;
    app.stop().await;
}

#[tokio::test]
async fn filters_pagination_and_deletes() {
    let app = spawn_app().await;
    let (a, ids) = seeded(&app, "a").await;
    let b = app.create_collection("b").await;
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
        .post(app.url(&format!("/api/v1/collections/{b}/documents")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.drain().await;

    let (_, all) = app.search(json!({"query": "annual leave"})).await;
    let names = filenames(&all);
    assert!(
        names.contains(&"leave.md".to_owned()) && names.contains(&"budget.md".to_owned()),
        "{names:?}"
    );
    let (_, only_b) = app
        .search(json!({"query": "annual leave", "collection_ids": [b]}))
        .await;
    assert_eq!(filenames(&only_b), vec!["budget.md"]);
    let (_, by_meta) = app.search(json!({"query": "annual leave", "metadata": {"team": "finance", "year": {"gte": 2020}}})).await;
    assert_eq!(filenames(&by_meta), vec!["budget.md"]);
    let (_, none) = app
        .search(json!({"query": "annual leave", "metadata": {"year": {"lt": 2020}}}))
        .await;
    assert!(none["hits"].as_array().unwrap().is_empty());
    let (_, by_doc) = app
        .search(json!({"query": "annual leave", "document_ids": [ids[0]]}))
        .await;
    let by_doc = filenames(&by_doc);
    assert!(
        !by_doc.is_empty() && by_doc.iter().all(|f| f == "leave.md"),
        "{by_doc:?}"
    );
    let (_, future) = app
        .search(json!({"query": "annual leave", "created_after": "2999-01-01T00:00:00Z"}))
        .await;
    assert!(future["hits"].as_array().unwrap().is_empty());

    // Pagination: pages of one, no overlaps.
    let (_, p1) = app
        .search(json!({"query": "annual leave", "top_k": 1}))
        .await;
    assert_eq!(p1["next_offset"], 1);
    let (_, p2) = app
        .search(json!({"query": "annual leave", "top_k": 1, "offset": 1}))
        .await;
    assert_eq!(p2["hits"][0]["rank"], 2);
    assert_ne!(p1["hits"][0]["chunk_id"], p2["hits"][0]["chunk_id"]);

    // A deleted document never comes back.
    let (s, _) = app.delete(&format!("/api/v1/documents/{}", ids[0])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, after) = app
        .search(json!({"query": "annual leave sick doctor", "top_k": 50}))
        .await;
    assert!(
        !filenames(&after).contains(&"leave.md".to_owned()),
        "{after}"
    );
    // A deleted collection's documents never come back either.
    let (s, _) = app.delete(&format!("/api/v1/collections/{b}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, after) = app.search(json!({"query": "budget finance"})).await;
    assert!(after["hits"].as_array().unwrap().is_empty(), "{after}");
    let _ = a;
    app.stop().await;
}

#[tokio::test]
async fn restart_gives_the_same_results() {
    let app = spawn_app_with(|c| {
        embedder(c, true);
    })
    .await;
    seeded(&app, "h").await;
    let q = json!({"query": "who approves business travel", "top_k": 4});
    let (_, before) = app.search(q.clone()).await;
    assert!(!before["hits"].as_array().unwrap().is_empty());
    let dir = app.stop_keep_dir().await;
    let app = spawn_app_in(dir, |c| {
        embedder(c, true);
    })
    .await;
    let (_, after) = app.search(q).await;
    let ids = |v: &Value| {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["chunk_id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&before), ids(&after));
    assert_eq!(before["mode"], after["mode"]);
    app.stop().await;
}

#[tokio::test]
async fn hybrid_search_with_the_local_model() {
    let Some(app) = spawn_app_with_model(|_| {}).await else {
        return;
    };
    let (cid, _) = seeded(&app, "h").await;
    let (_, coll) = app.get(&format!("/api/v1/collections/{cid}")).await;
    assert_eq!(
        coll["embedding_model"],
        "sentence-transformers/all-MiniLM-L6-v2"
    );
    assert_eq!(coll["embedding_dim"], 384);
    // No shared words with the answer: only the vectors can find it.
    let (s, res) = app
        .search(json!({"query": "vacation entitlement", "mode": "vector", "top_k": 1}))
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert_eq!(filenames(&res), vec!["leave.md"]);
    let (_, res) = app
        .search(json!({"query": "vacation entitlement", "explain": true}))
        .await;
    assert_eq!(res["mode"], "hybrid");
    assert_eq!(res["fusion"], "weighted", "the default fusion");
    assert_eq!(filenames(&res)[0], "leave.md");
    assert!(
        res["hits"][0]["scores"]["vector"]["score"]
            .as_f64()
            .unwrap()
            > 0.2
    );
    // Reciprocal rank fusion on request: a hit's score is Σ 1 / (k + rank) over its ranks.
    for (body, k) in [
        (
            json!({"query": "annual leave days", "fusion": "rrf", "explain": true}),
            60.0,
        ),
        (
            json!({"query": "annual leave days", "rrf_k": 10, "explain": true}),
            10.0,
        ),
    ] {
        let (s, res) = app.search(body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{res}");
        assert_eq!(res["fusion"], "rrf", "{body}");
        for h in res["hits"].as_array().unwrap() {
            let part = |which: &str| {
                h["scores"][which]["rank"]
                    .as_f64()
                    .map_or(0.0, |r| 1.0 / (k + r))
            };
            let want = part("keyword") + part("vector");
            let got = h["score"].as_f64().unwrap();
            assert!((got - want).abs() < 1e-6, "{body}: {got} ≠ {want} in {h}");
        }
    }
    let (_, res) = app
        .search(json!({"query": "annual leave days", "vector_weight": 1.0, "explain": true}))
        .await;
    assert_eq!(res["fusion"], "weighted");
    let (_, res) = app
        .search(json!({"query": "annual leave days", "mode": "keyword"}))
        .await;
    assert!(res["fusion"].is_null(), "{res}");
    let (_, ans) = app
        .post_json(
            "/api/v1/ask",
            json!({"question": "How long can I take off sick?"}),
        )
        .await;
    assert_eq!(ans["found"], true, "{ans}");
    assert_eq!(ans["citations"][0]["filename"], "leave.md");
    app.stop().await;
}

#[tokio::test]
async fn fused_scores_stay_in_their_documented_range() {
    let app = spawn_app_with(|c| {
        embedder(c, true);
    })
    .await;
    let cid = app.create_collection("range").await;
    // Forty notes alike and one that also holds a rare word: its BM25 score lies far above
    // the mean + 3σ of the others, the top of weighted fusion's normalisation.
    for i in 0..40 {
        let text = format!("# Note {i}\n\nThe office calendar for week {i} lists the rooms.");
        app.upload_ok(&cid, &format!("note-{i}.md"), text.as_bytes())
            .await;
    }
    app.upload_ok(
        &cid,
        "zebra.md",
        b"# Zebra\n\nThe zebra crossing outside the office is on the calendar for repainting.",
    )
    .await;
    app.drain().await;
    let query = "zebra office calendar";
    let cases = [
        (json!({"query": query, "top_k": 50}), 1.0),
        (json!({"query": query, "top_k": 50, "mode": "keyword"}), 1.0),
        (
            json!({"query": query, "top_k": 50, "group_by": "document"}),
            1.0,
        ),
        (
            json!({"query": query, "top_k": 50, "vector_weight": 0.2}),
            1.0,
        ),
        (
            json!({"query": query, "top_k": 50, "fusion": "rrf"}),
            2.0 / 61.0,
        ),
        (
            json!({"query": query, "top_k": 50, "rrf_k": 1, "group_by": "document"}),
            1.0,
        ),
    ];
    for (body, max) in cases {
        let (s, res) = app.search(body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{res}");
        let hits = res["hits"].as_array().unwrap();
        assert!(hits.len() > 20, "{body}: {res}");
        assert_eq!(hits[0]["filename"], "zebra.md", "{body}");
        for h in hits {
            let score = h["score"].as_f64().unwrap();
            assert!(
                (0.0..=max + 1e-6).contains(&score),
                "{body}: score {score} outside 0..={max}: {h}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_configured_fusion_is_the_default() {
    let Some(app) = spawn_app_with_model(|c| {
        c.search.fusion = docent_config::FusionKind::Rrf;
        c.search.rrf_k = 20.0;
    })
    .await
    else {
        return;
    };
    seeded(&app, "h").await;
    let (s, res) = app
        .search(json!({"query": "annual leave days", "explain": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert_eq!(res["fusion"], "rrf", "{res}");
    let top = &res["hits"][0];
    let want: f64 = ["keyword", "vector"]
        .iter()
        .filter_map(|w| top["scores"][*w]["rank"].as_f64())
        .map(|r| 1.0 / (20.0 + r))
        .sum();
    assert!(
        (top["score"].as_f64().unwrap() - want).abs() < 1e-6,
        "{top}"
    );
    let (_, res) = app
        .search(json!({"query": "annual leave days", "fusion": "weighted"}))
        .await;
    assert_eq!(res["fusion"], "weighted", "a request overrides the default");
    app.stop().await;
}

#[tokio::test]
async fn extractive_answers_cite_exact_spans() {
    let app = spawn_app().await;
    let (_, ids) = seeded(&app, "h").await;
    let (s, ans) = app
        .post_json(
            "/api/v1/ask",
            json!({"question": "When does the office kitchen close?"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ans}");
    assert_eq!(ans["found"], true);
    assert_eq!(ans["mode"], "extractive");
    let c = &ans["citations"][0];
    assert_eq!(c["filename"], "kitchen.md");
    assert_eq!(c["quote"], "The office kitchen closes at 6pm.");
    assert!(ans["answer"].as_str().unwrap().contains("6pm. [1]"));
    // The span indexes the document's extracted text exactly.
    let (_, chunks) = app
        .get(&format!("/api/v1/documents/{}/chunks", ids[2]))
        .await;
    let chunk = &chunks["items"][0];
    let text: Vec<char> = chunk["text"].as_str().unwrap().chars().collect();
    let base = chunk["char_start"].as_u64().unwrap();
    let (a, b) = (
        c["char_start"].as_u64().unwrap() - base,
        c["char_end"].as_u64().unwrap() - base,
    );
    assert_eq!(
        text[a as usize..b as usize].iter().collect::<String>(),
        c["quote"].as_str().unwrap()
    );

    let (_, none) = app
        .post_json(
            "/api/v1/ask",
            json!({"question": "What is the capital of Mongolia?"}),
        )
        .await;
    assert_eq!(none["found"], false, "{none}");
    assert!(none["citations"].as_array().unwrap().is_empty());
    let (s, b) = app
        .post_json("/api/v1/ask", json!({"query": "wrong field"}))
        .await;
    assert_error(s, &b, 400, "invalid_json");
    app.stop().await;
}

#[tokio::test]
async fn summaries_are_extractive_cached_and_validated() {
    let app = spawn_app().await;
    let cid = app.create_collection("s").await;
    let mut text = String::from("# Report\n\n");
    for i in 0..12 {
        text.push_str(&format!(
            "Finding {i}: the committee reviewed the annual budget and found issue number {i}. "
        ));
    }
    text.push_str("\n\nUnrelated: the parking lot was repainted blue.\n");
    let did = app.upload_ok(&cid, "report.md", text.as_bytes()).await;
    let pending = app
        .upload_ok(&cid, "later.md", b"# Later\n\nNot processed yet.")
        .await;
    let (s, b) = app
        .get(&format!("/api/v1/documents/{pending}/summary"))
        .await;
    assert_error(s, &b, 409, "document_state_conflict");
    app.drain().await;

    let (s, sum) = app
        .get(&format!("/api/v1/documents/{did}/summary?length=3"))
        .await;
    assert_eq!(s, StatusCode::OK, "{sum}");
    assert_eq!(sum["method"], "tfidf-centroid");
    let sents = sum["sentences"].as_array().unwrap();
    assert_eq!(sents.len(), 3);
    assert!(
        sents
            .iter()
            .all(|x| x["text"].as_str().unwrap().contains("budget")),
        "central sentences: {sum}"
    );
    let starts: Vec<u64> = sents
        .iter()
        .map(|x| x["char_start"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "document order");
    let (_, again) = app
        .get(&format!("/api/v1/documents/{did}/summary?length=3"))
        .await;
    assert_eq!(again, sum, "cached");
    for q in ["length=0", "length=99", "length=x", "size=3"] {
        let (s, b) = app
            .get(&format!("/api/v1/documents/{did}/summary?{q}"))
            .await;
        assert_error(s, &b, 400, "invalid_query");
    }
    let (s, b) = app
        .get("/api/v1/documents/01a20000-0000-7000-8000-000000000000/summary")
        .await;
    assert_error(s, &b, 404, "document_not_found");
    app.stop().await;
}

#[tokio::test]
async fn long_documents_are_summarized_by_a_task() {
    let app = spawn_app_with(|c| c.ingest.chunk_chars = 200).await;
    let cid = app.create_collection("long").await;
    let did = app.upload_ok(&cid, "long.md", &markdown_doc(7, 40)).await;
    app.drain().await;
    let (s, first) = app.get(&format!("/api/v1/documents/{did}/summary")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["task"]["kind"], "summarize_document");
    let (s, same) = app.get(&format!("/api/v1/documents/{did}/summary")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(
        same["task"]["id"], first["task"]["id"],
        "one task per summary"
    );
    app.drain().await;
    let (s, done) = app.get(&format!("/api/v1/documents/{did}/summary")).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["sentences"].as_array().unwrap().len(), 5);
    app.stop().await;
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
        /// Whatever the documents and the query, a collection filter never returns another
        /// collection's chunks.
        #[test]
        fn collection_filter_never_leaks(assign in proptest::collection::vec(0usize..3, 4..10), q in 0usize..4) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let app = spawn_app().await;
                let mut colls = Vec::new();
                for i in 0..3 {
                    colls.push(app.create_collection(&format!("c{i}")).await);
                }
                let mut owner = std::collections::HashMap::new();
                for (i, c) in assign.iter().enumerate() {
                    let (_, text) = DOCS[i % DOCS.len()];
                    let id = app.upload_ok(&colls[*c], &format!("d{i}.md"), format!("{text}\n\nCopy {i}.").as_bytes()).await;
                    owner.insert(id, colls[*c].clone());
                }
                app.drain().await;
                let query = ["annual leave", "passwords accounts", "kitchen food", "travel manager flights"][q];
                for c in &colls {
                    let (_, res) = app.search(json!({"query": query, "collection_ids": [c], "top_k": 50})).await;
                    for h in res["hits"].as_array().unwrap() {
                        assert_eq!(h["collection_id"], c.as_str());
                        assert_eq!(&owner[h["document_id"].as_str().unwrap()], c);
                    }
                }
                app.stop().await;
            });
        }
    }
}

#[tokio::test]
async fn group_by_document_gives_one_hit_per_document() {
    let app = spawn_app().await;
    let cid = app.create_collection("long").await;
    // Many sections that all mention the query terms: by chunk, one document fills the page.
    let long: String = (0..40)
        .map(|i| {
            format!(
                "## Part {i}\n\nThe leave policy grants leave in part {i}. {}\n\n",
                "Filler words about the office. ".repeat(30)
            )
        })
        .collect();
    let long_id = app.upload_ok(&cid, "long.md", long.as_bytes()).await;
    let short_id = app
        .upload_ok(
            &cid,
            "short.md",
            b"# Leave\n\nAnnual leave policy: 25 days.",
        )
        .await;
    app.drain().await;

    let (s, by_chunk) = app
        .search(json!({"query": "leave policy", "top_k": 10}))
        .await;
    assert_eq!(s, StatusCode::OK, "{by_chunk}");
    let docs: Vec<&str> = by_chunk["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["document_id"].as_str().unwrap())
        .collect();
    assert!(
        docs.iter().filter(|d| **d == long_id).count() > 1,
        "by chunk, the long document has several hits: {docs:?}"
    );

    let (s, by_doc) = app
        .search(
            json!({"query": "leave policy", "top_k": 10, "group_by": "document", "explain": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{by_doc}");
    let hits = by_doc["hits"].as_array().unwrap();
    let mut docs: Vec<&str> = hits
        .iter()
        .map(|h| h["document_id"].as_str().unwrap())
        .collect();
    assert_eq!(hits.len(), 2, "one hit per document: {by_doc}");
    docs.sort_unstable();
    let mut want = vec![long_id.as_str(), short_id.as_str()];
    want.sort_unstable();
    assert_eq!(docs, want);
    assert_eq!(
        hits[0]["scores"]["keyword"]["rank"], 1,
        "ranks among documents"
    );
    assert_eq!(hits[1]["scores"]["keyword"]["rank"], 2);
    assert!(by_doc["next_offset"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn collections_search_in_their_own_language() {
    let app = spawn_app().await;
    let (s, de) = app
        .post_json(
            "/api/v1/collections",
            json!({"name": "akten", "language": "de"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{de}");
    assert_eq!(de["language"], "de");
    let (s, en) = app
        .post_json("/api/v1/collections", json!({"name": "files"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(en["language"], "en", "English by default");
    let (s, b) = app
        .post_json(
            "/api/v1/collections",
            json!({"name": "x", "language": "klingon"}),
        )
        .await;
    assert_error(s, &b, 400, "invalid_field");
    assert!(b["error"]["message"].as_str().unwrap().contains("language"));
    let (s, b) = app
        .patch_json(
            &format!("/api/v1/collections/{}", de["id"].as_str().unwrap()),
            json!({"language": "en"}),
        )
        .await;
    assert_error(s, &b, 400, "invalid_json");

    let de_doc = app
        .upload_ok(
            de["id"].as_str().unwrap(),
            "haeuser.md",
            "# Die Häuser\n\nDie Häuser der Stadt wurden renoviert.".as_bytes(),
        )
        .await;
    app.upload_ok(
        en["id"].as_str().unwrap(),
        "houses.md",
        b"# Houses\n\nThe houses of the town were renovated.",
    )
    .await;
    app.drain().await;
    // German stemming finds "Häuser" from "Haus"; German stop words alone find nothing.
    let (s, res) = app.search(json!({"query": "Haus"})).await;
    assert_eq!(s, StatusCode::OK, "{res}");
    assert_eq!(res["hits"].as_array().unwrap().len(), 1, "{res}");
    assert_eq!(res["hits"][0]["document_id"], de_doc.as_str());
    let (_, res) = app.search(json!({"query": "der die"})).await;
    assert!(res["hits"].as_array().unwrap().is_empty(), "{res}");
    let (_, res) = app.search(json!({"query": "house renovating"})).await;
    assert_eq!(res["hits"][0]["filename"], "houses.md");
    app.stop().await;
}
