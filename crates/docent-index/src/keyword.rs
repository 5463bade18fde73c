//! BM25 keyword index over chunks, with tantivy.
//!
//! One index holds every tenant, collection and language. Each language a collection can be
//! analysed in ([`TextLanguage`]) has its own text, heading and title fields with that language's
//! analyzer (stemmer and stop words); a chunk fills the fields of its collection's language, and
//! a query is parsed against the fields of the languages the index holds.
//!
//! Besides one entry per chunk, every document has one whole-text entry (its text once, from
//! its overlapping chunks, and its title, in `doc_*` fields with their own BM25 statistics) so
//! documents can be ranked by BM25 over all of their text rather than by their best passage.
//!
//! BM25's collection statistics are those of the kind of entry searched ([`EntryStatistics`]):
//! tantivy's own count every entry of the index as a document, so a chunk query would see
//! `N` and the average field length diluted by the document entries, and a document query by
//! the (more numerous) chunk entries — which overweights common words and penalises long
//! texts several times too hard. Each entry is marked with its kind (`entry` = `chunk` or
//! `document`) and a query is scored with `N` = the number of entries of its kind.
//!
//! They are also the searching tenant's own: `N`, the average length and each term's document
//! frequency count only that tenant's entries, so one workspace's words never move another's
//! scores (which would tell it whether, and how often, a word occurs elsewhere).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk, ScoredDocument};
use docent_domain::{ChunkId, CollectionId, DocumentId, Error, Result, TenantId, TextLanguage};
use tantivy::collector::TopDocs;
use tantivy::index::{SegmentId, SegmentReader};
use tantivy::postings::SegmentPostings;
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    TokenStream,
};
use tantivy::{
    DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TERMINATED, TantivyDocument,
    Term, doc,
};

/// Boost of the title (file name) field relative to the text.
pub const TITLE_BOOST: f32 = 1.5;
/// Boost of a chunk's heading path. Small: headings are also in the text (a heading starts
/// the chunk under it), and on SciFact larger boosts cost BM25 nDCG@10 at chunk level (1.5:
/// 0.611, 0.5: 0.652, 0: 0.660); it is kept so a passage deep in a section still matches its
/// section's title.
pub const HEADING_BOOST: f32 = 0.25;

/// The text fields of one language: a chunk entry's, and (with their own BM25 statistics) a
/// whole-document entry's. A document's headings are in its text already, so its entry has no
/// heading field.
#[derive(Clone, Copy)]
struct LangFields {
    text: Field,
    heading: Field,
    title: Field,
    doc_text: Field,
    doc_title: Field,
}

impl LangFields {
    /// The fields a query searches, with their boosts: a chunk entry's, or a document entry's.
    fn query_fields(&self, documents: bool) -> Vec<(Field, f32)> {
        if documents {
            vec![(self.doc_text, 1.0), (self.doc_title, TITLE_BOOST)]
        } else {
            vec![
                (self.text, 1.0),
                (self.heading, HEADING_BOOST),
                (self.title, TITLE_BOOST),
            ]
        }
    }
}

/// Value of the `entry` field of a chunk entry.
const CHUNK_ENTRY: &str = "chunk";
/// Value of the `entry` field of a whole-document entry.
const DOCUMENT_ENTRY: &str = "document";

/// BM25 statistics of one tenant over the entries of one kind: `N` is the number of the
/// tenant's chunk entries (or whole-document entries), the average length and each term's
/// document frequency are those of the tenant's entries, so no tenant's words show in
/// another's scores. Like tantivy's own, the counts include deleted entries not yet merged
/// away (as the token totals do).
///
/// A segment holding only the tenant's entries (every segment of a one-tenant index) answers
/// from its own exact counts, as tantivy's statistics would. In a segment shared with other
/// tenants a term's frequency is the size of the intersection of its postings with the
/// tenant's (the same walk the query itself makes, skipping through both lists), and the
/// entry counts and token totals, which would need a walk of the tenant's whole postings,
/// are counted once per segment and kept in a [`StatsCache`] (segments never change; deletes
/// only mark). Token totals there are sums of field norms: exact up to 40 tokens per field,
/// rounded down beyond (tantivy's length encoding), never depending on other tenants.
struct EntryStatistics<'a> {
    searcher: &'a Searcher,
    tenant: TenantId,
    tenant_term: Term,
    /// Per segment, in the searcher's order.
    share: Vec<Share>,
    entries: u64,
    cache: &'a StatsCache,
}

/// A tenant's share of a segment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Share {
    /// No entry of the segment is the tenant's: it adds nothing.
    None,
    /// Every entry is the tenant's: the segment's own statistics are the tenant's.
    Whole,
    /// Some entries are.
    Part,
}

/// A per-segment statistic of one tenant.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Stat {
    /// Entries of a kind (`true`: whole-document entries).
    Entries(bool),
    /// Tokens in a field.
    Tokens(Field),
}

/// Statistics of tenants in segments shared with other tenants (see [`EntryStatistics`]),
/// dropped with their segment.
#[derive(Default)]
struct StatsCache {
    inner: Mutex<StatsCacheInner>,
}

#[derive(Default)]
struct StatsCacheInner {
    /// The segments the values belong to; a searcher with others prunes the rest.
    segments: Vec<SegmentId>,
    values: HashMap<(SegmentId, TenantId, Stat), u64>,
}

/// Most cached values; past it the cache starts again (each value is one postings walk).
const STATS_CACHE_VALUES: usize = 200_000;

impl StatsCache {
    fn get_or(
        &self,
        key: (SegmentId, TenantId, Stat),
        compute: impl FnOnce() -> tantivy::Result<u64>,
    ) -> tantivy::Result<u64> {
        if let Some(v) = self.lock().values.get(&key) {
            return Ok(*v);
        }
        let v = compute()?;
        let mut inner = self.lock();
        if inner.values.len() >= STATS_CACHE_VALUES {
            inner.values.clear();
        }
        inner.values.insert(key, v);
        Ok(v)
    }

    /// Forgets the values of segments the searcher no longer has (merged away).
    fn prune(&self, searcher: &Searcher) {
        let current: Vec<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect();
        let mut inner = self.lock();
        if inner.segments != current {
            inner.values.retain(|(s, _, _), _| current.contains(s));
            inner.segments = current;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsCacheInner> {
        // The values are plain counts: a panic elsewhere cannot leave them half-written.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The number of entries in both postings lists, walking the shorter and seeking in the other.
fn count_both(a: Option<SegmentPostings>, b: Option<SegmentPostings>) -> u64 {
    let (Some(mut a), Some(mut b)) = (a, b) else {
        return 0;
    };
    if b.doc_freq() < a.doc_freq() {
        std::mem::swap(&mut a, &mut b);
    }
    let mut n = 0;
    let mut doc = a.doc();
    while doc != TERMINATED {
        // `seek` may only move forward: `b` can already stand past `doc` (its first entry, or
        // the one found by the last seek).
        let other = if b.doc() >= doc { b.doc() } else { b.seek(doc) };
        if other == doc {
            n += 1;
            doc = a.advance();
        } else if other == TERMINATED {
            break;
        } else {
            doc = a.seek(other);
        }
    }
    n
}

impl<'a> EntryStatistics<'a> {
    fn new(
        searcher: &'a Searcher,
        fields: &Fields,
        tenant: TenantId,
        documents: bool,
        cache: &'a StatsCache,
    ) -> tantivy::Result<Self> {
        cache.prune(searcher);
        let kind = Term::from_field_text(
            fields.entry,
            if documents {
                DOCUMENT_ENTRY
            } else {
                CHUNK_ENTRY
            },
        );
        let tenant_term = Term::from_field_text(fields.tenant, &tenant.to_string());
        let mut share = Vec::with_capacity(searcher.segment_readers().len());
        let mut entries = 0;
        for reader in searcher.segment_readers() {
            let own = reader
                .inverted_index(fields.tenant)?
                .doc_freq(&tenant_term)?;
            let part = match own {
                0 => Share::None,
                n if n == reader.max_doc() => Share::Whole,
                _ => Share::Part,
            };
            share.push(part);
            entries += match part {
                Share::None => 0,
                Share::Whole => u64::from(reader.inverted_index(fields.entry)?.doc_freq(&kind)?),
                Share::Part => cache.get_or(
                    (reader.segment_id(), tenant, Stat::Entries(documents)),
                    || {
                        Ok(count_both(
                            reader
                                .inverted_index(fields.tenant)?
                                .read_postings(&tenant_term, IndexRecordOption::Basic)?,
                            reader
                                .inverted_index(fields.entry)?
                                .read_postings(&kind, IndexRecordOption::Basic)?,
                        ))
                    },
                )?,
            };
        }
        Ok(Self {
            searcher,
            tenant,
            tenant_term,
            share,
            entries,
            cache,
        })
    }

    /// The tenant's postings in a segment.
    fn tenant_postings(&self, reader: &SegmentReader) -> tantivy::Result<Option<SegmentPostings>> {
        Ok(reader
            .inverted_index(self.tenant_term.field())?
            .read_postings(&self.tenant_term, IndexRecordOption::Basic)?)
    }
}

impl Bm25StatisticsProvider for EntryStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let mut total = 0;
        for (reader, share) in self.searcher.segment_readers().iter().zip(&self.share) {
            total += match share {
                Share::None => 0,
                Share::Whole => reader.inverted_index(field)?.total_num_tokens(),
                Share::Part => {
                    let key = (reader.segment_id(), self.tenant, Stat::Tokens(field));
                    self.cache.get_or(key, || {
                        let Some(mut postings) = self.tenant_postings(reader)? else {
                            return Ok(0);
                        };
                        let norms = reader.get_fieldnorms_reader(field)?;
                        let mut sum = 0u64;
                        let mut doc = postings.doc();
                        while doc != TERMINATED {
                            sum += u64::from(norms.fieldnorm(doc));
                            doc = postings.advance();
                        }
                        Ok(sum)
                    })?
                }
            };
        }
        Ok(total)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.entries.max(1))
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut total = 0;
        for (reader, share) in self.searcher.segment_readers().iter().zip(&self.share) {
            total += match share {
                Share::None => 0,
                Share::Whole => u64::from(reader.inverted_index(term.field())?.doc_freq(term)?),
                Share::Part => count_both(
                    reader
                        .inverted_index(term.field())?
                        .read_postings(term, IndexRecordOption::Basic)?,
                    self.tenant_postings(reader)?,
                ),
            };
        }
        Ok(total)
    }
}

#[derive(Clone)]
struct Fields {
    chunk_id: Field,
    /// `chunk` or `document`: which kind of entry (see [`EntryStatistics`]).
    entry: Field,
    tenant: Field,
    tenant_collection: Field,
    tenant_document: Field,
    /// Indexed like [`TextLanguage::ALL`].
    langs: Vec<LangFields>,
}

impl Fields {
    fn of(&self, language: TextLanguage) -> LangFields {
        let i = TextLanguage::ALL
            .iter()
            .position(|l| *l == language)
            .expect("every language has fields");
        self.langs[i]
    }
}

/// The index. Cheap to clone; writes are serialised.
#[derive(Clone)]
pub struct KeywordIndex {
    index: Index,
    reader: IndexReader,
    /// Opened on first write, so read-only users (CLI searches next to a running server) never
    /// take the index's single-writer lock.
    writer: Arc<Mutex<Option<IndexWriter>>>,
    fields: Fields,
    /// Languages with indexed text: queries are parsed for these only.
    used: Arc<RwLock<Vec<TextLanguage>>>,
    /// Whether [`open`](Self::open) found an index of an older layout and started a new one,
    /// which then needs filling from the database (`docent reindex`).
    recreated: bool,
    /// Per-tenant BM25 statistics of segments shared by several tenants.
    stats: Arc<StatsCache>,
}

fn idx_err(e: tantivy::TantivyError) -> Error {
    Error::internal(e)
}

/// The tantivy stemmer language of a collection language (`None`: no stemming).
fn stemmer_language(l: TextLanguage) -> Option<Language> {
    use TextLanguage as T;
    Some(match l {
        T::Arabic => Language::Arabic,
        T::Danish => Language::Danish,
        T::German => Language::German,
        T::Greek => Language::Greek,
        T::English => Language::English,
        T::Spanish => Language::Spanish,
        T::Finnish => Language::Finnish,
        T::French => Language::French,
        T::Hungarian => Language::Hungarian,
        T::Italian => Language::Italian,
        T::Dutch => Language::Dutch,
        T::Norwegian => Language::Norwegian,
        T::Portuguese => Language::Portuguese,
        T::Romanian => Language::Romanian,
        T::Russian => Language::Russian,
        T::Swedish => Language::Swedish,
        T::Tamil => Language::Tamil,
        T::Turkish => Language::Turkish,
        T::Unspecified => return None,
    })
}

fn analyzer_name(l: TextLanguage) -> String {
    format!("docent_{}", l.as_str())
}

fn analyzer(l: TextLanguage) -> TextAnalyzer {
    let base = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    let Some(lang) = stemmer_language(l) else {
        return base.build();
    };
    let with_stop = match StopWordFilter::new(lang) {
        Some(stop) => base.filter_dynamic(stop),
        None => base,
    };
    with_stop.filter_dynamic(Stemmer::new(lang)).build()
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let chunk_id = b.add_text_field("chunk_id", STRING | STORED);
    let entry = b.add_text_field("entry", STRING);
    let tenant = b.add_text_field("tenant", STRING);
    let tenant_collection = b.add_text_field("tenant_collection", STRING);
    let tenant_document = b.add_text_field("tenant_document", STRING);
    let langs = TextLanguage::ALL
        .iter()
        .map(|l| {
            let opts = TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(&analyzer_name(*l))
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            );
            // English keeps the unsuffixed names of the first index layout.
            let suffix = match l {
                TextLanguage::English => String::new(),
                other => format!("_{}", other.as_str()),
            };
            LangFields {
                text: b.add_text_field(&format!("text{suffix}"), opts.clone()),
                heading: b.add_text_field(&format!("heading{suffix}"), opts.clone()),
                title: b.add_text_field(&format!("title{suffix}"), opts.clone()),
                doc_text: b.add_text_field(&format!("doc_text{suffix}"), opts.clone()),
                doc_title: b.add_text_field(&format!("doc_title{suffix}"), opts),
            }
        })
        .collect();
    (
        b.build(),
        Fields {
            chunk_id,
            entry,
            tenant,
            tenant_collection,
            tenant_document,
            langs,
        },
    )
}

impl KeywordIndex {
    /// Opens or creates the index in `dir`. An index written with an older schema is moved
    /// aside and a new one started; [`recreated`](Self::recreated) then says so.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::unavailable("the keyword index directory", e))?;
        let (schema, fields) = schema();
        let mut recreated = false;
        let index = {
            let directory =
                tantivy::directory::MmapDirectory::open(dir).map_err(Error::internal)?;
            match Index::open_or_create(directory, schema.clone()) {
                Ok(index) => index,
                Err(tantivy::TantivyError::SchemaError(msg)) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        %msg,
                        "the keyword index has an older layout: starting a new one, refilled from the database"
                    );
                    std::fs::remove_dir_all(dir)
                        .and_then(|()| std::fs::create_dir_all(dir))
                        .map_err(|e| Error::unavailable("the keyword index directory", e))?;
                    recreated = true;
                    let directory =
                        tantivy::directory::MmapDirectory::open(dir).map_err(Error::internal)?;
                    Index::open_or_create(directory, schema).map_err(idx_err)?
                }
                Err(e) => return Err(idx_err(e)),
            }
        };
        for l in TextLanguage::ALL {
            index
                .tokenizers()
                .register(&analyzer_name(*l), analyzer(*l));
        }
        // Commits by other processes become visible on their own; ours are reloaded at once.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(idx_err)?;
        let searcher = reader.searcher();
        let used = TextLanguage::ALL
            .iter()
            .copied()
            .filter(|l| {
                let f = fields.of(*l).text;
                searcher.segment_readers().iter().any(|r| {
                    r.inverted_index(f)
                        .is_ok_and(|ii| ii.terms().num_terms() > 0)
                })
            })
            .collect();
        Ok(Self {
            index,
            reader,
            writer: Arc::new(Mutex::new(None)),
            fields,
            used: Arc::new(RwLock::new(used)),
            recreated,
            stats: Arc::new(StatsCache::default()),
        })
    }

    /// Whether opening replaced an index of an older layout with an empty one.
    pub fn recreated(&self) -> bool {
        self.recreated
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
        self.upsert_documents(&[(tenant, document, chunks)])
    }

    /// Replaces several documents' chunks in one commit (so in one segment).
    fn upsert_documents(&self, documents: &[(TenantId, DocumentId, &[IndexChunk])]) -> Result<()> {
        let f = &self.fields;
        self.write(|w| {
            for (tenant, document, chunks) in documents {
                let (tenant, document) = (*tenant, *document);
                Self::add_document(w, f, tenant, document, chunks)?;
            }
            Ok(())
        })?;
        let mut used = self
            .used
            .write()
            .map_err(|_| Error::internal("keyword index languages poisoned"))?;
        for c in documents.iter().flat_map(|d| d.2.iter()) {
            if !used.contains(&c.language) {
                used.push(c.language);
            }
        }
        Ok(())
    }

    /// Adds a document's entries (its chunks and its whole text) in place of its old ones.
    fn add_document(
        w: &mut IndexWriter,
        f: &Fields,
        tenant: TenantId,
        document: DocumentId,
        chunks: &[IndexChunk],
    ) -> Result<()> {
        w.delete_term(Self::term(f.tenant_document, tenant, document));
        for c in chunks {
            let lf = f.of(c.language);
            w.add_document(doc!(
                f.chunk_id => c.id.to_string(),
                f.entry => CHUNK_ENTRY,
                f.tenant => tenant.to_string(),
                f.tenant_collection => format!("{tenant}/{}", c.collection_id),
                f.tenant_document => format!("{tenant}/{document}"),
                lf.text => c.text.as_str(),
                lf.heading => c.heading_path.join(" / "),
                lf.title => c.title.as_str(),
            ))
            .map_err(idx_err)?;
        }
        if let Some(first) = chunks.first() {
            let lf = f.of(first.language);
            // The document's text once: chunks overlap, so each contributes what follows
            // the previous one's end.
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
            }
            w.add_document(doc!(
                f.chunk_id => ChunkId { document, ordinal: 0 }.to_string(),
                f.entry => DOCUMENT_ENTRY,
                f.tenant => tenant.to_string(),
                f.tenant_collection => format!("{tenant}/{}", first.collection_id),
                f.tenant_document => format!("{tenant}/{document}"),
                lf.doc_text => text,
                lf.doc_title => first.title.as_str(),
            ))
            .map_err(idx_err)?;
        }
        Ok(())
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

    /// Indexed entries (chunks, plus one whole-text entry per document).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// BM25 search over chunks within the tenant and filter.
    pub fn search(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        self.run(tenant, filter, query, limit, false)
    }

    /// BM25 search over whole documents within the tenant and filter.
    pub fn search_documents(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredDocument>> {
        Ok(self
            .run(tenant, filter, query, limit, true)?
            .into_iter()
            .map(|h| ScoredDocument {
                id: h.id.document,
                score: h.score,
            })
            .collect())
    }

    /// Runs a query over chunk entries or, with `documents`, over whole-document entries.
    fn run(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        limit: usize,
        documents: bool,
    ) -> Result<Vec<ScoredChunk>> {
        let Some(query) = self.query(tenant, filter, query, documents)? else {
            return Ok(Vec::new());
        };
        let f = &self.fields;
        let searcher = self.reader.searcher();
        let statistics =
            EntryStatistics::new(&searcher, f, tenant, documents, &self.stats).map_err(idx_err)?;
        let top = searcher
            .search_with_statistics_provider(
                &query,
                &TopDocs::with_limit(limit.max(1)).order_by_score(),
                &statistics,
            )
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

    /// The query over chunk entries or, with `documents`, over whole-document entries, within
    /// the tenant and filter; `None` when it has no words to search.
    fn query(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &str,
        documents: bool,
    ) -> Result<Option<BooleanQuery>> {
        let f = &self.fields;
        let languages = self
            .used
            .read()
            .map_err(|_| Error::internal("keyword index languages poisoned"))?
            .clone();
        let lang_fields: Vec<LangFields> = languages.iter().map(|l| f.of(*l)).collect();
        // Free text, not a query language: every word is a term, whatever its spelling
        // (`AND`, `-x`, `field:y` are words too). Each word is analysed by each searched
        // field's analyzer and becomes a disjunction of its (boosted) terms in those fields;
        // the query is the disjunction of its words — what a query parser builds for an OR
        // query, without parsing a grammar on every search.
        let mut fields = Vec::new();
        for lf in &lang_fields {
            for (field, boost) in lf.query_fields(documents) {
                let analyzer = self.index.tokenizer_for_field(field).map_err(idx_err)?;
                fields.push((field, boost, analyzer));
            }
        }
        let mut words: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let mut terms: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost, analyzer) in &mut fields {
                let mut stream = analyzer.token_stream(word);
                while let Some(token) = stream.next() {
                    let term: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(*field, &token.text),
                        IndexRecordOption::WithFreqs,
                    ));
                    let term = if *boost == 1.0 {
                        term
                    } else {
                        Box::new(BoostQuery::new(term, *boost))
                    };
                    terms.push((Occur::Should, term));
                }
            }
            if !terms.is_empty() {
                words.push((Occur::Should, Box::new(BooleanQuery::new(terms))));
            }
        }
        if words.is_empty() {
            return Ok(None);
        }
        let user_query: Box<dyn Query> = Box::new(BooleanQuery::new(words));
        // Filters match without scoring: only the query's words weigh in BM25.
        let filter_clause = |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, user_query),
            filter_clause(Box::new(TermQuery::new(
                Term::from_field_text(f.tenant, &tenant.to_string()),
                IndexRecordOption::Basic,
            ))),
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
            clauses.push(filter_clause(any_of(f.tenant_collection, values)));
        }
        if !filter.documents.is_empty() {
            let values = filter
                .documents
                .iter()
                .map(|d| format!("{tenant}/{d}"))
                .collect();
            clauses.push(filter_clause(any_of(f.tenant_document, values)));
        }
        Ok(Some(BooleanQuery::new(clauses)))
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
            char_start: u64::from(ordinal) * 1000,
            heading_path: vec![],
            title: "t".into(),
            language: TextLanguage::English,
            vector: None,
            metadata: Default::default(),
            created_at: Default::default(),
        }
    }

    /// Each language's analysis is the contract suite's (`docent_testkit::search_index_contract`,
    /// run on `EmbeddedIndex` by `tests/search_index.rs`); here, that the languages in use are
    /// found again when the index is opened anew.
    #[test]
    fn languages_in_use_are_found_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let idx = KeywordIndex::open(dir.path()).unwrap();
        let t = TenantId::new();
        let (de, d) = (CollectionId::new(), DocumentId::new());
        let mut german = chunk(d, de, 0, "Die Häuser der Stadt und die Katzen");
        german.language = TextLanguage::German;
        idx.upsert_document(t, d, &[german]).unwrap();
        drop(idx);
        let reopened = KeywordIndex::open(dir.path()).unwrap();
        assert!(!reopened.recreated());
        let hits = reopened
            .search(t, &IndexFilter::default(), "Haus", 10)
            .unwrap();
        assert_eq!(
            hits.iter().map(|h| h.id.document).collect::<Vec<_>>(),
            vec![d],
            "German stemming after a restart: Häuser ~ Haus"
        );
    }

    /// Whole-document scores depend on the documents alone, not on how many chunk entries
    /// they were split into (and chunk scores not on the document entries): each kind of entry
    /// has its own BM25 statistics.
    #[test]
    fn bm25_statistics_are_those_of_the_kind_of_entry_searched() {
        let texts = [
            "solar panels convert sunlight into electricity on the roof of the house",
            "wind turbines and solar farms feed the national grid",
            "the kitchen closes at six",
            "electricity prices rose sharply this winter across the country",
        ];
        let t = TenantId::new();
        let c = CollectionId::new();
        let docs: Vec<DocumentId> = texts.iter().map(|_| DocumentId::new()).collect();
        // The same documents, once as one chunk each and once split into one chunk per word.
        let scores = |split: bool| {
            let dir = tempfile::tempdir().unwrap();
            let idx = KeywordIndex::open(dir.path()).unwrap();
            for (d, text) in docs.iter().zip(texts) {
                let chunks: Vec<IndexChunk> = if split {
                    let mut start = 0;
                    text.split(' ')
                        .enumerate()
                        .map(|(i, w)| {
                            let mut ch = chunk(*d, c, i as u32, w);
                            ch.char_start = start;
                            start += w.len() as u64 + 1;
                            ch
                        })
                        .collect()
                } else {
                    vec![IndexChunk {
                        char_start: 0,
                        ..chunk(*d, c, 0, text)
                    }]
                };
                idx.upsert_document(t, *d, &chunks).unwrap();
            }
            let docs = idx
                .search_documents(t, &IndexFilter::default(), "solar electricity", 10)
                .unwrap();
            let chunks = idx
                .search(t, &IndexFilter::default(), "solar electricity", 100)
                .unwrap();
            (docs, chunks.len())
        };
        let (whole, n_whole) = scores(false);
        let (split, n_split) = scores(true);
        assert_eq!(whole.len(), 3);
        assert!(n_split > n_whole);
        // (Equal scores may come in either order.)
        for a in &whole {
            let b = split.iter().find(|b| b.id == a.id).expect("same documents");
            assert!(
                (a.score - b.score).abs() < 1e-4,
                "document scores must not depend on the chunking: {whole:?} vs {split:?}"
            );
        }
    }

    /// Issue 21 M1: a tenant's scores never depend on other tenants' entries — neither in
    /// segments of their own (separate commits) nor in segments shared with them (one commit,
    /// or a merge) — so scores cannot tell whether a word occurs in another workspace.
    #[test]
    fn bm25_statistics_are_the_tenants_own() {
        let (a, b) = (TenantId::new(), TenantId::new());
        let (ca, cb) = (CollectionId::new(), CollectionId::new());
        let a_docs: Vec<(DocumentId, &str)> = vec![
            (DocumentId::new(), "the zymurgy notes of the brewery cellar"),
            (DocumentId::new(), "invoices for the cellar and the roof"),
            (
                DocumentId::new(),
                "minutes of the annual meeting held in spring",
            ),
        ];
        let b_docs: Vec<(DocumentId, String)> = (0..20)
            .map(|i| {
                (
                    DocumentId::new(),
                    format!("zymurgy zymurgy handbook part {i} with many more words of text"),
                )
            })
            .collect();
        let a_chunks: Vec<Vec<IndexChunk>> = a_docs
            .iter()
            .map(|(d, t)| {
                vec![IndexChunk {
                    char_start: 0,
                    ..chunk(*d, ca, 0, t)
                }]
            })
            .collect();
        let b_chunks: Vec<Vec<IndexChunk>> = b_docs
            .iter()
            .map(|(d, t)| {
                vec![IndexChunk {
                    char_start: 0,
                    ..chunk(*d, cb, 0, t)
                }]
            })
            .collect();
        let scores = |idx: &KeywordIndex| {
            let chunks = idx
                .search(a, &IndexFilter::default(), "zymurgy cellar", 10)
                .unwrap();
            let docs = idx
                .search_documents(a, &IndexFilter::default(), "zymurgy cellar", 10)
                .unwrap();
            assert!(
                chunks
                    .iter()
                    .all(|h| a_docs.iter().any(|d| d.0 == h.id.document))
            );
            (
                chunks.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
                docs.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
            )
        };

        // Tenant A alone.
        let dir = tempfile::tempdir().unwrap();
        let idx = KeywordIndex::open(dir.path()).unwrap();
        for ((d, _), c) in a_docs.iter().zip(&a_chunks) {
            idx.upsert_document(a, *d, c).unwrap();
        }
        let alone = scores(&idx);
        assert_eq!(alone.0.len(), 2);
        // Tenant B then adds 20 documents full of A's rare word, one commit each.
        for ((d, _), c) in b_docs.iter().zip(&b_chunks) {
            idx.upsert_document(b, *d, c).unwrap();
        }
        assert_eq!(scores(&idx), alone, "B's own segments moved A's scores");
        // And B's documents deleted again: still the same.
        for (d, _) in &b_docs {
            idx.delete_document(b, *d).unwrap();
        }
        assert_eq!(scores(&idx), alone);

        // Both tenants' entries in one segment.
        let dir = tempfile::tempdir().unwrap();
        let shared = KeywordIndex::open(dir.path()).unwrap();
        let mut all: Vec<(TenantId, DocumentId, &[IndexChunk])> = b_docs
            .iter()
            .zip(&b_chunks)
            .map(|((d, _), c)| (b, *d, c.as_slice()))
            .collect();
        all.extend(
            a_docs
                .iter()
                .zip(&a_chunks)
                .map(|((d, _), c)| (a, *d, c.as_slice())),
        );
        shared.upsert_documents(&all).unwrap();
        assert_eq!(shared.reader.searcher().segment_readers().len(), 1);
        assert_eq!(scores(&shared), alone, "a shared segment moved A's scores");
        // B sees its own statistics there too: its word is common for it.
        let b_hits = shared
            .search(b, &IndexFilter::default(), "zymurgy", 30)
            .unwrap();
        assert_eq!(b_hits.len(), 20);

        // A's entries first in a shared segment, its first entry without the word: counting the
        // word's entries among A's starts with the word's postings past A's first entry.
        let dir = tempfile::tempdir().unwrap();
        let first = KeywordIndex::open(dir.path()).unwrap();
        let order = [1, 0, 2];
        let mut all: Vec<(TenantId, DocumentId, &[IndexChunk])> = order
            .iter()
            .map(|&i| (a, a_docs[i].0, a_chunks[i].as_slice()))
            .collect();
        all.extend(
            b_docs
                .iter()
                .zip(&b_chunks)
                .map(|((d, _), c)| (b, *d, c.as_slice())),
        );
        first.upsert_documents(&all).unwrap();
        assert_eq!(first.reader.searcher().segment_readers().len(), 1);
        assert_eq!(
            scores(&first),
            alone,
            "a shared segment, A first, moved A's scores"
        );
    }

    /// The statistics before issue 21 (index-wide, every tenant's entries of the kind), for the
    /// comparison below.
    struct IndexWideStatistics<'a> {
        searcher: &'a Searcher,
        entries: u64,
    }

    impl Bm25StatisticsProvider for IndexWideStatistics<'_> {
        fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
            self.searcher.total_num_tokens(field)
        }
        fn total_num_docs(&self) -> tantivy::Result<u64> {
            Ok(self.entries.max(1))
        }
        fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
            self.searcher.doc_freq(term)
        }
    }

    /// Per-tenant statistics against the index-wide ones on SciFact: scores are identical in a
    /// one-tenant index, and query latency with two tenants. Run with
    /// `DOCENT_BENCH_SCIFACT=../shared/datasets/scifact cargo test -p docent-index --release
    /// --lib -- --ignored tenant_statistics_cost --nocapture`.
    #[test]
    #[ignore = "a benchmark: needs SciFact"]
    fn tenant_statistics_cost() {
        let Ok(data) = std::env::var("DOCENT_BENCH_SCIFACT") else {
            eprintln!("skipped: DOCENT_BENCH_SCIFACT not set");
            return;
        };
        let data = std::path::Path::new(&data);
        let read = |name: &str| -> Vec<serde_json::Value> {
            std::fs::read_to_string(data.join(name))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let corpus: Vec<(String, String)> = read("corpus.jsonl")
            .iter()
            .map(|d| {
                (
                    d["title"].as_str().unwrap_or_default().to_owned(),
                    d["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let queries: Vec<String> = read("queries.jsonl")
            .iter()
            .map(|q| q["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        let (a, b) = (TenantId::new(), TenantId::new());
        let docs = |t: TenantId| -> Vec<(TenantId, DocumentId, Vec<IndexChunk>)> {
            let c = CollectionId::new();
            corpus
                .iter()
                .map(|(title, text)| {
                    let d = DocumentId::new();
                    let mut ch = chunk(d, c, 0, text);
                    ch.char_start = 0;
                    ch.title = title.clone();
                    (t, d, vec![ch])
                })
                .collect()
        };
        let (docs_a, docs_b) = (docs(a), docs(b));
        for (setup, batches) in [
            ("one tenant", vec![docs_a.clone()]),
            (
                "two tenants, own segments",
                vec![docs_a.clone(), docs_b.clone()],
            ),
            (
                "two tenants, shared segments",
                vec![docs_a.iter().chain(&docs_b).cloned().collect()],
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let idx = KeywordIndex::open(dir.path()).unwrap();
            for batch in &batches {
                for part in batch.chunks(1000) {
                    let part: Vec<(TenantId, DocumentId, &[IndexChunk])> = part
                        .iter()
                        .map(|(t, d, c)| (*t, *d, c.as_slice()))
                        .collect();
                    idx.upsert_documents(&part).unwrap();
                }
            }
            let searcher = idx.reader.searcher();
            let f = &idx.fields;
            let built: Vec<BooleanQuery> = queries
                .iter()
                .filter_map(|q| idx.query(a, &IndexFilter::default(), q, false).unwrap())
                .collect();
            let collector = TopDocs::with_limit(100).order_by_score();
            let time = |wide: bool| -> (Vec<Vec<f32>>, Vec<f64>) {
                let mut scores = Vec::new();
                let mut ms = Vec::new();
                for q in &built {
                    let t0 = std::time::Instant::now();
                    let top = if wide {
                        let stats = IndexWideStatistics {
                            searcher: &searcher,
                            entries: searcher
                                .doc_freq(&Term::from_field_text(f.entry, CHUNK_ENTRY))
                                .unwrap(),
                        };
                        searcher.search_with_statistics_provider(q, &collector, &stats)
                    } else {
                        let stats =
                            EntryStatistics::new(&searcher, f, a, false, &idx.stats).unwrap();
                        searcher.search_with_statistics_provider(q, &collector, &stats)
                    }
                    .unwrap();
                    ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                    scores.push(top.iter().map(|(s, _)| *s).collect());
                }
                ms.sort_by(f64::total_cmp);
                (scores, ms)
            };
            // A warm-up of each, then the measured rounds.
            let (wide_scores, _) = time(true);
            let (own_scores, _) = time(false);
            if setup == "one tenant" {
                assert_eq!(
                    own_scores, wide_scores,
                    "one tenant: the statistics of before"
                );
            }
            let pct = |ms: &[f64], p: f64| ms[((ms.len() - 1) as f64 * p) as usize];
            for wide in [true, false] {
                let mut all = Vec::new();
                for _ in 0..3 {
                    all.extend(time(wide).1);
                }
                all.sort_by(f64::total_cmp);
                eprintln!(
                    "{setup:<30} {:<12} queries {:>5}  mean {:.3} ms  p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms",
                    if wide { "index-wide" } else { "per tenant" },
                    all.len(),
                    all.iter().sum::<f64>() / all.len() as f64,
                    pct(&all, 0.5),
                    pct(&all, 0.95),
                    pct(&all, 0.99),
                );
            }
        }
    }

    /// Queries are free text: operator words and syntax characters are words like any other.
    #[test]
    fn query_syntax_is_just_words() {
        let dir = tempfile::tempdir().unwrap();
        let idx = KeywordIndex::open(dir.path()).unwrap();
        let (t, c) = (TenantId::new(), CollectionId::new());
        let (cats, dogs) = (DocumentId::new(), DocumentId::new());
        idx.upsert_document(t, cats, &[chunk(cats, c, 0, "cats purr")])
            .unwrap();
        idx.upsert_document(t, dogs, &[chunk(dogs, c, 0, "dogs bark")])
            .unwrap();
        let found = |q: &str| -> Vec<DocumentId> {
            let mut d: Vec<DocumentId> = idx
                .search(t, &IndexFilter::default(), q, 10)
                .unwrap()
                .iter()
                .map(|h| h.id.document)
                .collect();
            d.sort();
            d
        };
        let mut both = vec![cats, dogs];
        both.sort();
        assert_eq!(found("cats NOT dogs"), both, "NOT is a (stop) word");
        assert_eq!(found("+cats -dogs"), both);
        assert_eq!(found("text:cats \"dogs\"~2 dog*"), both);
        assert!(found("the AND or").is_empty(), "only stop words");
        assert!(found("*:* [a TO z]").is_empty());
    }

    #[test]
    fn an_index_of_an_older_layout_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = Schema::builder();
            b.add_text_field("chunk_id", STRING | STORED);
            let old = Index::create_in_dir(dir.path(), b.build()).unwrap();
            let mut w: IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
            w.commit().unwrap();
        }
        let idx = KeywordIndex::open(dir.path()).unwrap();
        assert!(idx.recreated());
        assert!(idx.is_empty());
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
        // Whole documents: d1's two chunks together match both words, so it leads; the other
        // tenant's document never shows.
        let docs = idx
            .search_documents(t1, &IndexFilter::default(), "cat dogs", 10)
            .unwrap();
        assert_eq!(docs.iter().map(|d| d.id).collect::<Vec<_>>(), vec![d1, d2]);
        let by_chunk = idx
            .search(t1, &IndexFilter::default(), "cat dogs", 10)
            .unwrap();
        assert_eq!(
            by_chunk.len(),
            3,
            "chunk search never returns document entries"
        );
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
        let after = idx
            .search_documents(t1, &IndexFilter::default(), "cat dogs", 10)
            .unwrap();
        assert_eq!(
            after.len(),
            1,
            "a deleted document's whole-text entry goes too"
        );
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
