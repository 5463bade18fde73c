//! `PgIndex` against a real PostgreSQL with pgvector (`DOCENT_TEST_PGVECTOR_URL`, which
//! `scripts/test-services` exports; skipped without it). Each test works in a fresh database of
//! its own, dropped at the end, so tests run in parallel and each opening creates the extension
//! and tables from nothing.

#![cfg(feature = "postgres")]

use docent_domain::ports::{IndexChunk, IndexFilter, SearchIndex};
use docent_domain::{ChunkId, Code, CollectionId, DocumentId, TenantId, TextLanguage};
use docent_store::{PgIndex, PgIndexOptions};

/// Vector dimension of these tests.
const DIM: usize = 8;

/// The server, or `None` (and a note on stderr) to skip.
fn url() -> Option<String> {
    match std::env::var("DOCENT_TEST_PGVECTOR_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: DOCENT_TEST_PGVECTOR_URL not set");
            None
        }
    }
}

/// A database of its own, dropped (connections and all) on drop.
struct TestDb {
    _db: docent_testkit::pg::TestDatabase,
    url: String,
}

impl TestDb {
    async fn new() -> Option<Self> {
        let db = docent_testkit::pg::TestDatabase::create(&url()?, "docent_idx").await;
        let url = db.url().to_owned();
        Some(Self { _db: db, url })
    }

    async fn index(&self, dimension: Option<usize>) -> docent_domain::Result<PgIndex> {
        PgIndex::connect(
            &self.url,
            &PgIndexOptions {
                max_connections: 4,
                dimension,
                ..PgIndexOptions::default()
            },
        )
        .await
    }

    async fn open(&self) -> PgIndex {
        self.index(Some(DIM)).await.expect("open the index")
    }
}

/// A unit vector along axis `i`, tilted a little towards axis `j`.
fn axis(i: usize, j: usize, tilt: f32) -> Vec<f32> {
    let mut v = [0.0; DIM];
    v[i] = 1.0;
    v[j] += tilt;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn chunk(
    collection: CollectionId,
    document: DocumentId,
    ordinal: u32,
    text: &str,
    vector: Option<Vec<f32>>,
) -> IndexChunk {
    IndexChunk {
        id: ChunkId { document, ordinal },
        collection_id: collection,
        text: text.into(),
        char_start: u64::from(ordinal) * 10_000,
        heading_path: vec![],
        title: format!("{document}.md"),
        language: TextLanguage::English,
        vector,
    }
}

fn all() -> IndexFilter {
    IndexFilter::default()
}

async fn keyword_docs(idx: &PgIndex, t: TenantId, f: &IndexFilter, q: &str) -> Vec<DocumentId> {
    idx.keyword(t, f, q, 50)
        .await
        .unwrap()
        .iter()
        .map(|h| h.id.document)
        .collect()
}

async fn vector_docs(idx: &PgIndex, t: TenantId, f: &IndexFilter, q: &[f32]) -> Vec<DocumentId> {
    idx.vector(t, f, q, 50)
        .await
        .unwrap()
        .iter()
        .map(|h| h.id.document)
        .collect()
}

#[tokio::test]
async fn known_queries_find_known_chunks_with_stemming() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    assert!(idx.needs_rebuild(), "a new index is empty");
    let (t, c) = (TenantId::new(), CollectionId::new());
    let (leave, security, kitchen) = (DocumentId::new(), DocumentId::new(), DocumentId::new());
    idx.upsert_document(
        t,
        leave,
        vec![
            chunk(
                c,
                leave,
                0,
                "Employees receive 25 days of paid annual leave.",
                Some(axis(0, 1, 0.1)),
            ),
            chunk(
                c,
                leave,
                1,
                "The marathon team runs every Tuesday.",
                Some(axis(1, 0, 0.1)),
            ),
        ],
    )
    .await
    .unwrap();
    idx.upsert_document(
        t,
        security,
        vec![chunk(
            c,
            security,
            0,
            "Passwords must be rotated every 90 days.",
            Some(axis(2, 3, 0.1)),
        )],
    )
    .await
    .unwrap();
    idx.upsert_document(
        t,
        kitchen,
        vec![chunk(
            c,
            kitchen,
            0,
            "The kitchen closes at 6pm; label food in the refrigerator.",
            Some(axis(4, 5, 0.1)),
        )],
    )
    .await
    .unwrap();

    let hits = idx
        .keyword(t, &all(), "annual leave days", 10)
        .await
        .unwrap();
    assert_eq!(
        hits[0].id,
        ChunkId {
            document: leave,
            ordinal: 0
        }
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits[0].score > 0.0);
    // "running" and "runs" share the stem "run"; "refrigerators" finds "refrigerator".
    let running = idx.keyword(t, &all(), "running", 10).await.unwrap();
    assert_eq!(
        running.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![ChunkId {
            document: leave,
            ordinal: 1
        }]
    );
    assert_eq!(
        keyword_docs(&idx, t, &all(), "refrigerators").await,
        vec![kitchen]
    );
    assert!(
        keyword_docs(&idx, t, &all(), "the and of").await.is_empty(),
        "stop words alone match nothing"
    );
    assert!(
        idx.keyword(t, &all(), "title:(x) AND \" & | ! <-> ':*", 10)
            .await
            .unwrap()
            .is_empty(),
        "query syntax never errors"
    );
    // A rarer word weighs more than a common one (BM25's idf): "days" is in two documents,
    // "passwords" in one.
    assert_eq!(
        keyword_docs(&idx, t, &all(), "days passwords").await[0],
        security
    );

    let near = idx.vector(t, &all(), &axis(2, 3, 0.12), 10).await.unwrap();
    assert_eq!(
        near[0].id,
        ChunkId {
            document: security,
            ordinal: 0
        }
    );
    assert!((near[0].score - 1.0).abs() < 0.01, "cosine similarity");
    assert_eq!(near.len(), 4, "every chunk with a vector");
    assert!(near.windows(2).all(|w| w[0].score >= w[1].score));

    drop(idx);
    let reopened = db.open().await;
    assert!(!reopened.needs_rebuild(), "the tables were there");
    assert_eq!(
        keyword_docs(&reopened, t, &all(), "passwords").await,
        vec![security]
    );
}

#[tokio::test]
async fn whole_documents_rank_by_all_of_their_text() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    let (t, c) = (TenantId::new(), CollectionId::new());
    let (both, one) = (DocumentId::new(), DocumentId::new());
    idx.upsert_document(
        t,
        both,
        vec![
            chunk(c, both, 0, "cats sleep all day", None),
            chunk(c, both, 1, "dogs bark at night", None),
        ],
    )
    .await
    .unwrap();
    idx.upsert_document(t, one, vec![chunk(c, one, 0, "a cat ran", None)])
        .await
        .unwrap();
    let docs = idx
        .keyword_documents(t, &all(), "cat dogs", 10)
        .await
        .unwrap();
    assert_eq!(
        docs.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![both, one],
        "the document matching both words leads"
    );
    assert_eq!(
        idx.keyword(t, &all(), "cat dogs", 10).await.unwrap().len(),
        3,
        "chunk search returns chunks"
    );
    let only = idx
        .keyword_documents(
            t,
            &IndexFilter {
                documents: vec![one],
                ..Default::default()
            },
            "cat dogs",
            10,
        )
        .await
        .unwrap();
    assert_eq!(only.iter().map(|d| d.id).collect::<Vec<_>>(), vec![one]);
}

#[tokio::test]
async fn filters_apply_before_the_limit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    let t = TenantId::new();
    let (big, small) = (CollectionId::new(), CollectionId::new());
    // Many strong matches in one collection, one weak match in the other: a filter applied
    // after a limit would find nothing.
    for i in 0..40 {
        let d = DocumentId::new();
        idx.upsert_document(
            t,
            d,
            vec![chunk(
                big,
                d,
                0,
                "solar solar solar panels",
                Some(axis(0, 1 + i % 7, 0.05)),
            )],
        )
        .await
        .unwrap();
    }
    let weak = DocumentId::new();
    idx.upsert_document(
        t,
        weak,
        vec![chunk(
            small,
            weak,
            0,
            "a long text about gardens, trees, flowers, and once solar",
            Some(axis(6, 7, 0.2)),
        )],
    )
    .await
    .unwrap();
    let other = DocumentId::new();
    idx.upsert_document(
        t,
        other,
        vec![chunk(
            small,
            other,
            0,
            "bees and honey",
            Some(axis(7, 6, 0.2)),
        )],
    )
    .await
    .unwrap();

    let in_small = IndexFilter {
        collections: vec![small],
        ..Default::default()
    };
    let kw = idx.keyword(t, &in_small, "solar", 1).await.unwrap();
    assert_eq!(
        kw.iter().map(|h| h.id.document).collect::<Vec<_>>(),
        vec![weak]
    );
    let kd = idx
        .keyword_documents(t, &in_small, "solar", 1)
        .await
        .unwrap();
    assert_eq!(kd.iter().map(|d| d.id).collect::<Vec<_>>(), vec![weak]);
    let near = idx.vector(t, &in_small, &axis(0, 1, 0.0), 1).await.unwrap();
    assert_eq!(near.len(), 1);
    assert!(
        [weak, other].contains(&near[0].id.document),
        "only the filtered collection's chunks"
    );
    assert_eq!(
        vector_docs(&idx, t, &in_small, &axis(0, 1, 0.0))
            .await
            .len(),
        2,
        "a graph walk cut short by the filter is redone exactly"
    );

    let just = IndexFilter {
        documents: vec![other],
        ..Default::default()
    };
    assert_eq!(
        vector_docs(&idx, t, &just, &axis(0, 1, 0.0)).await,
        vec![other]
    );
    assert!(keyword_docs(&idx, t, &just, "solar").await.is_empty());
    let both = IndexFilter {
        collections: vec![big],
        documents: vec![weak],
    };
    assert!(
        keyword_docs(&idx, t, &both, "solar").await.is_empty(),
        "collections and documents both apply"
    );
    assert!(
        vector_docs(&idx, t, &both, &axis(6, 7, 0.2))
            .await
            .is_empty()
    );

    // Deep pages: more hits than the session's ef_search, all of them, best first.
    let deep = idx.vector(t, &all(), &axis(0, 1, 0.0), 42).await.unwrap();
    assert_eq!(deep.len(), 42);
    assert!(deep.windows(2).all(|w| w[0].score >= w[1].score));
}

#[tokio::test]
async fn another_tenants_chunks_never_show() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    let (t1, t2) = (TenantId::new(), TenantId::new());
    let c = CollectionId::new();
    let (d1, d2) = (DocumentId::new(), DocumentId::new());
    // The same collection and document ids in both tenants: ids never cross tenants.
    idx.upsert_document(
        t1,
        d1,
        vec![chunk(
            c,
            d1,
            0,
            "quarterly revenue report",
            Some(axis(0, 1, 0.1)),
        )],
    )
    .await
    .unwrap();
    idx.upsert_document(
        t2,
        d2,
        vec![chunk(
            c,
            d2,
            0,
            "quarterly revenue revenue report",
            Some(axis(0, 1, 0.1)),
        )],
    )
    .await
    .unwrap();
    idx.upsert_document(
        t2,
        d1,
        vec![chunk(c, d1, 0, "revenue", Some(axis(0, 1, 0.2)))],
    )
    .await
    .unwrap();

    let filters = [
        all(),
        IndexFilter {
            collections: vec![c],
            ..Default::default()
        },
        IndexFilter {
            documents: vec![d2],
            ..Default::default()
        },
    ];
    for f in &filters {
        for d in keyword_docs(&idx, t1, f, "revenue").await {
            assert_eq!(d, d1);
        }
        for d in vector_docs(&idx, t1, f, &axis(0, 1, 0.1)).await {
            assert_eq!(d, d1);
        }
    }
    assert!(
        keyword_docs(&idx, t1, &filters[2], "revenue")
            .await
            .is_empty()
    );
    let hits = idx.keyword(t1, &all(), "revenue", 10).await.unwrap();
    assert_eq!(
        hits.len(),
        1,
        "tenant 2's document of the same id is not tenant 1's"
    );
    assert!(
        idx.keyword(TenantId::new(), &all(), "revenue", 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting in one tenant leaves the other's rows of the same ids.
    idx.delete_document(t2, d1).await.unwrap();
    idx.delete_collection(t2, c).await.unwrap();
    assert_eq!(keyword_docs(&idx, t1, &all(), "revenue").await, vec![d1]);
    assert_eq!(
        vector_docs(&idx, t1, &all(), &axis(0, 1, 0.1)).await,
        vec![d1]
    );
    assert!(keyword_docs(&idx, t2, &all(), "revenue").await.is_empty());
}

#[tokio::test]
async fn deleted_chunks_never_come_back() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    let t = TenantId::new();
    let (c1, c2) = (CollectionId::new(), CollectionId::new());
    let (d1, d2, d3) = (DocumentId::new(), DocumentId::new(), DocumentId::new());
    for (c, d, text, v) in [
        (c1, d1, "the ledger of accounts", axis(0, 1, 0.1)),
        (c1, d2, "ledger entries", axis(0, 2, 0.1)),
        (c2, d3, "ledger archive", axis(0, 3, 0.1)),
    ] {
        idx.upsert_document(t, d, vec![chunk(c, d, 0, text, Some(v))])
            .await
            .unwrap();
    }
    let q = axis(0, 1, 0.0);
    assert_eq!(keyword_docs(&idx, t, &all(), "ledger").await.len(), 3);

    idx.delete_document(t, d1).await.unwrap();
    assert!(!keyword_docs(&idx, t, &all(), "ledger").await.contains(&d1));
    assert!(!vector_docs(&idx, t, &all(), &q).await.contains(&d1));
    let docs = idx
        .keyword_documents(t, &all(), "ledger", 10)
        .await
        .unwrap();
    assert!(
        docs.iter().all(|d| d.id != d1),
        "its whole-text row goes too"
    );
    assert!(keyword_docs(&idx, t, &all(), "accounts").await.is_empty());

    // Upserting replaces, never duplicates.
    for _ in 0..2 {
        idx.upsert_document(
            t,
            d2,
            vec![
                chunk(c1, d2, 0, "ledger entries", Some(axis(0, 2, 0.1))),
                chunk(c1, d2, 1, "more ledger entries", Some(axis(0, 2, 0.2))),
            ],
        )
        .await
        .unwrap();
    }
    assert_eq!(keyword_docs(&idx, t, &all(), "ledger").await.len(), 3);
    idx.upsert_document(t, d2, vec![]).await.unwrap();
    assert_eq!(
        keyword_docs(&idx, t, &all(), "ledger").await,
        vec![d3],
        "no chunks: nothing left"
    );

    idx.delete_collection(t, c2).await.unwrap();
    assert!(keyword_docs(&idx, t, &all(), "ledger").await.is_empty());
    assert!(vector_docs(&idx, t, &all(), &q).await.is_empty());
    assert!(
        idx.keyword_documents(t, &all(), "ledger", 10)
            .await
            .unwrap()
            .is_empty()
    );

    idx.upsert_document(
        t,
        d1,
        vec![chunk(c1, d1, 0, "ledger again", Some(axis(0, 1, 0.1)))],
    )
    .await
    .unwrap();
    idx.clear().await.unwrap();
    assert!(keyword_docs(&idx, t, &all(), "ledger").await.is_empty());
    assert!(vector_docs(&idx, t, &all(), &q).await.is_empty());
}

#[tokio::test]
async fn concurrent_upserts_of_a_document_never_duplicate() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = std::sync::Arc::new(db.open().await);
    let (t, c, d) = (TenantId::new(), CollectionId::new(), DocumentId::new());
    let runs = (0..6).map(|i| {
        let idx = idx.clone();
        tokio::spawn(async move {
            let chunks = (0..=(i % 3))
                .map(|o| chunk(c, d, o, "orchard apples", Some(axis(0, 1, 0.1))))
                .collect();
            idx.upsert_document(t, d, chunks).await
        })
    });
    for r in futures_join(runs).await {
        r.unwrap();
    }
    let hits = idx.keyword(t, &all(), "apples", 50).await.unwrap();
    let mut ids: Vec<ChunkId> = hits.iter().map(|h| h.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), hits.len());
    assert!((1..=3).contains(&hits.len()), "one upsert's chunks");
}

/// Awaits every task.
async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_vector_of_another_dimension_is_an_error() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    assert_eq!(idx.dimension(), Some(DIM));
    let (t, c, d) = (TenantId::new(), CollectionId::new(), DocumentId::new());
    let err = idx
        .upsert_document(t, d, vec![chunk(c, d, 0, "x", Some(vec![0.5; DIM + 1]))])
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::EmbeddingModelMismatch, "{err}");
    assert!(err.message.contains("dimensions"), "{err}");
    let err = idx.vector(t, &all(), &[1.0; 3], 10).await.unwrap_err();
    assert_eq!(err.code, Code::EmbeddingModelMismatch, "{err}");
    assert!(
        keyword_docs(&idx, t, &all(), "x").await.is_empty(),
        "nothing written"
    );

    // Keyword-only rows: the column takes a new embedder's dimension.
    idx.upsert_document(t, d, vec![chunk(c, d, 0, "keyword only", None)])
        .await
        .unwrap();
    drop(idx);
    let wider = db
        .index(Some(DIM * 2))
        .await
        .expect("an empty column adapts");
    assert_eq!(wider.dimension(), Some(DIM * 2));
    wider
        .upsert_document(
            t,
            d,
            vec![chunk(
                c,
                d,
                0,
                "now with a vector",
                Some(vec![0.25; DIM * 2]),
            )],
        )
        .await
        .unwrap();
    drop(wider);
    // Stored vectors of another dimension: a clear error, not a silent loss.
    let err = db.index(Some(DIM)).await.err().expect("a mismatch");
    assert_eq!(err.code, Code::EmbeddingModelMismatch, "{err}");
    assert!(err.message.contains("16-dimensional"), "{err}");
    // Without an embedder the index keeps what it has.
    let plain = db.index(None).await.unwrap();
    assert_eq!(plain.dimension(), Some(DIM * 2));
    assert_eq!(keyword_docs(&plain, t, &all(), "vector").await, vec![d]);
}

#[tokio::test]
async fn each_collection_is_analysed_in_its_language() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    let t = TenantId::new();
    let (en, de, raw) = (
        CollectionId::new(),
        CollectionId::new(),
        CollectionId::new(),
    );
    let (d1, d2, d3) = (DocumentId::new(), DocumentId::new(), DocumentId::new());
    idx.upsert_document(
        t,
        d1,
        vec![chunk(en, d1, 0, "The houses were running", None)],
    )
    .await
    .unwrap();
    let mut german = chunk(de, d2, 0, "Die Häuser der Stadt und die Katzen", None);
    german.language = TextLanguage::German;
    idx.upsert_document(t, d2, vec![german]).await.unwrap();
    let mut plain = chunk(raw, d3, 0, "the xylophones", None);
    plain.language = TextLanguage::Unspecified;
    idx.upsert_document(t, d3, vec![plain]).await.unwrap();

    assert_eq!(keyword_docs(&idx, t, &all(), "Haus").await, vec![d2]);
    assert_eq!(keyword_docs(&idx, t, &all(), "katze").await, vec![d2]);
    assert_eq!(keyword_docs(&idx, t, &all(), "house run").await, vec![d1]);
    assert_eq!(keyword_docs(&idx, t, &all(), "xylophones").await, vec![d3]);
    assert!(
        keyword_docs(&idx, t, &all(), "xylophone").await.is_empty(),
        "no stemming: only the exact word"
    );
    assert!(
        keyword_docs(&idx, t, &all(), "die und der")
            .await
            .is_empty(),
        "German stop words match nothing in German text"
    );
}
