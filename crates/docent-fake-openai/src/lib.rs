//! A fake OpenAI-compatible server for tests: the real wire shapes, deterministic answers,
//! injected faults, and a log of every request.
//!
//! Endpoints (under `/v1`):
//! - `POST /v1/chat/completions`: non-streamed (`chat.completion` with `usage` and
//!   `finish_reason`) and streamed (`data: {chunk}` server-sent events, a final chunk with
//!   `finish_reason`, a usage chunk when `stream_options.include_usage`, then `data: [DONE]`).
//!   Answers follow the rule in [`answer`]: echo the numbered sources that match the question
//!   with `[n]` markers, a scripted reply for a question containing its trigger, or a
//!   configured fixed reply.
//! - `POST /v1/embeddings`: hashed bag-of-words vectors ([`answer::embed`]), `dimensions`
//!   honoured, `float` or `base64` encoding, `usage` counted.
//! - `GET /v1/models`.
//!
//! Errors use OpenAI's envelope `{"error":{"message","type","param","code"}}`.
//!
//! Faults ([`Faults`]) hit chat and embedding requests: a share answered `429` with
//! `Retry-After` (and `retry-after-ms`), a share answered `500`, a share of streams cut before
//! they finish, and added latency. Shares are spread evenly and deterministically (a
//! golden-ratio sequence over the request count, offset by `seed`), so a share of 0.3 never
//! fails two requests in a row; a [`Faults::script`] of faults is served first, one per request.
//! [`Faults::reject_inputs_containing`] refuses embeddings requests holding a marked input
//! (`400`), like a provider refusing one bad row of a batch.
//!
//! Every request is logged ([`LogEntry`]: time, path, status, tokens, fault) in memory and,
//! with [`FakeConfig::log_file`], as JSON lines. A [`RateCheck`] marks requests that arrive
//! faster than a budget; [`FakeServer::max_requests_in`] measures the busiest window.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let fake = docent_fake_openai::FakeServer::start(Default::default()).await?;
//! let base_url = fake.base_url(); // http://127.0.0.1:PORT/v1
//! # Ok(()) }
//! ```

pub mod answer;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The fake's settings.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Embedding dimension when the request does not ask for `dimensions`.
    pub dimension: usize,
    /// Model ids served; a request for another answers `404 model_not_found`.
    pub models: Vec<String>,
    /// Answer every chat with this text instead of the source-echo rule.
    pub fixed_reply: Option<String>,
    /// Scripted answers: a chat whose last user message contains the first text is answered
    /// with the second (the first match wins; before `fixed_reply` and the source-echo rule).
    pub replies: Vec<(String, String)>,
    /// When set, requests need `Authorization: Bearer <key>` or `api-key: <key>`.
    pub api_key: Option<String>,
    /// Injected faults.
    pub faults: Faults,
    /// Budget the fake checks arrivals against.
    pub rate_check: Option<RateCheck>,
    /// Append each log entry as a JSON line to this file.
    pub log_file: Option<PathBuf>,
    /// Pause between streamed chunks.
    pub chunk_delay: Duration,
    /// Most inputs one embeddings request may carry (OpenAI: 2048).
    pub max_embedding_inputs: usize,
    /// Most tokens one embeddings request may carry (OpenAI: 300 000).
    pub max_embedding_tokens: u32,
}

/// Model id of the fake chat model in the default config.
pub const CHAT_MODEL: &str = "fake-chat";
/// Model id of the fake embedding model in the default config.
pub const EMBED_MODEL: &str = "fake-embed";

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            dimension: 64,
            models: vec![CHAT_MODEL.to_owned(), EMBED_MODEL.to_owned()],
            fixed_reply: None,
            replies: Vec::new(),
            api_key: None,
            faults: Faults::default(),
            rate_check: None,
            log_file: None,
            chunk_delay: Duration::ZERO,
            max_embedding_inputs: 2048,
            max_embedding_tokens: 300_000,
        }
    }
}

/// How a `429` says when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// No header.
    None,
    /// `Retry-After: <seconds>` (the default: one second).
    Seconds(u64),
    /// `retry-after-ms: <ms>` plus `Retry-After: <ceil seconds>` (as OpenAI sends).
    Millis(u64),
    /// `Retry-After: <HTTP date>` this far in the future (whole seconds).
    Date(Duration),
}

impl Default for RetryAfter {
    fn default() -> Self {
        RetryAfter::Seconds(1)
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// `429 rate_limit_exceeded`.
    RateLimited(RetryAfter),
    /// `500 server_error`.
    ServerError,
    /// A streamed answer cut after half its content, before `finish_reason` and `[DONE]`
    /// (a non-streamed request answers normally).
    Truncate,
}

impl Fault {
    fn label(self) -> Option<&'static str> {
        match self {
            Fault::None => None,
            Fault::RateLimited(_) => Some("rate_limited"),
            Fault::ServerError => Some("server_error"),
            Fault::Truncate => Some("truncated"),
        }
    }
}

/// Faults injected into chat and embedding requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of requests answered `429`.
    pub rate_limit_share: f64,
    /// What those `429`s say about retrying.
    pub retry_after: RetryAfter,
    /// Share of requests answered `500`.
    pub server_error_share: f64,
    /// Share of streamed requests cut before they finish.
    pub truncate_share: f64,
    /// Added before every answer.
    pub latency: Duration,
    /// Offsets the fault sequence.
    pub seed: u64,
    /// Served first, one per request, before the shares apply.
    pub script: Vec<Fault>,
    /// Refuse any embeddings request with an input containing this string:
    /// `400 invalid_request_error` (as OpenAI answers an input it will not embed), so the
    /// client has to find the offending inputs.
    pub reject_inputs_containing: Option<String>,
}

/// A budget the fake checks: more than `max_requests` arrivals within `window - tolerance`
/// marks the request `over_budget` and counts a violation. The tolerance absorbs scheduling
/// jitter between a client's send and the fake's clock.
#[derive(Debug, Clone, Copy)]
pub struct RateCheck {
    /// Allowed requests per window.
    pub max_requests: usize,
    /// The window.
    pub window: Duration,
    /// Subtracted from the window.
    pub tolerance: Duration,
}

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Wall-clock arrival time (RFC 3339).
    pub ts: String,
    /// Milliseconds since the fake started, at arrival (monotonic).
    pub t_ms: f64,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Model asked for.
    pub model: Option<String>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// Embedding inputs in the request.
    pub inputs: Option<usize>,
    /// Prompt (or embedding input) tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Prompt plus completion tokens.
    pub tokens: u32,
    /// Injected fault, if any.
    pub fault: Option<&'static str>,
    /// The request arrived faster than the [`RateCheck`] allows.
    pub over_budget: bool,
}

struct Inner {
    faults: Faults,
    script: VecDeque<Fault>,
    counter: u64,
    log: Vec<LogEntry>,
    arrivals: VecDeque<Instant>,
    violations: usize,
    next_id: u64,
}

struct Shared {
    config: FakeConfig,
    started: Instant,
    inner: Mutex<Inner>,
    log_file: Option<Mutex<File>>,
}

struct Arrival {
    ts: String,
    t_ms: f64,
    over_budget: bool,
}

impl Shared {
    fn arrive(&self) -> Arrival {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        let mut over_budget = false;
        if let Some(rc) = self.config.rate_check {
            let span = rc.window.saturating_sub(rc.tolerance);
            while inner
                .arrivals
                .front()
                .is_some_and(|t| now.duration_since(*t) >= span)
            {
                inner.arrivals.pop_front();
            }
            inner.arrivals.push_back(now);
            if inner.arrivals.len() > rc.max_requests {
                over_budget = true;
                inner.violations += 1;
            }
        }
        Arrival {
            ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            t_ms: now.duration_since(self.started).as_secs_f64() * 1000.0,
            over_budget,
        }
    }

    fn decide(&self, streamed: bool) -> Fault {
        const GOLDEN: f64 = 0.618_033_988_749_894_9;
        let mut inner = self.inner.lock().unwrap();
        if let Some(f) = inner.script.pop_front() {
            return f;
        }
        let n = inner.counter;
        inner.counter += 1;
        let f = &inner.faults;
        let u = (f.seed as f64 * 0.754_877_666_246_692_7 + (n + 1) as f64 * GOLDEN).fract();
        let (rl, se, tr) = (f.rate_limit_share, f.server_error_share, f.truncate_share);
        if u < rl {
            Fault::RateLimited(f.retry_after)
        } else if u < rl + se {
            Fault::ServerError
        } else if streamed && u < rl + se + tr {
            Fault::Truncate
        } else {
            Fault::None
        }
    }

    fn latency(&self) -> Duration {
        self.inner.lock().unwrap().faults.latency
    }

    fn next_id(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        inner.next_id
    }

    fn record(&self, entry: LogEntry) {
        if let Some(file) = &self.log_file
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let mut f = file.lock().unwrap();
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
        self.inner.lock().unwrap().log.push(entry);
    }
}

/// A running fake server. Dropping it stops the server.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeServer {
    /// Starts the fake on `127.0.0.1` on a free port.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeServer> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts the fake on `addr`.
    pub async fn bind(addr: SocketAddr, config: FakeConfig) -> std::io::Result<FakeServer> {
        let log_file = match &config.log_file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                script: config.faults.script.iter().copied().collect(),
                faults: config.faults.clone(),
                counter: 0,
                log: Vec::new(),
                arrivals: VecDeque::new(),
                violations: 0,
                next_id: 0,
            }),
            config,
            log_file,
        });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeServer {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use, ending in `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far, in the order they finished.
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.inner.lock().unwrap().log.clone()
    }

    /// Forgets the log (the fault sequence goes on).
    pub fn clear_log(&self) {
        self.shared.inner.lock().unwrap().log.clear();
    }

    /// Replaces the faults (and their script) for the requests to come.
    pub fn set_faults(&self, faults: Faults) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.script = faults.script.iter().copied().collect();
        inner.faults = faults;
    }

    /// Requests the [`RateCheck`] marked over budget.
    pub fn rate_violations(&self) -> usize {
        self.shared.inner.lock().unwrap().violations
    }

    /// The most requests (any path) that arrived within any span shorter than `window`.
    pub fn max_requests_in(&self, window: Duration) -> usize {
        let mut times: Vec<f64> = self.log().iter().map(|e| e.t_ms).collect();
        max_in_window(&mut times, window)
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The most of `times_ms` (arrival times in milliseconds, any order) within any span shorter
/// than `window`.
pub fn max_in_window(times_ms: &mut [f64], window: Duration) -> usize {
    times_ms.sort_by(f64::total_cmp);
    let w = window.as_secs_f64() * 1000.0;
    let mut best = 0;
    let mut start = 0;
    for end in 0..times_ms.len() {
        while times_ms[end] - times_ms[start] >= w {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .with_state(shared)
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": { "message": message, "type": kind, "param": null, "code": code }
        })),
    )
        .into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(key) = &shared.config.api_key else {
        return true;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let api_key = headers.get("api-key").and_then(|v| v.to_str().ok());
    bearer == Some(key.as_str()) || api_key == Some(key.as_str())
}

fn fault_response(fault: Fault) -> Option<Response> {
    match fault {
        Fault::None | Fault::Truncate => None,
        Fault::ServerError => Some(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        )),
        Fault::RateLimited(after) => {
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests. Please try again later.",
            );
            let h = resp.headers_mut();
            let mut set = |name: &'static str, value: String| {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            };
            match after {
                RetryAfter::None => {}
                RetryAfter::Seconds(s) => set("retry-after", s.to_string()),
                RetryAfter::Millis(ms) => {
                    set("retry-after-ms", ms.to_string());
                    set("retry-after", ms.div_ceil(1000).to_string());
                }
                RetryAfter::Date(d) => set(
                    "retry-after",
                    httpdate::fmt_http_date(SystemTime::now() + d),
                ),
            }
            Some(resp)
        }
    }
}

/// What a handler learned, for the log.
#[derive(Default)]
struct Seen {
    model: Option<String>,
    stream: bool,
    inputs: Option<usize>,
    prompt_tokens: u32,
    completion_tokens: u32,
    fault: Option<&'static str>,
}

fn log_entry(shared: &Shared, arrival: Arrival, path: &str, method: &str, status: u16, seen: Seen) {
    shared.record(LogEntry {
        ts: arrival.ts,
        t_ms: arrival.t_ms,
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        model: seen.model,
        stream: seen.stream,
        inputs: seen.inputs,
        prompt_tokens: seen.prompt_tokens,
        completion_tokens: seen.completion_tokens,
        tokens: seen.prompt_tokens + seen.completion_tokens,
        fault: seen.fault,
        over_budget: arrival.over_budget,
    });
}

// A response is the natural error of a handler step; size does not matter in a test server.
#[allow(clippy::result_large_err)]
fn parse_body(body: &Bytes) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            &format!("We could not parse the JSON body of your request. ({e})"),
        )
    })?;
    if !value.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "The request body must be a JSON object.",
        ));
    }
    Ok(value)
}

/// Common front of chat and embeddings: rate check, latency, auth, body, model, fault.
#[allow(clippy::result_large_err)]
async fn front(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    path: &str,
) -> Result<(Value, Fault, Arrival, Seen), Response> {
    let arrival = shared.arrive();
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut seen = Seen::default();
    let fail = |arrival: Arrival, seen: Seen, resp: Response| {
        log_entry(shared, arrival, path, "POST", resp.status().as_u16(), seen);
        resp
    };
    if !authorized(shared, headers) {
        let resp = error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
        return Err(fail(arrival, seen, resp));
    }
    let value = match parse_body(body) {
        Ok(v) => v,
        Err(resp) => return Err(fail(arrival, seen, resp)),
    };
    seen.stream = value["stream"].as_bool().unwrap_or(false);
    let model = value["model"].as_str().unwrap_or_default().to_owned();
    seen.model = Some(model.clone());
    let fault = shared.decide(seen.stream);
    seen.fault = fault.label();
    if let Some(resp) = fault_response(fault) {
        return Err(fail(arrival, seen, resp));
    }
    if !shared.config.models.contains(&model) {
        let resp = error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            &format!("The model `{model}` does not exist or you do not have access to it."),
        );
        return Err(fail(arrival, seen, resp));
    }
    Ok((value, fault, arrival, seen))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        None,
        message,
    )
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    const PATH: &str = "/v1/chat/completions";
    let (req, fault, arrival, mut seen) = match front(&shared, &headers, &body, PATH).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        let resp = invalid("'messages' must be a non-empty array.");
        log_entry(&shared, arrival, PATH, "POST", 400, seen);
        return resp;
    };
    let mut pairs = Vec::new();
    for m in messages {
        let (Some(role), Some(content)) = (m["role"].as_str(), m["content"].as_str()) else {
            let resp = invalid("Each message needs a string 'role' and 'content'.");
            log_entry(&shared, arrival, PATH, "POST", 400, seen);
            return resp;
        };
        pairs.push((role, content));
    }
    let stop: Vec<String> = match &req["stop"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let max_tokens = req["max_completion_tokens"]
        .as_u64()
        .or(req["max_tokens"].as_u64())
        .map(|n| n.min(u64::from(u32::MAX)) as u32);
    let last_user = pairs
        .iter()
        .rev()
        .find(|(role, _)| *role == "user")
        .map_or("", |(_, c)| *c);
    let scripted = shared
        .config
        .replies
        .iter()
        .find(|(trigger, _)| last_user.contains(trigger.as_str()))
        .map(|(_, reply)| reply.as_str());
    let reply = answer::answer(&pairs, scripted.or(shared.config.fixed_reply.as_deref()));
    let (reply, cut) = answer::limit(reply, &stop, max_tokens);
    let finish = if cut { "length" } else { "stop" };
    let prompt_tokens: u32 = pairs.iter().map(|(_, c)| answer::count_tokens(c) + 4).sum();
    let completion_tokens = answer::count_tokens(&reply);
    seen.prompt_tokens = prompt_tokens;
    seen.completion_tokens = completion_tokens;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let model = seen.model.clone().unwrap_or_default();
    let id = format!("chatcmpl-fake{}", shared.next_id());
    let created = unix_now();
    log_entry(&shared, arrival, PATH, "POST", 200, seen_clone(&seen));

    if !req["stream"].as_bool().unwrap_or(false) {
        return axum::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": reply, "refusal": null },
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": usage,
        }))
        .into_response();
    }

    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let pieces = split_words(&reply);
    let total = pieces.len();
    let keep = if fault == Fault::Truncate {
        total / 2
    } else {
        total
    };
    for p in pieces.into_iter().take(keep) {
        events.push(chunk(json!({ "content": p }), None));
    }
    let mut lines: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    if fault != Fault::Truncate {
        lines.push(format!("data: {}\n\n", chunk(json!({}), Some(finish))));
        if include_usage {
            let mut u = chunk(json!({}), None);
            u["choices"] = json!([]);
            u["usage"] = usage;
            lines.push(format!("data: {u}\n\n"));
        }
        lines.push("data: [DONE]\n\n".to_owned());
    }
    let delay = shared.config.chunk_delay;
    let stream =
        futures::stream::iter(lines.into_iter().enumerate()).then(move |(i, line)| async move {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, std::convert::Infallible>(Bytes::from(line))
        });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn seen_clone(s: &Seen) -> Seen {
    Seen {
        model: s.model.clone(),
        stream: s.stream,
        inputs: s.inputs,
        prompt_tokens: s.prompt_tokens,
        completion_tokens: s.completion_tokens,
        fault: s.fault,
    }
}

/// Splits text into streamed pieces: each word with the whitespace before it.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_whitespace() && !cur.trim().is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const PATH: &str = "/v1/embeddings";
    let (req, _fault, arrival, mut seen) = match front(&shared, &headers, &body, PATH).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    // Token arrays: embed the token numbers as words.
                    Value::Array(toks) => out.push(
                        toks.iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    _ => {
                        log_entry(&shared, arrival, PATH, "POST", 400, seen);
                        return invalid("'$.input' is invalid.");
                    }
                }
            }
            out
        }
        _ => {
            log_entry(&shared, arrival, PATH, "POST", 400, seen);
            return invalid("'$.input' is invalid. It must be a string or a non-empty array.");
        }
    };
    seen.inputs = Some(inputs.len());
    let reject = shared
        .inner
        .lock()
        .unwrap()
        .faults
        .reject_inputs_containing
        .clone();
    if let Some(marker) = reject.filter(|m| !m.is_empty())
        && let Some(i) = inputs.iter().position(|t| t.contains(&marker))
    {
        log_entry(&shared, arrival, PATH, "POST", 400, seen);
        return invalid(&format!("'$.input[{i}]' cannot be embedded."));
    }
    let tokens: u32 = inputs.iter().map(|s| answer::count_tokens(s)).sum();
    seen.prompt_tokens = tokens;
    if inputs.len() > shared.config.max_embedding_inputs {
        log_entry(&shared, arrival, PATH, "POST", 400, seen);
        return invalid(&format!(
            "'$.input' is too long: at most {} inputs per request.",
            shared.config.max_embedding_inputs
        ));
    }
    if tokens > shared.config.max_embedding_tokens {
        log_entry(&shared, arrival, PATH, "POST", 400, seen);
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("max_tokens_per_request"),
            &format!(
                "Requested {tokens} tokens, max {} tokens per request",
                shared.config.max_embedding_tokens
            ),
        );
    }
    let dimension = match &req["dimensions"] {
        Value::Null => shared.config.dimension,
        v => match v.as_u64().filter(|d| (1..=8192).contains(d)) {
            Some(d) => d as usize,
            None => {
                log_entry(&shared, arrival, PATH, "POST", 400, seen);
                return invalid("'dimensions' must be an integer between 1 and 8192.");
            }
        },
    };
    let base64 = req["encoding_format"].as_str() == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = answer::embed(text, dimension);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    let model = seen.model.clone().unwrap_or_default();
    log_entry(&shared, arrival, PATH, "POST", 200, seen);
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
    .into_response()
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let arrival = shared.arrive();
    if !authorized(&shared, &headers) {
        log_entry(&shared, arrival, "/v1/models", "GET", 401, Seen::default());
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        );
    }
    let created = unix_now();
    let data: Vec<Value> = shared
        .config
        .models
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": created, "owned_by": "docent-fake" }))
        .collect();
    log_entry(&shared, arrival, "/v1/models", "GET", 200, Seen::default());
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

async fn not_found(State(shared): State<Arc<Shared>>, req: axum::extract::Request) -> Response {
    let arrival = shared.arrive();
    let path = req.uri().path().to_owned();
    log_entry(
        &shared,
        arrival,
        &path,
        req.method().as_str(),
        404,
        Seen::default(),
    );
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!("Invalid URL ({} {path})", req.method()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_spans_shorter_than_the_window() {
        let mut t = vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0];
        assert_eq!(max_in_window(&mut t, Duration::from_secs(1)), 5);
        assert_eq!(max_in_window(&mut t, Duration::from_millis(1001)), 6);
        assert_eq!(max_in_window(&mut [], Duration::from_secs(1)), 0);
    }

    #[test]
    fn fault_shares_are_spread_evenly() {
        let shared = Shared {
            config: FakeConfig::default(),
            started: Instant::now(),
            inner: Mutex::new(Inner {
                faults: Faults {
                    rate_limit_share: 0.15,
                    server_error_share: 0.15,
                    ..Faults::default()
                },
                script: VecDeque::new(),
                counter: 0,
                log: Vec::new(),
                arrivals: VecDeque::new(),
                violations: 0,
                next_id: 0,
            }),
            log_file: None,
        };
        let faults: Vec<bool> = (0..1000)
            .map(|_| shared.decide(false) != Fault::None)
            .collect();
        let n = faults.iter().filter(|f| **f).count();
        assert!((280..=320).contains(&n), "{n}");
        assert!(
            faults.windows(2).all(|w| !(w[0] && w[1])),
            "no two faults in a row"
        );
    }

    #[test]
    fn split_keeps_all_text() {
        let s = split_words("a bc  d [1]");
        assert_eq!(s.concat(), "a bc  d [1]");
        assert_eq!(s.len(), 4);
    }
}
