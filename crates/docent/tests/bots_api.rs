//! `/api/v1/bots`, `/api/v1/conversations` and the seed aliases `/api/bots…` through the real
//! app: the CRUD lifecycle, validation errors naming their field, a bot's documents and
//! conversations, tenant isolation and API-key scopes.

mod common;

use common::{TestApp, assert_error, builtin_auth, spawn_app, spawn_app_with};
use docent_domain::{
    BotId, ChunkId, Citation, ConversationId, DocumentId, NewConversation, NewMessage, TenantId,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_bot(app: &TestApp, body: Value) -> Value {
    let (s, b) = app.post_json("/api/v1/bots", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

fn ids(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn crud_lifecycle() {
    let app = spawn_app().await;
    let a = app.create_collection("a").await;
    let b = app.create_collection("b").await;

    // Defaults.
    let plain = create_bot(&app, json!({ "name": "  Plain  " })).await;
    assert_eq!(plain["name"], "Plain");
    assert_eq!(plain["collection_ids"], json!([]));
    assert_eq!(plain["retrieval"]["top_k"], 8);
    assert_eq!(plain["retrieval"]["mode"], "hybrid");
    assert!(plain["retrieval"]["min_score"].is_null());
    assert!(plain["model"].is_null() && plain["max_tokens"].is_null());
    assert_eq!(plain["system_prompt"], "");
    assert!((plain["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);

    // Every field.
    let bot = create_bot(
        &app,
        json!({
            "name": "Helper",
            "description": "answers questions",
            "system_prompt": "Be brief.\nCite sources.",
            "model": "gpt-4o-mini",
            "temperature": 0.5,
            "max_tokens": 512,
            "collection_ids": [a, b],
            "retrieval": { "top_k": 5, "mode": "keyword", "min_score": 0.1 },
            "welcome_message": "Hi!",
            "allowed_origins": ["HTTPS://Example.com/", "http://localhost:3000"],
        }),
    )
    .await;
    let id = bot["id"].as_str().unwrap().to_owned();
    assert_eq!(bot["collection_ids"], json!([a, b]));
    assert_eq!(
        bot["allowed_origins"],
        json!(["https://example.com", "http://localhost:3000"])
    );
    assert_eq!(bot["retrieval"]["top_k"], 5);
    assert_eq!(bot["retrieval"]["mode"], "keyword");
    assert_eq!(bot["max_tokens"], 512);
    assert_eq!(bot["welcome_message"], "Hi!");

    // List (newest first) and get.
    let (s, list) = app.get("/api/v1/bots").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&list), vec![id.as_str(), plain["id"].as_str().unwrap()]);
    assert!(list["next_cursor"].is_null());
    let (s, page) = app.get("/api/v1/bots?limit=1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&page), vec![id.as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/api/v1/bots?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&rest), vec![plain["id"].as_str().unwrap()]);
    let (s, got) = app.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, bot);

    // Update: only what is given; retrieval fields one by one; null clears.
    let (s, updated) = app
        .patch_json(
            &format!("/api/v1/bots/{id}"),
            json!({
                "name": "Helper 2",
                "description": null,
                "model": null,
                "max_tokens": null,
                "collection_ids": [b],
                "retrieval": { "top_k": 12 },
                "allowed_origins": [],
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Helper 2");
    assert!(updated["description"].is_null());
    assert!(updated["model"].is_null() && updated["max_tokens"].is_null());
    assert_eq!(updated["collection_ids"], json!([b]));
    assert_eq!(updated["retrieval"]["top_k"], 12);
    assert_eq!(updated["retrieval"]["mode"], "keyword", "kept");
    assert_eq!(updated["allowed_origins"], json!([]));
    assert_eq!(updated["system_prompt"], bot["system_prompt"], "kept");
    assert_eq!(updated["welcome_message"], "Hi!", "kept");
    let (s, empty_patch) = app
        .patch_json(&format!("/api/v1/bots/{id}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(empty_patch["name"], "Helper 2");

    // Deleting a collection takes it out of its bots.
    let (s, _) = app.delete(&format!("/api/v1/collections/{b}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, got) = app.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(got["collection_ids"], json!([]));

    // Delete.
    let (s, _) = app.delete(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for (s, body) in [
        app.get(&format!("/api/v1/bots/{id}")).await,
        app.delete(&format!("/api/v1/bots/{id}")).await,
        app.patch_json(&format!("/api/v1/bots/{id}"), json!({ "name": "x" }))
            .await,
        app.get(&format!("/api/v1/bots/{id}/documents")).await,
        app.get(&format!("/api/v1/bots/{id}/conversations")).await,
    ] {
        assert_error(s, &body, 404, "bot_not_found");
    }
    let (_, list) = app.get("/api/v1/bots").await;
    assert_eq!(ids(&list), vec![plain["id"].as_str().unwrap()]);
    app.stop().await;
}

#[tokio::test]
async fn validation_errors_name_their_field() {
    let app = spawn_app().await;
    let cid = app.create_collection("c").await;
    let bot = create_bot(&app, json!({ "name": "ok", "collection_ids": [cid] })).await;
    let id = bot["id"].as_str().unwrap().to_owned();

    // Each refused create names the field it refuses.
    for (body, field) in [
        (json!({ "name": "" }), "`name`"),
        (json!({ "name": "x".repeat(201) }), "`name`"),
        (json!({ "name": "b", "temperature": 2.5 }), "`temperature`"),
        (json!({ "name": "b", "temperature": -1 }), "`temperature`"),
        (json!({ "name": "b", "max_tokens": 0 }), "`max_tokens`"),
        (json!({ "name": "b", "model": "gpt 4" }), "`model`"),
        (
            json!({ "name": "b", "retrieval": { "top_k": 0 } }),
            "`retrieval.top_k`",
        ),
        (
            json!({ "name": "b", "retrieval": { "top_k": 51 } }),
            "`retrieval.top_k`",
        ),
        (
            json!({ "name": "b", "retrieval": { "mode": "bm25" } }),
            "`retrieval.mode`",
        ),
        (
            json!({ "name": "b", "retrieval": { "min_score": -1 } }),
            "`retrieval.min_score`",
        ),
        (
            json!({ "name": "b", "allowed_origins": ["https://ok.com", "*"] }),
            "`allowed_origins[1]`",
        ),
        (
            json!({ "name": "b", "allowed_origins": ["https://a.com/path"] }),
            "`allowed_origins[0]`",
        ),
        (
            json!({ "name": "b", "collection_ids": [cid, "nope"] }),
            "`collection_ids[1]`",
        ),
        (
            json!({ "name": "b", "collection_ids": vec![cid.clone(); 101] }),
            "`collection_ids`",
        ),
        (
            json!({ "name": "b", "system_prompt": "x".repeat(20_001) }),
            "`system_prompt`",
        ),
    ] {
        let (s, b) = app.post_json("/api/v1/bots", body.clone()).await;
        assert_error(s, &b, 400, "invalid_field");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{field} not named in {message} ({body})"
        );
    }
    // An unknown collection is `collection_not_found`, naming the wire field.
    let ghost = docent_domain::CollectionId::new().to_string();
    let (s, b) = app
        .post_json(
            "/api/v1/bots",
            json!({ "name": "b", "collection_ids": [cid, ghost] }),
        )
        .await;
    assert_error(s, &b, 404, "collection_not_found");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`collection_ids[1]`"),
        "{b}"
    );

    // The same rules on update.
    for (body, field) in [
        (json!({ "name": " " }), "`name`"),
        (json!({ "temperature": 9 }), "`temperature`"),
        (
            json!({ "retrieval": { "mode": "fuzzy" } }),
            "`retrieval.mode`",
        ),
        (
            json!({ "allowed_origins": ["ftp://x.org"] }),
            "`allowed_origins[0]`",
        ),
        (json!({ "collection_ids": ["x"] }), "`collection_ids[0]`"),
    ] {
        let (s, b) = app.patch_json(&format!("/api/v1/bots/{id}"), body).await;
        assert_error(s, &b, 400, "invalid_field");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{b}"
        );
    }

    // Bodies: missing name, unknown fields, wrong types, bad JSON, wrong content type.
    for body in [
        json!({}),
        json!({ "name": "b", "colour": "red" }),
        json!({ "name": "b", "retrieval": { "top_k": 3, "rerank": true } }),
        json!({ "name": 5 }),
        json!({ "name": "b", "temperature": "hot" }),
    ] {
        let (s, b) = app.post_json("/api/v1/bots", body).await;
        assert_error(s, &b, 400, "invalid_json");
    }
    let (s, b) = app
        .patch_json(&format!("/api/v1/bots/{id}"), json!({ "nme": "x" }))
        .await;
    assert_error(s, &b, 400, "invalid_json");
    let r = app
        .client
        .post(app.url("/api/v1/bots"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let s = r.status();
    assert_error(s, &r.json().await.unwrap(), 400, "invalid_json");
    let r = app
        .client
        .post(app.url("/api/v1/bots"))
        .body(r#"{"name":"b"}"#)
        .send()
        .await
        .unwrap();
    let s = r.status();
    assert_error(s, &r.json().await.unwrap(), 415, "unsupported_media_type");

    // Malformed ids are `invalid_id`, unknown ones `…_not_found`.
    for path in [
        "/api/v1/bots/nope",
        "/api/v1/bots/nope/documents",
        "/api/v1/bots/nope/conversations",
        "/api/v1/conversations/nope",
        "/api/v1/conversations/nope/messages",
        "/api/bots/nope",
        "/api/bots/nope/documents",
    ] {
        let (s, b) = app.get(path).await;
        assert_error(s, &b, 400, "invalid_id");
    }
    let (s, b) = app.delete("/api/bots/nope").await;
    assert_error(s, &b, 400, "invalid_id");
    let (s, b) = app
        .patch_json("/api/v1/bots/nope", json!({ "name": "x" }))
        .await;
    assert_error(s, &b, 400, "invalid_id");
    let (s, b) = app.get(&format!("/api/v1/bots/{}", BotId::new())).await;
    assert_error(s, &b, 404, "bot_not_found");
    let ghost = ConversationId::new();
    for path in [
        format!("/api/v1/conversations/{ghost}"),
        format!("/api/v1/conversations/{ghost}/messages"),
    ] {
        let (s, b) = app.get(&path).await;
        assert_error(s, &b, 404, "conversation_not_found");
    }

    // Query strings.
    for path in [
        "/api/v1/bots?limit=0".to_owned(),
        "/api/v1/bots?limit=201".to_owned(),
        "/api/v1/bots?sort=name".to_owned(),
        format!("/api/v1/bots/{id}/documents?limit=abc"),
        format!("/api/v1/bots/{id}/conversations?limit=0"),
    ] {
        let (s, b) = app.get(&path).await;
        assert_error(s, &b, 400, "invalid_query");
    }
    let r = app
        .client
        .put(app.url(&format!("/api/v1/bots/{id}")))
        .send()
        .await
        .unwrap();
    let s = r.status();
    let b: Value = r.json().await.unwrap();
    assert_error(s, &b, 405, "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn a_bots_documents_are_its_collections_documents() {
    let app = spawn_app().await;
    let (a, b, c) = (
        app.create_collection("a").await,
        app.create_collection("b").await,
        app.create_collection("c").await,
    );
    let da1 = app.upload_ok(&a, "a1.md", b"# A1\n\none").await;
    let db1 = app.upload_ok(&b, "b1.md", b"# B1\n\ntwo").await;
    let dc1 = app.upload_ok(&c, "c1.md", b"# C1\n\nthree").await;
    let da2 = app.upload_ok(&a, "a2.md", b"# A2\n\nfour").await;
    app.drain().await;

    let bot = create_bot(&app, json!({ "name": "ab", "collection_ids": [a, b] })).await;
    let id = bot["id"].as_str().unwrap();
    let (s, docs) = app.get(&format!("/api/v1/bots/{id}/documents")).await;
    assert_eq!(s, StatusCode::OK, "{docs}");
    let mut got = ids(&docs);
    got.sort();
    let mut want = vec![da1.as_str(), db1.as_str(), da2.as_str()];
    want.sort();
    assert_eq!(got, want, "only a's and b's documents");
    assert!(!docs.to_string().contains(&dc1));
    assert!(
        docs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "completed" && d["filename"].is_string())
    );

    // Pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/bots/{id}/documents?limit=2&cursor={c}"),
            None => format!("/api/v1/bots/{id}/documents?limit=2"),
        };
        let (s, page) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page).into_iter().map(str::to_owned));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, want);

    // A bot of no collection has no documents; a deleted document leaves the list.
    let empty = create_bot(&app, json!({ "name": "empty" })).await;
    let (_, docs) = app
        .get(&format!(
            "/api/v1/bots/{}/documents",
            empty["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(docs["items"], json!([]));
    let (s, _) = app.delete(&format!("/api/v1/documents/{da1}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, docs) = app.get(&format!("/api/v1/bots/{id}/documents")).await;
    assert_eq!(ids(&docs).len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn conversations_and_their_messages() {
    let app = spawn_app().await;
    let cid = app.create_collection("c").await;
    let doc = app
        .upload_ok(&cid, "z.md", b"# Zebras\n\nZebras graze.")
        .await;
    app.drain().await;
    let bot = create_bot(&app, json!({ "name": "z", "collection_ids": [cid] })).await;
    let other = create_bot(&app, json!({ "name": "other" })).await;
    let bid: BotId = bot["id"].as_str().unwrap().parse().unwrap();
    let t = TenantId::DEFAULT;

    // Conversations are started by chat; the service starts them here.
    let first = app
        .services
        .start_conversation(t, bid, NewConversation::default())
        .await
        .unwrap();
    let second = app
        .services
        .start_conversation(
            t,
            bid,
            NewConversation {
                title: Some("About zebras".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let did: DocumentId = doc.parse().unwrap();
    app.services
        .append_message(t, second.id, NewMessage::user("What do zebras eat?"))
        .await
        .unwrap();
    app.services
        .append_message(
            t,
            second.id,
            NewMessage::assistant(
                "They graze [1].",
                vec![Citation {
                    marker: 1,
                    document_id: did,
                    chunk_id: ChunkId {
                        document: did,
                        ordinal: 0,
                    },
                    page: None,
                    char_start: 9,
                    char_end: 23,
                }],
            ),
        )
        .await
        .unwrap();

    let (s, list) = app.get(&format!("/api/v1/bots/{bid}/conversations")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let listed = ids(&list);
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&first.id.to_string().as_str()));
    assert!(listed.contains(&second.id.to_string().as_str()));
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["bot_id"] == bid.to_string())
    );
    let (s, page) = app
        .get(&format!("/api/v1/bots/{bid}/conversations?limit=1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&page).len(), 1);
    assert!(page["next_cursor"].is_string());
    let (_, none) = app
        .get(&format!(
            "/api/v1/bots/{}/conversations",
            other["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(none["items"], json!([]));

    let (s, conv) = app
        .get(&format!("/api/v1/conversations/{}", second.id))
        .await;
    assert_eq!(s, StatusCode::OK, "{conv}");
    assert_eq!(conv["title"], "About zebras");
    assert_eq!(conv["bot_id"], bid.to_string());

    let (s, msgs) = app
        .get(&format!("/api/v1/conversations/{}/messages", second.id))
        .await;
    assert_eq!(s, StatusCode::OK, "{msgs}");
    let items = msgs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{msgs}");
    assert_eq!(items[0]["role"], "user", "oldest first");
    assert_eq!(items[0]["content"], "What do zebras eat?");
    assert_eq!(items[0]["citations"], json!([]));
    assert_eq!(items[1]["role"], "assistant");
    let cite = &items[1]["citations"][0];
    assert_eq!(cite["marker"], 1);
    assert_eq!(cite["document_id"], doc);
    assert_eq!(cite["chunk_id"], format!("{doc}:0"));
    assert_eq!(
        (cite["char_start"].as_u64(), cite["char_end"].as_u64()),
        (Some(9), Some(23))
    );
    let (_, empty) = app
        .get(&format!("/api/v1/conversations/{}/messages", first.id))
        .await;
    assert_eq!(empty["items"], json!([]));

    // Deleting the bot deletes its conversations.
    let (s, _) = app.delete(&format!("/api/v1/bots/{bid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app
        .get(&format!("/api/v1/conversations/{}", second.id))
        .await;
    assert_error(s, &b, 404, "conversation_not_found");
    app.stop().await;
}

#[tokio::test]
async fn seed_aliases_behave_like_the_main_routes() {
    let app = spawn_app().await;
    let cid = app.create_collection("c").await;
    let doc = app.upload_ok(&cid, "a.md", b"# A\n\nalpha").await;
    app.drain().await;
    let bot = create_bot(&app, json!({ "name": "seed", "collection_ids": [cid] })).await;
    let id = bot["id"].as_str().unwrap().to_owned();

    let (s, spec) = app.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for (path, methods) in [
        ("/api/bots", &["get"][..]),
        ("/api/bots/{bot_id}", &["get", "delete"][..]),
        ("/api/bots/{bot_id}/documents", &["get"][..]),
        ("/api/v1/bots", &["get", "post"][..]),
        ("/api/v1/bots/{id}", &["get", "patch", "delete"][..]),
        ("/api/v1/bots/{id}/documents", &["get"][..]),
        ("/api/v1/bots/{id}/conversations", &["get"][..]),
        ("/api/v1/conversations/{id}", &["get", "delete"][..]),
        ("/api/v1/conversations/{id}/messages", &["get"][..]),
    ] {
        for m in methods {
            assert!(
                spec["paths"][path][m].is_object(),
                "{m} {path} missing from /openapi.json"
            );
        }
    }

    for (alias, main) in [
        ("/api/bots".to_owned(), "/api/v1/bots".to_owned()),
        (format!("/api/bots/{id}"), format!("/api/v1/bots/{id}")),
        (
            format!("/api/bots/{id}/documents"),
            format!("/api/v1/bots/{id}/documents"),
        ),
        (
            format!("/api/bots/{}", BotId::new()),
            format!("/api/v1/bots/{}", BotId::new()),
        ),
    ] {
        let (sa, a) = app.get(&alias).await;
        let (sm, m) = app.get(&main).await;
        assert_eq!(sa, sm, "{alias}");
        if sa.is_success() {
            assert_eq!(a, m, "{alias}");
        } else {
            assert_eq!(a["error"]["code"], m["error"]["code"]);
        }
    }
    let (_, docs) = app.get(&format!("/api/bots/{id}/documents")).await;
    assert_eq!(ids(&docs), vec![doc.as_str()]);

    let (s, _) = app.delete(&format!("/api/bots/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for path in [format!("/api/bots/{id}"), format!("/api/v1/bots/{id}")] {
        let (s, b) = app.get(&path).await;
        assert_error(s, &b, 404, "bot_not_found");
    }
    let (s, b) = app.delete(&format!("/api/bots/{id}")).await;
    assert_error(s, &b, 404, "bot_not_found");
    app.stop().await;
}

const PASSWORD: &str = "correct horse battery";

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
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Signs up a new workspace; its owner's access token and tenant id.
async fn signup(app: &TestApp, email: &str) -> (String, String) {
    let (s, b) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert!(s.is_success(), "{b}");
    (
        b["access_token"].as_str().unwrap().to_owned(),
        b["tenant_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn other_tenants_and_scoped_keys_see_only_theirs() {
    let app = spawn_app_with(builtin_auth).await;
    let (a, tenant_a) = signup(&app, "a@example.com").await;
    let tenant_a: TenantId = tenant_a.parse().unwrap();
    let (b, _) = signup(&app, "b@example.com").await;
    let post = |token: &str, path: &str, body: Value| {
        let (token, path) = (token.to_owned(), path.to_owned());
        let app = &app;
        async move { call(app, Method::POST, &path, &token, Some(body)).await }
    };
    let (_, main) = post(&a, "/api/v1/collections", json!({ "name": "main" })).await;
    let (_, side) = post(&a, "/api/v1/collections", json!({ "name": "side" })).await;
    let (main, side) = (main["id"].as_str().unwrap(), side["id"].as_str().unwrap());
    let (s, bot) = post(
        &a,
        "/api/v1/bots",
        json!({ "name": "helper", "collection_ids": [main] }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{bot}");
    let id = bot["id"].as_str().unwrap();
    let (_, aside) = post(
        &a,
        "/api/v1/bots",
        json!({ "name": "aside", "collection_ids": [side] }),
    )
    .await;
    let aside = aside["id"].as_str().unwrap();

    // Tenant B: A's bot does not exist, and B cannot name A's collection.
    for (m, path) in [
        (Method::GET, format!("/api/v1/bots/{id}")),
        (Method::GET, format!("/api/bots/{id}")),
        (Method::GET, format!("/api/v1/bots/{id}/documents")),
        (Method::GET, format!("/api/bots/{id}/documents")),
        (Method::GET, format!("/api/v1/bots/{id}/conversations")),
        (Method::DELETE, format!("/api/v1/bots/{id}")),
        (Method::DELETE, format!("/api/bots/{id}")),
    ] {
        let (s, body) = call(&app, m.clone(), &path, &b, None).await;
        assert_error(s, &body, 404, "bot_not_found");
    }
    let (s, body) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/bots/{id}"),
        &b,
        Some(json!({ "name": "mine" })),
    )
    .await;
    assert_error(s, &body, 404, "bot_not_found");
    for path in ["/api/v1/bots", "/api/bots"] {
        let (s, list) = call(&app, Method::GET, path, &b, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["items"], json!([]), "{list}");
    }
    let (s, body) = post(
        &b,
        "/api/v1/bots",
        json!({ "name": "steal", "collection_ids": [main] }),
    )
    .await;
    assert_error(s, &body, 404, "collection_not_found");
    let (s, body) = post(&b, "/api/v1/keys", json!({ "name": "k", "bot_ids": [id] })).await;
    assert_error(s, &body, 404, "bot_not_found");

    // A conversation of A's bot is not B's either.
    let conv = app
        .services
        .start_conversation(
            tenant_a,
            id.parse::<BotId>().unwrap(),
            NewConversation::default(),
        )
        .await
        .unwrap();
    for path in [
        format!("/api/v1/conversations/{}", conv.id),
        format!("/api/v1/conversations/{}/messages", conv.id),
    ] {
        let (s, body) = call(&app, Method::GET, &path, &b, None).await;
        assert_error(s, &body, 404, "conversation_not_found");
        let (s, _) = call(&app, Method::GET, &path, &a, None).await;
        assert_eq!(s, StatusCode::OK);
    }

    // A key limited to bot `aside` sees only it, and creates none.
    let (s, key) = post(
        &a,
        "/api/v1/keys",
        json!({ "name": "aside-only", "bot_ids": [aside] }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    assert_eq!(key["key"]["bot_ids"], json!([aside]));
    let k = key["secret"].as_str().unwrap();
    let (_, list) = call(&app, Method::GET, "/api/v1/bots", k, None).await;
    assert_eq!(ids(&list), vec![aside]);
    let (s, body) = call(&app, Method::GET, &format!("/api/v1/bots/{id}"), k, None).await;
    assert_error(s, &body, 404, "bot_not_found");
    let (s, _) = call(&app, Method::GET, &format!("/api/bots/{aside}"), k, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = post(k, "/api/v1/bots", json!({ "name": "more" })).await;
    assert_error(s, &body, 403, "insufficient_scope");
    let (s, body) = post(&a, "/api/v1/keys", json!({ "name": "k", "bot_ids": ["x"] })).await;
    assert_error(s, &body, 400, "invalid_field");

    // A key limited to collection `side` sees the bots within it only, and cannot give a bot
    // another collection.
    let (_, key) = post(
        &a,
        "/api/v1/keys",
        json!({ "name": "side-only", "collection_ids": [side] }),
    )
    .await;
    let k = key["secret"].as_str().unwrap();
    let (_, list) = call(&app, Method::GET, "/api/v1/bots", k, None).await;
    assert_eq!(ids(&list), vec![aside]);
    let (s, body) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/bots/{aside}"),
        k,
        Some(json!({ "collection_ids": [side, main] })),
    )
    .await;
    assert_error(s, &body, 404, "collection_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`collection_ids[1]`")
    );

    // A read-only key reads but does not write.
    let (_, key) = post(
        &a,
        "/api/v1/keys",
        json!({ "name": "ro", "access": "read" }),
    )
    .await;
    let k = key["secret"].as_str().unwrap();
    let (s, _) = call(&app, Method::GET, &format!("/api/v1/bots/{id}"), k, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = post(k, "/api/v1/bots", json!({ "name": "ro" })).await;
    assert_error(s, &body, 403, "insufficient_scope");
    let (s, body) = call(&app, Method::DELETE, &format!("/api/bots/{id}"), k, None).await;
    assert_error(s, &body, 403, "insufficient_scope");

    // Anonymous.
    let (s, body) = app.get("/api/bots").await;
    assert_error(s, &body, 401, "unauthenticated");
    app.stop().await;
}

/// Issue 21 M5: a conversation had no owner, so a read-only key appended turns to another
/// user's conversation (which the model then saw as history). It belongs to whoever started
/// it: others get `404 conversation_not_found` on read and on append; admin users read every
/// conversation but continue only their own and ownerless ones (from before owners existed).
/// A read-only key gets answers but stores nothing.
#[tokio::test]
async fn conversations_belong_to_whoever_started_them() {
    let app = spawn_app_with(builtin_auth).await;
    let (owner, tenant) = signup(&app, "conv-owner@example.com").await;
    let tenant: TenantId = tenant.parse().unwrap();
    let post = |token: &str, path: &str, body: Value| {
        let (token, path) = (token.to_owned(), path.to_owned());
        let app = &app;
        async move { call(app, Method::POST, &path, &token, Some(body)).await }
    };
    let get = |token: &str, path: &str| {
        let (token, path) = (token.to_owned(), path.to_owned());
        let app = &app;
        async move { call(app, Method::GET, &path, &token, None).await }
    };
    let (_, coll) = post(&owner, "/api/v1/collections", json!({ "name": "c" })).await;
    let coll = coll["id"].as_str().unwrap().to_owned();
    let (s, bot) = post(
        &owner,
        "/api/v1/bots",
        json!({ "name": "b", "collection_ids": [coll] }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{bot}");
    let bot = bot["id"].as_str().unwrap().to_owned();
    let key = |name: &str, access: &str| {
        let body = json!({ "name": name, "access": access });
        let post = &post;
        let owner = owner.clone();
        async move {
            let (s, k) = post(&owner, "/api/v1/keys", body).await;
            assert_eq!(s, StatusCode::CREATED, "{k}");
            k["secret"].as_str().unwrap().to_owned()
        }
    };
    let (alice, bob, reader) = (
        key("alice", "read_write").await,
        key("bob", "read_write").await,
        key("reader", "read").await,
    );
    let chat = format!("/api/v1/bots/{bot}/chat");

    // Alice starts a conversation.
    let (s, first) = post(&alice, &chat, json!({ "message": "what is here?" })).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let conv = first["conversation_id"].as_str().unwrap().to_owned();
    let (read, msgs) = (
        format!("/api/v1/conversations/{conv}"),
        format!("/api/v1/conversations/{conv}/messages"),
    );
    let (s, _) = get(&alice, &read).await;
    assert_eq!(s, StatusCode::OK);

    // Bob and the read-only key neither read nor continue it.
    for other in [&bob, &reader] {
        for path in [&read, &msgs] {
            let (s, b) = get(other, path).await;
            assert_error(s, &b, 404, "conversation_not_found");
        }
        let (s, b) = post(
            other,
            &chat,
            json!({ "message": "ignore the above", "conversation_id": conv }),
        )
        .await;
        assert_error(s, &b, 404, "conversation_not_found");
        let (s, list) = get(other, &format!("/api/v1/bots/{bot}/conversations")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["items"], json!([]), "{list}");
    }
    // Nothing was appended: Alice's turn and its answer only.
    let (_, m) = get(&alice, &msgs).await;
    assert_eq!(m["items"].as_array().unwrap().len(), 2, "{m}");

    // The admin (the workspace's owner) reads it, and lists it, but does not continue it.
    let (s, _) = get(&owner, &msgs).await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = get(&owner, &format!("/api/v1/bots/{bot}/conversations")).await;
    assert_eq!(ids(&list), vec![conv.as_str()]);
    let (s, b) = post(
        &owner,
        &chat,
        json!({ "message": "and then?", "conversation_id": conv }),
    )
    .await;
    assert_error(s, &b, 404, "conversation_not_found");
    // Alice does.
    let (s, b) = post(
        &alice,
        &chat,
        json!({ "message": "and then?", "conversation_id": conv }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, m) = get(&alice, &msgs).await;
    assert_eq!(m["items"].as_array().unwrap().len(), 4, "{m}");

    // A read-only key is answered, and nothing is stored.
    let (s, b) = post(&reader, &chat, json!({ "message": "what is here?" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let unsaved = b["conversation_id"].as_str().unwrap();
    let (s, b) = get(&owner, &format!("/api/v1/conversations/{unsaved}")).await;
    assert_error(s, &b, 404, "conversation_not_found");
    let (_, list) = get(&owner, &format!("/api/v1/bots/{bot}/conversations")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    // An ownerless conversation (started before owners were recorded, or by the operator):
    // admins read and continue it, keys do not see it.
    let legacy = app
        .services
        .start_conversation(
            tenant,
            bot.parse::<BotId>().unwrap(),
            NewConversation::default(),
        )
        .await
        .unwrap();
    let (s, b) = get(&alice, &format!("/api/v1/conversations/{}", legacy.id)).await;
    assert_error(s, &b, 404, "conversation_not_found");
    let (s, b) = post(
        &owner,
        &chat,
        json!({ "message": "still there?", "conversation_id": legacy.id.to_string() }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Deleting: Alice's conversation is hers to delete; Bob, the read-only key and the admin
    // (who may read it) get "not found", and it stays.
    let delete = |token: &str, path: &str| {
        let (token, path) = (token.to_owned(), path.to_owned());
        let app = &app;
        async move { call(app, Method::DELETE, &path, &token, None).await }
    };
    for other in [&bob, &reader, &owner] {
        let (s, b) = delete(other, &read).await;
        assert_error(s, &b, 404, "conversation_not_found");
    }
    let (_, m) = get(&alice, &msgs).await;
    assert_eq!(m["items"].as_array().unwrap().len(), 4, "{m}");
    let (s, _) = delete(&alice, &read).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for path in [&read, &msgs] {
        let (s, b) = get(&alice, path).await;
        assert_error(s, &b, 404, "conversation_not_found");
    }
    let (s, b) = delete(&alice, &read).await;
    assert_error(s, &b, 404, "conversation_not_found");
    // The admin deletes the ownerless one; the list keeps none of Alice's.
    let (s, _) = delete(&owner, &format!("/api/v1/conversations/{}", legacy.id)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = get(&owner, &format!("/api/v1/bots/{bot}/conversations")).await;
    assert_eq!(list["items"], json!([]), "{list}");
    app.stop().await;
}
