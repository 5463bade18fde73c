//! What only `PgIndex` has, against a real PostgreSQL with pgvector (`DOCENT_TEST_PGVECTOR_URL`,
//! which `scripts/test-services` exports; skipped without it): opening and reopening, the
//! `embedding` column's dimension, layout upgrades. What every `SearchIndex` must do is the
//! contract suite, run on `PgIndex` by `tests/search_index.rs`. Each test works in a fresh
//! database of its own, dropped at the end, so tests run in parallel and each opening creates
//! the extension and tables from nothing.

#![cfg(feature = "postgres")]

use docent_domain::ports::{IndexFilter, SearchIndex};
use docent_domain::{Code, CollectionId, DocumentId, TenantId};
use docent_index::{PgIndex, PgIndexOptions};
use docent_testkit::pg::{TestDatabase, env_url};
use docent_testkit::search_index_contract::{CONTRACT_DIMENSION as DIM, axis, chunk, keyword_docs};

/// A database of its own, dropped (connections and all) on drop.
struct TestDb {
    _db: TestDatabase,
    url: String,
}

impl TestDb {
    async fn new() -> Option<Self> {
        let url = env_url("DOCENT_TEST_PGVECTOR_URL")?;
        let db = TestDatabase::create(&url, "docent_idx").await;
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

fn all() -> IndexFilter {
    IndexFilter::default()
}

/// A new index is empty and says it needs filling; reopened, its tables and rows are kept.
#[tokio::test]
async fn a_new_index_needs_filling_and_a_reopened_one_keeps_its_rows() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let idx = db.open().await;
    assert!(idx.needs_rebuild(), "a new index is empty");
    let (t, c, d) = (TenantId::new(), CollectionId::new(), DocumentId::new());
    idx.upsert_document(
        t,
        d,
        vec![chunk(
            c,
            d,
            0,
            "Passwords must be rotated every 90 days.",
            Some(axis(2, 3, 0.1)),
        )],
    )
    .await
    .unwrap();
    drop(idx);
    let reopened = db.open().await;
    assert!(!reopened.needs_rebuild(), "the tables were there");
    assert_eq!(
        keyword_docs(&reopened, t, &all(), "passwords").await,
        vec![d]
    );
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

/// An index of the layout before filter columns is made again (empty, to be refilled) rather
/// than searched with rows that cannot answer metadata conditions.
#[tokio::test]
async fn an_index_of_an_older_layout_is_made_again() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    {
        let idx = db.open().await;
        let (t, c, d) = (TenantId::new(), CollectionId::new(), DocumentId::new());
        idx.upsert_document(t, d, vec![chunk(c, d, 0, "old row", Some(axis(0, 1, 0.0)))])
            .await
            .unwrap();
        sqlx::query("ALTER TABLE docent_index_chunks DROP COLUMN metadata_num")
            .execute(idx.pool())
            .await
            .unwrap();
        idx.pool().close().await;
    }
    let idx = db.open().await;
    assert!(idx.needs_rebuild(), "an older layout needs refilling");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM docent_index_chunks")
        .fetch_one(idx.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let reopened = db.open().await;
    assert!(!reopened.needs_rebuild(), "the current layout is kept");
}
