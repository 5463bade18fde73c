//! [`AuthStore`] over either engine: users, memberships, sessions with rotating refresh tokens,
//! one-time tokens, API keys, external identities and tenant aliases (SQLite `0003_auth.sql`,
//! PostgreSQL `0001_init.sql`), each statement written once over the [`crate::engine`] seam.
//! One module per concern; this one only routes the trait's methods to them.
//!
//! Every statement over tenant-owned rows (memberships, sessions, API keys) filters by
//! `tenant_id`. Only lookups by a presented credential's hash or prefix are global: the
//! credential is the key, and its row names the tenant. Multi-step changes (account creation,
//! refresh rotation, token consumption, role changes) run in one write transaction; what
//! SQLite's single writer serializes is serialized on PostgreSQL by row locks (the refresh
//! token, the one-time token) or advisory locks (a tenant's memberships, external identities,
//! tenant aliases).

mod accounts;
mod api_keys;
mod identities;
mod memberships;
mod sessions;
mod tenants;
mod tokens;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docent_domain::auth::*;
use docent_domain::{
    ApiKey, ApiKeyId, Code, Error, Page, PageRequest, Result, Role, SessionId, Tenant, TenantId,
    User, UserId,
};

use crate::common::not_found;
use crate::engine::{Engine, Row, db_err, is_foreign_key_violation};
use crate::store::SqlStore;

fn role_from(row: &Row, col: &str) -> Result<Role> {
    let s: String = row.get(col)?;
    Role::parse(&s).ok_or_else(|| Error::internal(format!("corrupt role {s}")))
}

/// Maps a failed write of a row that references `tenant`: a foreign-key violation means the
/// tenant does not exist.
fn tenant_ref_err(tenant: TenantId) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        if is_foreign_key_violation(&e) {
            not_found(Code::TenantNotFound, "tenant", tenant)
        } else {
            db_err(e)
        }
    }
}

#[async_trait]
impl<E: Engine> AuthStore for SqlStore<E> {
    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        tenants::insert(self.db(), name).await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        tenants::get(self.db(), id).await
    }

    async fn count_users(&self) -> Result<u64> {
        accounts::count(self.db()).await
    }

    async fn list_all_tenants(&self) -> Result<Vec<Tenant>> {
        tenants::list_all(self.db()).await
    }

    async fn list_all_users(&self) -> Result<Vec<User>> {
        accounts::list_all(self.db()).await
    }

    async fn create_account(&self, new: NewAccount) -> Result<(User, Membership)> {
        accounts::create(self.db(), new).await
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        accounts::fetch(self.db(), id).await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserCredentials>> {
        accounts::find_by_email(self.db(), email).await
    }

    async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<()> {
        accounts::set_password_hash(self.db(), user, hash).await
    }

    async fn mark_email_verified(&self, user: UserId, at: DateTime<Utc>) -> Result<()> {
        accounts::mark_email_verified(self.db(), user, at).await
    }

    async fn set_user_disabled(&self, user: UserId, disabled: bool) -> Result<()> {
        accounts::set_disabled(self.db(), user, disabled).await
    }

    async fn reset_unverified_account(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<AccountReset> {
        accounts::reset_unverified(self.db(), user, at).await
    }

    async fn add_member(&self, tenant: TenantId, user: UserId, role: Role) -> Result<Membership> {
        memberships::insert(self.db(), tenant, user, role).await
    }

    async fn upsert_member(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        update_role: bool,
    ) -> Result<Membership> {
        memberships::upsert(self.db(), tenant, user, role, update_role).await
    }

    async fn get_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>> {
        memberships::get(self.db(), tenant, user).await
    }

    async fn list_user_tenants(&self, user: UserId) -> Result<Vec<TenantMembership>> {
        memberships::list_user_tenants(self.db(), user).await
    }

    async fn list_members(&self, tenant: TenantId) -> Result<Vec<Member>> {
        memberships::list_members(self.db(), tenant).await
    }

    async fn set_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
    ) -> Result<Membership> {
        memberships::set_role(self.db(), tenant, user, role).await
    }

    async fn remove_member(&self, tenant: TenantId, user: UserId) -> Result<()> {
        memberships::remove(self.db(), tenant, user).await
    }

    async fn create_session(&self, new: NewSession, token: NewRefreshToken) -> Result<Session> {
        sessions::create(self.db(), new, token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome> {
        sessions::rotate(self.db(), presented_hash, next, now).await
    }

    async fn revoke_session_by_token(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        sessions::revoke_by_token(self.db(), token_hash, at).await
    }

    async fn revoke_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sessions::revoke(self.db(), tenant, id, at).await
    }

    async fn revoke_user_sessions(&self, user: UserId, at: DateTime<Utc>) -> Result<u64> {
        sessions::revoke_for_user(self.db(), user, at, "signed_out_everywhere").await
    }

    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>> {
        sessions::get(self.db(), tenant, id).await
    }

    async fn insert_one_time_token(&self, token: OneTimeToken) -> Result<()> {
        tokens::insert(self.db(), token).await
    }

    async fn consume_one_time_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<OneTimeToken> {
        tokens::consume(self.db(), token_hash, purpose, now).await
    }

    async fn peek_one_time_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<OneTimeToken> {
        tokens::peek(self.db(), token_hash, purpose, now).await
    }

    async fn delete_one_time_tokens(
        &self,
        purpose: TokenPurpose,
        user: Option<UserId>,
    ) -> Result<u64> {
        tokens::delete_unused(self.db(), purpose, user).await
    }

    async fn insert_api_key(&self, tenant: TenantId, new: NewApiKey) -> Result<ApiKey> {
        api_keys::insert(self.db(), tenant, new).await
    }

    async fn get_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey> {
        api_keys::get(self.db(), tenant, id).await
    }

    async fn list_api_keys(&self, tenant: TenantId, page: PageRequest) -> Result<Page<ApiKey>> {
        api_keys::list(self.db(), tenant, page).await
    }

    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<ApiKey> {
        api_keys::revoke(self.db(), tenant, id, at).await
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyCredentials>> {
        api_keys::find_by_prefix(self.db(), prefix).await
    }

    async fn touch_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        min_interval: Duration,
    ) -> Result<()> {
        api_keys::touch(self.db(), tenant, id, at, min_interval).await
    }

    async fn upsert_external_user(&self, identity: &ExternalIdentity) -> Result<User> {
        identities::upsert_user(self.db(), identity).await
    }

    async fn resolve_tenant_alias(
        &self,
        issuer: &str,
        external_id: &str,
        create_as: Option<&str>,
    ) -> Result<Option<TenantId>> {
        identities::resolve_tenant_alias(self.db(), issuer, external_id, create_as).await
    }

    async fn set_tenant_alias(
        &self,
        issuer: &str,
        external_id: &str,
        tenant: TenantId,
    ) -> Result<()> {
        identities::set_tenant_alias(self.db(), issuer, external_id, tenant).await
    }

    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage> {
        tenants::usage(self.db(), tenant).await
    }
}
