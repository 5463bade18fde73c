//! Workspace membership with `auth.mode = "builtin"`: the members of the caller's tenant
//! (`/api/v1/members`, admins and owners), invitations (`/api/v1/invites`; the token goes by
//! mail only), accepting one (`/api/v1/auth/invites/accept`), and the signed-in user's own
//! tenants (`/api/v1/auth/tenants`, `/api/v1/auth/switch`). A user id of another tenant is 404,
//! like any id the caller cannot see.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use docent_domain::{Code, Role, TenantId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Accounts, SessionDto, SessionTransport};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Auth, id};

fn role(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw).ok_or_else(|| {
        ApiError::new(
            Code::InvalidField,
            "`role` must be one of viewer, member, admin, owner",
        )
    })
}

/// A member of the workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    /// User id.
    pub user_id: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// `viewer`, `member`, `admin` or `owner`.
    pub role: String,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

impl From<docent_domain::auth::Member> for MemberDto {
    fn from(m: docent_domain::auth::Member) -> Self {
        Self {
            user_id: m.user.id.to_string(),
            email: m.user.email,
            display_name: m.user.display_name,
            role: m.role.to_string(),
            joined_at: m.joined_at,
        }
    }
}

/// The workspace's members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// Members.
    pub items: Vec<MemberDto>,
}

/// A membership after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipDto {
    /// Workspace id.
    pub tenant_id: String,
    /// User id.
    pub user_id: String,
    /// Role there.
    pub role: String,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

impl From<docent_domain::auth::Membership> for MembershipDto {
    fn from(m: docent_domain::auth::Membership) -> Self {
        Self {
            tenant_id: m.tenant_id.to_string(),
            user_id: m.user_id.to_string(),
            role: m.role.to_string(),
            joined_at: m.created_at,
        }
    }
}

/// A role change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    /// `viewer`, `member`, `admin` or `owner` (only owners grant admin and owner).
    pub role: String,
}

/// Lists the workspace's members (admins and owners).
#[utoipa::path(get, path = "/api/v1/members", tag = "members",
    responses((status = 200, body = MemberList), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub(crate) async fn list(Accounts(auth): Accounts, Auth(p): Auth) -> ApiResult<Json<MemberList>> {
    let members = auth.list_members(&p).await?;
    Ok(Json(MemberList {
        items: members.into_iter().map(Into::into).collect(),
    }))
}

/// Changes a member's role (admins manage members and viewers; only owners change admins and
/// owners). Demoting the last owner is 409 `last_owner`.
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "members", request_body = SetRoleRequest,
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 200, body = MembershipDto), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn set_role(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    Path(raw): Path<String>,
    ApiJson(r): ApiJson<SetRoleRequest>,
) -> ApiResult<Json<MembershipDto>> {
    let user: UserId = id(&raw, "user")?;
    let role = role(&r.role)?;
    Ok(Json(auth.set_member_role(&p, user, role).await?.into()))
}

/// Removes a member from the workspace (admins; only owners remove admins and owners; anyone
/// may remove themselves). Removing the last owner is 409 `last_owner`.
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "members",
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn remove(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let user: UserId = id(&raw, "user")?;
    auth.remove_member(&p, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Address to invite.
    pub email: String,
    /// Role granted on acceptance (default `member`; only owners invite admins and owners).
    pub role: Option<String>,
}

/// A sent invitation. The token itself went by mail only.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationDto {
    /// Invited address.
    pub email: String,
    /// Workspace id.
    pub tenant_id: String,
    /// Role granted on acceptance.
    pub role: String,
    /// When the invitation expires.
    pub expires_at: DateTime<Utc>,
}

/// Invites an address into the workspace (admins and owners); the link is mailed, never
/// returned. 409 `already_member` if the address already belongs to the workspace.
#[utoipa::path(post, path = "/api/v1/invites", tag = "members", request_body = InviteRequest,
    responses((status = 202, body = InvitationDto), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn invite(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    ApiJson(r): ApiJson<InviteRequest>,
) -> ApiResult<(StatusCode, Json<InvitationDto>)> {
    let role = match r.role.as_deref() {
        None => Role::Member,
        Some(raw) => role(raw)?,
    };
    let inv = auth.invite(&p, &r.email, role).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(InvitationDto {
            email: inv.email,
            tenant_id: inv.tenant_id.to_string(),
            role: inv.role.to_string(),
            expires_at: inv.expires_at,
        }),
    ))
}

/// The token of an invitation (from the mailed link).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    /// Invitation token.
    pub token: String,
}

/// Accepts an invitation as the signed-in user (the invitation must be for their address).
/// Then `POST /api/v1/auth/switch` acts in the new workspace. New users accept by signing up
/// with `invite_token` instead.
#[utoipa::path(post, path = "/api/v1/auth/invites/accept", tag = "members", request_body = AcceptInviteRequest,
    responses((status = 200, body = MembershipDto), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope)))]
pub(crate) async fn accept_invite(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    ApiJson(r): ApiJson<AcceptInviteRequest>,
) -> ApiResult<Json<MembershipDto>> {
    Ok(Json(auth.accept_invite(&p, &r.token).await?.into()))
}

/// One of the signed-in user's workspaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyTenantDto {
    /// Workspace id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The user's role there.
    pub role: String,
    /// Whether the current token acts there.
    pub current: bool,
}

/// The signed-in user's workspaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyTenantList {
    /// Workspaces.
    pub items: Vec<MyTenantDto>,
}

/// Lists the signed-in user's workspaces (users only, not API keys).
#[utoipa::path(get, path = "/api/v1/auth/tenants", tag = "members",
    responses((status = 200, body = MyTenantList), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub(crate) async fn my_tenants(
    Accounts(auth): Accounts,
    Auth(p): Auth,
) -> ApiResult<Json<MyTenantList>> {
    let tenants = auth.my_tenants(&p).await?;
    Ok(Json(MyTenantList {
        items: tenants
            .into_iter()
            .map(|m| MyTenantDto {
                id: m.tenant.id.to_string(),
                name: m.tenant.name,
                role: m.role.to_string(),
                current: m.tenant.id == p.tenant_id,
            })
            .collect(),
    }))
}

/// Which workspace to act in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// Workspace id (one of `GET /api/v1/auth/tenants`).
    pub tenant_id: String,
}

/// Starts a session in another of the user's workspaces: a new token pair acting there. A
/// workspace the user does not belong to is 404. With `X-Docent-Console: 1` the new refresh
/// token replaces the session cookie, and the session the cookie held ends.
#[utoipa::path(post, path = "/api/v1/auth/switch", tag = "members", request_body = SwitchRequest,
    responses((status = 200, body = SessionDto), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn switch(
    Accounts(auth): Accounts,
    Auth(p): Auth,
    transport: SessionTransport,
    ApiJson(r): ApiJson<SwitchRequest>,
) -> ApiResult<Response> {
    let tenant: TenantId = r
        .tenant_id
        .parse()
        .map_err(|_| ApiError::new(Code::InvalidField, "`tenant_id` is not a valid id"))?;
    let signed_in = auth.switch_tenant(&p, tenant).await?;
    // The console's old session is replaced by the new one in its cookie: end it rather than
    // leave it valid and unreachable.
    if let Some(old) = transport.console_cookie()
        && let Err(e) = auth.signout(old).await
    {
        tracing::debug!(
            code = e.code.as_str(),
            "the replaced console session was already over"
        );
    }
    Ok(transport.session(StatusCode::OK, signed_in))
}
