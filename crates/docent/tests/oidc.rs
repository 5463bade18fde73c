//! External identity (OIDC) through the HTTP server: the app is configured with an
//! `[[auth.oidc]]` provider whose JWKS this test serves on 127.0.0.1:0 with keys generated
//! here. A provider token is a bearer credential like our own access tokens: mapped to a tenant
//! (by its `org` claim), a user and a role; refused (401) for a wrong audience or issuer, when
//! expired, or signed by a key the provider does not publish; a new signing key (key rotation)
//! is picked up by refetching the JWKS on its unknown `kid`; and tenant isolation holds.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use common::{TestApp, assert_error, builtin_auth, spawn_app_with};
use docent_config::OidcProviderConfig;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const ISSUER: &str = "https://idp.test/realms/acme";
const AUDIENCE: &str = "docent";

/// A signing key of the fake provider.
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

/// The provider's published key set, and how often it was fetched.
#[derive(Clone, Default)]
struct Idp {
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicU64>,
}

async fn jwks(State(idp): State<Idp>) -> Json<JwkSet> {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    Json(JwkSet {
        keys: idp.keys.lock().await.clone(),
    })
}

/// Serves the JWKS on 127.0.0.1:0; returns its URL.
async fn serve_idp(idp: Idp) -> String {
    let app = axum::Router::new()
        .route("/certs", axum::routing::get(jwks))
        .with_state(idp);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/certs")
}

fn provider(jwks_url: String) -> OidcProviderConfig {
    OidcProviderConfig {
        name: "acme-idp".into(),
        issuer: ISSUER.into(),
        audience: vec![AUDIENCE.into()],
        jwks_url,
        algorithms: vec!["RS256".into()],
        jwks_ttl: Duration::from_secs(600),
        // Every unknown `kid` may refetch (the default waits 30 s between such fetches).
        jwks_min_refresh: Duration::ZERO,
        subject_claim: "sub".into(),
        email_claim: "email".into(),
        name_claim: "name".into(),
        tenant_claim: Some("org".into()),
        tenant_id: None,
        create_tenants: true,
        role_claim: Some("groups".into()),
        role_map: BTreeMap::from([("docent-admins".to_owned(), "admin".to_owned())]),
        default_role: "viewer".into(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str, org: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now, "exp": now + 300,
        "email": format!("{sub}@{org}.example"), "email_verified": true, "name": format!("User {sub}"),
        "org": org, "groups": ["docent-admins"],
    })
}

fn sign(key: &IdpKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    call(app, Method::GET, path, token, None).await
}

async fn create_collection(app: &TestApp, token: &str, name: &str) -> String {
    let (s, b) = call(
        app,
        Method::POST,
        "/api/v1/collections",
        token,
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn provider_tokens_authenticate_through_the_http_server() {
    let idp = Idp::default();
    let k1 = idp_key("k1");
    idp.keys.lock().await.push(k1.jwk.clone());
    let url = serve_idp(idp.clone()).await;
    let app = spawn_app_with(|c| {
        builtin_auth(c);
        c.auth.oidc = vec![provider(url)];
        c.validate().expect("the OIDC configuration is valid");
    })
    .await;

    // A valid token reaches authenticated routes: its org became a workspace, its subject a
    // user with the role its groups map to.
    let ann = sign(&k1, &claims("ann", "acme"));
    let (s, mine) = get(&app, "/api/v1/auth/tenants", &ann).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(
        (&items[0]["name"], &items[0]["role"], &items[0]["current"]),
        (&json!("acme"), &json!("admin"), &json!(true)),
        "{mine}"
    );
    let acme = items[0]["id"].as_str().unwrap().to_owned();
    let (s, members) = get(&app, "/api/v1/members", &ann).await;
    assert_eq!(s, StatusCode::OK, "{members}");
    assert_eq!(
        members["items"][0]["email"], "ann@acme.example",
        "{members}"
    );
    assert_eq!(members["items"][0]["display_name"], "User ann");
    let ann_id = members["items"][0]["user_id"].as_str().unwrap().to_owned();
    let notes = create_collection(&app, &ann, "acme-notes").await;
    let (s, b) = get(&app, &format!("/api/v1/collections/{notes}"), &ann).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // A second token of the same subject is the same user in the same workspace; one of
    // another member of the org joins it with the default role.
    let again = sign(&k1, &claims("ann", "acme"));
    let (_, members) = get(&app, "/api/v1/members", &again).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members["items"][0]["user_id"], ann_id.as_str());
    let mut ben = claims("ben", "acme");
    ben["groups"] = json!([]);
    let ben = sign(&k1, &ben);
    let (s, mine) = get(&app, "/api/v1/auth/tenants", &ben).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert_eq!(mine["items"][0]["id"], acme.as_str());
    assert_eq!(mine["items"][0]["role"], "viewer");
    let (s, b) = get(&app, &format!("/api/v1/collections/{notes}"), &ben).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/collections",
        &ben,
        Some(json!({ "name": "nope" })),
    )
    .await;
    assert_error(s, &b, 403, "insufficient_role");

    // Refused: wrong audience, wrong issuer, expired, not yet valid, unknown key, tampered.
    let mut wrong_aud = claims("ann", "acme");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("ann", "acme");
    wrong_iss["iss"] = json!("https://evil.test/realms/acme");
    let mut expired = claims("ann", "acme");
    expired["iat"] = json!(now() - 7200);
    expired["nbf"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("ann", "acme");
    early["nbf"] = json!(now() + 3600);
    early["exp"] = json!(now() + 7200);
    let stranger = idp_key("stranger");
    let mut tampered = sign(&k1, &claims("ann", "acme"));
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = [
        ("wrong audience", sign(&k1, &wrong_aud), "token_invalid"),
        ("wrong issuer", sign(&k1, &wrong_iss), "token_invalid"),
        ("expired", sign(&k1, &expired), "token_expired"),
        ("not yet valid", sign(&k1, &early), "token_invalid"),
        (
            "unpublished key",
            sign(&stranger, &claims("ann", "acme")),
            "token_invalid",
        ),
    ];
    for (what, token, code) in refused {
        let (s, b) = get(&app, "/api/v1/collections", &token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {b}");
        assert_eq!(b["error"]["code"], code, "{what}: {b}");
    }
    let (s, b) = get(&app, "/api/v1/collections", &tampered).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "tampered: {b}");

    // Key rotation: the provider starts signing with a new key; its unknown `kid` refetches
    // the JWKS once, and the new key works from then on.
    let fetches = idp.fetches.load(Ordering::SeqCst);
    let k2 = idp_key("k2");
    idp.keys.lock().await.push(k2.jwk.clone());
    let rotated = sign(&k2, &claims("ann", "acme"));
    let (s, b) = get(&app, &format!("/api/v1/collections/{notes}"), &rotated).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), fetches + 1);
    let (s, _) = get(
        &app,
        "/api/v1/collections",
        &sign(&k2, &claims("ann", "acme")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        fetches + 1,
        "known keys are served from the cache"
    );
    // Once the provider drops the old key, tokens it signed stop working.
    idp.keys
        .lock()
        .await
        .retain(|k| k.common.key_id.as_deref() != Some("k1"));
    let (s, _) = get(
        &app,
        "/api/v1/collections",
        &sign(&k1, &claims("ann", "acme")),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "k1 is still cached until the JWKS is refetched"
    );
    let k3 = idp_key("k3");
    idp.keys.lock().await.push(k3.jwk.clone());
    let (s, _) = get(
        &app,
        "/api/v1/collections",
        &sign(&k3, &claims("ann", "acme")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "k3 refetched the JWKS");
    let (s, b) = get(
        &app,
        "/api/v1/collections",
        &sign(&k1, &claims("ann", "acme")),
    )
    .await;
    assert_error(s, &b, 401, "token_invalid");

    // Isolation: another org's user, and a built-in account's workspace, see none of acme's
    // collections, and acme's users none of theirs.
    let globex = sign(&k2, &claims("gus", "globex"));
    let (s, mine) = get(&app, "/api/v1/auth/tenants", &globex).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert_ne!(mine["items"][0]["id"], acme.as_str());
    let (s, b) = get(&app, &format!("/api/v1/collections/{notes}"), &globex).await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, list) = get(&app, "/api/v1/collections", &globex).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!list.to_string().contains(&notes), "{list}");
    let (s, session) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": "carol@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let carol = session["access_token"].as_str().unwrap().to_owned();
    let carols = create_collection(&app, &carol, "carol-only").await;
    let ann = sign(&k2, &claims("ann", "acme"));
    let (s, b) = get(&app, &format!("/api/v1/collections/{carols}"), &ann).await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = get(&app, &format!("/api/v1/collections/{notes}"), &carol).await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, list) = get(&app, "/api/v1/collections", &ann).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![notes.as_str()], "{list}");
    app.stop().await;
}
