//! Configuration: compiled-in defaults → optional TOML file → environment (`DOCENT__SECTION__KEY`),
//! parsed once into typed config (durations, sizes, socket addresses) and validated.
//!
//! Every backend subsystem (`database`, `storage`, `queue`, `cache`, `index`, `embedder`, `llm`,
//! `auth`) is a tagged enum; each backend crate has one factory that matches on it.
//! Secrets are [`secrecy::SecretString`] and may come from a `*_file` sibling key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be parsed.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// Values parsed but do not make sense together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base directory for the embedded backends' files.
    pub data_dir: PathBuf,
    /// HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// Metadata database.
    pub database: DatabaseConfig,
    /// Blob store for originals.
    pub storage: StorageConfig,
    /// Task queue.
    pub queue: QueueConfig,
    /// Worker pool.
    pub worker: WorkerConfig,
    /// Ingest limits.
    pub ingest: IngestConfig,
    /// Cache.
    pub cache: CacheConfig,
    /// Search indexes.
    pub index: IndexConfig,
    /// Embedding model.
    pub embedder: EmbedderConfig,
    /// Chat model.
    pub llm: LlmConfig,
    /// Authentication.
    pub auth: AuthConfig,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Requests taking longer are answered `408 request_timeout` (uploads excepted).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests and running tasks.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Run the worker pool inside `serve`.
    pub run_workers: bool,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Format.
    pub format: LogFormat,
    /// `tracing` filter directive (overridden by `RUST_LOG`).
    pub level: String,
}

/// Metadata database backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatabaseConfig {
    /// A SQLite file (embedded default).
    Sqlite {
        /// Path of the file; relative paths are under `data_dir`.
        path: PathBuf,
        /// Pool size.
        max_connections: u32,
        /// How long a writer waits for the lock.
        #[serde(with = "humantime_serde")]
        busy_timeout: Duration,
    },
}

/// Blob store backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// A local directory (embedded default).
    Local {
        /// Directory; relative paths are under `data_dir`.
        path: PathBuf,
    },
}

/// Task queue backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueBackend {
    /// The `tasks` table of the metadata database (embedded default).
    Sql,
}

/// Task queue settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Backend.
    pub backend: QueueBackend,
    /// Lease length (visibility timeout); heartbeats extend it.
    #[serde(with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// Leases allowed before a task is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with full jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Largest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How often idle workers look for work.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

/// Worker pool settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Tasks run at once per process.
    pub concurrency: usize,
    /// After this, a task is asked to wrap up.
    #[serde(with = "humantime_serde")]
    pub soft_time_limit: Duration,
    /// After this, a task is stopped and fails with `task_timeout`.
    #[serde(with = "humantime_serde")]
    pub hard_time_limit: Duration,
}

/// Ingest limits and chunking.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted upload.
    pub max_upload_size: ByteSize,
    /// Target chunk size in characters.
    pub chunk_chars: usize,
    /// Characters repeated between consecutive chunks.
    pub chunk_overlap: usize,
    /// When the embedder can count its word pieces: the largest chunk in word pieces
    /// (including the model's two special tokens; all-MiniLM-L6-v2 reads 256).
    pub chunk_tokens: usize,
    /// Word pieces repeated between pieces of a split block.
    pub chunk_overlap_tokens: usize,
}

/// Cache backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CacheConfig {
    /// In-process TTL cache (embedded default).
    Memory {
        /// Most entries kept.
        max_entries: u64,
    },
}

/// Search index backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IndexConfig {
    /// Keyword and vector indexes on local disk (embedded default).
    Embedded {
        /// Directory; relative paths are under `data_dir`.
        path: PathBuf,
    },
}

/// Embedding model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// No embeddings: keyword search only.
    None,
    /// all-MiniLM-L6-v2 running locally (pure Rust, CPU).
    Local {
        /// Model directory (config.json, tokenizer.json, model.safetensors) or a Hugging Face
        /// cache path. Relative paths are relative to the working directory.
        model_dir: PathBuf,
        /// Inference threads (0: one per CPU).
        #[serde(default)]
        threads: usize,
        /// Texts per forward pass.
        #[serde(default = "default_embed_batch")]
        batch_size: usize,
    },
}

/// Chat model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LlmConfig {
    /// No LLM: answers are extractive.
    None,
    /// Any OpenAI-compatible chat API.
    Openai {
        /// Base URL, e.g. `https://api.openai.com/v1`.
        base_url: String,
        /// Model name.
        model: String,
        /// API key.
        #[serde(
            default,
            serialize_with = "redact",
            skip_serializing_if = "Option::is_none"
        )]
        api_key: Option<SecretString>,
        /// File holding the API key (wins over `api_key`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_file: Option<PathBuf>,
    },
}

/// Authentication mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No authentication: every request acts in the default tenant. Only for local use.
    None,
}

fn default_embed_batch() -> usize {
    32
}

fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./docent-data"),
            server: ServerConfig {
                bind: "127.0.0.1:8080".parse().expect("valid default address"),
                request_timeout: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(20),
                run_workers: true,
            },
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".into(),
            },
            database: DatabaseConfig::Sqlite {
                path: "docent.db".into(),
                max_connections: 8,
                busy_timeout: Duration::from_secs(10),
            },
            storage: StorageConfig::Local {
                path: "blobs".into(),
            },
            queue: QueueConfig {
                backend: QueueBackend::Sql,
                visibility_timeout: Duration::from_secs(60),
                max_attempts: 5,
                backoff_base: Duration::from_secs(2),
                backoff_max: Duration::from_secs(300),
                poll_interval: Duration::from_millis(250),
            },
            worker: WorkerConfig {
                concurrency: 2,
                soft_time_limit: Duration::from_secs(29 * 60),
                hard_time_limit: Duration::from_secs(30 * 60),
            },
            ingest: IngestConfig {
                max_upload_size: ByteSize::mib(100),
                chunk_chars: 1200,
                chunk_overlap: 150,
                chunk_tokens: 256,
                chunk_overlap_tokens: 32,
            },
            cache: CacheConfig::Memory {
                max_entries: 10_000,
            },
            index: IndexConfig::Embedded {
                path: "index".into(),
            },
            embedder: EmbedderConfig::Local {
                model_dir: "models/all-MiniLM-L6-v2".into(),
                threads: 0,
                batch_size: 32,
            },
            llm: LlmConfig::None,
            auth: AuthConfig::None,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then `DOCENT__*` environment variables, and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("DOCENT__").split("__"))
    }

    /// Like [`Config::load`] with an explicit environment provider (tests).
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            fig = fig.merge(Toml::file(file));
        }
        let config: Config = fig.merge(env).extract().map_err(|e| {
            ConfigError::Parse(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but do not fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency must be at least 1");
        }
        if self.worker.soft_time_limit >= self.worker.hard_time_limit {
            return bad("worker.soft_time_limit must be shorter than worker.hard_time_limit");
        }
        if self.queue.max_attempts == 0 {
            return bad("queue.max_attempts must be at least 1");
        }
        if self.queue.visibility_timeout < Duration::from_secs(1) {
            return bad("queue.visibility_timeout must be at least 1s");
        }
        if self.queue.backoff_base > self.queue.backoff_max {
            return bad("queue.backoff_base must not exceed queue.backoff_max");
        }
        if self.ingest.chunk_chars < 50 {
            return bad("ingest.chunk_chars must be at least 50");
        }
        if self.ingest.chunk_overlap >= self.ingest.chunk_chars / 2 {
            return bad("ingest.chunk_overlap must be less than half of ingest.chunk_chars");
        }
        if self.ingest.chunk_tokens < 16 {
            return bad("ingest.chunk_tokens must be at least 16");
        }
        if self.ingest.chunk_overlap_tokens >= self.ingest.chunk_tokens / 2 {
            return bad(
                "ingest.chunk_overlap_tokens must be less than half of ingest.chunk_tokens",
            );
        }
        if self.ingest.max_upload_size.as_u64() == 0 {
            return bad("ingest.max_upload_size must be positive");
        }
        if let DatabaseConfig::Sqlite {
            max_connections: 0, ..
        } = self.database
        {
            return bad("database.max_connections must be at least 1");
        }
        if let LlmConfig::Openai { base_url, .. } = &self.llm
            && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return bad("llm.base_url must be an http(s) URL");
        }
        Ok(())
    }

    /// Resolves a path relative to `data_dir`.
    pub fn data_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.data_dir.join(p)
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

impl LlmConfig {
    /// The API key, read from `api_key_file` when set.
    pub fn api_key(&self) -> Result<Option<SecretString>, ConfigError> {
        match self {
            LlmConfig::None => Ok(None),
            LlmConfig::Openai {
                api_key,
                api_key_file,
                ..
            } => match api_key_file {
                Some(path) => std::fs::read_to_string(path)
                    .map(|s| Some(SecretString::from(s.trim().to_owned())))
                    .map_err(|e| {
                        ConfigError::Invalid(format!("llm.api_key_file {}: {e}", path.display()))
                    }),
                None => Ok(api_key
                    .as_ref()
                    .map(|k| SecretString::from(k.expose_secret()))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        // A unique prefix per test keeps the process environment of other tests out.
        let prefix = format!("DOCENT_T{}__", std::process::id());
        for (k, v) in vars {
            // SAFETY-free: tests set variables with a prefix nobody else reads.
            unsafe_set(&format!("{prefix}{k}"), v);
        }
        Env::prefixed(&prefix).split("__")
    }

    #[allow(unsafe_code)]
    fn unsafe_set(k: &str, v: &str) {
        // SAFETY: only test code; each test uses distinct keys.
        unsafe { std::env::set_var(k, v) }
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::load_from(None, Env::prefixed("DOCENT_NOTHING_SET__")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./docent-data"));
        assert_eq!(c.worker.hard_time_limit, Duration::from_secs(1800));
        assert_eq!(c.worker.soft_time_limit, Duration::from_secs(1740));
        assert!(matches!(c.database, DatabaseConfig::Sqlite { .. }));
    }

    #[test]
    fn file_then_env_layering() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/docent\"\n[server]\nrequest_timeout = \"5s\"\n[ingest]\nmax_upload_size = \"2 MiB\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&file), env(&[("SERVER__BIND", "0.0.0.0:9999")])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/docent"));
        assert_eq!(c.server.request_timeout, Duration::from_secs(5));
        assert_eq!(c.server.bind.port(), 9999);
        assert_eq!(c.ingest.max_upload_size, ByteSize::mib(2));
    }

    #[test]
    fn bad_values_are_rejected_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[server]\nrequest_timeout = \"soon\"\n").unwrap();
        let err = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap_err();
        assert!(err.to_string().contains("request_timeout"), "{err}");

        std::fs::write(&file, "[server]\nbogus = 1\n").unwrap();
        let err = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");

        std::fs::write(&file, "[worker]\nsoft_time_limit = \"40m\"\n").unwrap();
        let err = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap_err();
        assert!(err.to_string().contains("soft_time_limit"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_and_file_variant_wins() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "sk-from-file\n").unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[llm]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\napi_key = \"sk-canary-123\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap();
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("sk-canary-123"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert_eq!(
            c.llm.api_key().unwrap().unwrap().expose_secret(),
            "sk-canary-123"
        );

        let mut c2 = c.clone();
        if let LlmConfig::Openai { api_key_file, .. } = &mut c2.llm {
            *api_key_file = Some(key_file);
        }
        assert_eq!(
            c2.llm.api_key().unwrap().unwrap().expose_secret(),
            "sk-from-file"
        );
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(key.clone());
                keys(&key, v, out);
            }
        }
    }

    /// `config/example.toml` documents every key with its default value.
    #[test]
    fn example_toml_has_every_key_and_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
        let loaded = Config::load_from(Some(&path), Env::prefixed("DOCENT_NONE__")).unwrap();
        let want: toml::Value = toml::from_str(&Config::default().to_redacted_toml()).unwrap();
        let got: toml::Value = toml::from_str(&loaded.to_redacted_toml()).unwrap();
        assert_eq!(
            got, want,
            "example.toml values differ from the compiled-in defaults"
        );
        let example: toml::Value =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (mut have, mut all) = (Vec::new(), Vec::new());
        keys("", &example, &mut have);
        keys("", &want, &mut all);
        let missing: Vec<_> = all.iter().filter(|k| !have.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "keys missing from config/example.toml: {missing:?}"
        );
    }
}
