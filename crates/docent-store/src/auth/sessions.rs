//! Sign-in sessions (`auth_sessions`) and their rotating refresh tokens (`refresh_tokens`): a
//! refresh token is used once; presenting a used one again revokes the session (reuse
//! detection). Rotation locks the presented token's row ([`Dialect::for_update`]) so two
//! concurrent refreshes cannot both rotate it.
//!
//! [`Dialect::for_update`]: crate::engine::Dialect::for_update

use chrono::{DateTime, Utc};
use docent_domain::auth::{NewRefreshToken, NewSession, RefreshOutcome, Session};
use docent_domain::{Error, Result, SessionId, TenantId, UserId};

use crate::engine::{Db, On, Row, Sql, Tx, db_err, now};

fn session_from(row: &Row) -> Result<Session> {
    Ok(Session {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        user_id: row.id("user_id")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

/// An `UPDATE` revoking, at `at` for `reason`, the live sessions `filter` selects: its `?`s
/// are bound next, in order.
pub(super) fn revoke_live(at: DateTime<Utc>, reason: &str, filter: &str) -> Sql {
    Sql::new(format!(
        "UPDATE auth_sessions SET revoked_at = ?, revoked_reason = ? \
         WHERE {filter} AND revoked_at IS NULL"
    ))
    .bind(at)
    .bind(reason)
}

/// Revokes every live session of `user`, in every tenant. Returns how many.
pub(super) async fn revoke_for_user<'a>(
    on: impl Into<On<'a>>,
    user: UserId,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<u64> {
    revoke_live(at, reason, "user_id = ?")
        .bind(user.to_string())
        .execute(on)
        .await
        .map_err(db_err)
}

/// Records a refresh token of `session`, expiring no later than the session.
async fn insert_refresh_token(
    tx: &mut Tx,
    session: SessionId,
    token: &NewRefreshToken,
    session_expires: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    Sql::new(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
         VALUES (?, ?, ?, ?)",
    )
    .bind(&token.token_hash)
    .bind(session.to_string())
    .bind(now)
    .bind(token.expires_at.min(session_expires))
    .execute(tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(super) async fn create(db: &Db, new: NewSession, token: NewRefreshToken) -> Result<Session> {
    let mut tx = db.write_tx().await?;
    let now = now();
    Sql::new(
        "INSERT INTO auth_sessions (id, tenant_id, user_id, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(new.id.to_string())
    .bind(new.tenant_id.to_string())
    .bind(new.user_id.to_string())
    .bind(now)
    .bind(new.expires_at)
    .execute(&mut tx)
    .await
    .map_err(db_err)?;
    insert_refresh_token(&mut tx, new.id, &token, new.expires_at, now).await?;
    tx.commit().await?;
    Ok(Session {
        id: new.id,
        tenant_id: new.tenant_id,
        user_id: new.user_id,
        created_at: now,
        expires_at: new.expires_at,
        revoked_at: None,
    })
}

pub(super) async fn rotate(
    db: &Db,
    presented_hash: &str,
    next: NewRefreshToken,
    now: DateTime<Utc>,
) -> Result<RefreshOutcome> {
    let mut tx = db.write_tx().await?;
    let for_update = tx.dialect().for_update();
    let row = Sql::new(format!(
        "SELECT r.expires_at AS token_expires_at, r.used_at, s.id, s.tenant_id, s.user_id, \
         s.created_at, s.expires_at, s.revoked_at \
         FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id \
         WHERE r.token_hash = ?{for_update}"
    ))
    .bind(presented_hash)
    .fetch_optional(&mut tx)
    .await
    .map_err(db_err)?;
    let Some(row) = row else {
        return Ok(RefreshOutcome::Unknown);
    };
    let session = session_from(&row)?;
    let used = row.opt_time("used_at")?;
    let token_expires = row.time("token_expires_at")?;
    if session.revoked_at.is_some() {
        return Ok(RefreshOutcome::Revoked);
    }
    if used.is_some() {
        revoke_live(now, "refresh_token_reused", "id = ?")
            .bind(session.id.to_string())
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused(Session {
            revoked_at: Some(now),
            ..session
        }));
    }
    if token_expires <= now || session.expires_at <= now {
        return Ok(RefreshOutcome::Expired);
    }
    let marked =
        Sql::new("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
            .bind(now)
            .bind(presented_hash)
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
    if marked != 1 {
        return Err(Error::internal("refresh token changed during rotation"));
    }
    insert_refresh_token(&mut tx, session.id, &next, session.expires_at, now).await?;
    tx.commit().await?;
    Ok(RefreshOutcome::Rotated(session))
}

pub(super) async fn revoke_by_token(db: &Db, token_hash: &str, at: DateTime<Utc>) -> Result<bool> {
    let done = Sql::new(
        "UPDATE auth_sessions SET revoked_at = COALESCE(revoked_at, ?), \
         revoked_reason = COALESCE(revoked_reason, 'signed_out') \
         WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ?)",
    )
    .bind(at)
    .bind(token_hash)
    .execute(db)
    .await
    .map_err(db_err)?;
    Ok(done > 0)
}

pub(super) async fn revoke(
    db: &Db,
    tenant: TenantId,
    id: SessionId,
    at: DateTime<Utc>,
) -> Result<()> {
    revoke_live(at, "signed_out", "tenant_id = ? AND id = ?")
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(super) async fn get(db: &Db, tenant: TenantId, id: SessionId) -> Result<Option<Session>> {
    let row = Sql::new(
        "SELECT id, tenant_id, user_id, created_at, expires_at, revoked_at \
         FROM auth_sessions WHERE tenant_id = ? AND id = ?",
    )
    .bind(tenant.to_string())
    .bind(id.to_string())
    .fetch_optional(db)
    .await
    .map_err(db_err)?;
    row.as_ref().map(session_from).transpose()
}
