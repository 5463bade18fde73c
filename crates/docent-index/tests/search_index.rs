//! Both search indexes against the shared [`SearchIndex`](docent_domain::ports::SearchIndex)
//! contract: every case of `docent_testkit::search_index_contract` on a fresh `EmbeddedIndex`
//! in a temporary directory, and — with feature `postgres` and `DOCENT_TEST_PGVECTOR_URL` set —
//! on a `PgIndex` in a fresh database of its own (dropped at the end); otherwise the PostgreSQL
//! cases print `skipped: DOCENT_TEST_PGVECTOR_URL not set` and pass.

use std::sync::Arc;

use docent_index::EmbeddedIndex;
use docent_testkit::IndexUnderTest;

/// An empty index in a temporary directory, vectors always scanned exactly.
async fn embedded() -> IndexUnderTest {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = EmbeddedIndex::open(dir.path(), 0).expect("open the index");
    IndexUnderTest::new(Arc::new(index), dir)
}

mod embedded {
    docent_testkit::search_index_contract_tests!(super::embedded);
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use docent_index::{PgIndex, PgIndexOptions};
    use docent_testkit::IndexUnderTest;
    use docent_testkit::pg::{TestDatabase, env_url};
    use docent_testkit::search_index_contract::CONTRACT_DIMENSION;

    /// An index in a database of its own, or `None` to skip.
    async fn pg_index() -> Option<IndexUnderTest> {
        let url = env_url("DOCENT_TEST_PGVECTOR_URL")?;
        let db = TestDatabase::create(&url, "docent_idx").await;
        let options = PgIndexOptions {
            max_connections: 4,
            dimension: Some(CONTRACT_DIMENSION),
            ..PgIndexOptions::default()
        };
        let index = PgIndex::connect(db.url(), &options)
            .await
            .expect("open the index");
        Some(IndexUnderTest::new(Arc::new(index), db))
    }

    docent_testkit::search_index_contract_tests!(optional pg_index);
}
