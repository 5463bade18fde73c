//! The embeddable chat widget's server side through the real app (SQLite, extractive answers):
//! widget keys (create, list, rotate, revoke), visitor sessions bound to the bot's allowed
//! origins, streamed chat with sources shaped by the bot's `widget.sources`, a visitor's
//! conversation resumed on reload and hidden from every other visitor, rate limits and the
//! daily quota, session expiry and forgery, CORS and framing headers, and widget credentials
//! refused on every other route.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{TestApp, assert_error, builtin_auth, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SITE: &str = "https://site.example";
const HANDBOOK: &[u8] = b"# Handbook\n\nThe office opens at nine in the morning. Visitors sign in at the front desk.\n\n\
## Parking\n\nParking is free for visitors in the north lot behind the building.\n";

/// An app whose address may mint many sessions (every test client is 127.0.0.1).
async fn spawn_app() -> TestApp {
    spawn_app_with(roomy).await
}

fn roomy(c: &mut docent_config::Config) {
    c.widget.session_rate = docent_config::RateQuota {
        per_minute: 600,
        burst: 100,
    };
}

/// A processed collection and a bot over it allowing `origins`; the bot's id.
async fn bot(app: &TestApp, origins: &[&str], extra: Value) -> String {
    let coll = app.create_collection(&format!("c{}", rand_suffix())).await;
    app.upload_ok(&coll, "handbook.md", HANDBOOK).await;
    app.drain().await;
    let mut body = json!({
        "name": format!("bot {}", rand_suffix()),
        "collection_ids": [coll],
        "allowed_origins": origins,
        "welcome_message": "Hello! Ask me about the office.",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, b) = app.post_json("/api/v1/bots", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// A new widget key of `bot`: (id, key).
async fn key(app: &TestApp, bot: &str, body: Value) -> (String, String) {
    let (s, k) = app
        .post_json(&format!("/api/v1/bots/{bot}/widget-keys"), body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    (
        k["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    )
}

/// `POST /widget/v1/session` with optional `Origin` header.
async fn session(
    app: &TestApp,
    key: &str,
    host: &str,
    visitor: Option<&str>,
    origin: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url("/widget/v1/session"))
        .json(&json!({ "key": key, "host_origin": host, "visitor": visitor }));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn session_ok(app: &TestApp, key: &str, visitor: Option<&str>) -> Value {
    let (s, b) = session(app, key, SITE, visitor, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

/// Parses a server-sent event stream into (event, data) pairs.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut event = String::from("message");
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
            }
        }
        if !data.is_empty() {
            out.push((event, serde_json::from_str(&data.join("\n")).unwrap()));
        }
    }
    out
}

/// What `POST /widget/v1/chat` answered: the status, headers, and either the events of a
/// stream or the error envelope.
struct Chat {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    events: Vec<(String, Value)>,
    error: Value,
}

impl Chat {
    fn done(&self) -> &Value {
        &self
            .events
            .iter()
            .find(|(e, _)| e == "done")
            .unwrap_or_else(|| panic!("no done event: {:?} {}", self.events, self.error))
            .1
    }
}

async fn chat(app: &TestApp, token: &str, message: &str, conversation: Option<&str>) -> Chat {
    let r = app
        .client
        .post(app.url("/widget/v1/chat"))
        .bearer_auth(token)
        .json(&json!({ "message": message, "conversation_id": conversation }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    if status.is_success() {
        Chat {
            status,
            headers,
            events: sse_events(&text),
            error: Value::Null,
        }
    } else {
        Chat {
            status,
            headers,
            events: Vec::new(),
            error: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

async fn conversation(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .get(app.url(&format!("/widget/v1/conversation?conversation_id={id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn token(s: &Value) -> &str {
    s["token"].as_str().unwrap()
}

#[tokio::test]
async fn a_visitor_chats_and_a_reload_resumes_the_conversation() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (s, k) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/widget-keys"),
            json!({ "name": "Main site", "daily_quota": 50 }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let (kid, key) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    assert!(key.starts_with("dwk_") && key.len() > 40, "{key}");
    assert_eq!(k["name"], "Main site");
    assert_eq!(k["daily_quota"], 50);
    assert!(k["revoked_at"].is_null());
    assert_eq!(
        k["snippet"],
        format!(
            "<script src=\"{}/widget.js\" data-key=\"{key}\" async></script>",
            app.base
        )
    );

    let s1 = session_ok(&app, key, None).await;
    let visitor = s1["visitor"].as_str().unwrap();
    assert_eq!(visitor.len(), 43);
    assert!(s1["conversation_id"].is_null());
    assert_eq!(
        s1["bot"]["welcome_message"],
        "Hello! Ask me about the office."
    );
    assert_eq!(s1["bot"]["sources"], "none");
    assert!(s1["expires_at"].as_str().is_some());

    let c = chat(&app, token(&s1), "When does the office open?", None).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.error);
    assert_eq!(
        c.headers["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let kinds: Vec<&str> = c.events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"start"), "{kinds:?}");
    assert!(kinds.contains(&"delta"));
    let done = c.done();
    assert!(done["answer"].as_str().unwrap().contains("nine"), "{done}");
    let conv = done["conversation_id"].as_str().unwrap().to_owned();
    let cites = done["citations"].as_array().unwrap();
    assert!(!cites.is_empty(), "{done}");
    // `sources: none`: the numbers only, nothing about the documents.
    for c in cites {
        assert_eq!(
            c.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["n"],
            "{c}"
        );
    }
    assert!(!done.to_string().contains("handbook"), "{done}");

    // A reload: the same visitor gets a new session resuming the conversation.
    let s2 = session_ok(&app, key, Some(visitor)).await;
    assert_eq!(s2["visitor"], visitor);
    assert_eq!(s2["conversation_id"], conv.as_str());
    let (s, history) = conversation(&app, token(&s2), &conv).await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let msgs = history["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[1]["role"], "assistant");
    assert!(!msgs[1]["citations"].as_array().unwrap().is_empty());
    // Continuing it.
    let c = chat(&app, token(&s2), "Where do visitors park?", Some(&conv)).await;
    assert_eq!(c.done()["conversation_id"], conv.as_str());

    // The owner sees it among the bot's conversations, marked, with today's use on the key.
    let (_, list) = app.get(&format!("/api/v1/bots/{bot}/conversations")).await;
    let item = &list["items"][0];
    assert_eq!(item["id"], conv.as_str());
    assert_eq!(item["source"], "widget");
    assert_eq!(item["widget_key_id"], kid);
    let (_, keys) = app.get(&format!("/api/v1/bots/{bot}/widget-keys")).await;
    assert_eq!(keys["data"][0]["messages_today"], 2, "{keys}");
    app.stop().await;
}

#[tokio::test]
async fn origins_outside_the_list_are_refused_and_recorded() {
    let app = spawn_app().await;
    let open = bot(&app, &[SITE, "http://localhost:3000"], json!({})).await;
    let closed = bot(&app, &[], json!({})).await;
    let (_, open_key) = key(&app, &open, json!({})).await;
    let (_, closed_key) = key(&app, &closed, json!({})).await;

    // An empty list refuses every origin, never allows all.
    for host in [SITE, "http://localhost:3000", "https://evil.example"] {
        let (s, b) = session(&app, &closed_key, host, None, None).await;
        assert_error(s, &b, 403, "widget_origin_refused");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(host),
            "{b}"
        );
    }
    let (s, b) = session(&app, &open_key, "https://evil.example", None, None).await;
    assert_error(s, &b, 403, "widget_origin_refused");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("https://evil.example") && msg.contains("allowed origins"),
        "{msg}"
    );
    // Exact match: scheme, host and port.
    for host in [
        "http://site.example",
        "https://site.example:8443",
        "https://sub.site.example",
    ] {
        let (s, b) = session(&app, &open_key, host, None, None).await;
        assert_error(s, &b, 403, "widget_origin_refused");
    }
    let (s, _) = session(&app, &open_key, "http://localhost:3000", None, None).await;
    assert_eq!(s, StatusCode::OK);
    // A page elsewhere cannot claim to be the site: `Origin` must be the site or docent.
    let (s, b) = session(&app, &open_key, SITE, None, Some("https://evil.example")).await;
    assert_error(s, &b, 403, "widget_origin_refused");
    let (s, _) = session(&app, &open_key, SITE, None, Some(SITE)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = session(&app, &open_key, SITE, None, Some(&app.base)).await;
    assert_eq!(s, StatusCode::OK, "the frame, on docent's own origin");
    // Unknown keys.
    let (s, b) = session(&app, "dwk_nope", SITE, None, None).await;
    assert_error(s, &b, 401, "widget_key_invalid");

    // The owner sees why.
    let (s, r) = app
        .get(&format!("/api/v1/bots/{closed}/widget-refusals"))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let evil = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["origin"] == "https://evil.example")
        .unwrap();
    assert_eq!(evil["reason"], "no_origins");
    assert_eq!(evil["count"], 1);
    let (_, r) = app
        .get(&format!("/api/v1/bots/{open}/widget-refusals"))
        .await;
    assert!(
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["origin"] == "https://evil.example" && x["reason"] == "origin_not_allowed"),
        "{r}"
    );

    // Taking the origin off the list stops sessions already minted.
    let s = session_ok(&app, &open_key, None).await;
    let (st, _) = app
        .patch_json(
            &format!("/api/v1/bots/{open}"),
            json!({ "allowed_origins": ["http://localhost:3000"] }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let c = chat(&app, token(&s), "hello", None).await;
    assert_error(c.status, &c.error, 403, "widget_origin_refused");
    app.stop().await;
}

#[tokio::test]
async fn revoked_keys_stop_at_once_and_rotation_replaces_them() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (kid, key) = key(&app, &bot, json!({ "name": "n", "daily_quota": 9 })).await;
    let s = session_ok(&app, &key, None).await;

    // Rotate: a new key with the same name and quota; the old one and its sessions stop.
    let (st, new) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/widget-keys/{kid}/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{new}");
    assert_ne!(new["key"], key.as_str());
    assert_eq!(
        (new["name"].clone(), new["daily_quota"].clone()),
        (json!("n"), json!(9))
    );
    let (st, b) = session(&app, &key, SITE, None, None).await;
    assert_error(st, &b, 401, "widget_key_invalid");
    let c = chat(&app, token(&s), "hello", None).await;
    assert_error(c.status, &c.error, 401, "widget_key_invalid");
    let (st, b) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/widget-keys/{kid}/rotate"),
            json!({}),
        )
        .await;
    assert_error(st, &b, 404, "widget_key_not_found");

    // The new key works, and the visitor keeps their conversation across the rotation.
    let new_key = new["key"].as_str().unwrap();
    let s2 = session_ok(&app, new_key, Some(s["visitor"].as_str().unwrap())).await;
    let c = chat(&app, token(&s2), "When does the office open?", None).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.error);
    let conv = c.done()["conversation_id"].as_str().unwrap().to_owned();

    // Revoke: at once, for new sessions and live ones.
    let new_id = new["id"].as_str().unwrap();
    let (st, _) = app
        .delete(&format!("/api/v1/bots/{bot}/widget-keys/{new_id}"))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let c = chat(&app, token(&s2), "hello again", None).await;
    assert_error(c.status, &c.error, 401, "widget_key_invalid");
    let (st, b) = conversation(&app, token(&s2), &conv).await;
    assert_error(st, &b, 401, "widget_key_invalid");
    let (st, b) = session(&app, new_key, SITE, None, None).await;
    assert_error(st, &b, 401, "widget_key_invalid");

    let (_, keys) = app.get(&format!("/api/v1/bots/{bot}/widget-keys")).await;
    let keys = keys["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| !k["revoked_at"].is_null()), "{keys:?}");
    // Another bot's key id is not found here.
    let other = self::bot(&app, &[SITE], json!({})).await;
    let (st, b) = app
        .delete(&format!("/api/v1/bots/{other}/widget-keys/{kid}"))
        .await;
    assert_error(st, &b, 404, "widget_key_not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_daily_quota_ends_politely_and_is_counted() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (kid, key) = key(&app, &bot, json!({ "daily_quota": 2 })).await;
    // Two visitors, so only the key's quota can stop them.
    for _ in 0..2 {
        let s = session_ok(&app, &key, None).await;
        let c = chat(&app, token(&s), "When does the office open?", None).await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.error);
    }
    let s = session_ok(&app, &key, None).await;
    let c = chat(&app, token(&s), "And parking?", None).await;
    assert_error(c.status, &c.error, 429, "widget_quota_exceeded");
    assert_eq!(
        c.error["error"]["message"],
        "This assistant has reached its daily message limit. Please try again tomorrow."
    );
    let wait: u64 = c.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "until tomorrow: {wait}");

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "docent_widget_quota_exhausted_total{{key=\"{kid}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("docent_widget_messages_total{outcome=\"quota_exceeded\"} 1"));
    assert!(metrics.contains("docent_widget_messages_total{outcome=\"ok\"} 2"));
    assert!(metrics.contains("docent_widget_sessions_total 3"));
    app.stop().await;
}

#[tokio::test]
async fn one_visitor_is_rate_limited_not_the_others() {
    let app = spawn_app_with(|c| {
        roomy(c);
        c.widget.visitor_rate = docent_config::RateQuota {
            per_minute: 1,
            burst: 2,
        };
    })
    .await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (_, key) = key(&app, &bot, json!({})).await;
    let a = session_ok(&app, &key, None).await;
    for _ in 0..2 {
        assert_eq!(
            chat(&app, token(&a), "hi", None).await.status,
            StatusCode::OK
        );
    }
    let c = chat(&app, token(&a), "hi", None).await;
    assert_error(c.status, &c.error, 429, "rate_limited");
    assert!(c.headers.contains_key("retry-after"));
    // A new session of the same visitor is the same visitor.
    let again = session_ok(&app, &key, a["visitor"].as_str()).await;
    let c = chat(&app, token(&again), "hi", None).await;
    assert_error(c.status, &c.error, 429, "rate_limited");
    let b = session_ok(&app, &key, None).await;
    assert_eq!(
        chat(&app, token(&b), "hi", None).await.status,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn one_visitor_can_never_read_another_visitors_conversation() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (_, key) = key(&app, &bot, json!({})).await;
    let alice = session_ok(&app, &key, None).await;
    let c = chat(&app, token(&alice), "When does the office open?", None).await;
    let conv = c.done()["conversation_id"].as_str().unwrap().to_owned();

    let mallory = session_ok(&app, &key, None).await;
    assert_ne!(mallory["visitor"], alice["visitor"]);
    assert!(mallory["conversation_id"].is_null(), "nothing to resume");
    let (s, b) = conversation(&app, token(&mallory), &conv).await;
    assert_error(s, &b, 404, "conversation_not_found");
    let c = chat(&app, token(&mallory), "what did they ask?", Some(&conv)).await;
    assert_error(c.status, &c.error, 404, "conversation_not_found");
    // A forged visitor secret is a new visitor.
    let forged = session_ok(&app, &key, Some(&"A".repeat(43))).await;
    let (s, _) = conversation(&app, token(&forged), &conv).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Guessed ids, and ids of the API's own conversations, are not found either.
    for id in [
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::new_v4().to_string(),
    ] {
        let (s, b) = conversation(&app, token(&alice), &id).await;
        assert_error(s, &b, 404, "conversation_not_found");
    }
    let (_, api_chat) = app
        .post_json(
            &format!("/api/v1/bots/{bot}/chat"),
            json!({ "message": "When does the office open?" }),
        )
        .await;
    let api_conv = api_chat["conversation_id"].as_str().unwrap();
    let (s, _) = conversation(&app, token(&alice), api_conv).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The same visitor secret on another bot is another visitor there.
    let other = self::bot(&app, &[SITE], json!({})).await;
    let (_, other_key) = self::key(&app, &other, json!({})).await;
    let there = session_ok(&app, &other_key, alice["visitor"].as_str()).await;
    assert!(there["conversation_id"].is_null());
    let (s, _) = conversation(&app, token(&there), &conv).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Alice still reads hers.
    let (s, _) = conversation(&app, token(&alice), &conv).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = conversation(&app, token(&alice), "not-an-id").await;
    assert_error(s, &b, 400, "invalid_field");
    app.stop().await;
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs `claims` as the server would, with the secret it keeps in the database.
async fn forge(app: &TestApp, claims: Value) -> String {
    let secret = app.services.store.widget_secret(&[0; 32]).await.unwrap();
    let signed = format!("dws.{}", B64.encode(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let tag = aws_lc_rs::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", B64.encode(tag.as_ref()))
}

#[tokio::test]
async fn expired_and_forged_sessions_are_refused() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (kid, key) = key(&app, &bot, json!({})).await;
    let s = session_ok(&app, &key, None).await;
    let tok = token(&s);
    let (_, body) = tok.split_once('.').unwrap();
    let (claims, _) = body.split_once('.').unwrap();
    let mut claims: Value = serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["k"], kid.as_str());

    // Signed by the server but past its time: expired (the widget then mints a new session).
    claims["e"] = json!(unix_now() - 5);
    let expired = forge(&app, claims.clone()).await;
    let c = chat(&app, &expired, "hello", None).await;
    assert_error(c.status, &c.error, 401, "widget_session_expired");
    assert_eq!(c.headers["www-authenticate"], "Bearer");
    // Changed without the secret: invalid.
    claims["e"] = json!(unix_now() + 600);
    let valid_sig = forge(&app, claims.clone()).await;
    let (signed, _) = valid_sig.rsplit_once('.').unwrap();
    let (_, real_sig) = tok.rsplit_once('.').unwrap();
    for bad in [
        format!("{signed}.{real_sig}"),
        format!("{tok}x"),
        "dws.e30.AAAA".to_owned(),
        "garbage".to_owned(),
        key.clone(),
    ] {
        let c = chat(&app, &bad, "hello", None).await;
        assert_error(c.status, &c.error, 401, "widget_session_invalid");
    }
    let r = app
        .client
        .post(app.url("/widget/v1/chat"))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    app.stop().await;
}

#[tokio::test]
async fn citations_are_shaped_by_the_sources_setting() {
    let app = spawn_app().await;
    let names = bot(&app, &[SITE], json!({ "widget": { "sources": "names" } })).await;
    let snippets = bot(
        &app,
        &[SITE],
        json!({ "widget": { "sources": "snippets", "color": "#0B5FFF" } }),
    )
    .await;
    let (s, b) = app.get(&format!("/api/v1/bots/{snippets}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b["widget"],
        json!({ "sources": "snippets", "color": "#0b5fff" })
    );
    let (s, b) = app
        .post_json(
            "/api/v1/bots",
            json!({ "name": "x", "widget": { "sources": "all" } }),
        )
        .await;
    assert_error(s, &b, 400, "invalid_field");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("widget.sources")
    );
    let (s, b) = app
        .post_json(
            "/api/v1/bots",
            json!({ "name": "x", "widget": { "color": "red" } }),
        )
        .await;
    assert_error(s, &b, 400, "invalid_field");

    for (bot, with_snippet) in [(&names, false), (&snippets, true)] {
        let (_, key) = key(&app, bot, json!({})).await;
        let s = session_ok(&app, &key, None).await;
        assert_eq!(
            s["bot"]["sources"],
            if with_snippet { "snippets" } else { "names" }
        );
        let c = chat(&app, token(&s), "When does the office open?", None).await;
        let start = &c.events[0].1;
        let done = c.done();
        for cite in start["sources"]
            .as_array()
            .unwrap()
            .iter()
            .chain(done["citations"].as_array().unwrap())
        {
            assert_eq!(cite["name"], "handbook.md", "{cite}");
            assert_eq!(cite.get("snippet").is_some(), with_snippet, "{cite}");
            assert!(cite.get("document_id").is_none() && cite.get("chunk_id").is_none());
        }
        let conv = done["conversation_id"].as_str().unwrap();
        let (_, history) = conversation(&app, token(&s), conv).await;
        let cite = &history["messages"][1]["citations"][0];
        assert_eq!(cite["name"], "handbook.md", "{history}");
        if with_snippet {
            assert!(cite["snippet"].as_str().unwrap().contains("nine"), "{cite}");
        } else {
            assert!(cite.get("snippet").is_none());
        }
    }
    // Switching a bot back to `none` hides names in stored conversations too.
    let (s, b) = app
        .patch_json(
            &format!("/api/v1/bots/{snippets}"),
            json!({ "widget": { "sources": "none" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["widget"]["color"], "#0b5fff", "kept");
    app.stop().await;
}

#[tokio::test]
async fn cors_answers_only_the_bots_origins() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE], json!({})).await;
    let (_, key) = key(&app, &bot, json!({})).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/widget/v1/session"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let r = preflight(SITE).await.unwrap();
    assert!(r.status().is_success(), "{} {:?}", r.status(), r.headers());
    assert_eq!(r.headers()["access-control-allow-origin"], SITE);
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let r = app
        .client
        .post(app.url("/widget/v1/session"))
        .header("origin", SITE)
        .json(&json!({ "key": key, "host_origin": SITE }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], SITE);
    let tok = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .post(app.url("/widget/v1/session"))
        .header("origin", "https://evil.example")
        .json(&json!({ "key": key, "host_origin": "https://evil.example" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A chat from the site itself is answered with CORS; the quota message is readable too.
    let r = app
        .client
        .post(app.url("/widget/v1/chat"))
        .header("origin", SITE)
        .bearer_auth(&tok)
        .json(&json!({ "message": "When does the office open?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], SITE);
    // The API itself sends no CORS for the site.
    let r = app
        .client
        .get(app.url("/api/v1/bots"))
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[tokio::test]
async fn framing_headers_name_the_bots_origins_and_nothing_else() {
    let app = spawn_app().await;
    let bot = bot(&app, &[SITE, "http://localhost:3000"], json!({})).await;
    let (kid, key) = key(&app, &bot, json!({})).await;
    let get = |path: String, referer: Option<&'static str>| {
        let mut req = app.client.get(app.url(&path));
        if let Some(r) = referer {
            req = req
                .header("referer", r)
                .header("sec-fetch-site", "cross-site")
                .header("sec-fetch-dest", "iframe");
        }
        req.send()
    };
    let r = get(format!("/widget/frame?key={key}"), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors https://site.example http://localhost:3000 'self'"
    );
    assert!(r.headers().get("x-frame-options").is_none());
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    // Asset URLs the page names are versioned; they are served for a year.
    for asset in ["frame.js", "frame.css"] {
        let at = format!("/widget/assets/{asset}");
        if let Some(i) = html.find(&format!("{at}?v=")) {
            let url: String = html[i..].chars().take_while(|c| *c != '"').collect();
            let r = app.client.get(app.url(&url)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(
                r.headers()["cache-control"],
                "public, max-age=31536000, immutable"
            );
        }
    }
    let r = get(
        format!("/widget/frame?key={key}"),
        Some("https://site.example/pricing"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A page elsewhere gets an error page nobody may frame, and the owner sees why.
    let r = get(
        format!("/widget/frame?key={key}"),
        Some("https://evil.example/x"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .ends_with("frame-ancestors 'none'")
    );
    let (_, refusals) = app
        .get(&format!("/api/v1/bots/{bot}/widget-refusals"))
        .await;
    assert_eq!(refusals["data"][0]["origin"], "https://evil.example");
    // Unknown and revoked keys: the same.
    let (st, _) = app
        .delete(&format!("/api/v1/bots/{bot}/widget-keys/{kid}"))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for path in [
        format!("/widget/frame?key={key}"),
        "/widget/frame?key=dwk_x".into(),
    ] {
        let r = get(path, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .ends_with("frame-ancestors 'none'")
        );
    }
    // The preview frame: docent only.
    let r = get("/widget/frame?preview=1".into(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .ends_with("frame-ancestors 'self'")
    );

    // The loader may be embedded by any site.
    let r = get("/widget.js".into(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    assert_eq!(r.headers()["cross-origin-resource-policy"], "cross-origin");
    let r = get("/widget/assets/widget.js".into(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The console and the API still refuse every frame.
    for path in [
        "/",
        "/api/v1/bots",
        "/console/js/app.js",
        "/widget/v1/session",
    ] {
        let r = get(path.into(), None).await.unwrap();
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    app.stop().await;
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
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn widget_credentials_open_no_other_route() {
    let app = spawn_app_with(|c| {
        builtin_auth(c);
        roomy(c);
    })
    .await;
    let (s, b) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": "owner@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let owner = b["access_token"].as_str().unwrap().to_owned();
    let (_, coll) = call(
        &app,
        Method::POST,
        "/api/v1/collections",
        &owner,
        Some(json!({ "name": "c" })),
    )
    .await;
    let (_, bot) = call(
        &app,
        Method::POST,
        "/api/v1/bots",
        &owner,
        Some(json!({ "name": "b", "collection_ids": [coll["id"]], "allowed_origins": [SITE] })),
    )
    .await;
    let bot = bot["id"].as_str().unwrap();
    let (s, k) = call(
        &app,
        Method::POST,
        &format!("/api/v1/bots/{bot}/widget-keys"),
        &owner,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let key = k["key"].as_str().unwrap();
    let sess = session_ok(&app, key, None).await;
    let widget_token = token(&sess);

    for cred in [key, widget_token] {
        for (method, path) in [
            (Method::GET, "/api/v1/bots".to_owned()),
            (Method::GET, format!("/api/v1/bots/{bot}")),
            (Method::GET, format!("/api/v1/bots/{bot}/conversations")),
            (Method::GET, format!("/api/v1/bots/{bot}/widget-keys")),
            (Method::POST, format!("/api/v1/bots/{bot}/widget-keys")),
            (Method::POST, format!("/api/v1/bots/{bot}/chat")),
            (Method::GET, "/api/v1/collections".to_owned()),
            (Method::GET, "/v1/models".to_owned()),
        ] {
            let (s, b) = call(
                &app,
                method.clone(),
                &path,
                cred,
                Some(json!({ "message": "x" })),
            )
            .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {b}");
        }
    }
    // And a user's token is no widget session.
    let c = chat(&app, &owner, "hello", None).await;
    assert_error(c.status, &c.error, 401, "widget_session_invalid");
    // The owner previews the widget: a session bound to docent's own origin and no key.
    let (s, p) = call(
        &app,
        Method::POST,
        &format!("/api/v1/bots/{bot}/widget-preview"),
        &owner,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let c = chat(&app, p["token"].as_str().unwrap(), "hello", None).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.error);
    let (_, convs) = call(
        &app,
        Method::GET,
        &format!("/api/v1/bots/{bot}/conversations"),
        &owner,
        None,
    )
    .await;
    let item = &convs["items"][0];
    assert_eq!(item["source"], "widget", "{convs}");
    assert!(item["widget_key_id"].is_null(), "a preview uses no key");
    app.stop().await;
}
