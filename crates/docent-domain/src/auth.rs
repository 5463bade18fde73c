//! Accounts and access: users, their memberships in tenants (with a [`Role`]), login sessions
//! with rotating refresh tokens, one-time tokens (email verification, password reset, invites,
//! first-run setup), API keys with scopes, links to external identities, and the
//! [`Principal`] every authenticated request acts as, and the [`Scope`] services read and write
//! in (its tenant, and an API key's collection limit).
//!
//! [`AuthStore`] is the storage port. Users are global (one person, one row, several tenants);
//! everything owned by a tenant — memberships, sessions, API keys, invites — is read and written
//! with the tenant given explicitly. Lookups by a presented credential (the hash of a refresh
//! token, a one-time token, an API key prefix) are the only exceptions: the credential is the
//! key, and its row names the tenant.
//!
//! Secrets never appear here in clear: tokens and keys are stored as SHA-256 hashes, passwords
//! as argon2id PHC strings.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Code, Error, Result};
use crate::ids::{CollectionId, DocumentId, IdParseError, TenantId};
use crate::model::{Page, PageRequest, Tenant};

uuid_id!(
    /// A user account (global: a user may belong to several tenants).
    UserId
);
uuid_id!(
    /// A login session: one family of rotating refresh tokens, in one tenant.
    SessionId
);
uuid_id!(
    /// An API key.
    ApiKeyId
);
uuid_id!(
    /// A bot (used by API key scopes).
    BotId
);

/// A member's role in a tenant, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Reads and writes content (collections, documents, bots).
    Member,
    /// Also manages members, invites and API keys.
    Admin,
    /// Also manages owners and the tenant itself.
    Owner,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Whether this role may change content.
    pub fn can_write(self) -> bool {
        self >= Role::Member
    }

    /// Whether this role may manage members, invites and keys.
    pub fn can_administer(self) -> bool {
        self >= Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user account. Emails are stored trimmed and lowercased, and are unique.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalized email address (none only for external accounts whose provider sends none).
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// When the user proved they read mail at `email` (or an operator vouched for them).
    pub email_verified_at: Option<DateTime<Utc>>,
    /// A disabled user cannot sign in or refresh.
    pub disabled: bool,
    /// Whether a password is set (external-only accounts have none).
    pub has_password: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A user with the stored password hash, for sign-in only.
#[derive(Clone)]
pub struct UserCredentials {
    /// The account.
    pub user: User,
    /// argon2id PHC string, if a password is set.
    pub password_hash: Option<String>,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// A user's role in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// Their role there.
    pub role: Role,
    /// When they joined.
    pub created_at: DateTime<Utc>,
}

/// One of a user's tenants, with their role in it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantMembership {
    /// The tenant.
    pub tenant: Tenant,
    /// The user's role in it.
    pub role: Role,
}

/// A member of a tenant, as listed to its admins.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The account.
    pub user: User,
    /// Role in the tenant.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// Where a new account's membership goes.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountTenant {
    /// Create a new tenant with this name; the user becomes its owner.
    New {
        /// Tenant name.
        name: String,
    },
    /// Join an existing tenant with a role (an accepted invite, or an operator's choice).
    Existing {
        /// The tenant.
        tenant_id: TenantId,
        /// The role.
        role: Role,
    },
}

/// A new account: the user, its first membership, and whether the email is already verified.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// argon2id PHC string (none for external-only accounts).
    pub password_hash: Option<String>,
    /// Mark the email verified now.
    pub email_verified: bool,
    /// The first membership.
    pub tenant: AccountTenant,
}

/// A login session (one refresh-token family) in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Id (the `sid` claim of its access tokens).
    pub id: SessionId,
    /// The tenant it acts in.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// Absolute end: no refresh after this.
    pub expires_at: DateTime<Utc>,
    /// Set when signed out, or when a rotated refresh token was presented again.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new session.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// Id.
    pub id: SessionId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// User.
    pub user_id: UserId,
    /// Absolute end.
    pub expires_at: DateTime<Utc>,
}

/// A refresh token to store: only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRefreshToken {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// Expiry of this token (the session's end caps it).
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used and `next` replaces it.
    Rotated(Session),
    /// The token had already been rotated: the whole family is now revoked.
    Reused(Session),
    /// The token or its session expired.
    Expired,
    /// The session was revoked (signed out, or after reuse).
    Revoked,
    /// No such token.
    Unknown,
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Proves the user reads mail at their address.
    VerifyEmail,
    /// Lets the user set a new password.
    ResetPassword,
    /// Invites an email address into a tenant with a role.
    Invite,
    /// First-run setup: creates the first admin while no user exists.
    Setup,
}

impl TokenPurpose {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::Invite => "invite",
            TokenPurpose::Setup => "setup",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<TokenPurpose> {
        match s {
            "verify_email" => Some(TokenPurpose::VerifyEmail),
            "reset_password" => Some(TokenPurpose::ResetPassword),
            "invite" => Some(TokenPurpose::Invite),
            "setup" => Some(TokenPurpose::Setup),
            _ => None,
        }
    }
}

/// A single-use, expiring token (stored hashed).
#[derive(Debug, Clone, PartialEq)]
pub struct OneTimeToken {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// Purpose; a token only works for its own.
    pub purpose: TokenPurpose,
    /// The user it acts on (verification, reset).
    pub user_id: Option<UserId>,
    /// The tenant it admits to (invites).
    pub tenant_id: Option<TenantId>,
    /// The invited address (invites).
    pub email: Option<String>,
    /// The role granted (invites).
    pub role: Option<Role>,
    /// Who issued it (invites).
    pub created_by: Option<UserId>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Read or read-write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAccess {
    /// Reads only: search, ask, list, download.
    Read,
    /// Reads and writes content.
    ReadWrite,
}

impl KeyAccess {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAccess::Read => "read",
            KeyAccess::ReadWrite => "read_write",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<KeyAccess> {
        match s {
            "read" => Some(KeyAccess::Read),
            "read_write" => Some(KeyAccess::ReadWrite),
            _ => None,
        }
    }
}

/// What an API key may touch. `None` lists mean every collection / bot of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    /// Read or read-write.
    pub access: KeyAccess,
    /// Limited to these collections, or tenant-wide.
    pub collections: Option<Vec<CollectionId>>,
    /// Limited to these bots, or tenant-wide.
    pub bots: Option<Vec<BotId>>,
}

impl KeyScope {
    /// Tenant-wide with the given access.
    pub fn tenant_wide(access: KeyAccess) -> Self {
        Self {
            access,
            collections: None,
            bots: None,
        }
    }
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Label.
    pub name: String,
    /// The public prefix (`dk_<prefix>_…`), to recognise a key.
    pub prefix: String,
    /// Scope.
    pub scope: KeyScope,
    /// Creator.
    pub created_by: Option<UserId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An API key row found by its prefix, with its hash, for authentication only.
#[derive(Debug, Clone)]
pub struct ApiKeyCredentials {
    /// The key.
    pub key: ApiKey,
    /// SHA-256 (hex) of the whole key string.
    pub secret_hash: String,
}

/// A new API key.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Label.
    pub name: String,
    /// Public prefix.
    pub prefix: String,
    /// SHA-256 (hex) of the whole key string.
    pub secret_hash: String,
    /// Scope.
    pub scope: KeyScope,
    /// Creator.
    pub created_by: Option<UserId>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An identity asserted by an external provider (OIDC).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's subject.
    pub subject: String,
    /// Email claim, normalized.
    pub email: Option<String>,
    /// Whether the provider says the email is verified.
    pub email_verified: bool,
    /// Display name claim.
    pub display_name: Option<String>,
}

/// What [`AuthStore::reset_unverified_account`] undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountReset {
    /// Sessions revoked (the account's, and those of the members removed).
    pub sessions_revoked: u64,
    /// API keys revoked.
    pub keys_revoked: u64,
    /// Other members removed from tenants the account owns.
    pub members_removed: u64,
    /// Pending invitations deleted.
    pub invites_deleted: u64,
}

/// A tenant's usage, for quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Documents stored.
    pub documents: u64,
    /// Bytes stored: originals plus their user metadata (as JSON).
    pub stored_bytes: u64,
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (built-in account or external identity).
    User {
        /// The account.
        id: UserId,
        /// The login session, for built-in sign-ins.
        session: Option<SessionId>,
    },
    /// An API key.
    ApiKey {
        /// The key.
        id: ApiKeyId,
    },
}

/// An authenticated caller: the tenant they act in, who they are, and what they may do.
/// Services check it; stores are only ever given its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every call acts in.
    pub tenant_id: TenantId,
    /// Who.
    pub actor: Actor,
    /// Role (for API keys: `member` for read-write keys, `viewer` for read-only ones).
    pub role: Role,
    /// Limits of an API key; `None` for users (their role decides).
    pub key_scope: Option<KeyScope>,
}

impl Principal {
    /// The user behind the call, if it is one.
    pub fn user_id(&self) -> Option<UserId> {
        match &self.actor {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { .. } => None,
        }
    }

    /// Whether the caller may change content; `insufficient_scope` for read-only keys,
    /// `insufficient_role` for viewers.
    pub fn require_write(&self) -> Result<()> {
        if let Some(scope) = &self.key_scope
            && scope.access == KeyAccess::Read
        {
            return Err(Error::new(
                Code::InsufficientScope,
                "this API key is read-only",
            ));
        }
        if !self.role.can_write() {
            return Err(Error::new(
                Code::InsufficientRole,
                format!("the {} role cannot change content", self.role),
            ));
        }
        Ok(())
    }

    /// Whether the caller has at least `role`; API keys never administer.
    pub fn require_role(&self, role: Role) -> Result<()> {
        if matches!(self.actor, Actor::ApiKey { .. }) && role.can_administer() {
            return Err(Error::new(
                Code::InsufficientScope,
                "API keys cannot manage members, invites or keys; sign in as an admin",
            ));
        }
        if self.role < role {
            return Err(Error::new(
                Code::InsufficientRole,
                format!("this needs the {role} role; you are {}", self.role),
            ));
        }
        Ok(())
    }

    /// Whether the caller may see this collection. Callers answer "not found" when not, so a
    /// key limited to some collections cannot learn that others exist.
    pub fn can_access_collection(&self, id: CollectionId) -> bool {
        match self.key_scope.as_ref().and_then(|s| s.collections.as_ref()) {
            Some(allowed) => allowed.contains(&id),
            None => true,
        }
    }

    /// Whether the caller may use this bot (same rule as collections).
    pub fn can_access_bot(&self, id: BotId) -> bool {
        match self.key_scope.as_ref().and_then(|s| s.bots.as_ref()) {
            Some(allowed) => allowed.contains(&id),
            None => true,
        }
    }

    /// The collections the caller is limited to, if any (for filtering lists and searches).
    pub fn collection_limit(&self) -> Option<&[CollectionId]> {
        self.key_scope
            .as_ref()
            .and_then(|s| s.collections.as_deref())
    }

    /// Where the caller's service calls may look.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            tenant: self.tenant_id,
            collections: self.collection_limit(),
        }
    }
}

/// Where a service call reads and writes: a tenant and, for an API key limited to some
/// collections, those collections. The services of `docent-core` take `impl Into<Scope>`: a
/// bare [`TenantId`] is the whole tenant (the CLI and workers act as the operator); a
/// `&Principal` carries its key's limit, so the limit holds whoever calls the service.
/// Anything outside the scope is "not found", exactly like another tenant's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The tenant.
    pub tenant: TenantId,
    /// Only these collections; `None`: every collection of the tenant.
    pub collections: Option<&'a [CollectionId]>,
}

impl Scope<'_> {
    /// Whether a collection is inside the scope.
    pub fn allows(&self, collection: CollectionId) -> bool {
        self.collections.is_none_or(|c| c.contains(&collection))
    }

    /// `collection_not_found` unless the collection is inside the scope.
    pub fn check_collection(&self, collection: CollectionId) -> Result<()> {
        if self.allows(collection) {
            Ok(())
        } else {
            Err(Error::new(
                Code::CollectionNotFound,
                format!("collection {collection} not found"),
            ))
        }
    }

    /// `document_not_found` unless the document's collection is inside the scope.
    pub fn check_document(&self, document: DocumentId, collection: CollectionId) -> Result<()> {
        if self.allows(collection) {
            Ok(())
        } else {
            Err(Error::new(
                Code::DocumentNotFound,
                format!("document {document} not found"),
            ))
        }
    }

    /// `insufficient_scope` for a scope limited to some collections: it cannot create more.
    pub fn require_tenant_wide(&self) -> Result<()> {
        match self.collections {
            Some(_) => Err(Error::new(
                Code::InsufficientScope,
                "this API key is limited to some collections",
            )),
            None => Ok(()),
        }
    }
}

impl From<TenantId> for Scope<'static> {
    fn from(tenant: TenantId) -> Self {
        Scope {
            tenant,
            collections: None,
        }
    }
}

impl<'a> From<&'a Principal> for Scope<'a> {
    fn from(p: &'a Principal) -> Self {
        p.scope()
    }
}

/// Storage of accounts, memberships, sessions, one-time tokens, API keys and external
/// identities. See the module docs for the tenant rule.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    // Tenants and users.

    /// Creates a tenant.
    async fn create_tenant(&self, name: &str) -> Result<Tenant>;
    /// A tenant, or `tenant_not_found`.
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant>;
    /// How many users exist (first-run setup is open while there are none).
    async fn count_users(&self) -> Result<u64>;
    /// Every tenant, oldest first. Operator-wide (`docent tenants list`); never reachable
    /// through the API, whose calls all act in one tenant.
    async fn list_all_tenants(&self) -> Result<Vec<Tenant>>;
    /// Every user, oldest first. Operator-wide (`docent users list`), like
    /// [`AuthStore::list_all_tenants`].
    async fn list_all_users(&self) -> Result<Vec<User>>;
    /// Creates a user and its first membership (and tenant) in one transaction;
    /// `email_taken` if the email is in use.
    async fn create_account(&self, new: NewAccount) -> Result<(User, Membership)>;
    /// A user, or `user_not_found`.
    async fn get_user(&self, id: UserId) -> Result<User>;
    /// A user and password hash by (normalized) email.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserCredentials>>;
    /// Replaces the password hash.
    async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<()>;
    /// Marks the email verified (keeps an earlier time).
    async fn mark_email_verified(&self, user: UserId, at: DateTime<Utc>) -> Result<()>;
    /// Enables or disables an account. Disabling also revokes the account's sessions and the
    /// API keys it created, in every tenant (it may no longer create keys anywhere).
    async fn set_user_disabled(&self, user: UserId, disabled: bool) -> Result<()>;
    /// Starts a never-verified account clean after its owner proved the address (a completed
    /// password reset), in one transaction: whoever held the account before may have been
    /// someone else. Revokes every session of the account; deletes the invitations it issued;
    /// revokes the API keys it created; and in each tenant it owns, also revokes every other
    /// API key, removes every other member (revoking their sessions there) and deletes every
    /// pending invitation. Documents stay.
    async fn reset_unverified_account(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<AccountReset>;

    // Memberships (tenant-owned).

    /// Adds a user to a tenant; `already_member` if they are one.
    async fn add_member(&self, tenant: TenantId, user: UserId, role: Role) -> Result<Membership>;
    /// Adds the user with `role`, or — when `update_role` — sets the role of an existing
    /// membership; returns the membership as it now is. A change below admin revokes the API
    /// keys the user created in the tenant, as [`AuthStore::set_member_role`] does.
    async fn upsert_member(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        update_role: bool,
    ) -> Result<Membership>;
    /// The user's membership in the tenant.
    async fn get_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>>;
    /// The user's own tenants, oldest membership first.
    async fn list_user_tenants(&self, user: UserId) -> Result<Vec<TenantMembership>>;
    /// The tenant's members, oldest first.
    async fn list_members(&self, tenant: TenantId) -> Result<Vec<Member>>;
    /// Changes a member's role; `last_owner` if it would leave the tenant without an owner,
    /// `user_not_found` if they are not a member. A role below admin (who may not create API
    /// keys) revokes the live API keys the user created in the tenant, in the same transaction.
    async fn set_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
    ) -> Result<Membership>;
    /// Removes a member and revokes their sessions and the API keys they created in the
    /// tenant; `last_owner` as above.
    async fn remove_member(&self, tenant: TenantId, user: UserId) -> Result<()>;

    // Sessions and refresh tokens.

    /// Starts a session with its first refresh token.
    async fn create_session(&self, new: NewSession, token: NewRefreshToken) -> Result<Session>;
    /// Presents a refresh token (by hash). If current, marks it used and stores `next` in the
    /// same family, atomically; if already used, revokes the family. See [`RefreshOutcome`].
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome>;
    /// Revokes the session a refresh token belongs to; `false` if unknown.
    async fn revoke_session_by_token(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Revokes one session of the tenant.
    async fn revoke_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Revokes every session of a user (password reset, "sign out everywhere"); returns how many.
    async fn revoke_user_sessions(&self, user: UserId, at: DateTime<Utc>) -> Result<u64>;
    /// A session of the tenant, or `None`.
    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>>;

    // One-time tokens.

    /// Stores a one-time token.
    async fn insert_one_time_token(&self, token: OneTimeToken) -> Result<()>;
    /// Uses a token up, atomically: `token_invalid` if unknown, of another purpose or already
    /// used; `token_expired` if expired (left unused).
    async fn consume_one_time_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<OneTimeToken>;
    /// The token's record without using it up; the same errors as
    /// [`AuthStore::consume_one_time_token`].
    async fn peek_one_time_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<OneTimeToken>;
    /// Deletes unused tokens of a purpose (for one user, or all); returns how many.
    async fn delete_one_time_tokens(
        &self,
        purpose: TokenPurpose,
        user: Option<UserId>,
    ) -> Result<u64>;

    // API keys (tenant-owned).

    /// Stores a new key.
    async fn insert_api_key(&self, tenant: TenantId, new: NewApiKey) -> Result<ApiKey>;
    /// A key, or `api_key_not_found`.
    async fn get_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey>;
    /// Keys, newest first (revoked ones included).
    async fn list_api_keys(&self, tenant: TenantId, page: PageRequest) -> Result<Page<ApiKey>>;
    /// Revokes a key (idempotent); returns it.
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<ApiKey>;
    /// The key with this public prefix, with its hash (credential lookup).
    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyCredentials>>;
    /// Records a use unless one was recorded less than `min_interval` before `at`.
    async fn touch_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        min_interval: std::time::Duration,
    ) -> Result<()>;

    // External identities.

    /// The user linked to `(issuer, subject)`, creating (or linking by verified email) on first
    /// sight, in one transaction. An unverified email owned by another account is `email_taken`.
    async fn upsert_external_user(&self, identity: &ExternalIdentity) -> Result<User>;
    /// The tenant an external tenant id (from `issuer`) maps to; with `create_as`, creates a
    /// tenant of that name on first sight.
    async fn resolve_tenant_alias(
        &self,
        issuer: &str,
        external_id: &str,
        create_as: Option<&str>,
    ) -> Result<Option<TenantId>>;

    /// Maps an external tenant id (from `issuer`) to an existing tenant (operators).
    async fn set_tenant_alias(
        &self,
        issuer: &str,
        external_id: &str,
        tenant: TenantId,
    ) -> Result<()>;

    // Quotas.

    /// Documents and bytes the tenant stores.
    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_principal(role: Role) -> Principal {
        Principal {
            tenant_id: TenantId::new(),
            actor: Actor::User {
                id: UserId::new(),
                session: None,
            },
            role,
            key_scope: None,
        }
    }

    #[test]
    fn roles_order_and_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        assert!(Role::Member > Role::Viewer);
        assert!(!Role::Viewer.can_write() && Role::Member.can_write());
        assert!(!Role::Member.can_administer() && Role::Admin.can_administer());
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn principals_check_role_and_scope() {
        assert_eq!(
            user_principal(Role::Viewer)
                .require_write()
                .unwrap_err()
                .code,
            Code::InsufficientRole
        );
        user_principal(Role::Member).require_write().unwrap();
        assert_eq!(
            user_principal(Role::Member)
                .require_role(Role::Admin)
                .unwrap_err()
                .code,
            Code::InsufficientRole
        );
        user_principal(Role::Owner)
            .require_role(Role::Admin)
            .unwrap();

        let allowed = CollectionId::new();
        let key = Principal {
            tenant_id: TenantId::new(),
            actor: Actor::ApiKey {
                id: ApiKeyId::new(),
            },
            role: Role::Viewer,
            key_scope: Some(KeyScope {
                access: KeyAccess::Read,
                collections: Some(vec![allowed]),
                bots: Some(vec![]),
            }),
        };
        assert_eq!(
            key.require_write().unwrap_err().code,
            Code::InsufficientScope
        );
        assert_eq!(
            key.require_role(Role::Admin).unwrap_err().code,
            Code::InsufficientScope
        );
        assert!(key.can_access_collection(allowed));
        assert!(!key.can_access_collection(CollectionId::new()));
        assert!(!key.can_access_bot(BotId::new()));
        assert!(user_principal(Role::Viewer).can_access_collection(CollectionId::new()));

        let scope = key.scope();
        assert_eq!(scope.tenant, key.tenant_id);
        scope.check_collection(allowed).unwrap();
        let (other, doc) = (CollectionId::new(), DocumentId::new());
        assert_eq!(
            scope.check_collection(other).unwrap_err().code,
            Code::CollectionNotFound
        );
        assert_eq!(
            scope.check_document(doc, other).unwrap_err().code,
            Code::DocumentNotFound
        );
        assert_eq!(
            scope.require_tenant_wide().unwrap_err().code,
            Code::InsufficientScope
        );
        let empty = Scope {
            tenant: key.tenant_id,
            collections: Some(&[]),
        };
        assert!(!empty.allows(allowed), "an empty limit allows nothing");
        let whole = Scope::from(TenantId::new());
        assert!(whole.allows(other) && whole.require_tenant_wide().is_ok());
        assert_eq!(Scope::from(&user_principal(Role::Viewer)).collections, None);
        for p in [
            TokenPurpose::VerifyEmail,
            TokenPurpose::ResetPassword,
            TokenPurpose::Invite,
            TokenPurpose::Setup,
        ] {
            assert_eq!(TokenPurpose::parse(p.as_str()), Some(p));
        }
        for a in [KeyAccess::Read, KeyAccess::ReadWrite] {
            assert_eq!(KeyAccess::parse(a.as_str()), Some(a));
        }
    }
}
