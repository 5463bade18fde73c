//! `auth.mode = "builtin"` end to end: accounts, tokens, API keys and tenant isolation through
//! the HTTP API, plus `docent users create` through the binary.

mod common;

use std::path::Path;

use common::{
    TestApp, assert_error, builtin_auth as builtin, spawn_app, spawn_app_in, spawn_app_with,
};
use docent_config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_docent");
const PASSWORD: &str = "correct horse battery";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let (s, b, _) = call(app, Method::POST, path, token, Some(body)).await;
    (s, b)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let (s, b, _) = call(app, Method::GET, path, Some(token), None).await;
    (s, b)
}

async fn upload(
    app: &TestApp,
    token: &str,
    collection: &str,
    name: &str,
    text: &str,
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_owned());
    let r = app
        .client
        .post(app.url(&format!("/api/v1/collections/{collection}/documents")))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Signs up (open sign-up, no verification) and returns the session.
async fn signup(app: &TestApp, email: &str) -> Value {
    let (s, b) = post(
        app,
        "/api/v1/auth/signup",
        None,
        json!({ "email": email, "password": PASSWORD }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

async fn create_collection(app: &TestApp, token: &str, name: &str) -> String {
    let (s, b) = post(
        app,
        "/api/v1/collections",
        Some(token),
        json!({ "name": name }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// The token in the newest mail whose file name contains `kind`.
fn mailed_token(data_dir: &Path, kind: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("mail"))
        .expect("mail dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(kind))
        .collect();
    files.sort();
    let text = std::fs::read_to_string(files.last().expect("a mail")).unwrap();
    let at = text.find("token=").expect("a link with a token") + "token=".len();
    text[at..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn hit_collections(res: &Value) -> Vec<String> {
    res["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["collection_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn signup_with_verification_signin_and_tenant_isolation() {
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.require_email_verification = true;
    })
    .await;

    // Sign-up asks for verification; sign-in waits for it.
    let (s, b) = post(
        &app,
        "/api/v1/auth/signup",
        None,
        json!({ "email": "Alice@Example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["verification_required"], true);
    let signin = json!({ "email": "alice@example.com", "password": PASSWORD });
    let (s, b) = post(&app, "/api/v1/auth/signin", None, signin.clone()).await;
    assert_error(s, &b, 403, "email_not_verified");
    let token = mailed_token(&app.data_dir, "verify");
    let (s, b) = post(&app, "/auth/confirm", None, json!({ "token": token })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["email_verified"], true);
    let (s, b) = post(&app, "/api/v1/auth/signin", None, signin).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let alice = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(b["token_type"], "Bearer");

    // Alice works in her tenant.
    let coll = create_collection(&app, &alice, "alice-notes").await;
    let (s, b) = upload(
        &app,
        &alice,
        &coll,
        "a.md",
        "# Alpha\n\nThe aardvark eats ants at night.\n",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let doc = b["document"]["id"].as_str().unwrap().to_owned();
    app.drain().await;
    let (s, b) = post(
        &app,
        "/api/v1/search",
        Some(&alice),
        json!({ "query": "aardvark" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(hit_collections(&b), vec![coll.clone()]);

    // Bob (another tenant, through the seed alias) sees none of it.
    let (s, b) = post(
        &app,
        "/auth/signup",
        None,
        json!({ "email": "bob@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let token = mailed_token(&app.data_dir, "verify");
    let (s, b) = post(
        &app,
        "/api/v1/auth/confirm",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &app,
        "/auth/signin",
        None,
        json!({ "email": "bob@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let bob = b["access_token"].as_str().unwrap().to_owned();
    assert_ne!(b["tenant_id"], json!(null));

    let (s, b) = get(&app, &format!("/api/v1/collections/{coll}"), &bob).await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = get(&app, &format!("/api/v1/documents/{doc}"), &bob).await;
    assert_error(s, &b, 404, "document_not_found");
    let (s, b) = get(&app, &format!("/api/v1/documents/{doc}/content"), &bob).await;
    assert_error(s, &b, 404, "document_not_found");
    let (s, b) = get(&app, &format!("/api/v1/collections/{coll}/documents"), &bob).await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/documents/{doc}"),
        Some(&bob),
        None,
    )
    .await;
    assert_error(s, &b, 404, "document_not_found");
    let (s, b) = upload(&app, &bob, &coll, "b.md", "# Bob\n\nintruder\n").await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = get(&app, "/api/v1/collections", &bob).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ids(&b).is_empty(), "{b}");
    let (s, b) = get(&app, "/api/v1/tasks", &bob).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["items"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = post(
        &app,
        "/api/v1/search",
        Some(&bob),
        json!({ "query": "aardvark" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["hits"].as_array().unwrap().is_empty(), "{b}");
    let (s, b) = post(
        &app,
        "/api/v1/search",
        Some(&bob),
        json!({ "query": "aardvark", "collection_ids": [coll] }),
    )
    .await;
    assert!(
        s == StatusCode::NOT_FOUND || b["hits"].as_array().is_some_and(|h| h.is_empty()),
        "{s} {b}"
    );

    // Alice still has it all.
    let (s, b) = get(&app, "/api/v1/collections", &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&b), vec![coll]);
    app.stop().await;
}

#[tokio::test]
async fn missing_tampered_and_rotated_credentials_are_401() {
    let app = spawn_app_with(builtin).await;
    let session = signup(&app, "carol@example.com").await;
    let access = session["access_token"].as_str().unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();

    let (s, b, h) = call(&app, Method::GET, "/api/v1/collections", None, None).await;
    assert_error(s, &b, 401, "unauthenticated");
    assert_eq!(h["www-authenticate"], "Bearer");
    let (s, b, _) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some("not-a-token"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // Change a character inside the signature (not the last one, whose low bits are padding).
    let mut chars: Vec<char> = access.chars().collect();
    let at = chars.len() - 5;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let (s, b, h) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some(&tampered),
        None,
    )
    .await;
    assert_error(s, &b, 401, "token_invalid");
    assert_eq!(h["www-authenticate"], "Bearer");
    let (s, b) = get(&app, "/api/v1/collections", access).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Health stays public.
    let (s, _, _) = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);

    // Refresh rotates; the old refresh token used again revokes the family.
    let (s, b) = post(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let next = b["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    let (s, b) = post(
        &app,
        "/auth/refresh",
        None,
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_error(s, &b, 401, "refresh_token_reused");
    let (s, b) = post(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": next }),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");

    // Sign-out ends a session.
    let (s, b) = post(
        &app,
        "/api/v1/auth/signin",
        None,
        json!({ "email": "carol@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = b["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = post(
        &app,
        "/api/v1/auth/signout",
        None,
        json!({ "refresh_token": r }),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = post(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": r }),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");

    // Wrong password.
    let (s, b) = post(
        &app,
        "/api/v1/auth/signin",
        None,
        json!({ "email": "carol@example.com", "password": "wrong password!" }),
    )
    .await;
    assert_error(s, &b, 401, "invalid_credentials");
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_scoped_and_revocable() {
    let app = spawn_app_with(builtin).await;
    let session = signup(&app, "dana@example.com").await;
    let owner = session["access_token"].as_str().unwrap().to_owned();
    let a = create_collection(&app, &owner, "a").await;
    let b_coll = create_collection(&app, &owner, "b").await;
    let (s, b) = upload(
        &app,
        &owner,
        &a,
        "a.md",
        "# A\n\nZebras graze in collection a.\n",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = upload(
        &app,
        &owner,
        &b_coll,
        "b.md",
        "# B\n\nZebras graze in collection b.\n",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let doc_b = b["document"]["id"].as_str().unwrap().to_owned();
    app.drain().await;

    // A read-only key reads but cannot write.
    let (s, b) = post(
        &app,
        "/api/v1/keys",
        Some(&owner),
        json!({ "name": "ro", "access": "read" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ro = b["secret"].as_str().unwrap().to_owned();
    assert!(ro.starts_with("dk_"), "{b}");
    let (s, b) = get(&app, "/api/v1/collections", &ro).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b).len(), 2);
    let (s, b) = post(
        &app,
        "/api/v1/collections",
        Some(&ro),
        json!({ "name": "nope" }),
    )
    .await;
    assert_error(s, &b, 403, "insufficient_scope");
    let (s, b) = upload(&app, &ro, &a, "c.md", "# C\n\nno\n").await;
    assert_error(s, &b, 403, "insufficient_scope");
    let (s, b) = post(
        &app,
        "/api/v1/keys",
        Some(&ro),
        json!({ "name": "escalate" }),
    )
    .await;
    assert_error(s, &b, 403, "insufficient_scope");

    // A key limited to collection a sees nothing of b.
    let (s, b) = post(
        &app,
        "/api/v1/keys",
        Some(&owner),
        json!({ "name": "only-a", "collection_ids": [a] }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let only_a = b["secret"].as_str().unwrap().to_owned();
    let only_a_id = b["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(b["key"]["collection_ids"], json!([a]));
    let (s, b) = get(&app, &format!("/api/v1/collections/{b_coll}"), &only_a).await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = get(&app, &format!("/api/v1/documents/{doc_b}"), &only_a).await;
    assert_error(s, &b, 404, "document_not_found");
    let (s, b) = get(&app, "/api/v1/collections", &only_a).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b), vec![a.clone()]);
    let (s, b) = post(
        &app,
        "/api/v1/search",
        Some(&only_a),
        json!({ "query": "zebras" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let hits = hit_collections(&b);
    assert!(!hits.is_empty() && hits.iter().all(|c| *c == a), "{b}");
    let (s, b) = post(
        &app,
        "/api/v1/search",
        Some(&only_a),
        json!({ "query": "zebras", "collection_ids": [b_coll] }),
    )
    .await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = post(
        &app,
        &format!("/api/v1/collections/{b_coll}/search"),
        Some(&only_a),
        json!({ "query": "zebras" }),
    )
    .await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = post(
        &app,
        "/api/v1/ask",
        Some(&only_a),
        json!({ "question": "what grazes?" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(!b.to_string().contains(&doc_b), "{b}");
    let (s, b) = get(&app, "/api/v1/tasks", &only_a).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["collection_id"] == json!(a)),
        "{b}"
    );
    let (s, b) = upload(&app, &only_a, &a, "d.md", "# D\n\nMore zebras.\n").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");

    // Listing and revoking.
    let (s, b) = get(&app, "/api/v1/keys", &owner).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 2);
    assert!(!b.to_string().contains(&only_a), "secrets are never listed");
    let (s, b, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/keys/{only_a_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["revoked_at"].is_string(), "{b}");
    let (s, b) = get(&app, "/api/v1/collections", &only_a).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(
        ["api_key_revoked", "invalid_api_key"].contains(&b["error"]["code"].as_str().unwrap()),
        "{b}"
    );
    app.stop().await;
}

#[tokio::test]
async fn setup_token_openapi_and_mode_none() {
    // Builtin: the OpenAPI document declares bearerAuth and lists the auth routes.
    let app = spawn_app_with(builtin).await;
    let (s, spec, _) = call(&app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        spec["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/auth/signin",
        "/api/v1/auth/refresh",
        "/api/v1/auth/signout",
        "/api/v1/auth/verify",
        "/api/v1/auth/confirm",
        "/api/v1/auth/password/reset",
        "/api/v1/auth/password/reset/confirm",
        "/api/v1/setup",
        "/api/v1/keys",
        "/api/v1/keys/{id}",
        "/auth/signup",
        "/auth/signin",
        "/auth/verify",
        "/auth/confirm",
        "/auth/refresh",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(spec["security"], json!([{ "bearerAuth": [] }]));
    assert_eq!(
        spec["paths"]["/api/v1/auth/signin"]["post"]["security"],
        json!([{}]),
        "account routes are public"
    );
    assert!(spec["paths"]["/api/v1/collections"]["get"]["security"].is_null());

    // Password reset through the mailed token.
    signup(&app, "erin@example.com").await;
    let (s, _) = post(
        &app,
        "/api/v1/auth/password/reset",
        None,
        json!({ "email": "erin@example.com" }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let token = mailed_token(&app.data_dir, "reset");
    let (s, b) = post(
        &app,
        "/api/v1/auth/password/reset/confirm",
        None,
        json!({ "token": token, "password": "a brand new password" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &app,
        "/api/v1/auth/signin",
        None,
        json!({ "email": "erin@example.com", "password": "a brand new password" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Setup is over once a user exists.
    let (s, b) = post(
        &app,
        "/api/v1/setup",
        None,
        json!({ "token": "whatever", "email": "x@example.com", "password": PASSWORD }),
    )
    .await;
    assert!(
        s == StatusCode::CONFLICT || s == StatusCode::UNAUTHORIZED,
        "{s} {b}"
    );
    app.stop().await;

    // Mode none (set explicitly by spawn_app): auth routes say authentication is disabled;
    // content is open.
    let app = spawn_app().await;
    for path in ["/api/v1/auth/signin", "/auth/signup", "/api/v1/setup"] {
        let (s, b) = post(
            &app,
            path,
            None,
            json!({ "email": "a@b.c", "password": PASSWORD, "token": "t" }),
        )
        .await;
        assert_error(s, &b, 404, "route_not_found");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("auth.mode"),
            "{b}"
        );
    }
    let (s, b) = post(&app, "/api/v1/keys", None, json!({ "name": "k" })).await;
    assert_error(s, &b, 404, "route_not_found");
    let (s, _) = app.get("/api/v1/collections").await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn first_run_setup_with_the_printed_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = Config {
        data_dir: data,
        ..Config::default()
    };
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.run_workers = false;
    config.embedder = docent_config::EmbedderConfig::None;
    builtin(&mut config);
    let app = docent::app::Application::build(config).await.unwrap();
    let link = app
        .setup_link()
        .expect("a setup link with no users")
        .to_owned();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let auth = app.auth().unwrap().clone();
    let signed_in = auth
        .complete_setup(
            &token,
            docent_auth::Signup {
                email: "first@example.com".into(),
                password: PASSWORD.into(),
                ..Default::default()
            },
        )
        .await
        .expect("setup completes");
    assert_eq!(signed_in.role, docent_domain::Role::Owner);
    assert_eq!(
        signed_in.tenant_id,
        docent_domain::TenantId::DEFAULT,
        "the first owner takes over the default workspace, the one local CLI commands use"
    );
    assert!(auth.ensure_setup_token().await.unwrap().is_none());
}

#[tokio::test]
async fn users_create_through_the_binary_then_signin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "users",
            "create",
            "--email",
            "Op@Example.com",
            "--admin",
            "--password-file",
        ])
        .arg(&password_file)
        .env("DOCENT__DATA_DIR", &data)
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__AUTH__MODE", "builtin")
        .env("DOCENT__AUTH__PASSWORD__MEMORY_KIB", "64")
        .env("DOCENT__AUTH__PASSWORD__ITERATIONS", "1")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env_remove("DOCENT_CONFIG")
        .env_remove("DOCENT_PASSWORD")
        .output()
        .expect("docent runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("op@example.com") && stdout.contains("owner"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&docent_domain::TenantId::DEFAULT.to_string()),
        "{stdout}"
    );

    // The same data directory, served: the operator signs in to the default tenant.
    let app = spawn_app_in(dir, |c| {
        c.data_dir = data.clone();
        builtin(c);
    })
    .await;
    let (s, b) = post(
        &app,
        "/api/v1/auth/signin",
        None,
        json!({ "email": "op@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["role"], "owner");
    assert_eq!(b["tenant_id"], docent_domain::TenantId::DEFAULT.to_string());
    let access = b["access_token"].as_str().unwrap().to_owned();
    let (s, b) = post(
        &app,
        "/api/v1/keys",
        Some(&access),
        json!({ "name": "cli" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = b["secret"].as_str().unwrap().to_owned();

    // `--url` commands send DOCENT_TOKEN; without it the server answers 401.
    let tasks = |token: Option<String>| {
        let base = app.base.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(BIN);
            cmd.args(["tasks", "--url", &base])
                .env("DOCENT__LOG__LEVEL", "warn")
                .env_remove("DOCENT_CONFIG")
                .env_remove("DOCENT_TOKEN");
            if let Some(t) = token {
                cmd.env("DOCENT_TOKEN", t);
            }
            cmd.output().expect("docent runs")
        })
    };
    let out = tasks(Some(key)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tasks(None).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"));
    app.stop().await;
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn rate_limits_per_caller_with_headers_and_retry_after() {
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.rate_limit.enabled = true;
        c.auth.rate_limit.search = docent_config::RateQuota {
            per_minute: 1,
            burst: 3,
        };
    })
    .await;
    let alice = signup(&app, "rl-alice@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = signup(&app, "rl-bob@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = json!({ "query": "anything" });

    // Three searches pass, counting down; the fourth is refused.
    for remaining in ["2", "1", "0"] {
        let (s, b, h) = call(
            &app,
            Method::POST,
            "/api/v1/search",
            Some(&alice),
            Some(search.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(header(&h, "ratelimit-limit"), "3");
        assert_eq!(header(&h, "ratelimit-remaining"), remaining);
        assert!(header(&h, "ratelimit-reset").parse::<u64>().is_ok());
        assert!(h.get("retry-after").is_none());
    }
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/api/v1/search",
        Some(&alice),
        Some(search.clone()),
    )
    .await;
    assert_error(s, &b, 429, "rate_limited");
    let wait: u64 = header(&h, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(header(&h, "ratelimit-limit"), "3");
    assert_eq!(header(&h, "ratelimit-remaining"), "0");
    assert!(header(&h, "ratelimit-reset").parse::<u64>().unwrap() >= wait);

    // Other classes and other callers have their own buckets.
    let (s, b, h) = call(&app, Method::GET, "/api/v1/collections", Some(&alice), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(header(&h, "ratelimit-limit"), "120");
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/api/v1/search",
        Some(&bob),
        Some(search.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(header(&h, "ratelimit-remaining"), "2");
    let (s, b) = post(&app, "/api/v1/keys", Some(&alice), json!({ "name": "k" })).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = b["secret"].as_str().unwrap().to_owned();
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/api/v1/search",
        Some(&key),
        Some(search.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "an API key has its own bucket: {b}");
    assert_eq!(header(&h, "ratelimit-remaining"), "2");

    // Anonymous and invalid credentials count against the address, and stay 401.
    for _ in 0..3 {
        let (s, b, h) = call(
            &app,
            Method::POST,
            "/api/v1/search",
            Some("dk_guess_guess"),
            Some(search.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert!(h.get("ratelimit-remaining").is_some());
    }
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/api/v1/search",
        None,
        Some(search.clone()),
    )
    .await;
    assert_error(s, &b, 429, "rate_limited");
    assert!(h.get("retry-after").is_some());

    // Probes are never limited.
    let (s, _, h) = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get("ratelimit-limit").is_none());
    app.stop().await;
}

#[tokio::test]
async fn account_routes_are_limited_by_address_and_signin_locks_out() {
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.signin_guard.max_failures = 3;
    })
    .await;
    signup(&app, "brute@example.com").await;
    let wrong = json!({ "email": "brute@example.com", "password": "not the password" });
    for _ in 0..3 {
        let (s, b) = post(&app, "/api/v1/auth/signin", None, wrong.clone()).await;
        assert_error(s, &b, 401, "invalid_credentials");
    }
    // Locked out — even with the right password, from this address.
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/auth/signin",
        None,
        Some(json!({ "email": "brute@example.com", "password": PASSWORD })),
    )
    .await;
    assert_error(s, &b, 429, "too_many_attempts");
    let wait: u64 = header(&h, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(
        h.get("ratelimit-limit").is_none(),
        "no rate-limit headers while limits are off"
    );
    app.stop().await;

    // The account routes share one bucket per address.
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.rate_limit.enabled = true;
        c.auth.rate_limit.auth = docent_config::RateQuota {
            per_minute: 1,
            burst: 2,
        };
    })
    .await;
    for _ in 0..2 {
        let (s, b, h) = call(
            &app,
            Method::POST,
            "/auth/signin",
            None,
            Some(wrong.clone()),
        )
        .await;
        assert_error(s, &b, 401, "invalid_credentials");
        assert_eq!(header(&h, "ratelimit-limit"), "2");
    }
    let (s, b, h) = call(
        &app,
        Method::POST,
        "/api/v1/auth/password/reset",
        None,
        Some(json!({ "email": "brute@example.com" })),
    )
    .await;
    assert_error(s, &b, 429, "rate_limited");
    assert!(h.get("retry-after").is_some());
    app.stop().await;
}

#[tokio::test]
async fn uploads_past_the_tenant_quotas_are_refused_and_store_nothing() {
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.quotas.max_documents = 2;
    })
    .await;
    let owner = signup(&app, "quota@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let coll = create_collection(&app, &owner, "q").await;
    for i in 0..2 {
        let (s, b) = upload(
            &app,
            &owner,
            &coll,
            &format!("{i}.md"),
            &format!("# {i}\n\nText {i}.\n"),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let blobs = app.blob_files().len();
    let (s, b) = upload(&app, &owner, &coll, "3.md", "# 3\n\nOne too many.\n").await;
    assert_error(s, &b, 403, "quota_exceeded");
    assert_eq!(app.blob_files().len(), blobs);
    let (s, b) = get(
        &app,
        &format!("/api/v1/collections/{coll}/documents"),
        &owner,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b).len(), 2);
    // Another tenant has its own quota.
    let other = signup(&app, "quota-other@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_coll = create_collection(&app, &other, "o").await;
    let (s, b) = upload(&app, &other, &other_coll, "o.md", "# O\n\nMine.\n").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    app.stop().await;

    // Stored bytes: the stream is cut off past what is left.
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.quotas.max_stored_bytes = bytesize::ByteSize::b(100);
    })
    .await;
    let owner = signup(&app, "bytes@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let coll = create_collection(&app, &owner, "b").await;
    let first = format!("# A\n\n{}\n", "a".repeat(54));
    assert_eq!(first.len(), 60);
    let (s, b) = upload(&app, &owner, &coll, "a.md", &first).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let blobs = app.blob_files().len();
    let second = format!("# B\n\n{}\n", "b".repeat(54));
    let (s, b) = upload(&app, &owner, &coll, "b.md", &second).await;
    assert_error(s, &b, 403, "quota_exceeded");
    assert_eq!(app.blob_files().len(), blobs, "nothing of it is kept");
    let (s, b) = get(
        &app,
        &format!("/api/v1/collections/{coll}/documents"),
        &owner,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b).len(), 1);
    // What still fits is accepted.
    let (s, b) = upload(&app, &owner, &coll, "c.md", "# C\n\nsmall\n").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    app.stop().await;
}

/// A seed-compatible upload (`/upload` or `/api/upload`) with an optional query.
async fn seed_upload(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    text: &str,
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name("seed.md");
    let mut req = app
        .client
        .post(app.url(path))
        .multipart(reqwest::multipart::Form::new().part("file", part));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("upload");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn seed_uploads_go_to_each_tenants_own_default_collection() {
    let app = spawn_app_with(builtin).await;
    let ann = signup(&app, "ann@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = signup(&app, "bob@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (s, b) = seed_upload(&app, None, "/upload", "# A\n\nanonymous\n").await;
    assert_error(s, &b, 401, "unauthenticated");

    // Same bytes, two tenants: two documents in two `default` collections.
    let text = "# Shared\n\nThe same bytes in two workspaces.\n";
    let (s, a) = seed_upload(&app, Some(&ann), "/upload", text).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    let (s, b) = seed_upload(&app, Some(&bob), "/api/upload", text).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let ann_default = a["document"]["collection_id"].as_str().unwrap().to_owned();
    let bob_default = b["document"]["collection_id"].as_str().unwrap().to_owned();
    assert_ne!(ann_default, bob_default);
    for (token, id) in [(&ann, &ann_default), (&bob, &bob_default)] {
        let (s, list) = get(&app, "/api/v1/collections", token).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(ids(&list), vec![id.clone()], "{list}");
        assert_eq!(list["items"][0]["name"], "default");
    }
    // Naming the other tenant's collection is not found, by query or by form.
    let (s, b) = seed_upload(
        &app,
        Some(&bob),
        &format!("/upload?collection_id={ann_default}"),
        "# B\n\nelsewhere\n",
    )
    .await;
    assert_error(s, &b, 404, "collection_not_found");

    // Keys: read-only ones cannot upload; one limited to a collection uploads there, and
    // cannot reach (or create) `default` when it is not one of its collections.
    let notes = create_collection(&app, &ann, "notes").await;
    let key = |body: Value| {
        let ann = ann.clone();
        let app = &app;
        async move {
            let (s, b) = post(app, "/api/v1/keys", Some(&ann), body).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            b["secret"].as_str().unwrap().to_owned()
        }
    };
    let ro = key(json!({ "name": "ro", "access": "read" })).await;
    let (s, b) = seed_upload(&app, Some(&ro), "/upload", "# R\n\nread only\n").await;
    assert_error(s, &b, 403, "insufficient_scope");
    let only_notes = key(json!({ "name": "notes", "collection_ids": [notes] })).await;
    let (s, b) = seed_upload(&app, Some(&only_notes), "/api/upload", "# N\n\nno target\n").await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = seed_upload(
        &app,
        Some(&only_notes),
        &format!("/upload?collection_id={ann_default}"),
        "# N\n\nnot mine\n",
    )
    .await;
    assert_error(s, &b, 404, "collection_not_found");
    let (s, b) = seed_upload(
        &app,
        Some(&only_notes),
        &format!("/upload?collection={notes}"),
        "# N\n\nmine\n",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["document"]["collection_id"], notes.as_str());
    // A key limited to `default` itself uploads there without naming it.
    let only_default = key(json!({ "name": "d", "collection_ids": [ann_default] })).await;
    let (s, b) = seed_upload(&app, Some(&only_default), "/upload", "# D\n\ndefault\n").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["document"]["collection_id"], ann_default.as_str());
    let (_, list) = get(&app, "/api/v1/collections", &ann).await;
    assert_eq!(ids(&list).len(), 2, "keys created no collection: {list}");
    app.stop().await;
}

async fn signin(app: &TestApp, email: &str, password: &str) -> Value {
    let (s, b) = post(
        app,
        "/api/v1/auth/signin",
        None,
        json!({ "email": email, "password": password }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

fn access(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

async fn reset_password(app: &TestApp, email: &str, password: &str) -> Value {
    let (s, _) = post(
        app,
        "/api/v1/auth/password/reset",
        None,
        json!({ "email": email }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let token = mailed_token(&app.data_dir, "reset");
    let (s, b) = post(
        app,
        "/api/v1/auth/password/reset/confirm",
        None,
        json!({ "token": token, "password": password }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

/// Issue 21, H2: an access token dies with its session — sign-out, sign-out everywhere and a
/// password reset refuse it at once, not when it expires.
#[tokio::test]
async fn access_tokens_end_with_signout_and_password_reset() {
    let app = spawn_app_with(builtin).await;
    let first = signup(&app, "ann@example.com").await;
    let t1 = access(&first);
    let (s, _) = get(&app, "/api/v1/collections", &t1).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = post(
        &app,
        "/api/v1/auth/signout",
        None,
        json!({ "refresh_token": first["refresh_token"] }),
    )
    .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = get(&app, "/api/v1/collections", &t1).await;
    assert_error(s, &b, 401, "token_invalid");

    // Two live sessions; a password reset ends both.
    let t2 = access(&signin(&app, "ann@example.com", PASSWORD).await);
    let t3 = access(&signin(&app, "ann@example.com", PASSWORD).await);
    for t in [&t2, &t3] {
        let (s, _) = get(&app, "/api/v1/collections", t).await;
        assert_eq!(s, StatusCode::OK);
    }
    reset_password(&app, "ann@example.com", "a brand new password").await;
    for t in [&t2, &t3] {
        let (s, b) = get(&app, "/api/v1/collections", t).await;
        assert_error(s, &b, 401, "token_invalid");
    }
    let t4 = access(&signin(&app, "ann@example.com", "a brand new password").await);
    let (s, _) = get(&app, "/api/v1/collections", &t4).await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

/// Issue 21, M4 (pre-account takeover, default configuration without verification): an
/// attacker signs up with the victim's address, mints keys, brings in an accomplice and leaves
/// an invitation pending. When the victim resets the password, the account starts clean: no
/// key, session, accomplice or invitation of the attacker works any more, and the address
/// counts as verified.
#[tokio::test]
async fn a_reset_of_a_never_verified_account_leaves_the_attacker_nothing() {
    let app = spawn_app_with(builtin).await;
    let planted = signup(&app, "victim@example.com").await;
    let attacker = access(&planted);
    let tenant = planted["tenant_id"].as_str().unwrap().to_owned();
    let (s, k) = post(
        &app,
        "/api/v1/keys",
        Some(&attacker),
        json!({ "name": "mine" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let attacker_key = k["secret"].as_str().unwrap().to_owned();

    // An accomplice joins as admin and mints a key of their own.
    let accomplice_home = access(&signup(&app, "mallory@example.com").await);
    let (s, b) = post(
        &app,
        "/api/v1/invites",
        Some(&attacker),
        json!({ "email": "mallory@example.com", "role": "admin" }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let invite = mailed_token(&app.data_dir, "invite");
    let (s, b) = post(
        &app,
        "/api/v1/auth/invites/accept",
        Some(&accomplice_home),
        json!({ "token": invite }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, switched) = post(
        &app,
        "/api/v1/auth/switch",
        Some(&accomplice_home),
        json!({ "tenant_id": tenant }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{switched}");
    let accomplice = access(&switched);
    let (s, k) = post(
        &app,
        "/api/v1/keys",
        Some(&accomplice),
        json!({ "name": "theirs" }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let accomplice_key = k["secret"].as_str().unwrap().to_owned();
    // And an invitation waits for another address of theirs.
    let (s, _) = post(
        &app,
        "/api/v1/invites",
        Some(&attacker),
        json!({ "email": "later@example.com", "role": "member" }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let pending = mailed_token(&app.data_dir, "invite");

    // The victim takes the address back.
    let user = reset_password(&app, "victim@example.com", "the victim's own password").await;
    assert_eq!(user["email_verified"], true, "{user}");
    let victim = signin(&app, "victim@example.com", "the victim's own password").await;
    let victim_token = access(&victim);
    assert_eq!(victim["tenant_id"], tenant.as_str());

    // Nothing of the attacker's works.
    for key in [&attacker_key, &accomplice_key] {
        let (s, b) = get(&app, "/api/v1/collections", key).await;
        assert_error(s, &b, 401, "api_key_revoked");
    }
    for t in [&attacker, &accomplice] {
        let (s, b) = get(&app, "/api/v1/collections", t).await;
        assert_error(s, &b, 401, "token_invalid");
    }
    let (s, _) = post(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({ "refresh_token": planted["refresh_token"] }),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = post(
        &app,
        "/api/v1/auth/signup",
        None,
        json!({ "email": "later@example.com", "password": PASSWORD, "invite_token": pending }),
    )
    .await;
    assert_error(s, &b, 401, "token_invalid");
    let (s, b) = post(
        &app,
        "/api/v1/auth/switch",
        Some(&accomplice_home),
        json!({ "tenant_id": tenant }),
    )
    .await;
    assert_error(s, &b, 404, "tenant_not_found");

    // The victim is alone in the workspace, and what they upload is theirs only.
    let (s, members) = get(&app, "/api/v1/members", &victim_token).await;
    assert_eq!(s, StatusCode::OK, "{members}");
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "{members}");
    let (s, keys) = get(&app, "/api/v1/keys", &victim_token).await;
    assert_eq!(s, StatusCode::OK, "{keys}");
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| !k["revoked_at"].is_null()),
        "{keys}"
    );
    let collection = create_collection(&app, &victim_token, "private").await;
    let (s, b) = upload(
        &app,
        &victim_token,
        &collection,
        "secret.txt",
        "the victim's secret",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = get(&app, "/api/v1/collections", &attacker_key).await;
    assert_error(s, &b, 401, "api_key_revoked");

    // A verified account's reset does not sweep its workspace: the members it invited stay.
    let (s, _) = post(
        &app,
        "/api/v1/invites",
        Some(&victim_token),
        json!({ "email": "mallory@example.com", "role": "viewer" }),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let invite = mailed_token(&app.data_dir, "invite");
    let (s, b) = post(
        &app,
        "/api/v1/auth/invites/accept",
        Some(&accomplice_home),
        json!({ "token": invite }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    reset_password(&app, "victim@example.com", "yet another password").await;
    let victim_token = access(&signin(&app, "victim@example.com", "yet another password").await);
    let (_, members) = get(&app, "/api/v1/members", &victim_token).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2, "{members}");
    app.stop().await;
}
