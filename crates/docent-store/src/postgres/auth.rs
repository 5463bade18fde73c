//! [`AuthStore`] on PostgreSQL: users, memberships, sessions with rotating refresh tokens,
//! one-time tokens, API keys, external identities and tenant aliases — the SQLite version's
//! statements over the PostgreSQL schema.
//!
//! Every statement over tenant-owned rows (memberships, sessions, API keys) filters by
//! `tenant_id`. Only lookups by a presented credential's hash or prefix are global: the
//! credential is the key, and its row names the tenant. Multi-step changes (account creation,
//! refresh rotation, token consumption, role changes) run in one transaction; what SQLite's single
//! writer serialized is serialized here by row locks (the refresh token, the one-time token, the
//! tenant row for membership changes) or advisory locks (external identities, tenant aliases).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docent_domain::auth::*;
use docent_domain::{
    ApiKey, ApiKeyId, Code, CollectionId, Error, Page, PageRequest, Result, Role, SessionId,
    Tenant, TenantId, User, UserId,
};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::PgStore;
use super::util::*;

const USER_COLS: &str = "u.id, u.email, u.display_name, u.password_hash, u.email_verified_at, \
     u.disabled_at, u.created_at";

fn user_from(row: &PgRow) -> Result<User> {
    Ok(User {
        id: parse_id(row, "id")?,
        email: row.try_get("email").map_err(db_err)?,
        display_name: row.try_get("display_name").map_err(db_err)?,
        email_verified_at: opt_dt(row.try_get("email_verified_at").map_err(db_err)?),
        disabled: row
            .try_get::<Option<DateTime<Utc>>, _>("disabled_at")
            .map_err(db_err)?
            .is_some(),
        has_password: row
            .try_get::<Option<String>, _>("password_hash")
            .map_err(db_err)?
            .is_some(),
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
    })
}

fn role_from(row: &PgRow, col: &str) -> Result<Role> {
    let s: String = row.try_get(col).map_err(db_err)?;
    Role::parse(&s).ok_or_else(|| Error::internal(format!("corrupt role {s}")))
}

fn membership_from(row: &PgRow) -> Result<Membership> {
    Ok(Membership {
        tenant_id: parse_id(row, "tenant_id")?,
        user_id: parse_id(row, "user_id")?,
        role: role_from(row, "role")?,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
    })
}

fn session_from(row: &PgRow) -> Result<Session> {
    Ok(Session {
        id: parse_id(row, "id")?,
        tenant_id: parse_id(row, "tenant_id")?,
        user_id: parse_id(row, "user_id")?,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        expires_at: to_dt(row.try_get("expires_at").map_err(db_err)?),
        revoked_at: opt_dt(row.try_get("revoked_at").map_err(db_err)?),
    })
}

fn one_time_from(row: &PgRow) -> Result<OneTimeToken> {
    let purpose: String = row.try_get("purpose").map_err(db_err)?;
    let role: Option<String> = row.try_get("role").map_err(db_err)?;
    Ok(OneTimeToken {
        token_hash: row.try_get("token_hash").map_err(db_err)?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| Error::internal(format!("corrupt token purpose {purpose}")))?,
        user_id: parse_opt_id(row, "user_id")?,
        tenant_id: parse_opt_id(row, "tenant_id")?,
        email: row.try_get("email").map_err(db_err)?,
        role: role
            .map(|r| Role::parse(&r).ok_or_else(|| Error::internal(format!("corrupt role {r}"))))
            .transpose()?,
        created_by: parse_opt_id(row, "created_by")?,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        expires_at: to_dt(row.try_get("expires_at").map_err(db_err)?),
    })
}

const API_KEY_COLS: &str = "id, tenant_id, name, prefix, secret_hash, access, collection_ids, \
     bot_ids, created_by, created_at, expires_at, revoked_at, last_used_at";

fn id_list<T: std::str::FromStr>(row: &PgRow, col: &str) -> Result<Option<Vec<T>>> {
    let raw: Option<Value> = row.try_get(col).map_err(db_err)?;
    raw.map(|s| {
        let ids: Vec<String> = serde_json::from_value(s)
            .map_err(|e| Error::internal(format!("corrupt {col}: {e}")))?;
        ids.iter()
            .map(|i| {
                i.parse()
                    .map_err(|_| Error::internal(format!("corrupt id in {col}: {i}")))
            })
            .collect()
    })
    .transpose()
}

fn id_list_json<T: ToString>(ids: &Option<Vec<T>>) -> Option<Value> {
    ids.as_ref()
        .map(|v| Value::Array(v.iter().map(|i| Value::String(i.to_string())).collect()))
}

fn api_key_from(row: &PgRow) -> Result<ApiKey> {
    let access: String = row.try_get("access").map_err(db_err)?;
    Ok(ApiKey {
        id: parse_id(row, "id")?,
        tenant_id: parse_id(row, "tenant_id")?,
        name: row.try_get("name").map_err(db_err)?,
        prefix: row.try_get("prefix").map_err(db_err)?,
        scope: KeyScope {
            access: KeyAccess::parse(&access)
                .ok_or_else(|| Error::internal(format!("corrupt key access {access}")))?,
            collections: id_list::<CollectionId>(row, "collection_ids")?,
            bots: id_list::<BotId>(row, "bot_ids")?,
        },
        created_by: parse_opt_id(row, "created_by")?,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
        expires_at: opt_dt(row.try_get("expires_at").map_err(db_err)?),
        revoked_at: opt_dt(row.try_get("revoked_at").map_err(db_err)?),
        last_used_at: opt_dt(row.try_get("last_used_at").map_err(db_err)?),
    })
}

fn tenant_from(row: &PgRow) -> Result<Tenant> {
    Ok(Tenant {
        id: parse_id(row, "id")?,
        name: row.try_get("name").map_err(db_err)?,
        created_at: to_dt(row.try_get("created_at").map_err(db_err)?),
    })
}

fn user_not_found(id: impl std::fmt::Display) -> Error {
    not_found(Code::UserNotFound, "user", id)
}

fn email_taken() -> Error {
    Error::new(
        Code::EmailTaken,
        "an account with this email already exists",
    )
}

/// Revokes the live API keys `user` created, in `tenant` or (`None`) everywhere: the user lost
/// the right to create them (demoted below admin, removed, disabled). Returns how many.
async fn revoke_keys_created_by(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE created_by = $2 AND revoked_at IS NULL \
         AND ($3::text IS NULL OR tenant_id = $3)",
    )
    .bind(at)
    .bind(user.to_string())
    .bind(tenant.map(|t| t.to_string()))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected())
}

async fn insert_tenant(conn: &mut PgConnection, name: &str) -> Result<Tenant> {
    let id = TenantId::new();
    let now = now_ms();
    sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(id.to_string())
        .bind(name)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(Tenant {
        id,
        name: name.to_owned(),
        created_at: to_dt(now),
    })
}

async fn fetch_user(conn: &mut PgConnection, id: UserId) -> Result<User> {
    let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| user_not_found(id))?;
    user_from(&row)
}

async fn fetch_membership(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Membership>> {
    let row = sqlx::query(
        "SELECT tenant_id, user_id, role, created_at FROM memberships \
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant.to_string())
    .bind(user.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(membership_from).transpose()
}

async fn insert_membership(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Membership> {
    let now = now_ms();
    let res = sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant.to_string())
    .bind(user.to_string())
    .bind(role.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(Membership {
            tenant_id: tenant,
            user_id: user,
            role,
            created_at: to_dt(now),
        }),
        Err(e) if is_unique_violation(&e) => Err(Error::new(
            Code::AlreadyMember,
            "the user is already a member of this workspace",
        )),
        Err(e) if is_foreign_key_violation(&e) => {
            Err(not_found(Code::TenantNotFound, "tenant", tenant))
        }
        Err(e) => Err(db_err(e)),
    }
}

/// Refuses a change that would leave `tenant` without an owner: `remaining_owners` is how many
/// owners there would be.
async fn ensure_an_owner_stays(
    conn: &mut PgConnection,
    tenant: TenantId,
    leaving: UserId,
) -> Result<()> {
    let others: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner' AND user_id != $2",
    )
    .bind(tenant.to_string())
    .bind(leaving.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if others == 0 {
        return Err(Error::new(
            Code::LastOwner,
            "a workspace needs at least one owner; make someone else owner first",
        ));
    }
    Ok(())
}

/// Serializes membership changes of one tenant (the last-owner rule reads then writes).
async fn lock_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The token if it can be used; `lock` holds its row until the transaction ends (consuming).
async fn find_one_time(
    conn: &mut PgConnection,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
    lock: bool,
) -> Result<OneTimeToken> {
    let sql = format!(
        "SELECT token_hash, purpose, user_id, tenant_id, email, role, created_by, created_at, \
         expires_at, used_at FROM one_time_tokens WHERE token_hash = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let invalid = || {
        Error::new(
            Code::TokenInvalid,
            "the link is not valid or was already used",
        )
    };
    let row = row.ok_or_else(invalid)?;
    let token = one_time_from(&row)?;
    let used: Option<DateTime<Utc>> = row.try_get("used_at").map_err(db_err)?;
    if token.purpose != purpose || used.is_some() {
        return Err(invalid());
    }
    if token.expires_at <= now {
        return Err(Error::new(
            Code::TokenExpired,
            "the link has expired; ask for a new one",
        ));
    }
    Ok(token)
}

impl PgStore {
    async fn auth_tx(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        self.pool().begin().await.map_err(db_err)
    }
}

#[async_trait]
impl AuthStore for PgStore {
    async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let mut conn = self.pool().acquire().await.map_err(db_err)?;
        insert_tenant(&mut conn, name).await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found(Code::TenantNotFound, "tenant", id))?;
        tenant_from(&row)
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await
            .map_err(db_err)?;
        Ok(n as u64)
    }

    async fn list_all_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, seq")
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
        rows.iter().map(tenant_from).collect()
    }

    async fn list_all_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users u ORDER BY u.created_at, u.seq");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
        rows.iter().map(user_from).collect()
    }

    async fn create_account(&self, new: NewAccount) -> Result<(User, Membership)> {
        let mut tx = self.auth_tx().await?;
        let (tenant, role) = match &new.tenant {
            AccountTenant::New { name } => (insert_tenant(&mut tx, name).await?.id, Role::Owner),
            AccountTenant::Existing { tenant_id, role } => (*tenant_id, *role),
        };
        let id = UserId::new();
        let now = now_ms();
        let res = sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, email_verified_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(&new.email)
        .bind(&new.display_name)
        .bind(&new.password_hash)
        .bind(new.email_verified.then_some(now))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(email_taken()),
            Err(e) => return Err(db_err(e)),
        }
        let membership = insert_membership(&mut tx, tenant, id, role).await?;
        let user = fetch_user(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((user, membership))
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        let mut conn = self.pool().acquire().await.map_err(db_err)?;
        fetch_user(&mut conn, id).await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserCredentials>> {
        let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.email = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from(&row)?,
                password_hash: row.try_get("password_hash").map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn set_password_hash(&self, user: UserId, hash: &str) -> Result<()> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now_ms())
                .bind(user.to_string())
                .execute(self.pool())
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(user_not_found(user));
        }
        Ok(())
    }

    async fn mark_email_verified(&self, user: UserId, at: DateTime<Utc>) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $2 \
             WHERE id = $3",
        )
        .bind(ms(at))
        .bind(now_ms())
        .bind(user.to_string())
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(user_not_found(user));
        }
        Ok(())
    }

    async fn set_user_disabled(&self, user: UserId, disabled: bool) -> Result<()> {
        let now = now_ms();
        let mut tx = self.auth_tx().await?;
        let done = sqlx::query(
            "UPDATE users SET disabled_at = CASE WHEN $1 THEN COALESCE(disabled_at, $2) END, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(disabled)
        .bind(now)
        .bind(now)
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(user_not_found(user));
        }
        if disabled {
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'disabled' \
                 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            revoke_keys_created_by(&mut tx, None, user, now).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn reset_unverified_account(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<AccountReset> {
        let at = ms(at);
        let uid = user.to_string();
        let mut tx = self.auth_tx().await?;
        let mut undone = AccountReset::default();
        // Tenants the account owns, except those an external provider maps (their members
        // come from the provider, not from whoever held this account).
        let owned: Vec<String> = sqlx::query_scalar(
            "SELECT m.tenant_id FROM memberships m WHERE m.user_id = $1 AND m.role = 'owner' \
             AND NOT EXISTS (SELECT 1 FROM tenant_aliases a WHERE a.tenant_id = m.tenant_id)",
        )
        .bind(&uid)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for tenant in &owned {
            undone.sessions_revoked += sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'account_reset' \
                 WHERE tenant_id = $2 AND user_id <> $3 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(tenant)
            .bind(&uid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            undone.members_removed +=
                sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id <> $2")
                    .bind(tenant)
                    .bind(&uid)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            undone.keys_revoked += sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            undone.invites_deleted += sqlx::query(
                "DELETE FROM one_time_tokens WHERE tenant_id = $1 AND purpose = 'invite' \
                 AND used_at IS NULL",
            )
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        }
        undone.keys_revoked += revoke_keys_created_by(&mut tx, None, user, at).await?;
        undone.invites_deleted += sqlx::query(
            "DELETE FROM one_time_tokens WHERE created_by = $1 AND purpose = 'invite' \
             AND used_at IS NULL",
        )
        .bind(&uid)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        undone.sessions_revoked += sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'account_reset' \
             WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(&uid)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(undone)
    }

    async fn add_member(&self, tenant: TenantId, user: UserId, role: Role) -> Result<Membership> {
        let mut conn = self.pool().acquire().await.map_err(db_err)?;
        insert_membership(&mut conn, tenant, user, role).await
    }

    async fn upsert_member(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        update_role: bool,
    ) -> Result<Membership> {
        if let Some(m) = self.get_membership(tenant, user).await?
            && (!update_role || m.role == role)
        {
            return Ok(m);
        }
        let mut tx = self.auth_tx().await?;
        lock_tenant(&mut tx, tenant).await?;
        let current = fetch_membership(&mut tx, tenant, user).await?;
        let membership = match current {
            None => insert_membership(&mut tx, tenant, user, role).await?,
            Some(m) if update_role && m.role != role => {
                if m.role == Role::Owner {
                    ensure_an_owner_stays(&mut tx, tenant, user).await?;
                }
                sqlx::query(
                    "UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3",
                )
                .bind(role.as_str())
                .bind(tenant.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if role < Role::Admin {
                    revoke_keys_created_by(&mut tx, Some(tenant), user, now_ms()).await?;
                }
                Membership { role, ..m }
            }
            Some(m) => m,
        };
        tx.commit().await.map_err(db_err)?;
        Ok(membership)
    }

    async fn get_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>> {
        let mut conn = self.pool().acquire().await.map_err(db_err)?;
        fetch_membership(&mut conn, tenant, user).await
    }

    async fn list_user_tenants(&self, user: UserId) -> Result<Vec<TenantMembership>> {
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.created_at, m.role FROM memberships m \
             JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 \
             ORDER BY m.created_at, m.seq",
        )
        .bind(user.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(TenantMembership {
                    tenant: tenant_from(row)?,
                    role: role_from(row, "role")?,
                })
            })
            .collect()
    }

    async fn list_members(&self, tenant: TenantId) -> Result<Vec<Member>> {
        let sql = format!(
            "SELECT {USER_COLS}, m.role, m.created_at AS joined_at FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY m.created_at, m.seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user: user_from(row)?,
                    role: role_from(row, "role")?,
                    joined_at: to_dt(row.try_get("joined_at").map_err(db_err)?),
                })
            })
            .collect()
    }

    async fn set_member_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
    ) -> Result<Membership> {
        let mut tx = self.auth_tx().await?;
        lock_tenant(&mut tx, tenant).await?;
        let current = fetch_membership(&mut tx, tenant, user)
            .await?
            .ok_or_else(|| user_not_found(user))?;
        if current.role == Role::Owner && role != Role::Owner {
            ensure_an_owner_stays(&mut tx, tenant, user).await?;
        }
        sqlx::query("UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(tenant.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if role < Role::Admin {
            revoke_keys_created_by(&mut tx, Some(tenant), user, now_ms()).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Membership { role, ..current })
    }

    async fn remove_member(&self, tenant: TenantId, user: UserId) -> Result<()> {
        let mut tx = self.auth_tx().await?;
        lock_tenant(&mut tx, tenant).await?;
        let current = fetch_membership(&mut tx, tenant, user)
            .await?
            .ok_or_else(|| user_not_found(user))?;
        if current.role == Role::Owner {
            ensure_an_owner_stays(&mut tx, tenant, user).await?;
        }
        sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'removed' \
             WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(tenant.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        revoke_keys_created_by(&mut tx, Some(tenant), user, now_ms()).await?;
        sqlx::query(
            "DELETE FROM one_time_tokens WHERE tenant_id = $1 AND purpose = 'invite' \
             AND used_at IS NULL AND email = (SELECT email FROM users WHERE id = $2)",
        )
        .bind(tenant.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn create_session(&self, new: NewSession, token: NewRefreshToken) -> Result<Session> {
        let mut tx = self.auth_tx().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO auth_sessions (id, tenant_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new.id.to_string())
        .bind(new.tenant_id.to_string())
        .bind(new.user_id.to_string())
        .bind(now)
        .bind(ms(new.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.token_hash)
        .bind(new.id.to_string())
        .bind(now)
        .bind(ms(token.expires_at.min(new.expires_at)))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Session {
            id: new.id,
            tenant_id: new.tenant_id,
            user_id: new.user_id,
            created_at: to_dt(now),
            expires_at: new.expires_at,
            revoked_at: None,
        })
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.auth_tx().await?;
        let row = sqlx::query(
            "SELECT r.expires_at AS token_expires_at, r.used_at, s.id, s.tenant_id, s.user_id, \
             s.created_at, s.expires_at, s.revoked_at \
             FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id \
             WHERE r.token_hash = $1 FOR UPDATE",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Unknown);
        };
        let session = session_from(&row)?;
        let used: Option<DateTime<Utc>> = row.try_get("used_at").map_err(db_err)?;
        let token_expires = to_dt(row.try_get("token_expires_at").map_err(db_err)?);
        let now_ms = ms(now);
        if session.revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked);
        }
        if used.is_some() {
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'refresh_token_reused' \
                 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now_ms)
            .bind(session.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            return Ok(RefreshOutcome::Reused(Session {
                revoked_at: Some(now),
                ..session
            }));
        }
        if token_expires <= now || session.expires_at <= now {
            return Ok(RefreshOutcome::Expired);
        }
        let marked = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now_ms)
        .bind(presented_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if marked.rows_affected() != 1 {
            return Err(Error::internal("refresh token changed during rotation"));
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&next.token_hash)
        .bind(session.id.to_string())
        .bind(now_ms)
        .bind(ms(next.expires_at.min(session.expires_at)))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(RefreshOutcome::Rotated(session))
    }

    async fn revoke_session_by_token(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE auth_sessions SET revoked_at = COALESCE(revoked_at, $1), \
             revoked_reason = COALESCE(revoked_reason, 'signed_out') \
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(ms(at))
        .bind(token_hash)
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'signed_out' \
             WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(ms(at))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user: UserId, at: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1, revoked_reason = 'signed_out_everywhere' \
             WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(ms(at))
        .bind(user.to_string())
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, user_id, created_at, expires_at, revoked_at \
             FROM auth_sessions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        row.as_ref().map(session_from).transpose()
    }

    async fn insert_one_time_token(&self, token: OneTimeToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO one_time_tokens (token_hash, purpose, user_id, tenant_id, email, role, \
             created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token.token_hash)
        .bind(token.purpose.as_str())
        .bind(token.user_id.map(|u| u.to_string()))
        .bind(token.tenant_id.map(|t| t.to_string()))
        .bind(&token.email)
        .bind(token.role.map(Role::as_str))
        .bind(token.created_by.map(|u| u.to_string()))
        .bind(ms(token.created_at))
        .bind(ms(token.expires_at))
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn consume_one_time_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<OneTimeToken> {
        let mut tx = self.auth_tx().await?;
        let token = find_one_time(&mut tx, token_hash, purpose, now, true).await?;
        sqlx::query(
            "UPDATE one_time_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(ms(now))
        .bind(token_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(token)
    }

    async fn peek_one_time_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<OneTimeToken> {
        let mut conn = self.pool().acquire().await.map_err(db_err)?;
        find_one_time(&mut conn, token_hash, purpose, now, false).await
    }

    async fn delete_one_time_tokens(
        &self,
        purpose: TokenPurpose,
        user: Option<UserId>,
    ) -> Result<u64> {
        let done = match user {
            Some(user) => sqlx::query(
                "DELETE FROM one_time_tokens WHERE purpose = $1 AND user_id = $2 AND used_at IS NULL",
            )
            .bind(purpose.as_str())
            .bind(user.to_string())
            .execute(self.pool())
            .await,
            None => {
                sqlx::query("DELETE FROM one_time_tokens WHERE purpose = $1 AND used_at IS NULL")
                    .bind(purpose.as_str())
                    .execute(self.pool())
                    .await
            }
        }
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn insert_api_key(&self, tenant: TenantId, new: NewApiKey) -> Result<ApiKey> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, access, \
             collection_ids, bot_ids, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(new.id.to_string())
        .bind(tenant.to_string())
        .bind(&new.name)
        .bind(&new.prefix)
        .bind(&new.secret_hash)
        .bind(new.scope.access.as_str())
        .bind(id_list_json(&new.scope.collections))
        .bind(id_list_json(&new.scope.bots))
        .bind(new.created_by.map(|u| u.to_string()))
        .bind(now_ms())
        .bind(new.expires_at.map(ms))
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                not_found(Code::TenantNotFound, "tenant", tenant)
            } else {
                db_err(e)
            }
        })?;
        self.get_api_key(tenant, new.id).await
    }

    async fn get_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found(Code::ApiKeyNotFound, "API key", id))?;
        api_key_from(&row)
    }

    async fn list_api_keys(&self, tenant: TenantId, page: PageRequest) -> Result<Page<ApiKey>> {
        let limit = page.effective_limit();
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {API_KEY_COLS} FROM api_keys WHERE tenant_id = "
        ));
        q.push_bind(tenant.to_string());
        if let Some(c) = cursor::<ApiKeyId>(&page)? {
            q.push(" AND id < ").push_bind(c);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(self.pool()).await.map_err(db_err)?;
        let items = rows.iter().map(api_key_from).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |k| k.id.to_string()))
    }

    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<ApiKey> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE tenant_id = $2 AND id = $3",
        )
        .bind(ms(at))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        self.get_api_key(tenant, id).await
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyCredentials>> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE prefix = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(ApiKeyCredentials {
                key: api_key_from(&row)?,
                secret_hash: row.try_get("secret_hash").map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn touch_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        min_interval: Duration,
    ) -> Result<()> {
        let at = ms(at);
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3 \
             AND (last_used_at IS NULL OR last_used_at <= $4)",
        )
        .bind(at)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .bind(
            at.checked_sub_signed(dur(min_interval))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn upsert_external_user(&self, identity: &ExternalIdentity) -> Result<User> {
        // Every request with an external token lands here: read first, write only on first sight.
        let linked: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        if let Some(id) = linked {
            let id: UserId = id
                .parse()
                .map_err(|_| Error::internal(format!("corrupt user id {id}")))?;
            return self.get_user(id).await;
        }
        let mut tx = self.auth_tx().await?;
        lock_key(
            &mut tx,
            &format!("identity:{}:{}", identity.issuer, identity.subject),
        )
        .await?;
        let linked: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(id) = linked {
            let id: UserId = id
                .parse()
                .map_err(|_| Error::internal(format!("corrupt user id {id}")))?;
            let user = fetch_user(&mut tx, id).await?;
            tx.commit().await.map_err(db_err)?;
            return Ok(user);
        }
        let now = now_ms();
        let existing = match &identity.email {
            Some(email) => sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?,
            None => None,
        };
        let user_id = match existing {
            // Link to the account with this address only if the provider vouches for it.
            Some(_) if !identity.email_verified => return Err(email_taken()),
            Some(id) => id
                .parse()
                .map_err(|_| Error::internal(format!("corrupt user id {id}")))?,
            None => {
                let id = UserId::new();
                sqlx::query(
                    "INSERT INTO users (id, email, display_name, email_verified_at, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.to_string())
                .bind(&identity.email)
                .bind(&identity.display_name)
                .bind(identity.email_verified.then_some(now))
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                id
            }
        };
        sqlx::query(
            "INSERT INTO external_identities (issuer, subject, user_id, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .bind(user_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let user = fetch_user(&mut tx, user_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(user)
    }

    async fn resolve_tenant_alias(
        &self,
        issuer: &str,
        external_id: &str,
        create_as: Option<&str>,
    ) -> Result<Option<TenantId>> {
        let known: Option<String> = sqlx::query_scalar(
            "SELECT tenant_id FROM tenant_aliases WHERE issuer = $1 AND external_id = $2",
        )
        .bind(issuer)
        .bind(external_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        if let Some(id) = known {
            return id
                .parse()
                .map(Some)
                .map_err(|_| Error::internal(format!("corrupt tenant id {id}")));
        }
        if create_as.is_none() {
            return Ok(None);
        }
        let mut tx = self.auth_tx().await?;
        lock_key(&mut tx, &format!("alias:{issuer}:{external_id}")).await?;
        let found: Option<String> = sqlx::query_scalar(
            "SELECT tenant_id FROM tenant_aliases WHERE issuer = $1 AND external_id = $2",
        )
        .bind(issuer)
        .bind(external_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let tenant = match (found, create_as) {
            (Some(id), _) => Some(
                id.parse()
                    .map_err(|_| Error::internal(format!("corrupt tenant id {id}")))?,
            ),
            (None, Some(name)) => {
                let tenant = insert_tenant(&mut tx, name).await?;
                sqlx::query(
                    "INSERT INTO tenant_aliases (issuer, external_id, tenant_id, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(issuer)
                .bind(external_id)
                .bind(tenant.id.to_string())
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                Some(tenant.id)
            }
            (None, None) => None,
        };
        tx.commit().await.map_err(db_err)?;
        Ok(tenant)
    }

    async fn set_tenant_alias(
        &self,
        issuer: &str,
        external_id: &str,
        tenant: TenantId,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_aliases (issuer, external_id, tenant_id, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (issuer, external_id) DO UPDATE SET tenant_id = excluded.tenant_id",
        )
        .bind(issuer)
        .bind(external_id)
        .bind(tenant.to_string())
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                not_found(Code::TenantNotFound, "tenant", tenant)
            } else {
                db_err(e)
            }
        })?;
        Ok(())
    }

    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS documents, COALESCE(SUM(size_bytes + octet_length(metadata::TEXT)), 0)::BIGINT AS bytes \
             FROM documents WHERE tenant_id = $1",
        )
        .bind(tenant.to_string())
        .fetch_one(self.pool())
        .await
        .map_err(db_err)?;
        Ok(TenantUsage {
            documents: row.try_get::<i64, _>("documents").map_err(db_err)? as u64,
            stored_bytes: row.try_get::<i64, _>("bytes").map_err(db_err)? as u64,
        })
    }
}
