//! Workspace members through the HTTP API (`auth.mode = "builtin"`): invite → accept through
//! the mailed link → listed; roles enforced; owners demote and remove; the last owner stays.

mod common;

use std::path::Path;

use common::{TestApp, assert_error, builtin_auth as builtin, spawn_app_with};
use docent_config::AuthMode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn signup(app: &TestApp, email: &str) -> Value {
    let (s, b) = call(
        app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(json!({ "email": email, "password": PASSWORD })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

fn token(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
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

fn member_roles(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn invite_accept_list_roles_demote_remove_and_the_last_owner() {
    let app = spawn_app_with(builtin).await;
    let ann = signup(&app, "ann@example.com").await;
    let owner = token(&ann);
    let ann_id = ann["user"]["id"].as_str().unwrap().to_owned();
    let tenant_a = ann["tenant_id"].as_str().unwrap().to_owned();
    let bob = signup(&app, "bob@example.com").await;
    let bob_home = token(&bob);
    let bob_id = bob["user"]["id"].as_str().unwrap().to_owned();
    let carol = token(&signup(&app, "carol@example.com").await);

    // The invitation answer holds nothing secret: the token goes by mail only.
    let (s, inv) = call(
        &app,
        Method::POST,
        "/api/v1/invites",
        Some(&owner),
        Some(json!({ "email": "Bob@Example.com", "role": "viewer" })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{inv}");
    assert_eq!(inv["email"], "bob@example.com");
    assert_eq!(inv["role"], "viewer");
    let invite = mailed_token(&app.data_dir, "invite");
    assert!(!inv.to_string().contains(&invite), "{inv}");
    assert!(inv.get("token").is_none(), "{inv}");

    // Someone else cannot use Bob's invitation.
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/auth/invites/accept",
        Some(&carol),
        Some(json!({ "token": invite })),
    )
    .await;
    assert_error(s, &b, 401, "token_invalid");

    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/auth/invites/accept",
        Some(&bob_home),
        Some(json!({ "token": invite })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["tenant_id"], tenant_a.as_str());
    assert_eq!(b["role"], "viewer");
    // Used up.
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/invites/accept",
        Some(&bob_home),
        Some(json!({ "token": invite })),
    )
    .await;
    assert!(s.is_client_error(), "{s}");

    // Bob now has two workspaces and switches into Ann's.
    let (s, mine) = call(
        &app,
        Method::GET,
        "/api/v1/auth/tenants",
        Some(&bob_home),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{mine}");
    assert!(
        items.iter().any(|t| t["id"] == tenant_a.as_str()
            && t["role"] == "viewer"
            && t["current"] == false),
        "{mine}"
    );
    let (s, switched) = call(
        &app,
        Method::POST,
        "/api/v1/auth/switch",
        Some(&bob_home),
        Some(json!({ "tenant_id": tenant_a })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{switched}");
    assert_eq!(switched["tenant_id"], tenant_a.as_str());
    assert_eq!(switched["role"], "viewer");
    let bob_a = token(&switched);
    // Carol is not in Ann's workspace: 404, not 403.
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/auth/switch",
        Some(&carol),
        Some(json!({ "tenant_id": tenant_a })),
    )
    .await;
    assert_error(s, &b, 404, "tenant_not_found");

    // The owner lists Bob.
    let (s, list) = call(&app, Method::GET, "/api/v1/members", Some(&owner), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let roles = member_roles(&list);
    assert!(
        roles.contains(&("ann@example.com".into(), "owner".into())),
        "{list}"
    );
    assert!(
        roles.contains(&("bob@example.com".into(), "viewer".into())),
        "{list}"
    );
    assert!(!list.to_string().contains("carol"), "{list}");

    // A viewer reads nothing of the membership and changes nothing.
    let (s, b) = call(&app, Method::GET, "/api/v1/members", Some(&bob_a), None).await;
    assert_error(s, &b, 403, "insufficient_role");
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/invites",
        Some(&bob_a),
        Some(json!({ "email": "dan@example.com" })),
    )
    .await;
    assert_error(s, &b, 403, "insufficient_role");
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{ann_id}"),
        Some(&bob_a),
        Some(json!({ "role": "viewer" })),
    )
    .await;
    assert_error(s, &b, 403, "insufficient_role");
    let (s, b) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/members/{ann_id}"),
        Some(&bob_a),
        None,
    )
    .await;
    assert_error(s, &b, 403, "insufficient_role");

    // Another tenant's owner cannot see Ann's members: 404.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{bob_id}"),
        Some(&carol),
        Some(json!({ "role": "viewer" })),
    )
    .await;
    assert_error(s, &b, 404, "user_not_found");
    let (s, b) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/members/{bob_id}"),
        Some(&carol),
        None,
    )
    .await;
    assert_error(s, &b, 404, "user_not_found");

    // Bad input.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        Some(json!({ "role": "root" })),
    )
    .await;
    assert_error(s, &b, 400, "invalid_field");
    let (s, b) = call(
        &app,
        Method::PATCH,
        "/api/v1/members/not-an-id",
        Some(&owner),
        Some(json!({ "role": "viewer" })),
    )
    .await;
    assert_error(s, &b, 400, "invalid_id");
    let (s, b) = call(
        &app,
        Method::POST,
        "/api/v1/invites",
        Some(&owner),
        Some(json!({ "email": "bob@example.com" })),
    )
    .await;
    assert_error(s, &b, 409, "already_member");

    // The owner promotes, then demotes Bob.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["role"], "admin");
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["role"], "member");

    // The last owner can neither step down nor leave.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{ann_id}"),
        Some(&owner),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_error(s, &b, 409, "last_owner");
    let (s, b) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/members/{ann_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_error(s, &b, 409, "last_owner");

    // The owner removes Bob.
    let (s, b) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (_, list) = call(&app, Method::GET, "/api/v1/members", Some(&owner), None).await;
    assert_eq!(
        member_roles(&list),
        [("ann@example.com".into(), "owner".into())]
    );
    let (_, mine) = call(
        &app,
        Method::GET,
        "/api/v1/auth/tenants",
        Some(&bob_home),
        None,
    )
    .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    app.stop().await;
}

#[tokio::test]
async fn membership_routes_are_404_without_builtin_auth() {
    let app = spawn_app_with(|c| c.auth.mode = AuthMode::None).await;
    for (m, p) in [
        (Method::GET, "/api/v1/members"),
        (Method::GET, "/api/v1/auth/tenants"),
    ] {
        let (s, b) = call(&app, m, p, None, None).await;
        assert_error(s, &b, 404, "route_not_found");
    }
    app.stop().await;
}

/// Signs Bob up, has Ann invite him with `role` and returns (Bob's id, his token in Ann's
/// workspace).
async fn join(
    app: &TestApp,
    owner: &str,
    tenant: &str,
    email: &str,
    role: &str,
) -> (String, String) {
    let home = signup(app, email).await;
    let id = home["user"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        app,
        Method::POST,
        "/api/v1/invites",
        Some(owner),
        Some(json!({ "email": email, "role": role })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let invite = mailed_token(&app.data_dir, "invite");
    let (s, b) = call(
        app,
        Method::POST,
        "/api/v1/auth/invites/accept",
        Some(&token(&home)),
        Some(json!({ "token": invite })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, switched) = call(
        app,
        Method::POST,
        "/api/v1/auth/switch",
        Some(&token(&home)),
        Some(json!({ "tenant_id": tenant })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{switched}");
    (id, token(&switched))
}

async fn new_key(app: &TestApp, token: &str, name: &str) -> (StatusCode, Value) {
    call(
        app,
        Method::POST,
        "/api/v1/keys",
        Some(token),
        Some(json!({ "name": name })),
    )
    .await
}

/// Issue 21, H2: a demoted admin's access token acts with the role now in force at once, the
/// keys they made die with their right to make keys, and a removed member's token is refused —
/// no waiting for the token to expire. Key listings say who made each key.
#[tokio::test]
async fn demoted_and_removed_admins_lose_their_tokens_and_keys_at_once() {
    let app = spawn_app_with(builtin).await;
    let ann = signup(&app, "ann@example.com").await;
    let owner = token(&ann);
    let tenant = ann["tenant_id"].as_str().unwrap().to_owned();
    let (bob_id, bob) = join(&app, &owner, &tenant, "bob@example.com", "admin").await;

    let (s, k) = new_key(&app, &owner, "ann's").await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let ann_key = k["secret"].as_str().unwrap().to_owned();
    let (s, k) = new_key(&app, &bob, "bob's").await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let bob_key = k["secret"].as_str().unwrap().to_owned();
    let bob_key_id = k["key"]["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some(&bob_key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // The listing names each key's creator.
    let (s, list) = call(&app, Method::GET, "/api/v1/keys", Some(&owner), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let bobs = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == bob_key_id.as_str())
        .expect("bob's key listed")
        .clone();
    assert_eq!(bobs["created_by"], bob_id.as_str(), "{list}");
    assert_eq!(bobs["created_by_email"], "bob@example.com", "{list}");
    assert!(bobs["revoked_at"].is_null(), "{list}");

    // Demoted to member: the old token (which says admin) no longer administers ...
    let (s, b) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(&app, Method::GET, "/api/v1/keys", Some(&bob), None).await;
    assert_error(s, &b, 403, "insufficient_role");
    let (s, b) = new_key(&app, &bob, "one more").await;
    assert_error(s, &b, 403, "insufficient_role");
    // ... still works as a member ...
    let (s, _) = call(&app, Method::GET, "/api/v1/collections", Some(&bob), None).await;
    assert_eq!(s, StatusCode::OK);
    // ... and the key he made is revoked (Ann's is not).
    let (s, b) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some(&bob_key),
        None,
    )
    .await;
    assert_error(s, &b, 401, "api_key_revoked");
    let (s, _) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some(&ann_key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = call(&app, Method::GET, "/api/v1/keys", Some(&owner), None).await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == bob_key_id.as_str() && !k["revoked_at"].is_null()),
        "{list}"
    );

    // Promoted back, he administers again with the same token (the role in force counts).
    let (s, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, k) = new_key(&app, &bob, "again").await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let second_key = k["secret"].as_str().unwrap().to_owned();

    // Removed: the old token is refused outright, and his keys die with it.
    let (s, b) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/members/{bob_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = call(&app, Method::GET, "/api/v1/collections", Some(&bob), None).await;
    assert_error(s, &b, 401, "token_invalid");
    let (s, b) = new_key(&app, &bob, "after removal").await;
    assert_error(s, &b, 401, "token_invalid");
    let (s, b) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some(&second_key),
        None,
    )
    .await;
    assert_error(s, &b, 401, "api_key_revoked");
    let (s, _) = call(
        &app,
        Method::GET,
        "/api/v1/collections",
        Some(&ann_key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

/// Issue 21, H2: a change made by another process (here: straight in the database) reaches an
/// old access token within `auth.principal_cache_ttl`.
#[tokio::test]
async fn a_demotion_elsewhere_reaches_old_tokens_within_the_cache_ttl() {
    let app = spawn_app_with(|c| {
        builtin(c);
        c.auth.principal_cache_ttl = std::time::Duration::from_millis(200);
    })
    .await;
    let ann = signup(&app, "ann@example.com").await;
    let owner = token(&ann);
    let tenant = ann["tenant_id"].as_str().unwrap().to_owned();
    let (bob_id, bob) = join(&app, &owner, &tenant, "bob@example.com", "admin").await;
    // Cached as admin.
    let (s, _) = call(&app, Method::GET, "/api/v1/members", Some(&bob), None).await;
    assert_eq!(s, StatusCode::OK);

    let other = docent_store::SqliteStore::open(
        &app.data_dir.join("docent.db"),
        1,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    use docent_domain::auth::AuthStore as _;
    other
        .set_member_role(
            tenant.parse().unwrap(),
            bob_id.parse().unwrap(),
            docent_domain::Role::Viewer,
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut status = StatusCode::OK;
    while started.elapsed() < std::time::Duration::from_secs(5) {
        status = call(&app, Method::GET, "/api/v1/members", Some(&bob), None)
            .await
            .0;
        if status == StatusCode::FORBIDDEN {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    other.pool().close().await;
    app.stop().await;
}
