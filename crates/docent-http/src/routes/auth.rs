//! Accounts and keys: `/api/v1/auth/*` (sign-up, sign-in, refresh, sign-out, email
//! verification, password reset), `/api/v1/setup` (first run), `/api/v1/keys` (API keys), and the
//! seed-compatible `/auth/*` aliases. The account routes are public: the request body carries
//! the credential. With `auth.mode = "none"` every route here answers 404 `route_not_found`
//! saying that authentication is disabled.
//!
//! The web console keeps its refresh token out of reach of page scripts: a request with the
//! header `X-Docent-Console: 1` gets the refresh token of the session it starts as an
//! `HttpOnly; SameSite=Strict` cookie scoped to `/api/v1/auth` instead of in the body, and
//! refreshes or signs out with that cookie (only with the header too — [`SessionTransport`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use docent_auth::{AuthService, CreateApiKey, SignedIn, Signup, SignupOutcome};
use docent_domain::auth::ApiKeyId;
use docent_domain::{BotId, Code, CollectionId, KeyAccess};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::page;
use crate::AppState;
use crate::dto::PageQuery;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Auth, Client, id};

/// The account service; 404 `route_not_found` when `auth.mode = "none"`. Extracted before the
/// body, so a disabled server says so whatever the request carries.
pub(crate) struct Accounts(pub Arc<AuthService>);

impl FromRequestParts<AppState> for Accounts {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.auth.clone().map(Accounts).ok_or_else(|| {
            ApiError::new(
                Code::RouteNotFound,
                "authentication is disabled on this server (auth.mode = \"none\"); every request acts in the default tenant",
            )
        })
    }
}

/// A user, as returned with a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    /// Id.
    pub id: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Whether the address is verified.
    pub email_verified: bool,
}

impl From<docent_domain::User> for UserDto {
    fn from(u: docent_domain::User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email,
            display_name: u.display_name,
            email_verified: u.email_verified_at.is_some(),
        }
    }
}

/// A signed-in session: send `access_token` as `Authorization: Bearer …`; exchange
/// `refresh_token` at `/api/v1/auth/refresh` before the access token expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// Short-lived JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Single-use refresh token; each refresh returns a new one. Absent when the request
    /// asked for it as a cookie (`X-Docent-Console: 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
    /// The account.
    pub user: UserDto,
    /// The tenant the session acts in.
    pub tenant_id: String,
    /// The user's role there.
    pub role: String,
}

impl From<SignedIn> for SessionDto {
    fn from(s: SignedIn) -> Self {
        Self {
            access_token: s.tokens.access_token,
            token_type: "Bearer",
            expires_at: s.tokens.access_expires_at,
            refresh_token: Some(s.tokens.refresh_token),
            refresh_expires_at: s.tokens.refresh_expires_at,
            user: s.user.into(),
            tenant_id: s.tenant_id.to_string(),
            role: s.role.to_string(),
        }
    }
}

/// The request header with which the console asks for the refresh token as a cookie, and
/// without which the cookie is never read. A page on another site cannot send it: a form has
/// no custom headers, and a script's request with one needs a CORS preflight.
pub const CONSOLE_HEADER: &str = "x-docent-console";
/// The cookie holding the console's refresh token.
pub const REFRESH_COOKIE: &str = "docent_refresh";
/// The path the cookie is sent to: the session routes only (refresh, sign-out, switch).
const REFRESH_COOKIE_PATH: &str = "/api/v1/auth";

/// How a session's refresh token travels: in the JSON body (API clients), or, when the request
/// carries `X-Docent-Console: 1`, in the [`REFRESH_COOKIE`] (`HttpOnly`, `SameSite=Strict`,
/// `Secure` when `auth.public_url` is https).
pub(crate) struct SessionTransport {
    console: bool,
    cookie: Option<String>,
    secure: bool,
}

impl FromRequestParts<AppState> for SessionTransport {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let console = parts
            .headers
            .get(CONSOLE_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1");
        let cookie = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == REFRESH_COOKIE)
            .map(|(_, value)| value.to_owned())
            .filter(|v| !v.is_empty());
        let secure = state
            .auth
            .as_ref()
            .is_some_and(|a| a.settings().public_url.starts_with("https://"));
        Ok(Self {
            console,
            cookie,
            secure,
        })
    }
}

impl SessionTransport {
    /// The refresh token a request presents: the body's, else (console requests only) the
    /// cookie's.
    fn refresh_token(&self, body: Option<String>) -> ApiResult<String> {
        if let Some(t) = body {
            return Ok(t);
        }
        match (&self.cookie, self.console) {
            (Some(c), true) => Ok(c.clone()),
            (_, true) => Err(ApiError::new(
                Code::Unauthenticated,
                "no session cookie: sign in again",
            )),
            (_, false) => Err(ApiError::new(
                Code::MissingField,
                "`refresh_token` is required",
            )),
        }
    }

    fn cookie(&self, value: &str, max_age: i64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{REFRESH_COOKIE}={value}; Path={REFRESH_COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
        .ok()
    }

    /// The session as the answer: for the console, the refresh token moves into the cookie.
    pub(crate) fn session(&self, status: StatusCode, s: SignedIn) -> Response {
        let mut dto = SessionDto::from(s);
        let mut set = None;
        if self.console
            && let Some(token) = dto.refresh_token.take()
        {
            let max_age = (dto.refresh_expires_at - Utc::now()).num_seconds().max(0);
            set = self.cookie(&token, max_age);
        }
        let mut resp = (status, Json(dto)).into_response();
        if let Some(v) = set {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        resp
    }

    /// The console's refresh token, on a console request.
    pub(crate) fn console_cookie(&self) -> Option<&str> {
        self.cookie.as_deref().filter(|_| self.console)
    }

    /// `resp` with the console's cookie deleted (sign-out, or a refresh that failed).
    fn clearing(&self, mut resp: Response) -> Response {
        if self.console
            && self.cookie.is_some()
            && let Some(v) = self.cookie("", 0)
        {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        resp
    }
}

/// Sign-up.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Name of the new workspace.
    pub tenant_name: Option<String>,
    /// An invitation token: join that workspace instead.
    pub invite_token: Option<String>,
}

impl From<SignupRequest> for Signup {
    fn from(r: SignupRequest) -> Self {
        Signup {
            email: r.email,
            password: r.password,
            display_name: r.display_name,
            tenant_name: r.tenant_name,
            invite_token: r.invite_token,
        }
    }
}

/// Sign-up needs the emailed link opened first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationRequired {
    /// Always true.
    pub verification_required: bool,
    /// Where the link went.
    pub email: String,
}

/// Creates an account (and its workspace). 201 with a session, or 202 when the email address
/// must be verified first (also the answer for an address already registered).
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest, security(()),
    responses((status = 201, body = SessionDto), (status = 202, body = VerificationRequired),
        (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn signup(
    Accounts(auth): Accounts,
    transport: SessionTransport,
    ApiJson(r): ApiJson<SignupRequest>,
) -> ApiResult<Response> {
    Ok(match auth.signup(r.into()).await? {
        SignupOutcome::SignedIn(si) => transport.session(StatusCode::CREATED, *si),
        SignupOutcome::VerificationRequired { email } => (
            StatusCode::ACCEPTED,
            Json(VerificationRequired {
                verification_required: true,
                email,
            }),
        )
            .into_response(),
    })
}

/// Sign-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigninRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
    /// The workspace to act in (default: the first one).
    pub tenant_id: Option<String>,
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/signin", tag = "auth", request_body = SigninRequest, security(()),
    responses((status = 200, body = SessionDto), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope)))]
pub(crate) async fn signin(
    Accounts(auth): Accounts,
    Client(client): Client,
    transport: SessionTransport,
    ApiJson(r): ApiJson<SigninRequest>,
) -> ApiResult<Response> {
    let tenant = r
        .tenant_id
        .as_deref()
        .map(|t| {
            t.parse()
                .map_err(|_| ApiError::new(Code::InvalidField, "`tenant_id` is not a valid id"))
        })
        .transpose()?;
    let signed_in = auth.signin(&r.email, &r.password, tenant, client).await?;
    Ok(transport.session(StatusCode::OK, signed_in))
}

/// A refresh token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token. The console leaves it out and sends its cookie with
    /// `X-Docent-Console: 1` instead.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Exchanges a refresh token for a new session pair. A refresh token works once: presenting a
/// rotated one again revokes the whole session (`refresh_token_reused`). With
/// `X-Docent-Console: 1` and no `refresh_token`, the session cookie is used and renewed.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, security(()),
    params(("x-docent-console" = Option<String>, Header, description = "`1`: the refresh token travels in the `docent_refresh` cookie")),
    responses((status = 200, body = SessionDto), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn refresh(
    Accounts(auth): Accounts,
    transport: SessionTransport,
    ApiJson(r): ApiJson<RefreshRequest>,
) -> ApiResult<Response> {
    let token = transport.refresh_token(r.refresh_token)?;
    match auth.refresh(&token).await {
        Ok(s) => Ok(transport.session(StatusCode::OK, s)),
        Err(e) => Ok(transport.clearing(ApiError::from(e).into_response())),
    }
}

/// Ends the session the refresh token belongs to (the console's: its cookie, which is deleted).
#[utoipa::path(post, path = "/api/v1/auth/signout", tag = "auth", request_body = RefreshRequest, security(()),
    params(("x-docent-console" = Option<String>, Header, description = "`1`: the refresh token travels in the `docent_refresh` cookie")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn signout(
    Accounts(auth): Accounts,
    transport: SessionTransport,
    ApiJson(r): ApiJson<RefreshRequest>,
) -> ApiResult<Response> {
    let token = transport.refresh_token(r.refresh_token)?;
    let resp = match auth.signout(&token).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    Ok(transport.clearing(resp))
}

/// An email address.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// Email address.
    pub email: String,
}

/// Mails a new verification link (202 whether or not the address is registered).
#[utoipa::path(post, path = "/api/v1/auth/verify", tag = "auth", request_body = EmailRequest, security(()),
    responses((status = 202), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn verify(
    Accounts(auth): Accounts,
    ApiJson(r): ApiJson<EmailRequest>,
) -> ApiResult<StatusCode> {
    auth.request_email_verification(&r.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// A one-time token from a mailed link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token.
    pub token: String,
}

/// Confirms an email address with the token from the verification mail.
#[utoipa::path(post, path = "/api/v1/auth/confirm", tag = "auth", request_body = TokenRequest, security(()),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn confirm(
    Accounts(auth): Accounts,
    ApiJson(r): ApiJson<TokenRequest>,
) -> ApiResult<Json<UserDto>> {
    Ok(Json(auth.confirm_email(&r.token).await?.into()))
}

/// Mails a password-reset link (202 whether or not the address is registered).
#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth", request_body = EmailRequest, security(()),
    responses((status = 202), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn password_reset(
    Accounts(auth): Accounts,
    ApiJson(r): ApiJson<EmailRequest>,
) -> ApiResult<StatusCode> {
    auth.request_password_reset(&r.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// A new password with the token from the reset mail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token.
    pub token: String,
    /// The new password.
    pub password: String,
}

/// Sets a new password; every session of the account is signed out.
#[utoipa::path(post, path = "/api/v1/auth/password/reset/confirm", tag = "auth", request_body = PasswordResetConfirm, security(()),
    responses((status = 200, body = UserDto), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn password_reset_confirm(
    Accounts(auth): Accounts,
    ApiJson(r): ApiJson<PasswordResetConfirm>,
) -> ApiResult<Json<UserDto>> {
    Ok(Json(
        auth.confirm_password_reset(&r.token, &r.password)
            .await?
            .into(),
    ))
}

/// First-run setup: the token `docent serve` printed, and the first account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The setup token.
    pub token: String,
    /// Email address of the first owner.
    pub email: String,
    /// Password.
    pub password: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Name of the first workspace.
    pub tenant_name: Option<String>,
}

/// Creates the first account (owner of a new workspace) while no user exists, and signs it in.
#[utoipa::path(post, path = "/api/v1/setup", tag = "auth", request_body = SetupRequest, security(()),
    responses((status = 201, body = SessionDto), (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn setup(
    Accounts(auth): Accounts,
    transport: SessionTransport,
    ApiJson(r): ApiJson<SetupRequest>,
) -> ApiResult<Response> {
    let signed_in = auth
        .complete_setup(
            &r.token,
            Signup {
                email: r.email,
                password: r.password,
                display_name: r.display_name,
                tenant_name: r.tenant_name,
                invite_token: None,
            },
        )
        .await?;
    Ok(transport.session(StatusCode::CREATED, signed_in))
}

/// An API key as listed (never with its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyDto {
    /// Id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Public prefix, to recognise the key (`dk_<prefix>_…`).
    pub prefix: String,
    /// `read` or `read_write`.
    pub access: &'static str,
    /// Limited to these collections (absent: every collection of the workspace).
    pub collection_ids: Option<Vec<String>>,
    /// Limited to these bots (absent: every bot of the workspace).
    pub bot_ids: Option<Vec<String>>,
    /// Id of the user who created the key (absent: the operator, from the command line). A
    /// key is revoked when its creator may no longer create keys (demoted below admin,
    /// removed from the workspace, account disabled).
    pub created_by: Option<String>,
    /// Email address of that user, in listings.
    pub created_by_email: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set once revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<docent_domain::ApiKey> for ApiKeyDto {
    fn from(k: docent_domain::ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            access: k.scope.access.as_str(),
            collection_ids: k
                .scope
                .collections
                .map(|c| c.iter().map(ToString::to_string).collect()),
            bot_ids: k
                .scope
                .bots
                .map(|b| b.iter().map(ToString::to_string).collect()),
            created_by: k.created_by.map(|u| u.to_string()),
            created_by_email: None,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A page of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, newest first.
    pub items: Vec<ApiKeyDto>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Label.
    pub name: String,
    /// `read` or `read_write` (default).
    pub access: Option<String>,
    /// Limit the key to these collections (default: every collection of the workspace).
    pub collection_ids: Option<Vec<String>>,
    /// Limit the key to these bots (default: every bot it may otherwise see); such a key also
    /// reads only these bots' collections, on every route.
    pub bot_ids: Option<Vec<String>>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The new key, with its secret — shown this once only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyDto {
    /// The key.
    pub key: ApiKeyDto,
    /// The secret: send it as `Authorization: Bearer <secret>`. It cannot be shown again.
    pub secret: String,
}

/// Creates an API key in the caller's workspace (admins and owners).
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKeyDto), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)))]
pub(crate) async fn create_key(
    State(s): State<AppState>,
    Accounts(auth): Accounts,
    Auth(p): Auth,
    ApiJson(r): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKeyDto>)> {
    let access = match r.access.as_deref() {
        None => KeyAccess::ReadWrite,
        Some(a) => KeyAccess::parse(a).ok_or_else(|| {
            ApiError::new(Code::InvalidField, "`access` must be read or read_write")
        })?,
    };
    let collections = match r.collection_ids {
        None => None,
        Some(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for raw in &ids {
                let cid: CollectionId = raw.parse().map_err(|_| {
                    ApiError::new(Code::InvalidField, "`collection_ids` holds an invalid id")
                })?;
                s.services.store.get_collection(p.tenant_id, cid).await?;
                out.push(cid);
            }
            Some(out)
        }
    };
    let bots = match r.bot_ids {
        None => None,
        Some(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for raw in &ids {
                let bid: BotId = raw.parse().map_err(|_| {
                    ApiError::new(Code::InvalidField, "`bot_ids` holds an invalid id")
                })?;
                s.services.get_bot(p.tenant_id, bid).await?;
                out.push(bid);
            }
            Some(out)
        }
    };
    let created = auth
        .create_api_key(
            &p,
            CreateApiKey {
                name: r.name,
                access,
                collections,
                bots,
                expires_at: r.expires_at,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyDto {
            key: created.key.into(),
            secret: created.secret,
        }),
    ))
}

/// Lists the workspace's API keys (admins and owners).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", params(PageQuery),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub(crate) async fn list_keys(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ApiKeyList>> {
    let keys = auth.list_api_keys(&p, page(q.limit, q.cursor)?).await?;
    let creators = auth.key_creators(&keys.items).await?;
    Ok(Json(ApiKeyList {
        items: keys
            .items
            .into_iter()
            .map(|k| {
                let email = k.created_by.and_then(|u| creators.get(&u).cloned());
                ApiKeyDto {
                    created_by_email: email,
                    ..k.into()
                }
            })
            .collect(),
        next_cursor: keys.next_cursor,
    }))
}

/// Revokes an API key (admins and owners); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "API key id")),
    responses((status = 200, body = ApiKeyDto), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn revoke_key(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<Json<ApiKeyDto>> {
    let kid: ApiKeyId = id(&raw, "API key")?;
    Ok(Json(auth.revoke_api_key(&p, kid).await?.into()))
}

// Seed-compatible aliases: same handlers, listed in the OpenAPI document under their own paths.

/// Alias of `POST /api/v1/auth/signup`.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest, security(()),
    responses((status = 201, body = SessionDto), (status = 202, body = VerificationRequired), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn seed_signup(
    accounts: Accounts,
    transport: SessionTransport,
    body: ApiJson<SignupRequest>,
) -> ApiResult<Response> {
    signup(accounts, transport, body).await
}

/// Alias of `POST /api/v1/auth/signin`.
#[utoipa::path(post, path = "/auth/signin", tag = "auth", request_body = SigninRequest, security(()),
    responses((status = 200, body = SessionDto), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn seed_signin(
    accounts: Accounts,
    client: Client,
    transport: SessionTransport,
    body: ApiJson<SigninRequest>,
) -> ApiResult<Response> {
    signin(accounts, client, transport, body).await
}

/// Alias of `POST /api/v1/auth/verify`.
#[utoipa::path(post, path = "/auth/verify", tag = "auth", request_body = EmailRequest, security(()),
    responses((status = 202), (status = 400, body = ErrorEnvelope)))]
pub(crate) async fn seed_verify(
    accounts: Accounts,
    body: ApiJson<EmailRequest>,
) -> ApiResult<StatusCode> {
    verify(accounts, body).await
}

/// Alias of `POST /api/v1/auth/confirm`.
#[utoipa::path(post, path = "/auth/confirm", tag = "auth", request_body = TokenRequest, security(()),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn seed_confirm(
    accounts: Accounts,
    body: ApiJson<TokenRequest>,
) -> ApiResult<Json<UserDto>> {
    confirm(accounts, body).await
}

/// Alias of `POST /api/v1/auth/refresh`.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest, security(()),
    responses((status = 200, body = SessionDto), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn seed_refresh(
    accounts: Accounts,
    transport: SessionTransport,
    body: ApiJson<RefreshRequest>,
) -> ApiResult<Response> {
    refresh(accounts, transport, body).await
}
