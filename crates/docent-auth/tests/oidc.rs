//! External identity (OIDC) against a JWKS server the test runs on 127.0.0.1:0, with keys
//! generated here: claim mapping to tenant, user and role; JWKS caching, refresh on an unknown
//! `kid` (rate-limited), stale keys during an outage; and the JWT attacks.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use common::*;
use docent_auth::*;
use docent_config::OidcProviderConfig;
use docent_domain::auth::AuthStore;
use docent_domain::*;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const ISSUER: &str = "https://idp.test/realms/acme";

/// An RSA signing key of the fake provider.
struct IdpKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

fn idp_key(kid: &str) -> IdpKey {
    use aws_lc_rs::encoding::AsDer as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.as_der().unwrap();
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    IdpKey {
        kid: kid.into(),
        encoding,
        jwk,
    }
}

#[derive(Clone, Default)]
struct Idp {
    keys: Arc<Mutex<Vec<Jwk>>>,
    hits: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
}

async fn jwks(State(idp): State<Idp>) -> Result<Json<Value>, StatusCode> {
    idp.hits.fetch_add(1, Ordering::SeqCst);
    if idp.down.load(Ordering::SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let keys = idp.keys.lock().await.clone();
    let mut set = serde_json::to_value(JwkSet { keys }).unwrap();
    // Providers publish keys docent must skip without failing: encryption keys, odd types.
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "RSA", "use": "enc", "kid": "enc-1", "n": "AQAB", "e": "AQAB"}));
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "weird", "kid": "odd"}));
    Ok(Json(set))
}

async fn serve_idp(idp: Idp) -> String {
    let app = axum::Router::new()
        .route("/certs", get(jwks))
        .with_state(idp);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/certs")
}

fn provider_config(jwks_url: &str) -> OidcProviderConfig {
    OidcProviderConfig {
        name: "acme-idp".into(),
        issuer: ISSUER.into(),
        audience: vec!["docent".into(), "docent-web".into()],
        jwks_url: jwks_url.into(),
        algorithms: vec!["RS256".into()],
        jwks_ttl: Duration::from_secs(600),
        jwks_min_refresh: Duration::ZERO,
        subject_claim: "sub".into(),
        email_claim: "email".into(),
        name_claim: "name".into(),
        tenant_claim: Some("org".into()),
        tenant_id: None,
        create_tenants: true,
        role_claim: Some("realm_access.roles".into()),
        role_map: BTreeMap::from([("docent-admins".to_owned(), "admin".to_owned())]),
        default_role: "viewer".into(),
    }
}

struct Setup {
    app: App,
    idp: Idp,
    key: IdpKey,
}

async fn setup(tweak: impl FnOnce(&mut OidcProviderConfig)) -> Setup {
    let idp = Idp::default();
    let key = idp_key("k1");
    idp.keys.lock().await.push(key.jwk.clone());
    let url = serve_idp(idp.clone()).await;
    let mut config = provider_config(&url);
    tweak(&mut config);
    let app = app_with(
        |_| {},
        || {
            vec![
                OidcProvider::new(&config, Duration::from_secs(30), reqwest::Client::new())
                    .expect("provider"),
            ]
        },
    )
    .await;
    Setup { app, idp, key }
}

fn claims(sub: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": ISSUER, "aud": "docent", "sub": sub, "iat": now, "nbf": now, "exp": now + 300,
        "email": format!("{sub}@Acme.example"), "email_verified": true, "name": "Ext User",
        "org": "acme", "realm_access": {"roles": ["offline_access", "docent-admins"]},
    })
}

fn sign(key: &IdpKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> Code {
    r.expect_err("expected an error").code
}

#[tokio::test]
async fn provider_tokens_map_to_tenant_user_and_role() {
    let Setup { app, idp, key } = setup(|_| {}).await;
    let p = app
        .auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    assert_eq!(
        p.role,
        Role::Admin,
        "mapped through role_map from a nested claim"
    );
    assert_eq!(p.key_scope, None);
    let user = app.store.get_user(p.user_id().unwrap()).await.unwrap();
    assert_eq!(user.email.as_deref(), Some("u1@acme.example"));
    assert_eq!(user.display_name.as_deref(), Some("Ext User"));
    assert!(!user.has_password);
    assert_eq!(
        app.store.get_tenant(p.tenant_id).await.unwrap().name,
        "acme"
    );

    // The same subject is the same user; the same org the same tenant; keys were cached.
    let again = app
        .auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    assert_eq!(
        (again.user_id(), again.tenant_id),
        (p.user_id(), p.tenant_id)
    );
    let mut c = claims("u2");
    c["realm_access"]["roles"] = json!(["something-else"]);
    c["aud"] = json!(["other", "docent-web"]);
    let u2 = app.auth.authenticate_bearer(&sign(&key, &c)).await.unwrap();
    assert_eq!(u2.tenant_id, p.tenant_id);
    assert_ne!(u2.user_id(), p.user_id());
    assert_eq!(u2.role, Role::Viewer, "default role");
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        1,
        "one JWKS fetch for all of them"
    );

    // The provider's role claim is the source of truth: a demotion applies.
    let mut demoted = claims("u1");
    demoted["realm_access"]["roles"] = json!(["member"]);
    let p2 = app
        .auth
        .authenticate_bearer(&sign(&key, &demoted))
        .await
        .unwrap();
    assert_eq!(p2.role, Role::Member);

    // Another org is another tenant.
    let mut other_org = claims("u3");
    other_org["org"] = json!("globex");
    let g = app
        .auth
        .authenticate_bearer(&sign(&key, &other_org))
        .await
        .unwrap();
    assert_ne!(g.tenant_id, p.tenant_id);

    // A token without the tenant claim is refused.
    let mut no_org = claims("u4");
    no_org.as_object_mut().unwrap().remove("org");
    assert_eq!(
        code(app.auth.authenticate_bearer(&sign(&key, &no_org)).await),
        Code::TokenInvalid
    );
}

#[tokio::test]
async fn unknown_orgs_are_refused_unless_mapped_or_created() {
    let Setup { app, key, .. } = setup(|c| c.create_tenants = false).await;
    assert_eq!(
        code(
            app.auth
                .authenticate_bearer(&sign(&key, &claims("u1")))
                .await
        ),
        Code::TenantNotFound
    );
    let ann = app.signup("ann@example.com").await;
    app.store
        .set_tenant_alias(ISSUER, "acme", ann.tenant_id)
        .await
        .unwrap();
    let p = app
        .auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    assert_eq!(p.tenant_id, ann.tenant_id);
}

#[tokio::test]
async fn a_provider_bound_to_one_tenant() {
    let idp = Idp::default();
    let key = idp_key("k1");
    idp.keys.lock().await.push(key.jwk.clone());
    let url = serve_idp(idp.clone()).await;
    // The tenant must exist: create it in a first app, then reopen with the provider bound.
    let base = app().await;
    let ann = base.signup("ann@example.com").await;
    let mut config = provider_config(&url);
    config.tenant_claim = None;
    config.tenant_id = Some(ann.tenant_id.to_string());
    config.role_claim = None;
    let provider =
        OidcProvider::new(&config, Duration::from_secs(30), reqwest::Client::new()).unwrap();
    let auth = AuthService::new(AuthParts {
        settings: settings(),
        store: base.store.clone(),
        mailer: Arc::new(MemoryMailer::new()),
        jwt: JwtKeys::hs256(&[1u8; 32], jwt_settings()).unwrap(),
        passwords: PasswordHasher::new(PasswordParams::INSECURE_FAST, 10).unwrap(),
        limiter: RateLimiter::new(&docent_config::AuthConfig::default().rate_limit),
        guard: SigninGuard::new(docent_config::AuthConfig::default().signin_guard),
        oidc: vec![provider],
    });
    let mut c = claims("u1");
    c.as_object_mut().unwrap().remove("org");
    let p = auth.authenticate_bearer(&sign(&key, &c)).await.unwrap();
    assert_eq!((p.tenant_id, p.role), (ann.tenant_id, Role::Viewer));
}

#[tokio::test]
async fn rotated_keys_are_fetched_on_an_unknown_kid() {
    let Setup { app, idp, key } = setup(|_| {}).await;
    app.auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1);
    let k2 = idp_key("k2");
    idp.keys.lock().await.push(k2.jwk.clone());
    app.auth
        .authenticate_bearer(&sign(&k2, &claims("u1")))
        .await
        .unwrap();
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        2,
        "refetched once for the new kid"
    );
    app.auth
        .authenticate_bearer(&sign(&k2, &claims("u1")))
        .await
        .unwrap();
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_kids_cannot_hammer_the_provider() {
    let Setup { app, idp, key } = setup(|c| c.jwks_min_refresh = Duration::from_secs(3600)).await;
    app.auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    let stranger = idp_key("forged");
    for _ in 0..5 {
        assert_eq!(
            code(
                app.auth
                    .authenticate_bearer(&sign(&stranger, &claims("u1")))
                    .await
            ),
            Code::TokenInvalid
        );
    }
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        1,
        "no refetch inside jwks_min_refresh"
    );
}

#[tokio::test]
async fn cached_keys_survive_a_provider_outage() {
    let Setup { app, idp, key } = setup(|c| c.jwks_ttl = Duration::ZERO).await;
    app.auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    idp.down.store(true, Ordering::SeqCst);
    // Every key is stale (ttl 0): the refetch fails, the cached key still verifies.
    app.auth
        .authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();
    assert!(idp.hits.load(Ordering::SeqCst) >= 2);
    // A key never seen cannot be verified during the outage: a retryable error.
    let k2 = idp_key("k2");
    let err = app
        .auth
        .authenticate_bearer(&sign(&k2, &claims("u1")))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::Unavailable);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn jwt_attacks_on_provider_tokens_are_rejected() {
    let Setup { app, key, .. } = setup(|_| {}).await;
    let auth = &app.auth;
    // Baseline.
    auth.authenticate_bearer(&sign(&key, &claims("u1")))
        .await
        .unwrap();

    // alg none.
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "k1"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims("u1").to_string());
    assert_eq!(
        code(auth.authenticate_bearer(&format!("{header}.{body}.")).await),
        Code::TokenInvalid
    );

    // HS256 signed with the provider's public key as the HMAC secret (key confusion).
    let public = serde_json::to_vec(&key.jwk).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let forged =
        jsonwebtoken::encode(&h, &claims("u1"), &EncodingKey::from_secret(&public)).unwrap();
    assert_eq!(
        code(auth.authenticate_bearer(&forged).await),
        Code::TokenInvalid
    );

    // Another key claiming kid k1 (bad signature).
    let mut impostor = idp_key("k1");
    impostor.kid = "k1".into();
    assert_eq!(
        code(
            auth.authenticate_bearer(&sign(&impostor, &claims("u1")))
                .await
        ),
        Code::TokenInvalid
    );

    // Tampered payload.
    let token = sign(&key, &claims("u1"));
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims("u1");
    c["realm_access"]["roles"] = json!(["owner"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(c.to_string()),
        parts[2]
    );
    assert_eq!(
        code(auth.authenticate_bearer(&tampered).await),
        Code::TokenInvalid
    );

    // Wrong audience; wrong issuer (no provider: falls to our own verifier and fails there).
    let mut c = claims("u1");
    c["aud"] = json!("someone-else");
    assert_eq!(
        code(auth.authenticate_bearer(&sign(&key, &c)).await),
        Code::TokenInvalid
    );
    let mut c = claims("u1");
    c["iss"] = json!("https://evil.test");
    assert_eq!(
        code(auth.authenticate_bearer(&sign(&key, &c)).await),
        Code::TokenInvalid
    );

    // Expired beyond the leeway; not yet valid beyond the leeway.
    let now = Utc::now().timestamp();
    let mut c = claims("u1");
    c["exp"] = json!(now - 120);
    assert_eq!(
        code(auth.authenticate_bearer(&sign(&key, &c)).await),
        Code::TokenExpired
    );
    let mut c = claims("u1");
    c["nbf"] = json!(now + 600);
    assert_eq!(
        code(auth.authenticate_bearer(&sign(&key, &c)).await),
        Code::TokenInvalid
    );

    // An algorithm the provider is not configured for (RS384 with the same RSA key).
    let mut h = Header::new(Algorithm::RS384);
    h.kid = Some("k1".into());
    let rs384 = jsonwebtoken::encode(&h, &claims("u1"), &key.encoding).unwrap();
    assert_eq!(
        code(auth.authenticate_bearer(&rs384).await),
        Code::TokenInvalid
    );

    // No kid at all.
    let unnamed =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims("u1"), &key.encoding).unwrap();
    assert_eq!(
        code(auth.authenticate_bearer(&unnamed).await),
        Code::TokenInvalid
    );

    // Missing subject.
    let mut c = claims("u1");
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        code(auth.authenticate_bearer(&sign(&key, &c)).await),
        Code::TokenInvalid
    );
}

#[tokio::test]
async fn unverified_provider_emails_never_take_over_local_accounts() {
    let Setup { app, key, .. } = setup(|_| {}).await;
    let local = app.signup("victim@acme.example").await;
    let mut c = claims("attacker");
    c["email"] = json!("victim@acme.example");
    c["email_verified"] = json!(false);
    assert_eq!(
        code(app.auth.authenticate_bearer(&sign(&key, &c)).await),
        Code::EmailTaken
    );
    c["email_verified"] = json!(true);
    let p = app.auth.authenticate_bearer(&sign(&key, &c)).await.unwrap();
    assert_eq!(p.user_id(), Some(local.user.id), "a verified address links");
}

#[test]
fn hmac_providers_are_a_configuration_error() {
    let mut config = provider_config("http://127.0.0.1:1/certs");
    config.algorithms = vec!["HS256".into()];
    let err = OidcProvider::new(&config, Duration::ZERO, reqwest::Client::new()).unwrap_err();
    assert!(err.chain().contains("HMAC"), "{}", err.chain());
}
