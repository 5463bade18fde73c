//! The AWS Lambda hosts (`docent lambda api|worker`), driven the way the Lambda runtime drives
//! them, with real event shapes (`tests/fixtures/lambda/`).
//!
//! - The API handler in process: an API Gateway REST (v1) event, an HTTP API (v2) event with
//!   cookies, a function URL event with a base64 body, a multipart upload through API Gateway
//!   (base64 in) and the original downloaded back (base64 out), the client's address from the
//!   event keying the rate limits, and a chat answer streamed as server-sent events.
//! - The SQS worker in process, over the SQS task queue on moto (`DOCENT_TEST_AWS_ENDPOINT`;
//!   skipped otherwise): records received from the queue as Lambda's poller receives them —
//!   a good record ingests its document, a poison one (no task) goes to the dead-letter queue,
//!   a duplicate runs nothing, and a deadline near now gives the task back before Lambda would
//!   stop the function, its record reported in `batchItemFailures`.
//! - The real binary (`docent lambda api`) against a faithful fake of the Lambda runtime API:
//!   it serves an invocation, reports a failed initialisation to `/init/error`, and its cold
//!   start (process start → first `/next`, with the embedding model loaded when available) is
//!   printed.

mod common;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use docent::lambda::{LambdaWorker, invoke_api, invoke_api_streaming, open_api};
use docent_config::{AuthMode, Config, QueueBackend, SqsQueueConfig};
use futures::StreamExt;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_docent");

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lambda")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// An invocation's context, its deadline `left` from now.
fn context(left: Duration) -> lambda_runtime::Context {
    let mut c = lambda_runtime::Context::default();
    c.request_id = uuid::Uuid::new_v4().to_string();
    c.deadline = (SystemTime::now() + left)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    c.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:docent".into();
    c
}

fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.server.run_workers = false;
    config.auth.mode = AuthMode::None;
    common::embedder(&mut config, false);
    config
}

/// The body of a Lambda HTTP response, decoded.
fn body_bytes(resp: &Value) -> Vec<u8> {
    let body = resp["body"].as_str().unwrap_or_default();
    if resp["isBase64Encoded"].as_bool().unwrap_or(false) {
        B64.decode(body).unwrap()
    } else {
        body.as_bytes().to_vec()
    }
}

fn body_json(resp: &Value) -> Value {
    serde_json::from_slice(&body_bytes(resp)).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

/// An HTTP API (v2) event for `method path` with a JSON body, from the fixture's shape.
fn v2_event(method: &str, path: &str, body: Option<Value>) -> Value {
    let mut e = fixture("apigw_http_v2.json");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    match body {
        Some(b) => e["body"] = json!(b.to_string()),
        None => {
            e["body"] = Value::Null;
            e["headers"]
                .as_object_mut()
                .unwrap()
                .remove("content-length");
        }
    }
    if let Some(len) = e["body"].as_str().map(str::len) {
        e["headers"]["content-length"] = json!(len.to_string());
    }
    e
}

async fn create_collection(router: &axum::Router, name: &str) -> String {
    let resp = invoke_api(
        router,
        v2_event("POST", "/api/v1/collections", Some(json!({"name": name}))),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 201, "{resp}");
    body_json(&resp)["id"].as_str().unwrap().to_owned()
}

/// A REST API (v1) event uploading `bytes` as `filename` into `collection`, multipart and
/// base64 encoded as API Gateway sends a binary media type.
fn upload_event(collection: &str, filename: &str, bytes: &[u8]) -> Value {
    let boundary = "----docentlambda7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: text/markdown\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let path = format!("/api/v1/collections/{collection}/documents");
    let mut e = fixture("apigw_rest_v1.json");
    e["httpMethod"] = json!("POST");
    e["path"] = json!(path);
    e["requestContext"]["httpMethod"] = json!("POST");
    e["requestContext"]["path"] = json!(format!("/prod{path}"));
    e["pathParameters"]["proxy"] = json!(path.trim_start_matches('/'));
    e["queryStringParameters"] = Value::Null;
    e["multiValueQueryStringParameters"] = Value::Null;
    let content_type = format!("multipart/form-data; boundary={boundary}");
    for headers in ["headers", "multiValueHeaders"] {
        let value = if headers == "headers" {
            json!(content_type)
        } else {
            json!([content_type])
        };
        e[headers]["Content-Type"] = value;
    }
    e["body"] = json!(B64.encode(&body));
    e["isBase64Encoded"] = json!(true);
    e
}

/// A REST API (v1) GET of `path` from the fixture's shape.
fn v1_get(path: &str) -> Value {
    let mut e = fixture("apigw_rest_v1.json");
    e["path"] = json!(path);
    e["requestContext"]["path"] = json!(format!("/prod{path}"));
    e["pathParameters"]["proxy"] = json!(path.trim_start_matches('/'));
    e["queryStringParameters"] = Value::Null;
    e["multiValueQueryStringParameters"] = Value::Null;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_http_and_function_url_events_reach_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let (services, router) = open_api(config(&dir)).await.unwrap();

    // HTTP API (v2): a JSON body, cookies in the event; the answer's headers are plain.
    let resp = invoke_api(
        &router,
        fixture("apigw_http_v2.json"),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 201, "{resp}");
    assert_eq!(resp["isBase64Encoded"], false, "{resp}");
    assert!(
        resp["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("application/json"),
        "{resp}"
    );
    assert!(resp["headers"]["x-request-id"].is_string(), "{resp}");
    let created = body_json(&resp);
    assert_eq!(created["name"], "lambda-reports", "{created}");

    // REST API (v1), stage `prod` in the context: the query string reaches the route, and the
    // answer's headers are multi-value (API Gateway would merge a `headers` map into them).
    let resp = invoke_api(
        &router,
        fixture("apigw_rest_v1.json"),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert!(
        resp["headers"].as_object().is_none_or(|h| h.is_empty()),
        "{resp}"
    );
    assert!(
        resp["multiValueHeaders"]["content-type"][0]
            .as_str()
            .unwrap()
            .starts_with("application/json"),
        "{resp}"
    );
    let listed = body_json(&resp);
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"lambda-reports"), "{listed}");

    // A route that does not exist answers docent's error envelope, not API Gateway's.
    let resp = invoke_api(
        &router,
        v1_get("/api/v1/nothing-here"),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 404, "{resp}");

    // Function URL: the body arrives base64 encoded.
    let resp = invoke_api(
        &router,
        fixture("function_url.json"),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert!(body_json(&resp)["hits"].is_array(), "{resp}");

    // A malformed event is refused with a clear error, not a panic.
    let err = invoke_api(
        &router,
        json!({"hello": "world"}),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("not an HTTP event"), "{err:#}");
    drop(services);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_api_gateway_comes_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (services, router) = open_api(config(&dir)).await.unwrap();
    let collection = create_collection(&router, "uploads").await;
    let original = "# Phare\n\nLe gardien du phare — 灯台守 — notes (ünïcödé) \u{1F4A1}.\n"
        .repeat(40)
        .into_bytes();
    let resp = invoke_api(
        &router,
        upload_event(&collection, "phare.md", &original),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let doc = body_json(&resp)["document"].clone();
    let id = doc["id"].as_str().unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(doc["filename"], "phare.md", "{doc}");
    assert_eq!(doc["size_bytes"], original.len(), "{doc}");

    // The original comes back as bytes: base64 in the REST API's answer.
    let resp = invoke_api(
        &router,
        v1_get(&format!("/api/v1/documents/{id}/content")),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(resp["isBase64Encoded"], true, "{resp}");
    assert_eq!(
        resp["multiValueHeaders"]["content-type"],
        json!(["application/octet-stream"]),
        "{resp}"
    );
    assert_eq!(body_bytes(&resp), original);

    // The task it queued runs on the workers (none in this function).
    assert_eq!(
        docent_core::worker::drain(&services, "test").await.unwrap(),
        1
    );
    let resp = invoke_api(
        &router,
        v1_get(&format!("/api/v1/documents/{id}")),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(body_json(&resp)["status"], "completed", "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_key_on_the_events_source_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir);
    c.auth.mode = AuthMode::Builtin;
    let (_services, router) = open_api(c).await.unwrap();
    // Sign-in attempts are limited per client address: one address runs out, another does not.
    let attempt = |ip: &str| {
        let mut e = v2_event(
            "POST",
            "/api/v1/auth/signin",
            Some(json!({"email": "nobody@example.com", "password": "wrong-password-1"})),
        );
        e["requestContext"]["http"]["sourceIp"] = json!(ip);
        e["headers"]["x-forwarded-for"] = json!(ip);
        e
    };
    let mut limited = None;
    for i in 0..50 {
        let resp = invoke_api(
            &router,
            attempt("203.0.113.9"),
            context(Duration::from_secs(30)),
        )
        .await
        .unwrap();
        if resp["statusCode"] == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(resp["statusCode"], 401, "{resp}");
    }
    assert!(limited.is_some(), "sign-in attempts were never limited");
    let resp = invoke_api(
        &router,
        attempt("198.51.100.23"),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(
        resp["statusCode"], 401,
        "another client's address is not limited: {resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_answer_streams_through_a_function_url() {
    let fake = docent_fake_openai::FakeServer::start(docent_fake_openai::FakeConfig {
        chunk_delay: Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir);
    common::with_llm(&fake)(&mut c);
    let (services, router) = open_api(c).await.unwrap();
    let collection = create_collection(&router, "geo").await;
    let resp = invoke_api(
        &router,
        upload_event(
            &collection,
            "france.md",
            b"# France\n\nThe capital of France is Paris. Paris lies on the Seine.\n",
        ),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 202, "{resp}");
    docent_core::worker::drain(&services, "test").await.unwrap();
    let resp = invoke_api(
        &router,
        v2_event(
            "POST",
            "/api/v1/bots",
            Some(json!({"name": "geo", "collection_ids": [collection]})),
        ),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 201, "{resp}");
    let bot = body_json(&resp)["id"].as_str().unwrap().to_owned();

    let mut event = fixture("function_url.json");
    let path = format!("/api/v1/bots/{bot}/chat");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["headers"]["accept"] = json!("text/event-stream");
    event["body"] =
        json!(B64.encode(json!({"message": "What is the capital of France?"}).to_string()));
    let streamed = invoke_api_streaming(&router, event, context(Duration::from_secs(60)))
        .await
        .unwrap();
    let prelude = &streamed.metadata_prelude;
    assert_eq!(prelude.status_code, StatusCode::OK);
    assert_eq!(
        prelude.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    let started = Instant::now();
    let mut reads: Vec<(Duration, String)> = Vec::new();
    let mut body = std::pin::pin!(streamed.stream);
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        reads.push((
            started.elapsed(),
            String::from_utf8_lossy(&piece).into_owned(),
        ));
    }
    let whole: String = reads.iter().map(|(_, r)| r.as_str()).collect();
    assert!(whole.contains("event: done"), "{whole}");
    assert!(whole.contains("Paris"), "{whole}");
    let before_done: Vec<_> = reads
        .iter()
        .take_while(|(_, r)| !r.contains("event: done"))
        .collect();
    assert!(
        before_done.len() >= 2,
        "the answer arrived in pieces as the model wrote them: {reads:?}"
    );
    let (first, _) = reads[0];
    let (last, _) = reads[reads.len() - 1];
    assert!(
        last - first >= Duration::from_millis(150),
        "the first piece came before the last was written: {reads:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The SQS worker, over the SQS task queue on moto.

struct Sqs {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
}

impl Sqs {
    /// Receives up to `max` messages as Lambda's poller does (its receive count included).
    async fn receive(&self, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .visibility_timeout(30)
            .wait_time_seconds(1)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .unwrap();
        out.messages().to_vec()
    }

    async fn send(&self, body: &str) {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    async fn dead_letters(&self) -> Vec<(String, Option<String>)> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .map(|m| {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("reason"))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned);
                (m.body().unwrap_or_default().to_owned(), reason)
            })
            .collect()
    }
}

/// An SQS event of `messages` in the shape Lambda sends (the fixture's records as templates).
fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> Value {
    let template = fixture("sqs_batch.json")["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut r = template.clone();
            r["messageId"] = json!(m.message_id().unwrap());
            r["receiptHandle"] = json!(m.receipt_handle().unwrap());
            r["body"] = json!(m.body().unwrap());
            r["md5OfBody"] = json!(m.md5_of_body().unwrap_or_default());
            let count = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .cloned()
                .unwrap_or_else(|| "1".into());
            r["attributes"]["ApproximateReceiveCount"] = json!(count);
            r
        })
        .collect();
    json!({ "Records": records })
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// A Lambda worker and the API router over the same services, on a fresh SQS queue pair on
/// moto; `None` (the test says it is skipped) without `DOCENT_TEST_AWS_ENDPOINT`.
async fn sqs_worker(
    test: &str,
    dir: &tempfile::TempDir,
    margin: Duration,
    configure: impl FnOnce(&mut Config),
) -> Option<(LambdaWorker, axum::Router, Sqs)> {
    let Ok(endpoint) = std::env::var("DOCENT_TEST_AWS_ENDPOINT") else {
        eprintln!("\n*** SKIP {test}: DOCENT_TEST_AWS_ENDPOINT is not set (scripts/test-services)");
        return None;
    };
    let name = format!(
        "docent-lambda-{test}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let sqs = SqsQueueConfig {
        queue_name: name.clone(),
        dlq_name: format!("{name}-dlq"),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        wait_time: Duration::ZERO,
        create_queues: true,
        republish_after: Duration::from_secs(300),
    };
    let mut c = config(dir);
    c.queue.backend = QueueBackend::Sqs(sqs.clone());
    configure(&mut c);
    let worker = LambdaWorker::open(c, margin).await.unwrap();
    let router = docent::app::http_router(worker.services(), None);
    let settings = docent_aws::sqs::SqsQueueSettings::from(&sqs);
    let client = docent_aws::sqs::client(&settings).await;
    let queues = docent_aws::sqs::resolve_queues(&client, &settings, 3)
        .await
        .unwrap();
    Some((
        worker,
        router,
        Sqs {
            client,
            queue_url: queues.queue_url,
            dlq_url: queues.dlq_url,
        },
    ))
}

async fn task_of(router: &axum::Router, doc: &str) -> Value {
    let resp = invoke_api(
        router,
        v1_get(&format!("/api/v1/documents/{doc}")),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let doc = body_json(&resp);
    let task = doc["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{doc}"))
        .to_owned();
    let resp = invoke_api(
        router,
        v1_get(&format!("/api/v1/tasks/{task}")),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    body_json(&resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_records_run_once_and_poison_goes_to_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let Some((worker, router, sqs)) =
        sqs_worker("records", &dir, Duration::from_secs(2), |_| {}).await
    else {
        return;
    };
    let collection = create_collection(&router, "queued").await;
    let resp = invoke_api(
        &router,
        upload_event(&collection, "notes.md", &common::markdown_doc(1, 3)),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let doc = body_json(&resp)["document"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(task_of(&router, &doc).await["status"], "pending");

    // The upload's delivery and a poison message, in one batch as Lambda's poller receives them.
    sqs.send("this is not a task").await;
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let got = sqs.receive(10).await;
        assert!(!got.is_empty(), "the queue ran dry: {messages:?}");
        messages.extend(got);
    }
    let good = messages
        .iter()
        .find(|m| m.body().unwrap().contains("task_id"))
        .unwrap()
        .clone();
    let event = sqs_event(&messages);
    let response = worker
        .handle(lambda_runtime::LambdaEvent::new(
            event,
            context(Duration::from_secs(60)),
        ))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    let task = task_of(&router, &doc).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempts"], 1, "{task}");
    // The poison message was moved to the dead-letter queue, saying why; the good one deleted.
    let dead = sqs.dead_letters().await;
    assert_eq!(
        dead,
        vec![(
            "this is not a task".to_owned(),
            Some("not_a_task".to_owned())
        )]
    );
    assert!(sqs.receive(10).await.is_empty(), "messages left behind");

    // A duplicate delivery of the finished task (SQS delivers at least once) runs nothing.
    sqs.send(good.body().unwrap()).await;
    let duplicate = sqs.receive(10).await;
    assert_eq!(duplicate.len(), 1);
    let response = worker
        .handle(lambda_runtime::LambdaEvent::new(
            sqs_event(&duplicate),
            context(Duration::from_secs(60)),
        ))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    let again = task_of(&router, &doc).await;
    assert_eq!(
        again["attempts"], 1,
        "the duplicate ran the task again: {again}"
    );
    assert_eq!(again["finished_at"], task["finished_at"], "{again}");
    assert!(
        sqs.receive(10).await.is_empty(),
        "the duplicate was left behind"
    );

    // An EventBridge scheduled event runs the queue's sweep.
    let scheduled = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-12-07T20:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/docent-sweep"], "detail": {}
    });
    let swept = worker
        .handle(lambda_runtime::LambdaEvent::new(
            scheduled,
            context(Duration::from_secs(60)),
        ))
        .await
        .unwrap();
    assert_eq!(swept, json!({"republished": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_near_now_gives_the_task_back_before_lambda_stops_the_function() {
    // The embedding model answers after 30 s: far past the invocation's deadline.
    let fake = docent_fake_openai::FakeServer::start(docent_fake_openai::FakeConfig {
        faults: docent_fake_openai::Faults {
            latency: Duration::from_secs(30),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let margin = Duration::from_millis(500);
    let Some((worker, router, sqs)) = sqs_worker("deadline", &dir, margin, |c| {
        common::openai_embedder(c, fake.base_url(), 16);
    })
    .await
    else {
        return;
    };
    let collection = create_collection(&router, "slow").await;
    let resp = invoke_api(
        &router,
        upload_event(&collection, "slow.md", &common::markdown_doc(2, 2)),
        context(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let doc = body_json(&resp)["document"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let messages = sqs.receive(10).await;
    assert_eq!(messages.len(), 1);

    let left = Duration::from_secs(3);
    let started = Instant::now();
    let response = worker
        .handle(lambda_runtime::LambdaEvent::new(
            sqs_event(&messages),
            context(left),
        ))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < left,
        "the handler answered after the deadline ({took:?} ≥ {left:?})"
    );
    assert!(
        took >= left - margin * 3,
        "the task ran until its limit ({took:?})"
    );
    // The message stays (deferred for the retry's backoff): Lambda must not delete it.
    assert_eq!(
        failures(&response),
        vec![messages[0].message_id().unwrap().to_owned()],
        "{response}"
    );
    // The lease is given back: pending again, the attempt counted, a retry scheduled.
    let task = task_of(&router, &doc).await;
    assert_eq!(task["status"], "pending", "{task}");
    assert_eq!(task["attempts"], 1, "{task}");
    assert_eq!(task["error"]["code"], "task_timeout", "{task}");
    assert!(task["lease_expires_at"].is_null(), "{task}");
}

// ---------------------------------------------------------------------------------------------
// The real binary under a fake Lambda runtime API.

/// A faithful fake of the Lambda runtime API (2018-06-01): `/next` hands out queued events
/// with the `Lambda-Runtime-*` headers and otherwise holds the request (as Lambda freezes an
/// idle function); responses, errors and init errors are recorded.
#[derive(Clone, Default)]
struct FakeRuntime {
    inner: Arc<FakeState>,
}

#[derive(Default)]
struct FakeState {
    events: Mutex<VecDeque<(String, Value)>>,
    first_next: Mutex<Option<Instant>>,
    responses: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    errors: Mutex<Vec<(String, HeaderMap, Value)>>,
    init_errors: Mutex<Vec<(HeaderMap, Value)>>,
    arrived: tokio::sync::Notify,
}

async fn next(State(rt): State<FakeRuntime>) -> axum::response::Response {
    rt.inner
        .first_next
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    loop {
        let event = rt.inner.events.lock().unwrap().pop_front();
        if let Some((id, event)) = event {
            let deadline = SystemTime::now() + Duration::from_secs(30);
            let ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            headers.insert(
                "lambda-runtime-deadline-ms",
                ms.to_string().parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:docent-api"
                    .parse()
                    .unwrap(),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                    .parse()
                    .unwrap(),
            );
            headers.insert("content-type", "application/json".parse().unwrap());
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn response(
    State(rt): State<FakeRuntime>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    rt.inner.responses.lock().unwrap().push((id, headers, body));
    rt.inner.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(
    State(rt): State<FakeRuntime>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    rt.inner.errors.lock().unwrap().push((id, headers, body));
    rt.inner.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<FakeRuntime>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    rt.inner.init_errors.lock().unwrap().push((headers, body));
    rt.inner.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

impl FakeRuntime {
    async fn start(&self) -> String {
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr.to_string()
    }

    fn push(&self, id: &str, event: Value) {
        self.inner
            .events
            .lock()
            .unwrap()
            .push_back((id.to_owned(), event));
    }

    async fn wait_for(&self, what: &str, mut done: impl FnMut(&FakeState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let arrived = self.inner.arrived.notified();
            if done(&self.inner) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} never arrived");
            let _ = tokio::time::timeout(Duration::from_millis(200), arrived).await;
        }
    }
}

/// `docent lambda ROLE` with the Lambda environment pointing at `api`.
fn lambda_command(role: &str, api: &str, home: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["lambda", role])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("docent-{role}"))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/12/07/[$LATEST]0123456789abcdef",
        )
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/docent-{role}"),
        )
        .env("DOCENT_HOME", home)
        .env("DOCENT__LOG__FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    match common::model_dir() {
        Some(model) => cmd.env("DOCENT__EMBEDDER__MODEL_DIR", model),
        None => cmd.env("DOCENT__EMBEDDER__KIND", "none"),
    };
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_runtime_api_and_reports_its_cold_start() {
    let runtime = FakeRuntime::default();
    let api = runtime.start().await;
    let home = tempfile::tempdir().unwrap();
    let with_model = common::model_dir().is_some();
    // First run on an empty home: migrations and the index are created. The cold start is
    // measured on the later ones, as a new sandbox over an existing database starts.
    let mut colds = Vec::new();
    for round in 0..4 {
        let runtime = FakeRuntime::default();
        let api = runtime.start().await;
        let id = format!("req-{round}");
        runtime.push(&id, v1_get("/health"));
        let started = Instant::now();
        let mut child = lambda_command("api", &api, home.path()).spawn().unwrap();
        runtime
            .wait_for("the invocation's response", |s| {
                !s.responses.lock().unwrap().is_empty() || !s.errors.lock().unwrap().is_empty()
            })
            .await;
        let first_next = runtime.inner.first_next.lock().unwrap().unwrap();
        let cold = first_next - started;
        let answered = started.elapsed();
        {
            let errors = runtime.inner.errors.lock().unwrap();
            assert!(errors.is_empty(), "the invocation failed: {errors:?}");
            let responses = runtime.inner.responses.lock().unwrap();
            let (rid, _, body) = &responses[0];
            assert_eq!(rid, &id);
            let resp: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(resp["statusCode"], 200, "{resp}");
            assert!(
                resp["multiValueHeaders"]["content-type"][0].is_string(),
                "a REST API response: {resp}"
            );
        }
        if round == 0 {
            println!(
                "LAMBDA COLD START on an empty database (migrations run): {} ms",
                cold.as_millis()
            );
        } else {
            colds.push(cold);
        }
        if round == 3 {
            colds.sort();
            println!(
                "LAMBDA COLD START, 3 starts: min {} ms, median {} ms, max {} ms",
                colds[0].as_millis(),
                colds[1].as_millis(),
                colds[2].as_millis()
            );
            println!(
                "LAMBDA COLD START (docent lambda api, process start → first /next, model {}): \
                 {} ms; first response after {} ms",
                if with_model {
                    "loaded"
                } else {
                    "not available: none"
                },
                cold.as_millis(),
                answered.as_millis()
            );
        }
        // Idle, it waits on /next (Lambda would freeze it): still alive.
        assert!(child.try_wait().unwrap().is_none(), "the function exited");
        child.kill().await.unwrap();
    }
    drop(api);

    // Streaming (a function URL in RESPONSE_STREAM mode): the response is posted in the
    // streaming mode, the JSON prelude (status, headers, cookies), eight NUL bytes, the body.
    let runtime = FakeRuntime::default();
    let api = runtime.start().await;
    let mut event = fixture("function_url.json");
    event["rawPath"] = json!("/health");
    event["requestContext"]["http"]["method"] = json!("GET");
    event["requestContext"]["http"]["path"] = json!("/health");
    event["body"] = Value::Null;
    event["isBase64Encoded"] = json!(false);
    runtime.push("req-streamed", event);
    let mut child = lambda_command("api", &api, home.path())
        .env("DOCENT_LAMBDA_STREAMING", "true")
        .spawn()
        .unwrap();
    runtime
        .wait_for("the streamed response", |s| {
            !s.responses.lock().unwrap().is_empty() || !s.errors.lock().unwrap().is_empty()
        })
        .await;
    {
        let responses = runtime.inner.responses.lock().unwrap();
        let (rid, headers, body) = &responses[0];
        assert_eq!(rid, "req-streamed");
        assert_eq!(
            headers["lambda-runtime-function-response-mode"], "streaming",
            "{headers:?}"
        );
        assert_eq!(
            headers["content-type"],
            "application/vnd.awslambda.http-integration-response"
        );
        let sep = body
            .windows(8)
            .position(|w| w == [0u8; 8])
            .unwrap_or_else(|| panic!("no prelude separator: {body:?}"));
        let prelude: Value = serde_json::from_slice(&body[..sep]).unwrap();
        assert_eq!(prelude["statusCode"], 200, "{prelude}");
        assert!(prelude["headers"]["content-type"].is_string(), "{prelude}");
        let rest: Value = serde_json::from_slice(&body[sep + 8..]).unwrap();
        assert_eq!(rest["status"], "ok", "{rest}");
    }
    child.kill().await.unwrap();
    drop(api);

    // A failed initialisation is reported to /init/error: the worker needs the SQS queue.
    let runtime = FakeRuntime::default();
    let api = runtime.start().await;
    let mut child = lambda_command("worker", &api, home.path()).spawn().unwrap();
    runtime
        .wait_for("the init error", |s| {
            !s.init_errors.lock().unwrap().is_empty()
        })
        .await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    let init = runtime.inner.init_errors.lock().unwrap();
    let (headers, body) = &init[0];
    assert_eq!(
        headers["lambda-runtime-function-error-type"],
        "Runtime.InitError"
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("kind = \"sqs\""),
        "{body}"
    );
    assert!(runtime.inner.first_next.lock().unwrap().is_none());
}

/// The binary under cargo-lambda's local runtime emulator (`cargo lambda watch
/// --only-lambda-apis`, invoked with `cargo lambda invoke`), when `DOCENT_TEST_CARGO_LAMBDA`
/// names its executable (PyPI `cargo-lambda`); skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_through_cargo_lambdas_emulator() {
    let Ok(cargo_lambda) = std::env::var("DOCENT_TEST_CARGO_LAMBDA") else {
        eprintln!(
            "\n*** SKIP the_binary_answers_through_cargo_lambdas_emulator: DOCENT_TEST_CARGO_LAMBDA \
             is not set (pip install cargo-lambda)"
        );
        return;
    };
    let port = common::servers::free_port();
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let mut emulator = tokio::process::Command::new(&cargo_lambda)
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(manifest_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        common::servers::wait_for_port(port, true, Duration::from_secs(30)),
        "the emulator never listened"
    );
    let home = tempfile::tempdir().unwrap();
    let mut function = lambda_command("api", &format!("http://127.0.0.1:{port}/.rt"), home.path())
        .env("DOCENT__AUTH__MODE", "none")
        .spawn()
        .unwrap();
    let invoke = |fixture: &'static str| {
        let cargo_lambda = cargo_lambda.clone();
        async move {
            let out = tokio::process::Command::new(&cargo_lambda)
                .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
                .arg(port.to_string())
                .arg("--data-file")
                .arg(format!("tests/fixtures/lambda/{fixture}"))
                .current_dir(manifest_dir)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
        }
    };
    let created = invoke("apigw_http_v2.json").await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let listed = invoke("apigw_rest_v1.json").await;
    assert_eq!(listed["statusCode"], 200, "{listed}");
    assert!(
        body_json(&listed)["items"][0]["name"] == "lambda-reports",
        "{listed}"
    );
    function.kill().await.unwrap();
    emulator.kill().await.unwrap();
}

#[tokio::test]
async fn outside_lambda_the_command_says_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["lambda", "api"])
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env("DOCENT_HOME", home.path())
        .env("DOCENT__EMBEDDER__KIND", "none")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing here: AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
