// The cases of `bots.rs`, included once per backend module; `Store`, `fixture()` and the
// raw-SQL helpers come from that module (see `common/mod.rs`).

use std::fmt::Debug;

use docent_domain::ports::{BotStore, MetadataStore};
use docent_domain::*;



async fn tenant(s: &Store) -> TenantId {
    let id = TenantId::new();
    s.ensure_tenant(id, "test tenant")
        .await
        .expect("ensure_tenant");
    id
}

async fn collection(s: &Store, tenant: TenantId, name: &str) -> Collection {
    s.create_collection(
        tenant,
        NewCollection {
            name: name.into(),
            ..Default::default()
        },
    )
    .await
    .expect("create_collection")
}

async fn document(s: &Store, tenant: TenantId, collection: CollectionId) -> Document {
    let id = DocumentId::new();
    s.insert_document(
        tenant,
        NewDocument {
            id,
            collection_id: collection,
            filename: "a.txt".into(),
            declared_mime: "text/plain".into(),
            size_bytes: 1,
            sha256: id.to_string(),
            blob_key: format!("originals/{id}"),
            metadata: Metadata::new(),
        },
    )
    .await
    .expect("insert_document")
    .0
}

fn draft(name: &str, collections: Vec<CollectionId>) -> BotDraft {
    BotDraft {
        name: name.into(),
        system_prompt: "Answer from the documents.".into(),
        collections,
        ..Default::default()
    }
}

async fn bot(s: &Store, tenant: TenantId, name: &str, collections: Vec<CollectionId>) -> Bot {
    s.create_bot(tenant, draft(name, collections))
        .await
        .expect("create_bot")
}

#[track_caller]
fn assert_code<T: Debug>(res: Result<T>, code: Code, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.code, code, "{what}: wrong error code ({e:?})"),
    }
}

fn citation(document: DocumentId, marker: u32) -> Citation {
    Citation {
        marker,
        document_id: document,
        chunk_id: ChunkId {
            document,
            ordinal: marker,
        },
        page: Some(marker + 1),
        char_start: 10,
        char_end: 20,
    }
}

#[tokio::test]
async fn bot_create_get_update_delete() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let (c1, c2) = (collection(s, t, "one").await, collection(s, t, "two").await);

    let created = s
        .create_bot(
            t,
            BotDraft {
                name: "Helper".into(),
                description: Some("answers".into()),
                system_prompt: "Be brief.".into(),
                model: Some("gpt-4o-mini".into()),
                temperature: 0.7,
                max_tokens: Some(512),
                // Duplicates are dropped; order is kept.
                collections: vec![c2.id, c1.id, c2.id],
                retrieval: BotRetrieval {
                    top_k: 5,
                    mode: RetrievalMode::Keyword,
                    min_score: Some(0.25),
                },
                welcome_message: Some("Hi!".into()),
                allowed_origins: vec!["https://example.com".into()],
                widget: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.tenant_id, t);
    assert_eq!(created.name, "Helper");
    assert_eq!(created.description.as_deref(), Some("answers"));
    assert_eq!(created.model.as_deref(), Some("gpt-4o-mini"));
    assert!((created.temperature - 0.7).abs() < 1e-6);
    assert_eq!(created.max_tokens, Some(512));
    assert_eq!(created.collections, vec![c2.id, c1.id]);
    assert_eq!(created.retrieval.top_k, 5);
    assert_eq!(created.retrieval.mode, RetrievalMode::Keyword);
    assert_eq!(created.retrieval.min_score, Some(0.25));
    assert_eq!(created.welcome_message.as_deref(), Some("Hi!"));
    assert_eq!(created.allowed_origins, vec!["https://example.com"]);
    assert_eq!(s.get_bot(t, created.id).await.unwrap(), created);

    // A patch changes what it names and leaves the rest.
    let updated = s
        .update_bot(
            t,
            created.id,
            BotPatch {
                name: Some("Renamed".into()),
                model: Some(None),
                max_tokens: Some(None),
                collections: Some(vec![c1.id]),
                retrieval: Some(BotRetrieval::default()),
                allowed_origins: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.model, None);
    assert_eq!(updated.max_tokens, None);
    assert_eq!(updated.collections, vec![c1.id]);
    assert_eq!(updated.retrieval, BotRetrieval::default());
    assert!(updated.allowed_origins.is_empty());
    assert_eq!(updated.system_prompt, "Be brief.");
    assert_eq!(updated.description.as_deref(), Some("answers"));
    assert_eq!(updated.welcome_message.as_deref(), Some("Hi!"));
    assert!(updated.updated_at >= created.updated_at);

    // An empty patch is fine (touches updated_at only).
    s.update_bot(t, created.id, BotPatch::default())
        .await
        .unwrap();

    s.delete_bot(t, created.id).await.unwrap();
    assert_code(s.get_bot(t, created.id).await, BOT_NOT_FOUND, "get deleted");
    assert_code(
        s.delete_bot(t, created.id).await,
        BOT_NOT_FOUND,
        "delete twice",
    );
    assert_code(
        s.update_bot(t, created.id, BotPatch::default()).await,
        BOT_NOT_FOUND,
        "update deleted",
    );
}

#[tokio::test]
async fn bot_collections_must_be_the_tenants() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (a, b) = (tenant(s).await, tenant(s).await);
    let own = collection(s, a, "own").await;
    let foreign = collection(s, b, "foreign").await;

    let err = s
        .create_bot(a, draft("x", vec![own.id, foreign.id]))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::CollectionNotFound);
    assert!(err.message.contains("collections[1]"), "{}", err.message);
    assert_code(
        s.create_bot(a, draft("x", vec![CollectionId::new()])).await,
        Code::CollectionNotFound,
        "unknown collection",
    );
    assert!(
        s.list_bots(a, BotFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a refused bot is not half-created"
    );

    let ok = bot(s, a, "ok", vec![own.id]).await;
    assert_code(
        s.update_bot(
            a,
            ok.id,
            BotPatch {
                name: Some("changed".into()),
                collections: Some(vec![foreign.id]),
                ..Default::default()
            },
        )
        .await,
        Code::CollectionNotFound,
        "update to a foreign collection",
    );
    let still = s.get_bot(a, ok.id).await.unwrap();
    assert_eq!(still.name, "ok", "a refused update changes nothing");
    assert_eq!(still.collections, vec![own.id]);

    // A deleted collection leaves the bots that named it.
    s.delete_collection(a, own.id).await.unwrap();
    assert!(s.get_bot(a, ok.id).await.unwrap().collections.is_empty());
}

#[tokio::test]
async fn list_bots_paginates_and_filters() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let (c1, c2) = (collection(s, t, "one").await, collection(s, t, "two").await);
    let b_none = bot(s, t, "none", vec![]).await;
    let b_one = bot(s, t, "one", vec![c1.id]).await;
    let b_two = bot(s, t, "two", vec![c2.id]).await;
    let b_both = bot(s, t, "both", vec![c1.id, c2.id]).await;

    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 3,
        cursor: None,
    };
    loop {
        let p = s
            .list_bots(t, BotFilter::default(), page.clone())
            .await
            .unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items.iter().map(|b| b.id));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec![b_both.id, b_two.id, b_one.id, b_none.id]);
    let listed = s
        .list_bots(t, BotFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items[0].collections, vec![c1.id, c2.id]);

    let ids = |filter: BotFilter| async move {
        s.list_bots(t, filter, PageRequest::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|b| b.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(BotFilter {
            ids: Some(vec![b_one.id, b_both.id]),
            ..Default::default()
        })
        .await,
        vec![b_both.id, b_one.id]
    );
    assert!(
        ids(BotFilter {
            ids: Some(vec![]),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids(BotFilter {
            within_collections: Some(vec![c1.id]),
            ..Default::default()
        })
        .await,
        vec![b_one.id, b_none.id],
        "only bots all of whose collections are allowed"
    );
    assert_eq!(
        ids(BotFilter {
            within_collections: Some(vec![]),
            ..Default::default()
        })
        .await,
        vec![b_none.id]
    );
    assert_eq!(
        ids(BotFilter {
            ids: Some(vec![b_one.id, b_two.id]),
            within_collections: Some(vec![c2.id]),
        })
        .await,
        vec![b_two.id]
    );
    assert_code(
        s.list_bots(
            t,
            BotFilter::default(),
            PageRequest {
                limit: 1,
                cursor: Some("garbage".into()),
            },
        )
        .await,
        Code::InvalidQuery,
        "bad cursor",
    );
}

#[tokio::test]
async fn bot_documents_are_those_of_its_collections() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let (c1, c2, c3) = (
        collection(s, t, "one").await,
        collection(s, t, "two").await,
        collection(s, t, "three").await,
    );
    let d1 = document(s, t, c1.id).await;
    let d2 = document(s, t, c2.id).await;
    let d3 = document(s, t, c1.id).await;
    document(s, t, c3.id).await;
    let b = bot(s, t, "b", vec![c1.id, c2.id]).await;

    let first = s
        .list_bot_documents(
            t,
            b.id,
            PageRequest {
                limit: 2,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![d3.id, d2.id]
    );
    let rest = s
        .list_bot_documents(
            t,
            b.id,
            PageRequest {
                limit: 2,
                cursor: first.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![d1.id]
    );
    assert_eq!(rest.next_cursor, None);

    let empty = bot(s, t, "empty", vec![]).await;
    assert!(
        s.list_bot_documents(t, empty.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_code(
        s.list_bot_documents(t, BotId::new(), PageRequest::default())
            .await,
        BOT_NOT_FOUND,
        "unknown bot",
    );
}

#[tokio::test]
async fn conversations_and_messages() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let c = collection(s, t, "docs").await;
    let d = document(s, t, c.id).await;
    let b = bot(s, t, "b", vec![c.id]).await;
    let other = bot(s, t, "other", vec![]).await;

    let conv = s
        .create_conversation(
            t,
            b.id,
            NewConversation {
                title: Some("First".into()),
                owner: Some(ConversationOwner::User(UserId::new())),
            },
        )
        .await
        .unwrap();
    assert_eq!(conv.bot_id, b.id);
    assert_eq!(conv.tenant_id, t);
    assert_eq!(s.get_conversation(t, conv.id).await.unwrap(), conv);
    let second = s
        .create_conversation(
            t,
            b.id,
            NewConversation {
                title: None,
                owner: Some(ConversationOwner::ApiKey(ApiKeyId::new())),
            },
        )
        .await
        .unwrap();
    // Owners (a user, a key, none) come back as stored.
    assert_eq!(s.get_conversation(t, second.id).await.unwrap(), second);
    assert!(matches!(second.owner, Some(ConversationOwner::ApiKey(_))));
    s.create_conversation(t, other.id, NewConversation::default())
        .await
        .unwrap();
    assert_code(
        s.create_conversation(t, BotId::new(), NewConversation::default())
            .await,
        BOT_NOT_FOUND,
        "conversation of an unknown bot",
    );

    let convs = s
        .list_conversations(t, b.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        convs.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![second.id, conv.id],
        "a bot's conversations, newest first"
    );
    assert_eq!(
        convs.items.iter().map(|c| c.owner).collect::<Vec<_>>(),
        vec![second.owner, conv.owner],
        "listed with their owners"
    );

    let question = s
        .append_message(t, conv.id, NewMessage::user("What is it?"))
        .await
        .unwrap();
    let answer = s
        .append_message(
            t,
            conv.id,
            NewMessage {
                usage: Some(MessageUsage {
                    prompt_tokens: 100,
                    completion_tokens: 20,
                }),
                ..NewMessage::assistant(
                    "It is this [1] and that [2].",
                    vec![citation(d.id, 1), citation(d.id, 2)],
                )
            },
        )
        .await
        .unwrap();
    let notice = s
        .append_message(
            t,
            conv.id,
            NewMessage {
                role: MessageRole::System,
                content: "The bot's settings changed.".into(),
                citations: vec![],
                usage: None,
            },
        )
        .await
        .unwrap();

    let all = s
        .list_messages(t, conv.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        all.items,
        vec![question.clone(), answer.clone(), notice.clone()]
    );
    assert_eq!(all.items[1].citations.len(), 2);
    assert_eq!(all.items[1].usage.unwrap().completion_tokens, 20);

    // Oldest first, page by page.
    let p1 = s
        .list_messages(
            t,
            conv.id,
            PageRequest {
                limit: 2,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.items, vec![question, answer]);
    let p2 = s
        .list_messages(
            t,
            conv.id,
            PageRequest {
                limit: 2,
                cursor: p1.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.items, vec![notice.clone()]);
    assert_eq!(p2.next_cursor, None);

    // Appending moves the conversation's updated_at.
    let touched = s.get_conversation(t, conv.id).await.unwrap();
    assert_eq!(touched.updated_at, notice.created_at);

    assert!(
        s.list_messages(t, second.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let ghost = ConversationId::new();
    assert_code(
        s.append_message(t, ghost, NewMessage::user("hello?")).await,
        CONVERSATION_NOT_FOUND,
        "append to an unknown conversation",
    );
    assert_code(
        s.list_messages(t, ghost, PageRequest::default()).await,
        CONVERSATION_NOT_FOUND,
        "messages of an unknown conversation",
    );
}

#[tokio::test]
async fn deleting_a_bot_deletes_its_conversations_and_messages() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let doomed = bot(s, t, "doomed", vec![]).await;
    let kept = bot(s, t, "kept", vec![]).await;
    let conv = s
        .create_conversation(t, doomed.id, NewConversation::default())
        .await
        .unwrap();
    s.append_message(t, conv.id, NewMessage::user("hi"))
        .await
        .unwrap();
    let kept_conv = s
        .create_conversation(t, kept.id, NewConversation::default())
        .await
        .unwrap();
    s.append_message(t, kept_conv.id, NewMessage::user("hi"))
        .await
        .unwrap();

    s.delete_bot(t, doomed.id).await.unwrap();
    assert_code(
        s.get_conversation(t, conv.id).await,
        CONVERSATION_NOT_FOUND,
        "conversation of a deleted bot",
    );
    let orphans = count_messages(s, conv.id).await;
    assert_eq!(orphans, 0, "messages go with their conversation");
    assert_eq!(
        s.list_messages(t, kept_conv.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "other bots keep theirs"
    );
}

#[tokio::test]
async fn deleting_a_conversation_deletes_its_messages_only() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let b = bot(s, t, "talker", vec![]).await;
    let doomed = s
        .create_conversation(t, b.id, NewConversation::default())
        .await
        .unwrap();
    let kept = s
        .create_conversation(t, b.id, NewConversation::default())
        .await
        .unwrap();
    for c in [doomed.id, kept.id] {
        s.append_message(t, c, NewMessage::user("hi")).await.unwrap();
    }

    s.delete_conversation(t, doomed.id).await.unwrap();
    assert_code(
        s.get_conversation(t, doomed.id).await,
        CONVERSATION_NOT_FOUND,
        "a deleted conversation",
    );
    assert_eq!(count_messages(s, doomed.id).await, 0, "its messages go");
    assert_code(
        s.delete_conversation(t, doomed.id).await,
        CONVERSATION_NOT_FOUND,
        "deleting twice",
    );
    let left = s
        .list_conversations(t, b.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        left.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![kept.id]
    );
    assert_eq!(count_messages(s, kept.id).await, 1, "the other keeps its own");
}

#[tokio::test]
async fn bots_conversations_and_messages_are_tenant_isolated() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (a, b) = (tenant(s).await, tenant(s).await);
    let c = collection(s, a, "private").await;
    document(s, a, c.id).await;
    let bot_a = bot(s, a, "private bot", vec![c.id]).await;
    let conv = s
        .create_conversation(a, bot_a.id, NewConversation::default())
        .await
        .unwrap();
    s.append_message(a, conv.id, NewMessage::user("secret"))
        .await
        .unwrap();

    // Tenant B sees none of it: every id of A's is "not found", lists are empty.
    assert_code(s.get_bot(b, bot_a.id).await, BOT_NOT_FOUND, "get bot");
    assert!(
        s.list_bots(b, BotFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_code(
        s.update_bot(
            b,
            bot_a.id,
            BotPatch {
                name: Some("stolen".into()),
                ..Default::default()
            },
        )
        .await,
        BOT_NOT_FOUND,
        "update bot",
    );
    assert_code(s.delete_bot(b, bot_a.id).await, BOT_NOT_FOUND, "delete bot");
    assert_code(
        s.list_bot_documents(b, bot_a.id, PageRequest::default())
            .await,
        BOT_NOT_FOUND,
        "bot documents",
    );
    assert_code(
        s.create_conversation(b, bot_a.id, NewConversation::default())
            .await,
        BOT_NOT_FOUND,
        "start a conversation",
    );
    assert_code(
        s.list_conversations(b, bot_a.id, PageRequest::default())
            .await,
        BOT_NOT_FOUND,
        "list conversations",
    );
    assert_code(
        s.get_conversation(b, conv.id).await,
        CONVERSATION_NOT_FOUND,
        "get conversation",
    );
    assert_code(
        s.append_message(b, conv.id, NewMessage::user("injected"))
            .await,
        CONVERSATION_NOT_FOUND,
        "append message",
    );
    assert_code(
        s.list_messages(b, conv.id, PageRequest::default()).await,
        CONVERSATION_NOT_FOUND,
        "list messages",
    );
    assert_code(
        s.delete_conversation(b, conv.id).await,
        CONVERSATION_NOT_FOUND,
        "delete conversation",
    );
    // B's own bot cannot name A's collection either.
    assert_code(
        s.create_bot(b, draft("thief", vec![c.id])).await,
        Code::CollectionNotFound,
        "a bot over another tenant's collection",
    );

    // A's data is intact.
    let intact = s.get_bot(a, bot_a.id).await.unwrap();
    assert_eq!(intact.name, "private bot");
    let messages = s
        .list_messages(a, conv.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(messages.items.len(), 1);
    assert_eq!(messages.items[0].content, "secret");
}
