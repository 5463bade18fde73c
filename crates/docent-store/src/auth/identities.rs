//! What external identity providers map onto local rows: a provider's user (`external_identities`,
//! issuer + subject → user) and a provider's organisation (`tenant_aliases`, issuer + external
//! id → tenant). Both are read first and written only on first sight, in a write transaction
//! holding the natural key ([`Tx::lock_key`]) so concurrent first sights create one row.
//!
//! [`Tx::lock_key`]: crate::engine::Tx::lock_key

use docent_domain::auth::ExternalIdentity;
use docent_domain::{Error, Result, TenantId, User, UserId};

use super::{accounts, tenant_ref_err, tenants};
use crate::engine::{Db, On, Sql, db_err, now};

/// An id read from a column, parsed.
fn parse<T: std::str::FromStr>(id: Option<String>, what: &str) -> Result<Option<T>> {
    id.map(|id| {
        id.parse()
            .map_err(|_| Error::internal(format!("corrupt {what} id {id}")))
    })
    .transpose()
}

async fn linked_user<'a>(
    on: impl Into<On<'a>>,
    identity: &ExternalIdentity,
) -> Result<Option<UserId>> {
    let id = Sql::new("SELECT user_id FROM external_identities WHERE issuer = ? AND subject = ?")
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .scalar_optional(on)
        .await?;
    parse(id, "user")
}

async fn aliased_tenant<'a>(
    on: impl Into<On<'a>>,
    issuer: &str,
    external_id: &str,
) -> Result<Option<TenantId>> {
    let id = Sql::new("SELECT tenant_id FROM tenant_aliases WHERE issuer = ? AND external_id = ?")
        .bind(issuer)
        .bind(external_id)
        .scalar_optional(on)
        .await?;
    parse(id, "tenant")
}

/// The local user of an external identity, linked on first sight to the account with its
/// (verified) email or to a new account.
pub(super) async fn upsert_user(db: &Db, identity: &ExternalIdentity) -> Result<User> {
    // Every request with an external token lands here: read first, write only on first sight.
    if let Some(id) = linked_user(db, identity).await? {
        return accounts::fetch(db, id).await;
    }
    let mut tx = db.write_tx().await?;
    tx.lock_key(&format!(
        "identity:{}:{}",
        identity.issuer, identity.subject
    ))
    .await?;
    if let Some(id) = linked_user(&mut tx, identity).await? {
        let user = accounts::fetch(&mut tx, id).await?;
        tx.commit().await?;
        return Ok(user);
    }
    let existing = match &identity.email {
        Some(email) => accounts::id_by_email(&mut tx, email).await?,
        None => None,
    };
    let user_id = match existing {
        // Link to the account with this address only if the provider vouches for it.
        Some(_) if !identity.email_verified => return Err(accounts::email_taken()),
        Some(id) => id,
        None => {
            accounts::insert(
                &mut tx,
                identity.email.as_deref(),
                identity.display_name.as_deref(),
                None,
                identity.email_verified,
            )
            .await?
        }
    };
    Sql::new(
        "INSERT INTO external_identities (issuer, subject, user_id, created_at) \
         VALUES (?, ?, ?, ?)",
    )
    .bind(&identity.issuer)
    .bind(&identity.subject)
    .bind(user_id.to_string())
    .bind(now())
    .execute(&mut tx)
    .await
    .map_err(db_err)?;
    let user = accounts::fetch(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(user)
}

pub(super) async fn resolve_tenant_alias(
    db: &Db,
    issuer: &str,
    external_id: &str,
    create_as: Option<&str>,
) -> Result<Option<TenantId>> {
    let known = aliased_tenant(db, issuer, external_id).await?;
    let Some(name) = create_as.filter(|_| known.is_none()) else {
        return Ok(known);
    };
    let mut tx = db.write_tx().await?;
    tx.lock_key(&format!("alias:{issuer}:{external_id}"))
        .await?;
    let tenant = match aliased_tenant(&mut tx, issuer, external_id).await? {
        Some(id) => id,
        None => {
            let tenant = tenants::insert(&mut tx, name).await?;
            Sql::new(
                "INSERT INTO tenant_aliases (issuer, external_id, tenant_id, created_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(issuer)
            .bind(external_id)
            .bind(tenant.id.to_string())
            .bind(now())
            .execute(&mut tx)
            .await
            .map_err(db_err)?;
            tenant.id
        }
    };
    tx.commit().await?;
    Ok(Some(tenant))
}

pub(super) async fn set_tenant_alias(
    db: &Db,
    issuer: &str,
    external_id: &str,
    tenant: TenantId,
) -> Result<()> {
    Sql::new(
        "INSERT INTO tenant_aliases (issuer, external_id, tenant_id, created_at) \
         VALUES (?, ?, ?, ?) \
         ON CONFLICT (issuer, external_id) DO UPDATE SET tenant_id = excluded.tenant_id",
    )
    .bind(issuer)
    .bind(external_id)
    .bind(tenant.to_string())
    .bind(now())
    .execute(db)
    .await
    .map_err(tenant_ref_err(tenant))?;
    Ok(())
}
