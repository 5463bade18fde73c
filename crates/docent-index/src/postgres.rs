//! [`PgIndex`]: the [`SearchIndex`] in PostgreSQL — full-text search for keywords and pgvector
//! (HNSW, cosine distance) for vectors, in tables of its own that every server and worker
//! shares. Derived data like the embedded index: `docent reindex` refills it from the metadata
//! store, and [`PgIndex::needs_rebuild`] says when opening created it empty.
//!
//! Tables (created by [`PgIndex::connect`] with `CREATE EXTENSION IF NOT EXISTS vector` and
//! idempotent DDL, under an advisory lock; never in the metadata migrations, which run on
//! PostgreSQL without pgvector):
//!
//! - `docent_index_chunks`: one row per chunk — tenant, collection, document, ordinal, the text
//!   search configuration of the collection's language ([`ts_config`]), a weighted `tsvector`
//!   (title `A`, heading path `B`, text `D`), its length in indexed words, and
//!   `embedding vector(N)` with an HNSW index (`vector_cosine_ops`). A GIN index serves `@@`.
//! - `docent_index_documents`: one row per document, its text once (the overlapping chunks
//!   stitched, as the embedded index does) and its title: documents are ranked by BM25 over
//!   all of their text, not by their best passage.
//! - `docent_index_collections`: per collection, the rows and words of both tables (BM25's
//!   document count and average length), kept in the same transactions as the rows.
//!
//! Keyword ranking is BM25 (`k1` 1.2, `b` 0.75, idf `ln(1 + (N − n + ½)/(n + ½))`) computed in
//! SQL: the query is analysed with each searched language's configuration, rows matching any
//! of its lexemes (an OR query, as the embedded index parses queries) are found through the GIN
//! index, and each lexeme's frequency in a row is `ts_rank_cd` of that lexeme alone, which
//! without normalisation sums the weights of its positions: title words count 1.5, heading
//! words 0.25, text words 1 (the boosts of the embedded index). The row length is its number of
//! indexed words. `N`, the average length and each lexeme's document frequency `n` are those
//! of the searched scope (the tenant, narrowed to the filter's collections or documents), so no
//! tenant's statistics show in another's scores. `ts_rank_cd` over the whole query would have
//! no idf (a common word weighs as much as a rare one). On SciFact (`docent bench beir`,
//! documents grouped) this ranks at nDCG@10 0.687 against the embedded tantivy index's 0.684;
//! hybrid 0.709 against 0.712. Its cost is the scoring of every row that has any query word:
//! 45 ms at the median there (13k chunks; the embedded index: 12 ms).
//!
//! Vector search orders by `embedding <=> query` (scores are `1 − distance`, the cosine
//! similarity) through the HNSW index, with `hnsw.ef_search` raised per query to twice the
//! hits asked for (at most 1000). pgvector filters the graph's candidates after the walk, so
//! when a filtered or tenant-narrowed walk comes back short, or the filter names documents, or
//! more than 1000 hits are asked for, the same query runs as an exact scan.
//!
//! Every statement filters by `tenant_id`, and all of [`IndexFilter`] is conditions of the SQL
//! itself, applied before the limit: collections and documents, upload dates, and metadata
//! conditions. Each chunk row carries its document's upload time and its metadata (the
//! document's overlaid with the chunk's) twice: as given, and its numeric fields as exact
//! decimals, which `docent_meta_match` (a SQL function created with the tables) compares with
//! the meaning of [`docent_domain::meta_matches`]. A whole-document row passes the metadata
//! conditions when one of its chunks does. Rows that fail a condition still count in the
//! keyword statistics, so a filter never changes a score. Tables of an older layout (without
//! these columns) are dropped and made again at opening, and refilled like new ones. Writes are
//! committed before they return, so deletes are visible to the next search.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk, ScoredDocument, SearchIndex};
use docent_domain::{
    ChunkId, Code, CollectionId, DocumentId, Error, MetaFilter, MetaOp, Result, TenantId,
    TextLanguage,
};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Row};

/// BM25 term-frequency saturation.
const K1: f64 = 1.2;
/// BM25 length normalisation.
const B: f64 = 0.75;
/// Weight of a title word (`tsvector` weight `A`) relative to a text word.
pub const TITLE_WEIGHT: f64 = 1.5;
/// Weight of a heading-path word (weight `B`) relative to a text word.
pub const HEADING_WEIGHT: f64 = 0.25;
/// The largest field weight: `ts_rank_cd` takes weights up to 1, so they are divided by it
/// and the rank multiplied back.
const WEIGHT_SCALE: f64 = if TITLE_WEIGHT > 1.0 {
    TITLE_WEIGHT
} else {
    1.0
};
/// Most characters of a text analysed into one `tsvector` (PostgreSQL refuses a `tsvector`
/// over 1 MB); a whole-document entry ranks by its first this many characters.
pub const MAX_TEXT_CHARS: usize = 200_000;
/// The most `hnsw.ef_search` pgvector accepts, so the most hits one graph walk can return.
const MAX_EF_SEARCH: u32 = 1000;
/// The most dimensions pgvector's HNSW index takes; above it vectors are scanned exactly.
const MAX_HNSW_DIMENSIONS: usize = 2000;

/// How to connect to PostgreSQL and build the vector index.
#[derive(Debug, Clone)]
pub struct PgIndexOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing with `service_unavailable`.
    pub acquire_timeout: Duration,
    /// Per-statement limit; `None` keeps the server's setting. Opening (DDL, maybe an HNSW
    /// build) is not limited.
    pub statement_timeout: Option<Duration>,
    /// The embedder's vector dimension; `None` (no embedder) keeps what the table has.
    pub dimension: Option<usize>,
    /// HNSW `m`, when the graph index is created.
    pub hnsw_m: u32,
    /// HNSW `ef_construction`, when the graph index is created.
    pub hnsw_ef_construction: u32,
    /// `hnsw.ef_search` of every connection; raised per query as needed.
    pub hnsw_ef_search: u32,
    /// TLS to the server.
    pub tls: docent_config::PgTls,
    /// The section `tls` comes from (`index` or `database`), named in connection errors.
    pub tls_section: &'static str,
}

impl Default for PgIndexOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
            dimension: None,
            hnsw_m: 16,
            hnsw_ef_construction: 64,
            hnsw_ef_search: 100,
            tls: docent_config::PgTls::default(),
            tls_section: "index",
        }
    }
}

impl PgIndexOptions {
    /// The options of an `[index] kind = "postgres"` section, for vectors of `dimension`.
    /// `None` for another kind.
    pub fn from_config(
        config: &docent_config::IndexConfig,
        database: &docent_config::DatabaseConfig,
        dimension: Option<usize>,
    ) -> Option<Self> {
        let (tls, tls_section) = config.postgres_tls(database);
        match config {
            docent_config::IndexConfig::Embedded { .. } => None,
            docent_config::IndexConfig::Postgres {
                max_connections,
                statement_timeout,
                hnsw_m,
                hnsw_ef_construction,
                hnsw_ef_search,
                ..
            } => Some(Self {
                max_connections: *max_connections,
                statement_timeout: (!statement_timeout.is_zero()).then_some(*statement_timeout),
                dimension,
                hnsw_m: *hnsw_m,
                hnsw_ef_construction: *hnsw_ef_construction,
                hnsw_ef_search: *hnsw_ef_search,
                tls: tls.clone(),
                tls_section,
                ..Self::default()
            }),
        }
    }
}

/// The PostgreSQL text search configuration of a collection language (`simple`: lowercase
/// words, no stemming or stop words).
pub fn ts_config(language: TextLanguage) -> &'static str {
    use TextLanguage as T;
    match language {
        T::Arabic => "arabic",
        T::Danish => "danish",
        T::German => "german",
        T::Greek => "greek",
        T::English => "english",
        T::Spanish => "spanish",
        T::Finnish => "finnish",
        T::French => "french",
        T::Hungarian => "hungarian",
        T::Italian => "italian",
        T::Dutch => "dutch",
        T::Norwegian => "norwegian",
        T::Portuguese => "portuguese",
        T::Romanian => "romanian",
        T::Russian => "russian",
        T::Swedish => "swedish",
        T::Tamil => "tamil",
        T::Turkish => "turkish",
        T::Unspecified => "simple",
    }
}

/// Keyword and vector indexes in PostgreSQL tables.
pub struct PgIndex {
    pool: PgPool,
    /// The dimension of the `embedding` column (`None`: no embedder has fixed one yet).
    dimension: Option<usize>,
    /// Whether the HNSW index exists (vectors of more than 2000 dimensions have none).
    hnsw: bool,
    /// `hnsw.ef_search` of the pool's connections.
    ef_search: u32,
    /// Whether opening created the tables (empty: they need filling from the database).
    created: bool,
    /// TLS settings, kept for [`PgIndex::set_url`].
    tls: docent_config::PgTls,
}

impl PgIndex {
    /// Opens the index of `[index] kind = "postgres"`: the URL is the section's own or the
    /// `[database]` one.
    pub async fn open(
        config: &docent_config::IndexConfig,
        database: &docent_config::DatabaseConfig,
        dimension: Option<usize>,
    ) -> Result<Self> {
        use secrecy::ExposeSecret;
        let options = PgIndexOptions::from_config(config, database, dimension)
            .ok_or_else(|| Error::internal("PgIndex::open needs [index] kind = \"postgres\""))?;
        let url = config
            .postgres_url(database)
            .map_err(|e| Error::internal(e.to_string()))?
            .ok_or_else(|| {
                Error::internal("index.url is not set and [database] is not PostgreSQL")
            })?;
        Self::connect(url.expose_secret(), &options).await
    }

    /// Connects to `url`, creates the pgvector extension and the tables when missing, and fits
    /// the `embedding` column to `options.dimension`: an empty column takes the new dimension;
    /// a column holding vectors of another one is an `embedding_model_mismatch` error.
    pub async fn connect(url: &str, options: &PgIndexOptions) -> Result<Self> {
        let connect = docent_config::pg::connect_options(url, &options.tls)
            .map_err(|e| Error::unavailable("the index database (invalid URL)", e))?;
        let connect = connect.application_name("docent-index");
        let section = options.tls_section;
        let unreachable = |e| {
            let e = docent_config::pg::ConnectError::new(e, &connect, section);
            Error::unavailable("the index database", e)
        };
        let (dimension, hnsw, created) = {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect)
                .await
                .map_err(unreachable)?;
            let fitted = Self::create_tables(&mut conn, options).await;
            sqlx::Connection::close(conn).await.ok();
            fitted?
        };
        let ef_search = options.hnsw_ef_search.clamp(1, MAX_EF_SEARCH);
        let mut setup = format!(
            "SET client_min_messages = warning; SET plan_cache_mode = force_custom_plan; \
             SET hnsw.ef_search = {ef_search};"
        );
        if let Some(t) = options.statement_timeout {
            setup.push_str(&format!("SET statement_timeout = {};", t.as_millis()));
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let setup = setup.clone();
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                    Ok(())
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(unreachable)?;
        Ok(Self {
            pool,
            tls: options.tls.clone(),
            dimension,
            hnsw,
            ef_search,
            created,
        })
    }

    /// Points connections opened from now on at `url` (a rotated password; SIGHUP). Open
    /// connections stay until the pool retires them.
    pub fn set_url(&self, url: &str) -> Result<()> {
        let connect = docent_config::pg::connect_options(url, &self.tls)
            .map_err(|e| Error::unavailable("the index database (invalid URL)", e))?;
        self.pool
            .set_connect_options(connect.application_name("docent-index"));
        Ok(())
    }

    /// Runs the DDL in one transaction under an advisory lock (processes starting together
    /// take turns). Returns the column's dimension, whether the HNSW index exists and whether
    /// the tables were created.
    async fn create_tables(
        conn: &mut sqlx::PgConnection,
        options: &PgIndexOptions,
    ) -> Result<(Option<usize>, bool, bool)> {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_err)?;
        tx.execute("SET LOCAL client_min_messages = warning; SET LOCAL statement_timeout = 0")
            .await
            .map_err(db_err)?;
        lock_key(&mut tx, "docent_index_ddl").await?;
        tx.execute("CREATE EXTENSION IF NOT EXISTS vector")
            .await
            .map_err(db_err)?;
        let missing: bool = sqlx::query_scalar("SELECT to_regclass('docent_index_chunks') IS NULL")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        // Tables of an older layout (no filter columns) are dropped and made again: derived
        // data, refilled from the database like new ones.
        let older: bool = !missing
            && sqlx::query_scalar(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute \
                 WHERE attrelid = 'docent_index_chunks'::regclass \
                   AND attname = 'metadata_num' AND NOT attisdropped)",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if older {
            tracing::warn!(
                "the PostgreSQL index has an older layout: making it again, refilled from the database"
            );
            tx.execute(
                "DROP TABLE IF EXISTS docent_index_chunks, docent_index_documents, \
                 docent_index_collections",
            )
            .await
            .map_err(db_err)?;
        }
        let created = missing || older;
        let column = match options.dimension {
            Some(d) => format!("vector({d})"),
            None => "vector".to_owned(),
        };
        tx.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS docent_index_chunks (
                 tenant_id UUID NOT NULL,
                 document_id UUID NOT NULL,
                 ordinal BIGINT NOT NULL,
                 collection_id UUID NOT NULL,
                 language TEXT NOT NULL,
                 words INTEGER NOT NULL,
                 tsv TSVECTOR NOT NULL,
                 embedding {column},
                 created_at TIMESTAMPTZ NOT NULL,
                 metadata JSONB NOT NULL,
                 metadata_num JSONB NOT NULL,
                 PRIMARY KEY (tenant_id, document_id, ordinal)
             );
             CREATE INDEX IF NOT EXISTS docent_index_chunks_by_collection
                 ON docent_index_chunks (tenant_id, collection_id);
             CREATE INDEX IF NOT EXISTS docent_index_chunks_tsv
                 ON docent_index_chunks USING gin (tsv);
             CREATE TABLE IF NOT EXISTS docent_index_documents (
                 tenant_id UUID NOT NULL,
                 document_id UUID NOT NULL,
                 collection_id UUID NOT NULL,
                 language TEXT NOT NULL,
                 words INTEGER NOT NULL,
                 tsv TSVECTOR NOT NULL,
                 created_at TIMESTAMPTZ NOT NULL,
                 PRIMARY KEY (tenant_id, document_id)
             );
             CREATE INDEX IF NOT EXISTS docent_index_documents_by_collection
                 ON docent_index_documents (tenant_id, collection_id);
             CREATE INDEX IF NOT EXISTS docent_index_documents_tsv
                 ON docent_index_documents USING gin (tsv);
             CREATE TABLE IF NOT EXISTS docent_index_collections (
                 tenant_id UUID NOT NULL,
                 collection_id UUID NOT NULL,
                 language TEXT NOT NULL,
                 chunks BIGINT NOT NULL,
                 chunk_words BIGINT NOT NULL,
                 documents BIGINT NOT NULL,
                 document_words BIGINT NOT NULL,
                 PRIMARY KEY (tenant_id, collection_id)
             );"
        )))
        .await
        .map_err(db_err)?;
        tx.execute(META_MATCH_FUNCTION).await.map_err(db_err)?;
        // pgvector keeps the dimension in the column's type modifier (-1: none).
        let typmod: i32 = sqlx::query_scalar(
            "SELECT atttypmod FROM pg_attribute \
             WHERE attrelid = 'docent_index_chunks'::regclass AND attname = 'embedding'",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let stored = usize::try_from(typmod).ok().filter(|d| *d > 0);
        let dimension = match (options.dimension, stored) {
            (Some(want), Some(have)) if want == have => Some(want),
            (Some(want), _) => {
                let holds: Option<i32> = sqlx::query_scalar(
                    "SELECT vector_dims(embedding) FROM docent_index_chunks \
                     WHERE embedding IS NOT NULL LIMIT 1",
                )
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                if let Some(have) = holds {
                    return Err(Error::new(
                        Code::EmbeddingModelMismatch,
                        format!(
                            "the PostgreSQL index holds {have}-dimensional vectors but the \
                             embedder makes {want}-dimensional ones; configure the embedder \
                             they came from, or drop the docent_index_* tables and run \
                             `docent reindex` once the stored chunks carry vectors of the new model"
                        ),
                    ));
                }
                tracing::info!(
                    from = ?stored,
                    to = want,
                    "the index's vector column takes the embedder's dimension"
                );
                tx.execute(sqlx::AssertSqlSafe(format!(
                    "DROP INDEX IF EXISTS docent_index_chunks_embedding;
                     ALTER TABLE docent_index_chunks ALTER COLUMN embedding TYPE vector({want})"
                )))
                .await
                .map_err(db_err)?;
                Some(want)
            }
            (None, stored) => stored,
        };
        let hnsw = match dimension {
            Some(d) if d <= MAX_HNSW_DIMENSIONS => {
                tx.execute(sqlx::AssertSqlSafe(format!(
                    "CREATE INDEX IF NOT EXISTS docent_index_chunks_embedding
                         ON docent_index_chunks USING hnsw (embedding vector_cosine_ops)
                         WITH (m = {}, ef_construction = {})",
                    options.hnsw_m, options.hnsw_ef_construction
                )))
                .await
                .map_err(db_err)?;
                true
            }
            Some(d) => {
                tracing::warn!(
                    dimension = d,
                    "pgvector indexes at most 2000 dimensions: vector searches scan exactly"
                );
                false
            }
            None => false,
        };
        tx.commit().await.map_err(db_err)?;
        Ok((dimension, hnsw, created))
    }

    /// Whether opening created the tables: they are empty and need filling from the database
    /// ([`SearchIndex::upsert_document`] for every document, as `docent reindex` does).
    pub fn needs_rebuild(&self) -> bool {
        self.created
    }

    /// The vector dimension the index takes (`None` until an embedder fixes one).
    pub fn dimension(&self) -> Option<usize> {
        self.dimension
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Refuses a vector of another dimension than the column's.
    fn check_dimension(&self, len: usize, what: &str) -> Result<()> {
        match self.dimension {
            Some(d) if d == len => Ok(()),
            Some(d) => Err(Error::new(
                Code::EmbeddingModelMismatch,
                format!(
                    "{what} has {len} dimensions but the index holds {d}-dimensional vectors \
                     (a different embedding model)"
                ),
            )),
            None => Err(Error::new(
                Code::EmbedderNotConfigured,
                format!("{what} cannot be indexed: the index was opened without an embedder"),
            )),
        }
    }

    /// Removes a document's rows and takes them off its collection's statistics.
    async fn delete_rows(
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        document: DocumentId,
    ) -> Result<()> {
        sqlx::query(
            "WITH gone_chunks AS (
                 DELETE FROM docent_index_chunks
                 WHERE tenant_id = $1::uuid AND document_id = $2::uuid
                 RETURNING collection_id, words
             ),
             gone_documents AS (
                 DELETE FROM docent_index_documents
                 WHERE tenant_id = $1::uuid AND document_id = $2::uuid
                 RETURNING collection_id, words
             ),
             gone AS (
                 SELECT collection_id, count(*) AS chunks, sum(words) AS chunk_words,
                        0 AS documents, 0 AS document_words
                 FROM gone_chunks GROUP BY collection_id
                 UNION ALL
                 SELECT collection_id, 0, 0, count(*), sum(words)
                 FROM gone_documents GROUP BY collection_id
             )
             UPDATE docent_index_collections s SET
                 chunks = s.chunks - g.chunks,
                 chunk_words = s.chunk_words - g.chunk_words,
                 documents = s.documents - g.documents,
                 document_words = s.document_words - g.document_words
             FROM (
                 SELECT collection_id, sum(chunks) AS chunks, sum(chunk_words) AS chunk_words,
                        sum(documents) AS documents, sum(document_words) AS document_words
                 FROM gone GROUP BY collection_id
             ) g
             WHERE s.tenant_id = $1::uuid AND s.collection_id = g.collection_id",
        )
        .bind(tenant.to_string())
        .bind(document.to_string())
        .execute(conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// BM25 over the chunk rows, or with `documents` over the whole-document rows.
    async fn bm25(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
        documents: bool,
    ) -> Result<Vec<PgRow>> {
        let query = clean_query(query);
        if limit == 0 || !query.chars().any(char::is_alphanumeric) {
            return Ok(Vec::new());
        }
        let (table, n, words, key) = if documents {
            (
                "docent_index_documents",
                "documents",
                "document_words",
                "document_id",
            )
        } else {
            (
                "docent_index_chunks",
                "chunks",
                "chunk_words",
                "document_id, ordinal",
            )
        };
        // The scope's statistics come from the collections' counters, or (a filter naming
        // documents) from those documents' rows.
        let sql = format!(
            "WITH scope AS (
                 SELECT s.language, sum(s.{n})::float8 AS n, sum(s.{words})::float8 AS w
                 FROM docent_index_collections s
                 WHERE s.tenant_id = $1::uuid AND cardinality($4::uuid[]) = 0
                   AND (cardinality($3::uuid[]) = 0 OR s.collection_id = ANY($3::uuid[]))
                 GROUP BY s.language
                 UNION ALL
                 SELECT c.language, count(*)::float8, sum(c.words)::float8
                 FROM {table} c
                 WHERE c.tenant_id = $1::uuid AND cardinality($4::uuid[]) > 0
                   AND c.document_id = ANY($4::uuid[])
                   AND (cardinality($3::uuid[]) = 0 OR c.collection_id = ANY($3::uuid[]))
                 GROUP BY c.language
             ),
             q AS MATERIALIZED (
                 SELECT language, n, w / n AS avgdl,
                        replace(plainto_tsquery(language::regconfig, $2)::text, '&', '|')::tsquery
                            AS tsq,
                        ARRAY(
                            SELECT ('''' || replace(replace(l, '\\', '\\\\'), '''', '''''')
                                    || '''')::tsquery
                            FROM unnest(tsvector_to_array(to_tsvector(language::regconfig, $2))) l
                        ) AS terms
                 FROM scope WHERE n > 0
             ),
             -- `pass`: the row meets the date and metadata conditions. Rows that do not
             -- still count in the document frequencies, so a condition never changes scores.
             hits AS (
                 SELECT {key}, c.words, c.tsv, q.language, q.n, q.avgdl, q.terms,
                        {conditions} AS pass
                 FROM q JOIN {table} c
                   ON c.tenant_id = $1::uuid AND c.language = q.language AND c.tsv @@ q.tsq
                 WHERE (cardinality($3::uuid[]) = 0 OR c.collection_id = ANY($3::uuid[]))
                   AND (cardinality($4::uuid[]) = 0 OR c.document_id = ANY($4::uuid[]))
             ),
             -- Each query lexeme's weighted frequency in each row that has it. Materialised
             -- so the window below sorts these small rows, not the tsvectors.
             m AS MATERIALIZED (
                 SELECT {key}, h.words, h.n, h.avgdl, h.language, h.pass, t.i,
                        {scale:?} * ts_rank_cd('{weights}', h.tsv, t.term)::float8 AS tf
                 FROM hits h CROSS JOIN LATERAL unnest(h.terms) WITH ORDINALITY t(term, i)
                 WHERE h.tsv @@ t.term
             ),
             -- Document frequency: the rows of the scope that have the lexeme.
             tf AS (
                 SELECT m.*, count(*) OVER (PARTITION BY m.language, m.i)::float8 AS df FROM m
             )
             SELECT document_id::text AS document_id, {ordinal}
                    sum(ln(1 + (tf.n - tf.df + 0.5) / (tf.df + 0.5)) * tf.tf * ({K1:?} + 1)
                        / (tf.tf + {K1:?} * (1 - {B:?} + {B:?} * tf.words / greatest(tf.avgdl, 1))))
                        ::float4 AS score
             FROM tf
             WHERE tf.pass
             GROUP BY {key}
             ORDER BY score DESC, {key}
             LIMIT $5",
            ordinal = if documents { "" } else { "ordinal," },
            conditions = conditions_sql("c", documents, filter),
            weights = rank_weights(),
            scale = WEIGHT_SCALE,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(query)
            .bind(ids(&filter.collections))
            .bind(ids(&filter.documents))
            .bind(limit as i64)
            .bind(filter.created_after)
            .bind(filter.created_before.map(ceil_micros))
            .bind(filter_json(&filter.metadata))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    /// Nearest chunks: through the HNSW index with `ef_search`, or (`None`) by an exact scan.
    async fn nearest(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
        ef_search: Option<u32>,
    ) -> Result<Vec<ScoredChunk>> {
        let filters = format!(
            "c.tenant_id = $1::uuid AND c.embedding IS NOT NULL
             AND (cardinality($3::uuid[]) = 0 OR c.collection_id = ANY($3::uuid[]))
             AND (cardinality($4::uuid[]) = 0 OR c.document_id = ANY($4::uuid[]))
             AND {}",
            conditions_sql("c", false, filter)
        );
        // Ordering by the distance operator itself lets the planner walk the graph; ordering
        // by the score does not.
        let order = match ef_search {
            Some(_) => "c.embedding <=> $2::real[]::vector",
            None => "score DESC, c.document_id, c.ordinal",
        };
        let sql = format!(
            "SELECT c.document_id::text AS document_id, c.ordinal,
                    (1 - (c.embedding <=> $2::real[]::vector))::float4 AS score
             FROM docent_index_chunks c WHERE {filters} ORDER BY {order} LIMIT $5"
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(query.to_vec())
            .bind(ids(&filter.collections))
            .bind(ids(&filter.documents))
            .bind(limit as i64)
            .bind(filter.created_after)
            .bind(filter.created_before.map(ceil_micros))
            .bind(filter_json(&filter.metadata));
        let rows = match ef_search {
            Some(ef) if ef > self.ef_search => {
                let mut tx = self.pool.begin().await.map_err(db_err)?;
                sqlx::query("SELECT set_config('hnsw.ef_search', $1, true)")
                    .bind(ef.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let rows = q.fetch_all(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                rows
            }
            _ => q.fetch_all(&self.pool).await.map_err(db_err)?,
        };
        rows.iter()
            .map(|row| {
                Ok(ScoredChunk {
                    id: chunk_id(row)?,
                    score: row.try_get("score").map_err(db_err)?,
                })
            })
            .collect()
    }
}

/// `docent_meta_match(metadata, metadata_num, condition)`: one metadata condition of
/// [`IndexFilter::metadata`] evaluated in SQL with the meaning of
/// [`docent_domain::meta_matches`]. `metadata_num` holds, for every field whose value reads as a
/// number (a JSON number or a numeric string), that number as [`num_text`] writes it, and a
/// condition (see [`filter_json`]) carries its own value's number the same way, so numbers are
/// compared as exact `numeric`s of the very `f64`s the Rust side compares (NaN never compares),
/// and strings byte-wise (`COLLATE "C"`, Rust's `str` order). Equality is `jsonb`'s, which may
/// also take `1` for `1.0`; the search service re-checks every hit, so that only ever lets a
/// row through, never drops one.
const META_MATCH_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION docent_meta_match(meta jsonb, num jsonb, f jsonb)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT coalesce(CASE f->>'op'
    WHEN 'eq' THEN meta -> (f->>'key') = f->'value'
    WHEN 'in' THEN meta -> (f->>'key') IN (SELECT jsonb_array_elements(f->'value'))
    ELSE CASE
        WHEN num ? (f->>'key') AND f ? 'num' THEN
            CASE WHEN num->>(f->>'key') = 'NaN' OR f->>'num' = 'NaN' THEN false
            ELSE CASE f->>'op'
                WHEN 'gt' THEN (num->>(f->>'key'))::numeric > (f->>'num')::numeric
                WHEN 'gte' THEN (num->>(f->>'key'))::numeric >= (f->>'num')::numeric
                WHEN 'lt' THEN (num->>(f->>'key'))::numeric < (f->>'num')::numeric
                WHEN 'lte' THEN (num->>(f->>'key'))::numeric <= (f->>'num')::numeric
            END END
        WHEN jsonb_typeof(meta -> (f->>'key')) = 'string'
             AND jsonb_typeof(f->'value') = 'string' THEN
            CASE f->>'op'
                WHEN 'gt' THEN (meta->>(f->>'key')) COLLATE "C" > (f->>'value') COLLATE "C"
                WHEN 'gte' THEN (meta->>(f->>'key')) COLLATE "C" >= (f->>'value') COLLATE "C"
                WHEN 'lt' THEN (meta->>(f->>'key')) COLLATE "C" < (f->>'value') COLLATE "C"
                WHEN 'lte' THEN (meta->>(f->>'key')) COLLATE "C" <= (f->>'value') COLLATE "C"
            END
        ELSE false
    END
END, false)
$fn$"#;

/// The SQL condition that a row of `alias` passes `filter`'s date and metadata conditions,
/// bound as `$6` (uploaded at or after), `$7` (uploaded before) and `$8` (the metadata
/// conditions, [`filter_json`]); `TRUE` when it has none, so an unfiltered search evaluates
/// nothing per row. A whole-document row passes the metadata conditions when one of its
/// chunks does.
fn conditions_sql(alias: &str, documents: bool, filter: &IndexFilter) -> String {
    if !filter.has_conditions() {
        return "TRUE".to_owned();
    }
    let mut parts = Vec::new();
    if filter.created_after.is_some() {
        parts.push(format!("{alias}.created_at >= $6::timestamptz"));
    }
    if filter.created_before.is_some() {
        parts.push(format!("{alias}.created_at < $7::timestamptz"));
    }
    if !filter.metadata.is_empty() {
        let all_of = |row: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM jsonb_array_elements($8::jsonb) f
                             WHERE NOT docent_meta_match({row}.metadata, {row}.metadata_num, f))"
            )
        };
        parts.push(if documents {
            format!(
                "EXISTS (SELECT 1 FROM docent_index_chunks mc
                         WHERE mc.tenant_id = {alias}.tenant_id
                           AND mc.document_id = {alias}.document_id AND {})",
                all_of("mc")
            )
        } else {
            all_of(alias)
        });
    }
    format!("({})", parts.join(" AND "))
}

/// `t` rounded up to a whole microsecond, PostgreSQL's precision: `created_at < t` keeps the
/// same rows on both sides (rounding down would drop a row created in the cut-off
/// nanoseconds).
fn ceil_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let sub = t.timestamp_subsec_nanos() % 1000;
    if sub == 0 {
        t
    } else {
        t + chrono::Duration::nanoseconds(i64::from(1000 - sub))
    }
}

/// A JSON value as `jsonb` takes it: no NUL characters in strings or keys (PostgreSQL refuses
/// `\u0000`; metadata can come from a file's own record fields).
fn pg_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as V;
    let clean = |s: &str| s.replace('\0', "");
    match v {
        V::String(s) => V::String(clean(s)),
        V::Array(a) => V::Array(a.iter().map(pg_json).collect()),
        V::Object(o) => V::Object(o.iter().map(|(k, v)| (clean(k), pg_json(v))).collect()),
        other => other.clone(),
    }
}

/// A number as `metadata_num` and [`filter_json`] carry it: the shortest decimal that reads
/// back as the same `f64` (so `numeric` orders these strings as Rust orders the `f64`s),
/// `Infinity`, `-Infinity` or `NaN`.
fn num_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        format!("{f:e}")
    }
}

/// The fields of `meta` that read as numbers ([`docent_domain::filter::as_f64`]), as
/// [`num_text`] writes them.
fn numeric_metadata(meta: &docent_domain::Metadata) -> serde_json::Value {
    meta.iter()
        .filter_map(|(k, v)| {
            docent_domain::filter::as_f64(v).map(|f| (k.replace('\0', ""), num_text(f).into()))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Metadata conditions as `docent_meta_match` takes them: `{"key", "op", "value"}`, and
/// `"num"` for a range whose value reads as a number.
fn filter_json(filters: &[MetaFilter]) -> serde_json::Value {
    filters
        .iter()
        .map(|f| {
            let (op, value) = match &f.op {
                MetaOp::Eq(v) => ("eq", v.clone()),
                MetaOp::In(list) => ("in", serde_json::Value::Array(list.clone())),
                MetaOp::Gt(v) => ("gt", v.clone()),
                MetaOp::Gte(v) => ("gte", v.clone()),
                MetaOp::Lt(v) => ("lt", v.clone()),
                MetaOp::Lte(v) => ("lte", v.clone()),
            };
            let mut o = pg_json(&serde_json::json!({ "key": f.key, "op": op, "value": value }));
            if !matches!(op, "eq" | "in")
                && let Some(n) = docent_domain::filter::as_f64(&value)
            {
                o["num"] = num_text(n).into();
            }
            o
        })
        .collect::<Vec<_>>()
        .into()
}

/// The `ts_rank_cd` weights array (`{D,C,B,A}`) of the fields, scaled by [`WEIGHT_SCALE`].
/// With a one-lexeme query and no normalisation, `ts_rank_cd` is the sum of the weights of the
/// lexeme's positions: its term frequency, each title word counting 1.5 and each heading word
/// 0.25. (C is unused.)
fn rank_weights() -> String {
    format!(
        "{{{:?},{:?},{:?},{:?}}}",
        1.0 / WEIGHT_SCALE,
        0.1,
        HEADING_WEIGHT / WEIGHT_SCALE,
        TITLE_WEIGHT / WEIGHT_SCALE
    )
}

/// Free text, not a query language: letters, digits and whitespace only (as the embedded
/// index parses queries), at most [`MAX_TEXT_CHARS`].
fn clean_query(query: &str) -> String {
    query
        .chars()
        .take(MAX_TEXT_CHARS)
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect()
}

/// Text as PostgreSQL takes it: no NUL characters, at most [`MAX_TEXT_CHARS`].
fn pg_text(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '\0')
        .take(MAX_TEXT_CHARS)
        .collect()
}

/// Ids as a `uuid[]` parameter (bound as text).
fn ids<T: ToString>(ids: &[T]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn document_id(row: &PgRow) -> Result<DocumentId> {
    let s: String = row.try_get("document_id").map_err(db_err)?;
    DocumentId::from_str(&s).map_err(|_| Error::internal(format!("corrupt document id {s}")))
}

fn chunk_id(row: &PgRow) -> Result<ChunkId> {
    let ordinal: i64 = row.try_get("ordinal").map_err(db_err)?;
    Ok(ChunkId {
        document: document_id(row)?,
        ordinal: u32::try_from(ordinal)
            .map_err(|_| Error::internal(format!("corrupt ordinal {ordinal}")))?,
    })
}

/// A document's text once: chunks overlap, so each contributes what follows the previous
/// one's end.
fn document_text(chunks: &[IndexChunk]) -> String {
    let mut text = String::new();
    let mut end = 0u64;
    for c in chunks {
        let skip = end.saturating_sub(c.char_start) as usize;
        let rest: String = c.text.chars().skip(skip).collect();
        if !rest.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&rest);
        }
        end = end.max(c.char_start + c.text.chars().count() as u64);
        if text.len() >= MAX_TEXT_CHARS * 4 {
            break;
        }
    }
    text
}

#[async_trait]
impl SearchIndex for PgIndex {
    async fn upsert_document(
        &self,
        tenant: TenantId,
        document: DocumentId,
        chunks: Vec<IndexChunk>,
    ) -> Result<()> {
        let dim = self.dimension.unwrap_or(0);
        let mut flat: Vec<f32> = Vec::new();
        let mut slots: Vec<i32> = Vec::with_capacity(chunks.len());
        for c in &chunks {
            match &c.vector {
                Some(v) => {
                    self.check_dimension(v.len(), &format!("the vector of chunk {}", c.id))?;
                    slots.push((flat.len() / dim.max(1)) as i32);
                    flat.extend_from_slice(v);
                }
                None => slots.push(-1),
            }
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Two writers of one document take turns, so neither finds the other's rows.
        lock_key(&mut tx, &format!("docent_index:{tenant}:{document}")).await?;
        Self::delete_rows(&mut tx, tenant, document).await?;
        if let Some(first) = chunks.first() {
            sqlx::query(
                "WITH added AS (
                     INSERT INTO docent_index_chunks
                         (tenant_id, document_id, ordinal, collection_id, language, words, tsv,
                          embedding, created_at, metadata, metadata_num)
                     SELECT $1::uuid, $2::uuid, s.ordinal, s.collection_id::uuid, s.language,
                            (SELECT coalesce(sum(cardinality(e.positions)), 0)
                             FROM unnest(s.tsv) e),
                            s.tsv,
                            CASE WHEN s.slot >= 0
                                 THEN (($9::real[])[s.slot * $10 + 1 : (s.slot + 1) * $10])::vector
                            END,
                            s.created_at, s.metadata, s.metadata_num
                     FROM (
                         SELECT u.ordinal, u.collection_id, u.language, u.slot, u.created_at,
                                u.metadata, u.metadata_num,
                                setweight(to_tsvector(u.language::regconfig, u.title), 'A')
                                || setweight(to_tsvector(u.language::regconfig, u.heading), 'B')
                                || to_tsvector(u.language::regconfig, u.body) AS tsv
                         FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[],
                                     $7::text[], $8::text[], $11::int[], $12::timestamptz[],
                                     $13::jsonb[], $14::jsonb[])
                              AS u(ordinal, collection_id, language, title, heading, body, slot,
                                   created_at, metadata, metadata_num)
                     ) s
                     RETURNING collection_id, language, words
                 )
                 INSERT INTO docent_index_collections AS s
                     (tenant_id, collection_id, language, chunks, chunk_words, documents,
                      document_words)
                 SELECT $1::uuid, collection_id, min(language), count(*), sum(words), 0, 0
                 FROM added GROUP BY collection_id
                 ON CONFLICT (tenant_id, collection_id) DO UPDATE SET
                     language = EXCLUDED.language,
                     chunks = s.chunks + EXCLUDED.chunks,
                     chunk_words = s.chunk_words + EXCLUDED.chunk_words",
            )
            .bind(tenant.to_string())
            .bind(document.to_string())
            .bind(
                chunks
                    .iter()
                    .map(|c| i64::from(c.id.ordinal))
                    .collect::<Vec<_>>(),
            )
            .bind(ids(&chunks
                .iter()
                .map(|c| c.collection_id)
                .collect::<Vec<_>>()))
            .bind(
                chunks
                    .iter()
                    .map(|c| ts_config(c.language).to_owned())
                    .collect::<Vec<_>>(),
            )
            .bind(chunks.iter().map(|c| pg_text(&c.title)).collect::<Vec<_>>())
            .bind(
                chunks
                    .iter()
                    .map(|c| pg_text(&c.heading_path.join(" / ")))
                    .collect::<Vec<_>>(),
            )
            .bind(chunks.iter().map(|c| pg_text(&c.text)).collect::<Vec<_>>())
            .bind(flat)
            .bind(dim as i32)
            .bind(slots)
            .bind(chunks.iter().map(|c| c.created_at).collect::<Vec<_>>())
            .bind(
                chunks
                    .iter()
                    .map(|c| pg_json(&serde_json::Value::Object(c.metadata.clone())))
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunks
                    .iter()
                    .map(|c| numeric_metadata(&c.metadata))
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "WITH added AS (
                     INSERT INTO docent_index_documents
                         (tenant_id, document_id, collection_id, language, words, tsv,
                          created_at)
                     SELECT $1::uuid, $2::uuid, $3::uuid, $4,
                            (SELECT coalesce(sum(cardinality(e.positions)), 0)
                             FROM unnest(s.tsv) e),
                            s.tsv, $7
                     FROM (SELECT setweight(to_tsvector($4::regconfig, $5), 'A')
                                  || to_tsvector($4::regconfig, $6) AS tsv) s
                     RETURNING collection_id, language, words
                 )
                 INSERT INTO docent_index_collections AS s
                     (tenant_id, collection_id, language, chunks, chunk_words, documents,
                      document_words)
                 SELECT $1::uuid, collection_id, language, 0, 0, 1, words FROM added
                 ON CONFLICT (tenant_id, collection_id) DO UPDATE SET
                     documents = s.documents + 1,
                     document_words = s.document_words + EXCLUDED.document_words",
            )
            .bind(tenant.to_string())
            .bind(document.to_string())
            .bind(first.collection_id.to_string())
            .bind(ts_config(first.language))
            .bind(pg_text(&first.title))
            .bind(pg_text(&document_text(&chunks)))
            .bind(first.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn delete_document(&self, tenant: TenantId, document: DocumentId) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_key(&mut tx, &format!("docent_index:{tenant}:{document}")).await?;
        Self::delete_rows(&mut tx, tenant, document).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_collection(&self, tenant: TenantId, collection: CollectionId) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for sql in [
            "DELETE FROM docent_index_chunks WHERE tenant_id = $1::uuid AND collection_id = $2::uuid",
            "DELETE FROM docent_index_documents WHERE tenant_id = $1::uuid AND collection_id = $2::uuid",
            "DELETE FROM docent_index_collections WHERE tenant_id = $1::uuid AND collection_id = $2::uuid",
        ] {
            sqlx::query(sql)
                .bind(tenant.to_string())
                .bind(collection.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn keyword(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        self.bm25(tenant, filter, query, limit, false)
            .await?
            .iter()
            .map(|row| {
                Ok(ScoredChunk {
                    id: chunk_id(row)?,
                    score: row.try_get("score").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn keyword_documents(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredDocument>> {
        self.bm25(tenant, filter, query, limit, true)
            .await?
            .iter()
            .map(|row| {
                Ok(ScoredDocument {
                    id: document_id(row)?,
                    score: row.try_get("score").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn vector(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        self.check_dimension(query.len(), "the query vector")?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A graph walk yields at most ef_search rows, filtered afterwards: named documents
        // are few (an exact scan of them is cheap), and a short walk is redone exactly.
        let ef = u32::try_from(limit.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(self.ef_search, MAX_EF_SEARCH);
        if self.hnsw && filter.documents.is_empty() && limit <= ef as usize {
            let hits = self.nearest(tenant, filter, query, limit, Some(ef)).await?;
            if hits.len() >= limit {
                return Ok(hits);
            }
        }
        self.nearest(tenant, filter, query, limit, None).await
    }

    fn filters_metadata(&self) -> bool {
        true
    }

    async fn clear(&self) -> Result<()> {
        sqlx::query(
            "TRUNCATE docent_index_chunks, docent_index_documents, docent_index_collections",
        )
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// Maps a database error: connection trouble, statement timeouts, serialization failures and
/// deadlocks are `service_unavailable` (retryable), anything else internal.
fn db_err(e: sqlx::Error) -> Error {
    // query_canceled (statement_timeout), serialization_failure, deadlock_detected,
    // admin/crash shutdown, cannot_connect_now
    const TRANSIENT: [&str; 6] = ["57014", "40001", "40P01", "57P01", "57P02", "57P03"];
    let transient = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| TRANSIENT.contains(&&*c)),
        _ => false,
    };
    if transient {
        Error::unavailable("the index database", e)
    } else {
        Error::internal(e)
    }
}

/// Serializes the transaction with every other one taking the same key, until it ends.
async fn lock_key(conn: &mut sqlx::PgConnection, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, text: &str) -> IndexChunk {
        IndexChunk {
            id: ChunkId {
                document: DocumentId::new(),
                ordinal: 0,
            },
            collection_id: CollectionId::new(),
            text: text.into(),
            char_start: start,
            heading_path: vec![],
            title: "t".into(),
            language: TextLanguage::English,
            vector: None,
            metadata: Default::default(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_document_is_its_chunks_without_the_overlaps() {
        let chunks = [chunk(0, "abcdef"), chunk(4, "efghij"), chunk(10, "klm")];
        assert_eq!(document_text(&chunks), "abcdef\nghij\nklm");
    }

    #[test]
    fn cut_offs_round_up_to_microseconds_and_json_loses_its_nuls() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 1_500).unwrap();
        assert_eq!(ceil_micros(t).timestamp_subsec_nanos(), 2_000);
        let whole = chrono::DateTime::from_timestamp(1_700_000_000, 3_000).unwrap();
        assert_eq!(ceil_micros(whole), whole);
        assert_eq!(
            pg_json(&serde_json::json!({"a\u{0}b": ["x\u{0}", 1]})),
            serde_json::json!({"ab": ["x", 1]})
        );
    }

    #[test]
    fn queries_are_words_only() {
        assert_eq!(clean_query("a&b | 'c' !d:*"), "a b    c   d  ");
        assert_eq!(pg_text("a\0b"), "ab");
    }

    #[test]
    fn every_language_has_a_configuration() {
        for l in TextLanguage::ALL {
            assert!(!ts_config(*l).is_empty());
        }
        assert_eq!(ts_config(TextLanguage::default()), "english");
    }
}
