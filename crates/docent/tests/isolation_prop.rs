//! Property: with two tenants doing randomly interleaved work (collections, uploads, processing,
//! deletions, API keys), neither ever sees the other's collections, documents, chunks, search
//! or answer hits, tasks or keys — through its owner's session or through its API keys.
//!
//! Each tenant writes its own marker words into its documents, so any of the other tenant's
//! markers in an answer is a leak, as is any of its ids.

mod common;

use common::{TestApp, builtin_auth as builtin, spawn_app_with};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
/// Marker stems: tenant 0 writes `alpha…`, tenant 1 `omega…`.
const MARKERS: [&str; 2] = ["alpha", "omega"];

#[derive(Debug, Clone)]
enum Op {
    CreateCollection,
    Upload { collection: usize, word: u8 },
    Drain,
    DeleteDocument { index: usize },
    CreateKey,
    RevokeKey { index: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::CreateCollection),
        4 => (any::<usize>(), 0u8..4).prop_map(|(collection, word)| Op::Upload { collection, word }),
        2 => Just(Op::Drain),
        1 => any::<usize>().prop_map(|index| Op::DeleteDocument { index }),
        1 => Just(Op::CreateKey),
        1 => any::<usize>().prop_map(|index| Op::RevokeKey { index }),
    ]
}

#[derive(Default)]
struct Tenant {
    token: String,
    collections: Vec<String>,
    documents: Vec<String>,
    tasks: Vec<String>,
    keys: Vec<(String, String)>,
}

impl Tenant {
    fn ids(&self) -> Vec<&str> {
        self.collections
            .iter()
            .chain(&self.documents)
            .chain(&self.tasks)
            .map(String::as_str)
            .chain(self.keys.iter().map(|(id, _)| id.as_str()))
            .collect()
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    (r.status(), r.text().await.unwrap_or_default())
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

async fn apply(app: &TestApp, tenants: &mut [Tenant; 2], who: usize, op: &Op) {
    let t = &mut tenants[who];
    let marker = MARKERS[who];
    match op {
        Op::CreateCollection => {
            let n = t.collections.len();
            let (s, b) = send(
                app,
                Method::POST,
                "/api/v1/collections",
                &t.token,
                Some(json!({ "name": format!("c{n}") })),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            t.collections
                .push(parse(&b)["id"].as_str().unwrap().to_owned());
        }
        Op::Upload { collection, word } => {
            if t.collections.is_empty() {
                return;
            }
            let c = &t.collections[collection % t.collections.len()];
            let n = t.documents.len();
            let text =
                format!("# {marker}{word} notes {n}\n\nThe {marker}{word} report number {n}.\n");
            let part =
                reqwest::multipart::Part::bytes(text.into_bytes()).file_name(format!("{n}.md"));
            let r = app
                .client
                .post(app.url(&format!("/api/v1/collections/{c}/documents")))
                .bearer_auth(&t.token)
                .multipart(reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let b: Value = r.json().await.unwrap();
            t.documents
                .push(b["document"]["id"].as_str().unwrap().to_owned());
            t.tasks.push(b["task"]["id"].as_str().unwrap().to_owned());
        }
        Op::Drain => {
            app.drain().await;
        }
        Op::DeleteDocument { index } => {
            if t.documents.is_empty() {
                return;
            }
            let d = t.documents[index % t.documents.len()].clone();
            let (s, b) = send(
                app,
                Method::DELETE,
                &format!("/api/v1/documents/{d}"),
                &t.token,
                None,
            )
            .await;
            assert!(
                s.is_success() || s == StatusCode::NOT_FOUND || s == StatusCode::CONFLICT,
                "{s} {b}"
            );
        }
        Op::CreateKey => {
            let n = t.keys.len();
            let (s, b) = send(
                app,
                Method::POST,
                "/api/v1/keys",
                &t.token,
                Some(json!({ "name": format!("k{n}"), "access": "read" })),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let b = parse(&b);
            t.keys.push((
                b["key"]["id"].as_str().unwrap().to_owned(),
                b["secret"].as_str().unwrap().to_owned(),
            ));
        }
        Op::RevokeKey { index } => {
            if t.keys.is_empty() {
                return;
            }
            let (id, _) = t.keys.remove(index % t.keys.len());
            let (s, b) = send(
                app,
                Method::DELETE,
                &format!("/api/v1/keys/{id}"),
                &t.token,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    }
}

/// Everything `who` can see (as owner and through each live key) holds nothing of the other.
async fn check_isolation(app: &TestApp, tenants: &[Tenant; 2], who: usize) -> Result<(), String> {
    let me = &tenants[who];
    let other = &tenants[1 - who];
    let foreign_marker = MARKERS[1 - who];
    let foreign_ids = other.ids();
    let mut credentials = vec![me.token.clone()];
    credentials.extend(me.keys.iter().map(|(_, secret)| secret.clone()));
    for cred in &credentials {
        let mut answers = Vec::new();
        for path in ["/api/v1/collections", "/api/v1/tasks", "/api/v1/keys"] {
            answers.push((
                path.to_owned(),
                send(app, Method::GET, path, cred, None).await,
            ));
        }
        for word in 0..4 {
            let q = format!("{foreign_marker}{word}");
            answers.push((
                format!("search {q}"),
                send(
                    app,
                    Method::POST,
                    "/api/v1/search",
                    cred,
                    Some(json!({ "query": q })),
                )
                .await,
            ));
            answers.push((
                format!("ask {q}"),
                send(
                    app,
                    Method::POST,
                    "/api/v1/ask",
                    cred,
                    Some(json!({ "question": format!("what is the {q} report?") })),
                )
                .await,
            ));
        }
        for d in &other.documents {
            for suffix in ["", "/content", "/chunks", "/summary"] {
                let path = format!("/api/v1/documents/{d}{suffix}");
                let (s, b) = send(app, Method::GET, &path, cred, None).await;
                if s != StatusCode::NOT_FOUND {
                    return Err(format!("{path}: {s} {b}"));
                }
            }
        }
        for c in &other.collections {
            let path = format!("/api/v1/collections/{c}/documents");
            let (s, b) = send(app, Method::GET, &path, cred, None).await;
            if s != StatusCode::NOT_FOUND {
                return Err(format!("{path}: {s} {b}"));
            }
        }
        for t in &other.tasks {
            let path = format!("/api/v1/tasks/{t}");
            let (s, b) = send(app, Method::GET, &path, cred, None).await;
            if s != StatusCode::NOT_FOUND {
                return Err(format!("{path}: {s} {b}"));
            }
        }
        for (what, (status, body)) in answers {
            if status.is_server_error() {
                return Err(format!("{what}: {status} {body}"));
            }
            if let Some(id) = foreign_ids.iter().find(|id| body.contains(*id)) {
                return Err(format!("{what}: the answer shows {id}: {body}"));
            }
            // Searches and answers may echo the query; nothing else may carry the marker.
            let mut v = parse(&body);
            if let Some(o) = v.as_object_mut() {
                o.remove("query");
                o.remove("question");
            }
            if v.to_string().contains(foreign_marker) {
                return Err(format!("{what}: the answer shows {foreign_marker}: {body}"));
            }
        }
    }
    Ok(())
}

async fn run_case(ops: Vec<(usize, Op)>) -> Result<(), TestCaseError> {
    let app = spawn_app_with(builtin).await;
    let mut tenants: [Tenant; 2] = Default::default();
    for (i, t) in tenants.iter_mut().enumerate() {
        let (s, b) = app
            .post_json(
                "/api/v1/auth/signup",
                json!({ "email": format!("tenant{i}@example.com"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        t.token = b["access_token"].as_str().unwrap().to_owned();
    }
    let mut result = Ok(());
    for (step, (who, op)) in ops.iter().enumerate() {
        apply(&app, &mut tenants, *who, op).await;
        for side in 0..2 {
            if let Err(e) = check_isolation(&app, &tenants, side).await {
                result = Err(TestCaseError::fail(format!(
                    "after step {step} ({op:?} by tenant {who}), tenant {side}: {e}"
                )));
                break;
            }
        }
        if result.is_err() {
            break;
        }
    }
    app.stop().await;
    result
}

#[test]
fn interleaved_tenants_never_see_each_other() {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 16,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = prop::collection::vec((0usize..2, op()), 4..14);
    runner
        .run(&strategy, |ops| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run_case(ops))
        })
        .unwrap();
}
