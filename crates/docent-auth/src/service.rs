//! [`AuthService`]: the account flows over an [`AuthStore`], a [`Mailer`], the access-token
//! keys and the password hasher — sign-up (own tenant or by invitation), email verification,
//! sign-in, refresh with rotation and reuse detection, sign-out, password reset, invitations,
//! tenant switching, members, API keys, first-run setup, and turning any bearer credential
//! (access token, API key, external OIDC token) into a [`Principal`].
//!
//! Nothing here knows HTTP. Errors carry stable codes; failures that could reveal whether an
//! account exists (sign-in, password reset, sign-up with verification on) look the same either
//! way.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use docent_config::{AuthConfig, Config};
use docent_domain::auth::{
    AccountTenant, ApiKeyCredentials, AuthStore, Member, Membership, NewAccount, NewApiKey,
    NewRefreshToken, NewSession, OneTimeToken, RefreshOutcome, TenantMembership, TokenPurpose,
};
use docent_domain::{
    Actor, ApiKey, ApiKeyId, BotId, Code, CollectionId, Error, KeyAccess, KeyScope, Page,
    PageRequest, Principal, Result, Role, SessionId, Tenant, TenantId, User, UserId,
};

use crate::jwt::JwtKeys;
use crate::mail::{Mail, MailKind, Mailer};
use crate::oidc::{OidcProvider, TenantRef};
use crate::password::{PasswordHasher, PasswordParams};
use crate::ratelimit::{RateDecision, RateKey, RateLimiter, RouteClass, SigninGuard};
use crate::secrets;

/// Lifetimes and switches of the account flows (from `auth` in the configuration).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Open sign-up.
    pub allow_signup: bool,
    /// Sign-in needs a verified email.
    pub require_email_verification: bool,
    /// Base of links in mails, without a trailing slash.
    pub public_url: String,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// Absolute session lifetime.
    pub session_ttl: Duration,
    /// Verification-link lifetime.
    pub verification_token_ttl: Duration,
    /// Reset-link lifetime.
    pub reset_token_ttl: Duration,
    /// Invitation lifetime.
    pub invite_token_ttl: Duration,
    /// Setup-token lifetime.
    pub setup_token_ttl: Duration,
    /// Least time between two last-used writes of an API key.
    pub api_key_last_used_interval: Duration,
    /// Most documents per tenant (0: unlimited).
    pub max_documents: u64,
    /// Most stored bytes per tenant (0: unlimited).
    pub max_stored_bytes: u64,
    /// How long a checked access token's standing (session, account, role in force) is
    /// trusted before it is read again.
    pub principal_cache_ttl: Duration,
    /// Most cached standings.
    pub principal_cache_capacity: usize,
}

impl AuthSettings {
    /// Settings from the configuration.
    pub fn from_config(config: &Config) -> Self {
        let a = &config.auth;
        let public_url = a
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.server.bind));
        Self {
            allow_signup: a.allow_signup,
            require_email_verification: a.require_email_verification,
            public_url: public_url.trim_end_matches('/').to_owned(),
            refresh_token_ttl: a.refresh_token_ttl,
            session_ttl: a.session_ttl,
            verification_token_ttl: a.verification_token_ttl,
            reset_token_ttl: a.reset_token_ttl,
            invite_token_ttl: a.invite_token_ttl,
            setup_token_ttl: a.setup_token_ttl,
            api_key_last_used_interval: a.api_keys.last_used_interval,
            max_documents: a.quotas.max_documents,
            max_stored_bytes: a.quotas.max_stored_bytes.as_u64(),
            principal_cache_ttl: a.principal_cache_ttl,
            principal_cache_capacity: a.principal_cache_capacity,
        }
    }
}

/// Everything [`AuthService::new`] needs.
pub struct AuthParts {
    /// Flow settings.
    pub settings: AuthSettings,
    /// Storage.
    pub store: Arc<dyn AuthStore>,
    /// Mail delivery.
    pub mailer: Arc<dyn Mailer>,
    /// Access-token keys.
    pub jwt: JwtKeys,
    /// Password hashing.
    pub passwords: PasswordHasher,
    /// Request rate limits.
    pub limiter: RateLimiter,
    /// Sign-in brute-force guard.
    pub guard: SigninGuard,
    /// External identity providers.
    pub oidc: Vec<OidcProvider>,
}

/// The account flows. Cheap to share behind an `Arc`.
pub struct AuthService {
    settings: AuthSettings,
    store: Arc<dyn AuthStore>,
    mailer: Arc<dyn Mailer>,
    jwt: JwtKeys,
    passwords: PasswordHasher,
    limiter: RateLimiter,
    guard: SigninGuard,
    oidc: Vec<OidcProvider>,
    standings: StandingCache,
}

/// What an access token's session stands for now: the role in force, or why it is refused.
#[derive(Debug, Clone, Copy)]
enum Standing {
    /// The session is live and the user a member with this role.
    Live(Role),
    /// Signed out, expired, reset, removed from the tenant.
    Invalid,
    /// The account is disabled.
    Disabled,
}

/// Standings of access tokens by session, per process: bounded, each trusted for a short TTL,
/// and dropped at once when this process changes a session, account or membership (other
/// processes see the change when their entry expires). A generation counter keeps a look-up
/// that raced an invalidation from caching what it read before the change.
struct StandingCache {
    entries: moka::future::Cache<SessionId, Standing>,
    generation: std::sync::atomic::AtomicU64,
}

impl StandingCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets every standing (changes are rare; a miss costs three indexed reads).
    fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.entries.invalidate_all();
    }
}

impl AuthService {
    /// Drops cached standings: call after any change to sessions, accounts or memberships.
    fn changed(&self) {
        self.standings.invalidate();
    }

    /// The role in force for an access token's session: the session must be live, the
    /// account enabled and the user still a member of the token's tenant; the role is the
    /// membership's now, not the one in the token.
    async fn standing(&self, user: UserId, tenant: TenantId, session: SessionId) -> Result<Role> {
        let standing = match self.standings.entries.get(&session).await {
            Some(s) => s,
            None => {
                let generation = self.standings.generation();
                let s = self.read_standing(user, tenant, session).await?;
                if self.standings.generation() == generation {
                    self.standings.entries.insert(session, s).await;
                }
                s
            }
        };
        match standing {
            Standing::Live(role) => Ok(role),
            Standing::Invalid => Err(Error::new(
                Code::TokenInvalid,
                "this access token's session has ended (signed out, password reset or removed \
                 from the workspace)",
            )),
            Standing::Disabled => Err(Error::new(
                Code::AccountDisabled,
                "this account is disabled",
            )),
        }
    }

    async fn read_standing(
        &self,
        user: UserId,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Standing> {
        let live = self
            .store
            .get_session(tenant, session)
            .await?
            .is_some_and(|s| {
                s.user_id == user && s.revoked_at.is_none() && s.expires_at > Utc::now()
            });
        if !live {
            return Ok(Standing::Invalid);
        }
        match self.store.get_user(user).await {
            Ok(u) if u.disabled => return Ok(Standing::Disabled),
            Ok(_) => {}
            Err(e) if e.code == Code::UserNotFound => return Ok(Standing::Invalid),
            Err(e) => return Err(e),
        }
        Ok(match self.store.get_membership(tenant, user).await? {
            Some(m) => Standing::Live(m.role),
            None => Standing::Invalid,
        })
    }
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("settings", &self.settings)
            .field("jwt", &self.jwt)
            .field("oidc", &self.oidc)
            .finish_non_exhaustive()
    }
}

/// The client a request comes from (for brute-force protection and rate limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client address (after trusted-proxy handling at the edge).
    pub ip: IpAddr,
}

/// An access token and a refresh token.
#[derive(Clone)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// Opaque refresh token (single use).
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// A successful sign-in (or sign-up, refresh, tenant switch).
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The tokens.
    pub tokens: TokenPair,
    /// The user.
    pub user: User,
    /// The tenant the tokens act in.
    pub tenant_id: TenantId,
    /// The user's role there.
    pub role: Role,
    /// The session.
    pub session_id: SessionId,
}

/// What sign-up did.
#[derive(Debug, Clone)]
pub enum SignupOutcome {
    /// The account exists and is signed in.
    SignedIn(Box<SignedIn>),
    /// A verification link was mailed; sign-in works once it is opened. (Also the answer when
    /// the address is already registered, so sign-up does not reveal accounts.)
    VerificationRequired {
        /// The address the link went to.
        email: String,
    },
}

/// A sign-up request.
#[derive(Clone, Default)]
pub struct Signup {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Name of the new tenant (default: "<name>'s workspace").
    pub tenant_name: Option<String>,
    /// An invitation token: join that tenant instead of creating one.
    pub invite_token: Option<String>,
}

impl std::fmt::Debug for Signup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signup")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("tenant_name", &self.tenant_name)
            .field("invite", &self.invite_token.is_some())
            .finish_non_exhaustive()
    }
}

/// An operator-created account (`docent users create`).
#[derive(Clone)]
pub struct CreateUser {
    /// Email address.
    pub email: String,
    /// Password (none: the user sets one by password reset, or signs in externally).
    pub password: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// New tenant or membership in an existing one.
    pub tenant: AccountTenant,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// An API key request.
#[derive(Debug, Clone)]
pub struct CreateApiKey {
    /// Label.
    pub name: String,
    /// Read or read-write.
    pub access: KeyAccess,
    /// Limit to these collections (`None`: all).
    pub collections: Option<Vec<CollectionId>>,
    /// Limit to these bots (`None`: all).
    pub bots: Option<Vec<BotId>>,
    /// Optional expiry (must be in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key: shown once.
#[derive(Clone)]
pub struct CreatedApiKey {
    /// The stored key (no secret).
    pub key: ApiKey,
    /// The whole key `dk_<prefix>_<secret>`; it cannot be shown again.
    pub secret: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// An invitation that was mailed.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// Invited address.
    pub email: String,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Role granted.
    pub role: Role,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// How long a password-reset request takes to answer, whether or not the address has an
/// account (above what the mail takes with file or memory delivery).
pub const RESET_ANSWER_TIME: Duration = Duration::from_millis(250);

fn invalid_field(msg: impl Into<String>) -> Error {
    Error::new(Code::InvalidField, msg)
}

fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Normalizes an email address (trimmed, lowercased) and checks its shape.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let bad = || invalid_field("`email` is not a valid email address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with(['.', '-'])
        || domain.ends_with(['.', '-'])
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(email)
}

fn clean_name(field: &str, raw: Option<&str>) -> Result<Option<String>> {
    let Some(v) = raw.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > 100 || v.chars().any(char::is_control) {
        return Err(invalid_field(format!(
            "`{field}` must be at most 100 characters, without control characters"
        )));
    }
    Ok(Some(v.to_owned()))
}

impl AuthService {
    /// Assembles the service from its parts.
    pub fn new(parts: AuthParts) -> Self {
        let standings = StandingCache::new(
            parts.settings.principal_cache_ttl,
            parts.settings.principal_cache_capacity,
        );
        Self {
            standings,
            settings: parts.settings,
            store: parts.store,
            mailer: parts.mailer,
            jwt: parts.jwt,
            passwords: parts.passwords,
            limiter: parts.limiter,
            guard: parts.guard,
            oidc: parts.oidc,
        }
    }

    /// The service `config.auth` describes: keys from config or the data directory, the
    /// configured mailer, and a JWKS client for each OIDC provider.
    pub fn from_config(config: &Config, store: Arc<dyn AuthStore>) -> Result<Self> {
        let auth: &AuthConfig = &config.auth;
        let data_path = |p: &Path| config.data_path(p);
        let client = reqwest::Client::builder()
            .user_agent(concat!("docent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        let oidc = auth
            .oidc
            .iter()
            .map(|p| OidcProvider::new(p, auth.clock_leeway, client.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(AuthParts {
            settings: AuthSettings::from_config(config),
            store,
            mailer: crate::mail::from_config(&auth.mail, data_path)?,
            jwt: JwtKeys::from_config(auth, data_path)?,
            passwords: PasswordHasher::new(
                PasswordParams {
                    memory_kib: auth.password.memory_kib,
                    iterations: auth.password.iterations,
                    parallelism: auth.password.parallelism,
                },
                auth.password.min_length,
            )?,
            limiter: RateLimiter::new(&auth.rate_limit),
            guard: SigninGuard::new(auth.signin_guard.clone()),
            oidc,
        }))
    }

    /// The access-token keys (for the JWKS endpoint).
    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    // ----- rate limits and quotas -----

    /// Takes one request from the caller's bucket for the route class.
    pub fn check_rate(&self, class: RouteClass, key: &RateKey) -> RateDecision {
        self.limiter.check(class, key)
    }

    /// Takes one request from the tenant's ceiling for the route class.
    pub fn check_tenant_rate(&self, class: RouteClass, tenant: TenantId) -> RateDecision {
        self.limiter.check_tenant(class, tenant)
    }

    /// The rate-limit key of a principal.
    pub fn rate_key(principal: &Principal) -> RateKey {
        match &principal.actor {
            Actor::User { id, .. } => RateKey::User(*id),
            Actor::ApiKey { id } => RateKey::ApiKey(*id),
        }
    }

    /// The rate limiter (to prune it periodically).
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// `quota_exceeded` if adding `documents` documents of `bytes` bytes would pass the
    /// tenant's quotas.
    pub async fn check_quota(&self, tenant: TenantId, documents: u64, bytes: u64) -> Result<()> {
        let (max_docs, max_bytes) = (self.settings.max_documents, self.settings.max_stored_bytes);
        if max_docs == 0 && max_bytes == 0 {
            return Ok(());
        }
        let usage = self.store.tenant_usage(tenant).await?;
        if max_docs > 0 && usage.documents.saturating_add(documents) > max_docs {
            return Err(Error::new(
                Code::QuotaExceeded,
                format!("this workspace may hold at most {max_docs} documents"),
            ));
        }
        if max_bytes > 0 && usage.stored_bytes.saturating_add(bytes) > max_bytes {
            return Err(self.stored_bytes_exceeded());
        }
        Ok(())
    }

    /// Checks that one more document fits the tenant's quotas (`quota_exceeded` if not) and
    /// returns how many bytes it may have (`None`: no byte quota). The HTTP edge checks this
    /// before an upload and aborts the upload stream past the headroom, so nothing is stored.
    pub async fn upload_headroom(&self, tenant: TenantId) -> Result<Option<u64>> {
        self.check_quota(tenant, 1, 0).await?;
        let max_bytes = self.settings.max_stored_bytes;
        if max_bytes == 0 {
            return Ok(None);
        }
        let usage = self.store.tenant_usage(tenant).await?;
        Ok(Some(max_bytes.saturating_sub(usage.stored_bytes)))
    }

    /// The `quota_exceeded` error of the byte quota.
    pub fn stored_bytes_exceeded(&self) -> Error {
        Error::new(
            Code::QuotaExceeded,
            format!(
                "this workspace may store at most {} bytes of originals",
                self.settings.max_stored_bytes
            ),
        )
    }

    // ----- helpers -----

    /// A link into the web console, which routes on the URL fragment: the token after `#`
    /// is never sent to the server, so it stays out of access logs and `Referer` headers.
    fn link(&self, path: &str, token: &str) -> String {
        format!(
            "{}/#{path}?token={token}",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    async fn issue_one_time(
        &self,
        purpose: TokenPurpose,
        ttl: Duration,
        fill: impl FnOnce(&mut OneTimeToken),
    ) -> Result<(String, OneTimeToken)> {
        let token = secrets::new_token();
        let now = Utc::now();
        let mut record = OneTimeToken {
            token_hash: secrets::hash_token(&token),
            purpose,
            user_id: None,
            tenant_id: None,
            email: None,
            role: None,
            created_by: None,
            created_at: now,
            expires_at: later(now, ttl),
        };
        fill(&mut record);
        self.store.insert_one_time_token(record.clone()).await?;
        Ok((token, record))
    }

    /// Mails without failing the flow: a lost mail can be requested again.
    async fn send_mail(&self, mail: Mail) {
        let kind = mail.kind.as_str();
        if let Err(e) = self.mailer.send(mail).await {
            tracing::error!(kind, error = %e.chain(), "could not deliver an account mail");
        }
    }

    async fn send_verification(&self, user: &User) -> Result<()> {
        let Some(to) = user.email.clone() else {
            return Ok(());
        };
        self.store
            .delete_one_time_tokens(TokenPurpose::VerifyEmail, Some(user.id))
            .await?;
        let (token, _) = self
            .issue_one_time(
                TokenPurpose::VerifyEmail,
                self.settings.verification_token_ttl,
                |t| t.user_id = Some(user.id),
            )
            .await?;
        self.send_mail(Mail {
            kind: MailKind::VerifyEmail,
            to,
            subject: "Confirm your email address for docent".into(),
            body: format!(
                "Confirm your email address by opening this link:\n\n{}\n\nIt expires in {}. \
                 If you did not sign up, ignore this mail.",
                self.link("/verify-email", &token),
                humanize(self.settings.verification_token_ttl)
            ),
        })
        .await;
        Ok(())
    }

    /// Starts a session for the user in the tenant and issues both tokens.
    async fn start_session(&self, user: User, tenant: TenantId, role: Role) -> Result<SignedIn> {
        let now = Utc::now();
        let session_id = SessionId::new();
        let session_end = later(now, self.settings.session_ttl);
        let refresh = secrets::new_token();
        let refresh_expires_at = later(now, self.settings.refresh_token_ttl).min(session_end);
        self.store
            .create_session(
                NewSession {
                    id: session_id,
                    tenant_id: tenant,
                    user_id: user.id,
                    expires_at: session_end,
                },
                NewRefreshToken {
                    token_hash: secrets::hash_token(&refresh),
                    expires_at: refresh_expires_at,
                },
            )
            .await?;
        let access = self.jwt.issue(user.id, tenant, role, session_id, now)?;
        Ok(SignedIn {
            tokens: TokenPair {
                access_token: access.token,
                access_expires_at: access.expires_at,
                refresh_token: refresh,
                refresh_expires_at,
            },
            user,
            tenant_id: tenant,
            role,
            session_id,
        })
    }

    async fn peek_invite(&self, token: &str) -> Result<OneTimeToken> {
        self.store
            .peek_one_time_token(
                &secrets::hash_token(token),
                TokenPurpose::Invite,
                Utc::now(),
            )
            .await
    }

    // ----- sign-up, verification, sign-in -----

    /// Signs up: with an invitation, joins its tenant with its role (the address is verified
    /// by the invitation); otherwise creates a tenant owned by the new user, if open sign-up
    /// is allowed. Mails a verification link; when verification is required, returns
    /// [`SignupOutcome::VerificationRequired`] instead of tokens.
    pub async fn signup(&self, req: Signup) -> Result<SignupOutcome> {
        let email = normalize_email(&req.email)?;
        self.passwords.check_rules(&req.password)?;
        let display_name = clean_name("display_name", req.display_name.as_deref())?;
        if let Some(invite) = req.invite_token.as_deref() {
            let record = self.peek_invite(invite).await?;
            if record.email.as_deref() != Some(email.as_str()) {
                return Err(Error::new(
                    Code::TokenInvalid,
                    "this invitation is for another email address",
                ));
            }
            if self.store.find_user_by_email(&email).await?.is_some() {
                return Err(Error::new(
                    Code::EmailTaken,
                    "an account with this email exists: sign in and accept the invitation",
                ));
            }
            let hash = self.passwords.hash(&req.password).await?;
            let record = self
                .store
                .consume_one_time_token(
                    &secrets::hash_token(invite),
                    TokenPurpose::Invite,
                    Utc::now(),
                )
                .await?;
            let (tenant_id, role) = invite_target(&record)?;
            let (user, _) = self
                .store
                .create_account(NewAccount {
                    email,
                    display_name,
                    password_hash: Some(hash),
                    email_verified: true,
                    tenant: AccountTenant::Existing { tenant_id, role },
                })
                .await?;
            tracing::info!(user = %user.id, tenant = %tenant_id, %role, "signed up by invitation");
            let signed_in = self.start_session(user, tenant_id, role).await?;
            return Ok(SignupOutcome::SignedIn(Box::new(signed_in)));
        }
        if !self.settings.allow_signup {
            return Err(Error::new(
                Code::SignupDisabled,
                "sign-up is by invitation only on this server",
            ));
        }
        let tenant_name = match clean_name("tenant_name", req.tenant_name.as_deref())? {
            Some(name) => name,
            None => default_tenant_name(display_name.as_deref(), &email),
        };
        // Hashed before looking the address up, so both answers cost the same.
        let hash = self.passwords.hash(&req.password).await?;
        if self.store.find_user_by_email(&email).await?.is_some() {
            // With verification off a new account is signed in at once, so a taken address
            // cannot be hidden here (the trade for sign-up without mail; see the README).
            if self.settings.require_email_verification {
                // Answer as for a new address; tell the owner instead.
                self.send_mail(Mail {
                    kind: MailKind::Notice,
                    to: email.clone(),
                    subject: "Someone tried to sign up to docent with your address".into(),
                    body: format!(
                        "An account with this address already exists. If this was you, sign in \
                         or reset your password at {}/reset-password. Otherwise ignore this mail.",
                        self.settings.public_url
                    ),
                })
                .await;
                return Ok(SignupOutcome::VerificationRequired { email });
            }
            return Err(Error::new(
                Code::EmailTaken,
                "an account with this email already exists",
            ));
        }
        let (user, membership) = self
            .store
            .create_account(NewAccount {
                email: email.clone(),
                display_name,
                password_hash: Some(hash),
                email_verified: false,
                tenant: AccountTenant::New { name: tenant_name },
            })
            .await?;
        tracing::info!(user = %user.id, tenant = %membership.tenant_id, "signed up");
        self.send_verification(&user).await?;
        if self.settings.require_email_verification {
            return Ok(SignupOutcome::VerificationRequired { email });
        }
        let signed_in = self
            .start_session(user, membership.tenant_id, membership.role)
            .await?;
        Ok(SignupOutcome::SignedIn(Box::new(signed_in)))
    }

    /// Mails a fresh verification link if the address belongs to an unverified account.
    /// Always succeeds, so it does not reveal accounts.
    pub async fn request_email_verification(&self, email: &str) -> Result<()> {
        let Ok(email) = normalize_email(email) else {
            return Ok(());
        };
        if let Some(creds) = self.store.find_user_by_email(&email).await?
            && creds.user.email_verified_at.is_none()
            && !creds.user.disabled
        {
            self.send_verification(&creds.user).await?;
        }
        Ok(())
    }

    /// Confirms an email address with the token from the verification mail.
    pub async fn confirm_email(&self, token: &str) -> Result<User> {
        let record = self
            .store
            .consume_one_time_token(
                &secrets::hash_token(token),
                TokenPurpose::VerifyEmail,
                Utc::now(),
            )
            .await?;
        let user = record
            .user_id
            .ok_or_else(|| Error::internal("verification token without a user"))?;
        self.store.mark_email_verified(user, Utc::now()).await?;
        self.store.get_user(user).await
    }

    /// Signs in with email and password, in `tenant` or the user's first tenant.
    pub async fn signin(
        &self,
        email: &str,
        password: &str,
        tenant: Option<TenantId>,
        client: ClientInfo,
    ) -> Result<SignedIn> {
        let wrong = || Error::new(Code::InvalidCredentials, "wrong email or password");
        let email = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        self.guard.check(&email, client.ip)?;
        let creds = self.store.find_user_by_email(&email).await?;
        let stored = creds.as_ref().and_then(|c| c.password_hash.clone());
        let matched = self.passwords.verify(password, stored.clone()).await?;
        let Some(creds) = creds.filter(|_| matched) else {
            if let Some(lockout) = self.guard.record_failure(&email, client.ip) {
                tracing::warn!(ip = %client.ip, lockout_s = lockout.as_secs(), "sign-in locked out after repeated failures");
            }
            return Err(wrong());
        };
        self.guard.record_success(&email, client.ip);
        let user = creds.user;
        if user.disabled {
            return Err(Error::new(
                Code::AccountDisabled,
                "this account is disabled",
            ));
        }
        if self.settings.require_email_verification && user.email_verified_at.is_none() {
            return Err(Error::new(
                Code::EmailNotVerified,
                "confirm your email address first (the link was mailed to you)",
            ));
        }
        if let Some(hash) = stored.as_deref()
            && self.passwords.needs_rehash(hash)
        {
            let fresh = self.passwords.hash(password).await?;
            self.store.set_password_hash(user.id, &fresh).await?;
        }
        let (tenant_id, role) = self.pick_tenant(user.id, tenant).await?;
        self.start_session(user, tenant_id, role).await
    }

    async fn pick_tenant(
        &self,
        user: UserId,
        wanted: Option<TenantId>,
    ) -> Result<(TenantId, Role)> {
        let not_member = || {
            Error::new(
                Code::TenantNotFound,
                "you are not a member of that workspace",
            )
        };
        match wanted {
            Some(t) => self
                .store
                .get_membership(t, user)
                .await?
                .map(|m| (m.tenant_id, m.role))
                .ok_or_else(not_member),
            None => self
                .store
                .list_user_tenants(user)
                .await?
                .into_iter()
                .next()
                .map(|m| (m.tenant.id, m.role))
                .ok_or_else(not_member),
        }
    }

    /// Exchanges a refresh token for new tokens. The presented token is used up; presenting
    /// it again later revokes the whole session (`refresh_token_reused`).
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn> {
        let now = Utc::now();
        let next = secrets::new_token();
        let next_expires = later(now, self.settings.refresh_token_ttl);
        let outcome = self
            .store
            .rotate_refresh_token(
                &secrets::hash_token(refresh_token),
                NewRefreshToken {
                    token_hash: secrets::hash_token(&next),
                    expires_at: next_expires,
                },
                now,
            )
            .await?;
        let session = match outcome {
            RefreshOutcome::Rotated(session) => session,
            RefreshOutcome::Reused(session) => {
                self.changed();
                tracing::warn!(session = %session.id, user = %session.user_id, tenant = %session.tenant_id,
                    "a rotated refresh token was presented again; the session is revoked");
                return Err(Error::new(
                    Code::RefreshTokenReused,
                    "this refresh token was already used; the session has been signed out",
                ));
            }
            RefreshOutcome::Expired => {
                return Err(Error::new(
                    Code::TokenExpired,
                    "the refresh token has expired",
                ));
            }
            RefreshOutcome::Revoked | RefreshOutcome::Unknown => {
                return Err(Error::new(
                    Code::TokenInvalid,
                    "the refresh token is not valid",
                ));
            }
        };
        let user = self.store.get_user(session.user_id).await?;
        let membership = self
            .store
            .get_membership(session.tenant_id, user.id)
            .await?;
        let Some(membership) = membership.filter(|_| !user.disabled) else {
            self.store
                .revoke_session(session.tenant_id, session.id, now)
                .await?;
            self.changed();
            return Err(Error::new(
                Code::TokenInvalid,
                "the refresh token is not valid",
            ));
        };
        let access =
            self.jwt
                .issue(user.id, session.tenant_id, membership.role, session.id, now)?;
        Ok(SignedIn {
            tokens: TokenPair {
                access_token: access.token,
                access_expires_at: access.expires_at,
                refresh_token: next,
                refresh_expires_at: next_expires.min(session.expires_at),
            },
            user,
            tenant_id: session.tenant_id,
            role: membership.role,
            session_id: session.id,
        })
    }

    /// Signs out the session a refresh token belongs to. Idempotent; unknown tokens are fine.
    pub async fn signout(&self, refresh_token: &str) -> Result<()> {
        self.store
            .revoke_session_by_token(&secrets::hash_token(refresh_token), Utc::now())
            .await?;
        self.changed();
        Ok(())
    }

    /// Signs out the caller's current session.
    pub async fn signout_session(&self, principal: &Principal) -> Result<()> {
        if let Actor::User {
            session: Some(sid), ..
        } = principal.actor
        {
            self.store
                .revoke_session(principal.tenant_id, sid, Utc::now())
                .await?;
            self.changed();
        }
        Ok(())
    }

    /// Signs the caller out everywhere.
    pub async fn signout_everywhere(&self, principal: &Principal) -> Result<u64> {
        let user = require_user(principal)?;
        let revoked = self.store.revoke_user_sessions(user, Utc::now()).await;
        self.changed();
        revoked
    }

    // ----- password reset -----

    /// Mails a reset link if the address belongs to an account. Always succeeds, and answers
    /// after the same time ([`RESET_ANSWER_TIME`]) either way, so timing does not reveal
    /// accounts: a mail still being sent then goes on in the background.
    pub async fn request_password_reset(&self, email: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + RESET_ANSWER_TIME;
        let result = self.issue_password_reset(email, deadline).await;
        tokio::time::sleep_until(deadline).await;
        result
    }

    async fn issue_password_reset(
        &self,
        email: &str,
        deadline: tokio::time::Instant,
    ) -> Result<()> {
        let Ok(email) = normalize_email(email) else {
            return Ok(());
        };
        let Some(creds) = self.store.find_user_by_email(&email).await? else {
            return Ok(());
        };
        if creds.user.disabled {
            return Ok(());
        }
        self.store
            .delete_one_time_tokens(TokenPurpose::ResetPassword, Some(creds.user.id))
            .await?;
        let (token, _) = self
            .issue_one_time(
                TokenPurpose::ResetPassword,
                self.settings.reset_token_ttl,
                |t| t.user_id = Some(creds.user.id),
            )
            .await?;
        let mail = Mail {
            kind: MailKind::ResetPassword,
            to: email,
            subject: "Reset your docent password".into(),
            body: format!(
                "Set a new password by opening this link:\n\n{}\n\nIt expires in {}. If you did \
                 not ask for this, ignore this mail; your password stays as it is.",
                self.link("/reset-password", &token),
                humanize(self.settings.reset_token_ttl)
            ),
        };
        let mailer = self.mailer.clone();
        let sending = tokio::spawn(async move {
            if let Err(e) = mailer.send(mail).await {
                tracing::error!(kind = "reset_password", error = %e.chain(), "could not deliver an account mail");
            }
        });
        // Not awaited past the deadline: a slow mail server must not tell that it was used.
        let _ = tokio::time::timeout_at(deadline, sending).await;
        Ok(())
    }

    /// Sets a new password with the token from the reset mail; signs out every session of the
    /// user and marks the address verified (the mail reached its owner).
    ///
    /// An account whose address was never verified may have been made by someone else before
    /// its owner arrived (pre-account takeover: sign up with the victim's address, mint a key,
    /// wait). Its reset therefore also starts it clean — see
    /// [`AuthStore::reset_unverified_account`]: its keys, the other members and keys of the
    /// workspaces it owns, and the invitations it issued are gone, so whoever held it keeps
    /// no access.
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str) -> Result<User> {
        self.passwords.check_rules(new_password)?;
        let hash = self.passwords.hash(new_password).await?;
        let record = self
            .store
            .consume_one_time_token(
                &secrets::hash_token(token),
                TokenPurpose::ResetPassword,
                Utc::now(),
            )
            .await?;
        let user = record
            .user_id
            .ok_or_else(|| Error::internal("reset token without a user"))?;
        let now = Utc::now();
        let never_verified = self.store.get_user(user).await?.email_verified_at.is_none();
        self.store.set_password_hash(user, &hash).await?;
        if never_verified {
            let undone = self.store.reset_unverified_account(user, now).await;
            self.changed();
            let undone = undone?;
            tracing::warn!(%user, sessions_revoked = undone.sessions_revoked,
                keys_revoked = undone.keys_revoked, members_removed = undone.members_removed,
                invites_deleted = undone.invites_deleted,
                "password reset of a never-verified account: started clean");
        } else {
            let revoked = self.store.revoke_user_sessions(user, now).await;
            self.changed();
            tracing::info!(%user, sessions_revoked = revoked?, "password reset");
        }
        self.store.mark_email_verified(user, now).await?;
        self.store.get_user(user).await
    }

    // ----- tenants and members -----

    /// The caller's tenants.
    pub async fn my_tenants(&self, principal: &Principal) -> Result<Vec<TenantMembership>> {
        let user = require_user(principal)?;
        self.store.list_user_tenants(user).await
    }

    /// New tokens acting in another of the user's tenants.
    pub async fn switch_tenant(&self, principal: &Principal, tenant: TenantId) -> Result<SignedIn> {
        let user_id = require_user(principal)?;
        let user = self.store.get_user(user_id).await?;
        if user.disabled {
            return Err(Error::new(
                Code::AccountDisabled,
                "this account is disabled",
            ));
        }
        let (tenant_id, role) = self.pick_tenant(user_id, Some(tenant)).await?;
        self.start_session(user, tenant_id, role).await
    }

    /// Invites an address into the caller's tenant with a role (admins invite members and
    /// viewers; owners any role); the link goes by mail only.
    pub async fn invite(
        &self,
        principal: &Principal,
        email: &str,
        role: Role,
    ) -> Result<Invitation> {
        principal.require_role(Role::Admin)?;
        if role >= Role::Admin && principal.role < Role::Owner {
            return Err(Error::new(
                Code::InsufficientRole,
                format!("only owners grant the {role} role"),
            ));
        }
        let email = normalize_email(email)?;
        let tenant = self.store.get_tenant(principal.tenant_id).await?;
        if let Some(existing) = self.store.find_user_by_email(&email).await?
            && self
                .store
                .get_membership(tenant.id, existing.user.id)
                .await?
                .is_some()
        {
            return Err(Error::new(
                Code::AlreadyMember,
                "that user is already a member of this workspace",
            ));
        }
        let (token, record) = self
            .issue_one_time(TokenPurpose::Invite, self.settings.invite_token_ttl, |t| {
                t.tenant_id = Some(tenant.id);
                t.email = Some(email.clone());
                t.role = Some(role);
                t.created_by = principal.user_id();
            })
            .await?;
        self.send_mail(Mail {
            kind: MailKind::Invite,
            to: email.clone(),
            subject: format!("You are invited to the docent workspace {}", tenant.name),
            body: format!(
                "You are invited to join the workspace \"{}\" as {role}. Accept by opening this \
                 link (sign up there, or sign in first if you have an account):\n\n{}\n\n\
                 It expires in {}.",
                tenant.name,
                self.link("/accept-invite", &token),
                humanize(self.settings.invite_token_ttl)
            ),
        })
        .await;
        Ok(Invitation {
            email,
            tenant_id: tenant.id,
            role,
            expires_at: record.expires_at,
        })
    }

    /// Accepts an invitation as the signed-in user (the invitation's address must be theirs).
    pub async fn accept_invite(&self, principal: &Principal, token: &str) -> Result<Membership> {
        let user = self.store.get_user(require_user(principal)?).await?;
        let record = self.peek_invite(token).await?;
        if record.email.is_none() || record.email != user.email {
            return Err(Error::new(
                Code::TokenInvalid,
                "this invitation is for another email address",
            ));
        }
        let record = self
            .store
            .consume_one_time_token(&record.token_hash, TokenPurpose::Invite, Utc::now())
            .await?;
        let (tenant_id, role) = invite_target(&record)?;
        let membership = self.store.add_member(tenant_id, user.id, role).await?;
        self.store.mark_email_verified(user.id, Utc::now()).await?;
        Ok(membership)
    }

    /// The tenant's members (admins only).
    pub async fn list_members(&self, principal: &Principal) -> Result<Vec<Member>> {
        principal.require_role(Role::Admin)?;
        self.store.list_members(principal.tenant_id).await
    }

    /// Changes a member's role. Admins manage members and viewers; only owners grant, or
    /// change the role of, owners and admins.
    pub async fn set_member_role(
        &self,
        principal: &Principal,
        user: UserId,
        role: Role,
    ) -> Result<Membership> {
        principal.require_role(Role::Admin)?;
        let current = self
            .store
            .get_membership(principal.tenant_id, user)
            .await?
            .ok_or_else(|| Error::new(Code::UserNotFound, format!("user {user} not found")))?;
        if (role >= Role::Admin || current.role >= Role::Admin) && principal.role < Role::Owner {
            return Err(Error::new(
                Code::InsufficientRole,
                "only owners change the roles of admins and owners",
            ));
        }
        let changed = self
            .store
            .set_member_role(principal.tenant_id, user, role)
            .await;
        self.changed();
        changed
    }

    /// Removes a member (admins; only owners remove admins and owners). Anyone may leave.
    pub async fn remove_member(&self, principal: &Principal, user: UserId) -> Result<()> {
        if principal.user_id() != Some(user) {
            principal.require_role(Role::Admin)?;
            let current = self
                .store
                .get_membership(principal.tenant_id, user)
                .await?
                .ok_or_else(|| Error::new(Code::UserNotFound, format!("user {user} not found")))?;
            if current.role >= Role::Admin && principal.role < Role::Owner {
                return Err(Error::new(
                    Code::InsufficientRole,
                    "only owners remove admins and owners",
                ));
            }
        }
        let removed = self.store.remove_member(principal.tenant_id, user).await;
        self.changed();
        removed
    }

    // ----- API keys -----

    /// Creates an API key in the caller's tenant (admins). The secret is in the result only.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        req: CreateApiKey,
    ) -> Result<CreatedApiKey> {
        principal.require_role(Role::Admin)?;
        let name = clean_name("name", Some(&req.name))?
            .ok_or_else(|| Error::new(Code::MissingField, "`name` is required"))?;
        if let Some(at) = req.expires_at
            && at <= Utc::now()
        {
            return Err(invalid_field("`expires_at` must be in the future"));
        }
        let generated = secrets::new_api_key();
        let key = self
            .store
            .insert_api_key(
                principal.tenant_id,
                NewApiKey {
                    id: ApiKeyId::new(),
                    name,
                    prefix: generated.prefix,
                    secret_hash: secrets::hash_token(&generated.key),
                    scope: KeyScope {
                        access: req.access,
                        collections: dedup(req.collections),
                        bots: dedup(req.bots),
                    },
                    // The local operator (CLI, `auth.mode = "none"`) is no user.
                    created_by: principal
                        .user_id()
                        .filter(|u| *u != UserId::from_uuid(uuid::Uuid::nil())),
                    expires_at: req.expires_at,
                },
            )
            .await?;
        tracing::info!(key = %key.id, tenant = %key.tenant_id, "API key created");
        Ok(CreatedApiKey {
            key,
            secret: generated.key,
        })
    }

    /// The tenant's API keys (admins).
    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        page: PageRequest,
    ) -> Result<Page<ApiKey>> {
        principal.require_role(Role::Admin)?;
        self.store.list_api_keys(principal.tenant_id, page).await
    }

    /// The email addresses of the users who created these keys (for listings: who made each
    /// key). Creators that no longer exist or have no address are left out.
    pub async fn key_creators(
        &self,
        keys: &[ApiKey],
    ) -> Result<std::collections::HashMap<UserId, String>> {
        let mut out = std::collections::HashMap::new();
        for creator in keys.iter().filter_map(|k| k.created_by) {
            if out.contains_key(&creator) {
                continue;
            }
            match self.store.get_user(creator).await {
                Ok(User {
                    email: Some(email), ..
                }) => {
                    out.insert(creator, email);
                }
                Ok(_) => {}
                Err(e) if e.code == Code::UserNotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Revokes an API key (admins).
    pub async fn revoke_api_key(&self, principal: &Principal, id: ApiKeyId) -> Result<ApiKey> {
        principal.require_role(Role::Admin)?;
        let key = self
            .store
            .revoke_api_key(principal.tenant_id, id, Utc::now())
            .await?;
        tracing::info!(key = %key.id, tenant = %key.tenant_id, "API key revoked");
        Ok(key)
    }

    /// Authenticates an API key string.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal> {
        let invalid = || Error::new(Code::InvalidApiKey, "the API key is not valid");
        let prefix = secrets::api_key_prefix(key).ok_or_else(invalid)?;
        let Some(ApiKeyCredentials {
            key: record,
            secret_hash,
        }) = self.store.find_api_key_by_prefix(prefix).await?
        else {
            return Err(invalid());
        };
        if !secrets::hashes_equal(&secrets::hash_token(key), &secret_hash) {
            return Err(invalid());
        }
        let now = Utc::now();
        if record.revoked_at.is_some() {
            return Err(Error::new(Code::ApiKeyRevoked, "the API key was revoked"));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::new(Code::ApiKeyExpired, "the API key has expired"));
        }
        // The use is recorded at most once per interval: a key the record shows used within it
        // (every request of a busy client) costs no write.
        let interval = chrono::Duration::from_std(self.settings.api_key_last_used_interval)
            .unwrap_or(chrono::Duration::MAX);
        let recent = record
            .last_used_at
            .is_some_and(|at| now.signed_duration_since(at) < interval);
        if !recent
            && let Err(e) = self
                .store
                .touch_api_key(
                    record.tenant_id,
                    record.id,
                    now,
                    self.settings.api_key_last_used_interval,
                )
                .await
        {
            tracing::warn!(key = %record.id, error = %e.chain(), "could not record API key use");
        }
        Ok(Principal {
            tenant_id: record.tenant_id,
            actor: Actor::ApiKey { id: record.id },
            role: match record.scope.access {
                KeyAccess::Read => Role::Viewer,
                KeyAccess::ReadWrite => Role::Member,
            },
            key_scope: Some(record.scope),
        })
    }

    // ----- bearer credentials -----

    /// Authenticates an `Authorization: Bearer` credential: an API key (`dk_…`), one of our
    /// access tokens, or a token of a configured OIDC provider (picked by its `iss`, then
    /// fully verified against that provider only).
    pub async fn authenticate_bearer(&self, credential: &str) -> Result<Principal> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(Error::new(
                Code::Unauthenticated,
                "credentials are required",
            ));
        }
        if secrets::is_api_key(credential) {
            return self.authenticate_api_key(credential).await;
        }
        if !self.oidc.is_empty() {
            #[derive(serde::Deserialize)]
            struct Iss {
                iss: Option<String>,
            }
            // The issuer only picks the verifier; nothing is trusted before verification.
            let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(credential)
                .ok()
                .and_then(|c| c.iss);
            if let Some(iss) = iss
                && let Some(provider) = self.oidc.iter().find(|p| p.issuer() == iss)
            {
                return self.authenticate_external(provider, credential).await;
            }
        }
        let claims = self.jwt.verify(credential)?;
        claims.role()?;
        let role = self.standing(claims.sub, claims.tid, claims.sid).await?;
        Ok(Principal {
            tenant_id: claims.tid,
            role,
            actor: Actor::User {
                id: claims.sub,
                session: Some(claims.sid),
            },
            key_scope: None,
        })
    }

    async fn authenticate_external(
        &self,
        provider: &OidcProvider,
        token: &str,
    ) -> Result<Principal> {
        let external = provider.verify(token).await?;
        let tenant_id = match &external.tenant {
            TenantRef::Fixed(id) => self.store.get_tenant(*id).await?.id,
            TenantRef::External(value) => {
                let create_as = provider.creates_tenants().then_some(value.as_str());
                self.store
                    .resolve_tenant_alias(provider.issuer(), value, create_as)
                    .await?
                    .ok_or_else(|| {
                        Error::new(
                            Code::TenantNotFound,
                            "your organisation has no workspace on this server",
                        )
                    })?
            }
        };
        let user = self.store.upsert_external_user(&external.identity).await?;
        if user.disabled {
            return Err(Error::new(
                Code::AccountDisabled,
                "this account is disabled",
            ));
        }
        let membership = self
            .store
            .upsert_member(
                tenant_id,
                user.id,
                external.role.unwrap_or(provider.default_role()),
                external.role.is_some(),
            )
            .await?;
        Ok(Principal {
            tenant_id,
            actor: Actor::User {
                id: user.id,
                session: None,
            },
            role: membership.role,
            key_scope: None,
        })
    }

    // ----- operators and first run -----

    /// Creates an account as an operator (`docent users create [--admin]`): the address counts
    /// as verified.
    pub async fn create_user(&self, req: CreateUser) -> Result<(User, Membership)> {
        let email = normalize_email(&req.email)?;
        let display_name = clean_name("display_name", req.display_name.as_deref())?;
        let password_hash = match req.password.as_deref() {
            Some(p) => {
                self.passwords.check_rules(p)?;
                Some(self.passwords.hash(p).await?)
            }
            None => None,
        };
        let tenant = match req.tenant {
            AccountTenant::New { name } => AccountTenant::New {
                name: clean_name("tenant_name", Some(&name))?
                    .unwrap_or_else(|| default_tenant_name(display_name.as_deref(), &email)),
            },
            existing @ AccountTenant::Existing { .. } => existing,
        };
        self.store
            .create_account(NewAccount {
                email,
                display_name,
                password_hash,
                email_verified: true,
                tenant,
            })
            .await
    }

    /// While no user exists: a fresh one-time setup token (older ones are discarded) for the
    /// first run to print. `None` once users exist.
    pub async fn ensure_setup_token(&self) -> Result<Option<String>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        self.store
            .delete_one_time_tokens(TokenPurpose::Setup, None)
            .await?;
        let (token, _) = self
            .issue_one_time(TokenPurpose::Setup, self.settings.setup_token_ttl, |_| {})
            .await?;
        Ok(Some(token))
    }

    /// The link the first run prints.
    pub fn setup_link(&self, token: &str) -> String {
        self.link("/setup", token)
    }

    /// Completes first-run setup: creates the first user as owner of a new tenant and signs
    /// them in. `setup_completed` once any user exists.
    pub async fn complete_setup(&self, token: &str, account: Signup) -> Result<SignedIn> {
        let email = normalize_email(&account.email)?;
        self.passwords.check_rules(&account.password)?;
        if self.store.count_users().await? > 0 {
            return Err(Error::new(
                Code::SetupCompleted,
                "setup is already complete",
            ));
        }
        let hash = self.passwords.hash(&account.password).await?;
        self.store
            .consume_one_time_token(&secrets::hash_token(token), TokenPurpose::Setup, Utc::now())
            .await?;
        if self.store.count_users().await? > 0 {
            return Err(Error::new(
                Code::SetupCompleted,
                "setup is already complete",
            ));
        }
        let display_name = clean_name("display_name", account.display_name.as_deref())?;
        let tenant_name = clean_name("tenant_name", account.tenant_name.as_deref())?
            .unwrap_or_else(|| default_tenant_name(display_name.as_deref(), &email));
        // The first owner takes over the instance's default workspace when there is one (the
        // embedded server creates it, and local CLI commands work in it), so what they upload
        // through the API is what `docent search` sees; otherwise a new workspace is made.
        let tenant = match self.store.get_tenant(TenantId::DEFAULT).await {
            Ok(_) => AccountTenant::Existing {
                tenant_id: TenantId::DEFAULT,
                role: Role::Owner,
            },
            Err(e) if e.code == Code::TenantNotFound => AccountTenant::New { name: tenant_name },
            Err(e) => return Err(e),
        };
        let (user, membership) = self
            .store
            .create_account(NewAccount {
                email,
                display_name,
                password_hash: Some(hash),
                email_verified: true,
                tenant,
            })
            .await?;
        tracing::info!(user = %user.id, tenant = %membership.tenant_id, "first-run setup complete");
        self.start_session(user, membership.tenant_id, membership.role)
            .await
    }

    /// A tenant by id (for responses).
    pub async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        self.store.get_tenant(id).await
    }
}

fn dedup<T: Ord>(ids: Option<Vec<T>>) -> Option<Vec<T>> {
    ids.map(|mut v| {
        v.sort();
        v.dedup();
        v
    })
}

fn require_user(principal: &Principal) -> Result<UserId> {
    principal.user_id().ok_or_else(|| {
        Error::new(
            Code::InsufficientScope,
            "this needs a signed-in user, not an API key",
        )
    })
}

fn invite_target(record: &OneTimeToken) -> Result<(TenantId, Role)> {
    match (record.tenant_id, record.role) {
        (Some(t), Some(r)) => Ok((t, r)),
        _ => Err(Error::internal("invitation without a tenant or role")),
    }
}

fn default_tenant_name(display_name: Option<&str>, email: &str) -> String {
    let who = display_name.unwrap_or_else(|| email.split('@').next().unwrap_or(email));
    format!("{who}'s workspace")
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@.example.com",
            "ann@example..com",
            "ann@example.com-",
        ] {
            assert_eq!(
                normalize_email(bad).unwrap_err().code,
                Code::InvalidField,
                "{bad}"
            );
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn names_and_durations() {
        assert_eq!(clean_name("n", Some("  ")).unwrap(), None);
        assert_eq!(
            clean_name("n", Some(" Ann ")).unwrap().as_deref(),
            Some("Ann")
        );
        assert!(clean_name("n", Some("a\u{0}b")).is_err());
        assert!(clean_name("n", Some(&"x".repeat(101))).is_err());
        assert_eq!(
            default_tenant_name(None, "ann@example.com"),
            "ann's workspace"
        );
        assert_eq!(humanize(Duration::from_secs(3600)), "60 minutes");
        assert_eq!(humanize(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(humanize(Duration::from_secs(7 * 86_400)), "7 days");
    }
}
