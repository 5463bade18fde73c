//! Extractive answers and summaries over a small question-answering set: six documents of
//! different kinds (`tests/fixtures/qa/`: a Markdown policy with headings, an e-mail, an HTML
//! FAQ, a CSV of records, a plain-text report, a Markdown page with a table) and 29 questions,
//! each with the sentence (or record field, or table row) that answers it. Everything runs
//! through the real upload → extract → chunk → index → `POST /api/v1/ask` path, with the local
//! embedding model when it is available and by keywords alone in any case.
//!
//! The answers must quote answer sentences, never a heading or another label: a heading is
//! context for the sentences under it, not an answer.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Lines of the plain-text report that are labels, not sentences (plain text has no
/// structural headings for the chunks to carry).
const TEXT_LABELS: &[&str] = &["INCIDENT REPORT", "Summary", "Cause", "Actions"];

struct Case {
    file: String,
    question: String,
    answer: String,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qa")
}

fn cases() -> Vec<Case> {
    let raw = std::fs::read(fixtures().join("questions.json")).expect("questions.json");
    let list: Vec<Value> = serde_json::from_slice(&raw).expect("questions.json parses");
    list.into_iter()
        .map(|c| Case {
            file: c["file"].as_str().unwrap().to_owned(),
            question: c["question"].as_str().unwrap().to_owned(),
            answer: c["answer"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// Whitespace runs as one space (a quote keeps the line breaks of the document).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The collection with every fixture, processed; the document ids by file name.
async fn seeded(app: &TestApp) -> HashMap<String, String> {
    let cid = app.create_collection("qa").await;
    let mut ids = HashMap::new();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "questions.json" {
            continue;
        }
        let id = app
            .upload_ok(&cid, &name, &std::fs::read(&path).unwrap())
            .await;
        ids.insert(name, id);
    }
    app.drain().await;
    for (name, id) in &ids {
        let (_, doc) = app.get(&format!("/api/v1/documents/{id}")).await;
        assert_eq!(doc["status"], "completed", "{name}: {doc}");
    }
    ids
}

/// Every heading the chunks of the documents carry, and the report's labels.
async fn headings(app: &TestApp, ids: &HashMap<String, String>) -> HashSet<String> {
    let mut out: HashSet<String> = TEXT_LABELS.iter().map(|s| (*s).to_owned()).collect();
    for id in ids.values() {
        let (status, chunks) = app.get(&format!("/api/v1/documents/{id}/chunks")).await;
        assert_eq!(status, StatusCode::OK, "{chunks}");
        for c in chunks["items"].as_array().unwrap() {
            for h in c["heading_path"].as_array().unwrap() {
                out.insert(squash(h.as_str().unwrap()));
            }
        }
    }
    out
}

struct Score {
    questions: usize,
    /// The expected sentence is the answer's first citation.
    first: usize,
    /// The expected sentence is one of the answer's citations.
    cited: usize,
    /// Citations quoting a heading or label.
    headings: Vec<String>,
    /// The first citation for the sick-leave question.
    sick_leave: Option<String>,
    /// Summary sentences that are a heading or label.
    summary_headings: Vec<String>,
}

impl Score {
    /// No heading quoted, by answers or summaries; the sick-leave question answered by its
    /// sentence; at least `first` answers led and `cited` answers holding their sentence.
    fn check(&self, first: usize, cited: usize) {
        assert!(self.headings.is_empty(), "{:#?}", self.headings);
        assert!(
            self.summary_headings.is_empty(),
            "{:#?}",
            self.summary_headings
        );
        assert_eq!(
            self.sick_leave.as_deref(),
            Some("Unlimited, with a doctor note.")
        );
        let n = self.questions;
        assert!(self.first >= first, "{} of {n} first", self.first);
        assert!(self.cited >= cited, "{} of {n} cited", self.cited);
    }
}

async fn evaluate(app: &TestApp, label: &str) -> Score {
    let ids = seeded(app).await;
    let headings = headings(app, &ids).await;
    let cases = cases();
    let mut score = Score {
        questions: cases.len(),
        first: 0,
        cited: 0,
        headings: Vec::new(),
        sick_leave: None,
        summary_headings: Vec::new(),
    };
    for case in &cases {
        let (status, ans) = app
            .post_json("/api/v1/ask", json!({ "question": case.question }))
            .await;
        assert_eq!(status, StatusCode::OK, "{ans}");
        let quotes: Vec<(String, String)> = ans["citations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["filename"].as_str().unwrap().to_owned(),
                    squash(c["quote"].as_str().unwrap()),
                )
            })
            .collect();
        let right = |q: &(String, String)| q.0 == case.file && q.1 == case.answer;
        let first = quotes.first().is_some_and(right);
        score.first += usize::from(first);
        score.cited += usize::from(quotes.iter().any(right));
        for (_, q) in &quotes {
            if headings.contains(q) {
                score.headings.push(format!("{:?} → {q:?}", case.question));
            }
        }
        if case.question == "Is sick leave limited?" {
            score.sick_leave = quotes.first().map(|q| q.1.clone());
        }
        eprintln!(
            "[{label}] {} {:?} → {}",
            if first { "ok  " } else { "MISS" },
            case.question,
            ans["answer"]
        );
    }
    for (name, id) in &ids {
        let (status, sum) = app
            .get(&format!("/api/v1/documents/{id}/summary?length=4"))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}: {sum}");
        let sentences = sum["sentences"].as_array().unwrap();
        assert!(!sentences.is_empty(), "{name}: {sum}");
        for s in sentences {
            let text = squash(s["text"].as_str().unwrap());
            if headings.contains(&text) {
                score.summary_headings.push(format!("{name} → {text:?}"));
            }
        }
        eprintln!("[{label}] summary of {name}: {}", sum["summary"]);
    }
    eprintln!(
        "[{label}] summary headings: {}; answer sentence first: {}/{} ({:.0}%), cited: {}/{}; heading citations: {}",
        score.summary_headings.len(),
        score.first,
        score.questions,
        100.0 * score.first as f64 / score.questions as f64,
        score.cited,
        score.questions,
        score.headings.len()
    );
    score
}

#[tokio::test]
async fn answers_quote_answer_sentences_with_the_model() {
    let Some(app) = spawn_app_with_model(|_| {}).await else {
        return;
    };
    // Measured: 27 of 29 first, 29 cited (13 and 16 while headings were quoted).
    evaluate(&app, "model").await.check(26, 28);
    app.stop().await;
}

#[tokio::test]
async fn answers_quote_answer_sentences_by_keywords() {
    let app = spawn_app().await;
    // Measured: 28 of 29 first, 28 cited (12 and 14 while headings were quoted).
    evaluate(&app, "keywords").await.check(26, 26);
    app.stop().await;
}
