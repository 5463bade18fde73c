//! The HTTP side shared by the chat client and the embedder: one `reqwest` client per
//! provider, authentication headers, and the mapping of provider answers to docent errors.
//!
//! | provider answer                                  | code                  | retried by `Budgeted` |
//! |--------------------------------------------------|-----------------------|-----------------------|
//! | 429                                              | `model_rate_limited`  | yes, after `Retry-After` |
//! | 408, 409, 425, 5xx, timeout, connection failure | `model_unavailable`   | yes, with backoff     |
//! | other 4xx, unreadable body, wrong shape          | `model_error`         | no                    |
//!
//! Caller-facing messages carry the status and the provider's error code only; the provider's
//! message goes to the error's source (logs), with the API key scrubbed should it be echoed.

use std::time::{Duration, SystemTime};

use docent_domain::{Code, Error, Result};
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::config::{AuthScheme, ProviderConfig, SharedApiKey};

/// What a provider said when it refused a request (kept as an error's source, for logs).
#[derive(Debug, thiserror::Error)]
#[error("provider answered HTTP {status}: {kind} {code}: {message}")]
pub struct ProviderError {
    /// HTTP status.
    pub status: u16,
    /// `error.type`.
    pub kind: String,
    /// `error.code`.
    pub code: String,
    /// `error.message`, API key scrubbed.
    pub message: String,
}

/// A malformed answer (kept as an error's source).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadAnswer(pub String);

/// One provider endpoint.
#[derive(Clone)]
pub(crate) struct Endpoint {
    client: reqwest::Client,
    base: String,
    scheme: AuthScheme,
    /// Read on every request, so a rotated key takes effect at once.
    key: SharedApiKey,
    api_version: Option<String>,
    pub(crate) request_timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
}

/// The header carrying `key` in `scheme`, marked sensitive.
fn auth_header(
    scheme: AuthScheme,
    key: Option<&SecretString>,
) -> Result<Option<(reqwest::header::HeaderName, HeaderValue)>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let (name, value) = match scheme {
        AuthScheme::Bearer => (
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", key.expose_secret()),
        ),
        AuthScheme::ApiKeyHeader => (
            reqwest::header::HeaderName::from_static("api-key"),
            key.expose_secret().to_owned(),
        ),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        Error::new(
            Code::InvalidField,
            "api_key holds characters not allowed in a header",
        )
    })?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

impl Endpoint {
    pub(crate) fn new(cfg: &ProviderConfig) -> Result<Endpoint> {
        cfg.validate()?;
        let key = match &cfg.shared_key {
            Some(shared) => shared.clone(),
            None => SharedApiKey::new(cfg.resolve_api_key()?),
        };
        // A key that cannot be sent is refused at start, not on the first request.
        auth_header(cfg.auth, key.get().as_ref())?;
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .user_agent(concat!("docent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(Endpoint {
            client,
            base: cfg.base_url.trim_end_matches('/').to_owned(),
            scheme: cfg.auth,
            key,
            api_version: cfg.api_version.clone(),
            request_timeout: cfg.request_timeout,
            stream_idle_timeout: cfg.stream_idle_timeout,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&SecretString>,
    ) -> Result<reqwest::RequestBuilder> {
        let mut url = format!("{}{path}", self.base);
        if let Some(v) = &self.api_version
            && let Ok(mut parsed) = reqwest::Url::parse(&url)
        {
            parsed.query_pairs_mut().append_pair("api-version", v);
            url = parsed.into();
        }
        let mut rb = self.client.request(method, url);
        if let Some((name, value)) = auth_header(self.scheme, key)? {
            rb = rb.header(name, value);
        }
        Ok(rb)
    }

    /// Sends a JSON POST and returns the response once its headers arrive with a success
    /// status; failures are mapped to docent errors. `timeout` bounds the whole exchange when
    /// set (non-streamed calls); otherwise only the wait for headers is bounded.
    pub(crate) async fn post_json<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        whole_timeout: bool,
    ) -> Result<reqwest::Response> {
        let key = self.key.get();
        let mut rb = self
            .request(reqwest::Method::POST, path, key.as_ref())?
            .json(body);
        if whole_timeout {
            rb = rb.timeout(self.request_timeout);
        }
        let resp = match tokio::time::timeout(self.request_timeout, rb.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(transport_error(e)),
            Err(_) => return Err(timed_out()),
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match tokio::time::timeout(self.request_timeout, resp.bytes()).await {
            Ok(Ok(b)) => b,
            _ => Default::default(),
        };
        Err(status_error(status, &headers, &body, key.as_ref()))
    }

    /// Reads a successful response's JSON body.
    pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
    ) -> Result<T> {
        let bytes = resp.bytes().await.map_err(transport_error)?;
        serde_json::from_slice(&bytes).map_err(|e| bad_answer(format!("unreadable JSON: {e}")))
    }
}

pub(crate) fn timed_out() -> Error {
    Error::new(
        Code::ModelUnavailable,
        "the model provider did not answer in time",
    )
}

/// A failure to talk to the provider at all.
pub(crate) fn transport_error(e: reqwest::Error) -> Error {
    let message = if e.is_timeout() {
        "the model provider did not answer in time"
    } else if e.is_connect() {
        "the model provider cannot be reached"
    } else {
        "the connection to the model provider failed"
    };
    Error::new(Code::ModelUnavailable, message).with_source(e)
}

/// An answer docent cannot use.
pub(crate) fn bad_answer(detail: String) -> Error {
    Error::new(
        Code::ModelError,
        "the model provider answered something docent cannot read",
    )
    .with_source(BadAnswer(detail))
}

/// Maps a non-success status to a docent error (see the module table).
pub(crate) fn status_error(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<&SecretString>,
) -> Error {
    let (kind, code, mut message) = parse_error_body(body);
    if let Some(key) = key {
        let k = key.expose_secret();
        if !k.is_empty() {
            message = message.replace(k, "[redacted]");
        }
    }
    let shown = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}")
    };
    let source = ProviderError {
        status,
        kind,
        code,
        message,
    };
    let retry_after = retry_after(headers, SystemTime::now());
    let mut err = match status {
        429 => Error::new(
            Code::ModelRateLimited,
            format!("the model provider is rate limiting requests ({shown})"),
        ),
        408 | 409 | 425 | 500..=599 => Error::new(
            Code::ModelUnavailable,
            format!("the model provider failed ({shown})"),
        ),
        _ => Error::new(
            Code::ModelError,
            format!("the model provider refused the request ({shown})"),
        ),
    }
    .with_source(source);
    err.retry_after = retry_after;
    err
}

/// `(type, code, message)` from an OpenAI error envelope, `{"error": "text"}` (Ollama), or raw
/// text.
fn parse_error_body(body: &[u8]) -> (String, String, String) {
    let text = String::from_utf8_lossy(body);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (
            String::new(),
            String::new(),
            text.chars().take(500).collect(),
        );
    };
    // Some servers wrap the envelope in a list (Gemini's OpenAI endpoint has done so).
    let v = match v {
        serde_json::Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        v => v,
    };
    let e = &v["error"];
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    match e {
        serde_json::Value::String(m) => (String::new(), String::new(), m.clone()),
        serde_json::Value::Object(_) => (
            s(&e["type"]).chars().take(100).collect(),
            s(&e["code"])
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .take(100)
                .collect(),
            s(&e["message"]).chars().take(2000).collect(),
        ),
        _ => (
            String::new(),
            String::new(),
            text.chars().take(500).collect(),
        ),
    }
}

/// When to come back, from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP
/// date; a date in the past means now).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_millis() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(5))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "1"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_map_to_codes_and_hide_the_key() {
        let key = SecretString::from("sk-secret-123".to_owned());
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-123","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let e = status_error(401, &HeaderMap::new(), body, Some(&key));
        assert_eq!(e.code, Code::ModelError);
        assert!(e.message.contains("invalid_api_key"));
        assert!(!e.chain().contains("sk-secret-123"));
        assert!(e.chain().contains("[redacted]"));
        let e = status_error(429, &headers(&[("retry-after", "2")]), b"", None);
        assert_eq!(e.code, Code::ModelRateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        let e = status_error(503, &HeaderMap::new(), br#"{"error":"overloaded"}"#, None);
        assert_eq!(e.code, Code::ModelUnavailable);
        assert_eq!(e.retry_after, None);
        assert!(e.chain().contains("overloaded"));
    }
}
