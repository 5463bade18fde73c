//! The authorization matrix, generated from `/openapi.json`: every operation (path × method) is
//! called as each kind of caller, and the answer must match the table below. An operation in
//! the OpenAPI document but not in the table (or the other way round) fails the test, so no
//! route ships without an authorization decision.
//!
//! Callers: anonymous; the owner of another tenant; a viewer of tenant A; a read-only API key
//! of A; a read-write key of A limited to another collection; a member, an admin and the owner
//! of A; a read-write key of A limited to another bot. Path ids are tenant A's real ids
//! (collection `main`, its document and task, bot `helper` over `main` and a conversation with
//! it); each call of a destructive operation (and each widget-key rotation) gets a fresh target
//! of its own, so every caller meets a live one. The widget's visitor routes answer no user or
//! API-key credential, and the widget's own credentials open no other route
//! (`tests/widget_api.rs`). Besides the status class, every successful answer to the other tenant or
//! to a wrong-collection or wrong-bot key is checked not to contain the ids it must not see.

mod common;

use std::collections::BTreeSet;

use common::{TestApp, builtin_auth as builtin, spawn_app_with};
use docent_domain::auth::AccountTenant;
use docent_domain::{NewConversation, NewMessage, Role};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    OtherTenant,
    Viewer,
    ReadKey,
    WrongCollectionKey,
    Member,
    Admin,
    Owner,
    WrongBotKey,
}

const CALLERS: [Caller; 9] = [
    Caller::Anonymous,
    Caller::OtherTenant,
    Caller::Viewer,
    Caller::ReadKey,
    Caller::WrongCollectionKey,
    Caller::Member,
    Caller::Admin,
    Caller::Owner,
    Caller::WrongBotKey,
];

/// The expected answer class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Anything but `unauthenticated` (or a 5xx): the route needs no credential.
    Public,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404: the id is not visible to this caller.
    NotFound,
    /// 2xx.
    Success,
    /// Not 401, 403 or 404 (nor 5xx): the caller is let through (a 409 for a finished task is fine).
    Allowed,
    /// The credential is accepted (no `unauthenticated`, no 403, no 5xx) though the body may
    /// not be (an invalid invitation token is 401 `token_invalid`).
    Authenticated,
}

use Expect::{Allowed, Authenticated, Forbidden, NotFound, Public, Success, Unauthorized};

// Rows in caller order: anonymous, other tenant, viewer, read-only key, wrong-collection key,
// member, admin, owner, wrong-bot key (a key limited to some bots reads only their collections,
// everywhere, and creates no collection).
/// Public routes.
const PUBLIC: [Expect; 9] = [Public; 9];
/// Reads of one of A's resources (in collection `main`).
const READ_ID: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Success,
    Success,
    NotFound,
    Success,
    Success,
    Success,
    NotFound,
];
/// Compute for any credential, touching no tenant data (`/v1/embeddings`).
const EMBED: [Expect; 9] = [
    Unauthorized,
    Allowed,
    Allowed,
    Allowed,
    Allowed,
    Allowed,
    Allowed,
    Allowed,
    Allowed,
];
/// Reads over the caller's own tenant (lists, searches): others see only their own.
const READ_TENANT: [Expect; 9] = [
    Unauthorized,
    Success,
    Success,
    Success,
    Success,
    Success,
    Success,
    Success,
    Success,
];
/// Reads of one of A's resources that the local blob store of this test answers with `409
/// feature_unavailable` (presigned URLs need S3): the scope checks come first.
const READ_ID_S3: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Allowed,
    Allowed,
    NotFound,
    Allowed,
    Allowed,
    Allowed,
    NotFound,
];
/// Changes to one of A's resources.
const WRITE_ID: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Forbidden,
    Forbidden,
    NotFound,
    Allowed,
    Allowed,
    Allowed,
    NotFound,
];
/// Creating a tenant-wide resource (a collection) in the caller's own tenant.
const CREATE: [Expect; 9] = [
    Unauthorized,
    Success,
    Forbidden,
    Forbidden,
    Forbidden,
    Success,
    Success,
    Success,
    Forbidden,
];
/// Administration over the caller's own tenant (API keys): admins and owners only, never keys.
const ADMIN: [Expect; 9] = [
    Unauthorized,
    Success,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Success,
    Success,
    Forbidden,
];
/// Administration of one of A's resources.
const ADMIN_ID: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Forbidden,
    Forbidden,
    Forbidden,
    Forbidden,
    Success,
    Success,
    Forbidden,
];

/// Acting on one's own account (accepting an invitation): any signed-in user, never keys.
const SIGNED_IN: [Expect; 9] = [
    Unauthorized,
    Authenticated,
    Authenticated,
    Forbidden,
    Forbidden,
    Authenticated,
    Authenticated,
    Authenticated,
    Forbidden,
];
/// Reading one's own account (my workspaces): any signed-in user, never keys.
const SIGNED_IN_READ: [Expect; 9] = [
    Unauthorized,
    Success,
    Success,
    Forbidden,
    Forbidden,
    Success,
    Success,
    Success,
    Forbidden,
];
/// Switching into tenant A: its users only; others' users do not see it, keys never.
const SWITCH: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Success,
    Forbidden,
    Forbidden,
    Success,
    Success,
    Success,
    Forbidden,
];

/// Reads of A's bot `helper` (over collection `main`) or its conversation: hidden from keys
/// limited to another collection or another bot.
const BOT_READ_ID: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Success,
    Success,
    NotFound,
    Success,
    Success,
    Success,
    NotFound,
];
/// Reads of the conversation with `helper`, which the operator started (so it has no owner):
/// admins and owners only. A conversation someone started is theirs alone (admins read it).
const CONVERSATION_READ_ID: [Expect; 9] = [
    Unauthorized,
    NotFound,
    NotFound,
    NotFound,
    NotFound,
    NotFound,
    Success,
    Success,
    NotFound,
];
/// Changes to A's bot `helper`.
const BOT_WRITE_ID: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Forbidden,
    Forbidden,
    NotFound,
    Allowed,
    Allowed,
    Allowed,
    NotFound,
];
/// Creating a bot over collection `main`: another tenant's and a wrong-collection key's
/// `main` does not exist; a key limited to some bots creates none.
const BOT_CREATE: [Expect; 9] = [
    Unauthorized,
    NotFound,
    Forbidden,
    Forbidden,
    NotFound,
    Success,
    Success,
    Success,
    Forbidden,
];

/// The widget's visitor routes, which take only a widget session token: no user or API-key
/// credential opens them (nor does a widget credential open any other route).
const WIDGET_SESSION: [Expect; 9] = [Unauthorized; 9];

/// Every operation, in the order the test runs them (destructive ones last).
const MATRIX: &[(&str, &str, [Expect; 9])] = &[
    ("GET", "/health", PUBLIC),
    ("GET", "/api/v1/health", PUBLIC),
    ("GET", "/ready", PUBLIC),
    ("GET", "/metrics", PUBLIC),
    ("GET", "/api/v1/errors", PUBLIC),
    ("POST", "/api/v1/auth/signup", PUBLIC),
    ("POST", "/api/v1/auth/signin", PUBLIC),
    ("POST", "/api/v1/auth/refresh", PUBLIC),
    ("POST", "/api/v1/auth/signout", PUBLIC),
    ("POST", "/api/v1/auth/verify", PUBLIC),
    ("POST", "/api/v1/auth/confirm", PUBLIC),
    ("POST", "/api/v1/auth/password/reset", PUBLIC),
    ("POST", "/api/v1/auth/password/reset/confirm", PUBLIC),
    ("POST", "/api/v1/setup", PUBLIC),
    ("POST", "/auth/signup", PUBLIC),
    ("POST", "/auth/signin", PUBLIC),
    ("POST", "/auth/verify", PUBLIC),
    ("POST", "/auth/confirm", PUBLIC),
    ("POST", "/auth/refresh", PUBLIC),
    ("GET", "/api/v1/collections", READ_TENANT),
    ("GET", "/api/v1/collections/{id}", READ_ID),
    ("GET", "/api/v1/collections/{id}/documents", READ_ID),
    // Which contents the collection holds: a read, whatever the method.
    ("POST", "/api/v1/collections/{id}/documents/lookup", READ_ID),
    ("GET", "/api/v1/documents/{id}", READ_ID),
    ("GET", "/api/v1/documents/{id}/content", READ_ID),
    ("GET", "/api/v1/documents/{id}/download-url", READ_ID_S3),
    ("GET", "/api/v1/documents/{id}/chunks", READ_ID),
    ("GET", "/api/v1/documents/{id}/summary", READ_ID),
    ("GET", "/api/v1/tasks", READ_TENANT),
    ("GET", "/api/v1/tasks/counts", READ_TENANT),
    ("GET", "/api/v1/tasks/{id}", READ_ID),
    ("POST", "/api/v1/search", READ_TENANT),
    ("POST", "/api/v1/collections/{id}/search", READ_ID),
    ("POST", "/api/v1/ask", READ_TENANT),
    ("GET", "/api/v1/bots", READ_TENANT),
    ("GET", "/api/v1/bots/{id}", BOT_READ_ID),
    ("GET", "/api/v1/bots/{id}/documents", BOT_READ_ID),
    ("GET", "/api/v1/bots/{id}/conversations", BOT_READ_ID),
    ("GET", "/api/v1/conversations/{id}", CONVERSATION_READ_ID),
    (
        "GET",
        "/api/v1/conversations/{id}/messages",
        CONVERSATION_READ_ID,
    ),
    // Chatting reads: viewers and read-only keys may; another bot's key may not.
    ("POST", "/api/v1/bots/{id}/chat", BOT_READ_ID),
    ("POST", "/api/chat", BOT_READ_ID),
    ("POST", "/v1/chat/completions", BOT_READ_ID),
    // OpenAI-compatible models are the caller's bots; embeddings need only a credential (this
    // test's server has no embedder: authorized callers get `400 embedder_not_configured`).
    ("GET", "/v1/models", READ_TENANT),
    ("GET", "/v1/models/{id}", BOT_READ_ID),
    ("POST", "/v1/embeddings", EMBED),
    // Seed-compatible bot aliases.
    ("GET", "/api/bots", READ_TENANT),
    ("GET", "/api/bots/{bot_id}", BOT_READ_ID),
    ("GET", "/api/bots/{bot_id}/documents", BOT_READ_ID),
    // The widget: a public session route (a widget key and a page origin; `helper` allows
    // none, so it refuses) and the visitor routes; managing a bot's widget keys is editing it.
    ("POST", "/widget/v1/session", PUBLIC),
    ("GET", "/widget/v1/conversation", WIDGET_SESSION),
    ("POST", "/widget/v1/chat", WIDGET_SESSION),
    ("GET", "/api/v1/bots/{id}/widget-keys", BOT_WRITE_ID),
    ("POST", "/api/v1/bots/{id}/widget-keys", BOT_WRITE_ID),
    ("GET", "/api/v1/bots/{id}/widget-refusals", BOT_WRITE_ID),
    ("POST", "/api/v1/bots/{id}/widget-preview", BOT_WRITE_ID),
    // A fresh key each time, as for deletes.
    (
        "POST",
        "/api/v1/bots/{id}/widget-keys/{key_id}/rotate",
        BOT_WRITE_ID,
    ),
    ("GET", "/api/v1/keys", ADMIN),
    ("POST", "/api/v1/keys", ADMIN),
    ("GET", "/api/v1/members", ADMIN),
    ("PATCH", "/api/v1/members/{user_id}", ADMIN_ID),
    ("POST", "/api/v1/invites", ADMIN),
    ("POST", "/api/v1/auth/invites/accept", SIGNED_IN),
    ("GET", "/api/v1/auth/tenants", SIGNED_IN_READ),
    ("POST", "/api/v1/auth/switch", SWITCH),
    ("POST", "/api/v1/collections", CREATE),
    ("PATCH", "/api/v1/collections/{id}", WRITE_ID),
    ("POST", "/api/v1/bots", BOT_CREATE),
    ("PATCH", "/api/v1/bots/{id}", BOT_WRITE_ID),
    ("POST", "/api/v1/collections/{id}/documents", WRITE_ID),
    // Direct uploads (S3): the local store of this test answers authorized callers 409.
    (
        "POST",
        "/api/v1/collections/{id}/documents/uploads",
        WRITE_ID,
    ),
    (
        "POST",
        "/api/v1/collections/{id}/documents/uploads/{upload_id}/complete",
        WRITE_ID,
    ),
    // Seed-compatible upload aliases, naming collection `main` (query / form part).
    ("POST", "/upload", WRITE_ID),
    ("POST", "/api/upload", WRITE_ID),
    ("POST", "/api/v1/tasks/{id}/cancel", WRITE_ID),
    ("POST", "/api/v1/tasks/{id}/retry", WRITE_ID),
    ("POST", "/api/v1/documents/{id}/reprocess", WRITE_ID),
    ("GET", "/api/v1/documents/{id}/failed-rows", READ_ID),
    ("POST", "/api/v1/documents/{id}/retry-failed-rows", WRITE_ID),
    ("DELETE", "/api/v1/keys/{id}", ADMIN_ID),
    ("DELETE", "/api/v1/members/{user_id}", ADMIN_ID),
    (
        "DELETE",
        "/api/v1/bots/{id}/widget-keys/{key_id}",
        BOT_WRITE_ID,
    ),
    ("DELETE", "/api/v1/bots/{id}", BOT_WRITE_ID),
    // Deleting the operator's conversation with `helper` (fresh each time): who may read it.
    ("DELETE", "/api/v1/conversations/{id}", CONVERSATION_READ_ID),
    ("DELETE", "/api/bots/{bot_id}", BOT_WRITE_ID),
    ("DELETE", "/api/v1/documents/{id}", WRITE_ID),
    ("DELETE", "/api/v1/collections/{id}", WRITE_ID),
];

/// Tenant A's ids, and the credentials of every caller.
struct World {
    collection: String,
    other_collection: String,
    document: String,
    task: String,
    /// Bot `helper` over `main`, and a conversation with it.
    bot: String,
    conversation: String,
    spare_key: String,
    /// A widget key of `helper` (text).
    widget_key: String,
    /// A viewer of tenant A whose role the matrix changes.
    spare_member: String,
    tenant: String,
    credentials: Vec<(Caller, Option<String>)>,
}

impl World {
    fn credential(&self, caller: Caller) -> Option<&str> {
        self.credentials
            .iter()
            .find(|(c, _)| *c == caller)
            .and_then(|(_, t)| t.as_deref())
    }

    /// The concrete path of an operation.
    fn fill(&self, path: &str) -> String {
        let id = if path.starts_with("/api/v1/collections/") {
            &self.collection
        } else if path.starts_with("/api/v1/documents/") {
            &self.document
        } else if path.starts_with("/api/v1/tasks/") {
            &self.task
        } else if path.starts_with("/api/v1/bots/")
            || path.starts_with("/api/bots/")
            || path.starts_with("/v1/models/")
        {
            &self.bot
        } else if path.starts_with("/api/v1/conversations/") {
            &self.conversation
        } else if path.starts_with("/api/v1/keys/") {
            &self.spare_key
        } else if path.starts_with("/api/v1/members/") {
            &self.spare_member
        } else {
            ""
        };
        if path == "/widget/v1/conversation" {
            return format!("{path}?conversation_id={}", self.conversation);
        }
        // A well-formed upload id (the matrix is about who may call).
        path.replace("{id}", id)
            .replace("{user_id}", id)
            .replace("{bot_id}", id)
            .replace("{upload_id}", &self.document)
    }

    /// Ids that must never appear in an answer to `caller`.
    fn hidden_from(&self, caller: Caller) -> Vec<&str> {
        match caller {
            Caller::OtherTenant => vec![
                &self.collection,
                &self.other_collection,
                &self.document,
                &self.task,
                &self.bot,
                &self.conversation,
                &self.spare_key,
                &self.spare_member,
                &self.tenant,
            ],
            Caller::WrongCollectionKey => vec![
                &self.collection,
                &self.document,
                &self.task,
                &self.bot,
                &self.conversation,
            ],
            Caller::WrongBotKey => vec![&self.bot, &self.conversation],
            _ => Vec::new(),
        }
    }
}

async fn send(
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
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    name: &str,
    text: &str,
) -> (StatusCode, Value) {
    upload_with(app, token, path, &[], name, text).await
}

/// An upload with text parts (`fields`) before the file.
async fn upload_with(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    fields: &[(&str, &str)],
    name: &str,
    text: &str,
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_owned());
    let mut req = app
        .client
        .post(app.url(path))
        .multipart(form.part("file", part));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("upload");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn ok(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
    let (s, b) = send(app, method, path, token, Some(body)).await;
    assert!(s.is_success(), "{path}: {s} {b}");
    b
}

/// Signs up (a new tenant) and returns the session.
async fn signup(app: &TestApp, email: &str) -> Value {
    ok(
        app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        json!({ "email": email, "password": PASSWORD }),
    )
    .await
}

/// A new user of tenant A with `role` (made through the service); returns the user id.
async fn add_user(
    app: &TestApp,
    tenant: docent_domain::TenantId,
    role: Role,
    email: &str,
) -> String {
    let auth = app.auth.as_ref().expect("builtin mode");
    let (user, _) = auth
        .create_user(docent_auth::CreateUser {
            email: email.to_owned(),
            password: Some(PASSWORD.into()),
            display_name: None,
            tenant: AccountTenant::Existing {
                tenant_id: tenant,
                role,
            },
        })
        .await
        .expect("user created");
    user.id.to_string()
}

/// A new user of tenant A with `role`, signed in. The membership is made through the service.
async fn join(app: &TestApp, tenant: docent_domain::TenantId, role: Role) -> String {
    let email = format!("{role}-a@example.com");
    let auth = app.auth.as_ref().expect("builtin mode");
    auth.create_user(docent_auth::CreateUser {
        email: email.clone(),
        password: Some(PASSWORD.into()),
        display_name: None,
        tenant: AccountTenant::Existing {
            tenant_id: tenant,
            role,
        },
    })
    .await
    .expect("user created");
    let session = ok(
        app,
        Method::POST,
        "/api/v1/auth/signin",
        None,
        json!({ "email": email, "password": PASSWORD }),
    )
    .await;
    assert_eq!(session["role"], role.to_string(), "{session}");
    session["access_token"].as_str().unwrap().to_owned()
}

/// A fresh target for a destructive operation, so that every caller meets a live one.
async fn fresh(app: &TestApp, world: &World, path: &str, n: usize) -> String {
    let owner = world.credential(Caller::Owner);
    let id = match path {
        "/api/v1/documents/{id}" => {
            let (s, b) = upload(
                app,
                owner,
                &format!("/api/v1/collections/{}/documents", world.collection),
                &format!("gone-{n}.md"),
                &format!("# Gone {n}\n\nShort-lived zebras {n}.\n"),
            )
            .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
            app.drain().await;
            b["document"]["id"].as_str().unwrap().to_owned()
        }
        "/api/v1/collections/{id}" => {
            let b = ok(
                app,
                Method::POST,
                "/api/v1/collections",
                owner,
                json!({ "name": format!("gone-{n}") }),
            )
            .await;
            b["id"].as_str().unwrap().to_owned()
        }
        "/api/v1/members/{user_id}" => {
            let tenant = world.tenant.parse().unwrap();
            let id = add_user(app, tenant, Role::Viewer, &format!("gone-{n}@example.com")).await;
            return path.replace("{user_id}", &id);
        }
        "/api/v1/bots/{id}" | "/api/bots/{bot_id}" => {
            let b = ok(
                app,
                Method::POST,
                "/api/v1/bots",
                owner,
                json!({ "name": format!("gone-{n}"), "collection_ids": [world.collection] }),
            )
            .await;
            let id = b["id"].as_str().unwrap();
            return path.replace("{id}", id).replace("{bot_id}", id);
        }
        "/api/v1/conversations/{id}" => {
            let tenant: docent_domain::TenantId = world.tenant.parse().unwrap();
            let bot: docent_domain::BotId = world.bot.parse().unwrap();
            app.services
                .start_conversation(tenant, bot, NewConversation::default())
                .await
                .expect("conversation started")
                .id
                .to_string()
        }
        "/api/v1/bots/{id}/widget-keys/{key_id}"
        | "/api/v1/bots/{id}/widget-keys/{key_id}/rotate" => {
            let b = ok(
                app,
                Method::POST,
                &format!("/api/v1/bots/{}/widget-keys", world.bot),
                owner,
                json!({ "name": format!("gone-{n}") }),
            )
            .await;
            return path
                .replace("{id}", &world.bot)
                .replace("{key_id}", b["id"].as_str().unwrap());
        }
        "/api/v1/keys/{id}" => {
            let b = ok(
                app,
                Method::POST,
                "/api/v1/keys",
                owner,
                json!({ "name": format!("gone-{n}") }),
            )
            .await;
            b["key"]["id"].as_str().unwrap().to_owned()
        }
        other => panic!("no fresh target for {other}"),
    };
    path.replace("{id}", &id)
}

/// Tenant A (owner, admin, member, viewer, keys, a processed document) and tenant B's owner.
async fn world(app: &TestApp) -> World {
    let session_a = signup(app, "owner-a@example.com").await;
    let owner = session_a["access_token"].as_str().unwrap().to_owned();
    let tenant_a: docent_domain::TenantId =
        session_a["tenant_id"].as_str().unwrap().parse().unwrap();
    let other = signup(app, "owner-b@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let main = ok(
        app,
        Method::POST,
        "/api/v1/collections",
        Some(&owner),
        json!({ "name": "main" }),
    )
    .await;
    let collection = main["id"].as_str().unwrap().to_owned();
    let side = ok(
        app,
        Method::POST,
        "/api/v1/collections",
        Some(&owner),
        json!({ "name": "side" }),
    )
    .await;
    let other_collection = side["id"].as_str().unwrap().to_owned();
    let (s, b) = upload(
        app,
        Some(&owner),
        &format!("/api/v1/collections/{collection}/documents"),
        "zebra.md",
        "# Zebras\n\nZebras graze on the savanna. Zebras have stripes.\n",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let document = b["document"]["id"].as_str().unwrap().to_owned();
    let task = b["task"]["id"].as_str().unwrap().to_owned();
    app.drain().await;

    let key = |body: Value| {
        let owner = owner.clone();
        async move { ok(app, Method::POST, "/api/v1/keys", Some(&owner), body).await }
    };
    let read_key = key(json!({ "name": "ro", "access": "read" })).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong_key = key(json!({ "name": "side-only", "collection_ids": [other_collection] })).await
        ["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bot `helper` over `main` with a conversation (conversations are started by chat; the
    // service starts this one), and bot `aside` over `side` for the wrong-bot key.
    let bot = ok(
        app,
        Method::POST,
        "/api/v1/bots",
        Some(&owner),
        json!({ "name": "helper", "collection_ids": [collection] }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let aside = ok(
        app,
        Method::POST,
        "/api/v1/bots",
        Some(&owner),
        json!({ "name": "aside", "collection_ids": [other_collection] }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bot_id: docent_domain::BotId = bot.parse().unwrap();
    let conversation = app
        .services
        .start_conversation(tenant_a, bot_id, NewConversation::default())
        .await
        .expect("conversation started");
    app.services
        .append_message(tenant_a, conversation.id, NewMessage::user("zebras?"))
        .await
        .expect("message appended");
    let wrong_bot_key = key(json!({ "name": "aside-only", "bot_ids": [aside] })).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let spare_key = key(json!({ "name": "spare" })).await["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let widget_key = ok(
        app,
        Method::POST,
        &format!("/api/v1/bots/{bot}/widget-keys"),
        Some(&owner),
        json!({}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let viewer = join(app, tenant_a, Role::Viewer).await;
    let member = join(app, tenant_a, Role::Member).await;
    let admin = join(app, tenant_a, Role::Admin).await;
    let spare_member = add_user(app, tenant_a, Role::Viewer, "spare-a@example.com").await;

    World {
        collection,
        other_collection,
        document,
        task,
        bot,
        conversation: conversation.id.to_string(),
        spare_key,
        widget_key,
        spare_member,
        tenant: tenant_a.to_string(),
        credentials: vec![
            (Caller::Anonymous, None),
            (Caller::OtherTenant, Some(other)),
            (Caller::Viewer, Some(viewer)),
            (Caller::ReadKey, Some(read_key)),
            (Caller::WrongCollectionKey, Some(wrong_key)),
            (Caller::Member, Some(member)),
            (Caller::Admin, Some(admin)),
            (Caller::Owner, Some(owner)),
            (Caller::WrongBotKey, Some(wrong_bot_key)),
        ],
    }
}

/// A plausible body for each operation (the matrix is about who may call, not about input).
fn body_for(world: &World, method: &str, path: &str, n: usize) -> Option<Value> {
    if method != "POST" && method != "PATCH" {
        return None;
    }
    Some(match path {
        "/api/v1/collections" => json!({ "name": format!("made-{n}") }),
        "/api/v1/collections/{id}" => json!({ "description": format!("edited {n}") }),
        "/api/v1/bots" => {
            json!({ "name": format!("made-{n}"), "collection_ids": [world.collection] })
        }
        "/api/v1/bots/{id}" => json!({ "description": format!("edited {n}") }),
        "/api/v1/collections/{id}/documents/lookup" => json!({ "sha256": ["0".repeat(64)] }),
        "/api/v1/collections/{id}/documents/uploads" => json!({
            "filename": format!("direct-{n}.md"),
            "size": 12,
            "sha256": "0".repeat(64),
            "content_type": "text/markdown",
        }),
        "/api/v1/search" | "/api/v1/collections/{id}/search" => json!({ "query": "zebras" }),
        "/api/v1/ask" => json!({ "question": "what do zebras eat?" }),
        "/api/v1/bots/{id}/chat" => json!({ "message": "what do zebras eat?" }),
        "/api/chat" => json!({ "bot_id": world.bot, "message": "what do zebras eat?" }),
        "/v1/embeddings" => json!({ "model": "any", "input": "zebras" }),
        "/v1/chat/completions" => json!({
            "model": world.bot,
            "messages": [{ "role": "user", "content": "what do zebras eat?" }],
        }),
        "/api/v1/keys" => json!({ "name": format!("key-{n}") }),
        "/widget/v1/session" => {
            json!({ "key": world.widget_key, "host_origin": "https://site.example" })
        }
        "/widget/v1/chat" => json!({ "message": "what do zebras eat?" }),
        "/api/v1/bots/{id}/widget-keys" => json!({ "name": format!("w-{n}") }),
        "/api/v1/bots/{id}/widget-keys/{key_id}/rotate" => json!({}),
        "/api/v1/members/{user_id}" => json!({ "role": "member" }),
        "/api/v1/invites" => json!({ "email": format!("invitee-{n}@example.com") }),
        "/api/v1/auth/invites/accept" => json!({ "token": "not-a-token" }),
        "/api/v1/auth/switch" => json!({ "tenant_id": world.tenant }),
        p if p.ends_with("/signup") => {
            json!({ "email": format!("new-{n}@example.com"), "password": PASSWORD })
        }
        p if p.ends_with("/signin") => {
            json!({ "email": format!("nobody-{n}@example.com"), "password": PASSWORD })
        }
        p if p.ends_with("/refresh") || p.ends_with("/signout") => {
            json!({ "refresh_token": "not-a-refresh-token" })
        }
        p if p.ends_with("/verify") || p.ends_with("/password/reset") => {
            json!({ "email": "nobody@example.com" })
        }
        p if p.ends_with("/confirm") && p.contains("password") => {
            json!({ "token": "not-a-token", "password": PASSWORD })
        }
        p if p.ends_with("/confirm") => json!({ "token": "not-a-token" }),
        "/api/v1/setup" => {
            json!({ "token": "not-a-token", "email": "setup@example.com", "password": PASSWORD })
        }
        _ => return None,
    })
}

/// Every (METHOD, path) of the OpenAPI document.
fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn check(expect: Expect, status: StatusCode, body: &Value) -> bool {
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let s = status.as_u16();
    if s >= 500 {
        return false;
    }
    match expect {
        Public => code != "unauthenticated",
        Unauthorized => s == 401,
        Forbidden => s == 403,
        NotFound => s == 404,
        Success => status.is_success(),
        Allowed => !matches!(s, 401 | 403 | 404),
        Authenticated => code != "unauthenticated" && s != 403,
    }
}

#[tokio::test]
async fn every_operation_authorizes_every_kind_of_caller() {
    let app = spawn_app_with(builtin).await;
    let (s, spec) = send(&app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);

    // The table and the document list the same operations.
    let documented = operations(&spec);
    let tabled: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        tabled.len(),
        MATRIX.len(),
        "an operation is in the table twice"
    );
    let missing: Vec<_> = documented.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "operations without an authorization decision in MATRIX: {missing:?}"
    );
    let stale: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "MATRIX lists operations the API no longer has: {stale:?}"
    );
    // Public rows are exactly the operations the document marks `security: [{}]`.
    for (method, path, row) in MATRIX {
        let op = &spec["paths"][*path][method.to_lowercase()];
        let public_in_spec = op["security"] == json!([{}]);
        assert_eq!(
            public_in_spec,
            *row == PUBLIC,
            "{method} {path}: the OpenAPI security and the matrix disagree"
        );
    }

    let world = world(&app).await;
    let mut failures = Vec::new();
    let mut n = 0;
    for (method, path, row) in MATRIX {
        for (caller, expect) in CALLERS.iter().zip(row) {
            n += 1;
            let url = if *method == "DELETE" || path.ends_with("/rotate") {
                fresh(&app, &world, path, n).await
            } else {
                world.fill(path)
            };
            let token = world.credential(*caller);
            let (file, text) = (format!("up-{n}.md"), format!("# Up {n}\n\nZebras {n}.\n"));
            let main = world.collection.as_str();
            let (status, body) = match (*method, *path) {
                ("POST", "/api/v1/collections/{id}/documents") => {
                    upload(&app, token, &url, &file, &text).await
                }
                ("POST", "/upload") => {
                    let url = format!("{url}?collection_id={main}");
                    upload(&app, token, &url, &file, &text).await
                }
                ("POST", "/api/upload") => {
                    let fields = [("collection_id", main)];
                    upload_with(&app, token, &url, &fields, &file, &text).await
                }
                _ => {
                    let m = Method::from_bytes(method.as_bytes()).unwrap();
                    send(&app, m, &url, token, body_for(&world, method, path, n)).await
                }
            };
            if !check(*expect, status, &body) {
                failures.push(format!(
                    "{method} {path} as {caller:?}: expected {expect:?}, got {status} {body}"
                ));
                continue;
            }
            if status.is_success() {
                let text = body.to_string();
                for hidden in world.hidden_from(*caller) {
                    if text.contains(hidden) {
                        failures.push(format!(
                            "{method} {path} as {caller:?}: the answer shows {hidden}: {text}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} authorization failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}
