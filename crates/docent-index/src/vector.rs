//! Nearest-neighbour search over L2-normalised vectors, by namespace.
//!
//! A namespace is one (tenant, collection): a flat `Vec<f32>` of rows plus their chunk ids.
//! Thousands of collections cost one small allocation each. Small namespaces are scanned in
//! full: a first pass over the rows quantised to i8 (a quarter of the memory traffic, which is
//! what bounds the scan) keeps a shortlist several times the requested size, which is rescored
//! with the f32 rows; both loops are compiled for the CPU's widest instruction set through
//! `pulp`'s run-time dispatch.
//!
//! A namespace with at least `ann_threshold` vectors also gets an HNSW graph (hnsw_rs), built on
//! a background thread over a snapshot of its rows. Until the first graph is ready the exact scan
//! answers. Afterwards a query asks the graph for the rows of the snapshot and scans exactly the
//! rows added since (the *delta*, a suffix: every row carries an increasing sequence number);
//! rows deleted since the snapshot are tombstoned in the graph and filtered out during the graph
//! walk, so deletes are honoured at once. When the delta or the tombstones grow past a fraction
//! of the graph, a new graph is built in the background and swapped in.
//!
//! Document-filtered queries (a few documents) always scan exactly: cheap and exact.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use docent_domain::ports::{IndexChunk, IndexFilter, ScoredChunk};
use docent_domain::{ChunkId, CollectionId, DocumentId, TenantId};
use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;

/// Rebuild the graph when rows added since it was built exceed this fraction of it.
const DELTA_FRACTION: f64 = 0.2;
/// Rebuild the graph when rows deleted since it was built exceed this fraction of it.
const DEAD_FRACTION: f64 = 0.2;

/// Cosine distance of unit vectors, `1 − a·b`, clamped at 0 (rounding can make a vector's dot
/// product with itself exceed 1; hnsw_rs's own `DistDot` asserts on that).
struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// An HNSW graph over a snapshot of a namespace.
struct Ann {
    graph: Hnsw<'static, f32, CosineDistance>,
    /// Chunk of each graph data id.
    ids: Vec<ChunkId>,
    /// Sequence number of each graph data id's row.
    seqs: Vec<u64>,
    /// Graph data ids of each document.
    by_doc: HashMap<DocumentId, Vec<usize>>,
    /// Rows with a sequence number below this were in the snapshot.
    upto: u64,
}

#[derive(Default)]
struct Namespace {
    dim: usize,
    ids: Vec<ChunkId>,
    /// Increasing sequence number of each row.
    seqs: Vec<u64>,
    rows: Vec<f32>,
    /// The rows quantised to i8 (a quarter of the bytes for the scan's first pass) and each
    /// row's scale (`x ≈ q / scale`).
    quant: Vec<i8>,
    scales: Vec<f32>,
    ann: Option<Arc<Ann>>,
    /// Graph data ids whose rows have been deleted since the graph was built.
    dead: HashSet<usize>,
    /// A build is running for this namespace.
    building: bool,
    /// A build failed: no more are tried (until restart).
    graph_failed: bool,
}

impl Namespace {
    fn remove_document(&mut self, document: DocumentId) {
        if let Some(ann) = &self.ann
            && let Some(ids) = ann.by_doc.get(&document)
        {
            self.dead.extend(ids.iter().copied());
        }
        if !self.ids.iter().any(|id| id.document == document) {
            return;
        }
        let dim = self.dim;
        let mut ids = Vec::with_capacity(self.ids.len());
        let mut seqs = Vec::with_capacity(self.seqs.len());
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut quant = Vec::with_capacity(self.quant.len());
        let mut scales = Vec::with_capacity(self.scales.len());
        for (i, id) in self.ids.iter().enumerate() {
            if id.document != document {
                ids.push(*id);
                seqs.push(self.seqs[i]);
                rows.extend_from_slice(&self.rows[i * dim..(i + 1) * dim]);
                quant.extend_from_slice(&self.quant[i * dim..(i + 1) * dim]);
                scales.push(self.scales[i]);
            }
        }
        self.ids = ids;
        self.seqs = seqs;
        self.rows = rows;
        self.quant = quant;
        self.scales = scales;
    }

    /// Index of the first row not in the graph (all rows without one).
    fn delta_start(&self) -> usize {
        match &self.ann {
            Some(ann) => self.seqs.partition_point(|s| *s < ann.upto),
            None => 0,
        }
    }

    /// Whether a (new) graph should be built now.
    fn wants_build(&self, threshold: usize) -> bool {
        if threshold == 0 || self.building || self.graph_failed || self.ids.len() < threshold {
            return false;
        }
        match &self.ann {
            None => true,
            Some(ann) => {
                let base = ann.ids.len().max(1) as f64;
                let delta = (self.ids.len() - self.delta_start()) as f64;
                delta > base * DELTA_FRACTION || self.dead.len() as f64 > base * DEAD_FRACTION
            }
        }
    }

    /// Scores rows `from..` into `heap`: a first pass over the i8 rows keeps the best
    /// `shortlist(limit)` candidates, which are then scored exactly with the f32 rows, so the
    /// result is the exact top `limit` unless the quantisation error (about 1% of a score)
    /// pushes a true hit out of a shortlist several times larger than `limit`.
    fn scan(
        &self,
        from: usize,
        docs: &HashSet<DocumentId>,
        query: &[f32],
        limit: usize,
        heap: &mut BinaryHeap<Candidate>,
    ) {
        // Compiled once per instruction set (AVX-512, AVX2, ...) and picked at run time, so the
        // first pass uses the widest vectors the CPU has. `with_simd` and the dot products must
        // be inlined for that (a closure is not, measurably).
        struct FirstPass<'a> {
            ns: &'a Namespace,
            from: usize,
            docs: &'a HashSet<DocumentId>,
            query: &'a [i8],
            keep: usize,
            out: &'a mut BinaryHeap<Ranked<usize>>,
        }
        impl pulp::WithSimd for FirstPass<'_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) {
                let dim = self.ns.dim;
                for (i, id) in self.ns.ids.iter().enumerate().skip(self.from) {
                    if !self.docs.is_empty() && !self.docs.contains(&id.document) {
                        continue;
                    }
                    let raw = dot_i8(self.query, &self.ns.quant[i * dim..(i + 1) * dim]);
                    let score = raw as f32 / self.ns.scales[i];
                    push(self.out, self.keep, Ranked(score, i));
                }
            }
        }
        if self.ids.len() <= from {
            return;
        }
        // The query's scale is a common factor of every first-pass score: the order needs no
        // division by it.
        let mut q = Vec::with_capacity(query.len());
        quantise(query, &mut q);
        let mut shortlist = BinaryHeap::new();
        if !vnni::first_pass(self, from, docs, &q, shortlist_len(limit), &mut shortlist) {
            pulp::Arch::new().dispatch(FirstPass {
                ns: self,
                from,
                docs,
                query: &q,
                keep: shortlist_len(limit),
                out: &mut shortlist,
            });
        }
        for Ranked(_, i) in shortlist {
            let score = dot(query, &self.rows[i * self.dim..(i + 1) * self.dim]);
            push(heap, limit, Ranked(score, self.ids[i]));
        }
    }
}

/// The first pass with AVX512-VNNI (`vpdpbusd`: 64 byte products summed into 16 i32 lanes per
/// instruction, four times the work of widening multiplies). The instruction multiplies
/// unsigned by signed bytes, so each row byte is flipped to `r + 128` on load and
/// `128 · Σ q` is taken off the sum once: the result equals the i8 dot product exactly.
mod vnni {
    #![allow(unsafe_code)]

    use std::collections::{BinaryHeap, HashSet};

    use docent_domain::DocumentId;

    use super::{Namespace, Ranked, push};

    /// Runs the first pass if the CPU has AVX512-VNNI and rows are whole 64-byte blocks;
    /// returns whether it did.
    pub(super) fn first_pass(
        ns: &Namespace,
        from: usize,
        docs: &HashSet<DocumentId>,
        query: &[i8],
        keep: usize,
        out: &mut BinaryHeap<Ranked<usize>>,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let dim = ns.dim;
            if dim == 0
                || !dim.is_multiple_of(64)
                || query.len() != dim
                || ns.quant.len() != ns.ids.len() * dim
                || !std::arch::is_x86_feature_detected!("avx512f")
                || !std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return false;
            }
            // Every score into a flat list, then one selection of the best `keep`: cheaper
            // than keeping a heap up to date row by row.
            let mut scored: Vec<(f32, u32)> = Vec::with_capacity(ns.ids.len().saturating_sub(from));
            // SAFETY: the CPU has AVX512F and AVX512-VNNI, the query holds `dim` bytes and
            // every row of `quant` too, `dim` a multiple of 64 (all checked above).
            unsafe { score_rows(ns, from, docs, query, &mut scored) };
            if scored.len() > keep && keep > 0 {
                scored.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
                scored.truncate(keep);
            }
            for (score, i) in scored {
                push(out, keep, Ranked(score, i as usize));
            }
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (ns, from, docs, query, keep, out);
            false
        }
    }

    /// The first-pass score of every row from `from` on (of `docs` only, unless empty) onto
    /// `out`. One function compiled for AVX512-VNNI as a whole, so [`dot`] is inlined into the
    /// loop rather than called once per row.
    ///
    /// # Safety
    /// AVX512F and AVX512-VNNI; `query.len() == ns.dim`, a multiple of 64, and
    /// `ns.quant.len() == ns.ids.len() * ns.dim`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn score_rows(
        ns: &Namespace,
        from: usize,
        docs: &HashSet<DocumentId>,
        query: &[i8],
        out: &mut Vec<(f32, u32)>,
    ) {
        let dim = ns.dim;
        let bias = 128 * query.iter().map(|&x| i32::from(x)).sum::<i32>();
        let rows = ns.quant.chunks_exact(dim).zip(&ns.scales).zip(&ns.ids);
        for (i, ((row, scale), id)) in rows.enumerate().skip(from) {
            if !docs.is_empty() && !docs.contains(&id.document) {
                continue;
            }
            // SAFETY: the caller's contract: the features, and rows of `dim` bytes like the
            // query, a multiple of 64.
            let raw = unsafe { dot(query, row) } - bias;
            out.push((raw as f32 / scale, i as u32));
        }
    }

    /// `Σ (row + 128) · query` over 64-byte blocks.
    ///
    /// # Safety
    /// AVX512F and AVX512-VNNI; `query.len() == row.len()`, a multiple of 64.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vnni")]
    #[inline]
    unsafe fn dot(query: &[i8], row: &[i8]) -> i32 {
        use std::arch::x86_64::*;
        let flip = _mm512_set1_epi8(i8::MIN);
        let mut acc = _mm512_setzero_si512();
        for (q, r) in query.chunks_exact(64).zip(row.chunks_exact(64)) {
            // SAFETY: both chunks are 64 bytes (the caller's contract).
            let (q, r) = unsafe {
                (
                    _mm512_loadu_si512(q.as_ptr().cast()),
                    _mm512_loadu_si512(r.as_ptr().cast()),
                )
            };
            acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(r, flip), q);
        }
        _mm512_reduce_add_epi32(acc)
    }

    #[cfg(all(test, target_arch = "x86_64"))]
    mod tests {
        #[test]
        fn matches_the_portable_dot_product() {
            if !std::arch::is_x86_feature_detected!("avx512vnni") {
                eprintln!("skipped: no AVX512-VNNI");
                return;
            }
            let q: Vec<i8> = (0..384).map(|i: i32| (i * 37 % 255 - 127) as i8).collect();
            let r: Vec<i8> = (0..384).map(|i: i32| (i * 91 % 255 - 127) as i8).collect();
            let bias = 128 * q.iter().map(|&x| i32::from(x)).sum::<i32>();
            // SAFETY: checked above; both are 384 bytes.
            let got = unsafe { super::dot(&q, &r) } - bias;
            assert_eq!(got, super::super::dot_i8(&q, &r));
            let extremes = vec![-127i8; 384];
            // SAFETY: as above.
            let got = unsafe { super::dot(&extremes, &extremes) } - 128 * (-127 * 384);
            assert_eq!(got, 127 * 127 * 384);
        }
    }
}

/// How many first-pass candidates are scored exactly for a request of `limit`.
fn shortlist_len(limit: usize) -> usize {
    limit * 4 + 32
}

/// Quantises `v` to i8 onto `out` (symmetric, per row) and returns the scale (`x ≈ q / scale`).
fn quantise(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { 127.0 / max } else { 1.0 };
    out.extend(
        v.iter()
            .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// i8 dot product accumulated in i32 lanes (vectorises to widening multiply-adds).
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 64];
    let (ca, cb) = (a.chunks_exact(64), b.chunks_exact(64));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..64 {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let tail: i32 = ra
        .iter()
        .zip(rb)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    acc.iter().sum::<i32>() + tail
}

/// In-memory vector index: exact scan, plus HNSW graphs for large namespaces.
pub struct VectorIndex {
    spaces: Arc<Spaces>,
    seq: AtomicU64,
    ann_threshold: usize,
}

impl Default for VectorIndex {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Dot product in 64 independent lanes: with AVX-512 that is four vector accumulators, so the
/// additions pipeline instead of waiting on one register (inlined into callers compiled for
/// wider instruction sets).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 64];
    let (ca, cb) = (a.chunks_exact(64), b.chunks_exact(64));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..64 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// A score and what it belongs to (a chunk, or a row index in the first pass), ordered so a
/// `BinaryHeap` keeps the worst of the current top-k on top.
#[derive(PartialEq)]
struct Ranked<T>(f32, T);
impl<T: Ord> Eq for Ranked<T> {}
impl<T: Ord> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

type Candidate = Ranked<ChunkId>;

/// Offers `c` to a top-`limit` heap.
#[inline(always)]
fn push<T: Ord>(heap: &mut BinaryHeap<Ranked<T>>, limit: usize, c: Ranked<T>) {
    if heap.len() < limit {
        heap.push(c);
    } else if heap.peek().is_some_and(|w| c.0 > w.0) {
        heap.pop();
        heap.push(c);
    }
}

/// A copy of a namespace's rows to build a graph from.
struct Snapshot {
    dim: usize,
    ids: Vec<ChunkId>,
    seqs: Vec<u64>,
    rows: Vec<f32>,
}

impl Snapshot {
    fn of(ns: &Namespace) -> Self {
        Self {
            dim: ns.dim,
            ids: ns.ids.clone(),
            seqs: ns.seqs.clone(),
            rows: ns.rows.clone(),
        }
    }
}

type Spaces = RwLock<HashMap<(TenantId, CollectionId), Namespace>>;

/// Builds graphs for a namespace until one is current: rows may change during a build, and
/// enough change asks for another.
fn build_loop(
    spaces: &Spaces,
    key: (TenantId, CollectionId),
    threshold: usize,
    mut snapshot: Snapshot,
) {
    loop {
        let started = std::time::Instant::now();
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            build_graph(snapshot.dim, &snapshot.rows)
        }));
        let Ok(graph) = built else {
            tracing::error!(
                "building a vector graph panicked; this collection stays on the exact scan"
            );
            if let Some(ns) = spaces.write().expect("vector index lock").get_mut(&key) {
                ns.building = false;
                ns.graph_failed = true;
            }
            return;
        };
        let mut by_doc: HashMap<DocumentId, Vec<usize>> = HashMap::new();
        for (i, id) in snapshot.ids.iter().enumerate() {
            by_doc.entry(id.document).or_default().push(i);
        }
        // Sequence numbers grow, so every row of this namespace added later is above the last.
        let upto = snapshot.seqs.last().map_or(0, |s| s + 1);
        let ann = Ann {
            graph,
            ids: snapshot.ids,
            seqs: snapshot.seqs,
            by_doc,
            upto,
        };
        let mut guard = spaces.write().expect("vector index lock");
        // The collection may have been deleted meanwhile: then the graph is dropped.
        let Some(ns) = guard.get_mut(&key) else {
            return;
        };
        if ns.ids.len() < threshold {
            // Shrunk below the threshold during the build: the exact scan answers.
            ns.ann = None;
            ns.dead.clear();
            ns.building = false;
            return;
        }
        // Rows deleted while the graph was built are tombstoned now.
        let live: HashSet<u64> = ns.seqs.iter().copied().filter(|s| *s < upto).collect();
        ns.dead = ann
            .seqs
            .iter()
            .enumerate()
            .filter(|(_, s)| !live.contains(s))
            .map(|(i, _)| i)
            .collect();
        tracing::info!(
            vectors = ann.ids.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vector graph built"
        );
        ns.ann = Some(Arc::new(ann));
        ns.building = false;
        if !ns.wants_build(threshold) {
            return;
        }
        ns.building = true;
        snapshot = Snapshot::of(ns);
    }
}

/// Builds a graph over `rows` (data id = row index).
fn build_graph(dim: usize, rows: &[f32]) -> Hnsw<'static, f32, CosineDistance> {
    let n = rows.len() / dim.max(1);
    let mut graph = Hnsw::<f32, CosineDistance>::new(16, n.max(1), 16, 200, CosineDistance);
    let data: Vec<(&[f32], usize)> = rows.chunks_exact(dim).zip(0..).collect();
    graph.parallel_insert_slice(&data);
    graph.set_searching_mode(true);
    graph
}

impl VectorIndex {
    /// An index that builds an HNSW graph for namespaces of at least `ann_threshold` vectors
    /// (0: never).
    pub fn new(ann_threshold: usize) -> Self {
        Self {
            spaces: Arc::default(),
            seq: AtomicU64::new(0),
            ann_threshold,
        }
    }

    /// Adds vectors loaded from the store (`(collection, chunk, vector)`), at start or rebuild.
    pub fn load(
        &self,
        tenant: TenantId,
        rows: impl IntoIterator<Item = (CollectionId, ChunkId, Vec<f32>)>,
    ) {
        let mut touched = HashSet::new();
        {
            let mut spaces = self.spaces.write().expect("vector index lock");
            for (collection, id, v) in rows {
                let ns = spaces.entry((tenant, collection)).or_default();
                if ns.dim == 0 {
                    ns.dim = v.len();
                }
                if v.len() == ns.dim {
                    ns.ids.push(id);
                    ns.seqs.push(self.seq.fetch_add(1, Ordering::Relaxed));
                    ns.scales.push(quantise(&v, &mut ns.quant));
                    ns.rows.extend_from_slice(&v);
                    touched.insert(collection);
                }
            }
        }
        for c in touched {
            self.maybe_build(tenant, c);
        }
    }

    /// Starts a background graph build for the namespace if it wants one, or drops its graph
    /// when it has shrunk below the threshold.
    fn maybe_build(&self, tenant: TenantId, collection: CollectionId) {
        let key = (tenant, collection);
        let snapshot = {
            let mut spaces = self.spaces.write().expect("vector index lock");
            let Some(ns) = spaces.get_mut(&key) else {
                return;
            };
            if ns.ids.len() < self.ann_threshold && ns.ann.is_some() && !ns.building {
                ns.ann = None;
                ns.dead.clear();
            }
            if !ns.wants_build(self.ann_threshold) {
                return;
            }
            ns.building = true;
            Snapshot::of(ns)
        };
        let spaces = self.spaces.clone();
        let threshold = self.ann_threshold;
        let spawned = std::thread::Builder::new()
            .name("docent-hnsw".into())
            .spawn(move || build_loop(&spaces, key, threshold, snapshot));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a vector graph build; exact scan continues");
            if let Some(ns) = self
                .spaces
                .write()
                .expect("vector index lock")
                .get_mut(&key)
            {
                ns.building = false;
            }
        }
    }

    /// Replaces a document's vectors.
    pub fn upsert_document(&self, tenant: TenantId, document: DocumentId, chunks: &[IndexChunk]) {
        self.delete_document(tenant, document);
        self.load(
            tenant,
            chunks
                .iter()
                .filter_map(|c| c.vector.clone().map(|v| (c.collection_id, c.id, v))),
        );
    }

    /// Removes a document's vectors.
    pub fn delete_document(&self, tenant: TenantId, document: DocumentId) {
        let mut touched = Vec::new();
        {
            let mut spaces = self.spaces.write().expect("vector index lock");
            for ((t, c), ns) in spaces.iter_mut() {
                if *t == tenant {
                    ns.remove_document(document);
                    touched.push(*c);
                }
            }
        }
        for c in touched {
            self.maybe_build(tenant, c);
        }
    }

    /// Removes a collection's vectors.
    pub fn delete_collection(&self, tenant: TenantId, collection: CollectionId) {
        self.spaces
            .write()
            .expect("vector index lock")
            .remove(&(tenant, collection));
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.spaces.write().expect("vector index lock").clear();
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.spaces
            .read()
            .expect("vector index lock")
            .values()
            .map(|n| n.ids.len())
            .sum()
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a collection's vector queries are answered by a graph (for tests and benches).
    pub fn has_graph(&self, tenant: TenantId, collection: CollectionId) -> bool {
        self.spaces
            .read()
            .expect("vector index lock")
            .get(&(tenant, collection))
            .is_some_and(|ns| ns.ann.is_some())
    }

    /// Whether a graph build is running for the collection.
    pub fn is_building(&self, tenant: TenantId, collection: CollectionId) -> bool {
        self.spaces
            .read()
            .expect("vector index lock")
            .get(&(tenant, collection))
            .is_some_and(|ns| ns.building)
    }

    /// The `limit` most similar chunks within the tenant and filter.
    pub fn search(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
    ) -> Vec<ScoredChunk> {
        self.search_with(tenant, filter, query, limit, true)
    }

    /// [`search`](Self::search) with the graphs optionally ignored (exact scan everywhere).
    pub fn search_with(
        &self,
        tenant: TenantId,
        filter: &IndexFilter,
        query: &[f32],
        limit: usize,
        use_graphs: bool,
    ) -> Vec<ScoredChunk> {
        let spaces = self.spaces.read().expect("vector index lock");
        let docs: HashSet<DocumentId> = filter.documents.iter().copied().collect();
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(limit + 1);
        for ((t, c), ns) in spaces.iter() {
            if *t != tenant
                || ns.dim != query.len()
                || (!filter.collections.is_empty() && !filter.collections.contains(c))
            {
                continue;
            }
            match &ns.ann {
                Some(ann) if use_graphs && docs.is_empty() => {
                    let dead = &ns.dead;
                    let alive = |id: &usize| !dead.contains(id);
                    let ef = (limit * 2).max(64);
                    for n in ann.graph.search_filter(query, limit, ef, Some(&alive)) {
                        // The distance is 1 − cosine.
                        push(&mut heap, limit, Ranked(1.0 - n.distance, ann.ids[n.d_id]));
                    }
                    ns.scan(ns.delta_start(), &docs, query, limit, &mut heap);
                }
                _ => ns.scan(0, &docs, query, limit, &mut heap),
            }
        }
        let mut out: Vec<ScoredChunk> = heap
            .into_iter()
            .map(|Ranked(score, id)| ScoredChunk { id, score })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..389).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..389).map(|i| (i as f32).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn top_k_filters_and_deletes() {
        let idx = VectorIndex::default();
        let (t, other) = (TenantId::new(), TenantId::new());
        let (c1, c2) = (CollectionId::new(), CollectionId::new());
        let (d1, d2) = (DocumentId::new(), DocumentId::new());
        let ch = |d, o, c, v: &[f32]| IndexChunk {
            id: ChunkId {
                document: d,
                ordinal: o,
            },
            collection_id: c,
            text: String::new(),
            char_start: 0,
            heading_path: vec![],
            title: String::new(),
            language: Default::default(),
            vector: Some(unit(v)),
            metadata: Default::default(),
            created_at: Default::default(),
        };
        idx.upsert_document(
            t,
            d1,
            &[
                ch(d1, 0, c1, &[1.0, 0.0, 0.0]),
                ch(d1, 1, c1, &[0.7, 0.7, 0.0]),
            ],
        );
        idx.upsert_document(t, d2, &[ch(d2, 0, c2, &[0.0, 1.0, 0.0])]);
        idx.load(
            other,
            [(
                c1,
                ChunkId {
                    document: DocumentId::new(),
                    ordinal: 0,
                },
                unit(&[1.0, 0.0, 0.0]),
            )],
        );
        let q = unit(&[1.0, 0.1, 0.0]);
        let hits = idx.search(t, &IndexFilter::default(), &q, 2);
        assert_eq!(
            hits.iter().map(|h| h.id.ordinal).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(hits.iter().all(|h| h.id.document == d1));
        let hits = idx.search(
            t,
            &IndexFilter {
                collections: vec![c2],
                ..Default::default()
            },
            &q,
            5,
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id.document, d2);
        let hits = idx.search(
            t,
            &IndexFilter {
                documents: vec![d2],
                ..Default::default()
            },
            &q,
            5,
        );
        assert_eq!(hits.len(), 1);
        idx.delete_document(t, d1);
        assert!(
            idx.search(t, &IndexFilter::default(), &q, 5)
                .iter()
                .all(|h| h.id.document != d1)
        );
        assert_eq!(idx.len(), 2);
        idx.delete_collection(t, c2);
        assert!(idx.search(t, &IndexFilter::default(), &q, 5).is_empty());
        assert_eq!(idx.search(other, &IndexFilter::default(), &q, 5).len(), 1);
    }

    /// Deterministic pseudo-random unit vectors (xorshift).
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed.max(1);
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 10_000) as f32 / 5_000.0 - 1.0
        };
        (0..n)
            .map(|_| unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()))
            .collect()
    }

    fn wait_for_graph(idx: &VectorIndex, t: TenantId, c: CollectionId) {
        let started = std::time::Instant::now();
        while idx.is_building(t, c) || !idx.has_graph(t, c) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "graph never built"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn wait_for_idle(idx: &VectorIndex, t: TenantId, c: CollectionId) {
        let started = std::time::Instant::now();
        while idx.is_building(t, c) {
            assert!(started.elapsed() < std::time::Duration::from_secs(120));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn the_quantised_first_pass_keeps_the_exact_top_k() {
        let (dim, n) = (384, 4000);
        let idx = VectorIndex::default();
        let (t, c) = (TenantId::new(), CollectionId::new());
        let data = vectors(n, dim, 3);
        let ids: Vec<ChunkId> = (0..n)
            .map(|i| ChunkId {
                document: DocumentId::new(),
                ordinal: i as u32,
            })
            .collect();
        idx.load(t, ids.iter().zip(&data).map(|(id, v)| (c, *id, v.clone())));
        let (mut same, mut total) = (0, 0);
        for q in &vectors(100, dim, 77) {
            let mut exact: Vec<(f32, ChunkId)> = data
                .iter()
                .zip(&ids)
                .map(|(v, id)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), *id))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let want: HashSet<ChunkId> = exact.iter().take(10).map(|e| e.1).collect();
            let got = idx.search(t, &IndexFilter::default(), q, 10);
            assert_eq!(got.len(), 10);
            for h in &got {
                let v = &data[h.id.ordinal as usize];
                let true_score: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                assert!((h.score - true_score).abs() < 1e-4, "scores are exact f32");
            }
            same += got.iter().filter(|h| want.contains(&h.id)).count();
            total += 10;
        }
        let agreement = same as f64 / total as f64;
        assert!(
            agreement >= 0.99,
            "top-10 agreement with brute force {agreement}"
        );
    }

    #[test]
    fn large_namespaces_get_a_graph_that_honours_deletes_and_new_rows() {
        let (dim, n) = (32, 1500);
        let idx = VectorIndex::new(1000);
        let (t, c) = (TenantId::new(), CollectionId::new());
        let docs: Vec<DocumentId> = (0..n / 3).map(|_| DocumentId::new()).collect();
        let data = vectors(n, dim, 7);
        let rows = data.iter().enumerate().map(|(i, v)| {
            (
                c,
                ChunkId {
                    document: docs[i / 3],
                    ordinal: (i % 3) as u32,
                },
                v.clone(),
            )
        });
        idx.load(t, rows.clone().take(900));
        assert!(
            !idx.has_graph(t, c) && !idx.is_building(t, c),
            "below the threshold"
        );
        idx.load(t, rows.skip(900));
        wait_for_graph(&idx, t, c);

        // Recall@10 of the graph against the exact scan.
        let queries = vectors(50, dim, 99);
        let all = IndexFilter::default();
        let mut found = 0;
        for q in &queries {
            let exact: HashSet<ChunkId> = idx
                .search_with(t, &all, q, 10, false)
                .iter()
                .map(|h| h.id)
                .collect();
            found += idx
                .search(t, &all, q, 10)
                .iter()
                .filter(|h| exact.contains(&h.id))
                .count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        assert!(recall >= 0.9, "graph recall@10 {recall}");

        // A deleted document never comes back, though its rows are still in the graph.
        let q = &data[30];
        let top = idx.search(t, &all, q, 1)[0].id;
        assert_eq!(top.document, docs[10]);
        idx.delete_document(t, docs[10]);
        assert!(idx.has_graph(t, c), "one delete does not rebuild");
        let after = idx.search(t, &all, q, 20);
        assert!(after.iter().all(|h| h.id.document != docs[10]));
        assert_eq!(after.len(), 20);

        // A row added after the build is found through the exact delta scan.
        let fresh = DocumentId::new();
        let v = vectors(1, dim, 12345).remove(0);
        idx.load(
            t,
            [(
                c,
                ChunkId {
                    document: fresh,
                    ordinal: 0,
                },
                v.clone(),
            )],
        );
        assert_eq!(idx.search(t, &all, &v, 1)[0].id.document, fresh);

        // Document filters scan exactly.
        let only = IndexFilter {
            documents: vec![docs[3]],
            ..Default::default()
        };
        assert_eq!(idx.search(t, &only, q, 10).len(), 3);

        // Deleting over a fifth of the rows rebuilds the graph without them.
        for d in &docs[100..220] {
            idx.delete_document(t, *d);
        }
        wait_for_graph(&idx, t, c);
        for q in queries.iter().take(10) {
            let hits = idx.search(t, &all, q, 10);
            assert!(
                hits.iter()
                    .all(|h| !docs[100..220].contains(&h.id.document))
            );
            assert_eq!(hits.len(), 10);
        }
        assert_eq!(idx.len(), n + 1 - 3 - 360);

        // Shrinking below the threshold goes back to the exact scan.
        for d in &docs[220..] {
            idx.delete_document(t, *d);
        }
        assert!(!idx.has_graph(t, c) || idx.is_building(t, c));
        wait_for_idle(&idx, t, c);
        assert!(!idx.has_graph(t, c));
        assert_eq!(idx.search(t, &all, q, 5).len(), 5);
    }
}
