//! The [`SearchIndex`] contract: what every search index — the embedded one (tantivy + vector
//! scan) and PostgreSQL's (full-text + pgvector) — must do, written once against the port.
//!
//! A backend provides a factory returning a future of an [`IndexUnderTest`]. Every call must
//! build a **fresh, empty** index for vectors of [`CONTRACT_DIMENSION`] dimensions. Then, at
//! module level of a test file:
//!
//! ```ignore
//! docent_testkit::search_index_contract_tests!(my_index_factory);
//! // or, for a server named by an environment variable, a factory of `Option<IndexUnderTest>`:
//! docent_testkit::search_index_contract_tests!(optional my_index_factory);
//! ```
//!
//! Metadata and date conditions are the one place the implementations may differ, as the port
//! allows: an index that applies them ([`SearchIndex::filters_metadata`]) is held to applying
//! them exactly; one that does not, to never dropping a hit for them. Opening, reopening and
//! layout upgrades stay in each backend's own tests.

use std::collections::HashSet;

use docent_domain::ports::{IndexChunk, IndexFilter, SearchIndex};
use docent_domain::{ChunkId, CollectionId, DocumentId, TenantId, TextLanguage};

use crate::contract::UnderTest;

/// A search index handed to one contract case.
pub type IndexUnderTest = UnderTest<dyn SearchIndex>;

/// The vector dimension every factory must build its index for.
pub const CONTRACT_DIMENSION: usize = 8;

/// The list of cases, in one place.
#[doc(hidden)]
#[macro_export]
macro_rules! __search_index_contract_cases {
    ($mode:ident $($args:tt)*) => {
        $crate::__contract_emit! {
            $mode search_index_contract [$($args)*]
            known_queries_find_known_chunks_with_stemming,
            whole_documents_rank_by_all_of_their_text,
            filters_apply_before_the_limit,
            another_tenants_chunks_never_show,
            another_tenants_words_never_move_scores,
            deleted_chunks_never_come_back,
            concurrent_upserts_of_a_document_never_duplicate,
            each_collection_is_analysed_in_its_language,
            metadata_and_date_filters_apply_before_the_limit,
            metadata_conditions_mean_what_meta_matches_means,
        }
    };
}

/// Expands to one `#[tokio::test]` per [`SearchIndex`] contract case, each on a fresh index
/// from `factory` (callable as `factory()`, returning a future of [`IndexUnderTest`]).
/// `search_index_contract_tests!(optional factory)` takes a factory of
/// `Option<IndexUnderTest>`: each case passes without running when it gives `None`.
#[macro_export]
macro_rules! search_index_contract_tests {
    (optional $factory:expr $(,)?) => {
        $crate::__search_index_contract_cases!(optional_tests $factory);
    };
    ($factory:expr $(,)?) => {
        $crate::__search_index_contract_cases!(tests $factory);
    };
}

const DIM: usize = CONTRACT_DIMENSION;

/// A unit vector of [`CONTRACT_DIMENSION`] along axis `i`, tilted a little towards axis `j`.
pub fn axis(i: usize, j: usize, tilt: f32) -> Vec<f32> {
    let mut v = [0.0; DIM];
    v[i] = 1.0;
    v[j] += tilt;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Chunk `ordinal` of `document` in an English collection: `text`, a title naming the document,
/// uploaded now, no metadata.
pub fn chunk(
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
        metadata: Default::default(),
        created_at: chrono::Utc::now(),
    }
}

/// A chunk carrying metadata and an upload time.
fn chunk_with(
    collection: CollectionId,
    document: DocumentId,
    text: &str,
    vector: Vec<f32>,
    metadata: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
) -> IndexChunk {
    IndexChunk {
        metadata: metadata.as_object().cloned().unwrap_or_default(),
        created_at,
        ..chunk(collection, document, 0, text, Some(vector))
    }
}

fn all() -> IndexFilter {
    IndexFilter::default()
}

/// The documents of `idx`'s first 50 keyword hits for `q`, best first.
pub async fn keyword_docs(
    idx: &dyn SearchIndex,
    t: TenantId,
    f: &IndexFilter,
    q: &str,
) -> Vec<DocumentId> {
    idx.keyword(t, f, q, 50)
        .await
        .unwrap()
        .iter()
        .map(|h| h.id.document)
        .collect()
}

async fn vector_docs(
    idx: &dyn SearchIndex,
    t: TenantId,
    f: &IndexFilter,
    q: &[f32],
) -> Vec<DocumentId> {
    idx.vector(t, f, q, 50)
        .await
        .unwrap()
        .iter()
        .map(|h| h.id.document)
        .collect()
}

/// Awaits every task.
async fn join_all<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Known queries find known chunks: BM25 ranks the best chunk first, stems words in the
/// collection's language, weighs a rare word above a common one (idf), matches nothing on stop
/// words alone, and never errors on query syntax; vector search orders every chunk with a
/// vector by cosine similarity.
pub async fn known_queries_find_known_chunks_with_stemming(subject: IndexUnderTest) {
    let idx = &*subject.port;
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
        keyword_docs(idx, t, &all(), "refrigerators").await,
        vec![kitchen]
    );
    assert!(
        keyword_docs(idx, t, &all(), "the and of").await.is_empty(),
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
        keyword_docs(idx, t, &all(), "days passwords").await[0],
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
}

/// `keyword_documents` ranks documents by all of their text (a document matching every word
/// across its chunks leads), while `keyword` returns chunks; a document filter applies.
pub async fn whole_documents_rank_by_all_of_their_text(subject: IndexUnderTest) {
    let idx = &*subject.port;
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

/// Collection and document filters apply before the limit, in all three searches, and a deep
/// page returns every hit, best first.
pub async fn filters_apply_before_the_limit(subject: IndexUnderTest) {
    let idx = &*subject.port;
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
        vector_docs(idx, t, &in_small, &axis(0, 1, 0.0)).await.len(),
        2,
        "a graph walk cut short by the filter is redone exactly"
    );

    let just = IndexFilter {
        documents: vec![other],
        ..Default::default()
    };
    assert_eq!(
        vector_docs(idx, t, &just, &axis(0, 1, 0.0)).await,
        vec![other]
    );
    assert!(keyword_docs(idx, t, &just, "solar").await.is_empty());
    let both = IndexFilter {
        collections: vec![big],
        documents: vec![weak],
        ..Default::default()
    };
    assert!(
        keyword_docs(idx, t, &both, "solar").await.is_empty(),
        "collections and documents both apply"
    );
    assert!(
        vector_docs(idx, t, &both, &axis(6, 7, 0.2))
            .await
            .is_empty()
    );

    // Deep pages: more hits than the session's ef_search, all of them, best first.
    let deep = idx.vector(t, &all(), &axis(0, 1, 0.0), 42).await.unwrap();
    assert_eq!(deep.len(), 42);
    assert!(deep.windows(2).all(|w| w[0].score >= w[1].score));
}

/// Another tenant's chunks never show, even under the same collection and document ids, and
/// deleting in one tenant leaves the other's rows of the same ids.
pub async fn another_tenants_chunks_never_show(subject: IndexUnderTest) {
    let idx = &*subject.port;
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
        for d in keyword_docs(idx, t1, f, "revenue").await {
            assert_eq!(d, d1);
        }
        for d in vector_docs(idx, t1, f, &axis(0, 1, 0.1)).await {
            assert_eq!(d, d1);
        }
    }
    assert!(
        keyword_docs(idx, t1, &filters[2], "revenue")
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
    assert_eq!(keyword_docs(idx, t1, &all(), "revenue").await, vec![d1]);
    assert_eq!(
        vector_docs(idx, t1, &all(), &axis(0, 1, 0.1)).await,
        vec![d1]
    );
    assert!(keyword_docs(idx, t2, &all(), "revenue").await.is_empty());
}

/// BM25's statistics (N, average length, document frequencies) are the searching tenant's own,
/// so another tenant filling the index with a word never moves this tenant's scores for it —
/// chunk and whole-document rankings alike.
pub async fn another_tenants_words_never_move_scores(subject: IndexUnderTest) {
    let idx = &*subject.port;
    let (a, b) = (TenantId::new(), TenantId::new());
    let (ca, cb) = (CollectionId::new(), CollectionId::new());
    let texts = [
        "the zymurgy notes of the brewery cellar",
        "invoices for the cellar and the roof",
        "minutes of the annual meeting held in spring",
    ];
    for text in texts {
        let d = DocumentId::new();
        idx.upsert_document(a, d, vec![chunk(ca, d, 0, text, None)])
            .await
            .unwrap();
    }
    let scores = || async {
        let chunks = idx.keyword(a, &all(), "zymurgy cellar", 10).await.unwrap();
        let docs = idx
            .keyword_documents(a, &all(), "zymurgy cellar", 10)
            .await
            .unwrap();
        (
            chunks.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
            docs.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
        )
    };
    let alone = scores().await;
    assert_eq!(alone.0.len(), 2);
    for i in 0..20 {
        let d = DocumentId::new();
        let text = format!("zymurgy zymurgy handbook part {i} with many more words of text");
        idx.upsert_document(b, d, vec![chunk(cb, d, 0, &text, None)])
            .await
            .unwrap();
    }
    assert_eq!(scores().await, alone, "B's documents moved A's scores");
    assert_eq!(
        idx.keyword(b, &all(), "zymurgy", 30).await.unwrap().len(),
        20
    );
}

/// Deleted documents and collections are gone from the next search (chunks, vectors and
/// whole-document entries); an upsert replaces a document's chunks, never duplicates them, and
/// an upsert of none removes it; `clear` empties the index.
pub async fn deleted_chunks_never_come_back(subject: IndexUnderTest) {
    let idx = &*subject.port;
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
    assert_eq!(keyword_docs(idx, t, &all(), "ledger").await.len(), 3);

    idx.delete_document(t, d1).await.unwrap();
    assert!(!keyword_docs(idx, t, &all(), "ledger").await.contains(&d1));
    assert!(!vector_docs(idx, t, &all(), &q).await.contains(&d1));
    let docs = idx
        .keyword_documents(t, &all(), "ledger", 10)
        .await
        .unwrap();
    assert!(
        docs.iter().all(|d| d.id != d1),
        "its whole-text row goes too"
    );
    assert!(keyword_docs(idx, t, &all(), "accounts").await.is_empty());

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
    assert_eq!(keyword_docs(idx, t, &all(), "ledger").await.len(), 3);
    idx.upsert_document(t, d2, vec![]).await.unwrap();
    assert_eq!(
        keyword_docs(idx, t, &all(), "ledger").await,
        vec![d3],
        "no chunks: nothing left"
    );

    idx.delete_collection(t, c2).await.unwrap();
    assert!(keyword_docs(idx, t, &all(), "ledger").await.is_empty());
    assert!(vector_docs(idx, t, &all(), &q).await.is_empty());
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
    assert!(keyword_docs(idx, t, &all(), "ledger").await.is_empty());
    assert!(vector_docs(idx, t, &all(), &q).await.is_empty());
}

/// Concurrent upserts of one document leave exactly one upsert's chunks.
pub async fn concurrent_upserts_of_a_document_never_duplicate(subject: IndexUnderTest) {
    let idx = subject.port.clone();
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
    for r in join_all(runs).await {
        r.unwrap();
    }
    let hits = idx.keyword(t, &all(), "apples", 50).await.unwrap();
    let mut ids: Vec<ChunkId> = hits.iter().map(|h| h.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), hits.len());
    assert!((1..=3).contains(&hits.len()), "one upsert's chunks");
}

/// Each collection is analysed in its own language: German stemming and stop words for a
/// German collection, English for an English one, exact words for `Unspecified`.
pub async fn each_collection_is_analysed_in_its_language(subject: IndexUnderTest) {
    let idx = &*subject.port;
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

    assert_eq!(keyword_docs(idx, t, &all(), "Haus").await, vec![d2]);
    assert_eq!(keyword_docs(idx, t, &all(), "katze").await, vec![d2]);
    assert_eq!(keyword_docs(idx, t, &all(), "house run").await, vec![d1]);
    assert_eq!(keyword_docs(idx, t, &all(), "xylophones").await, vec![d3]);
    assert!(
        keyword_docs(idx, t, &all(), "xylophone").await.is_empty(),
        "no stemming: only the exact word"
    );
    assert!(
        keyword_docs(idx, t, &all(), "die und der").await.is_empty(),
        "German stop words match nothing in German text"
    );
}

/// Metadata and date conditions: an index that applies them ([`SearchIndex::filters_metadata`])
/// does so before the limit, in all three searches; one that does not (the search service
/// filters afterwards) never drops a matching hit. Either way a condition never changes a
/// score.
pub async fn metadata_and_date_filters_apply_before_the_limit(subject: IndexUnderTest) {
    use docent_domain::{MetaFilter, MetaOp};
    let idx = &*subject.port;
    let (t, c) = (TenantId::new(), CollectionId::new());
    let day =
        |d: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2024, 5, d, 12, 0, 0).unwrap();
    // Ten documents; the strongest match (most "solar") is the oldest, from team "hr".
    let docs: Vec<DocumentId> = (0..10).map(|_| DocumentId::new()).collect();
    for (i, d) in docs.iter().enumerate() {
        let text = format!("{} panels on the roof", "solar ".repeat(10 - i));
        let meta = serde_json::json!({
            "team": if i % 2 == 0 { "hr" } else { "it" },
            "year": 2015 + i,
            "rank": (i as f64) / 2.0,
        });
        idx.upsert_document(
            t,
            *d,
            vec![chunk_with(
                c,
                *d,
                &text,
                axis(0, 1, i as f32 / 10.0),
                meta,
                day(1 + i as u32),
            )],
        )
        .await
        .unwrap();
    }
    let q = axis(0, 1, 0.0);
    let strict = idx.filters_metadata();
    let unfiltered = idx.keyword(t, &all(), "solar", 50).await.unwrap();
    assert_eq!(unfiltered[0].id.document, docs[0]);
    let it = IndexFilter {
        metadata: vec![MetaFilter {
            key: "team".into(),
            op: MetaOp::Eq("it".into()),
        }],
        ..all()
    };
    let same = unfiltered
        .iter()
        .find(|h| h.id.document == docs[1])
        .unwrap();
    let kw = idx.keyword(t, &it, "solar", 50).await.unwrap();
    let hit = kw.iter().find(|h| h.id.document == docs[1]).expect("kept");
    assert_eq!(hit.score, same.score, "a filter never changes a score");
    if strict {
        // Limit 1: the best "it" document, found although five "hr" hits rank above it or
        // beside it.
        let kw = idx.keyword(t, &it, "solar", 1).await.unwrap();
        assert_eq!(kw.len(), 1);
        assert_eq!(kw[0].id.document, docs[1]);
        assert_eq!(kw[0].score, same.score, "a filter never changes a score");
        let kd = idx.keyword_documents(t, &it, "solar", 1).await.unwrap();
        assert_eq!(kd[0].id, docs[1]);
        let vec = idx.vector(t, &it, &q, 1).await.unwrap();
        assert_eq!(vec[0].id.document, docs[1]);
    }

    // Ranges, numeric, plus dates: year ≥ 2018 (i ≥ 3), rank < 3.5 (i < 7), uploaded on
    // 2024-05-05 or later (i ≥ 4) and before 2024-05-07 (i < 6).
    let narrow = IndexFilter {
        metadata: vec![
            MetaFilter {
                key: "year".into(),
                op: MetaOp::Gte(2018.into()),
            },
            MetaFilter {
                key: "rank".into(),
                op: MetaOp::Lt(3.5.into()),
            },
        ],
        created_after: Some(day(5)),
        created_before: Some(day(7)),
        ..all()
    };
    let want = vec![docs[4], docs[5]];
    let by_chunk = keyword_docs(idx, t, &narrow, "solar").await;
    let near = vector_docs(idx, t, &narrow, &q).await;
    let by_doc: Vec<DocumentId> = idx
        .keyword_documents(t, &narrow, "solar", 50)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    let none = IndexFilter {
        metadata: vec![MetaFilter {
            key: "missing".into(),
            op: MetaOp::Eq(1.into()),
        }],
        ..all()
    };
    if strict {
        assert_eq!(by_chunk, want);
        assert_eq!(near.len(), 2);
        assert_eq!(by_doc, want);
        assert!(keyword_docs(idx, t, &none, "solar").await.is_empty());
        assert!(vector_docs(idx, t, &none, &q).await.is_empty());
    } else {
        for d in &want {
            assert!(by_chunk.contains(d), "a matching chunk is never dropped");
            assert!(near.contains(d), "a matching vector is never dropped");
            assert!(by_doc.contains(d), "a matching document is never dropped");
        }
    }
}

/// An index's metadata conditions agree with `docent_domain::meta_matches` on numbers, numeric
/// strings, dates, other strings, booleans, nulls, arrays and odd numerals (`inf`, `nan`,
/// `1e999`): no index drops a row that matches, and one that applies conditions keeps only
/// matching rows, except where equality takes `1` for `1.0` (the search service re-checks
/// those).
pub async fn metadata_conditions_mean_what_meta_matches_means(subject: IndexUnderTest) {
    use docent_domain::{MetaFilter, MetaOp, meta_matches};
    use serde_json::json;
    let idx = &*subject.port;
    let strict = idx.filters_metadata();
    let (t, c) = (TenantId::new(), CollectionId::new());
    let values = [
        json!(1),
        json!(1.0),
        json!(2.5),
        json!(-3),
        json!(10),
        json!("10"),
        json!("9"),
        json!("2.5"),
        json!("1e3"),
        json!("1e999"),
        json!("inf"),
        json!("-Infinity"),
        json!("nan"),
        json!("abc"),
        json!("Abc"),
        json!("é"),
        json!("2024-05-01"),
        json!("2024-12-31T10:00:00Z"),
        json!(true),
        json!(null),
        json!([1, 2]),
        json!({"a": 1}),
        json!("nul\u{0}inside"),
    ];
    let mut stored = Vec::new();
    for v in &values {
        let d = DocumentId::new();
        let meta = json!({ "v": v });
        idx.upsert_document(
            t,
            d,
            vec![chunk_with(
                c,
                d,
                "needle",
                axis(0, 1, 0.0),
                meta.clone(),
                chrono::Utc::now(),
            )],
        )
        .await
        .unwrap();
        stored.push((d, meta.as_object().cloned().unwrap()));
    }
    let mut probes = Vec::new();
    for x in [
        json!(1),
        json!(2.5),
        json!("10"),
        json!("9"),
        json!("abc"),
        json!("2024-06-01"),
        json!("nan"),
        json!("inf"),
        json!(true),
        json!(null),
    ] {
        probes.push(MetaOp::Eq(x.clone()));
        probes.push(MetaOp::Gt(x.clone()));
        probes.push(MetaOp::Gte(x.clone()));
        probes.push(MetaOp::Lt(x.clone()));
        probes.push(MetaOp::Lte(x.clone()));
    }
    probes.push(MetaOp::In(vec![json!("abc"), json!(10), json!(null)]));
    for op in probes {
        let f = MetaFilter {
            key: "v".into(),
            op: op.clone(),
        };
        let filter = IndexFilter {
            metadata: vec![f.clone()],
            ..all()
        };
        let got: HashSet<DocumentId> = keyword_docs(idx, t, &filter, "needle")
            .await
            .into_iter()
            .collect();
        for (d, meta) in &stored {
            let want = meta_matches(meta, &f);
            let v = &meta["v"];
            if want {
                assert!(got.contains(d), "{op:?} must keep {v}");
            } else if strict && (!matches!(op, MetaOp::Eq(_) | MetaOp::In(_)) || !v.is_number()) {
                assert!(!got.contains(d), "{op:?} must drop {v}");
            }
        }
    }
}
