//! Settings for OpenAI-compatible providers: where they are, how to authenticate, timeouts, and
//! the budget (rate limits, retries, circuit breaker) calls to them keep.
//!
//! `base_url` is the URL up to and including the API version segment, as in OpenAI's SDKs;
//! `/chat/completions`, `/embeddings` and `/models` are appended to it:
//!
//! | provider            | `base_url`                                                         | `auth`           |
//! |---------------------|--------------------------------------------------------------------|------------------|
//! | OpenAI              | `https://api.openai.com/v1`                                        | `bearer`         |
//! | Azure OpenAI (v1)   | `https://RESOURCE.openai.azure.com/openai/v1`                      | `api_key_header` |
//! | Azure (deployments) | `https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT`, with `api_version` | `api_key_header` |
//! | Gemini              | `https://generativelanguage.googleapis.com/v1beta/openai`          | `bearer`         |
//! | Ollama              | `http://localhost:11434/v1` (no key)                               | `bearer`         |
//! | vLLM                | `http://HOST:8000/v1`                                              | `bearer`         |
//! | llama.cpp server    | `http://HOST:8080/v1`                                              | `bearer`         |
//!
//! These types are plain serde structs; `docent-config` embeds them when it wires the models in.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use docent_domain::{Code, Error, Result};
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

/// How the API key is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    /// `Authorization: Bearer <key>` (OpenAI, Gemini, vLLM, llama.cpp, Ollama).
    #[default]
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKeyHeader,
}

/// One provider endpoint: connection, credentials, timeouts and budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Budget key and metrics label. Providers with the same name share one budget and one
    /// circuit breaker in the process. Default: `host[:port]` of `base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URL up to the API version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Model (Azure deployments-style URLs: the deployment's model; it is sent but ignored).
    pub model: String,
    /// API key; never logged, never shown.
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<SecretString>,
    /// File holding the API key (wins over `api_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// A key the caller may replace while the client runs (secret rotation): each request
    /// sends the key it holds then. When set, `api_key` and `api_key_file` are not read.
    #[serde(skip)]
    pub shared_key: Option<SharedApiKey>,
    /// How the key is sent.
    #[serde(default)]
    pub auth: AuthScheme,
    /// Azure's `api-version` query parameter, added to every request when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Time to open a connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time for a whole non-streamed answer, or for a stream's first byte.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest silence between two pieces of a streamed answer.
    #[serde(default = "default_stream_idle_timeout", with = "humantime_serde")]
    pub stream_idle_timeout: Duration,
    /// Rate limits, retries and circuit breaker.
    #[serde(default)]
    pub budget: BudgetConfig,
}

/// An API key shared by a client and its owner, who may replace it (secret rotation): clones
/// share one slot, and a replacement takes effect on the next request. Never printed.
#[derive(Clone, Default)]
pub struct SharedApiKey(Arc<RwLock<Option<SecretString>>>);

impl SharedApiKey {
    /// A slot holding `key`.
    pub fn new(key: Option<SecretString>) -> Self {
        Self(Arc::new(RwLock::new(key)))
    }

    /// The current key.
    pub fn get(&self) -> Option<SecretString> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the key.
    pub fn set(&self, key: Option<SecretString>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    /// A handle that does not keep the slot alive (a registry of keys to rotate).
    pub fn downgrade(&self) -> WeakApiKey {
        WeakApiKey(Arc::downgrade(&self.0))
    }
}

impl std::fmt::Debug for SharedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedApiKey([redacted])")
    }
}

/// A [`SharedApiKey`] that is gone once every client holding it is.
#[derive(Clone, Debug)]
pub struct WeakApiKey(Weak<RwLock<Option<SecretString>>>);

impl WeakApiKey {
    /// The slot, while a client still holds it.
    pub fn upgrade(&self) -> Option<SharedApiKey> {
        self.0.upgrade().map(SharedApiKey)
    }
}

fn redact<S: Serializer>(v: &Option<SecretString>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_stream_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

impl ProviderConfig {
    /// A provider at `base_url` serving `model`, everything else default.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: None,
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            api_key_file: None,
            shared_key: None,
            auth: AuthScheme::Bearer,
            api_version: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            stream_idle_timeout: default_stream_idle_timeout(),
            budget: BudgetConfig::default(),
        }
    }

    /// The budget key and metrics label: `name`, or `host[:port]` of `base_url`.
    pub fn provider_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => self.base_url.clone(),
            },
            Err(_) => self.base_url.clone(),
        }
    }

    /// The API key: the current one of `shared_key` when set, else read from `api_key_file`
    /// when set (trailing newline trimmed), else `api_key`.
    pub fn resolve_api_key(&self) -> Result<Option<SecretString>> {
        if let Some(shared) = &self.shared_key {
            return Ok(shared.get());
        }
        match &self.api_key_file {
            Some(path) => {
                let raw = std::fs::read_to_string(path).map_err(|e| {
                    Error::new(
                        Code::InvalidField,
                        format!("cannot read api_key_file {}", path.display()),
                    )
                    .with_source(e)
                })?;
                Ok(Some(SecretString::from(raw.trim_end().to_owned())))
            }
            None => Ok(self.api_key.clone()),
        }
    }

    /// Checks the values make sense.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::new(Code::InvalidField, m));
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return invalid(format!(
                    "base_url {:?} is not an http(s) URL",
                    self.base_url
                ));
            }
        }
        if self.model.trim().is_empty() {
            return invalid("model must not be empty".into());
        }
        if self.request_timeout.is_zero() || self.stream_idle_timeout.is_zero() {
            return invalid("timeouts must be above zero".into());
        }
        self.budget.validate()
    }
}

/// Rate limits, retries and circuit breaker for one provider.
///
/// Requests are paced by a token bucket of `request_burst` requests refilled at
/// `requests_per_second`: with the default burst of 1, at most ⌈rate × w⌉ requests start in
/// any window of length `w` (5 in any second at the default rate). `tokens_per_minute` adds a
/// second bucket (one minute's worth deep) charged with estimated tokens before a request and
/// corrected with the provider's count after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Requests started per second.
    pub requests_per_second: f64,
    /// Requests that may start back to back after a quiet spell.
    pub request_burst: u32,
    /// Tokens (prompt + completion, or embedding input) per minute; none: unlimited.
    pub tokens_per_minute: Option<u64>,
    /// The share of both buckets one tenant may use, in (0, 1]: calls made for a tenant
    /// ([`docent_domain::llm::caller::for_tenant`]) take from a bucket of their tenant of this
    /// share of the rates (at least one request deep) before the provider's. 1: no per-tenant
    /// bucket.
    pub tenant_share: f64,
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// First retry delay bound; doubles per attempt (full jitter: a random delay below it).
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Largest retry delay bound.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails with
    /// `model_rate_limited` and the delay, for the task queue to retry later.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// Longest wait for a place in the budget before failing with `model_rate_limited`.
    #[serde(with = "humantime_serde")]
    pub max_queue_wait: Duration,
    /// Consecutive failures (timeouts, connection errors, 5xx) that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit fails calls fast before letting one probe through.
    #[serde(with = "humantime_serde")]
    pub breaker_cool_down: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 5.0,
            request_burst: 1,
            tokens_per_minute: None,
            tenant_share: 1.0,
            max_attempts: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
            max_queue_wait: Duration::from_secs(120),
            breaker_failures: 5,
            breaker_cool_down: Duration::from_secs(30),
        }
    }
}

impl BudgetConfig {
    /// Checks the values make sense.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: &str| Err(Error::new(Code::InvalidField, m.to_owned()));
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return invalid("budget.requests_per_second must be above zero");
        }
        if self.request_burst == 0 || self.max_attempts == 0 || self.breaker_failures == 0 {
            return invalid(
                "budget.request_burst, max_attempts and breaker_failures must be at least 1",
            );
        }
        if !(self.tenant_share.is_finite() && self.tenant_share > 0.0 && self.tenant_share <= 1.0) {
            return invalid("budget.tenant_share must be above 0 and at most 1");
        }
        if self.tokens_per_minute == Some(0) {
            return invalid("budget.tokens_per_minute must be above zero (or unset)");
        }
        Ok(())
    }
}

/// A chat model provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatConfig {
    /// Where and how.
    #[serde(flatten)]
    pub provider: ProviderConfig,
    /// Ask for token usage on streamed answers (`stream_options.include_usage`); turn off for
    /// servers that reject the field.
    #[serde(default = "yes")]
    pub stream_usage: bool,
}

fn yes() -> bool {
    true
}

impl ChatConfig {
    /// A chat provider with defaults.
    pub fn new(provider: ProviderConfig) -> Self {
        Self {
            provider,
            stream_usage: true,
        }
    }
}

/// An embedding model provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingConfig {
    /// Where and how.
    #[serde(flatten)]
    pub provider: ProviderConfig,
    /// Vector dimension. Vectors of another length are refused (`model_error`). When unset,
    /// [`OpenAiEmbedder::connect`](crate::OpenAiEmbedder::connect) learns it from one probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<usize>,
    /// Send `dimensions` (shortened vectors, OpenAI `text-embedding-3-*`); needs `dimension`.
    #[serde(default)]
    pub send_dimensions: bool,
    /// Most texts per request.
    #[serde(default = "default_batch_inputs")]
    pub max_batch_inputs: usize,
    /// Most estimated tokens (⌈chars / 4⌉ per text) per request; a longer single text goes
    /// alone.
    #[serde(default = "default_batch_tokens")]
    pub max_batch_tokens: usize,
}

fn default_batch_inputs() -> usize {
    128
}
fn default_batch_tokens() -> usize {
    8_000
}

impl EmbeddingConfig {
    /// An embedding provider of `dimension`, with defaults.
    pub fn new(provider: ProviderConfig, dimension: Option<usize>) -> Self {
        Self {
            provider,
            dimension,
            send_dimensions: false,
            max_batch_inputs: default_batch_inputs(),
            max_batch_tokens: default_batch_tokens(),
        }
    }

    /// Checks the values make sense.
    pub fn validate(&self) -> Result<()> {
        self.provider.validate()?;
        let invalid = |m: &str| Err(Error::new(Code::InvalidField, m.to_owned()));
        if self.max_batch_inputs == 0 || self.max_batch_tokens == 0 {
            return invalid("max_batch_inputs and max_batch_tokens must be at least 1");
        }
        if self.dimension == Some(0) {
            return invalid("dimension must be at least 1");
        }
        if self.send_dimensions && self.dimension.is_none() {
            return invalid("send_dimensions needs dimension");
        }
        Ok(())
    }
}

/// Both model kinds; each is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The chat model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatConfig>,
    /// The embedding model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<EmbeddingConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_load_with_defaults_and_serialize_without_the_key() {
        let cfg: LlmConfig = toml::from_str(
            r#"
            [chat]
            base_url = "https://api.openai.com/v1"
            model = "gpt-4o-mini"
            api_key = "sk-very-secret"
            request_timeout = "30s"
            [chat.budget]
            requests_per_second = 2.5
            tokens_per_minute = 90000

            [embeddings]
            base_url = "http://localhost:11434/v1"
            model = "nomic-embed-text"
            dimension = 768
            "#,
        )
        .unwrap();
        let chat = cfg.chat.as_ref().unwrap();
        chat.provider.validate().unwrap();
        assert_eq!(chat.provider.request_timeout, Duration::from_secs(30));
        assert_eq!(chat.provider.budget.requests_per_second, 2.5);
        assert_eq!(chat.provider.budget.max_attempts, 5);
        assert!(chat.stream_usage);
        assert_eq!(chat.provider.provider_name(), "api.openai.com");
        let emb = cfg.embeddings.as_ref().unwrap();
        emb.validate().unwrap();
        assert_eq!(emb.provider.provider_name(), "localhost:11434");
        assert_eq!(emb.max_batch_inputs, 128);
        let shown = toml::to_string(&cfg).unwrap();
        assert!(!shown.contains("sk-very-secret"));
        assert!(shown.contains("[redacted]"));
        assert!(format!("{cfg:?}").contains("gpt-4o-mini"));
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
    }

    #[test]
    fn nonsense_is_refused() {
        let mut p = ProviderConfig::new("ftp://x", "m");
        assert!(p.validate().is_err());
        p.base_url = "http://x/v1".into();
        p.budget.requests_per_second = 0.0;
        assert!(p.validate().is_err());
        let e = EmbeddingConfig {
            send_dimensions: true,
            ..EmbeddingConfig::new(ProviderConfig::new("http://x/v1", "m"), None)
        };
        assert!(e.validate().is_err());
    }
}
