//! Memberships (`memberships`): who belongs to a tenant and with which role. Changes that read
//! the owners before writing (the last-owner rule) hold the tenant's key ([`Tx::lock_key`]) so
//! two of them never both see an owner the other removes.

use docent_domain::auth::{Member, Membership, TenantMembership};
use docent_domain::{Code, Error, Result, Role, TenantId, UserId};

use super::accounts::{USER_COLS, user_from, user_not_found};
use super::tenants::tenant_from;
use super::{api_keys, role_from, sessions, tenant_ref_err};
use crate::engine::{Db, On, Row, Sql, Tx, db_err, is_unique_violation, now};

fn membership_from(row: &Row) -> Result<Membership> {
    Ok(Membership {
        tenant_id: row.id("tenant_id")?,
        user_id: row.id("user_id")?,
        role: role_from(row, "role")?,
        created_at: row.time("created_at")?,
    })
}

pub(super) async fn get<'a>(
    on: impl Into<On<'a>>,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Membership>> {
    let row = Sql::new(
        "SELECT tenant_id, user_id, role, created_at FROM memberships \
         WHERE tenant_id = ? AND user_id = ?",
    )
    .bind(tenant.to_string())
    .bind(user.to_string())
    .fetch_optional(on)
    .await
    .map_err(db_err)?;
    row.as_ref().map(membership_from).transpose()
}

pub(super) async fn insert<'a>(
    on: impl Into<On<'a>>,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Membership> {
    let membership = Membership {
        tenant_id: tenant,
        user_id: user,
        role,
        created_at: now(),
    };
    Sql::new("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)")
        .bind(tenant.to_string())
        .bind(user.to_string())
        .bind(role.as_str())
        .bind(membership.created_at)
        .execute(on)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::new(
                    Code::AlreadyMember,
                    "the user is already a member of this workspace",
                )
            } else {
                tenant_ref_err(tenant)(e)
            }
        })?;
    Ok(membership)
}

/// A write transaction holding `tenant`'s membership key: changes that check the owners first.
async fn tenant_tx(db: &Db, tenant: TenantId) -> Result<Tx> {
    let mut tx = db.write_tx().await?;
    tx.lock_key(&format!("memberships:{tenant}")).await?;
    Ok(tx)
}

/// Refuses a change that would leave `tenant` without an owner once `leaving` is no longer one.
async fn ensure_an_owner_stays(tx: &mut Tx, tenant: TenantId, leaving: UserId) -> Result<()> {
    let others: i64 = Sql::new(
        "SELECT COUNT(*) FROM memberships WHERE tenant_id = ? AND role = 'owner' AND user_id != ?",
    )
    .bind(tenant.to_string())
    .bind(leaving.to_string())
    .scalar(tx)
    .await?;
    if others == 0 {
        return Err(Error::new(
            Code::LastOwner,
            "a workspace needs at least one owner; make someone else owner first",
        ));
    }
    Ok(())
}

/// Gives `current` (a member of `tenant`) `role`: the last owner stays one, and a member
/// falling below admin loses the API keys they created there.
async fn change_role(
    tx: &mut Tx,
    tenant: TenantId,
    current: Membership,
    role: Role,
) -> Result<Membership> {
    let user = current.user_id;
    if current.role == Role::Owner && role != Role::Owner {
        ensure_an_owner_stays(tx, tenant, user).await?;
    }
    Sql::new("UPDATE memberships SET role = ? WHERE tenant_id = ? AND user_id = ?")
        .bind(role.as_str())
        .bind(tenant.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if role < Role::Admin {
        api_keys::revoke_created_by(tx, Some(tenant), user, now()).await?;
    }
    Ok(Membership { role, ..current })
}

pub(super) async fn upsert(
    db: &Db,
    tenant: TenantId,
    user: UserId,
    role: Role,
    update_role: bool,
) -> Result<Membership> {
    if let Some(m) = get(db, tenant, user).await?
        && (!update_role || m.role == role)
    {
        return Ok(m);
    }
    let mut tx = tenant_tx(db, tenant).await?;
    let membership = match get(&mut tx, tenant, user).await? {
        None => insert(&mut tx, tenant, user, role).await?,
        Some(m) if update_role && m.role != role => change_role(&mut tx, tenant, m, role).await?,
        Some(m) => m,
    };
    tx.commit().await?;
    Ok(membership)
}

pub(super) async fn list_user_tenants(db: &Db, user: UserId) -> Result<Vec<TenantMembership>> {
    let order = db.dialect().insertion_order();
    let rows = Sql::new(format!(
        "SELECT t.id, t.name, t.created_at, m.role FROM memberships m \
         JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = ? \
         ORDER BY m.created_at, m.{order}"
    ))
    .bind(user.to_string())
    .fetch_all(db)
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

pub(super) async fn list_members(db: &Db, tenant: TenantId) -> Result<Vec<Member>> {
    let order = db.dialect().insertion_order();
    let rows = Sql::new(format!(
        "SELECT {USER_COLS}, m.role, m.created_at AS joined_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ? \
         ORDER BY m.created_at, m.{order}"
    ))
    .bind(tenant.to_string())
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            Ok(Member {
                user: user_from(row)?,
                role: role_from(row, "role")?,
                joined_at: row.time("joined_at")?,
            })
        })
        .collect()
}

pub(super) async fn set_role(
    db: &Db,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Membership> {
    let mut tx = tenant_tx(db, tenant).await?;
    let current = get(&mut tx, tenant, user)
        .await?
        .ok_or_else(|| user_not_found(user))?;
    let membership = change_role(&mut tx, tenant, current, role).await?;
    tx.commit().await?;
    Ok(membership)
}

pub(super) async fn remove(db: &Db, tenant: TenantId, user: UserId) -> Result<()> {
    let mut tx = tenant_tx(db, tenant).await?;
    let current = get(&mut tx, tenant, user)
        .await?
        .ok_or_else(|| user_not_found(user))?;
    if current.role == Role::Owner {
        ensure_an_owner_stays(&mut tx, tenant, user).await?;
    }
    Sql::new("DELETE FROM memberships WHERE tenant_id = ? AND user_id = ?")
        .bind(tenant.to_string())
        .bind(user.to_string())
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
    let now = now();
    sessions::revoke_live(now, "removed", "tenant_id = ? AND user_id = ?")
        .bind(tenant.to_string())
        .bind(user.to_string())
        .execute(&mut tx)
        .await
        .map_err(db_err)?;
    api_keys::revoke_created_by(&mut tx, Some(tenant), user, now).await?;
    Sql::new(
        "DELETE FROM one_time_tokens WHERE tenant_id = ? AND purpose = 'invite' \
         AND used_at IS NULL AND email = (SELECT email FROM users WHERE id = ?)",
    )
    .bind(tenant.to_string())
    .bind(user.to_string())
    .execute(&mut tx)
    .await
    .map_err(db_err)?;
    tx.commit().await
}
