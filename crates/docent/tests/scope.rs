//! API-key collection scopes enforced by the services (`docent-core`) themselves, not only by
//! the HTTP handlers: every `Services` call that takes a collection or a document is given the
//! caller's principal (its `Scope`), and a key limited to some collections can neither read nor
//! change anything of another collection through them — search, ask, get, list, chunks,
//! download, summary, delete, reprocess, upload, tasks. Anything outside is "not found".

mod common;

use std::collections::HashSet;

use common::*;
use docent_core::documents::Upload;
use docent_core::search::{Hit, SearchParams};
use docent_domain::auth::Scope;
use docent_domain::{
    Actor, ApiKeyId, Code, CollectionId, CollectionPatch, DocumentFilter, DocumentId, KeyAccess,
    KeyScope, NewCollection, PageRequest, Principal, Role, TenantId,
};
use reqwest::StatusCode;
use serde_json::json;

/// A read-write API key of the default tenant limited to `collections`.
fn key_limited_to(collections: Vec<CollectionId>) -> Principal {
    Principal {
        tenant_id: TenantId::DEFAULT,
        actor: Actor::ApiKey {
            id: ApiKeyId::new(),
        },
        role: Role::Member,
        key_scope: Some(KeyScope {
            access: KeyAccess::ReadWrite,
            collections: Some(collections),
            bots: None,
        }),
    }
}

#[track_caller]
fn code<T>(r: docent_domain::Result<T>) -> Code {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code,
    }
}

fn page() -> PageRequest {
    PageRequest {
        limit: 100,
        cursor: None,
    }
}

fn collections_of(hits: &[Hit]) -> HashSet<CollectionId> {
    hits.iter().map(|h| h.chunk.collection_id).collect()
}

fn zebras(c: &str) -> Vec<u8> {
    format!("# Zebras of {c}\n\nZebras graze on the grass of savanna {c}. Zebras have stripes.\n")
        .into_bytes()
}

fn one_upload(text: &[u8]) -> Upload<'static, std::io::Error> {
    let body = futures::stream::iter([Ok(bytes::Bytes::from(text.to_vec()))]);
    Upload {
        filename: "u.md".into(),
        declared_mime: "text/markdown".into(),
        metadata: Default::default(),
        body: Box::pin(body),
    }
}

#[tokio::test]
async fn a_collection_scoped_key_reads_only_its_collections_through_the_services() {
    let app = spawn_app().await;
    let a: CollectionId = app.create_collection("a").await.parse().unwrap();
    let b: CollectionId = app.create_collection("b").await.parse().unwrap();
    let doc_a: DocumentId = app
        .upload_ok(&a.to_string(), "a.md", &zebras("a"))
        .await
        .parse()
        .unwrap();
    let doc_b: DocumentId = app
        .upload_ok(&b.to_string(), "b.md", &zebras("b"))
        .await
        .parse()
        .unwrap();
    app.drain().await;
    let svc = &app.services;
    let tenant = TenantId::DEFAULT;
    let key = key_limited_to(vec![a]);
    let query = SearchParams::new("zebras graze");

    // The whole tenant (the operator's CLI) sees both collections: the data is there.
    let all = svc.search(tenant, &query).await.unwrap();
    assert_eq!(collections_of(&all.hits), HashSet::from([a, b]));

    // Search without a collection filter: only the key's collections.
    let res = svc.search(&key, &query).await.unwrap();
    assert!(!res.hits.is_empty());
    assert_eq!(collections_of(&res.hits), HashSet::from([a]));
    // Naming another collection, alone or with an allowed one, is not found.
    for named in [vec![b], vec![a, b]] {
        let mut p = query.clone();
        p.collections = named;
        assert_eq!(code(svc.search(&key, &p).await), Code::CollectionNotFound);
    }
    let mut p = query.clone();
    p.collections = vec![a];
    let res = svc.search(&key, &p).await.unwrap();
    assert_eq!(collections_of(&res.hits), HashSet::from([a]));
    // A document filter cannot reach across: another collection's document has no hits.
    let mut p = query.clone();
    p.documents = vec![doc_b];
    assert!(svc.search(&key, &p).await.unwrap().hits.is_empty());

    // Ask is built on the same search.
    let answer = svc
        .ask(&key, SearchParams::new("what do zebras graze on?"))
        .await
        .unwrap();
    assert!(answer.answer.is_some(), "{answer:?}");
    assert!(
        answer
            .citations
            .iter()
            .all(|c| c.document_id == doc_a.to_string()),
        "{answer:?}"
    );
    let tenant_answer = svc
        .ask(tenant, SearchParams::new("what do zebras graze on?"))
        .await
        .unwrap();
    assert!(
        tenant_answer
            .citations
            .iter()
            .any(|c| c.document_id == doc_b.to_string()),
        "the tenant-wide answer cites b: {tenant_answer:?}"
    );
    let mut p = SearchParams::new("what do zebras graze on?");
    p.documents = vec![doc_b];
    let answer = svc.ask(&key, p).await.unwrap();
    assert!(
        answer.answer.is_none() && answer.citations.is_empty(),
        "{answer:?}"
    );
    let mut p = SearchParams::new("what do zebras graze on?");
    p.collections = vec![b];
    assert_eq!(code(svc.ask(&key, p).await), Code::CollectionNotFound);

    // Documents of another collection do not exist for the key.
    svc.get_document(&key, doc_a).await.unwrap();
    assert_eq!(
        code(svc.get_document(&key, doc_b).await),
        Code::DocumentNotFound
    );
    assert_eq!(
        code(svc.list_chunks(&key, doc_b, page()).await),
        Code::DocumentNotFound
    );
    assert_eq!(
        code(svc.document_chunks(&key, doc_b).await),
        Code::DocumentNotFound
    );
    assert!(!svc.document_chunks(&key, doc_a).await.unwrap().is_empty());
    assert_eq!(
        code(svc.download_document(&key, doc_b).await),
        Code::DocumentNotFound
    );
    let (doc, _, _) = svc.download_document(&key, doc_a).await.unwrap();
    assert_eq!(doc.id, doc_a);
    assert_eq!(
        code(svc.document_summary(&key, doc_b, 3).await),
        Code::DocumentNotFound
    );
    assert_eq!(
        code(svc.reprocess_document(&key, doc_b).await),
        Code::DocumentNotFound
    );
    assert_eq!(
        code(svc.delete_document(&key, doc_b).await),
        Code::DocumentNotFound
    );
    svc.get_document(tenant, doc_b)
        .await
        .expect("the refused delete left the document");

    // Lists: naming another collection is not found; no filter lists only the key's.
    let in_b = DocumentFilter {
        collection_id: Some(b),
        ..Default::default()
    };
    assert_eq!(
        code(svc.list_documents(&key, in_b, page()).await),
        Code::CollectionNotFound
    );
    let listed = svc
        .list_documents(&key, DocumentFilter::default(), page())
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![doc_a]
    );
    let listed = svc.list_collections(&key, page()).await.unwrap();
    assert_eq!(
        listed.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![a]
    );

    // Tasks of another collection's documents are not found either.
    let task_b = svc
        .get_document(tenant, doc_b)
        .await
        .unwrap()
        .task_id
        .unwrap();
    let task_a = svc
        .get_document(tenant, doc_a)
        .await
        .unwrap()
        .task_id
        .unwrap();
    svc.get_task(&key, task_a).await.unwrap();
    assert_eq!(code(svc.get_task(&key, task_b).await), Code::TaskNotFound);
    assert_eq!(code(svc.retry_task(&key, task_b).await), Code::TaskNotFound);
    assert_eq!(
        code(svc.cancel_task(&key, task_b).await),
        Code::TaskNotFound
    );
    let tasks = svc
        .list_tasks(&key, Default::default(), page())
        .await
        .unwrap();
    assert_eq!(
        tasks.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![task_a]
    );

    // Collections: another one is not found; the key creates none.
    assert_eq!(
        code(svc.get_collection(&key, b).await),
        Code::CollectionNotFound
    );
    let rename = CollectionPatch {
        name: Some("mine now".into()),
        ..Default::default()
    };
    assert_eq!(
        code(svc.update_collection(&key, b, rename).await),
        Code::CollectionNotFound
    );
    assert_eq!(
        code(svc.delete_collection(&key, b).await),
        Code::CollectionNotFound
    );
    let new = NewCollection {
        name: "c".into(),
        ..Default::default()
    };
    assert_eq!(
        code(svc.create_collection(&key, new).await),
        Code::InsufficientScope
    );
    assert_eq!(
        code(svc.default_collection(&key).await),
        Code::CollectionNotFound,
        "a limited key neither sees nor creates `default`"
    );

    // Uploads: into its collection only.
    assert_eq!(
        code(
            svc.upload_document(&key, b, one_upload(b"# B2\n\nnot here\n"))
                .await
        ),
        Code::CollectionNotFound
    );
    let up = svc
        .upload_document(&key, a, one_upload(b"# A2\n\nhere\n"))
        .await
        .unwrap();
    assert_eq!(up.document.collection_id, a);

    // Nothing of b changed.
    let (_, coll) = app.get(&format!("/api/v1/collections/{b}")).await;
    assert_eq!(
        (coll["name"].as_str(), coll["document_count"].as_u64()),
        (Some("b"), Some(1))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scope_of_no_collection_sees_nothing_not_everything() {
    let app = spawn_app().await;
    let a = app.create_collection("a").await;
    app.upload_ok(&a, "a.md", &zebras("a")).await;
    app.drain().await;
    let svc = &app.services;
    let nothing = key_limited_to(Vec::new());
    let query = SearchParams::new("zebras graze");
    assert!(
        !svc.search(TenantId::DEFAULT, &query)
            .await
            .unwrap()
            .hits
            .is_empty()
    );
    assert!(svc.search(&nothing, &query).await.unwrap().hits.is_empty());
    let empty = Scope {
        tenant: TenantId::DEFAULT,
        collections: Some(&[]),
    };
    assert!(svc.search(empty, &query).await.unwrap().hits.is_empty());
    let answer = svc.ask(&nothing, query.clone()).await.unwrap();
    assert!(answer.citations.is_empty(), "{answer:?}");
    assert!(
        svc.list_documents(&nothing, DocumentFilter::default(), page())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        svc.list_collections(&nothing, page())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_of_no_collection_finds_nothing_over_http() {
    let app = spawn_app_with(builtin_auth).await;
    let (s, session) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": "owner@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let owner = session["access_token"].as_str().unwrap();
    let call = |path: &str, token: &str, body: serde_json::Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = call("/api/v1/collections", owner, json!({ "name": "a" }))
        .await
        .unwrap();
    let a = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let part = reqwest::multipart::Part::bytes(zebras("a")).file_name("a.md");
    let r = app
        .client
        .post(app.url(&format!("/api/v1/collections/{a}/documents")))
        .bearer_auth(owner)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.drain().await;
    let r = call(
        "/api/v1/keys",
        owner,
        json!({ "name": "none", "collection_ids": [] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key = r.json::<serde_json::Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, body) in [
        ("/api/v1/search", json!({ "query": "zebras" })),
        (
            "/api/v1/ask",
            json!({ "question": "what do zebras graze on?" }),
        ),
    ] {
        let r = call(path, owner, body.clone()).await.unwrap();
        let all = r.json::<serde_json::Value>().await.unwrap().to_string();
        assert!(all.contains("Zebras"), "the owner finds it: {all}");
        let r = call(path, &key, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = r.json::<serde_json::Value>().await.unwrap();
        assert!(!seen.to_string().contains("Zebras"), "{path}: {seen}");
    }
    app.stop().await;
}

/// Issue 21 M7: a key limited to some bots still read every document — search, ask and
/// download over all collections. It reads only its bots' collections now, on every route.
#[tokio::test]
async fn a_bot_limited_key_reads_only_its_bots_collections_over_http() {
    let app = spawn_app_with(builtin_auth).await;
    let (s, session) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": "bots@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let owner = session["access_token"].as_str().unwrap().to_owned();
    let send =
        |method: reqwest::Method, path: &str, token: &str, body: Option<serde_json::Value>| {
            let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            req.send()
        };
    let post = |path: &str, token: &str, body: serde_json::Value| {
        send(reqwest::Method::POST, path, token, Some(body))
    };
    let mut colls = Vec::new();
    let mut docs = Vec::new();
    for name in ["inside", "outside"] {
        let r = post("/api/v1/collections", &owner, json!({ "name": name }))
            .await
            .unwrap();
        let cid = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let part = reqwest::multipart::Part::bytes(zebras(name)).file_name(format!("{name}.md"));
        let r = app
            .client
            .post(app.url(&format!("/api/v1/collections/{cid}/documents")))
            .bearer_auth(&owner)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let doc = r.json::<serde_json::Value>().await.unwrap()["document"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        colls.push(cid);
        docs.push(doc);
    }
    app.drain().await;
    let r = post(
        "/api/v1/bots",
        &owner,
        json!({ "name": "inside-bot", "collection_ids": [colls[0]] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let bot = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        "/api/v1/keys",
        &owner,
        json!({ "name": "widget", "access": "read", "bot_ids": [bot] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key = r.json::<serde_json::Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // Search and ask: the owner finds both collections' zebras, the key only its bot's.
    for (path, body) in [
        ("/api/v1/search", json!({ "query": "zebras graze" })),
        (
            "/api/v1/ask",
            json!({ "question": "what do zebras graze on?" }),
        ),
    ] {
        let r = post(path, &owner, body.clone()).await.unwrap();
        let all = r.text().await.unwrap();
        assert!(all.contains("savanna outside"), "the owner finds it: {all}");
        let r = post(path, &key, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = r.text().await.unwrap();
        assert!(seen.contains("savanna inside"), "{path}: {seen}");
        assert!(!seen.contains("savanna outside"), "{path}: {seen}");
        assert!(!seen.contains(&docs[1]), "{path}: {seen}");
    }
    // Naming the outside collection, or reading its document any way: not found.
    let r = post(
        "/api/v1/search",
        &key,
        json!({ "query": "zebras", "collection_ids": [colls[1]] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let outside = &docs[1];
    for path in [
        format!("/api/v1/documents/{outside}"),
        format!("/api/v1/documents/{outside}/content"),
        format!("/api/v1/documents/{outside}/chunks"),
        format!("/api/v1/documents/{outside}/summary"),
        format!("/api/v1/collections/{}/documents", colls[1]),
        format!("/api/v1/collections/{}", colls[1]),
    ] {
        let r = send(reqwest::Method::GET, &path, &key, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = send(reqwest::Method::GET, "/api/v1/collections", &key, None)
        .await
        .unwrap();
    let listed = r.text().await.unwrap();
    assert!(
        listed.contains(&colls[0]) && !listed.contains(&colls[1]),
        "{listed}"
    );
    // Its own bot's documents stay readable.
    let r = send(
        reqwest::Method::GET,
        &format!("/api/v1/documents/{}/content", docs[0]),
        &key,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The key's bot moves to the other collection: the key follows at once.
    let r = send(
        reqwest::Method::PATCH,
        &format!("/api/v1/bots/{bot}"),
        &owner,
        Some(json!({ "collection_ids": [colls[1]] })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(
        reqwest::Method::GET,
        &format!("/api/v1/documents/{}", docs[0]),
        &key,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
