//! A small typed client for a running docent server, used by CLI commands given `--url`.
//!
//! Every request goes through one retry layer ([`Client::send`]):
//!
//! - `429` and `503` mean "not handled, come back later": the request is sent again after the
//!   answer's `Retry-After` (seconds or an HTTP date; without one, capped exponential backoff),
//!   plus a little jitter so that many clients refused together do not return together, for up
//!   to [`MAX_RETRY_WAIT`] per request ([`MAX_OUTAGE_WAIT`] for `503`). Any request may be
//!   repeated after such an answer.
//! - A request that is safe to repeat whatever happened to it ([`Repeat::Always`]: reads,
//!   lookups, and uploads — the server keeps one document per content, so a repeated upload
//!   answers `duplicate`) is also sent again after a transport error (refused or reset
//!   connection, timeout), a few times with backoff. An upload re-opens its file each time.
//! - Uploads are paced by the `RateLimit-*` headers of the previous upload: with no token left,
//!   the next one waits for the next token instead of collecting a `429`. That matters beyond
//!   politeness: a server refuses an upload before reading its body, and a client still
//!   sending a large file then sees its connection reset, not the `429`.
//!
//! Failures say what happened: [`ApiError`] (the server's status, code and message) or
//! [`TransportError`] (what was being done, how many attempts, the kind of failure and the
//! whole cause chain).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use docent_domain::ports::Backoff;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// The longest one request waits in total for `Retry-After`s and backoff before its last
/// `429` is returned: a rate limit always lets the request through in the end.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);
/// The same for `503` and transport errors: an outage may not end soon, and a command should
/// say so rather than wait silently.
pub const MAX_OUTAGE_WAIT: Duration = Duration::from_secs(120);
/// Attempts of a repeatable request that meets transport errors.
const TRANSPORT_ATTEMPTS: u32 = 5;
/// Attempts of a request refused with 429/503 (each after the wait the server asked for).
const REFUSED_ATTEMPTS: u32 = 100;
/// Backoff between attempts when the server names no time.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(500),
    max: Duration::from_secs(30),
};

/// `builder` sending `DOCENT_TOKEN` (an API key or access token), when set, as
/// `Authorization: Bearer` on every request: what every `--url` command and benchmark uses.
pub fn with_token(builder: reqwest::ClientBuilder) -> anyhow::Result<reqwest::ClientBuilder> {
    let Some(token) = std::env::var("DOCENT_TOKEN").ok().filter(|t| !t.is_empty()) else {
        return Ok(builder);
    };
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("DOCENT_TOKEN holds characters a header cannot carry")?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(builder.default_headers(headers))
}

/// An error answer from the server.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The stable error code (`unknown` when the body had none).
    pub code: String,
    /// The server's message.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server answered {}: {}: {}",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// A request that got no answer.
#[derive(Debug)]
pub struct TransportError {
    /// What was being done (`GET /api/v1/…`, `uploading a.pdf (1.2 MiB)`).
    pub what: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub source: reqwest::Error,
}

impl TransportError {
    /// The kind of failure, in words.
    pub fn kind(&self) -> &'static str {
        let e = &self.source;
        if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect to the server"
        } else if e.is_body() || e.is_request() {
            "the connection failed while the request was being sent"
        } else if e.is_decode() {
            "the answer could not be read"
        } else {
            "the request failed"
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tries = match self.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        write!(f, "{}: {} ({tries})", self.what, self.kind())?;
        let mut cause: Option<&dyn std::error::Error> = Some(&self.source);
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}

/// Whether a request may be sent again after it got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, lookups and uploads: repeating them changes nothing.
    Always,
    /// Only after an answer saying it was not handled (429, 503).
    WhenRefused,
}

/// Called before each retry with what happened and how long the wait is.
pub type RetryNotice = Arc<dyn Fn(&str, Duration) + Send + Sync>;

/// Client for one server.
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// The earliest time the next upload should go (from the last upload's `RateLimit-*`).
    next_upload: Mutex<Option<Instant>>,
    on_retry: Option<RetryNotice>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`). With `auth.mode = "builtin"` on the
    /// server, `DOCENT_TOKEN` (an API key or access token) is sent as `Authorization: Bearer`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url must start with http:// or https://");
        }
        let http = with_token(reqwest::Client::builder())?
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base,
            http,
            next_upload: Mutex::new(None),
            on_retry: None,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Calls `notice` before each retry (e.g. to show it next to a progress bar).
    pub fn on_retry(&mut self, notice: RetryNotice) {
        self.on_retry = Some(notice);
    }

    /// Sends the request `build` makes (again for each attempt), retrying as the module docs
    /// say. Any answer that is not retried is returned, success or not.
    pub async fn send(
        &self,
        what: &str,
        repeat: Repeat,
        build: impl Fn() -> anyhow::Result<RequestBuilder>,
    ) -> anyhow::Result<Response> {
        let mut attempts = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempts += 1;
            let (wait, why) = match build()?.send().await {
                Ok(resp) if refused(resp.status()) => {
                    let asked = docent_llm::http::retry_after(resp.headers(), SystemTime::now());
                    let wait = match asked {
                        Some(d) => d + jitter(d),
                        None => BACKOFF.delay(attempts),
                    };
                    let budget = if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                        MAX_RETRY_WAIT
                    } else {
                        MAX_OUTAGE_WAIT
                    };
                    if attempts >= REFUSED_ATTEMPTS || waited + wait > budget {
                        return Ok(resp);
                    }
                    (
                        wait,
                        format!("{what}: the server answered {}", resp.status()),
                    )
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_builder() => return Err(e).context(what.to_owned()),
                Err(source) => {
                    let wait = BACKOFF.delay(attempts);
                    let failure = TransportError {
                        what: what.to_owned(),
                        attempts,
                        source,
                    };
                    if repeat == Repeat::WhenRefused
                        || attempts >= TRANSPORT_ATTEMPTS
                        || waited + wait > MAX_OUTAGE_WAIT
                    {
                        return Err(failure.into());
                    }
                    (wait, failure.to_string())
                }
            };
            match &self.on_retry {
                Some(notice) => notice(&why, wait),
                None => tracing::info!(
                    attempt = attempts,
                    wait_ms = wait.as_millis() as u64,
                    %why,
                    "retrying"
                ),
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    /// Sends `method path` with an optional JSON body and reads the JSON answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let repeat = if matches!(method, Method::GET | Method::HEAD | Method::DELETE) {
            Repeat::Always
        } else {
            Repeat::WhenRefused
        };
        let url = format!("{}{path}", self.base);
        let what = format!("{method} {path}");
        let resp = self
            .send(&what, repeat, || {
                let req = self.http.request(method.clone(), &url);
                Ok(match body {
                    Some(b) => req.json(b),
                    None => req,
                })
            })
            .await?;
        Self::json(resp).await
    }

    /// The JSON body of a success; an error answer as [`ApiError`].
    async fn json(resp: Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(ApiError {
                status,
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
                message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
            }
            .into());
        }
        Ok(body)
    }

    /// GET a JSON resource.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// PATCH JSON.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// DELETE a resource.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// Whether the server answers `/health` at all (one attempt, a few seconds).
    pub async fn reachable(&self) -> bool {
        self.http
            .get(format!("{}/health", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok()
    }

    /// The collection named `name`, if it exists.
    async fn find_collection(&self, name: &str) -> anyhow::Result<Option<Value>> {
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/collections?limit=200&cursor={c}"),
                None => "/api/v1/collections?limit=200".to_owned(),
            };
            let page = self.get(&path).await?;
            if let Some(c) = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == name)
            {
                return Ok(Some(c.clone()));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(None),
            }
        }
    }

    /// The id of the collection named `name`, created (with `language`, when given) if missing.
    /// An existing collection of another language is an error: the language is fixed.
    pub async fn collection_id(
        &self,
        name: &str,
        language: Option<&str>,
    ) -> anyhow::Result<String> {
        if let Some(c) = self.find_collection(name).await? {
            if let Some(want) = language
                && c["language"].as_str() != Some(want)
            {
                bail!(
                    "collection `{name}` exists with language `{}`; a collection's language is fixed at creation",
                    c["language"].as_str().unwrap_or("?")
                );
            }
            return Ok(c["id"].as_str().unwrap_or_default().to_owned());
        }
        let mut body = serde_json::json!({ "name": name });
        if let Some(l) = language {
            body["language"] = l.into();
        }
        let created = self.post("/api/v1/collections", &body).await?;
        Ok(created["id"].as_str().unwrap_or_default().to_owned())
    }

    /// The id of the existing collection named `name`.
    pub async fn existing_collection_id(&self, name: &str) -> anyhow::Result<String> {
        match self.find_collection(name).await? {
            Some(c) => Ok(c["id"].as_str().unwrap_or_default().to_owned()),
            None => bail!("no collection named `{name}`"),
        }
    }

    /// Uploads a file of `size` bytes (streamed from disk, re-opened for each attempt) into a
    /// collection, after the pause the previous upload's rate-limit headers asked for.
    pub async fn upload(&self, collection: &str, path: &Path, size: u64) -> anyhow::Result<Value> {
        let due = *self.next_upload.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("upload")
            .to_owned();
        let url = format!("{}/api/v1/collections/{collection}/documents", self.base);
        let what = format!(
            "uploading {} ({})",
            path.display(),
            bytesize::ByteSize::b(size).display().iec()
        );
        let resp = self
            .send(&what, Repeat::Always, || {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::wrap_stream(stream),
                    size,
                )
                .file_name(name.clone());
                let form = reqwest::multipart::Form::new().part("file", part);
                Ok(self.http.post(&url).multipart(form))
            })
            .await?;
        *self.next_upload.lock().unwrap_or_else(|p| p.into_inner()) =
            next_token(resp.headers()).map(|d| Instant::now() + d);
        Self::json(resp).await
    }
}

/// Whether an answer means "not handled; come back later".
fn refused(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// Up to a tenth of `d` (at most a second) at random.
fn jitter(d: Duration) -> Duration {
    let bound = (d / 10).min(Duration::from_secs(1));
    Duration::from_micros(rand::random_range(0..=bound.as_micros() as u64))
}

/// With no request left in the bucket (`RateLimit-Remaining: 0`), the time until the next one:
/// the bucket refills `RateLimit-Limit` requests in `RateLimit-Reset` seconds.
fn next_token(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let num = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let (limit, remaining, reset) = (
        num("ratelimit-limit")?,
        num("ratelimit-remaining")?,
        num("ratelimit-reset")?,
    );
    (remaining == 0 && limit > 0)
        .then(|| Duration::from_secs(reset).div_f64(limit as f64))
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;

    /// A fake server: `/api/v1/collections/c/documents` answers `429` with `retry` as
    /// `Retry-After` for the first `refusals` requests, then `202` with the number of body
    /// bytes it read and an empty rate-limit bucket; the time and body size of each request
    /// are kept.
    async fn fake(refusals: usize, retry: String) -> (String, Arc<Mutex<Vec<(Instant, usize)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let log = seen.clone();
        let app = Router::new().route(
            "/api/v1/collections/c/documents",
            axum::routing::post(move |_: HeaderMap, body: axum::body::Body| {
                let (calls, log, retry) = (calls.clone(), log.clone(), retry.clone());
                async move {
                    // Read whole, even when refused: this checks Retry-After, not what a client
                    // sees when a server answers before reading the body.
                    let bytes: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                    log.lock().unwrap().push((Instant::now(), bytes.len()));
                    if calls.fetch_add(1, Ordering::SeqCst) < refusals {
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", retry)],
                            r#"{"error":{"code":"rate_limited","message":"slow down"}}"#,
                        )
                            .into_response();
                    }
                    (
                        StatusCode::ACCEPTED,
                        [
                            ("ratelimit-limit", "2".to_owned()),
                            ("ratelimit-remaining", "0".to_owned()),
                            ("ratelimit-reset", "2".to_owned()),
                        ],
                        format!(r#"{{"read": {}}}"#, bytes.len()),
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn file_of(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn a_refused_upload_waits_for_retry_after_and_resends_the_whole_file() {
        let (base, seen) = fake(1, "1".into()).await;
        let (_dir, path) = file_of(300_000);
        let mut client = Client::new(&base).unwrap();
        let notices = Arc::new(Mutex::new(Vec::new()));
        let n = notices.clone();
        client.on_retry(Arc::new(move |why: &str, wait| {
            n.lock().unwrap().push((why.to_owned(), wait));
        }));
        let answer = client.upload("c", &path, 300_000).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "one refusal, one retry");
        assert!(
            seen[1].0 - seen[0].0 >= Duration::from_secs(1),
            "Retry-After honoured: {:?}",
            seen[1].0 - seen[0].0
        );
        // Each attempt's multipart body carries the whole file (plus its framing).
        assert!(seen.iter().all(|(_, len)| *len > 300_000), "{seen:?}");
        assert!(answer["read"].as_u64().unwrap() > 300_000);
        let notices = notices.lock().unwrap();
        assert_eq!(notices.len(), 1);
        assert!(notices[0].0.contains("429"), "{notices:?}");
        assert!(notices[0].1 >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retry_after_as_an_http_date_is_honoured() {
        let at = SystemTime::now() + Duration::from_secs(2);
        let (base, seen) = fake(1, httpdate::fmt_http_date(at)).await;
        let (_dir, path) = file_of(10);
        Client::new(&base)
            .unwrap()
            .upload("c", &path, 10)
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        // The date has whole seconds: at least the one second left after rounding down.
        assert!(seen[1].0 - seen[0].0 >= Duration::from_secs(1), "{seen:?}");
    }

    #[tokio::test]
    async fn uploads_are_paced_by_the_rate_limit_headers() {
        // No refusals; each answer says the bucket (2 per 2 s) is empty: the next upload
        // waits for its token.
        let (base, seen) = fake(0, "1".into()).await;
        let (_dir, path) = file_of(10);
        let client = Client::new(&base).unwrap();
        client.upload("c", &path, 10).await.unwrap();
        client.upload("c", &path, 10).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen[1].0 - seen[0].0 >= Duration::from_secs(1), "{seen:?}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_with_the_cause() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = client
            .post("/api/v1/collections", &serde_json::json!({}))
            .await
            .unwrap_err();
        let t = err
            .downcast_ref::<TransportError>()
            .expect("a transport error");
        assert_eq!(
            t.attempts, 1,
            "a POST is not repeated after a transport error"
        );
        let text = err.to_string();
        assert!(
            text.contains("POST /api/v1/collections: could not connect to the server (1 attempt)"),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}
