//! Traces and ingest metrics for operations.
//!
//! - One upload is one connected trace: the real binary exports over OTLP/HTTP (protobuf) to a
//!   collector stand-in started here (`POST /v1/traces`, bodies decoded with the
//!   `opentelemetry-proto` types); the HTTP request, the enqueue, the worker's task span (it
//!   ran from the queue, in another task of the process, through the task's stored trace
//!   context), its extract / chunk / embed / index stages and the model call share one trace id,
//!   and every span's parent is in that trace. The last spans arrive through the flush on
//!   SIGTERM.
//! - The ingest series on `/metrics`: the oldest runnable task's age, the stage histograms,
//!   documents and record rows by outcome (a refused row and a failed document counted as
//!   failed).

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{StatusCode as HttpStatus, header};
use axum::routing::post;
use common::servers::free_port;
use common::{openai_embedder, spawn_app_with};
use docent_fake_openai::{FakeConfig, FakeServer, Faults};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::Value;

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    attrs: HashMap<String, String>,
}

/// An OTLP/HTTP collector stand-in: decodes every export request and keeps its spans.
struct Collector {
    port: u16,
    spans: Arc<Mutex<Vec<Received>>>,
    requests: Arc<Mutex<Vec<Option<String>>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let requests: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (kept, seen) = (spans.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let (kept, seen) = (kept.clone(), seen.clone());
                async move {
                    let content_type = headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(
                        headers
                            .get("x-collector-key")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    );
                    if content_type != "application/x-protobuf" {
                        return (HttpStatus::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                    }
                    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                        return (HttpStatus::BAD_REQUEST, Vec::new());
                    };
                    kept.lock().unwrap().extend(received(req));
                    let ok = ExportTraceServiceResponse::default().encode_to_vec();
                    (HttpStatus::OK, ok)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            port,
            spans,
            requests,
        }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn received(req: ExportTraceServiceRequest) -> Vec<Received> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Received {
                    service: service.clone(),
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent: s.parent_span_id,
                    name: s.name,
                    attrs: s
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect(),
                });
            }
        }
    }
    out
}

async fn wait_for(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < within, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[allow(unsafe_code)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_is_one_connected_trace_from_request_to_model_call() {
    let collector = Collector::start().await;
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_docent"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DOCENT__DATA_DIR", dir.path())
        .env("DOCENT__QUEUE__POLL_INTERVAL", "50ms")
        // Logs quiet: trace export does not depend on the log level.
        .env("DOCENT__LOG__LEVEL", "warn")
        .env("DOCENT__AUTH__MODE", "none")
        .env("DOCENT__EMBEDDER__KIND", "openai")
        .env("DOCENT__EMBEDDER__BASE_URL", fake.base_url())
        .env("DOCENT__EMBEDDER__MODEL", docent_fake_openai::EMBED_MODEL)
        .env("DOCENT__EMBEDDER__DIMENSION", "32")
        .env(
            "DOCENT__TELEMETRY__OTLP__ENDPOINT",
            format!("http://127.0.0.1:{}", collector.port),
        )
        .env("DOCENT__TELEMETRY__OTLP__SAMPLE_RATIO", "1.0")
        .env("DOCENT__TELEMETRY__OTLP__SERVICE_NAME", "docent-trace-test")
        .env("DOCENT__TELEMETRY__OTLP__HEADERS__X-COLLECTOR-KEY", "k-123")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("DOCENT_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docent starts");
    let client = reqwest::Client::new();
    wait_for("docent is healthy", Duration::from_secs(30), async || {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let coll: Value = client
        .post(format!("{base}/api/v1/collections"))
        .json(&serde_json::json!({ "name": "traced" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = coll["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(common::markdown_doc(1, 3)).file_name("notes.md"),
    );
    let uploaded = client
        .post(format!("{base}/api/v1/collections/{cid}/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
    let doc: Value = uploaded.json().await.unwrap();
    let doc_id = doc["document"]["id"].as_str().unwrap().to_owned();
    wait_for(
        "the document is processed",
        Duration::from_secs(60),
        async || {
            let d: Value = client
                .get(format!("{base}/api/v1/documents/{doc_id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_ne!(d["status"], "failed", "{d}");
            d["status"] == "completed"
        },
    )
    .await;
    // SIGTERM: the process flushes the spans it still buffers before it exits.
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(!log.contains("k-123"), "a header secret was logged: {log}");

    let spans = collector.spans();
    assert!(
        collector
            .requests
            .lock()
            .unwrap()
            .iter()
            .all(|k| k.as_deref() == Some("k-123")),
        "every export carries the configured header"
    );
    assert!(spans.iter().all(|s| s.service == "docent-trace-test"));
    // The upload's request span is the root of its trace.
    let upload = spans
        .iter()
        .find(|s| {
            s.name == "request"
                && s.attrs.get("method").map(String::as_str) == Some("POST")
                && s.attrs
                    .get("uri")
                    .is_some_and(|u| u.ends_with(&format!("/collections/{cid}/documents")))
        })
        .unwrap_or_else(|| panic!("no upload request span among {spans:#?}"));
    assert!(upload.parent.is_empty(), "the request span is a root");
    let trace: Vec<&Received> = spans
        .iter()
        .filter(|s| s.trace_id == upload.trace_id)
        .collect();
    let by_id: HashMap<&[u8], &Received> =
        trace.iter().map(|s| (s.span_id.as_slice(), *s)).collect();
    let one = |pred: &dyn Fn(&Received) -> bool, what: &str| -> &Received {
        let found: Vec<&&Received> = trace.iter().filter(|s| pred(s)).collect();
        assert_eq!(found.len(), 1, "one {what} span in the trace: {trace:#?}");
        found[0]
    };
    let ancestors = |s: &Received| -> Vec<String> {
        let mut names = Vec::new();
        let mut at = s;
        while !at.parent.is_empty() {
            at = by_id
                .get(at.parent.as_slice())
                .unwrap_or_else(|| panic!("{}'s parent is not in the trace: {trace:#?}", at.name));
            names.push(at.name.clone());
        }
        names
    };
    // Connected: every span but the request has its parent in the same trace.
    for s in &trace {
        if s.span_id != upload.span_id {
            ancestors(s);
        }
    }
    let enqueue = one(&|s| s.name == "enqueue", "enqueue");
    assert_eq!(
        enqueue.attrs.get("kind").map(String::as_str),
        Some("ingest_document")
    );
    assert_eq!(ancestors(enqueue).last().unwrap(), "request");
    let task = one(&|s| s.name == "task", "task");
    assert_eq!(
        task.parent, enqueue.span_id,
        "the task continues the enqueue"
    );
    for stage in ["extract", "chunk", "embed", "index"] {
        let s = one(
            &|s| s.attrs.get("stage").map(String::as_str) == Some(stage),
            stage,
        );
        assert_eq!(s.name, stage);
        assert_eq!(s.parent, task.span_id, "{stage} is a stage of the task");
    }
    let embed_stage = one(
        &|s| s.attrs.get("stage").map(String::as_str) == Some("embed"),
        "embed stage",
    );
    let model_call = trace
        .iter()
        .find(|s| s.parent == embed_stage.span_id && s.attrs.contains_key("model"))
        .unwrap_or_else(|| panic!("no model call under the embed stage: {trace:#?}"));
    assert_eq!(
        model_call.attrs["model"],
        docent_fake_openai::EMBED_MODEL,
        "{model_call:?}"
    );
    assert!(
        spans
            .iter()
            .filter(|s| s.name == "task")
            .all(|s| s.trace_id == upload.trace_id),
        "the task span is in no other trace"
    );
    drop(fake);
}

/// The value of the series `name` with exactly `labels` (Prometheus text format), if present.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    metrics.lines().find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == key).then(|| v.parse().unwrap())
    })
}

async fn scrape(app: &common::TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_series_count_stages_documents_and_rows_by_outcome() {
    let fake = FakeServer::start(FakeConfig {
        dimension: 32,
        faults: Faults {
            reject_inputs_containing: Some("POISON".into()),
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.base_url();
    let app = spawn_app_with(|c| openai_embedder(c, url, 10)).await;
    let cid = app.create_collection("measured").await;

    // A task waits: the oldest runnable task's age grows from its enqueue.
    let doc = app
        .upload_ok(&cid, "notes.md", &common::markdown_doc(2, 3))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = scrape(&app).await;
    let age = sample(&m, "docent_queue_oldest_task_age_seconds", "").expect(&m);
    assert!((0.3..60.0).contains(&age), "oldest task age {age}");
    app.drain().await;
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "completed", "{d}");
    let m = scrape(&app).await;
    assert_eq!(
        sample(&m, "docent_queue_oldest_task_age_seconds", ""),
        Some(0.0),
        "nothing waits after the drain"
    );
    for stage in ["extract", "chunk", "embed", "index"] {
        let n = sample(
            &m,
            "docent_ingest_stage_duration_seconds_count",
            &format!("stage=\"{stage}\""),
        )
        .unwrap_or_else(|| panic!("no {stage} histogram in {m}"));
        assert!(n >= 1.0, "{stage}: {n}");
        let sum = sample(
            &m,
            "docent_ingest_stage_duration_seconds_sum",
            &format!("stage=\"{stage}\""),
        )
        .unwrap();
        assert!((0.0..60.0).contains(&sum), "{stage} took {sum}s");
    }
    assert!(
        m.contains("docent_ingest_stage_duration_seconds_bucket{stage=\"embed\",le=\"0.005\"}")
    );
    let docs = |m: &str, outcome: &str| {
        sample(
            m,
            "docent_ingest_documents_total",
            &format!("outcome=\"{outcome}\""),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(docs(&m, "succeeded"), 1.0, "{m}");
    assert_eq!(docs(&m, "failed"), 0.0, "{m}");

    // A record file with one refused row: 24 rows stored, 1 failed.
    let mut csv = String::from("id,text\n");
    for i in 0..25 {
        let text = if i == 7 { "POISON row" } else { "a fine row" };
        csv.push_str(&format!("{i},{text} {i}\n"));
    }
    let doc = app.upload_ok(&cid, "rows.csv", csv.as_bytes()).await;
    app.drain().await;
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "partially_completed", "{d}");
    let m = scrape(&app).await;
    let rows = |outcome: &str| {
        sample(
            &m,
            "docent_ingest_rows_total",
            &format!("outcome=\"{outcome}\""),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(rows("succeeded"), 24.0, "{m}");
    assert_eq!(rows("failed"), 1.0, "{m}");
    assert_eq!(docs(&m, "succeeded"), 2.0, "a partial success is a success");

    // A document that cannot be read fails, and counts as failed.
    let doc = app
        .upload_ok(&cid, "broken.pdf", b"%PDF-1.7\nnot really a pdf at all\n")
        .await;
    app.drain().await;
    let (_, d) = app.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(d["status"], "failed", "{d}");
    let m = scrape(&app).await;
    assert_eq!(docs(&m, "failed"), 1.0, "{m}");
    assert_eq!(docs(&m, "succeeded"), 2.0, "{m}");
    app.stop().await;
    drop(fake);
}
