//! [`OpenAiChat`]: the OpenAI-compatible `/chat/completions` client, whole or streamed.
//!
//! Streaming reads server-sent events with [`SseParser`]: each `data:` chunk becomes a
//! [`ChatDelta`], an `{"error":..}` chunk becomes an error item, `data: [DONE]` ends the stream.
//! A stream that ends before `[DONE]` and before any `finish_reason` was *cut*: it yields a
//! `model_unavailable` error instead of quietly ending, so a half answer is never taken for a
//! whole one. (A `finish_reason` without `[DONE]` is accepted: some servers omit it.) A stream
//! silent for longer than `stream_idle_timeout` fails the same way. If a server ignores
//! `stream: true` and answers with one JSON document, it is turned into a one-item stream.
//!
//! One call is one HTTP request: retries, budgets and the circuit breaker are the
//! [`Budgeted`](crate::Budgeted) wrapper's job.

use std::collections::VecDeque;

use async_trait::async_trait;
use docent_domain::llm::{
    ChatDelta, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Usage,
};
use docent_domain::{Code, Error, Result};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::config::ChatConfig;
use crate::http::{Endpoint, bad_answer};
use crate::sse::SseParser;

/// A chat model behind an OpenAI-compatible API.
pub struct OpenAiChat {
    endpoint: Endpoint,
    model: String,
    stream_usage: bool,
}

impl std::fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiChat {
    /// A client for `config` (validated here; nothing is sent yet).
    pub fn new(config: &ChatConfig) -> Result<OpenAiChat> {
        Ok(OpenAiChat {
            endpoint: Endpoint::new(&config.provider)?,
            model: config.provider.model.clone(),
            stream_usage: config.stream_usage,
        })
    }

    fn body<'a>(&'a self, req: &'a ChatRequest, stream: bool) -> WireRequest<'a> {
        WireRequest {
            model: req.model.as_deref().unwrap_or(&self.model),
            messages: req
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str(),
                    content: &m.content,
                })
                .collect(),
            temperature: req.temperature,
            max_tokens: req.max_tokens,
            stop: &req.stop,
            seed: req.seed,
            stream,
            stream_options: (stream && self.stream_usage).then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireAnswer,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireAnswer {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<WireUsage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    content: Option<String>,
}

fn completion_to_response(c: WireCompletion) -> Result<ChatResponse> {
    let Some(choice) = c.choices.into_iter().next() else {
        return Err(bad_answer("a completion without choices".into()));
    };
    Ok(ChatResponse {
        content: choice.message.content.unwrap_or_default(),
        usage: c.usage.map(Usage::from),
        finish_reason: FinishReason::parse(choice.finish_reason.as_deref().unwrap_or("stop")),
    })
}

/// The error for a stream that ended before the answer did.
fn cut_stream() -> Error {
    Error::new(
        Code::ModelUnavailable,
        "the model's answer stream ended before the answer was complete",
    )
}

struct StreamState {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    queue: VecDeque<Result<ChatDelta>>,
    idle: std::time::Duration,
    finished: bool,
    done: bool,
}

impl StreamState {
    /// Turns one event's data into queued items; marks the stream done at `[DONE]` or an error.
    fn on_data(&mut self, data: &str) {
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let chunk: WireChunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                self.queue
                    .push_back(Err(bad_answer(format!("unreadable stream chunk: {e}"))));
                self.done = true;
                return;
            }
        };
        if let Some(err) = chunk.error {
            let message = err["message"].as_str().unwrap_or("").to_owned();
            self.queue.push_back(Err(Error::new(
                Code::ModelUnavailable,
                "the model provider failed while streaming the answer",
            )
            .with_source(crate::http::BadAnswer(message))));
            self.done = true;
            return;
        }
        let mut delta = ChatDelta {
            usage: chunk.usage.map(Usage::from),
            ..ChatDelta::default()
        };
        if let Some(choice) = chunk.choices.into_iter().next() {
            delta.content = choice.delta.content.unwrap_or_default();
            delta.finish_reason = choice.finish_reason.as_deref().map(FinishReason::parse);
        }
        if delta.finish_reason.is_some() {
            self.finished = true;
        }
        if !delta.content.is_empty() || delta.finish_reason.is_some() || delta.usage.is_some() {
            self.queue.push_back(Ok(delta));
        }
    }

    async fn next_item(mut self) -> Option<(Result<ChatDelta>, StreamState)> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            match tokio::time::timeout(self.idle, self.body.next()).await {
                Err(_) => {
                    self.done = true;
                    let e = Error::new(
                        Code::ModelUnavailable,
                        "the model's answer stream stalled past stream_idle_timeout",
                    );
                    return Some((Err(e), self));
                }
                Ok(None) => {
                    self.done = true;
                    if !self.finished {
                        return Some((Err(cut_stream()), self));
                    }
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    if !self.finished {
                        let err =
                            Error::new(Code::ModelUnavailable, cut_stream().message).with_source(e);
                        return Some((Err(err), self));
                    }
                }
                Ok(Some(Ok(bytes))) => {
                    for event in self.parser.push(&bytes) {
                        if self.done {
                            break;
                        }
                        self.on_data(&event.data);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    fn model_id(&self) -> &str {
        &self.model
    }

    #[instrument(skip_all, fields(model = %self.model, messages = request.messages.len()))]
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let resp = self
            .endpoint
            .post_json("/chat/completions", &self.body(request, false), true)
            .await?;
        let completion: WireCompletion = self.endpoint.read_json(resp).await?;
        completion_to_response(completion)
    }

    #[instrument(skip_all, fields(model = %self.model, messages = request.messages.len()))]
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let resp = self
            .endpoint
            .post_json("/chat/completions", &self.body(request, true), false)
            .await?;
        let is_json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            let completion: WireCompletion = self.endpoint.read_json(resp).await?;
            let r = completion_to_response(completion)?;
            let delta = ChatDelta {
                content: r.content,
                finish_reason: Some(r.finish_reason),
                usage: r.usage,
            };
            return Ok(futures::stream::iter([Ok(delta)]).boxed());
        }
        let state = StreamState {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::new(),
            queue: VecDeque::new(),
            idle: self.endpoint.stream_idle_timeout,
            finished: false,
            done: false,
        };
        Ok(futures::stream::unfold(state, StreamState::next_item).boxed())
    }
}

/// Drains a stream into one answer: contents joined, the last `finish_reason` and `usage`
/// kept. Fails on the first error item, or if the stream ends without a `finish_reason`.
pub async fn collect_stream(mut stream: ChatStream) -> Result<ChatResponse> {
    let mut content = String::new();
    let mut usage = None;
    let mut finish = None;
    while let Some(item) = stream.next().await {
        let d = item?;
        content.push_str(&d.content);
        if d.usage.is_some() {
            usage = d.usage;
        }
        if d.finish_reason.is_some() {
            finish = d.finish_reason;
        }
    }
    let finish_reason = finish.ok_or_else(cut_stream)?;
    Ok(ChatResponse {
        content,
        usage,
        finish_reason,
    })
}
