//! The OpenAI-compatible surface beyond chat, through HTTP: `GET /v1/models` and
//! `/v1/models/{id}` (bots as models), `POST /v1/embeddings` (the local embedding model), token
//! `usage` in whole and streamed completions (`stream_options.include_usage`), and the
//! parameters a bot cannot honour (`n` > 1, `tools`, `response_format`) refused with an
//! OpenAI-shaped 400 instead of ignored. The official `openai` Python package drives the same
//! routes when `DOCENT_TEST_OPENAI_PYTHON` names a Python that has it.

mod common;

use base64::Engine as _;
use common::{TestApp, assert_error, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const FRANCE: &[u8] =
    b"# Geography notes\n\nThe capital of France is Paris. Paris lies on the Seine river.\n";

/// A processed document and a bot `geo` over it; the bot's id.
async fn geo_bot(app: &TestApp) -> String {
    let coll = app.create_collection("notes").await;
    app.upload_ok(&coll, "france.md", FRANCE).await;
    app.drain().await;
    let (status, bot) = app
        .post_json(
            "/api/v1/bots",
            json!({"name": "geo", "collection_ids": [coll]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    bot["id"].as_str().unwrap().to_owned()
}

fn question(extra: Value) -> Value {
    let mut body = json!({
        "model": "geo",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// `data:` payloads of a server-sent event stream.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|v| v.strip_prefix(' ').unwrap_or(v))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn bots_are_listed_and_fetched_as_openai_models() {
    let app = spawn_app_with(|_| {}).await;
    let bot = geo_bot(&app).await;

    let (status, list) = app.get("/v1/models").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{list}");
    let m = &data[0];
    assert_eq!(m["id"], bot.as_str());
    assert_eq!(m["object"], "model");
    assert!(m["created"].as_i64().unwrap() > 1_600_000_000, "{m}");
    assert_eq!(m["owned_by"], "docent");
    assert_eq!(m["name"], "geo");

    // By id and by name, the same model.
    for key in [bot.as_str(), "geo"] {
        let (status, one) = app.get(&format!("/v1/models/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(&one, m);
    }
    // An unknown one is an OpenAI-shaped 404 (SDKs raise NotFoundError).
    let (status, body) = app.get("/v1/models/no-such-bot").await;
    assert_error(status, &body, 404, "bot_not_found");
    let (status, body) = app
        .get("/v1/models/0190a6f6-0000-7000-8000-000000000000")
        .await;
    assert_error(status, &body, 404, "bot_not_found");
    app.stop().await;
}

#[tokio::test]
async fn embeddings_serve_the_local_model_in_openai_shape() {
    let mut has_model = false;
    let app = spawn_app_with(|c| has_model = common::embedder(c, true)).await;
    if !has_model {
        eprintln!("skipped: the local embedding model is not in models/");
        app.stop().await;
        return;
    }
    let (status, one) = app
        .post_json(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "The capital of France is Paris."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["index"], 0);
    let v: Vec<f64> = serde_json::from_value(one["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 384);
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    let tokens = one["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens >= 7, "{one}");
    assert_eq!(one["usage"]["total_tokens"], tokens);

    // A batch: one vector per text, in order; the first equals the single embedding.
    let texts = [
        "The capital of France is Paris.",
        "A souffle needs whisked egg whites.",
        "Rivers flow to the sea.",
    ];
    let (status, batch) = app
        .post_json("/v1/embeddings", json!({"model": "any", "input": texts}))
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let data = batch["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
        assert_eq!(d["embedding"].as_array().unwrap().len(), 384);
    }
    let first: Vec<f64> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
    let dot: f64 = first.iter().zip(&v).map(|(a, b)| a * b).sum();
    assert!(dot > 0.999, "{dot}");
    let second: Vec<f64> = serde_json::from_value(data[1]["embedding"].clone()).unwrap();
    let dot: f64 = second.iter().zip(&v).map(|(a, b)| a * b).sum();
    assert!(dot < 0.9, "different texts, different vectors: {dot}");

    // base64: the same numbers as little-endian f32s.
    let (status, b64) = app
        .post_json(
            "/v1/embeddings",
            json!({"model": "any", "input": [texts[0]], "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b64}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats.len(), 384);
    assert!((f64::from(floats[0]) - first[0]).abs() < 1e-6);

    // Errors: each a 400 naming the problem.
    let too_many: Vec<String> = (0..257).map(|i| format!("text {i}")).collect();
    for bad in [
        json!({"model": "any", "input": []}),
        json!({"model": "any", "input": [""]}),
        json!({"model": "any", "input": too_many}),
        json!({"model": "any", "input": "x".repeat(200_001)}),
        json!({"model": "any", "input": [[1, 2, 3]]}),
        json!({"model": "any", "input": 42}),
        json!({"model": "any", "input": "hi", "encoding_format": "int8"}),
        json!({"model": "any", "input": "hi", "dimensions": 100}),
    ] {
        let (status, body) = app.post_json("/v1/embeddings", bad.clone()).await;
        assert_error(status, &body, 400, "invalid_field");
    }
    let (status, body) = app
        .post_json("/v1/embeddings", json!({"input": "hi"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn embeddings_without_an_embedder_are_a_clear_error() {
    let app = spawn_app_with(|_| {}).await;
    let (status, body) = app
        .post_json("/v1/embeddings", json!({"model": "any", "input": "hi"}))
        .await;
    assert_error(status, &body, 400, "embedder_not_configured");
    app.stop().await;
}

#[tokio::test]
async fn completions_report_usage_whole_and_streamed() {
    // No model configured: an extractive answer, whose usage docent counts itself.
    let app = spawn_app_with(|_| {}).await;
    geo_bot(&app).await;

    let (status, r) = app
        .post_json("/v1/chat/completions", question(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let u = &r["usage"];
    let prompt = u["prompt_tokens"].as_u64().unwrap();
    let completion = u["completion_tokens"].as_u64().unwrap();
    // "What is the capital of France?": 6 words and a question mark.
    assert_eq!(prompt, 7, "{r}");
    assert!(completion > 0, "{r}");
    assert_eq!(u["total_tokens"].as_u64().unwrap(), prompt + completion);

    // Streamed with include_usage: a last chunk with no choices and the same usage, then [DONE].
    let stream = |include: bool| {
        let body = if include {
            question(json!({"stream": true, "stream_options": {"include_usage": true}}))
        } else {
            question(json!({"stream": true}))
        };
        app.client
            .post(app.url("/v1/chat/completions"))
            .json(&body)
            .send()
    };
    let r = stream(true).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage_chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["object"], "chat.completion.chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], *u, "{usage_chunk}");
    let before: Value = serde_json::from_str(&data[data.len() - 3]).unwrap();
    assert_eq!(before["choices"][0]["finish_reason"], "stop");

    // Without it, no usage chunk.
    let r = stream(false).await.unwrap();
    let data = sse_data(&r.text().await.unwrap());
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop", "{last}");
    assert!(
        data.iter().all(|d| !d.contains("\"choices\":[]")),
        "{data:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn parameters_a_bot_cannot_honour_are_refused_not_ignored() {
    let app = spawn_app_with(|_| {}).await;
    geo_bot(&app).await;
    let tool = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    for (extra, named) in [
        (json!({"n": 2}), "`n`"),
        (json!({"tools": tool}), "`tools`"),
        (json!({"functions": [{"name": "f"}]}), "`functions`"),
        (json!({"tool_choice": "required"}), "`tool_choice`"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "`response_format`",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "`response_format`",
        ),
    ] {
        for stream in [false, true] {
            let mut body = question(extra.clone());
            body["stream"] = json!(stream);
            let (status, r) = app.post_json("/v1/chat/completions", body).await;
            assert_error(status, &r, 400, "invalid_field");
            assert_eq!(r["error"]["type"], "invalid_request", "{r}");
            let message = r["error"]["message"].as_str().unwrap();
            assert!(message.contains(named), "{extra}: {message}");
        }
    }
    // What a bot can honour is accepted: n = 1, text, no tools, tool_choice none.
    let (status, r) = app
        .post_json(
            "/v1/chat/completions",
            question(
                json!({"n": 1, "response_format": {"type": "text"}, "tools": [],
                "tool_choice": "none", "temperature": 0.2}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    app.stop().await;
}

/// The official `openai` Python package: models, embeddings and usage (chat itself is in
/// `chat.rs`).
#[tokio::test]
async fn the_official_openai_python_sdk_lists_models_and_embeds() {
    let Some(python) = std::env::var_os("DOCENT_TEST_OPENAI_PYTHON") else {
        eprintln!("skipped: DOCENT_TEST_OPENAI_PYTHON not set (run scripts/test-services)");
        return;
    };
    let mut has_model = false;
    let app = spawn_app_with(|c| has_model = common::embedder(c, true)).await;
    if !has_model {
        eprintln!("skipped: the local embedding model is not in models/");
        app.stop().await;
        return;
    }
    let bot = geo_bot(&app).await;
    let script = r#"
import json, sys
import openai
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused-in-mode-none", max_retries=0)
models = [m.id for m in client.models.list()]
one = client.models.retrieve("geo").id
emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b c"])
emb64 = client.embeddings.create(model="x", input="a")
usage = None
for chunk in client.chat.completions.create(
        model="geo", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What is the capital of France?"}]):
    if chunk.usage:
        usage = chunk.usage.total_tokens
try:
    client.chat.completions.create(model="geo", n=2,
        messages=[{"role": "user", "content": "hi"}])
    refused = None
except openai.BadRequestError as e:
    refused = e.code
print(json.dumps({
    "models": models, "one": one,
    "dims": [len(d.embedding) for d in emb.data],
    "dims64": len(emb64.data[0].embedding),
    "prompt_tokens": emb.usage.prompt_tokens,
    "usage": usage, "refused": refused,
}))
"#;
    let r = common::run_python(&python, script, &app.base).await;
    assert_eq!(r["models"], json!([bot]), "{r}");
    assert_eq!(r["one"], bot.as_str(), "{r}");
    assert_eq!(r["dims"], json!([384, 384]), "{r}");
    // The SDK asks for base64 by default and decodes it.
    assert_eq!(r["dims64"], 384, "{r}");
    assert!(r["prompt_tokens"].as_u64().unwrap() >= 3, "{r}");
    assert!(r["usage"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["refused"], "invalid_field", "{r}");
    app.stop().await;
}
