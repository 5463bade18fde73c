//! One-time tokens (`one_time_tokens`): email verification, password reset and invitation
//! links, looked up by the presented token's hash and used at most once. Consuming one locks
//! its row ([`Dialect::for_update`]) so it is used once however many present it at a time.
//!
//! [`Dialect::for_update`]: crate::engine::Dialect::for_update

use chrono::{DateTime, Utc};
use docent_domain::auth::{OneTimeToken, TokenPurpose};
use docent_domain::{Code, Error, Result, Role, UserId};

use super::role_from;
use crate::engine::{Db, On, Row, Sql, db_err};

fn one_time_from(row: &Row) -> Result<OneTimeToken> {
    let purpose: String = row.get("purpose")?;
    Ok(OneTimeToken {
        token_hash: row.get("token_hash")?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| Error::internal(format!("corrupt token purpose {purpose}")))?,
        user_id: row.opt_id("user_id")?,
        tenant_id: row.opt_id("tenant_id")?,
        email: row.get("email")?,
        role: match row.get::<Option<String>>("role")? {
            Some(_) => Some(role_from(row, "role")?),
            None => None,
        },
        created_by: row.opt_id("created_by")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

/// The token if it can be used now; `lock` holds its row until the transaction ends.
async fn find<'a>(
    on: impl Into<On<'a>>,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
    lock: &str,
) -> Result<OneTimeToken> {
    let row = Sql::new(format!(
        "SELECT token_hash, purpose, user_id, tenant_id, email, role, created_by, created_at, \
         expires_at, used_at FROM one_time_tokens WHERE token_hash = ?{lock}"
    ))
    .bind(token_hash)
    .fetch_optional(on)
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
    if token.purpose != purpose || row.opt_time("used_at")?.is_some() {
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

pub(super) async fn insert(db: &Db, token: OneTimeToken) -> Result<()> {
    Sql::new(
        "INSERT INTO one_time_tokens (token_hash, purpose, user_id, tenant_id, email, role, \
         created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&token.token_hash)
    .bind(token.purpose.as_str())
    .bind(token.user_id.map(|u| u.to_string()))
    .bind(token.tenant_id.map(|t| t.to_string()))
    .bind(&token.email)
    .bind(token.role.map(Role::as_str))
    .bind(token.created_by.map(|u| u.to_string()))
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(super) async fn consume(
    db: &Db,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<OneTimeToken> {
    let mut tx = db.write_tx().await?;
    let lock = tx.dialect().for_update();
    let token = find(&mut tx, token_hash, purpose, now, lock).await?;
    Sql::new("UPDATE one_time_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
        .bind(now)
        .bind(token_hash)
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
    tx.commit().await?;
    Ok(token)
}

pub(super) async fn peek(
    db: &Db,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<OneTimeToken> {
    find(db, token_hash, purpose, now, "").await
}

pub(super) async fn delete_unused(
    db: &Db,
    purpose: TokenPurpose,
    user: Option<UserId>,
) -> Result<u64> {
    let mut sql = Sql::new("DELETE FROM one_time_tokens WHERE purpose = ? AND used_at IS NULL")
        .bind(purpose.as_str());
    if let Some(user) = user {
        sql.push(" AND user_id = ?").arg(user.to_string());
    }
    sql.execute(db).await.map_err(db_err)
}
