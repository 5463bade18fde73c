//! Configuration: compiled-in defaults → optional TOML file → environment (`DOCENT__SECTION__KEY`),
//! parsed once into typed config (durations, sizes, socket addresses) and validated.
//!
//! Every backend subsystem (`database`, `storage`, `queue`, `cache`, `index`, `embedder`, `llm`,
//! `auth`) is a tagged enum; each backend crate has one factory that matches on it.
//! Secrets are [`secrecy::SecretString`] and may come from a `*_file` sibling key.
//!
//! The environment names of the applications docent replaces (`DATABASE_URL`, `REDIS_URL`,
//! `S3_BUCKET_NAME`, ...) are read as aliases below docent's own keys ([`seed_env`]).
//!
//! Relative paths resolve by where they were written ([`ConfigLayers::load_in`]): the
//! compiled-in `data_dir` and `embedder.model_dir` against the docent [`home`], paths in a
//! configuration file against that file's directory, paths from `DOCENT__*` variables against
//! the working directory. Paths documented as "under `data_dir`" (the SQLite file, blobs,
//! indexes, mail, the generated JWT key) stay relative to the data directory.

mod dict_path;
pub mod home;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod seed_env;
mod telemetry;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

pub use home::{Home, HomeSource};
pub use seed_env::{SeedEnv, SeedUse};
pub use telemetry::{OtlpConfig, OtlpProtocol, OtlpTarget, TelemetryConfig};

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
    /// A Redis server for the Redis-backed pieces (`[cache] kind = "redis"` or `"tiered"`,
    /// shared model-call budgets); unused without `url`.
    #[serde(default)]
    pub redis: RedisConfig,
    /// Search indexes.
    pub index: IndexConfig,
    /// How hybrid search combines its rankings when a request does not say.
    #[serde(default)]
    pub search: SearchConfig,
    /// The embeddable chat widget: visitor sessions, rate limits, the default daily quota.
    #[serde(default)]
    pub widget: WidgetConfig,
    /// Embedding model.
    pub embedder: EmbedderConfig,
    /// Chat model.
    pub llm: LlmConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Trace export to an operator's collector (off by default).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
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
    /// A connection whose request headers are not complete this long after it opened (or
    /// after its previous request) is closed: a slow client cannot hold it open.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Bearer token `GET /metrics` requires (a secret); unset: `/metrics` is public, so keep
    /// the port off untrusted networks.
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_token: Option<SecretString>,
    /// File holding the metrics token (wins over `metrics_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token_file: Option<PathBuf>,
    /// Cross-origin requests from browsers.
    pub cors: CorsConfig,
    /// Proxies and load balancers in front of docent (addresses or CIDR blocks, e.g.
    /// `["127.0.0.1", "10.0.0.0/16"]`): a request whose peer is one of them is taken to come
    /// from the address its `X-Forwarded-For` names (the last one not itself a trusted
    /// proxy), for rate limits, sign-in lockouts and the widget's per-client limits. Empty:
    /// the header is ignored, so nobody can claim another address.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// A trusted proxy entry: a CIDR block, or one address (a /32 or /128).
fn proxy_net(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry.parse::<ipnet::IpNet>().ok().or_else(|| {
        entry
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

impl ServerConfig {
    /// `trusted_proxies` as networks (entries were checked when the configuration loaded).
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|e| proxy_net(e))
            .collect()
    }

    /// The token `/metrics` requires, read from `metrics_token_file` when set.
    pub fn metrics_token(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret(
            "server.metrics_token_file",
            &self.metrics_token,
            &self.metrics_token_file,
        )
    }
}

/// CORS: which browser origins may call the API. With no origins, no CORS headers are sent
/// and browsers keep cross-origin pages out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `["*"]` for any (never with credentials).
    pub allowed_origins: Vec<String>,
    /// Let browsers send cookies / `Authorization` credentials cross-origin.
    pub allow_credentials: bool,
    /// Methods allowed cross-origin.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed cross-origin.
    pub allowed_headers: Vec<String>,
    /// How long browsers may cache a preflight answer.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: ["authorization", "content-type", "x-request-id"]
                .map(String::from)
                .to_vec(),
            max_age: Duration::from_secs(600),
        }
    }
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
    /// A PostgreSQL database, shared by every server and worker (the distributed shape). Needs
    /// the `postgres` cargo feature of docent-store (on in the `docent` binary by default).
    Postgres {
        /// Connection URL, `postgres://user:password@host:5432/db` (a secret: never printed).
        #[serde(
            default,
            serialize_with = "redact",
            skip_serializing_if = "Option::is_none"
        )]
        url: Option<SecretString>,
        /// File holding the URL (wins over `url`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url_file: Option<PathBuf>,
        /// Pool size (per process).
        #[serde(default = "default_pg_max_connections")]
        max_connections: u32,
        /// How long a request waits for a free connection before failing as unavailable.
        #[serde(default = "default_pg_acquire_timeout", with = "humantime_serde")]
        acquire_timeout: Duration,
        /// Longest a single statement may run (`statement_timeout`); `0s`: no limit.
        #[serde(default = "default_pg_statement_timeout", with = "humantime_serde")]
        statement_timeout: Duration,
        /// TLS to the server (`[database.tls]`).
        #[serde(default, skip_serializing_if = "PgTls::is_unset")]
        tls: PgTls,
    },
}

/// TLS to PostgreSQL (`[database.tls]`, `[index.tls]`): libpq's `sslmode`, `sslrootcert`,
/// `sslcert` and `sslkey`. A key left unset keeps what the URL says (`?sslmode=…`), else
/// libpq's default (`prefer`: TLS when the server offers it, unverified).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgTls {
    /// `disable`, `allow`, `prefer`, `require` (encrypted, unverified unless `root_cert` is
    /// set), `verify-ca` (the server's certificate chains to `root_cert`) or `verify-full`
    /// (and names the host connected to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PgSslMode>,
    /// PEM file of the certificate authorities to trust, e.g. the RDS bundle
    /// (`global-bundle.pem`); unset: the Mozilla roots built in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that authenticate clients by certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

impl PgTls {
    /// Whether every key is unset (the URL and libpq's defaults decide).
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(ConfigError::Invalid(format!(
                "{section}.tls.client_cert and {section}.tls.client_key go together"
            )));
        }
        if self.mode == Some(PgSslMode::Disable)
            && (self.root_cert.is_some() || self.client_cert.is_some())
        {
            return Err(ConfigError::Invalid(format!(
                "{section}.tls.mode = \"disable\" contradicts {section}.tls.root_cert / client_cert"
            )));
        }
        for (key, path) in [
            ("root_cert", &self.root_cert),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(ConfigError::Invalid(format!(
                    "{section}.tls.{key}: {} is not a readable file",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgSslMode {
    /// Plain connections only.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or fail; the certificate is checked only against a configured `root_cert`.
    Require,
    /// TLS with a certificate chaining to a trusted root.
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host.
    VerifyFull,
}

impl PgSslMode {
    /// The value as written in configuration (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }
}

impl DatabaseConfig {
    /// The PostgreSQL URL, read from `url_file` when set; `None` for other databases.
    pub fn postgres_url(&self) -> Result<Option<SecretString>, ConfigError> {
        match self {
            DatabaseConfig::Sqlite { .. } => Ok(None),
            DatabaseConfig::Postgres { url, url_file, .. } => {
                read_secret("database.url_file", url, url_file)
            }
        }
    }
}

fn default_pg_max_connections() -> u32 {
    10
}

fn default_pg_acquire_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_pg_statement_timeout() -> Duration {
    Duration::from_secs(30)
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
    /// An S3 bucket, or an S3-compatible store (MinIO, R2, moto) at `endpoint`. Needs the
    /// `s3` cargo feature (on in the `docent` binary by default). Credentials come from the
    /// standard AWS environment / instance chain (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, web identity, ECS or instance metadata), never from this file.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Region (`us-east-1` for most S3-compatible stores).
        region: String,
        /// Endpoint of an S3-compatible store (`http://127.0.0.1:9000`); path-style addressing
        /// is used when set. Unset: AWS S3 itself.
        #[serde(default)]
        endpoint: Option<String>,
        /// Key prefix inside the bucket (`docent/`), to share a bucket.
        #[serde(default)]
        prefix: String,
        /// Allow a plain `http://` endpoint (local stores only).
        #[serde(default)]
        allow_http: bool,
        /// Create the bucket at start when it does not exist.
        #[serde(default)]
        create_bucket: bool,
        /// Server-side encryption of stored objects.
        #[serde(default)]
        server_side_encryption: ServerSideEncryption,
        /// The KMS key for `server_side_encryption = "aws:kms"` (the account's default key
        /// when unset).
        #[serde(default)]
        kms_key_id: Option<String>,
        /// How long presigned download and upload URLs stay valid (at most 7 days).
        #[serde(with = "humantime_serde", default = "default_presign_ttl")]
        presign_ttl: Duration,
        /// Answer every download (`GET /api/v1/documents/{id}/content`) with a `307` to a
        /// presigned URL instead of streaming through the server (`?redirect=true` asks for
        /// it per request).
        #[serde(default)]
        redirect_downloads: bool,
    },
}

/// Server-side encryption of objects written to S3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerSideEncryption {
    /// None requested (the bucket's default encryption applies).
    #[default]
    #[serde(rename = "none")]
    None,
    /// SSE-S3 (`AES256`).
    #[serde(rename = "aes256")]
    Aes256,
    /// SSE-KMS (`aws:kms`), with `kms_key_id` or the account's default key.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

fn default_presign_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}

/// Task queue backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueBackend {
    /// The `tasks` table of the metadata database (embedded default).
    Sql,
    /// Amazon SQS (or an SQS-compatible server) delivers task ids; the `tasks` table of the
    /// metadata database still holds every task's state and answers status queries.
    Sqs(SqsQueueConfig),
    /// A Redis Stream (on the server of `[redis]`) delivers task ids to a consumer group; the
    /// `tasks` table of the metadata database still holds every task's state and answers
    /// status queries.
    Redis(RedisQueueConfig),
}

/// The Redis Streams queue backend (`[queue.backend] kind = "redis"`), on the server of
/// `[redis]` (which must have a `url`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedisQueueConfig {
    /// The queue's name: its keys are `{<redis.key_prefix><name>}:stream`, `…:delayed` and
    /// `…:dlq` (one hash tag, so one cluster slot).
    #[serde(default = "default_redis_queue_name")]
    pub name: String,
    /// The consumer group every process reads the stream with.
    #[serde(default = "default_redis_queue_group")]
    pub group: String,
    /// How long a lease's read waits for a new task (at most 60s; "0s": it does not wait).
    #[serde(default = "default_redis_queue_block_time", with = "humantime_serde")]
    pub block_time: Duration,
    /// A task runnable for this long without a worker taking it — while the stream looks
    /// empty — has lost its delivery (an `XADD` that failed after the database write, say) and
    /// is added again. Duplicates are harmless: the database lets one delivery lease a task.
    #[serde(default = "default_sqs_republish_after", with = "humantime_serde")]
    pub republish_after: Duration,
}

fn default_redis_queue_name() -> String {
    "queue".into()
}

fn default_redis_queue_group() -> String {
    "workers".into()
}

fn default_redis_queue_block_time() -> Duration {
    Duration::from_secs(5)
}

impl RedisQueueConfig {
    /// Names without braces (they would break the hash tag), a block time of at most 60s, a
    /// visibility timeout of at most 12 hours (the reclaim horizon), and `[redis] url`.
    fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !config.redis.is_configured() {
            return bad(
                "redis.url (or redis.url_file) is required by queue.backend kind \"redis\"",
            );
        }
        for (key, name) in [("name", &self.name), ("group", &self.group)] {
            let ok = (1..=100).contains(&name.len())
                && !name
                    .chars()
                    .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control());
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "queue.backend.{key} {name:?} must be 1 to 100 characters without braces \
                     or spaces"
                )));
            }
        }
        if self.block_time > Duration::from_secs(60) {
            return bad("queue.backend.block_time must be at most 60s");
        }
        if config.queue.visibility_timeout > Duration::from_secs(12 * 3600) {
            return bad("queue.visibility_timeout must be at most 12h with the Redis queue");
        }
        if self.republish_after < Duration::from_secs(1) {
            return bad("queue.backend.republish_after must be at least 1s");
        }
        Ok(())
    }
}

/// The SQS queue backend (`[queue.backend] kind = "sqs"`). Credentials come from the standard
/// AWS environment (variables, profile, instance or task role), never from here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqsQueueConfig {
    /// Name of the queue that carries task deliveries.
    pub queue_name: String,
    /// Name of its dead-letter queue: tasks dead-lettered by the database, and messages SQS
    /// itself redrove after `queue.max_attempts + 1` receives, end there.
    pub dlq_name: String,
    /// Endpoint override (an SQS-compatible server such as moto or ElasticMQ); unset: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region; unset: the AWS environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Long-poll time of a receive (whole seconds, at most 20s; "0s": short polling).
    #[serde(default = "default_sqs_wait_time", with = "humantime_serde")]
    pub wait_time: Duration,
    /// Create both queues at start when missing, and set the queue's redrive policy to the
    /// dead-letter queue. Off: both must exist (the redrive policy is checked and warned about).
    #[serde(default)]
    pub create_queues: bool,
    /// A task runnable for this long without a worker taking it — while the queue looks empty —
    /// has lost its message (a send that failed after the database write, say) and is sent
    /// again. Duplicates are harmless: the database lets one delivery lease a task.
    #[serde(default = "default_sqs_republish_after", with = "humantime_serde")]
    pub republish_after: Duration,
}

fn default_sqs_wait_time() -> Duration {
    Duration::from_secs(20)
}

fn default_sqs_republish_after() -> Duration {
    Duration::from_secs(120)
}

impl SqsQueueConfig {
    /// SQS's limits: queue names of 1 to 80 letters, digits, `-` or `_` (no FIFO queues), a
    /// long poll of whole seconds up to 20, a visibility timeout of at most 12 hours, and a
    /// redrive count (`max_attempts + 1`) of at most 1000.
    fn validate(&self, queue: &QueueConfig) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        for (key, name) in [
            ("queue_name", &self.queue_name),
            ("dlq_name", &self.dlq_name),
        ] {
            let ok = (1..=80).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return bad(format!(
                    "queue.backend.{key} {name:?} is not an SQS standard queue name \
                     (1 to 80 letters, digits, '-' or '_')"
                ));
            }
        }
        if self.queue_name == self.dlq_name {
            return bad("queue.backend.dlq_name must differ from queue_name".into());
        }
        if self.wait_time > Duration::from_secs(20) || self.wait_time.subsec_nanos() != 0 {
            return bad("queue.backend.wait_time must be whole seconds, at most 20s".into());
        }
        if queue.visibility_timeout > Duration::from_secs(12 * 3600) {
            return bad("queue.visibility_timeout must be at most 12h with the SQS queue".into());
        }
        if queue.max_attempts >= 1000 {
            return bad("queue.max_attempts must be below 1000 with the SQS queue".into());
        }
        if self.republish_after < Duration::from_secs(1) {
            return bad("queue.backend.republish_after must be at least 1s".into());
        }
        if self
            .endpoint
            .as_deref()
            .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return bad("queue.backend.endpoint must be an http(s) URL".into());
        }
        Ok(())
    }
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
    /// Fair share across tenants: while a tenant holding fewer than this many running tasks has
    /// a runnable one, no tenant at or above it gets a new lease, and a tenant above it gives
    /// back its record-file tasks at their next batch. A tenant alone still uses every worker.
    /// 0 turns fairness off (oldest task first, whoever owns it).
    #[serde(default = "default_max_running_per_tenant")]
    pub max_running_per_tenant: u32,
}

fn default_max_running_per_tenant() -> u32 {
    1
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
    /// Record files (CSV/TSV/JSONL/XLSX) are embedded and committed in batches of about this
    /// many chunks (whole rows); a crashed task resumes after the last committed batch.
    #[serde(default = "default_record_batch")]
    pub record_batch: usize,
    /// Most fields in one record (CSV/TSV/spreadsheet row, JSON object); a wider record fails
    /// the document with `record_too_large`.
    #[serde(default = "default_max_record_fields")]
    pub max_record_fields: usize,
    /// Most chunks one record may be split into; a longer record fails the document with
    /// `record_too_large`.
    #[serde(default = "default_max_record_chunks")]
    pub max_record_chunks: usize,
    /// Most records (rows) in one document; more fail it with `document_too_large`.
    #[serde(default = "default_max_document_rows")]
    pub max_document_rows: u64,
    /// Most chunks in one document; more fail it with `document_too_large`.
    #[serde(default = "default_max_document_chunks")]
    pub max_document_chunks: u64,
}

fn default_record_batch() -> usize {
    1024
}

fn default_max_record_fields() -> usize {
    10_000
}

fn default_max_record_chunks() -> usize {
    64
}

fn default_max_document_rows() -> u64 {
    200_000
}

fn default_max_document_chunks() -> u64 {
    250_000
}

/// Cache backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CacheConfig {
    /// In-process TTL cache (embedded default).
    Memory {
        /// Most entries kept (an entry over 4 KiB counts once per 4 KiB begun).
        max_entries: u64,
    },
    /// The Redis server of `[redis]`, shared by every process (keys under
    /// `{redis.key_prefix}cache:`).
    Redis,
    /// A DynamoDB table with a TTL attribute.
    Dynamodb(DynamoCacheConfig),
    /// In-process → Redis → DynamoDB, read fastest first, falling through on a miss and on an
    /// outage of any tier (see `docent_cache::TieredCache`).
    Tiered {
        /// Most entries kept in process (an entry over 4 KiB counts once per 4 KiB begun).
        #[serde(default = "default_cache_entries")]
        max_entries: u64,
        /// Longest an entry lives in process: bounds how long a process may serve a value
        /// another process has deleted.
        #[serde(default = "default_local_ttl", with = "humantime_serde")]
        local_ttl: Duration,
        /// Use the Redis server of `[redis]` as the second tier.
        #[serde(default = "yes")]
        redis: bool,
        /// A DynamoDB table as the last tier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamodb: Option<DynamoCacheConfig>,
    },
}

fn default_cache_entries() -> u64 {
    10_000
}

fn default_local_ttl() -> Duration {
    Duration::from_secs(30)
}

fn yes() -> bool {
    true
}

/// A DynamoDB cache table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DynamoCacheConfig {
    /// Table name (hash key `k`, string; TTL attribute `expires_at`).
    pub table: String,
    /// Endpoint override (e.g. a local DynamoDB or moto); unset: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region; unset: the AWS environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Create the table (on demand, TTL enabled) at start when missing.
    #[serde(default)]
    pub create_table: bool,
}

/// The Redis server of the Redis-backed pieces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:6379/0` (`rediss://` for TLS; a secret: never printed).
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<SecretString>,
    /// File holding the URL (wins over `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// ACL user to sign in as (`AUTH user password`); unset: the URL's, else `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password of `username` (or of the `default` user; a secret: never printed); unset: the
    /// URL's.
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
    /// File holding the password (wins over `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM file of the certificate authorities to trust for a `rediss://` URL; unset: the
    /// system's roots (enough for ElastiCache, whose certificates chain to public roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// A Redis Cluster (ElastiCache cluster mode, ElastiCache Serverless): `url` is its
    /// configuration endpoint or one of its nodes, and commands go to the node owning their
    /// key's slot.
    #[serde(default)]
    pub cluster: bool,
    /// More seed nodes of the cluster besides `url` (`redis://host:port`, same scheme as `url`,
    /// no password: the URL's or `password` applies to every node); one answering is enough.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key docent writes (several deployments may share a server).
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
    /// Longest a (re)connection attempt may take.
    #[serde(default = "default_redis_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest any call may take; past it the call fails as unavailable (503), never hangs.
    #[serde(default = "default_redis_command_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// With a `url`: keep the model-call budgets (`[llm]`, `[embedder] kind = "openai"`) in
    /// Redis, so every process shares one budget per provider.
    #[serde(default = "yes")]
    pub share_model_budget: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            username: None,
            password: None,
            password_file: None,
            tls_ca_file: None,
            cluster: false,
            cluster_nodes: Vec::new(),
            key_prefix: default_redis_prefix(),
            connect_timeout: default_redis_connect_timeout(),
            command_timeout: default_redis_command_timeout(),
            share_model_budget: true,
        }
    }
}

impl RedisConfig {
    /// The URL, read from `url_file` when set; `None` when no Redis is configured.
    pub fn url(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret("redis.url_file", &self.url, &self.url_file)
    }

    /// The password, read from `password_file` when set; `None`: the URL's, if any.
    pub fn password(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret("redis.password_file", &self.password, &self.password_file)
    }

    /// Whether a server is configured.
    pub fn is_configured(&self) -> bool {
        self.url.is_some() || self.url_file.is_some()
    }
}

fn default_redis_prefix() -> String {
    "docent:".into()
}

fn default_redis_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_redis_command_timeout() -> Duration {
    Duration::from_secs(2)
}

/// How a hybrid search fuses the keyword and vector rankings (a request's `fusion`, `rrf_k`
/// and `vector_weight` override these).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// The default fusion.
    pub fusion: FusionKind,
    /// Weight of the vector score in `weighted` fusion, 0..=1.
    pub vector_weight: f32,
    /// The constant `k` of `rrf` fusion.
    pub rrf_k: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            fusion: FusionKind::Weighted,
            vector_weight: 0.5,
            rrf_k: 60.0,
        }
    }
}

/// The embeddable chat widget (`/widget.js`): how long a visitor's session lasts, how fast
/// visitors and keys may send messages, and the daily quota of a new widget key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WidgetConfig {
    /// Lifetime of a visitor session token (the widget mints a new one when it lapses),
    /// 1 minute to 1 day.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Daily message quota of a new widget key when its creator names none (UTC days).
    pub default_daily_quota: u32,
    /// Messages one widget key's visitors may send together, per process.
    pub key_rate: RateQuota,
    /// Messages one visitor may send, per process.
    pub visitor_rate: RateQuota,
    /// Sessions one client address may mint, per process.
    pub session_rate: RateQuota,
}

impl Default for WidgetConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(30 * 60),
            default_daily_quota: 1000,
            key_rate: RateQuota {
                per_minute: 120,
                burst: 30,
            },
            visitor_rate: RateQuota {
                per_minute: 6,
                burst: 3,
            },
            session_rate: RateQuota {
                per_minute: 60,
                burst: 20,
            },
        }
    }
}

/// A fusion method (see [`SearchConfig`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FusionKind {
    /// Normalised scores, weighted: `vector_weight · vector + (1 − vector_weight) · keyword`.
    Weighted,
    /// Reciprocal rank fusion: `Σ 1 / (rrf_k + rank)`.
    Rrf,
}

/// Search index backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IndexConfig {
    /// Keyword and vector indexes on local disk (embedded default).
    Embedded {
        /// Directory; relative paths are under `data_dir`.
        path: PathBuf,
        /// Vectors per collection above which an HNSW graph (built in the background) answers
        /// vector queries instead of the exact scan; 0 never builds one.
        #[serde(default = "default_ann_threshold")]
        ann_threshold: usize,
    },
    /// Tables in PostgreSQL (needs the pgvector extension, created at start when missing):
    /// full-text search (`tsvector` in each collection's language, BM25 ranking) for keywords
    /// and pgvector HNSW (cosine) for vectors, shared by every server and worker. Needs the
    /// `postgres` cargo feature of docent-store (on in the `docent` binary by default).
    Postgres {
        /// Connection URL (a secret: never printed); unset: the `[database]` URL, which must
        /// then be PostgreSQL.
        #[serde(
            default,
            serialize_with = "redact",
            skip_serializing_if = "Option::is_none"
        )]
        url: Option<SecretString>,
        /// File holding the URL (wins over `url`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url_file: Option<PathBuf>,
        /// Pool size (per process), apart from the `[database]` pool.
        #[serde(default = "default_pg_max_connections")]
        max_connections: u32,
        /// Longest a single search or write may run (`statement_timeout`); `0s`: no limit.
        #[serde(default = "default_pg_statement_timeout", with = "humantime_serde")]
        statement_timeout: Duration,
        /// HNSW links per node (`m`, 2..=100); used when the graph index is created.
        #[serde(default = "default_hnsw_m")]
        hnsw_m: u32,
        /// HNSW candidate list while building (`ef_construction`, at least `2 * hnsw_m`); used
        /// when the graph index is created.
        #[serde(default = "default_hnsw_ef_construction")]
        hnsw_ef_construction: u32,
        /// HNSW candidate list while searching (`hnsw.ef_search`, 1..=1000); raised per query
        /// to twice the number of hits asked for (at most 1000).
        #[serde(default = "default_hnsw_ef_search")]
        hnsw_ef_search: u32,
        /// TLS to the index's server (`[index.tls]`); without an index `url` the `[database]`
        /// connection's TLS settings apply instead.
        #[serde(default, skip_serializing_if = "PgTls::is_unset")]
        tls: PgTls,
    },
}

impl IndexConfig {
    /// The PostgreSQL URL of a `postgres` index: its own (read from `url_file` when set), else
    /// the `[database]` one; `None` for the embedded index.
    pub fn postgres_url(
        &self,
        database: &DatabaseConfig,
    ) -> Result<Option<SecretString>, ConfigError> {
        match self {
            IndexConfig::Embedded { .. } => Ok(None),
            IndexConfig::Postgres { url, url_file, .. } => {
                match read_secret("index.url_file", url, url_file)? {
                    Some(url) => Ok(Some(url)),
                    None => database.postgres_url(),
                }
            }
        }
    }
}

impl IndexConfig {
    /// The TLS settings of a `postgres` index's connection and the section they are read from
    /// (for error messages): `index` when the index has a URL of its own, else `database`.
    pub fn postgres_tls<'a>(&'a self, database: &'a DatabaseConfig) -> (&'a PgTls, &'static str) {
        static NONE: PgTls = PgTls {
            mode: None,
            root_cert: None,
            client_cert: None,
            client_key: None,
        };
        match (self, database) {
            (
                IndexConfig::Postgres {
                    url: None,
                    url_file: None,
                    ..
                },
                DatabaseConfig::Postgres { tls, .. },
            ) => (tls, "database"),
            (IndexConfig::Postgres { tls, .. }, _) => (tls, "index"),
            (IndexConfig::Embedded { .. }, _) => (&NONE, "index"),
        }
    }
}

fn default_hnsw_m() -> u32 {
    16
}

fn default_hnsw_ef_construction() -> u32 {
    64
}

fn default_hnsw_ef_search() -> u32 {
    100
}

fn default_ann_threshold() -> usize {
    // Measured here (2 cores, AVX-512): at 100k 384-d vectors the exact scan takes 5.0 ms and
    // the graph 5.3 ms, so the graph is for collections well beyond that.
    200_000
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
    /// Any OpenAI-compatible embeddings API, budgeted (requests/s, tokens/min, retries with
    /// backoff, `Retry-After`) and batched.
    Openai {
        /// Base URL, e.g. `https://api.openai.com/v1`.
        base_url: String,
        /// Model name, e.g. `text-embedding-3-small`.
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
        /// Vector dimension; unset: learned from one probe request at start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dimension: Option<usize>,
        /// Requests started per second, shared by every worker of the process.
        #[serde(default = "default_llm_requests_per_second")]
        requests_per_second: f64,
        /// Estimated tokens (chars / 4) per minute; none: unlimited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_per_minute: Option<u64>,
        /// The most of both budgets one tenant may use (a share in (0, 1]): a tenant spending its
        /// share waits while others still get the rest.
        #[serde(default = "default_model_tenant_share")]
        tenant_share: f64,
        /// Most texts per request (OpenAI allows 2048).
        #[serde(default = "default_openai_embed_batch")]
        batch_size: usize,
        /// Most estimated tokens per request (OpenAI allows 300 000).
        #[serde(default = "default_openai_embed_batch_tokens")]
        batch_tokens: usize,
        /// Attempts per request (429, 5xx and timeouts are retried with backoff).
        #[serde(default = "default_openai_embed_attempts")]
        max_attempts: u32,
        /// Time for one request.
        #[serde(default = "default_llm_timeout", with = "humantime_serde")]
        request_timeout: Duration,
    },
}

fn default_openai_embed_batch() -> usize {
    128
}

fn default_openai_embed_batch_tokens() -> usize {
    8_000
}

fn default_openai_embed_attempts() -> u32 {
    5
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
        /// Requests started per second, shared by every worker of the process.
        #[serde(default = "default_llm_requests_per_second")]
        requests_per_second: f64,
        /// Tokens (prompt + completion) per minute; none: unlimited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_per_minute: Option<u64>,
        /// The most of both budgets one tenant may use (a share in (0, 1]): a tenant spending its
        /// share waits while others still get the rest.
        #[serde(default = "default_model_tenant_share")]
        tenant_share: f64,
        /// Time for a whole answer, or for a streamed answer's first byte.
        #[serde(default = "default_llm_timeout", with = "humantime_serde")]
        request_timeout: Duration,
    },
}

fn default_llm_requests_per_second() -> f64 {
    5.0
}

fn default_model_tenant_share() -> f64 {
    0.5
}

fn valid_share(share: f64) -> bool {
    share.is_finite() && share > 0.0 && share <= 1.0
}

fn default_llm_timeout() -> Duration {
    Duration::from_secs(120)
}

/// Authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication: every request acts in the default tenant. Only for local use: set
    /// explicitly, and `docent serve` refuses to listen beyond loopback in this mode.
    None,
    /// Built-in accounts (the default) (argon2id passwords, JWT access + rotating refresh tokens), API keys,
    /// and the OIDC providers listed under `auth.oidc`.
    Builtin,
}

/// Authentication, accounts, API keys and rate limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Mode.
    pub mode: AuthMode,
    /// Anyone may sign up (creating their own tenant); when false, only invites admit.
    pub allow_signup: bool,
    /// Signing in needs a verified email address.
    pub require_email_verification: bool,
    /// Base URL used in links sent by mail (e.g. `https://docent.example.com`); defaults to
    /// the server's bind address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Lifetime of an access token (JWT).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token; each refresh issues a new one.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a login session (a refresh-token family).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Lifetime of an email-verification link.
    #[serde(with = "humantime_serde")]
    pub verification_token_ttl: Duration,
    /// Lifetime of a password-reset link.
    #[serde(with = "humantime_serde")]
    pub reset_token_ttl: Duration,
    /// Lifetime of an invitation.
    #[serde(with = "humantime_serde")]
    pub invite_token_ttl: Duration,
    /// Lifetime of the first-run setup token.
    #[serde(with = "humantime_serde")]
    pub setup_token_ttl: Duration,
    /// Clock skew tolerated when checking `exp`/`nbf` of JWTs.
    #[serde(with = "humantime_serde")]
    pub clock_leeway: Duration,
    /// How long a checked access token's session, account and membership (the role in force)
    /// are trusted before they are read again. Sign-out, password reset, demotion, removal and
    /// disabling take effect at once in the process that made them and within this time in
    /// every other process. At most 60s.
    #[serde(with = "humantime_serde")]
    pub principal_cache_ttl: Duration,
    /// Most entries of that cache (per process).
    pub principal_cache_capacity: usize,
    /// Access-token signing.
    pub jwt: JwtConfig,
    /// Password hashing (argon2id) and rules.
    pub password: PasswordConfig,
    /// How verification, reset and invite mails are delivered.
    pub mail: MailConfig,
    /// API keys.
    pub api_keys: ApiKeyConfig,
    /// Request rate limits.
    pub rate_limit: RateLimitConfig,
    /// Sign-in brute-force protection.
    pub signin_guard: SigninGuardConfig,
    /// Per-tenant quotas.
    pub quotas: QuotaConfig,
    /// External identity providers whose JWTs are accepted.
    pub oidc: Vec<OidcProviderConfig>,
}

/// Access-token signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures (default).
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// HMAC-SHA256 with a shared secret: only when set explicitly.
    HS256,
}

/// Access-token signing keys and claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Algorithm.
    pub algorithm: JwtAlgorithm,
    /// `iss` of issued tokens, required on verification.
    pub issuer: String,
    /// `aud` of issued tokens, required on verification.
    pub audience: String,
    /// PEM private key (PKCS#8 for EdDSA; PKCS#1 or PKCS#8 for RS256).
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_key: Option<SecretString>,
    /// File holding the PEM private key (wins over `private_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// HS256 secret (at least 32 bytes).
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret: Option<SecretString>,
    /// File holding the HS256 secret (wins over `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// With EdDSA and no key configured: where the generated key is kept (under `data_dir`).
    pub generated_key_path: PathBuf,
    /// PEM public keys of retired signing keys still accepted (key rotation).
    pub previous_public_key_files: Vec<PathBuf>,
}

/// Password hashing and rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    /// argon2id memory cost in KiB.
    pub memory_kib: u32,
    /// argon2id passes.
    pub iterations: u32,
    /// argon2id lanes.
    pub parallelism: u32,
    /// Shortest accepted password, in characters.
    pub min_length: usize,
}

/// How account mails are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// Write each mail as a file under `path` (the default: links appear under `data_dir`).
    File,
    /// Send through the SMTP server below (needs the `smtp` build feature).
    Smtp,
}

/// Mail delivery. One flat section, so switching `kind` needs no other change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// `file` or `smtp`.
    pub kind: MailKind,
    /// File mailer: directory; relative paths are under `data_dir`.
    pub path: PathBuf,
    /// SMTP: server host.
    pub host: String,
    /// SMTP: server port.
    pub port: u16,
    /// SMTP: `starttls`, `tls` (implicit) or `none` (local relays only).
    pub tls: SmtpTls,
    /// Sender address, e.g. `docent <noreply@example.com>`.
    pub from: String,
    /// SMTP login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
    /// File holding the SMTP password (wins over `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// Plain text: only for a relay on the same host.
    None,
}

/// API keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A key's last-used time is written at most this often.
    #[serde(with = "humantime_serde")]
    pub last_used_interval: Duration,
}

/// One token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateQuota {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

/// Token buckets per caller (API key, user or IP address) and route class.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Apply rate limits (with `auth.mode = "builtin"`; mode `none` is never limited).
    pub enabled: bool,
    /// Sign-up, sign-in, refresh, verification and reset routes (keyed by IP).
    pub auth: RateQuota,
    /// Reads: lists, gets, downloads.
    pub read: RateQuota,
    /// Writes: creates, updates, deletes.
    pub write: RateQuota,
    /// Uploads and reprocessing.
    pub ingest: RateQuota,
    /// Search.
    pub search: RateQuota,
    /// Answers, chat and summaries (may call an LLM).
    pub ask: RateQuota,
    /// A workspace's ceiling per route class, shared by all its keys and users: this many
    /// times one caller's quota (so minting more keys does not multiply the limit). 0: none.
    pub tenant_factor: u32,
}

/// Sign-in brute-force protection: per account and client address, failures beyond
/// `max_failures` lock sign-in out for `lockout_base`, doubling per further failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigninGuardConfig {
    /// Failures allowed before the first lockout.
    pub max_failures: u32,
    /// First lockout.
    #[serde(with = "humantime_serde")]
    pub lockout_base: Duration,
    /// Longest lockout.
    #[serde(with = "humantime_serde")]
    pub lockout_max: Duration,
    /// Failures older than this are forgotten.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failures from all addresses together after which each further failure locks the
    /// account from everywhere for `account_lockout` (a fixed, short delay: it slows guessing
    /// spread over many addresses without locking the owner out for long). 0: no such limit.
    pub account_max_failures: u32,
    /// Lockout of the whole account, per failure past `account_max_failures`.
    #[serde(with = "humantime_serde")]
    pub account_lockout: Duration,
}

/// Per-tenant quotas; 0 means unlimited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Most documents per tenant.
    pub max_documents: u64,
    /// Most bytes of originals per tenant.
    pub max_stored_bytes: ByteSize,
    /// Most chunks stored per tenant: an ingest that would pass it fails with
    /// `chunk_quota_exceeded`.
    #[serde(default)]
    pub max_chunks: u64,
}

/// An external OpenID Connect provider (Cognito, Auth0, Keycloak, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Label for logs.
    pub name: String,
    /// Expected `iss` (exact match).
    pub issuer: String,
    /// Expected `aud` (one of them must match).
    pub audience: Vec<String>,
    /// Where the provider publishes its signing keys.
    pub jwks_url: String,
    /// Accepted algorithms (HMAC is never accepted).
    #[serde(default = "default_oidc_algorithms")]
    pub algorithms: Vec<String>,
    /// How long fetched keys are trusted before refetching.
    #[serde(default = "default_jwks_ttl", with = "humantime_serde")]
    pub jwks_ttl: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    #[serde(default = "default_jwks_min_refresh", with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
    /// Claim holding the stable user id.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Claim holding the email address.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// Claim holding the display name.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// Claim naming the tenant (its value is mapped to a docent tenant per provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
    /// Fixed docent tenant id for every user of this provider (when no `tenant_claim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Create a docent tenant the first time a `tenant_claim` value is seen.
    #[serde(default)]
    pub create_tenants: bool,
    /// Claim holding the role or groups (string or array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_claim: Option<String>,
    /// Maps values of `role_claim` to roles (values equal to a role name map to it anyway).
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, String>,
    /// Role when the claim names none.
    #[serde(default = "default_oidc_role")]
    pub default_role: String,
}

fn default_oidc_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}
fn default_subject_claim() -> String {
    "sub".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_oidc_role() -> String {
    "member".into()
}

impl Default for AuthConfig {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        let quota = |per_minute, burst| RateQuota { per_minute, burst };
        Self {
            mode: AuthMode::Builtin,
            allow_signup: true,
            require_email_verification: false,
            public_url: None,
            access_token_ttl: 15 * minute,
            refresh_token_ttl: 14 * 24 * 60 * minute,
            session_ttl: 90 * 24 * 60 * minute,
            verification_token_ttl: 24 * 60 * minute,
            reset_token_ttl: 60 * minute,
            invite_token_ttl: 7 * 24 * 60 * minute,
            setup_token_ttl: 24 * 60 * minute,
            clock_leeway: Duration::from_secs(30),
            principal_cache_ttl: Duration::from_secs(5),
            principal_cache_capacity: 10_000,
            jwt: JwtConfig {
                algorithm: JwtAlgorithm::EdDSA,
                issuer: "docent".into(),
                audience: "docent-api".into(),
                private_key: None,
                private_key_file: None,
                secret: None,
                secret_file: None,
                generated_key_path: "auth/jwt-ed25519.pem".into(),
                previous_public_key_files: Vec::new(),
            },
            password: PasswordConfig {
                memory_kib: 19 * 1024,
                iterations: 2,
                parallelism: 1,
                min_length: 10,
            },
            mail: MailConfig {
                kind: MailKind::File,
                path: "mail".into(),
                host: String::new(),
                port: 587,
                tls: SmtpTls::Starttls,
                from: "docent <noreply@localhost>".into(),
                username: None,
                password: None,
                password_file: None,
            },
            api_keys: ApiKeyConfig {
                last_used_interval: minute,
            },
            rate_limit: RateLimitConfig {
                enabled: true,
                auth: quota(30, 10),
                read: quota(600, 120),
                write: quota(120, 40),
                ingest: quota(60, 20),
                search: quota(300, 60),
                ask: quota(60, 10),
                tenant_factor: 10,
            },
            signin_guard: SigninGuardConfig {
                max_failures: 5,
                lockout_base: Duration::from_secs(30),
                lockout_max: 15 * minute,
                window: 15 * minute,
                account_max_failures: 20,
                account_lockout: Duration::from_secs(30),
            },
            quotas: QuotaConfig {
                max_documents: 0,
                max_stored_bytes: ByteSize::b(0),
                max_chunks: 0,
            },
            oidc: Vec::new(),
        }
    }
}

impl JwtConfig {
    /// The PEM private key, read from `private_key_file` when set.
    pub fn private_key(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret(
            "auth.jwt.private_key_file",
            &self.private_key,
            &self.private_key_file,
        )
    }

    /// The HS256 secret, read from `secret_file` when set.
    pub fn secret(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret("auth.jwt.secret_file", &self.secret, &self.secret_file)
    }
}

impl MailConfig {
    /// The SMTP password, read from `password_file` when set.
    pub fn password(&self) -> Result<Option<SecretString>, ConfigError> {
        read_secret(
            "auth.mail.password_file",
            &self.password,
            &self.password_file,
        )
    }
}

/// A secret from its `*_file` sibling when set, else from the inline value. A PEM or secret
/// file keeps its content as is apart from surrounding whitespace.
fn read_secret(
    key: &str,
    inline: &Option<SecretString>,
    file: &Option<PathBuf>,
) -> Result<Option<SecretString>, ConfigError> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| Some(SecretString::from(s.trim().to_owned())))
            .map_err(|e| ConfigError::Invalid(format!("{key} {}: {e}", path.display()))),
        None => Ok(inline
            .as_ref()
            .map(|k| SecretString::from(k.expose_secret()))),
    }
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
            data_dir: PathBuf::from(home::DATA_DIR),
            server: ServerConfig {
                bind: "127.0.0.1:8080".parse().expect("valid default address"),
                request_timeout: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(20),
                run_workers: true,
                header_read_timeout: Duration::from_secs(10),
                max_connections: 1024,
                metrics_token: None,
                metrics_token_file: None,
                cors: CorsConfig::default(),
                trusted_proxies: Vec::new(),
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
                max_running_per_tenant: default_max_running_per_tenant(),
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
                record_batch: default_record_batch(),
                max_record_fields: default_max_record_fields(),
                max_record_chunks: default_max_record_chunks(),
                max_document_rows: default_max_document_rows(),
                max_document_chunks: default_max_document_chunks(),
            },
            cache: CacheConfig::Memory {
                max_entries: 10_000,
            },
            redis: RedisConfig::default(),
            index: IndexConfig::Embedded {
                path: "index".into(),
                ann_threshold: default_ann_threshold(),
            },
            search: SearchConfig::default(),
            widget: WidgetConfig::default(),
            embedder: EmbedderConfig::Local {
                model_dir: home::MODEL_DIR.into(),
                threads: 0,
                batch_size: 32,
            },
            llm: LlmConfig::None,
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then the seed applications' variables ([`seed_env`]), then `file` if
    /// given, then `DOCENT__*` environment variables, and validates the result. The compiled-in
    /// relative paths stay relative (to the working directory); [`ConfigLayers::load_in`]
    /// anchors them in a docent home.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        ConfigLayers::load(file)?.into_config()
    }

    /// Like [`Config::load`] with an explicit environment provider (tests), and no seed
    /// variables.
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        ConfigLayers::load_from(file, env)?.into_config()
    }

    /// The merged layers: the defaults (their relative `data_dir` and `embedder.model_dir`
    /// under `home`, when given), the variables of `seed` ([`seed_env`]), `file`, then `env`;
    /// relative paths written in `file` are made relative to its directory. Also what each
    /// seed variable did.
    fn layers(
        home: Option<&Path>,
        file: Option<&Path>,
        env: Env,
        seed: &SeedEnv,
    ) -> Result<(Figment, Vec<SeedUse>), ConfigError> {
        let mut overrides = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            overrides = overrides.merge(Toml::file_exact(file));
        }
        let overrides = overrides.merge(env);
        // A backend section whose `kind` the file or environment changes starts from nothing:
        // the default backend's settings (e.g. the local model's `model_dir`) are not another
        // backend's.
        let mut defaults = Config::default();
        if let Some(home) = home {
            defaults.data_dir = home.join(&defaults.data_dir);
            if let EmbedderConfig::Local { model_dir, .. } = &mut defaults.embedder {
                *model_dir = home.join(&*model_dir);
            }
        }
        let mut base = figment::value::Value::serialize(&defaults)
            .ok()
            .and_then(|v| v.into_dict())
            .unwrap_or_default();
        let kind_at = |dict: &figment::value::Dict, section: &str| {
            dict_path::get(dict, &format!("{section}.kind"))
                .and_then(|k| k.as_str().map(str::to_owned))
        };
        // The seed applications' variables, below the file and `DOCENT__` variables.
        let seeded = seed_env::layer(seed, &overrides, |section| kind_at(&base, section))?;
        for section in [
            "database",
            "storage",
            "queue.backend",
            "cache",
            "index",
            "embedder",
            "llm",
        ] {
            let chosen = overrides
                .find_value(&format!("{section}.kind"))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .or_else(|| {
                    seeded
                        .kinds
                        .iter()
                        .find(|(s, _)| *s == section)
                        .map(|(_, k)| (*k).to_owned())
                });
            if let Some(chosen) = chosen
                && kind_at(&base, section).is_some_and(|default| default != chosen)
            {
                dict_path::remove(&mut base, section);
            }
        }
        let merged = Figment::from(Serialized::defaults(base))
            .merge(Serialized::defaults(seeded.values))
            .merge(overrides);
        let merged = match file {
            Some(file) => file_paths::anchor(merged, file),
            None => merged,
        };
        Ok((merged, seeded.uses))
    }

    /// Types and validates merged layers. `hidden` are values resolved from elsewhere (secrets):
    /// they never appear in an error message.
    fn from_layers(fig: Figment, hidden: &[String]) -> Result<Self, ConfigError> {
        let hide = |mut m: String| {
            for h in hidden.iter().filter(|h| !h.is_empty()) {
                m = m.replace(h.as_str(), "[redacted]");
            }
            m
        };
        let config: Config = fig.extract().map_err(|e| {
            ConfigError::Parse(hide(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        })?;
        config.validate().map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(hide(m)),
            ConfigError::Invalid(m) => ConfigError::Invalid(hide(m)),
        })?;
        Ok(config)
    }

    /// Checks values that parse but do not fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency must be at least 1");
        }
        if self.server.header_read_timeout.is_zero() {
            return bad("server.header_read_timeout must be more than zero");
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections must be at least 1");
        }
        for (i, entry) in self.server.trusted_proxies.iter().enumerate() {
            if proxy_net(entry).is_none() {
                return bad(&format!(
                    "server.trusted_proxies[{i}] ({entry:?}) must be an IP address or a CIDR block such as 10.0.0.0/16"
                ));
            }
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
        match &self.queue.backend {
            QueueBackend::Sqs(sqs) => sqs.validate(&self.queue)?,
            QueueBackend::Redis(redis) => redis.validate(self)?,
            QueueBackend::Sql => {}
        }
        let w = &self.widget;
        if w.session_ttl < Duration::from_secs(60) || w.session_ttl > Duration::from_secs(86_400) {
            return bad("widget.session_ttl must be between 1m and 1day");
        }
        if w.default_daily_quota == 0 {
            return bad("widget.default_daily_quota must be at least 1");
        }
        for (name, q) in [
            ("widget.key_rate", w.key_rate),
            ("widget.visitor_rate", w.visitor_rate),
            ("widget.session_rate", w.session_rate),
        ] {
            if q.per_minute == 0 || q.burst == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{name}: per_minute and burst must be at least 1"
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.search.vector_weight) {
            return bad("search.vector_weight must be between 0 and 1");
        }
        if !(self.search.rrf_k >= 0.0 && self.search.rrf_k.is_finite()) {
            return bad("search.rrf_k must be a number of at least 0");
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
        match &self.database {
            DatabaseConfig::Sqlite {
                max_connections: 0, ..
            }
            | DatabaseConfig::Postgres {
                max_connections: 0, ..
            } => return bad("database.max_connections must be at least 1"),
            DatabaseConfig::Postgres {
                url: None,
                url_file: None,
                ..
            } => return bad("database.url (or database.url_file) is required for postgres"),
            DatabaseConfig::Postgres { tls, .. } => tls.validate("database")?,
            DatabaseConfig::Sqlite { .. } => {}
        }
        self.validate_index()?;
        self.validate_cors()?;
        self.validate_auth()?;
        self.telemetry.otlp.validate()?;
        self.validate_storage()?;
        self.validate_redis()?;
        if let EmbedderConfig::Openai {
            base_url,
            requests_per_second,
            tenant_share,
            batch_size,
            batch_tokens,
            dimension,
            max_attempts,
            ..
        } = &self.embedder
        {
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return bad("embedder.base_url must be an http(s) URL");
            }
            if !(requests_per_second.is_finite() && *requests_per_second > 0.0) {
                return bad("embedder.requests_per_second must be a positive number");
            }
            if !valid_share(*tenant_share) {
                return bad("embedder.tenant_share must be above 0 and at most 1");
            }
            if *batch_size == 0 || *batch_tokens == 0 || *max_attempts == 0 || *dimension == Some(0)
            {
                return bad(
                    "embedder.batch_size, batch_tokens, max_attempts and dimension must be at least 1",
                );
            }
        }
        if self.ingest.record_batch == 0 {
            return bad("ingest.record_batch must be at least 1");
        }
        if self.ingest.max_record_fields == 0
            || self.ingest.max_record_chunks == 0
            || self.ingest.max_document_rows == 0
            || self.ingest.max_document_chunks == 0
        {
            return bad(
                "ingest.max_record_fields, max_record_chunks, max_document_rows and max_document_chunks must be at least 1",
            );
        }
        if let LlmConfig::Openai { base_url, .. } = &self.llm
            && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return bad("llm.base_url must be an http(s) URL");
        }
        if let LlmConfig::Openai {
            requests_per_second,
            ..
        } = &self.llm
            && !(requests_per_second.is_finite() && *requests_per_second > 0.0)
        {
            return bad("llm.requests_per_second must be a positive number");
        }
        if let LlmConfig::Openai { tenant_share, .. } = &self.llm
            && !valid_share(*tenant_share)
        {
            return bad("llm.tenant_share must be above 0 and at most 1");
        }
        Ok(())
    }

    /// A `postgres` index needs a URL (its own or a PostgreSQL `[database]`) and HNSW settings
    /// pgvector accepts.
    fn validate_index(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let IndexConfig::Postgres {
            url,
            url_file,
            max_connections,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            tls,
            ..
        } = &self.index
        else {
            return Ok(());
        };
        tls.validate("index")?;
        if url.is_none()
            && url_file.is_none()
            && !matches!(self.database, DatabaseConfig::Postgres { .. })
        {
            return bad(
                "index.url (or index.url_file) is required for index kind \"postgres\" unless \
                 [database] is postgres",
            );
        }
        if *max_connections == 0 {
            return bad("index.max_connections must be at least 1");
        }
        if !(2..=100).contains(hnsw_m) {
            return bad("index.hnsw_m must be between 2 and 100");
        }
        if !(4..=1000).contains(hnsw_ef_construction) || *hnsw_ef_construction < 2 * hnsw_m {
            return bad(
                "index.hnsw_ef_construction must be between 4 and 1000 and at least 2 * hnsw_m",
            );
        }
        if !(1..=1000).contains(hnsw_ef_search) {
            return bad("index.hnsw_ef_search must be between 1 and 1000");
        }
        Ok(())
    }

    /// `redis.cluster_nodes`: only with `redis.cluster`, URLs of `redis.url`'s scheme without a
    /// password (the nodes share the URL's or `redis.password`).
    fn validate_redis_cluster(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let nodes = &self.redis.cluster_nodes;
        if nodes.is_empty() {
            return Ok(());
        }
        if !self.redis.cluster {
            return bad("redis.cluster_nodes is set but redis.cluster is false".into());
        }
        if !self.redis.is_configured() {
            return bad("redis.cluster_nodes needs redis.url (or redis.url_file)".into());
        }
        let scheme = |u: &str| u.split_once("://").map(|(s, _)| s.to_owned());
        let url_scheme = self
            .redis
            .url
            .as_ref()
            .and_then(|u| scheme(u.expose_secret()));
        for (i, node) in nodes.iter().enumerate() {
            let Some(node_scheme) = scheme(node).filter(|s| s == "redis" || s == "rediss") else {
                return bad(format!(
                    "redis.cluster_nodes[{i}] must be a redis:// or rediss:// URL"
                ));
            };
            if url_scheme.as_ref().is_some_and(|s| *s != node_scheme) {
                return bad(format!(
                    "redis.cluster_nodes[{i}] must use the scheme of redis.url ({node_scheme}:// \
                     differs)"
                ));
            }
            let authority = node
                .split_once("://")
                .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            if authority.contains('@') {
                return bad(format!(
                    "redis.cluster_nodes[{i}] must not carry a user or password; set \
                     redis.username and redis.password (or put them in redis.url)"
                ));
            }
            if authority.is_empty() {
                return bad(format!("redis.cluster_nodes[{i}] has no host"));
            }
        }
        Ok(())
    }

    /// The Redis-backed pieces need `[redis] url`; DynamoDB tables need a name.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let wants_redis = matches!(self.cache, CacheConfig::Redis)
            || matches!(self.cache, CacheConfig::Tiered { redis: true, .. });
        if wants_redis && !self.redis.is_configured() {
            return bad(
                "redis.url (or redis.url_file) is required by cache kind \"redis\" and \"tiered\" \
                 (with redis = true)",
            );
        }
        if let Some(ca) = &self.redis.tls_ca_file {
            if !ca.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "redis.tls_ca_file: {} is not a readable file",
                    ca.display()
                )));
            }
            if self
                .redis
                .url
                .as_ref()
                .is_some_and(|u| !u.expose_secret().starts_with("rediss://"))
            {
                return bad("redis.tls_ca_file is set but redis.url is not a rediss:// (TLS) URL");
            }
        }
        self.validate_redis_cluster()?;
        if self.redis.key_prefix.is_empty() {
            return bad("redis.key_prefix must not be empty");
        }
        if self.redis.command_timeout.is_zero() || self.redis.connect_timeout.is_zero() {
            return bad("redis.connect_timeout and redis.command_timeout must be above zero");
        }
        let dynamo = match &self.cache {
            CacheConfig::Dynamodb(d) => Some(d),
            CacheConfig::Tiered { dynamodb, .. } => dynamodb.as_ref(),
            _ => None,
        };
        if dynamo.is_some_and(|d| d.table.trim().is_empty()) {
            return bad("cache.table (the DynamoDB table) must not be empty");
        }
        if let CacheConfig::Tiered {
            redis: false,
            dynamodb: None,
            ..
        } = self.cache
        {
            return bad("cache kind \"tiered\" needs redis = true or a [cache.dynamodb] table");
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if let StorageConfig::S3 {
            bucket,
            region,
            endpoint,
            allow_http,
            server_side_encryption,
            kms_key_id,
            presign_ttl,
            ..
        } = &self.storage
        {
            if bucket.is_empty() || region.is_empty() {
                return bad("storage.bucket and storage.region must be set");
            }
            if let Some(e) = endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return bad("storage.endpoint must be an http(s) URL");
                }
                if e.starts_with("http://") && !allow_http {
                    return bad("storage.endpoint is plain http: set storage.allow_http = true");
                }
            }
            if kms_key_id.is_some() && *server_side_encryption != ServerSideEncryption::AwsKms {
                return bad("storage.kms_key_id needs server_side_encryption = \"aws:kms\"");
            }
            if *presign_ttl < Duration::from_secs(1)
                || *presign_ttl > Duration::from_secs(7 * 24 * 3600)
            {
                return bad("storage.presign_ttl must be between 1s and 7 days");
            }
        }
        Ok(())
    }

    fn validate_cors(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let c = &self.server.cors;
        let wildcard = c.allowed_origins.iter().any(|o| o == "*");
        if wildcard && c.allow_credentials {
            return bad(
                "server.cors: a \"*\" origin cannot be combined with allow_credentials = true; \
                 list the origins instead"
                    .into(),
            );
        }
        if wildcard && c.allowed_origins.len() > 1 {
            return bad("server.cors.allowed_origins: \"*\" must be the only entry".into());
        }
        for o in c.allowed_origins.iter().filter(|o| *o != "*") {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && !o[o.find("//").unwrap_or(0) + 2..].contains('/')
                && !o.chars().any(|ch| ch.is_whitespace());
            if !ok {
                return bad(format!(
                    "server.cors.allowed_origins: {o:?} is not an origin like \"https://app.example.com\""
                ));
            }
        }
        for m in &c.allowed_methods {
            if m.is_empty() || !m.chars().all(|ch| ch.is_ascii_uppercase()) {
                return bad(format!(
                    "server.cors.allowed_methods: {m:?} is not an upper-case HTTP method"
                ));
            }
        }
        for h in &c.allowed_headers {
            if h.is_empty()
                || !h
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return bad(format!(
                    "server.cors.allowed_headers: {h:?} is not a header name"
                ));
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let a = &self.auth;
        if a.access_token_ttl < Duration::from_secs(30)
            || a.access_token_ttl > Duration::from_secs(24 * 3600)
        {
            return bad("auth.access_token_ttl must be between 30s and 24h".into());
        }
        if a.refresh_token_ttl <= a.access_token_ttl {
            return bad("auth.refresh_token_ttl must be longer than auth.access_token_ttl".into());
        }
        if a.session_ttl < a.refresh_token_ttl {
            return bad("auth.session_ttl must not be shorter than auth.refresh_token_ttl".into());
        }
        if a.clock_leeway > Duration::from_secs(300) {
            return bad("auth.clock_leeway must be at most 5m".into());
        }
        if a.principal_cache_ttl > Duration::from_secs(60) {
            return bad("auth.principal_cache_ttl must be at most 60s".into());
        }
        if a.password.min_length < 8 {
            return bad("auth.password.min_length must be at least 8".into());
        }
        if a.password.memory_kib < 8 * a.password.parallelism.max(1)
            || a.password.iterations == 0
            || a.password.parallelism == 0
        {
            return bad(
                "auth.password: memory_kib, iterations and parallelism are too small".into(),
            );
        }
        let has_secret = a.jwt.secret.is_some() || a.jwt.secret_file.is_some();
        match a.jwt.algorithm {
            JwtAlgorithm::HS256 if !has_secret => {
                return bad(
                    "auth.jwt.algorithm = \"HS256\" needs auth.jwt.secret or secret_file".into(),
                );
            }
            JwtAlgorithm::EdDSA | JwtAlgorithm::RS256 if has_secret => {
                return bad("auth.jwt.secret is only used with algorithm = \"HS256\"".into());
            }
            JwtAlgorithm::RS256
                if a.jwt.private_key.is_none() && a.jwt.private_key_file.is_none() =>
            {
                return bad(
                    "auth.jwt.algorithm = \"RS256\" needs auth.jwt.private_key or private_key_file"
                        .into(),
                );
            }
            _ => {}
        }
        for (name, q) in [
            ("auth", a.rate_limit.auth),
            ("read", a.rate_limit.read),
            ("write", a.rate_limit.write),
            ("ingest", a.rate_limit.ingest),
            ("search", a.rate_limit.search),
            ("ask", a.rate_limit.ask),
        ] {
            if q.per_minute == 0 || q.burst == 0 {
                return bad(format!(
                    "auth.rate_limit.{name}: per_minute and burst must be at least 1"
                ));
            }
        }
        if a.signin_guard.max_failures == 0
            || a.signin_guard.lockout_base > a.signin_guard.lockout_max
        {
            return bad("auth.signin_guard: max_failures must be at least 1 and lockout_base at most lockout_max".into());
        }
        if a.mail.kind == MailKind::Smtp && (a.mail.host.is_empty() || a.mail.from.is_empty()) {
            return bad("auth.mail.kind = \"smtp\" needs auth.mail.host and auth.mail.from".into());
        }
        if let Some(url) = &a.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad("auth.public_url must be an http(s) URL".into());
        }
        for p in &a.oidc {
            if p.issuer.is_empty() || p.audience.is_empty() {
                return bad(format!(
                    "auth.oidc `{}`: issuer and audience are required",
                    p.name
                ));
            }
            if !(p.jwks_url.starts_with("https://") || p.jwks_url.starts_with("http://")) {
                return bad(format!(
                    "auth.oidc `{}`: jwks_url must be an http(s) URL",
                    p.name
                ));
            }
            if p.algorithms.is_empty()
                || p.algorithms.iter().any(|a| {
                    a.starts_with("HS")
                        || !matches!(
                            a.as_str(),
                            "RS256"
                                | "RS384"
                                | "RS512"
                                | "PS256"
                                | "PS384"
                                | "PS512"
                                | "ES256"
                                | "ES384"
                                | "EdDSA"
                        )
                })
            {
                return bad(format!(
                    "auth.oidc `{}`: algorithms must be asymmetric JWS algorithms (RS256, ES256, EdDSA, ...)",
                    p.name
                ));
            }
            let is_role = |r: &str| matches!(r, "owner" | "admin" | "member" | "viewer");
            if !is_role(&p.default_role) || p.role_map.values().any(|r| !is_role(r)) {
                return bad(format!(
                    "auth.oidc `{}`: roles must be owner, admin, member or viewer",
                    p.name
                ));
            }
            if p.tenant_claim.is_none() && p.tenant_id.is_none() {
                return bad(format!(
                    "auth.oidc `{}`: set tenant_claim or tenant_id",
                    p.name
                ));
            }
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

/// The merged layers (defaults → file → environment) before they are typed and validated: the
/// one place where string values may be replaced, e.g. `secretsmanager:NAME#key` references
/// resolved by the binary (docent-aws; this crate knows no secret store).
///
/// ```
/// # use docent_config::ConfigLayers;
/// let layers = ConfigLayers::load(None)?;
/// let config = layers.resolve(|_key, value| Ok(value.strip_prefix("upper:").map(str::to_uppercase)))?;
/// # Ok::<(), docent_config::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct ConfigLayers {
    figment: Figment,
    seed: Vec<SeedUse>,
}

impl ConfigLayers {
    /// The layers [`Config::load`] reads.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_in_with(
            None,
            file,
            Env::prefixed("DOCENT__").split("__"),
            &SeedEnv::from_process(),
        )
    }

    /// The layers [`Config::load_from`] reads (no seed variables).
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        Self::load_in_from(None, file, env)
    }

    /// The layers of a process whose docent home is `home` (see [`home`]): the compiled-in
    /// `data_dir` and `embedder.model_dir` are relative to it. Relative paths in `file` are
    /// relative to the file's directory, as with every loader; relative paths from `DOCENT__*`
    /// variables stay relative to the working directory.
    pub fn load_in(home: &Path, file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_in_with(
            Some(home),
            file,
            Env::prefixed("DOCENT__").split("__"),
            &SeedEnv::from_process(),
        )
    }

    /// [`ConfigLayers::load_in`] with an explicit environment provider, no seed variables,
    /// and the defaults left relative without a `home`.
    pub fn load_in_from(
        home: Option<&Path>,
        file: Option<&Path>,
        env: Env,
    ) -> Result<Self, ConfigError> {
        Self::load_in_with(home, file, env, &SeedEnv::default())
    }

    /// [`ConfigLayers::load_in_from`] with the seed applications' variables of `seed`.
    pub fn load_in_with(
        home: Option<&Path>,
        file: Option<&Path>,
        env: Env,
        seed: &SeedEnv,
    ) -> Result<Self, ConfigError> {
        let (figment, seed) = Config::layers(home, file, env, seed)?;
        Ok(Self { figment, seed })
    }

    /// What each seed variable set (or why it was ignored), for `docent config show`.
    pub fn seed_uses(&self) -> &[SeedUse] {
        &self.seed
    }

    /// Every string value with its key (`llm.api_key`, `auth.oidc[0].client_id`), in key order.
    pub fn strings(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        let root = figment::value::Value::Dict(figment::value::Tag::Default, self.root()?);
        layer_walk::visit(&root, &mut String::new(), &mut |key, value| {
            out.push((key.to_owned(), value.to_owned()));
            Ok(None)
        })?;
        Ok(out)
    }

    /// Types and validates the configuration, first replacing every string value for which
    /// `resolve(key, value)` answers `Some`. An `Err(reason)` stops loading with
    /// `invalid configuration: KEY: reason`. Replacements never appear in error messages.
    pub fn resolve(
        self,
        mut resolve: impl FnMut(&str, &str) -> Result<Option<String>, String>,
    ) -> Result<Config, ConfigError> {
        let root = figment::value::Value::Dict(figment::value::Tag::Default, self.root()?);
        let mut hidden = Vec::new();
        let overlay = layer_walk::visit(&root, &mut String::new(), &mut |key, value| {
            let replaced = resolve(key, value)?;
            hidden.extend(replaced.clone());
            Ok(replaced)
        })?;
        let figment = match overlay.and_then(|v| v.into_dict()) {
            Some(dict) => self.figment.merge(Serialized::defaults(dict)),
            None => self.figment,
        };
        Config::from_layers(figment, &hidden)
    }

    /// Types and validates the configuration as it is.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        Config::from_layers(self.figment, &[])
    }

    fn root(&self) -> Result<figment::value::Dict, ConfigError> {
        self.figment
            .extract::<figment::value::Dict>()
            .map_err(|e| ConfigError::Parse(e.to_string()))
    }
}

/// The walk behind [`ConfigLayers::resolve`]: an overlay holding only what changed.
mod layer_walk {
    use figment::value::{Dict, Tag, Value};

    use super::ConfigError;

    type Replace<'a> = dyn FnMut(&str, &str) -> Result<Option<String>, String> + 'a;

    /// Offers every string under `value` (at `key`) to `f`; returns the overlay of the values
    /// it replaced (dictionaries sparse, arrays whole, as a figment merge replaces arrays).
    pub(super) fn visit(
        value: &Value,
        key: &mut String,
        f: &mut Replace<'_>,
    ) -> Result<Option<Value>, ConfigError> {
        match value {
            Value::String(_, s) => f(key, s)
                .map(|r| r.map(|r| Value::String(Tag::Default, r)))
                .map_err(|reason| ConfigError::Invalid(format!("{key}: {reason}"))),
            Value::Dict(_, dict) => {
                let mut changed = Dict::new();
                for (name, child) in dict {
                    let len = key.len();
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(name);
                    let overlay = visit(child, key, f)?;
                    key.truncate(len);
                    if let Some(overlay) = overlay {
                        changed.insert(name.clone(), overlay);
                    }
                }
                Ok((!changed.is_empty()).then_some(Value::Dict(Tag::Default, changed)))
            }
            Value::Array(_, items) => {
                let mut any = false;
                let mut whole = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = key.len();
                    key.push_str(&format!("[{i}]"));
                    let overlay = visit(item, key, f)?;
                    key.truncate(len);
                    any |= overlay.is_some();
                    whole.push(match overlay {
                        Some(overlay) => apply(item.clone(), overlay),
                        None => item.clone(),
                    });
                }
                Ok(any.then_some(Value::Array(Tag::Default, whole)))
            }
            _ => Ok(None),
        }
    }

    /// `base` with `overlay` merged in (dictionaries key by key).
    fn apply(base: Value, overlay: Value) -> Value {
        match (base, overlay) {
            (Value::Dict(tag, mut dict), Value::Dict(_, over)) => {
                for (k, v) in over {
                    let merged = match dict.remove(&k) {
                        Some(old) => apply(old, v),
                        None => v,
                    };
                    dict.insert(k, merged);
                }
                Value::Dict(tag, dict)
            }
            (_, overlay) => overlay,
        }
    }
}

/// Relative paths written in a configuration file, made relative to the file's directory.
mod file_paths {
    use std::path::Path;

    use figment::Figment;
    use figment::providers::Serialized;
    use figment::value::{Dict, Tag, Value};

    use crate::dict_path::insert;

    /// Every key holding a path that is not under `data_dir` (those stay relative to it).
    const KEYS: &[&str] = &[
        "data_dir",
        "server.metrics_token_file",
        "database.url_file",
        "database.tls.root_cert",
        "database.tls.client_cert",
        "database.tls.client_key",
        "redis.url_file",
        "redis.password_file",
        "redis.tls_ca_file",
        "index.url_file",
        "index.tls.root_cert",
        "index.tls.client_cert",
        "index.tls.client_key",
        "embedder.model_dir",
        "embedder.api_key_file",
        "llm.api_key_file",
        "auth.jwt.private_key_file",
        "auth.jwt.secret_file",
        "auth.jwt.previous_public_key_files",
        "auth.mail.password_file",
    ];

    /// `fig` with each relative path of [`KEYS`] that `file` set joined to `file`'s directory.
    pub(super) fn anchor(fig: Figment, file: &Path) -> Figment {
        // The file exists (checked before): its real path has no `..` to show.
        let Some(dir) = std::fs::canonicalize(file)
            .or_else(|_| std::path::absolute(file))
            .ok()
            .and_then(|f| f.parent().map(Path::to_path_buf))
        else {
            return fig;
        };
        let from_file = |tag: Tag| {
            fig.get_metadata(tag)
                .is_some_and(|m| matches!(m.source, Some(figment::Source::File(_))))
        };
        let anchored = |v: &Value| match v {
            Value::String(tag, s)
                if from_file(*tag)
                    && Path::new(s).is_relative()
                    && !s.starts_with("secretsmanager:") =>
            {
                Some(Value::String(
                    Tag::Default,
                    dir.join(s).to_string_lossy().into_owned(),
                ))
            }
            _ => None,
        };
        let mut overlay = Dict::new();
        for key in KEYS {
            let Ok(value) = fig.find_value(key) else {
                continue;
            };
            let replaced = match &value {
                Value::Array(_, items) => {
                    let mut any = false;
                    let new: Vec<_> = items
                        .iter()
                        .map(|i| {
                            let a = anchored(i);
                            any |= a.is_some();
                            a.unwrap_or_else(|| i.clone())
                        })
                        .collect();
                    any.then_some(Value::Array(Tag::Default, new))
                }
                v => anchored(v),
            };
            if let Some(replaced) = replaced {
                insert(&mut overlay, key, replaced);
            }
        }
        if overlay.is_empty() {
            fig
        } else {
            fig.merge(Serialized::defaults(overlay))
        }
    }
}

impl EmbedderConfig {
    /// The API key of an `openai` embedder, read from `api_key_file` when set.
    pub fn api_key(&self) -> Result<Option<SecretString>, ConfigError> {
        match self {
            EmbedderConfig::None | EmbedderConfig::Local { .. } => Ok(None),
            EmbedderConfig::Openai {
                api_key,
                api_key_file,
                ..
            } => read_secret("embedder.api_key_file", api_key, api_key_file),
        }
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
            } => read_secret("llm.api_key_file", api_key, api_key_file),
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
        assert_eq!(c.data_dir, PathBuf::from("docent-data"));
        assert_eq!(c.worker.hard_time_limit, Duration::from_secs(1800));
        assert_eq!(c.worker.soft_time_limit, Duration::from_secs(1740));
        assert!(matches!(c.database, DatabaseConfig::Sqlite { .. }));
    }

    #[test]
    fn search_fusion_defaults_env_and_checks() {
        let c = Config::load_from(None, Env::prefixed("DOCENT_NOTHING_SET__")).unwrap();
        assert_eq!(c.search, SearchConfig::default());
        assert_eq!(c.search.fusion, FusionKind::Weighted);
        let c = Config::load_from(
            None,
            env(&[("SEARCH__FUSION", "rrf"), ("SEARCH__RRF_K", "20")]),
        )
        .unwrap();
        assert_eq!((c.search.fusion, c.search.rrf_k), (FusionKind::Rrf, 20.0));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        for (toml, key) in [
            ("[search]\nvector_weight = 1.5\n", "search.vector_weight"),
            ("[widget]\nsession_ttl = \"5s\"\n", "widget.session_ttl"),
            (
                "[widget]\ndefault_daily_quota = 0\n",
                "widget.default_daily_quota",
            ),
            (
                "[widget]\nvisitor_rate = { per_minute = 0, burst = 1 }\n",
                "widget.visitor_rate",
            ),
            ("[search]\nvector_weight = nan\n", "search.vector_weight"),
            ("[search]\nrrf_k = -1.0\n", "search.rrf_k"),
            ("[search]\nrrf_k = inf\n", "search.rrf_k"),
            ("[search]\nfusion = \"magic\"\n", "magic"),
        ] {
            std::fs::write(&file, toml).unwrap();
            let err = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn another_backend_kind_drops_the_defaults_settings() {
        let e = env(&[
            ("EMBEDDER__KIND", "openai"),
            ("EMBEDDER__BASE_URL", "http://127.0.0.1:9/v1"),
            ("EMBEDDER__MODEL", "text-embedding-3-small"),
            ("EMBEDDER__BATCH_SIZE", "2048"),
        ]);
        let c = Config::load_from(None, e).expect("openai embedder from the environment");
        match c.embedder {
            EmbedderConfig::Openai {
                batch_size,
                requests_per_second,
                dimension,
                ..
            } => {
                assert_eq!(batch_size, 2048);
                assert_eq!(requests_per_second, 5.0);
                assert_eq!(dimension, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn s3_storage_from_a_file_with_defaults_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[storage]\nkind = \"s3\"\nbucket = \"docs\"\nregion = \"eu-west-1\"\n\
             server_side_encryption = \"aws:kms\"\nkms_key_id = \"alias/docent\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap();
        match c.storage {
            StorageConfig::S3 {
                bucket,
                endpoint,
                create_bucket,
                server_side_encryption,
                presign_ttl,
                ..
            } => {
                assert_eq!(bucket, "docs");
                assert_eq!(endpoint, None);
                assert!(!create_bucket);
                assert_eq!(server_side_encryption, ServerSideEncryption::AwsKms);
                assert_eq!(presign_ttl, Duration::from_secs(900));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(
            &file,
            "[storage]\nkind = \"s3\"\nbucket = \"docs\"\nregion = \"us-east-1\"\n\
             endpoint = \"http://127.0.0.1:9000\"\n",
        )
        .unwrap();
        let err = Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__")).unwrap_err();
        assert!(err.to_string().contains("allow_http"), "{err}");
    }

    fn local_model_dir(c: &Config) -> &Path {
        match &c.embedder {
            EmbedderConfig::Local { model_dir, .. } => model_dir,
            other => panic!("not a local embedder: {other:?}"),
        }
    }

    fn layered(home: &Path, file: Option<&Path>, env: Env) -> Config {
        ConfigLayers::load_in_from(Some(home), file, env)
            .unwrap()
            .into_config()
            .unwrap()
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        let file = conf.join("docent.toml");
        std::fs::write(
            &file,
            "data_dir = \"data\"\n\
             [database]\nkind = \"sqlite\"\npath = \"meta.db\"\nmax_connections = 2\nbusy_timeout = \"1s\"\n\
             [embedder]\nkind = \"local\"\nmodel_dir = \"../models/m\"\n\
             [llm]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\napi_key_file = \"keys/llm\"\n\
             [auth.jwt]\nprevious_public_key_files = [\"old.pem\", \"/etc/docent/older.pem\"]\n",
        )
        .unwrap();
        let home = dir.path().join("home");
        let c = layered(&home, Some(&file), env(&[]));
        assert_eq!(c.data_dir, conf.join("data"));
        assert_eq!(local_model_dir(&c), conf.join("../models/m"));
        let LlmConfig::Openai { api_key_file, .. } = &c.llm else {
            panic!("openai llm");
        };
        assert_eq!(
            api_key_file.as_deref(),
            Some(conf.join("keys/llm").as_path())
        );
        assert_eq!(
            c.auth.jwt.previous_public_key_files,
            vec![conf.join("old.pem"), PathBuf::from("/etc/docent/older.pem")]
        );
        // Paths under `data_dir` stay relative to it.
        let DatabaseConfig::Sqlite { path, .. } = &c.database else {
            panic!("sqlite");
        };
        assert_eq!(path, Path::new("meta.db"));
        assert_eq!(c.data_path(path), conf.join("data/meta.db"));
    }

    #[test]
    fn a_file_named_by_a_relative_path_anchors_at_its_directory() {
        // Under the working directory (the crate's, for tests), removed when dropped.
        let dir = tempfile::Builder::new()
            .prefix(".config-test-")
            .tempdir_in(".")
            .unwrap();
        let name = dir.path().file_name().unwrap();
        let file = Path::new(name).join("c.toml");
        std::fs::write(&file, "data_dir = \"data\"\n").unwrap();
        let c = Config::load_from(Some(&file), env(&[])).unwrap();
        assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
        assert_eq!(
            c.data_dir,
            std::env::current_dir().unwrap().join(name).join("data")
        );
    }

    #[test]
    fn the_home_anchors_the_defaults_and_the_environment_the_working_directory() {
        let home = Path::new("/srv/docent-home");
        let c = layered(home, None, Env::prefixed("DOCENT_NOTHING_SET__"));
        assert_eq!(c.data_dir, home.join("docent-data"));
        assert_eq!(local_model_dir(&c), home.join("models/all-MiniLM-L6-v2"));

        // A value from the environment is taken as written: relative to the working directory.
        let vars = Env::prefixed("DOCENT_HOMETEST__").split("__");
        unsafe_set("DOCENT_HOMETEST__DATA_DIR", "here/data");
        unsafe_set("DOCENT_HOMETEST__EMBEDDER__MODEL_DIR", "here/model");
        let c = layered(home, None, vars);
        assert_eq!(c.data_dir, Path::new("here/data"));
        assert_eq!(local_model_dir(&c), Path::new("here/model"));

        // Without a home (Config::load), the defaults stay relative.
        let c = Config::load_from(None, Env::prefixed("DOCENT_NOTHING_SET__")).unwrap();
        assert_eq!(c.data_dir, Path::new("docent-data"));
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
mod auth_tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    #[test]
    fn cors_refuses_a_wildcard_with_credentials() {
        let err = load("[server.cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n")
            .unwrap_err();
        assert!(err.to_string().contains("allow_credentials"), "{err}");
        let c = load("[server.cors]\nallowed_origins = [\"*\"]\n").unwrap();
        assert_eq!(c.server.cors.allowed_origins, ["*"]);
        let c = load(
            "[server.cors]\nallowed_origins = [\"https://app.example.com\"]\nallow_credentials = true\n",
        )
        .unwrap();
        assert!(c.server.cors.allow_credentials);
        assert!(load("[server.cors]\nallowed_origins = [\"app.example.com\"]\n").is_err());
        assert!(
            load("[server.cors]\nallowed_origins = [\"https://a.example.com/path\"]\n").is_err()
        );
        assert!(load("[server.cors]\nallowed_methods = [\"get\"]\n").is_err());
    }

    #[test]
    fn the_old_auth_section_still_loads() {
        let c = load("[auth]\nmode = \"none\"\n").unwrap();
        assert_eq!(c.auth.mode, AuthMode::None);
        let c = load("[auth]\nmode = \"builtin\"\n").unwrap();
        assert_eq!(c.auth.mode, AuthMode::Builtin);
        let c = load("").unwrap();
        assert_eq!(c.auth.mode, AuthMode::Builtin, "secure by default");
        assert_eq!(c.auth.jwt.algorithm, JwtAlgorithm::EdDSA);
    }

    #[test]
    fn hs256_needs_an_explicit_secret_and_only_hs256_takes_one() {
        let err = load("[auth.jwt]\nalgorithm = \"HS256\"\n").unwrap_err();
        assert!(err.to_string().contains("HS256"), "{err}");
        let err = load("[auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\n").unwrap_err();
        assert!(err.to_string().contains("only used"), "{err}");
        let c = load(
            "[auth.jwt]\nalgorithm = \"HS256\"\nsecret = \"hs-canary-0123456789abcdef0123456789\"\n",
        )
        .unwrap();
        assert_eq!(
            c.auth.jwt.secret().unwrap().unwrap().expose_secret(),
            "hs-canary-0123456789abcdef0123456789"
        );
        assert!(!c.to_redacted_toml().contains("hs-canary"));
        let err = load("[auth.jwt]\nalgorithm = \"RS256\"\n").unwrap_err();
        assert!(err.to_string().contains("private_key"), "{err}");
        assert!(load("[auth.jwt]\nalgorithm = \"none\"\n").is_err());
    }

    #[test]
    fn key_and_password_files_win_and_stay_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("jwt.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nfile\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let pass = dir.path().join("smtp");
        std::fs::write(&pass, "smtp-from-file\n").unwrap();
        let c = load(&format!(
            "[auth.jwt]\nprivate_key = \"inline-canary\"\nprivate_key_file = {:?}\n\
             [auth.mail]\nkind = \"smtp\"\nhost = \"mail.example.com\"\nport = 587\n\
             tls = \"starttls\"\nfrom = \"docent <noreply@example.com>\"\nusername = \"u\"\n\
             password = \"smtp-canary\"\npassword_file = {:?}\n",
            key, pass
        ))
        .unwrap();
        assert!(
            c.auth
                .jwt
                .private_key()
                .unwrap()
                .unwrap()
                .expose_secret()
                .contains("file")
        );
        assert_eq!(
            c.auth.mail.password().unwrap().unwrap().expose_secret(),
            "smtp-from-file"
        );
        let shown = c.to_redacted_toml();
        assert!(
            !shown.contains("inline-canary") && !shown.contains("smtp-canary"),
            "{shown}"
        );
    }

    #[test]
    fn oidc_providers_are_checked() {
        let provider = |extra: &str| {
            format!(
                "[[auth.oidc]]\nname = \"kc\"\nissuer = \"https://idp\"\naudience = [\"docent\"]\n\
                 jwks_url = \"https://idp/certs\"\n{extra}"
            )
        };
        let c = load(&provider(
            "tenant_claim = \"org\"\nrole_map = { admins = \"admin\" }\n",
        ))
        .unwrap();
        assert_eq!(c.auth.oidc[0].algorithms, vec!["RS256".to_owned()]);
        assert_eq!(c.auth.oidc[0].jwks_ttl, Duration::from_secs(600));
        for bad in [
            "",
            "tenant_claim = \"org\"\nalgorithms = [\"HS256\"]\n",
            "tenant_claim = \"org\"\ndefault_role = \"root\"\n",
            "tenant_claim = \"org\"\nrole_map = { x = \"god\" }\n",
        ] {
            assert!(load(&provider(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn postgres_url_is_a_secret_and_required() {
        let url = "postgres://docent:pg-canary@db:5432/docent";
        let c = load(&format!(
            "[database]\nkind = \"postgres\"\nurl = \"{url}\"\n"
        ))
        .unwrap();
        assert!(matches!(
            c.database,
            DatabaseConfig::Postgres {
                max_connections: 10,
                ..
            }
        ));
        let got = c.database.postgres_url().unwrap().unwrap();
        assert_eq!(got.expose_secret(), url);
        assert!(!c.to_redacted_toml().contains("pg-canary"));
        assert!(!format!("{:?}", c.database).contains("pg-canary"));
        assert!(load("[database]\nkind = \"postgres\"\n").is_err());
    }

    #[test]
    fn token_lifetimes_are_checked() {
        assert!(load("[auth]\naccess_token_ttl = \"1s\"\n").is_err());
        assert!(load("[auth]\nrefresh_token_ttl = \"1m\"\n").is_err());
        assert!(load("[auth]\nsession_ttl = \"1h\"\n").is_err());
        assert!(load("[auth.password]\nmin_length = 4\n").is_err());
        assert!(load("[auth.rate_limit]\nread = { per_minute = 0, burst = 1 }\n").is_err());
        assert!(load("[auth]\npublic_url = \"docent.example.com\"\n").is_err());
    }
}

#[cfg(test)]
mod distributed_tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    #[test]
    fn redis_pieces_need_a_redis_url() {
        for toml in [
            "[cache]\nkind = \"redis\"\n",
            "[cache]\nkind = \"tiered\"\n",
        ] {
            let err = load(toml).unwrap_err().to_string();
            assert!(err.contains("redis.url"), "{toml}: {err}");
        }
        let c = load(
            "[redis]\nurl = \"redis://:pw@cache.internal:6379/0\"\n\
             [cache]\nkind = \"redis\"\n",
        )
        .unwrap();
        assert!(matches!(c.cache, CacheConfig::Redis));
        assert_eq!(
            c.redis.url().unwrap().unwrap().expose_secret(),
            "redis://:pw@cache.internal:6379/0"
        );
        // The URL (with its password) never shows in `config show`.
        let shown = c.to_redacted_toml();
        assert!(!shown.contains(":pw@"), "{shown}");
    }

    #[test]
    fn tiered_cache_takes_redis_and_dynamodb_tiers() {
        let c = load(
            "[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n\
             [cache]\nkind = \"tiered\"\nlocal_ttl = \"5s\"\n\
             [cache.dynamodb]\ntable = \"docent-cache\"\ncreate_table = true\n",
        )
        .unwrap();
        let CacheConfig::Tiered {
            max_entries,
            local_ttl,
            redis,
            dynamodb,
        } = c.cache
        else {
            panic!("tiered expected");
        };
        assert_eq!(
            (max_entries, local_ttl, redis),
            (10_000, Duration::from_secs(5), true)
        );
        assert_eq!(dynamodb.unwrap().table, "docent-cache");
        // DynamoDB alone needs no Redis.
        let c =
            load("[cache]\nkind = \"dynamodb\"\ntable = \"t\"\nregion = \"eu-west-1\"\n").unwrap();
        assert!(matches!(&c.cache, CacheConfig::Dynamodb(d) if d.table == "t"));
        assert!(load("[cache]\nkind = \"dynamodb\"\ntable = \" \"\n").is_err());
        assert!(
            load("[cache]\nkind = \"tiered\"\nredis = false\n")
                .unwrap_err()
                .to_string()
                .contains("tiered")
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
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/example.toml")
            .canonicalize()
            .unwrap();
        // As `docent.toml` in a home: its relative paths (against the file's directory) land
        // where the defaults do (against the home).
        let home = path.parent().unwrap();
        let load = |file: Option<&Path>| {
            ConfigLayers::load_in_from(Some(home), file, Env::prefixed("DOCENT_NONE__"))
                .unwrap()
                .into_config()
                .unwrap()
        };
        let loaded = load(Some(&path));
        let want: toml::Value = toml::from_str(&load(None).to_redacted_toml()).unwrap();
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

#[cfg(test)]
mod index_tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    #[test]
    fn a_postgres_index_takes_its_url_or_the_databases() {
        let err = load("[index]\nkind = \"postgres\"\n").unwrap_err();
        assert!(err.to_string().contains("index.url"), "{err}");

        let c = load(
            "[database]\nkind = \"postgres\"\nurl = \"postgres://db/docent\"\n\
             [index]\nkind = \"postgres\"\n",
        )
        .unwrap();
        let url = c.index.postgres_url(&c.database).unwrap().unwrap();
        assert_eq!(url.expose_secret(), "postgres://db/docent");
        let IndexConfig::Postgres {
            max_connections,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef_search,
            ..
        } = c.index
        else {
            panic!("a postgres index");
        };
        assert_eq!(
            (
                max_connections,
                hnsw_m,
                hnsw_ef_construction,
                hnsw_ef_search
            ),
            (10, 16, 64, 100)
        );

        let c = load("[index]\nkind = \"postgres\"\nurl = \"postgres://idx/v\"\n").unwrap();
        let url = c.index.postgres_url(&c.database).unwrap().unwrap();
        assert_eq!(url.expose_secret(), "postgres://idx/v");
        assert!(
            !c.to_redacted_toml().contains("postgres://idx"),
            "the URL is a secret"
        );
    }

    #[test]
    fn hnsw_settings_are_checked() {
        let base = "[index]\nkind = \"postgres\"\nurl = \"postgres://idx/v\"\n";
        for extra in [
            "hnsw_m = 1\n",
            "hnsw_m = 101\n",
            "hnsw_m = 40\nhnsw_ef_construction = 64\n",
            "hnsw_ef_search = 0\n",
            "hnsw_ef_search = 1001\n",
            "max_connections = 0\n",
        ] {
            assert!(load(&format!("{base}{extra}")).is_err(), "{extra}");
        }
        assert!(load(&format!("{base}hnsw_ef_search = 400\n")).is_ok());
    }
}

#[cfg(test)]
mod sqs_queue_tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    #[test]
    fn sqs_backend_loads_with_defaults_and_checks_sqs_limits() {
        let c = load(
            "[queue.backend]\nkind = \"sqs\"\nqueue_name = \"docent-tasks\"\n\
             dlq_name = \"docent-tasks-dlq\"\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        let QueueBackend::Sqs(sqs) = &c.queue.backend else {
            panic!("sqs expected: {:?}", c.queue.backend);
        };
        assert_eq!(sqs.queue_name, "docent-tasks");
        assert_eq!(sqs.region.as_deref(), Some("eu-west-1"));
        assert_eq!(sqs.endpoint, None);
        assert_eq!(sqs.wait_time, Duration::from_secs(20));
        assert!(!sqs.create_queues);
        assert_eq!(sqs.republish_after, Duration::from_secs(120));
        // It round-trips through `config show`.
        assert!(c.to_redacted_toml().contains("docent-tasks-dlq"));

        let base = "[queue.backend]\nkind = \"sqs\"\nqueue_name = \"q\"\ndlq_name = \"d\"\n";
        let moto =
            "endpoint = \"http://127.0.0.1:5000\"\nwait_time = \"0s\"\ncreate_queues = true\n";
        assert!(load(&format!("{base}{moto}")).is_ok());
        for (extra, why) in [
            ("wait_time = \"21s\"\n", "wait_time"),
            ("wait_time = \"1500ms\"\n", "wait_time"),
            ("endpoint = \"127.0.0.1:5000\"\n", "endpoint"),
            ("republish_after = \"0s\"\n", "republish_after"),
        ] {
            let err = load(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(err.contains(why), "{extra}: {err}");
        }
        for (names, why) in [
            ("queue_name = \"q\"\ndlq_name = \"q\"\n", "differ"),
            (
                "queue_name = \"tasks.fifo\"\ndlq_name = \"d\"\n",
                "queue_name",
            ),
            ("queue_name = \"\"\ndlq_name = \"d\"\n", "queue_name"),
        ] {
            let err = load(&format!("[queue.backend]\nkind = \"sqs\"\n{names}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{names}: {err}");
        }
        let err = load(&format!("[queue]\nvisibility_timeout = \"13h\"\n{base}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("12h"), "{err}");
        assert!(load("[queue.backend]\nkind = \"sqs\"\nqueue_name = \"q\"\n").is_err());
    }
}

#[cfg(test)]
mod redis_queue_tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    const REDIS: &str = "[redis]\nurl = \"redis://:pw@cache.internal:6379/0\"\n";

    #[test]
    fn redis_backend_loads_with_defaults() {
        let c = load(&format!("{REDIS}[queue.backend]\nkind = \"redis\"\n")).unwrap();
        let QueueBackend::Redis(q) = &c.queue.backend else {
            panic!("redis expected: {:?}", c.queue.backend);
        };
        assert_eq!(q.name, "queue");
        assert_eq!(q.group, "workers");
        assert_eq!(q.block_time, Duration::from_secs(5));
        assert_eq!(q.republish_after, Duration::from_secs(120));
        // It round-trips through `config show`, without the URL's password.
        let shown = c.to_redacted_toml();
        assert!(shown.contains("kind = \"redis\""), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");

        let c = load(&format!(
            "{REDIS}[queue.backend]\nkind = \"redis\"\nname = \"tasks\"\ngroup = \"docent\"\n\
             block_time = \"0s\"\nrepublish_after = \"30s\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.queue.backend,
            QueueBackend::Redis(RedisQueueConfig {
                name: "tasks".into(),
                group: "docent".into(),
                block_time: Duration::ZERO,
                republish_after: Duration::from_secs(30),
            })
        );
    }

    #[test]
    fn redis_backend_needs_a_redis_url_and_checks_its_limits() {
        let err = load("[queue.backend]\nkind = \"redis\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis.url"), "{err}");
        assert!(err.contains("queue.backend"), "{err}");

        let base = format!("{REDIS}[queue.backend]\nkind = \"redis\"\n");
        for (extra, why) in [
            ("block_time = \"61s\"\n", "block_time"),
            ("republish_after = \"0s\"\n", "republish_after"),
            ("name = \"a{b}\"\n", "name"),
            ("name = \"\"\n", "name"),
            ("group = \"two words\"\n", "group"),
            ("stream = \"x\"\n", "stream"),
        ] {
            let err = load(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(err.contains(why), "{extra}: {err}");
        }
        let err = load(&format!("[queue]\nvisibility_timeout = \"13h\"\n{base}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("12h"), "{err}");
        assert!(load(&format!("[queue]\nvisibility_timeout = \"12h\"\n{base}")).is_ok());
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    /// Loads `toml` written as `c.toml` in a directory that also holds `ca.pem`.
    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not checked here\n").unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    const PG: &str = "[database]\nkind = \"postgres\"\nurl = \"postgres://db/docent\"\n";

    #[test]
    fn postgres_tls_settings_load_with_paths_from_the_file() {
        let c = load(&format!(
            "{PG}[database.tls]\nmode = \"verify-full\"\nroot_cert = \"ca.pem\"\n\
             [index]\nkind = \"postgres\"\n"
        ))
        .unwrap();
        let DatabaseConfig::Postgres { tls, .. } = &c.database else {
            panic!("postgres expected");
        };
        assert_eq!(tls.mode, Some(PgSslMode::VerifyFull));
        assert!(tls.root_cert.as_ref().unwrap().is_absolute());
        // Without a URL of its own, the index connects like the database.
        let (index_tls, section) = c.index.postgres_tls(&c.database);
        assert_eq!((index_tls, section), (tls, "database"));
        // Unset, the section is left out of `config show`.
        let c = load(PG).unwrap();
        assert!(!c.to_redacted_toml().contains("[database.tls]"));
    }

    #[test]
    fn postgres_tls_mistakes_are_named() {
        for (tls, want) in [
            ("mode = \"verify-all\"\n", "verify-all"),
            ("client_cert = \"ca.pem\"\n", "database.tls.client_key"),
            (
                "mode = \"disable\"\nroot_cert = \"ca.pem\"\n",
                "database.tls.mode",
            ),
            ("root_cert = \"missing.pem\"\n", "database.tls.root_cert"),
        ] {
            let err = load(&format!("{PG}[database.tls]\n{tls}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{tls}: {err}");
        }
        let err = load(&format!(
            "{PG}[index]\nkind = \"postgres\"\nurl = \"postgres://other/x\"\n\
             [index.tls]\nroot_cert = \"missing.pem\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("index.tls.root_cert"), "{err}");
    }

    #[test]
    fn redis_tls_and_acl_settings() {
        let c = load(
            "[redis]\nurl = \"rediss://cache:6379/0\"\ntls_ca_file = \"ca.pem\"\n\
             username = \"docent\"\npassword = \"redis-canary\"\n",
        )
        .unwrap();
        assert_eq!(c.redis.username.as_deref(), Some("docent"));
        assert_eq!(
            c.redis.password().unwrap().unwrap().expose_secret(),
            "redis-canary"
        );
        assert!(!c.to_redacted_toml().contains("redis-canary"));
        let err = load("[redis]\nurl = \"redis://cache:6379/0\"\ntls_ca_file = \"ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rediss://"), "{err}");
    }
}

#[cfg(test)]
mod redis_cluster_tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docent.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load_from(Some(&file), Env::prefixed("DOCENT_NONE__"))
    }

    #[test]
    fn cluster_mode_is_off_by_default_and_set_by_file_or_env() {
        assert!(!load("").unwrap().redis.cluster);
        let c = load(
            "[redis]\nurl = \"rediss://clustercfg.docent.cache.amazonaws.com:6379\"\n\
             cluster = true\ncluster_nodes = [\"rediss://node-2:6379\", \"rediss://node-3\"]\n",
        )
        .unwrap();
        assert!(c.redis.cluster);
        assert_eq!(c.redis.cluster_nodes.len(), 2);
        let prefix = format!("DOCENT_RC{}__", std::process::id());
        #[allow(unsafe_code)]
        // SAFETY: only test code; the variables carry a prefix nobody else reads.
        unsafe {
            std::env::set_var(format!("{prefix}REDIS__URL"), "redis://127.0.0.1:7001");
            std::env::set_var(format!("{prefix}REDIS__CLUSTER"), "true");
        }
        let c = Config::load_from(None, Env::prefixed(&prefix).split("__")).unwrap();
        assert!(c.redis.cluster);
    }

    #[test]
    fn cluster_nodes_mistakes_are_named() {
        for (extra, want) in [
            (
                "cluster_nodes = [\"redis://b:6379\"]\n",
                "redis.cluster is false",
            ),
            (
                "cluster = true\ncluster_nodes = [\"http://b:6379\"]\n",
                "redis.cluster_nodes[0] must be a redis://",
            ),
            (
                "cluster = true\ncluster_nodes = [\"rediss://b:6379\"]\n",
                "scheme of redis.url",
            ),
            (
                "cluster = true\ncluster_nodes = [\"redis://b:1\", \"redis://:pw@c:6379\"]\n",
                "redis.cluster_nodes[1] must not carry a user or password",
            ),
            (
                "cluster = true\ncluster_nodes = [\"redis://\"]\n",
                "no host",
            ),
        ] {
            let err = load(&format!("[redis]\nurl = \"redis://a:6379\"\n{extra}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{extra}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }
}
