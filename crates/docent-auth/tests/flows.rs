//! Every account flow of [`AuthService`] over the real SQLite store, with its failure paths.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use common::*;
use docent_auth::*;
use docent_domain::auth::{AccountTenant, AuthStore, NewApiKey};
use docent_domain::*;

fn code<T: std::fmt::Debug>(r: Result<T>) -> Code {
    r.expect_err("expected an error").code
}

#[tokio::test]
async fn signup_creates_a_tenant_signs_in_and_mails_a_verification_link() {
    let app = app().await;
    let s = app.signup("Ann@Example.com ").await;
    assert_eq!(s.user.email.as_deref(), Some("ann@example.com"));
    assert_eq!(s.role, Role::Owner);
    assert!(s.user.email_verified_at.is_none());
    let tenant = app.auth.tenant(s.tenant_id).await.unwrap();
    assert_eq!(tenant.name, "ann's workspace");

    let p = app.principal(&s).await;
    assert_eq!(p.tenant_id, s.tenant_id);
    assert_eq!(p.role, Role::Owner);
    assert_eq!(p.user_id(), Some(s.user.id));
    assert_eq!(
        p.actor,
        Actor::User {
            id: s.user.id,
            session: Some(s.session_id)
        }
    );

    let mail = app.mail.last_to("ann@example.com").unwrap();
    assert_eq!(mail.kind, MailKind::VerifyEmail);
    assert!(
        mail.body
            .contains("http://docent.test/#/verify-email?token="),
        "{}",
        mail.body
    );
    let token = app.mailed_token("ann@example.com");
    let user = app.auth.confirm_email(&token).await.unwrap();
    assert!(user.email_verified_at.is_some());
    assert_eq!(
        code(app.auth.confirm_email(&token).await),
        Code::TokenInvalid,
        "single use"
    );
    assert_eq!(
        code(app.auth.confirm_email("bogus").await),
        Code::TokenInvalid
    );

    // Bad input.
    let bad = |email: &str, password: &str| Signup {
        email: email.into(),
        password: password.into(),
        ..Default::default()
    };
    assert_eq!(
        code(app.auth.signup(bad("not-an-email", PASSWORD)).await),
        Code::InvalidField
    );
    assert_eq!(
        code(app.auth.signup(bad("bob@example.com", "short")).await),
        Code::InvalidField
    );
    assert_eq!(
        code(app.auth.signup(bad("ann@example.com", PASSWORD)).await),
        Code::EmailTaken
    );
    let named = app
        .auth
        .signup(Signup {
            email: "cleo@example.com".into(),
            password: PASSWORD.into(),
            display_name: Some("Cleo".into()),
            tenant_name: Some("Research".into()),
            invite_token: None,
        })
        .await
        .unwrap();
    let SignupOutcome::SignedIn(named) = named else {
        panic!("signed in expected")
    };
    assert_eq!(
        app.auth.tenant(named.tenant_id).await.unwrap().name,
        "Research"
    );
    assert_ne!(named.tenant_id, s.tenant_id);
}

#[tokio::test]
async fn verification_can_be_required_and_does_not_reveal_accounts() {
    let app = app_with(|s| s.require_email_verification = true, Vec::new).await;
    let req = || Signup {
        email: "ann@example.com".into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let out = app.auth.signup(req()).await.unwrap();
    assert!(
        matches!(out, SignupOutcome::VerificationRequired { ref email } if email == "ann@example.com")
    );
    assert_eq!(
        code(
            app.auth
                .signin("ann@example.com", PASSWORD, None, client())
                .await
        ),
        Code::EmailNotVerified
    );
    // A wrong password still says only "wrong credentials".
    assert_eq!(
        code(
            app.auth
                .signin("ann@example.com", "wrong password!", None, client())
                .await
        ),
        Code::InvalidCredentials
    );

    // Signing up again with the same address looks the same; the owner gets a notice.
    let again = app.auth.signup(req()).await.unwrap();
    assert!(matches!(again, SignupOutcome::VerificationRequired { .. }));
    assert_eq!(
        app.mail.last_to("ann@example.com").unwrap().kind,
        MailKind::Notice
    );

    // Asking for a new link replaces the old one.
    let first = app
        .mail
        .sent()
        .into_iter()
        .find(|m| m.kind == MailKind::VerifyEmail)
        .map(|m| docent_auth::mail::token_from_body(&m.body).unwrap())
        .unwrap();
    app.auth
        .request_email_verification("ann@example.com")
        .await
        .unwrap();
    let second = app.mailed_token("ann@example.com");
    assert_ne!(first, second);
    assert_eq!(
        code(app.auth.confirm_email(&first).await),
        Code::TokenInvalid
    );
    app.auth.confirm_email(&second).await.unwrap();
    let s = app
        .auth
        .signin("ann@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    assert_eq!(s.role, Role::Owner);

    // Unknown or verified addresses: nothing is sent, and nothing is revealed.
    let before = app.mail.sent().len();
    app.auth
        .request_email_verification("nobody@example.com")
        .await
        .unwrap();
    app.auth
        .request_email_verification("ann@example.com")
        .await
        .unwrap();
    app.auth
        .request_email_verification("garbage")
        .await
        .unwrap();
    assert_eq!(app.mail.sent().len(), before);
}

#[tokio::test]
async fn expired_verification_links_are_refused() {
    let app = app_with(|s| s.verification_token_ttl = Duration::ZERO, Vec::new).await;
    app.signup("ann@example.com").await;
    let token = app.mailed_token("ann@example.com");
    assert_eq!(
        code(app.auth.confirm_email(&token).await),
        Code::TokenExpired
    );
}

#[tokio::test]
async fn signin_checks_passwords_and_locks_out_brute_force() {
    let app = app().await;
    let ann = app.signup("ann@example.com").await;
    let s = app
        .auth
        .signin("ANN@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    assert_eq!(
        (s.user.id, s.tenant_id, s.role),
        (ann.user.id, ann.tenant_id, Role::Owner)
    );
    assert_ne!(
        s.session_id, ann.session_id,
        "each sign-in is its own session"
    );

    let wrong = |email: &'static str, ip: &'static str| {
        let auth = &app.auth;
        async move {
            auth.signin(
                email,
                "wrong password!",
                None,
                ClientInfo {
                    ip: ip.parse::<IpAddr>().unwrap(),
                },
            )
            .await
        }
    };
    assert_eq!(
        code(wrong("nobody@example.com", "192.0.2.1").await),
        Code::InvalidCredentials
    );
    assert_eq!(
        code(wrong("ann@example.com", "192.0.2.1").await),
        Code::InvalidCredentials
    );
    assert_eq!(
        code(wrong("ann@example.com", "192.0.2.1").await),
        Code::InvalidCredentials
    );
    assert_eq!(
        code(wrong("ann@example.com", "192.0.2.1").await),
        Code::InvalidCredentials
    );
    // Three failures: this account is locked from this address, even with the right password.
    let locked = app
        .auth
        .signin(
            "ann@example.com",
            PASSWORD,
            None,
            ClientInfo {
                ip: "192.0.2.1".parse().unwrap(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(locked.code, Code::TooManyAttempts);
    assert_eq!(locked.retry_after, Some(Duration::from_secs(30)));
    // Not from elsewhere: an attacker cannot lock the owner out.
    app.auth
        .signin(
            "ann@example.com",
            PASSWORD,
            None,
            ClientInfo {
                ip: "192.0.2.2".parse().unwrap(),
            },
        )
        .await
        .unwrap();

    // Disabled accounts cannot sign in (after the password check, so nothing leaks).
    app.store
        .set_user_disabled(ann.user.id, true)
        .await
        .unwrap();
    assert_eq!(
        code(
            app.auth
                .signin("ann@example.com", PASSWORD, None, client())
                .await
        ),
        Code::AccountDisabled
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = app().await;
    let s = app.signup("ann@example.com").await;
    let r1 = s.tokens.refresh_token.clone();
    let second = app.auth.refresh(&r1).await.unwrap();
    let r2 = second.tokens.refresh_token.clone();
    assert_ne!(r1, r2);
    assert_eq!(second.session_id, s.session_id, "same family");
    assert_eq!(app.principal(&second).await.tenant_id, s.tenant_id);

    // Presenting r1 again: reuse detected, the whole family is revoked.
    assert_eq!(code(app.auth.refresh(&r1).await), Code::RefreshTokenReused);
    assert_eq!(code(app.auth.refresh(&r2).await), Code::TokenInvalid);
    assert_eq!(code(app.auth.refresh("garbage").await), Code::TokenInvalid);

    // Other sessions are unaffected.
    let other = app
        .auth
        .signin("ann@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    app.auth.refresh(&other.tokens.refresh_token).await.unwrap();
}

#[tokio::test]
async fn refresh_picks_up_role_changes_and_removal() {
    let app = app().await;
    let ann = app.signup("ann@example.com").await;
    let bob = app.signup("bob@example.com").await;
    app.store
        .add_member(ann.tenant_id, bob.user.id, Role::Viewer)
        .await
        .unwrap();
    let bob_p = app.principal(&bob).await;
    let in_ann = app.auth.switch_tenant(&bob_p, ann.tenant_id).await.unwrap();
    assert_eq!(in_ann.role, Role::Viewer);

    let owner = app.principal(&ann).await;
    app.auth
        .set_member_role(&owner, bob.user.id, Role::Member)
        .await
        .unwrap();
    let refreshed = app
        .auth
        .refresh(&in_ann.tokens.refresh_token)
        .await
        .unwrap();
    assert_eq!(refreshed.role, Role::Member);
    assert_eq!(app.principal(&refreshed).await.role, Role::Member);

    app.auth.remove_member(&owner, bob.user.id).await.unwrap();
    assert_eq!(
        code(app.auth.refresh(&refreshed.tokens.refresh_token).await),
        Code::TokenInvalid
    );
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let app = app_with(|s| s.refresh_token_ttl = Duration::ZERO, Vec::new).await;
    let s = app.signup("ann@example.com").await;
    assert_eq!(
        code(app.auth.refresh(&s.tokens.refresh_token).await),
        Code::TokenExpired
    );
}

#[tokio::test]
async fn signout_revokes_sessions() {
    let app = app().await;
    let a = app.signup("ann@example.com").await;
    app.auth.signout(&a.tokens.refresh_token).await.unwrap();
    app.auth.signout(&a.tokens.refresh_token).await.unwrap();
    app.auth.signout("never-issued").await.unwrap();
    assert_eq!(
        code(app.auth.refresh(&a.tokens.refresh_token).await),
        Code::TokenInvalid
    );

    let b = app
        .auth
        .signin("ann@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    app.auth
        .signout_session(&app.principal(&b).await)
        .await
        .unwrap();
    assert_eq!(
        code(app.auth.refresh(&b.tokens.refresh_token).await),
        Code::TokenInvalid
    );

    let c = app
        .auth
        .signin("ann@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    let d = app
        .auth
        .signin("ann@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    assert_eq!(
        app.auth
            .signout_everywhere(&app.principal(&c).await)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        code(app.auth.refresh(&d.tokens.refresh_token).await),
        Code::TokenInvalid
    );
}

/// Issue 21 (low): a reset request takes the same time for a known and an unknown address.
#[tokio::test]
async fn password_reset_requests_answer_in_constant_time() {
    let app = app().await;
    app.signup("ann@example.com").await;
    let mut took = Vec::new();
    for email in ["ann@example.com", "nobody@example.com", "ann@example.com"] {
        let started = std::time::Instant::now();
        app.auth.request_password_reset(email).await.unwrap();
        took.push(started.elapsed());
    }
    for t in &took {
        assert!(*t >= RESET_ANSWER_TIME, "{took:?}");
        assert!(
            *t < RESET_ANSWER_TIME + Duration::from_millis(150),
            "{took:?}"
        );
    }
    // The mail of a known address is out by the time the answer comes.
    assert_eq!(app.mail.sent().len(), 3, "verification + two resets");
}

/// Issue 21 (low): passwords on the common list are refused wherever one is set.
#[tokio::test]
async fn common_passwords_are_refused() {
    let app = app().await;
    let err = app
        .auth
        .signup(Signup {
            email: "ann@example.com".into(),
            password: "Password123!".into(),
            ..Signup::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidField);
    assert!(err.message.contains("common"), "{}", err.message);
}

#[tokio::test]
async fn password_reset_sets_a_new_password_and_signs_out_everywhere() {
    let app = app().await;
    let s = app.signup("ann@example.com").await;
    let before = app.mail.sent().len();
    app.auth
        .request_password_reset("nobody@example.com")
        .await
        .unwrap();
    app.auth
        .request_password_reset("not an email")
        .await
        .unwrap();
    assert_eq!(
        app.mail.sent().len(),
        before,
        "unknown addresses get nothing, and no error"
    );

    app.auth
        .request_password_reset("ann@example.com")
        .await
        .unwrap();
    let mail = app.mail.last_to("ann@example.com").unwrap();
    assert_eq!(mail.kind, MailKind::ResetPassword);
    let token = app.mailed_token("ann@example.com");

    // A weak new password is refused without using the link up.
    assert_eq!(
        code(app.auth.confirm_password_reset(&token, "short").await),
        Code::InvalidField
    );
    let user = app
        .auth
        .confirm_password_reset(&token, "a brand new password")
        .await
        .unwrap();
    assert!(
        user.email_verified_at.is_some(),
        "the mail reached its owner"
    );
    assert_eq!(
        code(
            app.auth
                .confirm_password_reset(&token, "another new password")
                .await
        ),
        Code::TokenInvalid
    );
    assert_eq!(
        code(app.auth.refresh(&s.tokens.refresh_token).await),
        Code::TokenInvalid
    );
    assert_eq!(
        code(
            app.auth
                .signin("ann@example.com", PASSWORD, None, client())
                .await
        ),
        Code::InvalidCredentials
    );
    app.auth
        .signin("ann@example.com", "a brand new password", None, client())
        .await
        .unwrap();

    // A newer request replaces an older link.
    app.auth
        .request_password_reset("ann@example.com")
        .await
        .unwrap();
    let old = app.mailed_token("ann@example.com");
    app.auth
        .request_password_reset("ann@example.com")
        .await
        .unwrap();
    assert_eq!(
        code(
            app.auth
                .confirm_password_reset(&old, "yet another password")
                .await
        ),
        Code::TokenInvalid
    );
}

#[tokio::test]
async fn expired_reset_links_are_refused() {
    let app = app_with(|s| s.reset_token_ttl = Duration::ZERO, Vec::new).await;
    app.signup("ann@example.com").await;
    app.auth
        .request_password_reset("ann@example.com")
        .await
        .unwrap();
    let token = app.mailed_token("ann@example.com");
    assert_eq!(
        code(
            app.auth
                .confirm_password_reset(&token, "a brand new password")
                .await
        ),
        Code::TokenExpired
    );
}

#[tokio::test]
async fn invitations_admit_new_and_existing_users() {
    let app = app_with(|s| s.allow_signup = false, Vec::new).await;
    // With open sign-up off, the first account comes from the operator.
    let (ann_user, ann_m) = app
        .auth
        .create_user(CreateUser {
            email: "ann@example.com".into(),
            password: Some(PASSWORD.into()),
            display_name: None,
            tenant: AccountTenant::New {
                name: "Acme".into(),
            },
        })
        .await
        .unwrap();
    assert!(ann_user.email_verified_at.is_some());
    assert_eq!(ann_m.role, Role::Owner);
    let ann = app
        .auth
        .signin("ann@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    let owner = app.principal(&ann).await;
    assert_eq!(
        code(
            app.auth
                .signup(Signup {
                    email: "eve@example.com".into(),
                    password: PASSWORD.into(),
                    ..Default::default()
                })
                .await
        ),
        Code::SignupDisabled
    );

    // A new user signs up through the invitation and lands in Acme with the invited role.
    let inv = app
        .auth
        .invite(&owner, "Bob@Example.com", Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        (inv.email.as_str(), inv.role),
        ("bob@example.com", Role::Admin)
    );
    let mail = app.mail.last_to("bob@example.com").unwrap();
    assert_eq!(mail.kind, MailKind::Invite);
    assert!(mail.subject.contains("Acme"));
    let token = app.mailed_token("bob@example.com");
    let signup = |email: &str, token: &str| Signup {
        email: email.into(),
        password: PASSWORD.into(),
        invite_token: Some(token.into()),
        ..Default::default()
    };
    assert_eq!(
        code(app.auth.signup(signup("mallory@example.com", &token)).await),
        Code::TokenInvalid,
        "the invitation is bound to its address"
    );
    let SignupOutcome::SignedIn(bob) = app
        .auth
        .signup(signup("bob@example.com", &token))
        .await
        .unwrap()
    else {
        panic!("signed in expected")
    };
    assert_eq!((bob.tenant_id, bob.role), (ann.tenant_id, Role::Admin));
    assert!(bob.user.email_verified_at.is_some());
    assert_eq!(
        app.auth
            .my_tenants(&app.principal(&bob).await)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        code(app.auth.signup(signup("bob@example.com", &token)).await),
        Code::TokenInvalid,
        "single use"
    );

    // Role limits: admins cannot grant admin or owner (only owners can); members cannot invite.
    let bob_p = app.principal(&bob).await;
    for role in [Role::Owner, Role::Admin] {
        assert_eq!(
            code(app.auth.invite(&bob_p, "x@example.com", role).await),
            Code::InsufficientRole
        );
    }
    assert_eq!(
        code(
            app.auth
                .invite(&owner, "bob@example.com", Role::Member)
                .await
        ),
        Code::AlreadyMember
    );

    // An existing user (with their own tenant) accepts while signed in, then switches.
    let (cleo_user, cleo_m) = app
        .auth
        .create_user(CreateUser {
            email: "cleo@example.com".into(),
            password: Some(PASSWORD.into()),
            display_name: Some("Cleo".into()),
            tenant: AccountTenant::New {
                name: String::new(),
            },
        })
        .await
        .unwrap();
    assert_eq!(
        app.auth.tenant(cleo_m.tenant_id).await.unwrap().name,
        "Cleo's workspace"
    );
    app.auth
        .invite(&bob_p, "cleo@example.com", Role::Member)
        .await
        .unwrap();
    let token = app.mailed_token("cleo@example.com");
    let cleo = app
        .auth
        .signin("cleo@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    assert_eq!(cleo.tenant_id, cleo_m.tenant_id, "first tenant by default");
    let cleo_p = app.principal(&cleo).await;
    assert_eq!(
        code(app.auth.accept_invite(&bob_p, &token).await),
        Code::TokenInvalid,
        "someone else cannot accept it"
    );
    let m = app.auth.accept_invite(&cleo_p, &token).await.unwrap();
    assert_eq!(
        (m.tenant_id, m.user_id, m.role),
        (ann.tenant_id, cleo_user.id, Role::Member)
    );
    assert_eq!(app.auth.my_tenants(&cleo_p).await.unwrap().len(), 2);
    let switched = app
        .auth
        .switch_tenant(&cleo_p, ann.tenant_id)
        .await
        .unwrap();
    let p = app.principal(&switched).await;
    assert_eq!((p.tenant_id, p.role), (ann.tenant_id, Role::Member));
    assert_eq!(
        code(app.auth.invite(&p, "dan@example.com", Role::Viewer).await),
        Code::InsufficientRole
    );
    // Sign-in straight into a chosen tenant works too; a foreign one is "not found".
    let direct = app
        .auth
        .signin("cleo@example.com", PASSWORD, Some(ann.tenant_id), client())
        .await
        .unwrap();
    assert_eq!(direct.tenant_id, ann.tenant_id);
    let stranger = app
        .auth
        .create_user(CreateUser {
            email: "dan@example.com".into(),
            password: Some(PASSWORD.into()),
            display_name: None,
            tenant: AccountTenant::New {
                name: "Dan's".into(),
            },
        })
        .await
        .unwrap()
        .1;
    assert_eq!(
        code(
            app.auth
                .signin(
                    "cleo@example.com",
                    PASSWORD,
                    Some(stranger.tenant_id),
                    client()
                )
                .await
        ),
        Code::TenantNotFound
    );
    assert_eq!(
        code(app.auth.switch_tenant(&p, stranger.tenant_id).await),
        Code::TenantNotFound
    );
}

#[tokio::test]
async fn expired_invitations_are_refused() {
    let app = app_with(|s| s.invite_token_ttl = Duration::ZERO, Vec::new).await;
    let ann = app.signup("ann@example.com").await;
    app.auth
        .invite(&app.principal(&ann).await, "bob@example.com", Role::Member)
        .await
        .unwrap();
    let token = app.mailed_token("bob@example.com");
    let err = app
        .auth
        .signup(Signup {
            email: "bob@example.com".into(),
            password: PASSWORD.into(),
            invite_token: Some(token),
            ..Default::default()
        })
        .await;
    assert_eq!(code(err), Code::TokenExpired);
}

#[tokio::test]
async fn members_are_managed_within_role_limits() {
    let app = app().await;
    let ann = app.signup("ann@example.com").await;
    let owner = app.principal(&ann).await;
    let bob = app.signup("bob@example.com").await;
    let cleo = app.signup("cleo@example.com").await;
    app.store
        .add_member(ann.tenant_id, bob.user.id, Role::Admin)
        .await
        .unwrap();
    app.store
        .add_member(ann.tenant_id, cleo.user.id, Role::Viewer)
        .await
        .unwrap();
    let admin = app
        .principal(
            &app.auth
                .switch_tenant(&app.principal(&bob).await, ann.tenant_id)
                .await
                .unwrap(),
        )
        .await;

    let members = app.auth.list_members(&admin).await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.user.email.is_some()));
    // Admins manage viewers and members, not admins or owners.
    app.auth
        .set_member_role(&admin, cleo.user.id, Role::Member)
        .await
        .unwrap();
    assert_eq!(
        code(
            app.auth
                .set_member_role(&admin, cleo.user.id, Role::Admin)
                .await
        ),
        Code::InsufficientRole
    );
    assert_eq!(
        code(
            app.auth
                .set_member_role(&admin, ann.user.id, Role::Member)
                .await
        ),
        Code::InsufficientRole
    );
    assert_eq!(
        code(app.auth.remove_member(&admin, ann.user.id).await),
        Code::InsufficientRole
    );
    // Owners can; but never leave the tenant without an owner.
    assert_eq!(
        code(
            app.auth
                .set_member_role(&owner, ann.user.id, Role::Admin)
                .await
        ),
        Code::LastOwner
    );
    app.auth
        .set_member_role(&owner, bob.user.id, Role::Owner)
        .await
        .unwrap();
    app.auth
        .set_member_role(&owner, ann.user.id, Role::Admin)
        .await
        .unwrap();
    // Users of other tenants are "not found".
    let dan = app.signup("dan@example.com").await;
    assert_eq!(
        code(
            app.auth
                .set_member_role(&owner, dan.user.id, Role::Member)
                .await
        ),
        Code::UserNotFound
    );
    // Anyone may leave; viewers may not manage.
    let cleo_in = app
        .principal(
            &app.auth
                .switch_tenant(&app.principal(&cleo).await, ann.tenant_id)
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(
        code(app.auth.list_members(&cleo_in).await),
        Code::InsufficientRole
    );
    app.auth
        .remove_member(&cleo_in, cleo.user.id)
        .await
        .unwrap();
    assert_eq!(app.auth.list_members(&admin).await.unwrap().len(), 2);
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_revocable_and_tenant_bound() {
    let app = app().await;
    let ann = app.signup("ann@example.com").await;
    let owner = app.principal(&ann).await;
    let allowed = CollectionId::new();
    let created = app
        .auth
        .create_api_key(
            &owner,
            CreateApiKey {
                name: "ci".into(),
                access: KeyAccess::Read,
                collections: Some(vec![allowed, allowed]),
                bots: None,
                expires_at: Some(Utc::now() + chrono::Duration::days(30)),
            },
        )
        .await
        .unwrap();
    assert!(
        created
            .secret
            .starts_with(&format!("dk_{}_", created.key.prefix))
    );
    assert!(
        !format!("{created:?}").contains(&created.secret),
        "Debug never shows the secret"
    );
    assert_eq!(
        created.key.scope.collections,
        Some(vec![allowed]),
        "deduplicated"
    );
    let listed = app
        .auth
        .list_api_keys(&owner, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].prefix, created.key.prefix);

    let p = app.auth.authenticate_bearer(&created.secret).await.unwrap();
    assert_eq!(p.tenant_id, ann.tenant_id);
    assert_eq!(p.actor, Actor::ApiKey { id: created.key.id });
    assert_eq!(p.role, Role::Viewer);
    assert_eq!(code(p.require_write()), Code::InsufficientScope);
    assert!(p.can_access_collection(allowed));
    assert!(!p.can_access_collection(CollectionId::new()));
    assert_eq!(
        code(app.auth.create_api_key(&p, key_req()).await),
        Code::InsufficientScope
    );
    assert_eq!(
        code(app.auth.switch_tenant(&p, ann.tenant_id).await),
        Code::InsufficientScope
    );
    let used = app
        .store
        .get_api_key(ann.tenant_id, created.key.id)
        .await
        .unwrap();
    assert!(used.last_used_at.is_some());

    // Tampered secrets and garbage are invalid.
    let mut tampered = created.secret.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    for bad in [
        tampered.as_str(),
        "dk_nope_nope",
        "dk_",
        "dk_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ] {
        assert_eq!(
            code(app.auth.authenticate_bearer(bad).await),
            Code::InvalidApiKey,
            "{bad}"
        );
    }

    // A read-write key may write.
    let rw = app.auth.create_api_key(&owner, key_req()).await.unwrap();
    let rw_p = app.auth.authenticate_api_key(&rw.secret).await.unwrap();
    rw_p.require_write().unwrap();
    assert_eq!(rw_p.role, Role::Member);
    assert_eq!(
        code(rw_p.require_role(Role::Admin)),
        Code::InsufficientScope
    );

    // Members cannot create keys; other tenants cannot see or revoke them.
    let bob = app.signup("bob@example.com").await;
    let bob_p = app.principal(&bob).await;
    assert!(
        app.auth
            .list_api_keys(&bob_p, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        code(app.auth.revoke_api_key(&bob_p, rw.key.id).await),
        Code::ApiKeyNotFound
    );
    app.store
        .add_member(ann.tenant_id, bob.user.id, Role::Member)
        .await
        .unwrap();
    let bob_in = app
        .principal(&app.auth.switch_tenant(&bob_p, ann.tenant_id).await.unwrap())
        .await;
    assert_eq!(
        code(app.auth.create_api_key(&bob_in, key_req()).await),
        Code::InsufficientRole
    );

    // Revoked keys stop working at once.
    app.auth.revoke_api_key(&owner, rw.key.id).await.unwrap();
    assert_eq!(
        code(app.auth.authenticate_bearer(&rw.secret).await),
        Code::ApiKeyRevoked
    );

    // Expiry in the past is refused at creation, and expired keys are refused at use.
    let mut past = key_req();
    past.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(
        code(app.auth.create_api_key(&owner, past).await),
        Code::InvalidField
    );
    let generated = secrets::new_api_key();
    app.store
        .insert_api_key(
            ann.tenant_id,
            NewApiKey {
                id: ApiKeyId::new(),
                name: "old".into(),
                prefix: generated.prefix.clone(),
                secret_hash: secrets::hash_token(&generated.key),
                scope: KeyScope::tenant_wide(KeyAccess::ReadWrite),
                created_by: None,
                expires_at: Some(Utc::now() - chrono::Duration::seconds(5)),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        code(app.auth.authenticate_bearer(&generated.key).await),
        Code::ApiKeyExpired
    );

    let mut nameless = key_req();
    nameless.name = "  ".into();
    assert_eq!(
        code(app.auth.create_api_key(&owner, nameless).await),
        Code::MissingField
    );
}

fn key_req() -> CreateApiKey {
    CreateApiKey {
        name: "rw".into(),
        access: KeyAccess::ReadWrite,
        collections: None,
        bots: None,
        expires_at: None,
    }
}

#[tokio::test]
async fn bearer_credentials_that_are_not_ours_are_refused() {
    let app = app().await;
    let s = app.signup("ann@example.com").await;
    assert_eq!(
        code(app.auth.authenticate_bearer("").await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(app.auth.authenticate_bearer("garbage").await),
        Code::TokenInvalid
    );
    // A token from another deployment's key.
    let other_key = load_or_create_ed25519_key(&app.dir.path().join("other.pem")).unwrap();
    let other = JwtKeys::eddsa(
        secrecy::ExposeSecret::expose_secret(&other_key).as_bytes(),
        jwt_settings(),
    )
    .unwrap();
    let foreign = other
        .issue(
            s.user.id,
            s.tenant_id,
            Role::Owner,
            s.session_id,
            Utc::now(),
        )
        .unwrap();
    assert_eq!(
        code(app.auth.authenticate_bearer(&foreign.token).await),
        Code::TokenInvalid
    );
    // The refresh token is not an access token.
    assert_eq!(
        code(app.auth.authenticate_bearer(&s.tokens.refresh_token).await),
        Code::TokenInvalid
    );
}

#[tokio::test]
async fn first_run_setup_creates_the_first_owner_once() {
    let app = app().await;
    let first = app
        .auth
        .ensure_setup_token()
        .await
        .unwrap()
        .expect("no users yet");
    let second = app
        .auth
        .ensure_setup_token()
        .await
        .unwrap()
        .expect("still no users");
    assert!(
        app.auth
            .setup_link(&second)
            .starts_with("http://docent.test/#/setup?token=")
    );
    let account = || Signup {
        email: "admin@example.com".into(),
        password: PASSWORD.into(),
        tenant_name: Some("Main".into()),
        ..Default::default()
    };
    assert_eq!(
        code(app.auth.complete_setup(&first, account()).await),
        Code::TokenInvalid,
        "a newer token replaces older ones"
    );
    assert_eq!(
        code(app.auth.complete_setup("bogus", account()).await),
        Code::TokenInvalid
    );
    let s = app.auth.complete_setup(&second, account()).await.unwrap();
    assert_eq!(s.role, Role::Owner);
    assert!(s.user.email_verified_at.is_some());
    assert_eq!(app.auth.tenant(s.tenant_id).await.unwrap().name, "Main");
    assert_eq!(app.auth.ensure_setup_token().await.unwrap(), None);
    assert_eq!(
        code(app.auth.complete_setup(&second, account()).await),
        Code::SetupCompleted
    );
}

#[tokio::test]
async fn operators_create_users_in_existing_tenants() {
    let app = app().await;
    let ann = app.signup("ann@example.com").await;
    let (admin, m) = app
        .auth
        .create_user(CreateUser {
            email: "ops@example.com".into(),
            password: None,
            display_name: None,
            tenant: AccountTenant::Existing {
                tenant_id: ann.tenant_id,
                role: Role::Admin,
            },
        })
        .await
        .unwrap();
    assert!(!admin.has_password);
    assert_eq!((m.tenant_id, m.role), (ann.tenant_id, Role::Admin));
    // No password: sign-in fails like any wrong password, until a reset sets one.
    assert_eq!(
        code(
            app.auth
                .signin("ops@example.com", PASSWORD, None, client())
                .await
        ),
        Code::InvalidCredentials
    );
    app.auth
        .request_password_reset("ops@example.com")
        .await
        .unwrap();
    let token = app.mailed_token("ops@example.com");
    app.auth
        .confirm_password_reset(&token, PASSWORD)
        .await
        .unwrap();
    let s = app
        .auth
        .signin("ops@example.com", PASSWORD, None, client())
        .await
        .unwrap();
    assert_eq!(s.role, Role::Admin);
    assert_eq!(
        code(
            app.auth
                .create_user(CreateUser {
                    email: "x@example.com".into(),
                    password: None,
                    display_name: None,
                    tenant: AccountTenant::Existing {
                        tenant_id: TenantId::new(),
                        role: Role::Admin,
                    },
                })
                .await
        ),
        Code::TenantNotFound
    );
}

#[tokio::test]
async fn quotas_and_rate_limits() {
    let app = app_with(|s| s.max_documents = 1, Vec::new).await;
    let ann = app.signup("ann@example.com").await;
    app.auth.check_quota(ann.tenant_id, 1, 10).await.unwrap();
    assert_eq!(
        code(app.auth.check_quota(ann.tenant_id, 2, 10).await),
        Code::QuotaExceeded
    );

    let p = app.principal(&ann).await;
    let key = AuthService::rate_key(&p);
    assert_eq!(key, RateKey::User(ann.user.id));
    // The default `ask` class allows a burst of 10.
    for _ in 0..10 {
        assert!(app.auth.check_rate(RouteClass::Ask, &key).allowed);
    }
    let refused = app.auth.check_rate(RouteClass::Ask, &key);
    assert!(!refused.allowed);
    assert_eq!(refused.into_result().unwrap_err().code, Code::RateLimited);
    assert!(app.auth.check_rate(RouteClass::Read, &key).allowed);
}

#[tokio::test]
async fn from_config_builds_a_working_service_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = docent_config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.auth.mode = docent_config::AuthMode::Builtin;
    config.auth.public_url = Some("https://docent.example.com/".into());
    let store = std::sync::Arc::new(
        docent_store::SqliteStore::open(&dir.path().join("meta.db"), 2, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    let auth = AuthService::from_config(&config, store.clone()).unwrap();
    assert!(
        dir.path().join("auth/jwt-ed25519.pem").exists(),
        "the signing key is generated"
    );
    let out = auth
        .signup(Signup {
            email: "ann@example.com".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let SignupOutcome::SignedIn(s) = out else {
        panic!("signed in expected")
    };
    // The verification mail went to a file under data_dir/mail, with a link on the public URL.
    let mails: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("https://docent.example.com/#/verify-email?token="),
        "{}",
        mails[0]
    );
    // A second service over the same data dir (a restart) accepts the first one's tokens.
    let restarted = AuthService::from_config(&config, store).unwrap();
    let p = restarted
        .authenticate_bearer(&s.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(p.tenant_id, s.tenant_id);
    assert_eq!(restarted.jwt().kid(), auth.jwt().kid());
    assert_eq!(restarted.jwt().jwks().keys.len(), 1);
    // Requests never show secrets when debug-printed.
    let req = Signup {
        email: "x@example.com".into(),
        password: "pw-canary-123456".into(),
        invite_token: Some("invite-canary".into()),
        ..Default::default()
    };
    let shown = format!("{req:?} {:?}", s.tokens);
    assert!(
        !shown.contains("canary") && !shown.contains(&s.tokens.refresh_token),
        "{shown}"
    );
}
