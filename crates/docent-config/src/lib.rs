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
    /// Cross-origin requests from browsers.
    pub cors: CorsConfig,
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
    },
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
    /// Record files (CSV/TSV/JSONL/XLSX) are embedded and committed in batches of about this
    /// many chunks (whole rows); a crashed task resumes after the last committed batch.
    #[serde(default = "default_record_batch")]
    pub record_batch: usize,
}

fn default_record_batch() -> usize {
    1024
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
        /// Vectors per collection above which an HNSW graph (built in the background) answers
        /// vector queries instead of the exact scan; 0 never builds one.
        #[serde(default = "default_ann_threshold")]
        ann_threshold: usize,
    },
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
        /// Time for a whole answer, or for a streamed answer's first byte.
        #[serde(default = "default_llm_timeout", with = "humantime_serde")]
        request_timeout: Duration,
    },
}

fn default_llm_requests_per_second() -> f64 {
    5.0
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
}

/// Per-tenant quotas; 0 means unlimited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Most documents per tenant.
    pub max_documents: u64,
    /// Most bytes of originals per tenant.
    pub max_stored_bytes: ByteSize,
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
            },
            signin_guard: SigninGuardConfig {
                max_failures: 5,
                lockout_base: Duration::from_secs(30),
                lockout_max: 15 * minute,
                window: 15 * minute,
            },
            quotas: QuotaConfig {
                max_documents: 0,
                max_stored_bytes: ByteSize::b(0),
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
            data_dir: PathBuf::from("./docent-data"),
            server: ServerConfig {
                bind: "127.0.0.1:8080".parse().expect("valid default address"),
                request_timeout: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(20),
                run_workers: true,
                cors: CorsConfig::default(),
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
                record_batch: default_record_batch(),
            },
            cache: CacheConfig::Memory {
                max_entries: 10_000,
            },
            index: IndexConfig::Embedded {
                path: "index".into(),
                ann_threshold: default_ann_threshold(),
            },
            embedder: EmbedderConfig::Local {
                model_dir: "models/all-MiniLM-L6-v2".into(),
                threads: 0,
                batch_size: 32,
            },
            llm: LlmConfig::None,
            auth: AuthConfig::default(),
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
        let mut overrides = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            overrides = overrides.merge(Toml::file(file));
        }
        let overrides = overrides.merge(env);
        // A backend section whose `kind` the file or environment changes starts from nothing:
        // the default backend's settings (e.g. the local model's `model_dir`) are not another
        // backend's.
        let defaults = Config::default();
        let mut base = figment::value::Value::serialize(&defaults)
            .ok()
            .and_then(|v| v.into_dict())
            .unwrap_or_default();
        for section in [
            "database", "storage", "queue", "cache", "index", "embedder", "llm",
        ] {
            let kind = |v: Option<&figment::value::Value>| {
                v.and_then(|v| v.as_dict())
                    .and_then(|d| d.get("kind"))
                    .and_then(|k| k.as_str().map(str::to_owned))
            };
            let chosen = overrides
                .find_value(&format!("{section}.kind"))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            if let Some(chosen) = chosen
                && kind(base.get(section)).is_some_and(|default| default != chosen)
            {
                base.remove(section);
            }
        }
        let fig = Figment::from(Serialized::defaults(base)).merge(overrides);
        let config: Config = fig.extract().map_err(|e| {
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
            DatabaseConfig::Sqlite { .. } | DatabaseConfig::Postgres { .. } => {}
        }
        self.validate_cors()?;
        self.validate_auth()?;
        self.validate_storage()?;
        if let EmbedderConfig::Openai {
            base_url,
            requests_per_second,
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
        assert_eq!(c.data_dir, PathBuf::from("./docent-data"));
        assert_eq!(c.worker.hard_time_limit, Duration::from_secs(1800));
        assert_eq!(c.worker.soft_time_limit, Duration::from_secs(1740));
        assert!(matches!(c.database, DatabaseConfig::Sqlite { .. }));
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
