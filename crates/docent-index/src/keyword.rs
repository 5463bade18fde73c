//! BM25 keyword index over chunks, with tantivy.

use std::path::Path;
use std::sync::{Arc, Mutex};

use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk};
use docent_domain::{ChunkId, CollectionId, DocumentId, Error, Result, TenantId};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    TokenStream,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

const ANALYZER: &str = "docent_en";
/// Boost of the heading path and title fields relative to the text.
pub const FIELD_BOOST: f32 = 1.5;

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    tenant: Field,
    tenant_collection: Field,
    tenant_document: Field,
    text: Field,
    heading: Field,
    title: Field,
}

/// The tantivy index. Cheap to clone; writes are serialised.
#[derive(Clone)]
pub struct KeywordIndex {
    index: Index,
    reader: IndexReader,
    /// Opened on first write, so read-only users (CLI searches next to a running server) never
    /// take the index's single-writer lock.
    writer: Arc<Mutex<Option<IndexWriter>>>,
    fields: Fields,
}

fn idx_err(e: tantivy::TantivyError) -> Error {
    Error::internal(e)
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        chunk_id: b.add_text_field("chunk_id", STRING | STORED),
        tenant: b.add_text_field("tenant", STRING),
        tenant_collection: b.add_text_field("tenant_collection", STRING),
        tenant_document: b.add_text_field("tenant_document", STRING),
        text: b.add_text_field("text", text_opts.clone()),
        heading: b.add_text_field("heading", text_opts.clone()),
        title: b.add_text_field("title", text_opts),
    };
    (b.build(), fields)
}

impl KeywordIndex {
    /// Opens or creates the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::unavailable("the keyword index directory", e))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir).map_err(Error::internal)?;
        let index = Index::open_or_create(directory, schema).map_err(idx_err)?;
        let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(
                StopWordFilter::new(Language::English).expect("English stop words are built in"),
            )
            .filter(Stemmer::new(Language::English))
            .build();
        index.tokenizers().register(ANALYZER, analyzer);
        // Commits by other processes become visible on their own; ours are reloaded at once.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(idx_err)?;
        Ok(Self {
            index,
            reader,
            writer: Arc::new(Mutex::new(None)),
            fields,
        })
    }

    /// Runs `f` with the writer (opened on first use), then commits and reloads.
    fn write(&self, f: impl FnOnce(&mut IndexWriter) -> Result<()>) -> Result<()> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| Error::internal("keyword index writer poisoned"))?;
        if guard.is_none() {
            let w = self
                .index
                .writer_with_num_threads(1, 64 * 1024 * 1024)
                .map_err(|e| match e {
                    tantivy::TantivyError::LockFailure(..) => Error::new(
                        docent_domain::Code::Unavailable,
                        "another docent process is writing to this data directory's index; \
                     stop it, or send the work through it with --url",
                    )
                    .with_source(e),
                    other => idx_err(other),
                })?;
            *guard = Some(w);
        }
        let w = guard.as_mut().expect("writer opened above");
        f(w)?;
        w.commit().map_err(idx_err)?;
        self.reader.reload().map_err(idx_err)
    }

    fn term(field: Field, a: impl std::fmt::Display, b: impl std::fmt::Display) -> Term {
        Term::from_field_text(field, &format!("{a}/{b}"))
    }

    /// Replaces a document's chunks and commits.
    pub fn upsert_document(
        &self,
        tenant: TenantId,
        document: DocumentId,
        chunks: &[IndexChunk],
    ) -> Result<()> {
        let f = self.fields;
        self.write(|w| {
            w.delete_term(Self::term(f.tenant_document, tenant, document));
            for c in chunks {
                w.add_document(doc!(
                    f.chunk_id => c.id.to_string(),
                    f.tenant => tenant.to_string(),
                    f.tenant_collection => format!("{tenant}/{}", c.collection_id),
                    f.tenant_document => format!("{tenant}/{document}"),
                    f.text => c.text.as_str(),
                    f.heading => c.heading_path.join(" / "),
                    f.title => c.title.as_str(),
                ))
                .map_err(idx_err)?;
            }
            Ok(())
        })
    }

    /// Removes a document's chunks and commits.
    pub fn delete_document(&self, tenant: TenantId, document: DocumentId) -> Result<()> {
        self.write(|w| {
            w.delete_term(Self::term(self.fields.tenant_document, tenant, document));
            Ok(())
        })
    }

    /// Removes a collection's chunks and commits.
    pub fn delete_collection(&self, tenant: TenantId, collection: CollectionId) -> Result<()> {
        self.write(|w| {
            w.delete_term(Self::term(
                self.fields.tenant_collection,
                tenant,
                collection,
            ));
            Ok(())
        })
    }

    /// Removes everything.
    pub fn clear(&self) -> Result<()> {
        self.write(|w| w.delete_all_documents().map(|_| ()).map_err(idx_err))
    }

    /// Indexed chunks.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the analyzer keeps any term of `text` (stop words and punctuation alone keep none).
    fn has_terms(&self, text: &str) -> bool {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.fields.text) else {
            return true;
        };
        let mut stream = analyzer.token_stream(text);
        stream.advance()
    }

    /// BM25 search within the tenant and filter.
    pub fn search(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        let f = self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.text, f.heading, f.title]);
        parser.set_field_boost(f.heading, FIELD_BOOST);
        parser.set_field_boost(f.title, FIELD_BOOST);
        // Free text, not a query language: strip the parser's syntax characters.
        let cleaned: String = query
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c.is_whitespace() {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        if !self.has_terms(&cleaned) {
            return Ok(Vec::new());
        }
        let (user_query, _errors) = parser.parse_query_lenient(&cleaned);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, user_query),
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.tenant, &tenant.to_string()),
                    IndexRecordOption::Basic,
                )),
            ),
        ];
        let any_of = |field: Field, values: Vec<String>| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                values
                    .into_iter()
                    .map(|v| {
                        (
                            Occur::Should,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, &v),
                                IndexRecordOption::Basic,
                            )) as Box<dyn Query>,
                        )
                    })
                    .collect(),
            ))
        };
        if !filter.collections.is_empty() {
            let values = filter
                .collections
                .iter()
                .map(|c| format!("{tenant}/{c}"))
                .collect();
            clauses.push((Occur::Must, any_of(f.tenant_collection, values)));
        }
        if !filter.documents.is_empty() {
            let values = filter
                .documents
                .iter()
                .map(|d| format!("{tenant}/{d}"))
                .collect();
            clauses.push((Occur::Must, any_of(f.tenant_document, values)));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())
            .map_err(idx_err)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(idx_err)?;
            let Some(id) = doc
                .get_first(f.chunk_id)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<ChunkId>().ok())
            else {
                continue;
            };
            out.push(ScoredChunk { id, score });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(doc: DocumentId, coll: CollectionId, ordinal: u32, text: &str) -> IndexChunk {
        IndexChunk {
            id: ChunkId {
                document: doc,
                ordinal,
            },
            collection_id: coll,
            text: text.into(),
            heading_path: vec![],
            title: "t".into(),
            vector: None,
        }
    }

    #[test]
    fn stemming_filters_tenancy_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let idx = KeywordIndex::open(dir.path()).unwrap();
        let (t1, t2) = (TenantId::new(), TenantId::new());
        let (c1, c2) = (CollectionId::new(), CollectionId::new());
        let (d1, d2, d3) = (DocumentId::new(), DocumentId::new(), DocumentId::new());
        idx.upsert_document(
            t1,
            d1,
            &[
                chunk(d1, c1, 0, "The cats are running quickly"),
                chunk(d1, c1, 1, "dogs bark"),
            ],
        )
        .unwrap();
        idx.upsert_document(t1, d2, &[chunk(d2, c2, 0, "a cat ran")])
            .unwrap();
        idx.upsert_document(t2, d3, &[chunk(d3, c1, 0, "cat cat cat")])
            .unwrap();

        let all = idx
            .search(t1, &IndexFilter::default(), "cat runs", 10)
            .unwrap();
        assert_eq!(
            all.len(),
            2,
            "stemming matches cats/running; other tenant excluded"
        );
        assert!(all.iter().all(|h| h.id.document != d3));
        let only_c2 = idx
            .search(
                t1,
                &IndexFilter {
                    collections: vec![c2],
                    ..Default::default()
                },
                "cat",
                10,
            )
            .unwrap();
        assert_eq!(only_c2.len(), 1);
        assert_eq!(only_c2[0].id.document, d2);
        assert!(
            idx.search(t1, &IndexFilter::default(), "the are", 10)
                .unwrap()
                .is_empty(),
            "stop words alone match nothing"
        );
        assert!(
            idx.search(t1, &IndexFilter::default(), "title:(x) AND \"", 10)
                .is_ok(),
            "query syntax never errors"
        );

        idx.delete_document(t1, d1).unwrap();
        let after = idx
            .search(t1, &IndexFilter::default(), "cat dogs", 10)
            .unwrap();
        assert_eq!(after.len(), 1);
        // Upsert replaces, never duplicates.
        idx.upsert_document(t1, d2, &[chunk(d2, c2, 0, "a cat ran")])
            .unwrap();
        assert_eq!(
            idx.search(t1, &IndexFilter::default(), "cat", 10)
                .unwrap()
                .len(),
            1
        );
        idx.delete_collection(t1, c2).unwrap();
        assert!(
            idx.search(t1, &IndexFilter::default(), "cat", 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            idx.search(t2, &IndexFilter::default(), "cat", 10)
                .unwrap()
                .len(),
            1
        );
        drop(idx);
        let reopened = KeywordIndex::open(dir.path()).unwrap();
        assert_eq!(
            reopened
                .search(t2, &IndexFilter::default(), "cat", 10)
                .unwrap()
                .len(),
            1,
            "survives restart"
        );
    }
}
