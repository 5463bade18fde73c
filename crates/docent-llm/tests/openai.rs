//! The OpenAI-compatible chat client and embedder against the fake server, in process.

use std::time::Duration;

use docent_domain::Code;
use docent_fake_openai::{CHAT_MODEL, EMBED_MODEL, FakeConfig, FakeServer, Fault, Faults};
use docent_llm::{
    AuthScheme, ChatConfig, ChatMessage, ChatModel, ChatRequest, Embedder, EmbeddingConfig,
    FinishReason, OpenAiChat, OpenAiEmbedder, ProviderConfig, collect_stream,
};
use futures::StreamExt;
use secrecy::SecretString;

const KEY: &str = "sk-test-0123456789";

async fn fake(config: FakeConfig) -> FakeServer {
    FakeServer::start(FakeConfig {
        api_key: Some(KEY.into()),
        ..config
    })
    .await
    .unwrap()
}

fn provider(fake: &FakeServer, model: &str) -> ProviderConfig {
    let mut p = ProviderConfig::new(fake.base_url(), model);
    p.api_key = Some(SecretString::from(KEY.to_owned()));
    p
}

fn chat(fake: &FakeServer) -> OpenAiChat {
    OpenAiChat::new(&ChatConfig::new(provider(fake, CHAT_MODEL))).unwrap()
}

fn rag_request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("Answer only from the numbered sources; cite them like [1]."),
        ChatMessage::user(
            "Sources:\n[1] Paris is the capital of France. It has many museums.\n[2] Berlin is the capital of Germany.\n\nWhat is the capital of France?",
        ),
    ])
}

#[tokio::test]
async fn non_streamed_chat_answers_from_sources_with_usage() {
    let fake = fake(FakeConfig::default()).await;
    let r = chat(&fake).chat(&rag_request()).await.unwrap();
    assert_eq!(r.content, "Paris is the capital of France. [1]");
    assert_eq!(r.finish_reason, FinishReason::Stop);
    let usage = r.usage.expect("usage reported");
    assert!(
        usage.prompt_tokens > 20 && usage.completion_tokens > 5,
        "{usage:?}"
    );
    let log = fake.log();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].status, log[0].stream), (200, false));
    assert_eq!(log[0].tokens, usage.total());
}

#[tokio::test]
async fn streamed_chat_arrives_in_deltas_and_matches_the_whole_answer() {
    let fake = fake(FakeConfig::default()).await;
    let client = chat(&fake);
    let whole = client.chat(&rag_request()).await.unwrap();
    let deltas: Vec<_> = client
        .chat_stream(&rag_request())
        .await
        .unwrap()
        .collect()
        .await;
    let deltas: Vec<_> = deltas.into_iter().map(Result::unwrap).collect();
    assert!(deltas.iter().filter(|d| !d.content.is_empty()).count() > 3);
    let text: String = deltas.iter().map(|d| d.content.as_str()).collect();
    assert_eq!(text, whole.content);
    assert_eq!(
        deltas.iter().find_map(|d| d.finish_reason.clone()),
        Some(FinishReason::Stop)
    );
    assert_eq!(
        deltas.last().unwrap().usage,
        whole.usage,
        "usage comes last"
    );
    assert!(fake.log()[1].stream);

    let mut req = rag_request();
    req.max_tokens = Some(3);
    let cut = collect_stream(client.chat_stream(&req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(cut.finish_reason, FinishReason::Length);
    assert!(cut.content.len() <= 12, "{:?}", cut.content);
}

#[tokio::test]
async fn fixed_reply_and_echo_without_sources() {
    let fake = fake(FakeConfig {
        fixed_reply: Some("Always this.".into()),
        ..FakeConfig::default()
    })
    .await;
    let r = chat(&fake).chat(&rag_request()).await.unwrap();
    assert_eq!(r.content, "Always this.");
    let fake2 = self::fake(FakeConfig::default()).await;
    let r = chat(&fake2)
        .chat(&ChatRequest::new(vec![ChatMessage::user("hello there")]))
        .await
        .unwrap();
    assert_eq!(r.content, "You said: hello there");
}

#[tokio::test]
async fn scripted_replies_answer_their_trigger_before_the_fixed_reply() {
    let fake = fake(FakeConfig {
        fixed_reply: Some("Always this.".into()),
        replies: vec![("probe-7".into(), "Scripted **answer** [1].".into())],
        ..FakeConfig::default()
    })
    .await;
    let ask = |text: &str| ChatRequest::new(vec![ChatMessage::user(text)]);
    let r = chat(&fake).chat(&ask("please probe-7 now")).await.unwrap();
    assert_eq!(r.content, "Scripted **answer** [1].");
    let r = chat(&fake).chat(&ask("anything else")).await.unwrap();
    assert_eq!(r.content, "Always this.");
}

#[tokio::test]
async fn a_truncated_stream_is_a_clear_error() {
    let fake = fake(FakeConfig {
        faults: Faults {
            script: vec![Fault::Truncate],
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let client = chat(&fake);
    let items: Vec<_> = client
        .chat_stream(&rag_request())
        .await
        .unwrap()
        .collect()
        .await;
    let (last, before) = items.split_last().unwrap();
    assert!(
        before.iter().all(Result::is_ok) && !before.is_empty(),
        "part of the answer came first"
    );
    let err = last.as_ref().unwrap_err();
    assert_eq!(err.code, Code::ModelUnavailable);
    assert!(err.message.contains("ended before"), "{}", err.message);
    assert!(err.is_retryable());
    // collect_stream refuses the half answer too; the next request is whole again.
    let again = collect_stream(client.chat_stream(&rag_request()).await.unwrap()).await;
    assert!(again.is_ok());
}

#[tokio::test]
async fn provider_refusals_are_model_errors_without_the_key() {
    let fake = fake(FakeConfig::default()).await;
    let mut p = provider(&fake, CHAT_MODEL);
    p.api_key = Some(SecretString::from("sk-wrong-secret-key".to_owned()));
    let err = OpenAiChat::new(&ChatConfig::new(p))
        .unwrap()
        .chat(&rag_request())
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::ModelError);
    assert!(
        err.message.contains("401 invalid_api_key"),
        "{}",
        err.message
    );
    assert!(!err.chain().contains("sk-wrong-secret-key"));
    assert!(!format!("{err:?}").contains("sk-wrong-secret-key"));

    let err = OpenAiChat::new(&ChatConfig::new(provider(&fake, "no-such-model")))
        .unwrap()
        .chat(&rag_request())
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::ModelError);
    assert!(err.message.contains("model_not_found"), "{}", err.message);
}

#[tokio::test]
async fn azure_style_api_key_header_and_version_work() {
    let fake = fake(FakeConfig::default()).await;
    let mut p = provider(&fake, CHAT_MODEL);
    p.auth = AuthScheme::ApiKeyHeader;
    p.api_version = Some("2024-10-21".into());
    let r = OpenAiChat::new(&ChatConfig::new(p))
        .unwrap()
        .chat(&rag_request())
        .await
        .unwrap();
    assert!(r.content.ends_with("[1]"));
}

#[tokio::test]
async fn slow_providers_time_out() {
    let fake = fake(FakeConfig {
        faults: Faults {
            latency: Duration::from_millis(500),
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let mut p = provider(&fake, CHAT_MODEL);
    p.request_timeout = Duration::from_millis(100);
    let started = std::time::Instant::now();
    let err = OpenAiChat::new(&ChatConfig::new(p))
        .unwrap()
        .chat(&rag_request())
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::ModelUnavailable);
    assert!(started.elapsed() < Duration::from_millis(450));
}

fn embed_config(fake: &FakeServer, dimension: Option<usize>) -> EmbeddingConfig {
    EmbeddingConfig::new(provider(fake, EMBED_MODEL), dimension)
}

fn texts(n: usize, chars: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{i:0>width$}", width = chars))
        .collect()
}

#[tokio::test]
async fn embeddings_batch_by_count_in_order() {
    let fake = fake(FakeConfig {
        max_embedding_inputs: 3,
        ..FakeConfig::default()
    })
    .await;
    let mut cfg = embed_config(&fake, Some(64));
    cfg.max_batch_inputs = 3;
    let e = OpenAiEmbedder::new(&cfg).unwrap();
    let input = texts(7, 8);
    let vectors = e.embed(&input).await.unwrap();
    assert_eq!(vectors.len(), 7);
    for (t, v) in input.iter().zip(&vectors) {
        assert_eq!(*v, docent_fake_openai::answer::embed(t, 64), "order kept");
    }
    let inputs: Vec<_> = fake.log().iter().map(|l| l.inputs.unwrap()).collect();
    assert_eq!(inputs, vec![3, 3, 1]);
    assert!(e.embed(&[]).await.unwrap().is_empty());
    assert_eq!(fake.log().len(), 3, "no request for no texts");
}

#[tokio::test]
async fn embeddings_batch_by_tokens() {
    // 16 chars = 4 tokens each; 10 tokens per request fit two.
    let fake = fake(FakeConfig {
        max_embedding_tokens: 10,
        ..FakeConfig::default()
    })
    .await;
    let mut cfg = embed_config(&fake, Some(64));
    cfg.max_batch_tokens = 10;
    let e = OpenAiEmbedder::new(&cfg).unwrap();
    let vectors = e.embed(&texts(5, 16)).await.unwrap();
    assert_eq!(vectors.len(), 5);
    let log = fake.log();
    let inputs: Vec<_> = log.iter().map(|l| l.inputs.unwrap()).collect();
    assert_eq!(inputs, vec![2, 2, 1]);
    assert!(log.iter().all(|l| l.status == 200 && l.prompt_tokens <= 10));
}

#[tokio::test]
async fn embedding_dimensions_are_checked_sent_or_learned() {
    let fake = fake(FakeConfig {
        dimension: 32,
        ..FakeConfig::default()
    })
    .await;
    let wrong = OpenAiEmbedder::new(&embed_config(&fake, Some(64))).unwrap();
    let err = wrong.embed(&texts(2, 4)).await.unwrap_err();
    assert_eq!(err.code, Code::ModelError);
    assert!(err.message.contains("dimension 32"), "{}", err.message);
    assert!(!err.is_retryable());

    let mut cfg = embed_config(&fake, Some(16));
    cfg.send_dimensions = true;
    let short = OpenAiEmbedder::new(&cfg).unwrap();
    assert_eq!(short.embed(&texts(1, 4)).await.unwrap()[0].len(), 16);

    let learned = OpenAiEmbedder::connect(&embed_config(&fake, None))
        .await
        .unwrap();
    assert_eq!(learned.dimension(), 32);
    let v = &learned.embed(&["unit length".into()]).await.unwrap()[0];
    let norm: f32 = v.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[tokio::test]
async fn the_fake_lists_models_and_uses_openai_error_envelopes() {
    let fake = fake(FakeConfig::default()).await;
    let client = reqwest::Client::new();
    let models: serde_json::Value = client
        .get(format!("{}/models", fake.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], CHAT_MODEL);
    let resp = client
        .post(format!("{}/embeddings", fake.base_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(r#"{"model":"fake-embed","input":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].is_string());
}
