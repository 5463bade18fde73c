// The cases of `store.rs`, included once per backend module; `Store`, `fixture()` and the
// raw-SQL helpers come from that module (see `common/mod.rs`).

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::Duration;

use docent_domain::ports::{MetadataStore, TaskQueue};
use docent_domain::*;
use serde_json::json;



/// A fresh tenant, created (collections reference tenants).
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

fn meta(v: serde_json::Value) -> Metadata {
    match v {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn new_doc(collection: CollectionId, sha256: &str) -> NewDocument {
    let id = DocumentId::new();
    NewDocument {
        id,
        collection_id: collection,
        filename: format!("{sha256}.txt"),
        declared_mime: "text/plain".into(),
        size_bytes: 42,
        sha256: sha256.into(),
        blob_key: format!("originals/{id}"),
        metadata: meta(json!({"source": "test"})),
    }
}

async fn document(
    s: &Store,
    tenant: TenantId,
    collection: CollectionId,
    sha: &str,
) -> Document {
    let (doc, created) = s
        .insert_document(tenant, new_doc(collection, sha))
        .await
        .expect("insert_document");
    assert!(created, "fresh sha256 {sha} inserts");
    doc
}

fn chunk(ordinal: u32) -> NewChunk {
    NewChunk {
        ordinal,
        text: format!("chunk number {ordinal}"),
        char_start: u64::from(ordinal) * 100,
        char_end: u64::from(ordinal) * 100 + 80,
        page: Some(ordinal / 2 + 1),
        heading_path: vec!["Title".into(), format!("Section {ordinal}")],
        metadata: meta(json!({"ordinal": ordinal})),
        embedding: None,
    }
}

fn chunks(n: u32) -> Vec<NewChunk> {
    (0..n).map(chunk).collect()
}

fn facts() -> ExtractionFacts {
    ExtractionFacts {
        detected_type: Some("text/plain".into()),
        page_count: Some(3),
    }
}

#[track_caller]
fn assert_code<T: Debug>(res: Result<T>, code: Code, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.code, code, "{what}: wrong error code ({e:?})"),
    }
}

/// Every document id of the listing, following cursors with pages of `limit`.
async fn all_document_ids(
    s: &Store,
    tenant: TenantId,
    filter: DocumentFilter,
    limit: u32,
) -> Vec<DocumentId> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = s
            .list_documents(tenant, filter.clone(), PageRequest { limit, cursor })
            .await
            .expect("list_documents");
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items.iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("the cursor chain never ended");
}

async fn all_chunks(s: &Store, tenant: TenantId, doc: DocumentId) -> Vec<Chunk> {
    s.list_chunks(
        tenant,
        doc,
        PageRequest {
            limit: PageRequest::MAX_LIMIT,
            cursor: None,
        },
    )
    .await
    .expect("list_chunks")
    .items
}

#[tokio::test]
async fn ensure_tenant_is_idempotent() {
    let Some(f) = fixture().await else {
        return;
    };
    f.store.ping().await.expect("ping");
    let id = TenantId::new();
    let first = f.store.ensure_tenant(id, "Acme").await.unwrap();
    assert_eq!((first.id, first.name.as_str()), (id, "Acme"));
    let second = f.store.ensure_tenant(id, "Renamed").await.unwrap();
    assert_eq!(
        second, first,
        "a second ensure returns the existing tenant unchanged"
    );
    let other = f
        .store
        .ensure_tenant(TenantId::DEFAULT, "default")
        .await
        .unwrap();
    assert_eq!(other.id, TenantId::DEFAULT);
    // Both can hold collections with the same name.
    collection(&f.store, id, "docs").await;
    collection(&f.store, TenantId::DEFAULT, "docs").await;
}

#[tokio::test]
async fn collection_create_get_find_update_delete() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let created = s
        .create_collection(
            t,
            NewCollection {
                name: "handbook".into(),
                description: Some("the staff handbook".into()),
                metadata: meta(json!({"team": "hr", "n": 1})),
                language: TextLanguage::English,
            },
        )
        .await
        .unwrap();
    assert_eq!(created.tenant_id, t);
    assert_eq!(created.name, "handbook");
    assert_eq!(created.description.as_deref(), Some("the staff handbook"));
    assert_eq!(created.metadata, meta(json!({"team": "hr", "n": 1})));
    assert_eq!(created.document_count, 0);
    assert_eq!(
        (created.embedding_model.as_deref(), created.embedding_dim),
        (None, None)
    );

    assert_eq!(s.get_collection(t, created.id).await.unwrap(), created);
    assert_eq!(
        s.find_collection_by_name(t, "handbook").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        s.find_collection_by_name(t, "Handbook").await.unwrap(),
        None,
        "exact name"
    );
    assert_eq!(s.find_collection_by_name(t, "nope").await.unwrap(), None);

    let renamed = s
        .update_collection(
            t,
            created.id,
            CollectionPatch {
                name: Some("manual".into()),
                description: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "manual");
    assert_eq!(
        renamed.description, created.description,
        "untouched fields stay"
    );
    assert_eq!(renamed.metadata, created.metadata);
    assert!(renamed.updated_at >= created.updated_at);
    assert_eq!(renamed.created_at, created.created_at);
    assert_eq!(
        s.find_collection_by_name(t, "handbook").await.unwrap(),
        None
    );

    let cleared = s
        .update_collection(
            t,
            created.id,
            CollectionPatch {
                name: None,
                description: Some(None),
                metadata: Some(meta(json!({"v": 2}))),
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.name, "manual");
    assert_eq!(
        cleared.description, None,
        "Some(None) clears the description"
    );
    assert_eq!(cleared.metadata, meta(json!({"v": 2})));
    assert_eq!(s.get_collection(t, created.id).await.unwrap(), cleared);

    let noop = s
        .update_collection(t, created.id, CollectionPatch::default())
        .await
        .unwrap();
    assert_eq!(
        (noop.name, noop.description, noop.metadata),
        (cleared.name, cleared.description, cleared.metadata)
    );

    assert_eq!(
        s.delete_collection(t, created.id).await.unwrap(),
        Vec::<String>::new()
    );
    assert_code(
        s.get_collection(t, created.id).await,
        Code::CollectionNotFound,
        "get deleted",
    );
    assert_code(
        s.delete_collection(t, created.id).await,
        Code::CollectionNotFound,
        "delete twice",
    );
    assert_code(
        s.update_collection(t, created.id, CollectionPatch::default())
            .await,
        Code::CollectionNotFound,
        "update deleted",
    );
    assert_code(
        s.get_collection(t, CollectionId::new()).await,
        Code::CollectionNotFound,
        "get missing",
    );
}

#[tokio::test]
async fn collection_names_are_unique_per_tenant() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let a = tenant(s).await;
    let b = tenant(s).await;
    let docs = collection(s, a, "docs").await;
    let notes = collection(s, a, "notes").await;
    assert_code(
        s.create_collection(
            a,
            NewCollection {
                name: "docs".into(),
                ..Default::default()
            },
        )
        .await,
        Code::CollectionNameTaken,
        "duplicate create",
    );
    collection(s, b, "docs").await; // another tenant may use the name
    assert_code(
        s.update_collection(
            a,
            notes.id,
            CollectionPatch {
                name: Some("docs".into()),
                ..Default::default()
            },
        )
        .await,
        Code::CollectionNameTaken,
        "rename onto a taken name",
    );
    assert_eq!(
        s.get_collection(a, notes.id).await.unwrap().name,
        "notes",
        "failed rename changed nothing"
    );
    let same = s
        .update_collection(
            a,
            docs.id,
            CollectionPatch {
                name: Some("docs".into()),
                ..Default::default()
            },
        )
        .await
        .expect("renaming to its own name is fine");
    assert_eq!(same.name, "docs");
    // Once the name is free again it can be reused.
    s.delete_collection(a, docs.id).await.unwrap();
    collection(s, a, "docs").await;
}

#[tokio::test]
async fn list_collections_paginates_newest_first() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let a = tenant(s).await;
    let b = tenant(s).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(collection(s, a, &format!("c{i}")).await.id);
    }
    collection(s, b, "b-only").await;
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_collections(a, PageRequest { limit: 2, cursor })
            .await
            .unwrap();
        sizes.push(page.items.len());
        assert!(page.items.iter().all(|c| c.tenant_id == a));
        seen.extend(page.items.iter().map(|c| c.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen, ids, "every collection once, newest first");

    let all = s.list_collections(a, PageRequest::default()).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next_cursor, None);
    assert_code(
        s.list_collections(
            a,
            PageRequest {
                limit: 2,
                cursor: Some("garbage".into()),
            },
        )
        .await,
        Code::InvalidQuery,
        "malformed cursor",
    );
    let empty_tenant = tenant(s).await;
    assert!(
        s.list_collections(empty_tenant, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn collections_are_tenant_isolated() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let a = tenant(s).await;
    let b = tenant(s).await;
    let c = collection(s, a, "private").await;
    document(s, a, c.id, "aaa").await;

    assert_code(
        s.get_collection(b, c.id).await,
        Code::CollectionNotFound,
        "get",
    );
    assert_code(
        s.update_collection(
            b,
            c.id,
            CollectionPatch {
                name: Some("stolen".into()),
                ..Default::default()
            },
        )
        .await,
        Code::CollectionNotFound,
        "update",
    );
    assert_code(
        s.delete_collection(b, c.id).await,
        Code::CollectionNotFound,
        "delete",
    );
    assert!(
        s.list_collections(b, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(s.find_collection_by_name(b, "private").await.unwrap(), None);

    let intact = s.get_collection(a, c.id).await.unwrap();
    assert_eq!(intact.name, "private");
    assert_eq!(
        intact.document_count, 1,
        "nothing deleted by the other tenant"
    );
}

#[tokio::test]
async fn insert_document_dedups_by_sha256_within_a_collection() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let c1 = collection(s, t, "one").await;
    let c2 = collection(s, t, "two").await;

    let new = new_doc(c1.id, "deadbeef");
    let (doc, created) = s.insert_document(t, new.clone()).await.unwrap();
    assert!(created);
    assert_eq!(doc.id, new.id);
    assert_eq!(doc.tenant_id, t);
    assert_eq!(doc.collection_id, c1.id);
    assert_eq!(doc.filename, new.filename);
    assert_eq!(doc.declared_mime, "text/plain");
    assert_eq!(doc.size_bytes, 42);
    assert_eq!(doc.sha256, "deadbeef");
    assert_eq!(doc.blob_key, new.blob_key);
    assert_eq!(doc.metadata, new.metadata);
    assert_eq!(doc.status, TaskStatus::Pending, "no task yet: pending");
    assert_eq!((doc.task_id, doc.error.clone()), (None, None));
    assert_eq!(
        (doc.chunk_count, doc.page_count, doc.detected_type.clone()),
        (0, None, None)
    );
    assert_eq!(s.get_document(t, doc.id).await.unwrap(), doc);

    let again = new_doc(c1.id, "deadbeef");
    let (existing, created) = s.insert_document(t, again.clone()).await.unwrap();
    assert!(
        !created,
        "same bytes in the same collection are not inserted again"
    );
    assert_eq!(existing, doc, "the existing document is returned");
    assert_code(
        s.get_document(t, again.id).await,
        Code::DocumentNotFound,
        "the duplicate's id was not used",
    );

    let (elsewhere, created) = s
        .insert_document(t, new_doc(c2.id, "deadbeef"))
        .await
        .unwrap();
    assert!(created, "dedup is per collection");
    assert_ne!(elsewhere.id, doc.id);
    assert_eq!(elsewhere.collection_id, c2.id);

    // Another tenant with the same bytes gets its own document.
    let other = tenant(s).await;
    let oc = collection(s, other, "one").await;
    let (theirs, created) = s
        .insert_document(other, new_doc(oc.id, "deadbeef"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(theirs.tenant_id, other);

    let different = document(s, t, c1.id, "cafebabe").await;
    assert_ne!(different.id, doc.id);
    assert_eq!(s.get_collection(t, c1.id).await.unwrap().document_count, 2);
    assert_eq!(s.get_collection(t, c2.id).await.unwrap().document_count, 1);
}

#[tokio::test]
async fn insert_document_needs_an_own_collection() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let a = tenant(s).await;
    let b = tenant(s).await;
    let c = collection(s, a, "a's").await;
    assert_code(
        s.insert_document(a, new_doc(CollectionId::new(), "x"))
            .await,
        Code::CollectionNotFound,
        "missing collection",
    );
    let sneaky = new_doc(c.id, "y");
    assert_code(
        s.insert_document(b, sneaky.clone()).await,
        Code::CollectionNotFound,
        "another tenant's collection",
    );
    assert_code(
        s.get_document(a, sneaky.id).await,
        Code::DocumentNotFound,
        "nothing was inserted",
    );
    assert_eq!(s.get_collection(a, c.id).await.unwrap().document_count, 0);

    let doc = document(s, a, c.id, "z").await;
    assert_code(
        s.get_document(b, doc.id).await,
        Code::DocumentNotFound,
        "get from another tenant",
    );
    assert_code(
        s.get_document(a, DocumentId::new()).await,
        Code::DocumentNotFound,
        "missing document",
    );
    assert!(
        s.list_documents(b, DocumentFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn document_status_is_its_tasks() {
    let Some(f) = fixture().await else {
        return;
    };
    let (s, q) = (&f.store, &f.queue);
    let t = tenant(s).await;
    let c = collection(s, t, "c").await;
    let doc = document(s, t, c.id, "sha-1").await;
    assert_eq!(doc.status, TaskStatus::Pending);

    let new_task = |d: &Document| NewTask {
        kind: TaskKind::IngestDocument,
        document_id: Some(d.id),
        collection_id: Some(d.collection_id),
        max_attempts: None,
        payload: serde_json::Value::Null,
        traceparent: None,
    };
    let task = q.enqueue(t, new_task(&doc)).await.unwrap();
    s.set_document_task(t, doc.id, task.id).await.unwrap();
    let d = s.get_document(t, doc.id).await.unwrap();
    assert_eq!((d.task_id, d.status), (Some(task.id), TaskStatus::Pending));

    let lease = q
        .lease("w", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("lease");
    assert_eq!(lease.task.id, task.id);
    assert_eq!(
        s.get_document(t, doc.id).await.unwrap().status,
        TaskStatus::Processing
    );
    let p = Progress {
        chunks_total: 3,
        chunks_done: 1,
        rows_failed: 0,
    };
    assert!(
        q.progress(&lease, TaskStatus::ProcessingChunks, p)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_document(t, doc.id).await.unwrap().status,
        TaskStatus::ProcessingChunks
    );
    assert!(
        q.complete(
            &lease,
            TaskStatus::Completed,
            Progress {
                chunks_done: 3,
                ..p
            }
        )
        .await
        .unwrap()
    );
    let d = s.get_document(t, doc.id).await.unwrap();
    assert_eq!((d.status, d.error), (TaskStatus::Completed, None));

    // A failed task's error shows on its document.
    let bad = document(s, t, c.id, "sha-2").await;
    let task2 = q.enqueue(t, new_task(&bad)).await.unwrap();
    s.set_document_task(t, bad.id, task2.id).await.unwrap();
    let lease = q
        .lease("w", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("lease");
    assert_eq!(lease.task.id, task2.id);
    let err = ErrorInfo {
        code: Code::NoText.as_str().into(),
        message: "nothing to index".into(),
    };
    q.fail(&lease, err.clone(), false, None).await.unwrap();
    let d = s.get_document(t, bad.id).await.unwrap();
    assert_eq!((d.status, d.error), (TaskStatus::Failed, Some(err.clone())));

    // Pointing at a newer task switches the status to that task's.
    let task3 = q.enqueue(t, new_task(&bad)).await.unwrap();
    s.set_document_task(t, bad.id, task3.id).await.unwrap();
    let d = s.get_document(t, bad.id).await.unwrap();
    assert_eq!(
        (d.status, d.error, d.task_id),
        (TaskStatus::Pending, None, Some(task3.id))
    );

    // A task of another tenant never leaks its state into this tenant's document: give the
    // foreign task a distinctive state (failed, with an error) first.
    let held = q
        .lease("w", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("lease");
    assert_eq!(held.task.id, task3.id, "the only runnable task");
    let other = TenantId::new();
    let foreign = q.enqueue(other, new_task(&doc)).await.unwrap();
    let l = q
        .lease("w", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("lease");
    assert_eq!(l.task.id, foreign.id, "the only runnable task");
    q.fail(&l, err.clone(), false, None).await.unwrap();
    assert_eq!(
        q.get(other, foreign.id).await.unwrap().status,
        TaskStatus::Failed
    );
    let plain = document(s, t, c.id, "sha-3").await;
    s.set_document_task(t, plain.id, foreign.id).await.unwrap();
    let d = s.get_document(t, plain.id).await.unwrap();
    assert_eq!(
        (d.status, d.error),
        (TaskStatus::Pending, None),
        "foreign task ignored"
    );

    assert_code(
        s.set_document_task(t, DocumentId::new(), task.id).await,
        Code::DocumentNotFound,
        "missing document",
    );
    assert_code(
        s.set_document_task(other, doc.id, foreign.id).await,
        Code::DocumentNotFound,
        "another tenant's document",
    );
    assert_eq!(
        s.get_document(t, doc.id).await.unwrap().task_id,
        Some(task.id),
        "unchanged"
    );
}

#[tokio::test]
async fn list_documents_filters_and_paginates() {
    let Some(f) = fixture().await else {
        return;
    };
    let (s, q) = (&f.store, &f.queue);
    let t = tenant(s).await;
    let c1 = collection(s, t, "one").await;
    let c2 = collection(s, t, "two").await;
    let mut in_c1 = Vec::new();
    for i in 0..5 {
        in_c1.push(document(s, t, c1.id, &format!("c1-{i}")).await.id);
    }
    let mut in_c2 = Vec::new();
    for i in 0..2 {
        in_c2.push(document(s, t, c2.id, &format!("c2-{i}")).await.id);
    }
    // in_c1[2] completes; in_c2[0] is processing.
    for (doc, finish) in [(in_c1[2], true), (in_c2[0], false)] {
        let task = q
            .enqueue(
                t,
                NewTask {
                    kind: TaskKind::IngestDocument,
                    document_id: Some(doc),
                    collection_id: None,
                    max_attempts: None,
                    payload: serde_json::Value::Null,
                    traceparent: None,
                },
            )
            .await
            .unwrap();
        s.set_document_task(t, doc, task.id).await.unwrap();
        let l = q
            .lease("w", Duration::from_secs(60))
            .await
            .unwrap()
            .expect("lease");
        assert_eq!(l.task.id, task.id);
        if finish {
            assert!(
                q.complete(&l, TaskStatus::Completed, Progress::default())
                    .await
                    .unwrap()
            );
        }
    }
    // Noise in another tenant.
    let other = tenant(s).await;
    let oc = collection(s, other, "one").await;
    document(s, other, oc.id, "c1-0").await;

    let newest_first = |ids: &[DocumentId]| ids.iter().rev().copied().collect::<Vec<_>>();
    let everything: Vec<DocumentId> = newest_first(&[in_c1.clone(), in_c2.clone()].concat());
    let filter = |collection_id, status| DocumentFilter {
        collection_id,
        status,
        ..Default::default()
    };

    assert_eq!(
        all_document_ids(s, t, DocumentFilter::default(), 3).await,
        everything,
        "pages of 3"
    );
    assert_eq!(
        all_document_ids(s, t, DocumentFilter::default(), 1).await,
        everything,
        "pages of 1"
    );
    assert_eq!(
        all_document_ids(s, t, DocumentFilter::default(), 7).await,
        everything,
        "one full page"
    );
    assert_eq!(
        all_document_ids(s, t, filter(Some(c1.id), None), 2).await,
        newest_first(&in_c1)
    );
    assert_eq!(
        all_document_ids(s, t, filter(Some(c2.id), None), 2).await,
        newest_first(&in_c2)
    );
    assert_eq!(
        all_document_ids(s, t, filter(None, Some(TaskStatus::Completed)), 2).await,
        vec![in_c1[2]]
    );
    assert_eq!(
        all_document_ids(s, t, filter(None, Some(TaskStatus::Processing)), 2).await,
        vec![in_c2[0]]
    );
    let pending: Vec<DocumentId> = everything
        .iter()
        .copied()
        .filter(|d| *d != in_c1[2] && *d != in_c2[0])
        .collect();
    assert_eq!(
        all_document_ids(s, t, filter(None, Some(TaskStatus::Pending)), 2).await,
        pending,
        "documents without a task are pending"
    );
    assert_eq!(
        all_document_ids(s, t, filter(Some(c1.id), Some(TaskStatus::Pending)), 2)
            .await
            .len(),
        4
    );
    assert!(
        all_document_ids(s, t, filter(Some(c2.id), Some(TaskStatus::Completed)), 2)
            .await
            .is_empty()
    );
    assert!(
        all_document_ids(s, t, filter(None, Some(TaskStatus::Failed)), 2)
            .await
            .is_empty()
    );
    assert!(
        all_document_ids(s, t, filter(Some(oc.id), None), 2)
            .await
            .is_empty(),
        "another tenant's collection"
    );
    // By file name: a case-insensitive substring, `%` and `_` taken literally.
    let by_name = |collection_id, text: &str| DocumentFilter {
        collection_id,
        filename_contains: Some(text.to_owned()),
        ..Default::default()
    };
    assert_eq!(
        all_document_ids(s, t, by_name(None, "C1-"), 2).await,
        newest_first(&in_c1),
        "names are c1-N.txt"
    );
    assert_eq!(
        all_document_ids(s, t, by_name(Some(c2.id), "2-1.T"), 2).await,
        vec![in_c2[1]]
    );
    assert_eq!(
        all_document_ids(s, t, by_name(None, ""), 10).await,
        everything,
        "an empty text filters nothing"
    );
    for literal in ["%", "_", "c_-", "\\"] {
        assert!(
            all_document_ids(s, t, by_name(None, literal), 10)
                .await
                .is_empty(),
            "{literal} is not a wildcard"
        );
    }
    // By content: the documents holding any of the hashes, in the tenant (and collection) asked.
    let by_sha = |collection_id, hashes: &[&str]| DocumentFilter {
        collection_id,
        sha256: hashes.iter().map(|h| (*h).to_owned()).collect(),
        ..Default::default()
    };
    assert_eq!(
        all_document_ids(s, t, by_sha(Some(c1.id), &["c1-0", "c1-3", "c2-0", "none"]), 1).await,
        newest_first(&[in_c1[0], in_c1[3]])
    );
    assert_eq!(
        all_document_ids(s, t, by_sha(None, &["c1-0", "c2-1"]), 10).await,
        newest_first(&[in_c1[0], in_c2[1]]),
        "not the other tenant's document of the same content"
    );
    assert!(
        all_document_ids(s, t, by_sha(Some(c2.id), &["none"]), 10)
            .await
            .is_empty()
    );

    let page = s
        .list_documents(
            t,
            DocumentFilter::default(),
            PageRequest {
                limit: 3,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.next_cursor.is_some());
    let whole = s
        .list_documents(t, DocumentFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 7);
    assert_eq!(whole.next_cursor, None);
    assert_code(
        s.list_documents(
            t,
            DocumentFilter::default(),
            PageRequest {
                limit: 3,
                cursor: Some("bad".into()),
            },
        )
        .await,
        Code::InvalidQuery,
        "malformed cursor",
    );
}

#[tokio::test]
async fn replace_chunks_is_idempotent_and_records_facts() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let c = collection(s, t, "c").await;
    let doc = document(s, t, c.id, "sha").await;

    assert_eq!(
        s.replace_chunks(t, doc.id, facts(), chunks(3), None)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.replace_chunks(t, doc.id, facts(), chunks(3), None)
            .await
            .unwrap(),
        3,
        "re-run"
    );
    let stored = all_chunks(s, t, doc.id).await;
    assert_eq!(stored.len(), 3, "re-running never duplicates");
    for (i, (got, want)) in stored.iter().zip(chunks(3)).enumerate() {
        assert_eq!(
            got.id,
            ChunkId {
                document: doc.id,
                ordinal: i as u32
            }
        );
        assert_eq!(got.tenant_id, t);
        assert_eq!(got.collection_id, c.id);
        assert_eq!(got.text, want.text);
        assert_eq!(
            (got.char_start, got.char_end),
            (want.char_start, want.char_end)
        );
        assert_eq!(got.page, want.page);
        assert_eq!(got.heading_path, want.heading_path);
        assert_eq!(got.metadata, want.metadata);
    }
    let d = s.get_document(t, doc.id).await.unwrap();
    assert_eq!(d.chunk_count, 3);
    assert_eq!(d.detected_type.as_deref(), Some("text/plain"));
    assert_eq!(d.page_count, Some(3));

    // A shorter re-run leaves no stale chunks behind.
    let fewer = ExtractionFacts {
        detected_type: Some("text/markdown".into()),
        page_count: None,
    };
    assert_eq!(
        s.replace_chunks(t, doc.id, fewer, chunks(2), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(all_chunks(s, t, doc.id).await.len(), 2);
    let d = s.get_document(t, doc.id).await.unwrap();
    assert_eq!(
        (d.chunk_count, d.detected_type.as_deref(), d.page_count),
        (2, Some("text/markdown"), None)
    );

    assert_eq!(
        s.replace_chunks(t, doc.id, facts(), Vec::new(), None)
            .await
            .unwrap(),
        0
    );
    assert!(all_chunks(s, t, doc.id).await.is_empty());
    assert_eq!(s.get_document(t, doc.id).await.unwrap().chunk_count, 0);

    // Another tenant can neither write nor read them.
    s.replace_chunks(t, doc.id, facts(), chunks(3), None)
        .await
        .unwrap();
    let other = tenant(s).await;
    assert_code(
        s.replace_chunks(other, doc.id, facts(), chunks(1), None)
            .await,
        Code::DocumentNotFound,
        "replace from another tenant",
    );
    assert!(all_chunks(s, other, doc.id).await.is_empty());
    assert_eq!(all_chunks(s, t, doc.id).await.len(), 3, "untouched");
    assert_code(
        s.replace_chunks(t, DocumentId::new(), facts(), chunks(1), None)
            .await,
        Code::DocumentNotFound,
        "missing document",
    );
}

#[tokio::test]
async fn list_chunks_in_order_with_pagination() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let c = collection(s, t, "c").await;
    let doc = document(s, t, c.id, "sha").await;
    let neighbour = document(s, t, c.id, "sha-2").await;
    let mut shuffled = chunks(7);
    shuffled.reverse();
    shuffled.swap(1, 4);
    s.replace_chunks(t, doc.id, facts(), shuffled, None)
        .await
        .unwrap();
    s.replace_chunks(t, neighbour.id, facts(), chunks(2), None)
        .await
        .unwrap();

    let mut ordinals = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_chunks(t, doc.id, PageRequest { limit: 3, cursor })
            .await
            .unwrap();
        sizes.push(page.items.len());
        assert!(page.items.iter().all(|c| c.id.document == doc.id));
        ordinals.extend(page.items.iter().map(|c| c.id.ordinal));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(ordinals, (0..7).collect::<Vec<_>>(), "in order, each once");
    let texts: Vec<String> = all_chunks(s, t, doc.id)
        .await
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert_eq!(
        texts,
        chunks(7).into_iter().map(|c| c.text).collect::<Vec<_>>()
    );
    assert_code(
        s.list_chunks(
            t,
            doc.id,
            PageRequest {
                limit: 3,
                cursor: Some("x".into()),
            },
        )
        .await,
        Code::InvalidQuery,
        "malformed cursor",
    );
}

#[tokio::test]
async fn delete_document_removes_its_chunks() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let a = tenant(s).await;
    let b = tenant(s).await;
    let c = collection(s, a, "c").await;
    let doc = document(s, a, c.id, "sha").await;
    let keep = document(s, a, c.id, "sha-keep").await;
    s.replace_chunks(a, doc.id, facts(), chunks(4), None)
        .await
        .unwrap();
    s.replace_chunks(a, keep.id, facts(), chunks(2), None)
        .await
        .unwrap();

    assert_code(
        s.delete_document(b, doc.id).await,
        Code::DocumentNotFound,
        "another tenant",
    );
    assert_eq!(
        all_chunks(s, a, doc.id).await.len(),
        4,
        "untouched by the other tenant"
    );

    let deleted = s.delete_document(a, doc.id).await.unwrap();
    assert_eq!(deleted.id, doc.id);
    assert_eq!(deleted.chunk_count, 4, "returned as it was");
    assert_code(
        s.get_document(a, doc.id).await,
        Code::DocumentNotFound,
        "get after delete",
    );
    assert!(
        all_chunks(s, a, doc.id).await.is_empty(),
        "chunks go with their document"
    );
    assert_code(
        s.delete_document(a, doc.id).await,
        Code::DocumentNotFound,
        "delete twice",
    );
    assert_eq!(
        all_chunks(s, a, keep.id).await.len(),
        2,
        "other documents keep theirs"
    );
    assert_eq!(s.get_collection(a, c.id).await.unwrap().document_count, 1);

    // The same bytes can be uploaded again once deleted.
    let (again, created) = s.insert_document(a, new_doc(c.id, "sha")).await.unwrap();
    assert!(created);
    assert_ne!(again.id, doc.id);
}

#[tokio::test]
async fn delete_collection_cascades_and_returns_blob_keys() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let a = tenant(s).await;
    let b = tenant(s).await;
    let doomed = collection(s, a, "doomed").await;
    let kept = collection(s, a, "kept").await;
    let d1 = document(s, a, doomed.id, "one").await;
    let d2 = document(s, a, doomed.id, "two").await;
    let survivor = document(s, a, kept.id, "one").await;
    for d in [&d1, &d2, &survivor] {
        s.replace_chunks(a, d.id, facts(), chunks(3), None)
            .await
            .unwrap();
    }

    assert_code(
        s.delete_collection(b, doomed.id).await,
        Code::CollectionNotFound,
        "another tenant",
    );
    assert_eq!(
        s.get_document(a, d1.id).await.unwrap().id,
        d1.id,
        "untouched"
    );

    let keys: HashSet<String> = s
        .delete_collection(a, doomed.id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        keys,
        HashSet::from([d1.blob_key.clone(), d2.blob_key.clone()])
    );
    assert_code(
        s.get_collection(a, doomed.id).await,
        Code::CollectionNotFound,
        "collection gone",
    );
    for d in [&d1, &d2] {
        assert_code(
            s.get_document(a, d.id).await,
            Code::DocumentNotFound,
            "document gone",
        );
        assert!(all_chunks(s, a, d.id).await.is_empty(), "chunks gone");
    }
    assert!(
        s.list_documents(
            a,
            DocumentFilter {
                collection_id: Some(doomed.id),
                ..Default::default()
            },
            PageRequest::default()
        )
        .await
        .unwrap()
        .items
        .is_empty()
    );
    assert_eq!(s.get_document(a, survivor.id).await.unwrap().chunk_count, 3);
    assert_eq!(
        all_chunks(s, a, survivor.id).await.len(),
        3,
        "other collections untouched"
    );
    assert_eq!(
        all_document_ids(s, a, DocumentFilter::default(), 10).await,
        vec![survivor.id]
    );
}

#[tokio::test]
async fn get_documents_keeps_order_and_skips_other_tenants() {
    let Some(f) = fixture().await else {
        return;
    };
    let (t1, t2) = (tenant(&f.store).await, tenant(&f.store).await);
    let c1 = collection(&f.store, t1, "mine").await;
    let c2 = collection(&f.store, t2, "theirs").await;
    let a = document(&f.store, t1, c1.id, "aa").await;
    let b = document(&f.store, t1, c1.id, "bb").await;
    let theirs = document(&f.store, t2, c2.id, "cc").await;
    let ids = [b.id, DocumentId::new(), theirs.id, a.id, b.id];
    let got: Vec<DocumentId> = f
        .store
        .get_documents(t1, &ids)
        .await
        .expect("get_documents")
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        got,
        vec![b.id, a.id],
        "asked order; unknown and other tenants' ids skipped; a repeated id once"
    );
    assert!(f.store.get_documents(t1, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn collections_keep_their_text_language() {
    let Some(f) = fixture().await else {
        return;
    };
    let t = tenant(&f.store).await;
    let default = collection(&f.store, t, "plain").await;
    assert_eq!(default.language, TextLanguage::English);
    let german = f
        .store
        .create_collection(
            t,
            NewCollection {
                name: "akten".into(),
                language: TextLanguage::German,
                ..Default::default()
            },
        )
        .await
        .expect("create_collection");
    assert_eq!(german.language, TextLanguage::German);
    let again = f.store.get_collection(t, german.id).await.unwrap();
    assert_eq!(again.language, TextLanguage::German);
}

#[tokio::test]
async fn pending_uploads_are_taken_once_and_tenant_scoped() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (t1, t2) = (tenant(s).await, tenant(s).await);
    let c = collection(s, t1, "uploads").await;
    // Stored at millisecond precision on every backend.
    let now = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .unwrap();
    let id = DocumentId::new();
    let upload = PendingUpload {
        id,
        collection_id: c.id,
        filename: "big.pdf".into(),
        declared_mime: "application/pdf".into(),
        size_bytes: 12345,
        sha256: "ab".repeat(32),
        blob_key: format!("originals/{id}"),
        metadata: json!({"k": "v"}).as_object().unwrap().clone(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(15),
    };
    assert_code(
        s.insert_pending_upload(
            t2,
            PendingUpload {
                collection_id: c.id,
                ..upload.clone()
            },
        )
        .await,
        Code::CollectionNotFound,
        "another tenant's collection",
    );
    s.insert_pending_upload(t1, upload.clone()).await.unwrap();
    assert_eq!(s.get_pending_upload(t1, id).await.unwrap(), upload);
    assert_code(
        s.get_pending_upload(t2, id).await,
        Code::UploadNotFound,
        "another tenant's upload",
    );
    assert!(!s.take_pending_upload(t2, id).await.unwrap());
    assert!(s.take_pending_upload(t1, id).await.unwrap());
    assert!(!s.take_pending_upload(t1, id).await.unwrap(), "taken once");
    assert_code(
        s.get_pending_upload(t1, id).await,
        Code::UploadNotFound,
        "a taken upload",
    );
}

#[tokio::test]
async fn stored_chunks_counts_the_tenants_other_documents() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (t, other) = (tenant(s).await, tenant(s).await);
    let c = collection(s, t, "c").await;
    let a = document(s, t, c.id, "a").await;
    let b = document(s, t, c.id, "b").await;
    assert_eq!(s.stored_chunks(t, a.id).await.unwrap(), 0);
    s.replace_chunks(t, a.id, facts(), chunks(3), None)
        .await
        .unwrap();
    s.replace_chunks(t, b.id, facts(), chunks(4), None)
        .await
        .unwrap();
    let oc = collection(s, other, "c").await;
    let od = document(s, other, oc.id, "o").await;
    s.replace_chunks(other, od.id, facts(), chunks(5), None)
        .await
        .unwrap();
    // The document being ingested is left out (its chunks are replaced); other tenants too.
    assert_eq!(s.stored_chunks(t, a.id).await.unwrap(), 4);
    assert_eq!(s.stored_chunks(t, b.id).await.unwrap(), 3);
    assert_eq!(s.stored_chunks(t, DocumentId::new()).await.unwrap(), 7);
    assert_eq!(s.stored_chunks(other, od.id).await.unwrap(), 0);
}
