// The cases of `auth.rs`, included once per backend module; `Store`, `fixture()` and the
// raw-SQL helpers come from that module (see `common/mod.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use docent_domain::auth::*;
use docent_domain::ports::MetadataStore;
use docent_domain::*;



fn now() -> DateTime<Utc> {
    Utc::now()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn new_account(email: &str, tenant: AccountTenant) -> NewAccount {
    NewAccount {
        email: email.into(),
        display_name: Some("Test".into()),
        password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        email_verified: false,
        tenant,
    }
}

/// A user who owns a fresh tenant.
async fn owner(s: &Store, email: &str) -> (User, TenantId) {
    let (user, m) = s
        .create_account(new_account(
            email,
            AccountTenant::New {
                name: format!("{email}'s workspace"),
            },
        ))
        .await
        .expect("create_account");
    assert_eq!(m.role, Role::Owner);
    (user, m.tenant_id)
}

fn refresh(hash: &str, ttl: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash.into(),
        expires_at: now() + secs(ttl),
    }
}

async fn session(s: &Store, user: UserId, tenant: TenantId, first: &str) -> Session {
    s.create_session(
        NewSession {
            id: SessionId::new(),
            tenant_id: tenant,
            user_id: user,
            expires_at: now() + secs(3600),
        },
        refresh(first, 600),
    )
    .await
    .expect("create_session")
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> Code {
    r.expect_err("expected an error").code
}

#[tokio::test]
async fn accounts_are_unique_by_email_and_updatable() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    assert_eq!(s.count_users().await.unwrap(), 0);
    let (ann, tenant) = owner(s, "ann@example.com").await;
    assert_eq!(ann.email.as_deref(), Some("ann@example.com"));
    assert!(ann.has_password && !ann.disabled && ann.email_verified_at.is_none());
    assert_eq!(s.count_users().await.unwrap(), 1);
    assert_eq!(
        s.get_tenant(tenant).await.unwrap().name,
        "ann@example.com's workspace"
    );

    // The same email again (in any tenant) is taken, and nothing half-created remains.
    let err = s
        .create_account(new_account(
            "ann@example.com",
            AccountTenant::New { name: "x".into() },
        ))
        .await;
    assert_eq!(code(err), Code::EmailTaken);
    assert_eq!(s.count_users().await.unwrap(), 1);

    let creds = s
        .find_user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user, ann);
    assert!(creds.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(
        s.find_user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !format!(
            "{:?}",
            s.find_user_by_email("ann@example.com").await.unwrap()
        )
        .contains("argon2")
    );

    s.set_password_hash(ann.id, "$argon2id$new").await.unwrap();
    let creds = s
        .find_user_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$new"));

    let first = now() - secs(100);
    s.mark_email_verified(ann.id, first).await.unwrap();
    s.mark_email_verified(ann.id, now()).await.unwrap();
    let verified = s.get_user(ann.id).await.unwrap().email_verified_at.unwrap();
    assert_eq!(
        verified.timestamp_millis(),
        first.timestamp_millis(),
        "the first time is kept"
    );

    s.set_user_disabled(ann.id, true).await.unwrap();
    assert!(s.get_user(ann.id).await.unwrap().disabled);
    s.set_user_disabled(ann.id, false).await.unwrap();
    assert!(!s.get_user(ann.id).await.unwrap().disabled);

    let ghost = UserId::new();
    assert_eq!(code(s.get_user(ghost).await), Code::UserNotFound);
    assert_eq!(
        code(s.set_password_hash(ghost, "x").await),
        Code::UserNotFound
    );
    assert_eq!(
        code(s.mark_email_verified(ghost, now()).await),
        Code::UserNotFound
    );
    assert_eq!(
        code(s.get_tenant(TenantId::new()).await),
        Code::TenantNotFound
    );
}

#[tokio::test]
async fn a_user_belongs_to_several_tenants_with_roles() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t1) = owner(s, "ann@example.com").await;
    let (bob, t2) = owner(s, "bob@example.com").await;

    // Ann joins Bob's tenant as a viewer, via an existing-tenant account for Cleo too.
    s.add_member(t2, ann.id, Role::Viewer).await.unwrap();
    assert_eq!(
        code(s.add_member(t2, ann.id, Role::Admin).await),
        Code::AlreadyMember
    );
    assert_eq!(
        code(s.add_member(TenantId::new(), ann.id, Role::Viewer).await),
        Code::TenantNotFound
    );
    let (cleo, m) = s
        .create_account(new_account(
            "cleo@example.com",
            AccountTenant::Existing {
                tenant_id: t2,
                role: Role::Member,
            },
        ))
        .await
        .unwrap();
    assert_eq!((m.tenant_id, m.role), (t2, Role::Member));

    let tenants = s.list_user_tenants(ann.id).await.unwrap();
    let got: Vec<_> = tenants.iter().map(|t| (t.tenant.id, t.role)).collect();
    assert_eq!(
        got,
        vec![(t1, Role::Owner), (t2, Role::Viewer)],
        "oldest membership first"
    );

    let members = s.list_members(t2).await.unwrap();
    let got: Vec<_> = members.iter().map(|m| (m.user.id, m.role)).collect();
    assert_eq!(
        got,
        vec![
            (bob.id, Role::Owner),
            (ann.id, Role::Viewer),
            (cleo.id, Role::Member)
        ]
    );
    assert_eq!(
        s.list_members(t1).await.unwrap().len(),
        1,
        "members are per tenant"
    );

    assert_eq!(
        s.get_membership(t2, ann.id).await.unwrap().unwrap().role,
        Role::Viewer
    );
    assert!(s.get_membership(t1, bob.id).await.unwrap().is_none());

    // Role changes are tenant-scoped; a non-member is "not found".
    assert_eq!(
        s.set_member_role(t2, ann.id, Role::Admin)
            .await
            .unwrap()
            .role,
        Role::Admin
    );
    assert_eq!(
        code(s.set_member_role(t1, cleo.id, Role::Admin).await),
        Code::UserNotFound
    );
    assert_eq!(code(s.remove_member(t1, cleo.id).await), Code::UserNotFound);

    // upsert: adds, keeps, or updates the role.
    let dan = s
        .create_account(new_account(
            "dan@example.com",
            AccountTenant::New { name: "d".into() },
        ))
        .await
        .unwrap()
        .0;
    assert_eq!(
        s.upsert_member(t1, dan.id, Role::Member, false)
            .await
            .unwrap()
            .role,
        Role::Member
    );
    assert_eq!(
        s.upsert_member(t1, dan.id, Role::Admin, false)
            .await
            .unwrap()
            .role,
        Role::Member
    );
    assert_eq!(
        s.upsert_member(t1, dan.id, Role::Viewer, true)
            .await
            .unwrap()
            .role,
        Role::Viewer
    );
    assert_eq!(
        s.get_membership(t1, dan.id).await.unwrap().unwrap().role,
        Role::Viewer
    );
}

#[tokio::test]
async fn a_tenant_always_keeps_an_owner() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t) = owner(s, "ann@example.com").await;
    assert_eq!(
        code(s.set_member_role(t, ann.id, Role::Admin).await),
        Code::LastOwner
    );
    assert_eq!(code(s.remove_member(t, ann.id).await), Code::LastOwner);
    assert_eq!(
        code(s.upsert_member(t, ann.id, Role::Member, true).await),
        Code::LastOwner
    );
    let (bob, _) = owner(s, "bob@example.com").await;
    s.add_member(t, bob.id, Role::Owner).await.unwrap();
    s.set_member_role(t, ann.id, Role::Admin).await.unwrap();
    assert_eq!(code(s.remove_member(t, bob.id).await), Code::LastOwner);
    s.set_member_role(t, ann.id, Role::Owner).await.unwrap();
    s.remove_member(t, bob.id).await.unwrap();
    assert!(s.get_membership(t, bob.id).await.unwrap().is_none());
}

#[tokio::test]
async fn removing_a_member_revokes_their_sessions_in_that_tenant_only() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t1) = owner(s, "ann@example.com").await;
    let (bob, t2) = owner(s, "bob@example.com").await;
    s.add_member(t1, bob.id, Role::Member).await.unwrap();
    let in_t1 = session(s, bob.id, t1, "bob-t1").await;
    let in_t2 = session(s, bob.id, t2, "bob-t2").await;
    s.remove_member(t1, bob.id).await.unwrap();
    assert!(
        s.get_session(t1, in_t1.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        s.get_session(t2, in_t2.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    let _ = ann;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t) = owner(s, "ann@example.com").await;
    let sess = session(s, ann.id, t, "r1").await;

    let out = s
        .rotate_refresh_token("r1", refresh("r2", 600), now())
        .await
        .unwrap();
    assert!(
        matches!(out, RefreshOutcome::Rotated(ref got) if got.id == sess.id),
        "{out:?}"
    );
    let out = s
        .rotate_refresh_token("r2", refresh("r3", 600), now())
        .await
        .unwrap();
    assert!(matches!(out, RefreshOutcome::Rotated(_)));

    // r1 was rotated long ago: presenting it again is theft or a bug — the family dies.
    let out = s
        .rotate_refresh_token("r1", refresh("evil", 600), now())
        .await
        .unwrap();
    assert!(
        matches!(out, RefreshOutcome::Reused(ref got) if got.id == sess.id && got.revoked_at.is_some()),
        "{out:?}"
    );
    assert!(
        s.get_session(t, sess.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // ... so the newest token is dead too, and the attacker's replacement never existed.
    let out = s
        .rotate_refresh_token("r3", refresh("r4", 600), now())
        .await
        .unwrap();
    assert_eq!(out, RefreshOutcome::Revoked);
    let out = s
        .rotate_refresh_token("evil", refresh("r5", 600), now())
        .await
        .unwrap();
    assert_eq!(out, RefreshOutcome::Unknown);
    let out = s
        .rotate_refresh_token("never-issued", refresh("r6", 600), now())
        .await
        .unwrap();
    assert_eq!(out, RefreshOutcome::Unknown);
}

#[tokio::test]
async fn concurrent_use_of_one_refresh_token_rotates_once() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t) = owner(s, "ann@example.com").await;
    session(s, ann.id, t, "r1").await;
    let (a, b) = tokio::join!(
        s.rotate_refresh_token("r1", refresh("a", 600), now()),
        s.rotate_refresh_token("r1", refresh("b", 600), now()),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshOutcome::Rotated(_)))
        .count();
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshOutcome::Reused(_)))
        .count();
    assert_eq!((rotated, reused), (1, 1), "{outcomes:?}");
}

#[tokio::test]
async fn refresh_tokens_expire_and_sessions_can_be_revoked() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t) = owner(s, "ann@example.com").await;
    session(s, ann.id, t, "short").await;
    let later = now() + secs(601);
    let out = s
        .rotate_refresh_token("short", refresh("x", 600), later)
        .await
        .unwrap();
    assert_eq!(out, RefreshOutcome::Expired);

    // The session's end caps every token in it.
    let sess = s
        .create_session(
            NewSession {
                id: SessionId::new(),
                tenant_id: t,
                user_id: ann.id,
                expires_at: now() + secs(10),
            },
            refresh("capped", 10_000),
        )
        .await
        .unwrap();
    let out = s
        .rotate_refresh_token("capped", refresh("y", 600), now() + secs(11))
        .await
        .unwrap();
    assert_eq!(out, RefreshOutcome::Expired);

    // Sign-out by token, by id (tenant-scoped), and everywhere.
    assert!(s.revoke_session_by_token("capped", now()).await.unwrap());
    assert!(!s.revoke_session_by_token("unknown", now()).await.unwrap());
    assert!(
        s.get_session(t, sess.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    let (bob, t2) = owner(s, "bob@example.com").await;
    let bob_sess = session(s, bob.id, t2, "bob1").await;
    s.revoke_session(t, bob_sess.id, now()).await.unwrap();
    assert!(
        s.get_session(t2, bob_sess.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none(),
        "another tenant's session is untouched"
    );
    assert!(
        s.get_session(t, bob_sess.id).await.unwrap().is_none(),
        "and invisible"
    );
    s.revoke_session(t2, bob_sess.id, now()).await.unwrap();
    assert_eq!(
        s.rotate_refresh_token("bob1", refresh("bob2", 600), now())
            .await
            .unwrap(),
        RefreshOutcome::Revoked
    );

    session(s, ann.id, t, "a1").await;
    session(s, ann.id, t, "a2").await;
    // "short" (expired but not revoked), a1 and a2.
    assert_eq!(s.revoke_user_sessions(ann.id, now()).await.unwrap(), 3);
    assert_eq!(
        s.rotate_refresh_token("a2", refresh("a3", 600), now())
            .await
            .unwrap(),
        RefreshOutcome::Revoked
    );
}

fn one_time(hash: &str, purpose: TokenPurpose, ttl: i64) -> OneTimeToken {
    OneTimeToken {
        token_hash: hash.into(),
        purpose,
        user_id: None,
        tenant_id: None,
        email: None,
        role: None,
        created_by: None,
        created_at: now(),
        expires_at: now() + secs(ttl),
    }
}

#[tokio::test]
async fn one_time_tokens_are_single_use_purpose_bound_and_expire() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t) = owner(s, "ann@example.com").await;
    let mut invite = one_time("inv", TokenPurpose::Invite, 600);
    invite.tenant_id = Some(t);
    invite.email = Some("bob@example.com".into());
    invite.role = Some(Role::Admin);
    invite.created_by = Some(ann.id);
    s.insert_one_time_token(invite.clone()).await.unwrap();

    // Another purpose never accepts it; peeking does not use it.
    assert_eq!(
        code(
            s.consume_one_time_token("inv", TokenPurpose::ResetPassword, now())
                .await
        ),
        Code::TokenInvalid
    );
    let peeked = s
        .peek_one_time_token("inv", TokenPurpose::Invite, now())
        .await
        .unwrap();
    assert_eq!(peeked.role, Some(Role::Admin));
    let used = s
        .consume_one_time_token("inv", TokenPurpose::Invite, now())
        .await
        .unwrap();
    assert_eq!(used.tenant_id, Some(t));
    assert_eq!(used.email.as_deref(), Some("bob@example.com"));
    assert_eq!(used.created_by, Some(ann.id));
    assert_eq!(
        code(
            s.consume_one_time_token("inv", TokenPurpose::Invite, now())
                .await
        ),
        Code::TokenInvalid,
        "single use"
    );
    assert_eq!(
        code(
            s.peek_one_time_token("inv", TokenPurpose::Invite, now())
                .await
        ),
        Code::TokenInvalid
    );
    assert_eq!(
        code(
            s.consume_one_time_token("nope", TokenPurpose::Invite, now())
                .await
        ),
        Code::TokenInvalid
    );

    let mut reset = one_time("reset", TokenPurpose::ResetPassword, 60);
    reset.user_id = Some(ann.id);
    s.insert_one_time_token(reset).await.unwrap();
    assert_eq!(
        code(
            s.consume_one_time_token("reset", TokenPurpose::ResetPassword, now() + secs(61))
                .await
        ),
        Code::TokenExpired
    );

    // Deleting outstanding tokens: per user, or all of a purpose.
    let mut v1 = one_time("v1", TokenPurpose::VerifyEmail, 60);
    v1.user_id = Some(ann.id);
    s.insert_one_time_token(v1).await.unwrap();
    assert_eq!(
        s.delete_one_time_tokens(TokenPurpose::VerifyEmail, Some(ann.id))
            .await
            .unwrap(),
        1
    );
    s.insert_one_time_token(one_time("s1", TokenPurpose::Setup, 60))
        .await
        .unwrap();
    s.insert_one_time_token(one_time("s2", TokenPurpose::Setup, 60))
        .await
        .unwrap();
    assert_eq!(
        s.delete_one_time_tokens(TokenPurpose::Setup, None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        code(
            s.consume_one_time_token("s1", TokenPurpose::Setup, now())
                .await
        ),
        Code::TokenInvalid
    );
}

fn new_key(prefix: &str, scope: KeyScope) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new(),
        name: format!("key {prefix}"),
        prefix: prefix.into(),
        secret_hash: format!("hash-{prefix}"),
        scope,
        created_by: None,
        expires_at: None,
    }
}

#[tokio::test]
async fn api_keys_are_tenant_scoped_listed_revoked_and_touched() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (_, t1) = owner(s, "ann@example.com").await;
    let (_, t2) = owner(s, "bob@example.com").await;
    let c = CollectionId::new();
    let b = BotId::new();
    let scoped = s
        .insert_api_key(
            t1,
            new_key(
                "pfx1",
                KeyScope {
                    access: KeyAccess::Read,
                    collections: Some(vec![c]),
                    bots: Some(vec![b]),
                },
            ),
        )
        .await
        .unwrap();
    assert_eq!(scoped.scope.collections, Some(vec![c]));
    assert_eq!(scoped.scope.bots, Some(vec![b]));
    assert_eq!(scoped.scope.access, KeyAccess::Read);
    let wide = s
        .insert_api_key(
            t1,
            new_key("pfx2", KeyScope::tenant_wide(KeyAccess::ReadWrite)),
        )
        .await
        .unwrap();
    assert_eq!(wide.scope, KeyScope::tenant_wide(KeyAccess::ReadWrite));
    let other = s
        .insert_api_key(t2, new_key("pfx3", KeyScope::tenant_wide(KeyAccess::Read)))
        .await
        .unwrap();

    // Listing is per tenant, newest first, paginated.
    let page = s
        .list_api_keys(
            t1,
            PageRequest {
                limit: 1,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![wide.id]
    );
    let rest = s
        .list_api_keys(
            t1,
            PageRequest {
                limit: 1,
                cursor: page.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![scoped.id]
    );
    assert!(rest.next_cursor.is_none());

    // Another tenant's key is "not found" for get and revoke, and stays unrevoked.
    assert_eq!(
        code(s.get_api_key(t1, other.id).await),
        Code::ApiKeyNotFound
    );
    assert_eq!(
        code(s.revoke_api_key(t1, other.id, now()).await),
        Code::ApiKeyNotFound
    );
    assert!(
        s.get_api_key(t2, other.id)
            .await
            .unwrap()
            .revoked_at
            .is_none()
    );

    let first = now();
    let revoked = s.revoke_api_key(t1, wide.id, first).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = s
        .revoke_api_key(t1, wide.id, first + secs(5))
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking is idempotent"
    );

    let creds = s.find_api_key_by_prefix("pfx1").await.unwrap().unwrap();
    assert_eq!(creds.key.id, scoped.id);
    assert_eq!(creds.secret_hash, "hash-pfx1");
    assert!(s.find_api_key_by_prefix("zzz").await.unwrap().is_none());

    // Last use: written at most once per interval.
    let minute = Duration::from_secs(60);
    let t0 = now();
    s.touch_api_key(t1, scoped.id, t0, minute).await.unwrap();
    s.touch_api_key(t1, scoped.id, t0 + secs(30), minute)
        .await
        .unwrap();
    let seen = s
        .get_api_key(t1, scoped.id)
        .await
        .unwrap()
        .last_used_at
        .unwrap();
    assert_eq!(seen.timestamp_millis(), t0.timestamp_millis());
    s.touch_api_key(t1, scoped.id, t0 + secs(61), minute)
        .await
        .unwrap();
    let seen = s
        .get_api_key(t1, scoped.id)
        .await
        .unwrap()
        .last_used_at
        .unwrap();
    assert_eq!(seen.timestamp_millis(), (t0 + secs(61)).timestamp_millis());
    // Touching through another tenant does nothing.
    s.touch_api_key(t2, scoped.id, t0 + secs(600), minute)
        .await
        .unwrap();
    let seen = s
        .get_api_key(t1, scoped.id)
        .await
        .unwrap()
        .last_used_at
        .unwrap();
    assert_eq!(seen.timestamp_millis(), (t0 + secs(61)).timestamp_millis());

    assert_eq!(
        code(
            s.insert_api_key(
                TenantId::new(),
                new_key("pfx4", KeyScope::tenant_wide(KeyAccess::Read))
            )
            .await
        ),
        Code::TenantNotFound
    );
}

fn identity(subject: &str, email: Option<&str>, verified: bool) -> ExternalIdentity {
    ExternalIdentity {
        issuer: "https://idp.example.com".into(),
        subject: subject.into(),
        email: email.map(Into::into),
        email_verified: verified,
        display_name: Some("Ext".into()),
    }
}

#[tokio::test]
async fn external_identities_link_once_and_respect_local_accounts() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let first = s
        .upsert_external_user(&identity("sub-1", Some("ext@example.com"), true))
        .await
        .unwrap();
    assert_eq!(first.email.as_deref(), Some("ext@example.com"));
    assert!(!first.has_password && first.email_verified_at.is_some());
    let again = s
        .upsert_external_user(&identity("sub-1", Some("changed@example.com"), true))
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "linked by issuer + subject");

    // No email at all is fine.
    let anon = s
        .upsert_external_user(&identity("sub-2", None, false))
        .await
        .unwrap();
    assert_eq!(anon.email, None);
    let anon2 = s
        .upsert_external_user(&identity("sub-3", None, false))
        .await
        .unwrap();
    assert_ne!(anon.id, anon2.id);

    // A local account's address links only when the provider vouches for it.
    let (ann, _) = owner(s, "ann@example.com").await;
    assert_eq!(
        code(
            s.upsert_external_user(&identity("sub-4", Some("ann@example.com"), false))
                .await
        ),
        Code::EmailTaken
    );
    let linked = s
        .upsert_external_user(&identity("sub-4", Some("ann@example.com"), true))
        .await
        .unwrap();
    assert_eq!(linked.id, ann.id);
}

#[tokio::test]
async fn tenant_aliases_map_external_tenants() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let iss = "https://idp.example.com";
    assert_eq!(
        s.resolve_tenant_alias(iss, "org-1", None).await.unwrap(),
        None
    );
    let created = s
        .resolve_tenant_alias(iss, "org-1", Some("Org One"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.get_tenant(created).await.unwrap().name, "Org One");
    assert_eq!(
        s.resolve_tenant_alias(iss, "org-1", Some("again"))
            .await
            .unwrap(),
        Some(created)
    );
    assert_eq!(
        s.resolve_tenant_alias("https://other", "org-1", None)
            .await
            .unwrap(),
        None,
        "per issuer"
    );
    let (_, mine) = owner(s, "ann@example.com").await;
    s.set_tenant_alias(iss, "org-2", mine).await.unwrap();
    assert_eq!(
        s.resolve_tenant_alias(iss, "org-2", None).await.unwrap(),
        Some(mine)
    );
    assert_eq!(
        code(s.set_tenant_alias(iss, "org-3", TenantId::new()).await),
        Code::TenantNotFound
    );
}

#[tokio::test]
async fn usage_counts_a_tenants_documents_and_bytes() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (_, t1) = owner(s, "ann@example.com").await;
    let (_, t2) = owner(s, "bob@example.com").await;
    assert_eq!(s.tenant_usage(t1).await.unwrap(), TenantUsage::default());
    let c = s
        .create_collection(
            t1,
            NewCollection {
                name: "docs".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (i, size) in [100u64, 250].into_iter().enumerate() {
        s.insert_document(
            t1,
            NewDocument {
                id: DocumentId::new(),
                collection_id: c.id,
                filename: format!("f{i}.txt"),
                declared_mime: "text/plain".into(),
                size_bytes: size,
                sha256: format!("sha{i}"),
                blob_key: format!("blob{i}"),
                metadata: Metadata::new(),
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        s.tenant_usage(t1).await.unwrap(),
        TenantUsage {
            documents: 2,
            // The originals' bytes plus their metadata's JSON (`{}`: 2 bytes each).
            stored_bytes: 354
        }
    );
    assert_eq!(s.tenant_usage(t2).await.unwrap(), TenantUsage::default());
}

/// A key made by `by` in `tenant`, with a unique prefix.
async fn key_by(s: &Store, tenant: TenantId, by: UserId, prefix: &str) -> ApiKeyId {
    let mut new = new_key(prefix, KeyScope::tenant_wide(KeyAccess::ReadWrite));
    new.created_by = Some(by);
    s.insert_api_key(tenant, new).await.unwrap().id
}

async fn key_revoked(s: &Store, tenant: TenantId, id: ApiKeyId) -> bool {
    s.get_api_key(tenant, id).await.unwrap().revoked_at.is_some()
}

async fn session_revoked(s: &Store, tenant: TenantId, id: SessionId) -> bool {
    s.get_session(tenant, id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some()
}

// Issue 21, H2: keys die with their creator's right to create keys.
#[tokio::test]
async fn losing_the_right_to_make_keys_revokes_the_keys_one_made() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (ann, t) = owner(s, "ann@example.com").await;
    let (bob, bobs_own) = owner(s, "bob@example.com").await;
    s.add_member(t, bob.id, Role::Admin).await.unwrap();
    let anns = key_by(s, t, ann.id, "h2ann").await;
    let bob_home = key_by(s, bobs_own, bob.id, "h2home").await;

    // Demoted below admin: his keys in that tenant go, nothing else does.
    let k1 = key_by(s, t, bob.id, "h2k1").await;
    s.set_member_role(t, bob.id, Role::Admin).await.unwrap();
    assert!(!key_revoked(s, t, k1).await, "still an admin");
    s.set_member_role(t, bob.id, Role::Member).await.unwrap();
    assert!(key_revoked(s, t, k1).await);
    assert!(!key_revoked(s, t, anns).await);
    assert!(!key_revoked(s, bobs_own, bob_home).await);

    // The same through an external provider's role.
    s.set_member_role(t, bob.id, Role::Admin).await.unwrap();
    let k2 = key_by(s, t, bob.id, "h2k2").await;
    s.upsert_member(t, bob.id, Role::Admin, true).await.unwrap();
    assert!(!key_revoked(s, t, k2).await);
    s.upsert_member(t, bob.id, Role::Viewer, true).await.unwrap();
    assert!(key_revoked(s, t, k2).await);

    // Removed.
    s.set_member_role(t, bob.id, Role::Admin).await.unwrap();
    let k3 = key_by(s, t, bob.id, "h2k3").await;
    s.remove_member(t, bob.id).await.unwrap();
    assert!(key_revoked(s, t, k3).await);
    assert!(!key_revoked(s, bobs_own, bob_home).await);
    assert!(!key_revoked(s, t, anns).await);

    // Disabled: every key he made, and every session, everywhere.
    let live = session(s, bob.id, bobs_own, "h2-bob").await;
    s.set_user_disabled(bob.id, true).await.unwrap();
    assert!(key_revoked(s, bobs_own, bob_home).await);
    assert!(session_revoked(s, bobs_own, live.id).await);
    assert!(!key_revoked(s, t, anns).await);
}

// Issue 21, M4: a never-verified account, taken back by its address's owner, starts clean.
#[tokio::test]
async fn a_reset_of_an_unverified_account_leaves_its_former_holder_nothing() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (victim, t) = owner(s, "victim@example.com").await;
    let (mallory, malls) = owner(s, "mallory@example.com").await;
    let (carol, carols) = owner(s, "carol@example.com").await;
    // In the victim's (attacker-made) tenant: an accomplice with a key and a session, keys of
    // the account, pending invitations.
    s.add_member(t, mallory.id, Role::Admin).await.unwrap();
    let own_key = key_by(s, t, victim.id, "m4own").await;
    let mallorys_key = key_by(s, t, mallory.id, "m4mal").await;
    let mallorys_session = session(s, mallory.id, t, "m4-mal-t").await;
    let victims_session = session(s, victim.id, t, "m4-vic-t").await;
    let mut invite = one_time("m4-inv", TokenPurpose::Invite, 600);
    invite.tenant_id = Some(t);
    invite.email = Some("later@example.com".into());
    invite.role = Some(Role::Member);
    invite.created_by = Some(mallory.id);
    s.insert_one_time_token(invite).await.unwrap();
    // In Carol's tenant the account is an admin: its key and invitation go; Carol's stay, and
    // so do Carol and her tenant's other members.
    s.add_member(carols, victim.id, Role::Admin).await.unwrap();
    let carols_key = key_by(s, carols, carol.id, "m4car").await;
    let victim_in_carols = key_by(s, carols, victim.id, "m4vc").await;
    let mut invite = one_time("m4-inv-c", TokenPurpose::Invite, 600);
    invite.tenant_id = Some(carols);
    invite.email = Some("friend@example.com".into());
    invite.role = Some(Role::Viewer);
    invite.created_by = Some(victim.id);
    s.insert_one_time_token(invite).await.unwrap();
    let mut carols_invite = one_time("m4-inv-c2", TokenPurpose::Invite, 600);
    carols_invite.tenant_id = Some(carols);
    carols_invite.email = Some("dan@example.com".into());
    carols_invite.role = Some(Role::Viewer);
    carols_invite.created_by = Some(carol.id);
    s.insert_one_time_token(carols_invite).await.unwrap();
    // Mallory's own tenant is hers.
    let mallorys_home_key = key_by(s, malls, mallory.id, "m4home").await;
    let mallorys_home = session(s, mallory.id, malls, "m4-mal-home").await;

    let undone = s.reset_unverified_account(victim.id, now()).await.unwrap();
    assert_eq!(
        undone,
        AccountReset {
            sessions_revoked: 2,
            keys_revoked: 3,
            members_removed: 1,
            invites_deleted: 2,
        }
    );
    assert!(key_revoked(s, t, own_key).await);
    assert!(key_revoked(s, t, mallorys_key).await);
    assert!(key_revoked(s, carols, victim_in_carols).await);
    assert!(!key_revoked(s, carols, carols_key).await);
    assert!(!key_revoked(s, malls, mallorys_home_key).await);
    assert!(session_revoked(s, t, mallorys_session.id).await);
    assert!(session_revoked(s, t, victims_session.id).await);
    assert!(!session_revoked(s, malls, mallorys_home.id).await);
    assert!(s.get_membership(t, mallory.id).await.unwrap().is_none());
    assert_eq!(
        s.get_membership(t, victim.id).await.unwrap().unwrap().role,
        Role::Owner
    );
    assert!(s.get_membership(carols, victim.id).await.unwrap().is_some());
    assert!(s.get_membership(carols, carol.id).await.unwrap().is_some());
    for gone in ["m4-inv", "m4-inv-c"] {
        assert_eq!(
            code(s.peek_one_time_token(gone, TokenPurpose::Invite, now()).await),
            Code::TokenInvalid,
            "{gone}"
        );
    }
    s.peek_one_time_token("m4-inv-c2", TokenPurpose::Invite, now())
        .await
        .unwrap();
}
