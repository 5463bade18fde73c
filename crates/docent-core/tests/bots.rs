//! The bot services over a real SQLite store: field rules, collections of the caller's tenant
//! only, API-key scopes (bots and collections), conversations and messages, cascading deletes
//! and tenant isolation.

use docent_config::Config;
use docent_core::Services;
use docent_core::bots::BotScope;
use docent_domain::auth::{KeyAccess, KeyScope};
use docent_domain::*;
use tempfile::TempDir;

mod common;

struct App {
    svc: Services,
    _dir: TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let svc = common::services(config, None).await;
    App { svc, _dir: dir }
}

async fn tenant(svc: &Services) -> TenantId {
    let t = TenantId::new();
    svc.store.ensure_tenant(t, "t").await.expect("tenant");
    t
}

async fn collection(svc: &Services, t: TenantId, name: &str) -> CollectionId {
    svc.create_collection(
        t,
        NewCollection {
            name: name.into(),
            ..Default::default()
        },
    )
    .await
    .expect("collection")
    .id
}

async fn document(svc: &Services, t: TenantId, c: CollectionId) -> DocumentId {
    let id = DocumentId::new();
    svc.store
        .insert_document(
            t,
            NewDocument {
                id,
                collection_id: c,
                filename: "a.txt".into(),
                declared_mime: "text/plain".into(),
                size_bytes: 1,
                sha256: id.to_string(),
                blob_key: format!("k/{id}"),
                metadata: Metadata::new(),
            },
        )
        .await
        .expect("document");
    id
}

fn draft(name: &str, collections: Vec<CollectionId>) -> BotDraft {
    BotDraft {
        name: name.into(),
        collections,
        ..Default::default()
    }
}

fn key(collections: Option<Vec<CollectionId>>, bots: Option<Vec<BotId>>) -> Principal {
    Principal {
        tenant_id: TenantId::DEFAULT,
        actor: Actor::ApiKey {
            id: ApiKeyId::new(),
        },
        role: Role::Member,
        key_scope: Some(KeyScope {
            access: KeyAccess::ReadWrite,
            collections,
            bots,
        }),
    }
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(r: Result<T>, code: Code, what: &str) -> Error {
    let e = r.expect_err(what);
    assert_eq!(e.code, code, "{what}: {e:?}");
    e
}

#[tokio::test]
async fn bot_lifecycle_with_rules() {
    let a = app().await;
    let svc = &a.svc;
    let t = tenant(svc).await;
    let (c1, c2) = (
        collection(svc, t, "one").await,
        collection(svc, t, "two").await,
    );
    let d1 = document(svc, t, c1).await;

    // Field rules, each naming its field.
    for (bad, field) in [
        (draft("", vec![]), "name"),
        (draft(&"x".repeat(201), vec![]), "name"),
        (
            BotDraft {
                temperature: 2.5,
                ..draft("b", vec![])
            },
            "temperature",
        ),
        (
            BotDraft {
                retrieval: BotRetrieval {
                    top_k: 0,
                    ..Default::default()
                },
                ..draft("b", vec![])
            },
            "retrieval.top_k",
        ),
        (
            BotDraft {
                allowed_origins: vec!["https://ok.example".into(), "*".into()],
                ..draft("b", vec![])
            },
            "allowed_origins[1]",
        ),
        (
            BotDraft {
                allowed_origins: vec!["https://example.com/widget".into()],
                ..draft("b", vec![])
            },
            "allowed_origins[0]",
        ),
    ] {
        let e = assert_code(svc.create_bot(t, bad).await, Code::InvalidField, field);
        assert!(e.message.contains(&format!("`{field}`")), "{}", e.message);
    }
    let e = assert_code(
        svc.create_bot(t, draft("b", vec![c1, CollectionId::new()]))
            .await,
        Code::CollectionNotFound,
        "unknown collection",
    );
    assert!(e.message.contains("`collections[1]`"), "{}", e.message);

    let bot = svc
        .create_bot(
            t,
            BotDraft {
                allowed_origins: vec!["HTTPS://Docs.Example.com:443/".into()],
                ..draft("  Support  ", vec![c1, c2])
            },
        )
        .await
        .unwrap();
    assert_eq!(bot.name, "Support");
    assert_eq!(bot.allowed_origins, vec!["https://docs.example.com"]);
    assert_eq!(svc.get_bot(t, bot.id).await.unwrap(), bot);
    assert_eq!(
        svc.list_bots(t, PageRequest::default())
            .await
            .unwrap()
            .items,
        vec![bot.clone()]
    );
    assert_eq!(
        svc.bot_documents(t, bot.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![d1]
    );

    assert_code(
        svc.update_bot(
            t,
            bot.id,
            BotPatch {
                temperature: Some(-1.0),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidField,
        "bad patch",
    );
    let updated = svc
        .update_bot(
            t,
            bot.id,
            BotPatch {
                collections: Some(vec![c2]),
                system_prompt: Some("Cite sources.".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.collections, vec![c2]);
    assert_eq!(updated.system_prompt, "Cite sources.");
    assert!(
        svc.bot_documents(t, bot.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Conversations and messages.
    let conv = svc
        .start_conversation(
            t,
            bot.id,
            NewConversation {
                title: Some(" Billing ".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(conv.title.as_deref(), Some("Billing"));
    assert_code(
        svc.append_message(t, conv.id, NewMessage::user("   "))
            .await,
        Code::InvalidField,
        "blank message",
    );
    let q = svc
        .append_message(t, conv.id, NewMessage::user("How do I pay?"))
        .await
        .unwrap();
    let answer = svc
        .append_message(
            t,
            conv.id,
            NewMessage::assistant(
                "By card [1].",
                vec![Citation {
                    marker: 1,
                    document_id: d1,
                    chunk_id: ChunkId {
                        document: d1,
                        ordinal: 0,
                    },
                    page: Some(1),
                    char_start: 0,
                    char_end: 12,
                }],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        svc.conversation_messages(t, conv.id, PageRequest::default())
            .await
            .unwrap()
            .items,
        vec![q, answer]
    );
    assert_eq!(
        svc.list_conversations(t, bot.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    svc.delete_bot(t, bot.id).await.unwrap();
    assert_code(svc.get_bot(t, bot.id).await, BOT_NOT_FOUND, "deleted bot");
    assert_code(
        svc.get_conversation(t, conv.id).await,
        CONVERSATION_NOT_FOUND,
        "conversation of a deleted bot",
    );
    assert_code(
        svc.conversation_messages(t, conv.id, PageRequest::default())
            .await,
        CONVERSATION_NOT_FOUND,
        "messages of a deleted bot",
    );
}

#[tokio::test]
async fn other_tenants_see_nothing() {
    let a = app().await;
    let svc = &a.svc;
    let (ta, tb) = (tenant(svc).await, tenant(svc).await);
    let ca = collection(svc, ta, "a").await;
    let bot = svc.create_bot(ta, draft("a", vec![ca])).await.unwrap();
    let conv = svc
        .start_conversation(ta, bot.id, NewConversation::default())
        .await
        .unwrap();

    assert_code(svc.get_bot(tb, bot.id).await, BOT_NOT_FOUND, "get");
    assert_code(
        svc.update_bot(tb, bot.id, BotPatch::default()).await,
        BOT_NOT_FOUND,
        "update",
    );
    assert_code(svc.delete_bot(tb, bot.id).await, BOT_NOT_FOUND, "delete");
    assert_code(
        svc.bot_documents(tb, bot.id, PageRequest::default()).await,
        BOT_NOT_FOUND,
        "documents",
    );
    assert_code(
        svc.start_conversation(tb, bot.id, NewConversation::default())
            .await,
        BOT_NOT_FOUND,
        "start conversation",
    );
    assert_code(
        svc.list_conversations(tb, bot.id, PageRequest::default())
            .await,
        BOT_NOT_FOUND,
        "list conversations",
    );
    assert_code(
        svc.append_message(tb, conv.id, NewMessage::user("hi"))
            .await,
        CONVERSATION_NOT_FOUND,
        "append",
    );
    assert_code(
        svc.conversation_messages(tb, conv.id, PageRequest::default())
            .await,
        CONVERSATION_NOT_FOUND,
        "messages",
    );
    assert!(
        svc.list_bots(tb, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let e = assert_code(
        svc.create_bot(tb, draft("thief", vec![ca])).await,
        Code::CollectionNotFound,
        "another tenant's collection",
    );
    assert!(e.message.contains("`collections[0]`"), "{}", e.message);
    assert_eq!(svc.get_bot(ta, bot.id).await.unwrap(), bot);
}

#[tokio::test]
async fn api_key_scopes_limit_bots() {
    let a = app().await;
    let svc = &a.svc;
    let t = TenantId::DEFAULT;
    svc.store.ensure_tenant(t, "default").await.unwrap();
    let (c1, c2) = (
        collection(svc, t, "one").await,
        collection(svc, t, "two").await,
    );
    let b1 = svc.create_bot(t, draft("b1", vec![c1])).await.unwrap();
    let b12 = svc.create_bot(t, draft("b12", vec![c1, c2])).await.unwrap();
    let b_none = svc.create_bot(t, draft("none", vec![])).await.unwrap();
    let conv12 = svc
        .start_conversation(t, b12.id, NewConversation::default())
        .await
        .unwrap();
    let ids = |p: Page<Bot>| p.items.into_iter().map(|b| b.id).collect::<Vec<_>>();

    // A key limited to some bots sees only those, and creates none.
    let by_bot = key(None, Some(vec![b1.id]));
    assert_eq!(
        ids(svc
            .list_bots(&by_bot, PageRequest::default())
            .await
            .unwrap()),
        vec![b1.id]
    );
    svc.get_bot(&by_bot, b1.id).await.unwrap();
    assert_code(
        svc.get_bot(&by_bot, b12.id).await,
        BOT_NOT_FOUND,
        "other bot",
    );
    assert_code(
        svc.delete_bot(&by_bot, b12.id).await,
        BOT_NOT_FOUND,
        "delete other bot",
    );
    assert_code(
        svc.get_conversation(&by_bot, conv12.id).await,
        CONVERSATION_NOT_FOUND,
        "other bot's conversation",
    );
    assert_code(
        svc.append_message(&by_bot, conv12.id, NewMessage::user("hi"))
            .await,
        CONVERSATION_NOT_FOUND,
        "append to other bot's conversation",
    );
    assert_code(
        svc.create_bot(&by_bot, draft("new", vec![])).await,
        Code::InsufficientScope,
        "create with a bot-limited key",
    );
    svc.start_conversation(&by_bot, b1.id, NewConversation::default())
        .await
        .unwrap();

    // A key limited to some collections sees the bots that stay inside them, and cannot give a
    // bot another collection.
    let by_collection = key(Some(vec![c1]), None);
    assert_eq!(
        ids(svc
            .list_bots(&by_collection, PageRequest::default())
            .await
            .unwrap()),
        vec![b_none.id, b1.id]
    );
    assert_code(
        svc.get_bot(&by_collection, b12.id).await,
        BOT_NOT_FOUND,
        "bot over an outside collection",
    );
    assert_code(
        svc.bot_documents(&by_collection, b12.id, PageRequest::default())
            .await,
        BOT_NOT_FOUND,
        "its documents",
    );
    let e = assert_code(
        svc.update_bot(
            &by_collection,
            b1.id,
            BotPatch {
                collections: Some(vec![c1, c2]),
                ..Default::default()
            },
        )
        .await,
        Code::CollectionNotFound,
        "widen a bot beyond the key",
    );
    assert!(e.message.contains("`collections[1]`"), "{}", e.message);
    let own = svc
        .create_bot(&by_collection, draft("own", vec![c1]))
        .await
        .unwrap();
    assert_code(
        svc.create_bot(&by_collection, draft("wide", vec![c2]))
            .await,
        Code::CollectionNotFound,
        "create over an outside collection",
    );

    // The whole tenant sees everything.
    assert_eq!(
        ids(svc
            .list_bots(BotScope::from(t), PageRequest::default())
            .await
            .unwrap()),
        vec![own.id, b_none.id, b12.id, b1.id]
    );
}
