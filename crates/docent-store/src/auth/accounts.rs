//! User accounts (`users`): creation with a first membership, lookups by id and email, password,
//! verification and disabling, and the reset of an unverified account whose address someone
//! else proves.

use docent_domain::auth::{AccountReset, AccountTenant, Membership, NewAccount, UserCredentials};
use docent_domain::{Code, Error, Result, Role, User, UserId};

use super::{api_keys, memberships, sessions, tenants};
use crate::common::not_found;
use crate::engine::{Db, On, Row, Sql, Tx, db_err, is_unique_violation, now};

/// The user columns (table alias `u`) that [`user_from`] reads.
pub(super) const USER_COLS: &str = "u.id, u.email, u.display_name, u.password_hash, \
     u.email_verified_at, u.disabled_at, u.created_at";

pub(super) fn user_from(row: &Row) -> Result<User> {
    Ok(User {
        id: row.id("id")?,
        email: row.get("email")?,
        display_name: row.get("display_name")?,
        email_verified_at: row.opt_time("email_verified_at")?,
        disabled: row.opt_time("disabled_at")?.is_some(),
        has_password: row.get::<Option<String>>("password_hash")?.is_some(),
        created_at: row.time("created_at")?,
    })
}

pub(super) fn user_not_found(id: impl std::fmt::Display) -> Error {
    not_found(Code::UserNotFound, "user", id)
}

pub(super) fn email_taken() -> Error {
    Error::new(
        Code::EmailTaken,
        "an account with this email already exists",
    )
}

pub(super) async fn fetch<'a>(on: impl Into<On<'a>>, id: UserId) -> Result<User> {
    let row = Sql::new(format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?"))
        .bind(id.to_string())
        .fetch_optional(on)
        .await
        .map_err(db_err)?
        .ok_or_else(|| user_not_found(id))?;
    user_from(&row)
}

/// The id of the account with `email`, if there is one.
pub(super) async fn id_by_email(tx: &mut Tx, email: &str) -> Result<Option<UserId>> {
    let id: Option<String> = Sql::new("SELECT id FROM users WHERE email = ?")
        .bind(email)
        .scalar_optional(tx)
        .await?;
    id.map(|id| {
        id.parse()
            .map_err(|_| Error::internal(format!("corrupt user id {id}")))
    })
    .transpose()
}

pub(super) async fn count(db: &Db) -> Result<u64> {
    let n: i64 = Sql::new("SELECT COUNT(*) FROM users").scalar(db).await?;
    Ok(n as u64)
}

pub(super) async fn list_all(db: &Db) -> Result<Vec<User>> {
    let order = db.dialect().insertion_order();
    let rows = Sql::new(format!(
        "SELECT {USER_COLS} FROM users u ORDER BY u.created_at, u.{order}"
    ))
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    rows.iter().map(user_from).collect()
}

/// Inserts a user row; a taken email is [`email_taken`].
pub(super) async fn insert(
    tx: &mut Tx,
    email: Option<&str>,
    display_name: Option<&str>,
    password_hash: Option<&str>,
    email_verified: bool,
) -> Result<UserId> {
    let id = UserId::new();
    let now = now();
    Sql::new(
        "INSERT INTO users (id, email, display_name, password_hash, email_verified_at, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(email_verified.then_some(now))
    .bind(now)
    .bind(now)
    .execute(tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            email_taken()
        } else {
            db_err(e)
        }
    })?;
    Ok(id)
}

pub(super) async fn create(db: &Db, new: NewAccount) -> Result<(User, Membership)> {
    let mut tx = db.write_tx().await?;
    let (tenant, role) = match &new.tenant {
        AccountTenant::New { name } => (tenants::insert(&mut tx, name).await?.id, Role::Owner),
        AccountTenant::Existing { tenant_id, role } => (*tenant_id, *role),
    };
    let id = insert(
        &mut tx,
        Some(&new.email),
        new.display_name.as_deref(),
        new.password_hash.as_deref(),
        new.email_verified,
    )
    .await?;
    let membership = memberships::insert(&mut tx, tenant, id, role).await?;
    let user = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok((user, membership))
}

pub(super) async fn find_by_email(db: &Db, email: &str) -> Result<Option<UserCredentials>> {
    let row = Sql::new(format!("SELECT {USER_COLS} FROM users u WHERE u.email = ?"))
        .bind(email)
        .fetch_optional(db)
        .await
        .map_err(db_err)?;
    row.map(|row| {
        Ok(UserCredentials {
            user: user_from(&row)?,
            password_hash: row.get("password_hash")?,
        })
    })
    .transpose()
}

/// Runs an `UPDATE users … WHERE id = ?` (the id bound last); an unknown user is not found.
async fn update_one<'a>(on: impl Into<On<'a>>, sql: Sql, user: UserId) -> Result<()> {
    let done = sql
        .bind(user.to_string())
        .execute(on)
        .await
        .map_err(db_err)?;
    if done == 0 {
        return Err(user_not_found(user));
    }
    Ok(())
}

pub(super) async fn set_password_hash(db: &Db, user: UserId, hash: &str) -> Result<()> {
    let sql = Sql::new("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
        .bind(hash)
        .bind(now());
    update_one(db, sql, user).await
}

pub(super) async fn mark_email_verified(
    db: &Db,
    user: UserId,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let sql = Sql::new(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?), updated_at = ? \
         WHERE id = ?",
    )
    .bind(at)
    .bind(now());
    update_one(db, sql, user).await
}

pub(super) async fn set_disabled(db: &Db, user: UserId, disabled: bool) -> Result<()> {
    let now = now();
    let mut tx = db.write_tx().await?;
    let sql = Sql::new(
        "UPDATE users SET disabled_at = CASE WHEN ? THEN COALESCE(disabled_at, ?) END, \
         updated_at = ? WHERE id = ?",
    )
    .bind(disabled)
    .bind(now)
    .bind(now);
    update_one(&mut tx, sql, user).await?;
    if disabled {
        sessions::revoke_for_user(&mut tx, user, now, "disabled").await?;
        api_keys::revoke_created_by(&mut tx, None, user, now).await?;
    }
    tx.commit().await
}

pub(super) async fn reset_unverified(
    db: &Db,
    user: UserId,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<AccountReset> {
    let uid = user.to_string();
    let mut tx = db.write_tx().await?;
    let mut undone = AccountReset::default();
    // Tenants the account owns, except those an external provider maps (their members
    // come from the provider, not from whoever held this account).
    let owned: Vec<String> = Sql::new(
        "SELECT m.tenant_id FROM memberships m WHERE m.user_id = ? AND m.role = 'owner' \
         AND NOT EXISTS (SELECT 1 FROM tenant_aliases a WHERE a.tenant_id = m.tenant_id)",
    )
    .bind(&uid)
    .scalars(&mut tx)
    .await?;
    for tenant in &owned {
        undone.sessions_revoked +=
            sessions::revoke_live(at, "account_reset", "tenant_id = ? AND user_id <> ?")
                .bind(tenant)
                .bind(&uid)
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
        undone.members_removed +=
            Sql::new("DELETE FROM memberships WHERE tenant_id = ? AND user_id <> ?")
                .bind(tenant)
                .bind(&uid)
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
        undone.keys_revoked += Sql::new(
            "UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(tenant)
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
        undone.invites_deleted += Sql::new(
            "DELETE FROM one_time_tokens WHERE tenant_id = ? AND purpose = 'invite' \
             AND used_at IS NULL",
        )
        .bind(tenant)
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
    }
    undone.keys_revoked += api_keys::revoke_created_by(&mut tx, None, user, at).await?;
    undone.invites_deleted += Sql::new(
        "DELETE FROM one_time_tokens WHERE created_by = ? AND purpose = 'invite' \
         AND used_at IS NULL",
    )
    .bind(&uid)
    .execute(&mut tx)
    .await
    .map_err(db_err)?;
    undone.sessions_revoked +=
        sessions::revoke_for_user(&mut tx, user, at, "account_reset").await?;
    tx.commit().await?;
    Ok(undone)
}
