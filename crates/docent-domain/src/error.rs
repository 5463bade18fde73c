//! The one table of error codes, and the error type every layer returns.
//!
//! A [`Code`] fixes the stable snake_case string clients match on, the error type, the HTTP
//! status the edge maps it to, and whether a worker should retry. Adding a variant forces a
//! decision in every `match` below (no wildcard arms).

use std::fmt;
use std::time::Duration;

/// Broad class of an error, shown as `error.type` in the API envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The caller sent something wrong.
    InvalidRequest,
    /// Authentication or authorization failed.
    Auth,
    /// The thing asked for does not exist (or belongs to another tenant).
    NotFound,
    /// Too many requests; retry later.
    RateLimited,
    /// A dependency is unavailable; retry later.
    Unavailable,
    /// A bug or an unexpected failure; details are logged, never returned.
    Internal,
}

impl ErrorType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Auth => "auth",
            ErrorType::NotFound => "not_found",
            ErrorType::RateLimited => "rate_limited",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
        }
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => ($name:literal, $ty:ident, $status:literal, $retry:literal), )*) => {
        /// Every error code docent can return. The string, type, HTTP status and retryability
        /// of each live here and nowhere else.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// All codes, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable snake_case string.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }
            /// The error class.
            pub fn error_type(self) -> ErrorType {
                match self { $(Code::$variant => ErrorType::$ty,)* }
            }
            /// The HTTP status the API answers with.
            pub fn http_status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }
            /// Whether a task failing with this code should be tried again later.
            pub fn is_retryable(self) -> bool {
                match self { $(Code::$variant => $retry,)* }
            }
            /// Parses a stored code string.
            pub fn parse(s: &str) -> Option<Code> {
                match s { $($name => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    /// The request body is not valid JSON or does not match the expected shape.
    InvalidJson => ("invalid_json", InvalidRequest, 400, false),
    /// A query-string parameter is malformed.
    InvalidQuery => ("invalid_query", InvalidRequest, 400, false),
    /// A path id is not a well-formed id.
    InvalidId => ("invalid_id", InvalidRequest, 400, false),
    /// A field has an invalid value.
    InvalidField => ("invalid_field", InvalidRequest, 400, false),
    /// A search query or question is longer than the server accepts.
    QueryTooLong => ("query_too_long", InvalidRequest, 400, false),
    /// A required field or multipart part is missing.
    MissingField => ("missing_field", InvalidRequest, 400, false),
    /// The multipart body could not be read.
    InvalidMultipart => ("invalid_multipart", InvalidRequest, 400, false),
    /// The uploaded file is empty.
    EmptyFile => ("empty_file", InvalidRequest, 400, false),
    /// The body or upload is larger than the configured limit.
    PayloadTooLarge => ("payload_too_large", InvalidRequest, 413, false),
    /// The user metadata is over a cap (size, keys, nesting, key or string length).
    MetadataTooLarge => ("metadata_too_large", InvalidRequest, 413, false),
    /// The request's Content-Type is not accepted by this endpoint.
    UnsupportedMediaType => ("unsupported_media_type", InvalidRequest, 415, false),
    /// The uploaded file's format is not one docent can extract text from.
    UnsupportedFormat => ("unsupported_format", InvalidRequest, 422, false),
    /// No route matches the path.
    RouteNotFound => ("route_not_found", NotFound, 404, false),
    /// The route exists but not for this method.
    MethodNotAllowed => ("method_not_allowed", InvalidRequest, 405, false),
    /// No such collection (in this tenant).
    CollectionNotFound => ("collection_not_found", NotFound, 404, false),
    /// No such document (in this tenant).
    DocumentNotFound => ("document_not_found", NotFound, 404, false),
    /// No such task (in this tenant).
    TaskNotFound => ("task_not_found", NotFound, 404, false),
    /// No bot with that id in this tenant.
    BotNotFound => ("bot_not_found", NotFound, 404, false),
    /// No conversation with that id in this tenant.
    ConversationNotFound => ("conversation_not_found", NotFound, 404, false),
    /// No widget key with that id for this bot.
    WidgetKeyNotFound => ("widget_key_not_found", NotFound, 404, false),
    /// The widget key is unknown or revoked.
    WidgetKeyInvalid => ("widget_key_invalid", Auth, 401, false),
    /// The page embedding the widget is not on an origin the bot allows.
    WidgetOriginRefused => ("widget_origin_refused", Auth, 403, false),
    /// The widget session token is missing, malformed, forged or for another key.
    WidgetSessionInvalid => ("widget_session_invalid", Auth, 401, false),
    /// The widget session token has expired: mint a new session.
    WidgetSessionExpired => ("widget_session_expired", Auth, 401, false),
    /// The widget key's daily message quota is used up.
    WidgetQuotaExceeded => ("widget_quota_exceeded", RateLimited, 429, false),
    /// A collection with that name already exists.
    CollectionNameTaken => ("collection_name_taken", InvalidRequest, 409, false),
    /// The collection holds vectors of another embedding model.
    EmbeddingModelMismatch => ("embedding_model_mismatch", InvalidRequest, 409, false),
    /// Search or answers were asked for but no embedder is configured for vector search.
    EmbedderNotConfigured => ("embedder_not_configured", InvalidRequest, 400, false),
    /// The task is in a state that does not allow this operation.
    TaskStateConflict => ("task_state_conflict", InvalidRequest, 409, false),
    /// The document is in a state that does not allow this operation.
    DocumentStateConflict => ("document_state_conflict", InvalidRequest, 409, false),
    /// The document's bytes could not be decoded as text.
    ExtractionFailed => ("extraction_failed", InvalidRequest, 422, false),
    /// Extraction did not finish within its deadline.
    ExtractionTimeout => ("extraction_timeout", InvalidRequest, 422, false),
    /// Extraction was stopped before it finished (its task was cancelled or its worker
    /// stopped).
    ExtractionCancelled => ("extraction_cancelled", Unavailable, 503, true),
    /// One record (a row, a JSON object) has more fields, or would make more chunks, than
    /// `[ingest]` allows.
    RecordTooLarge => ("record_too_large", InvalidRequest, 422, false),
    /// The document has more rows or chunks than `[ingest]` allows.
    DocumentTooLarge => ("document_too_large", InvalidRequest, 422, false),
    /// Storing the document's chunks would pass the workspace's chunk quota.
    ChunkQuotaExceeded => ("chunk_quota_exceeded", InvalidRequest, 403, false),
    /// The document is password-protected.
    DocumentEncrypted => ("document_encrypted", InvalidRequest, 422, false),
    /// The document has no text to index.
    NoText => ("no_text", InvalidRequest, 422, false),
    /// The PDF has no text layer (scanned or flattened pages need OCR).
    NoTextLayer => ("no_text_layer", InvalidRequest, 422, false),
    /// The worker holding the task stopped answering (crash or kill) on its last attempt.
    WorkerLost => ("worker_lost", Unavailable, 503, true),
    /// The task ran past its hard time limit.
    TaskTimeout => ("task_timeout", Unavailable, 504, false),
    /// The configured backend does not offer this (presigned URLs and direct uploads need an
    /// S3 blob store).
    FeatureUnavailable => ("feature_unavailable", InvalidRequest, 409, false),
    /// No such pending direct upload (in this tenant and collection), or it was completed.
    UploadNotFound => ("upload_not_found", NotFound, 404, false),
    /// The uploaded object is not what the upload declared (size or sha256); it was deleted.
    UploadMismatch => ("upload_mismatch", InvalidRequest, 422, false),
    /// Nothing has been uploaded to the presigned URL yet.
    UploadIncomplete => ("upload_incomplete", InvalidRequest, 409, false),
    /// The original file is missing from blob storage.
    BlobMissing => ("blob_missing", Internal, 500, false),
    /// Too many requests.
    RateLimited => ("rate_limited", RateLimited, 429, true),
    /// Too many failed sign-ins for this account from this address; wait for `Retry-After`.
    TooManyAttempts => ("too_many_attempts", RateLimited, 429, true),
    /// The request carries no credentials and the route needs them.
    Unauthenticated => ("unauthenticated", Auth, 401, false),
    /// Wrong email or password (never says which).
    InvalidCredentials => ("invalid_credentials", Auth, 401, false),
    /// The token is malformed, forged, for another audience, signed out or already used.
    TokenInvalid => ("token_invalid", Auth, 401, false),
    /// The token has expired.
    TokenExpired => ("token_expired", Auth, 401, false),
    /// A refresh token was presented after it had been rotated: its whole session is revoked.
    RefreshTokenReused => ("refresh_token_reused", Auth, 401, false),
    /// The API key is unknown or malformed.
    InvalidApiKey => ("invalid_api_key", Auth, 401, false),
    /// The API key was revoked.
    ApiKeyRevoked => ("api_key_revoked", Auth, 401, false),
    /// The API key has expired.
    ApiKeyExpired => ("api_key_expired", Auth, 401, false),
    /// The account's email address is not verified yet.
    EmailNotVerified => ("email_not_verified", Auth, 403, false),
    /// The account is disabled.
    AccountDisabled => ("account_disabled", Auth, 403, false),
    /// The caller's role in the tenant does not allow this.
    InsufficientRole => ("insufficient_role", Auth, 403, false),
    /// The API key's scope does not allow this.
    InsufficientScope => ("insufficient_scope", Auth, 403, false),
    /// Open sign-up is turned off; ask for an invite.
    SignupDisabled => ("signup_disabled", Auth, 403, false),
    /// A per-tenant quota (documents, stored bytes) would be exceeded.
    QuotaExceeded => ("quota_exceeded", InvalidRequest, 403, false),
    /// An account with that email already exists.
    EmailTaken => ("email_taken", InvalidRequest, 409, false),
    /// The user is already a member of the tenant.
    AlreadyMember => ("already_member", InvalidRequest, 409, false),
    /// The change would leave the tenant without an owner.
    LastOwner => ("last_owner", InvalidRequest, 409, false),
    /// First-run setup is over: users exist.
    SetupCompleted => ("setup_completed", InvalidRequest, 409, false),
    /// No such user (in this tenant).
    UserNotFound => ("user_not_found", NotFound, 404, false),
    /// No such tenant (or you are not a member).
    TenantNotFound => ("tenant_not_found", NotFound, 404, false),
    /// No such API key (in this tenant).
    ApiKeyNotFound => ("api_key_not_found", NotFound, 404, false),
    /// The request took longer than the server's request timeout.
    RequestTimeout => ("request_timeout", Unavailable, 408, true),
    /// A dependency (database, blob store, queue) is unavailable.
    Unavailable => ("service_unavailable", Unavailable, 503, true),
    /// The server is shutting down.
    ShuttingDown => ("shutting_down", Unavailable, 503, true),
    /// The model provider (chat or embeddings) cannot be reached, timed out, answered with a
    /// server error, or is cut off by the circuit breaker; try again later.
    ModelUnavailable => ("model_unavailable", Unavailable, 503, true),
    /// The model provider keeps answering 429 or its budget is spent; wait for `Retry-After`.
    ModelRateLimited => ("model_rate_limited", RateLimited, 429, true),
    /// The model provider refused the request or answered something unusable (bad key, unknown
    /// model, prompt too long, vectors of the wrong dimension); retrying will not help.
    ModelError => ("model_error", Unavailable, 502, false),
    /// Something went wrong inside docent.
    Internal => ("internal_error", Internal, 500, true),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code. Its `message` is safe to show to the caller for every
/// non-internal code; internal and unavailable errors keep their cause in `source` for the
/// logs and show a generic message instead.
pub struct Error {
    /// The stable code.
    pub code: Code,
    /// Human-readable explanation, safe for the caller.
    pub message: String,
    /// For rate limits and outages: when to try again.
    pub retry_after: Option<Duration>,
    /// The underlying cause, for logs only.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result with docent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a caller-safe message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// An internal failure. The cause is kept for logs; the message is generic.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            code: Code::Internal,
            message: "an internal error occurred".into(),
            retry_after: None,
            source: Some(source.into()),
        }
    }

    /// A dependency is unavailable; callers may retry.
    pub fn unavailable(
        what: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            code: Code::Unavailable,
            message: format!("{what} is unavailable, try again shortly"),
            retry_after: Some(Duration::from_secs(1)),
            source: Some(source.into()),
        }
    }

    /// Sets `retry_after`.
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Attaches a cause for the logs.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// The persisted form shown on documents and tasks.
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code.as_str().to_owned(),
            message: self.message.clone(),
        }
    }

    /// The full cause chain, for logs.
    pub fn chain(&self) -> String {
        let mut out = format!("{}: {}", self.code, self.message);
        let mut cur: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The persisted error shown on a document or task: `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    /// A code from [`Code`].
    pub code: String,
    /// Caller-safe message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{s} is not snake_case"
            );
            assert_eq!(Code::parse(s), Some(code));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = Error::internal(std::io::Error::other("secret path /etc/x"));
        assert!(!e.message.contains("secret"));
        assert!(
            e.chain().contains("secret"),
            "the cause stays available to logs"
        );
    }
}
