//! `docent bench beir`: ingests a BEIR-format dataset through the real pipeline (upload → task →
//! extract → chunk → embed → index) and evaluates BM25, dense and hybrid retrieval with
//! trec_eval conventions (nDCG@10 with linear gain, Recall@100, MRR@10; ties by doc id
//! descending), plus ingest throughput and search latency.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use docent_config::Config;
use docent_core::Services;
use docent_core::documents::Upload;
use docent_core::search::{Fusion, Grouping, SearchMode, SearchParams};
use docent_domain::{CollectionId, TenantId};
use futures::StreamExt;

struct Dataset {
    corpus: Vec<(String, String, String)>,
    queries: HashMap<String, String>,
    qrels: HashMap<String, HashMap<String, u32>>,
}

fn load_dataset(dir: &Path, sample: Option<usize>) -> anyhow::Result<Dataset> {
    let read_jsonl = |name: &str| -> anyhow::Result<Vec<serde_json::Value>> {
        let f = std::fs::File::open(dir.join(name))
            .with_context(|| format!("opening {}", dir.join(name).display()))?;
        std::io::BufReader::new(f)
            .lines()
            .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .map(|l| Ok(serde_json::from_str(&l?)?))
            .collect()
    };
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    let tsv =
        std::fs::read_to_string(dir.join("qrels/test.tsv")).context("reading qrels/test.tsv")?;
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() >= 3 {
            qrels
                .entry(f[0].to_owned())
                .or_default()
                .insert(f[1].to_owned(), f[2].trim().parse().unwrap_or(0));
        }
    }
    let queries: HashMap<String, String> = read_jsonl("queries.jsonl")?
        .into_iter()
        .filter_map(|q| {
            Some((
                q["_id"].as_str()?.to_owned(),
                q["text"].as_str()?.to_owned(),
            ))
        })
        .filter(|(id, _)| qrels.contains_key(id))
        .collect();
    let mut corpus: Vec<(String, String, String)> = read_jsonl("corpus.jsonl")?
        .into_iter()
        .filter_map(|d| {
            Some((
                d["_id"].as_str()?.to_owned(),
                d["title"].as_str().unwrap_or("").to_owned(),
                d["text"].as_str()?.to_owned(),
            ))
        })
        .collect();
    if let Some(n) = sample {
        let relevant: HashSet<&String> = qrels.values().flat_map(|m| m.keys()).collect();
        let (mut keep, rest): (Vec<_>, Vec<_>) =
            corpus.into_iter().partition(|d| relevant.contains(&d.0));
        keep.truncate(n);
        let room = n.saturating_sub(keep.len());
        keep.extend(rest.into_iter().take(room));
        corpus = keep;
    }
    if corpus.is_empty() || queries.is_empty() {
        bail!("the dataset has no documents or no test queries");
    }
    Ok(Dataset {
        corpus,
        queries,
        qrels,
    })
}

/// nDCG@10, Recall@100 and MRR@10 of one ranking.
pub fn metrics(ranking: &[String], rels: &HashMap<String, u32>) -> (f64, f64, f64) {
    let dcg: f64 = ranking
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, d)| f64::from(*rels.get(d).unwrap_or(&0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = rels.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, r)| f64::from(*r) / ((i + 2) as f64).log2())
        .sum();
    let relevant = rels.values().filter(|r| **r > 0).count().max(1) as f64;
    let found = ranking
        .iter()
        .take(100)
        .filter(|d| rels.get(*d).is_some_and(|r| *r > 0))
        .count() as f64;
    let mrr = ranking
        .iter()
        .take(10)
        .position(|d| rels.get(d).is_some_and(|r| *r > 0))
        .map_or(0.0, |p| 1.0 / (p + 1) as f64);
    (
        if idcg > 0.0 { dcg / idcg } else { 0.0 },
        found / relevant,
        mrr,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints the figures.
pub async fn beir(
    mut config: Config,
    data: &Path,
    sample: Option<usize>,
    keep: Option<&Path>,
) -> anyhow::Result<()> {
    let ds = load_dataset(data, sample)?;
    let tmp = tempfile::tempdir()?;
    config.data_dir = keep.map_or_else(|| tmp.path().to_path_buf(), Path::to_path_buf);
    config.server.run_workers = false;
    let (svc, db) = crate::app::open_services(config).await?;
    let tenant = TenantId::DEFAULT;
    let name = data
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("beir")
        .to_owned();
    let coll = svc
        .collection_by_name_or_create(tenant, &name, None)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "dataset {}: {} documents, {} test queries",
        data.display(),
        ds.corpus.len(),
        ds.queries.len()
    );

    // A kept directory that already holds the corpus is reused as it is (quality runs after
    // a change to search only need the queries).
    let (existing_docs, existing_chunks) = count_documents(&svc, tenant).await?;
    if keep.is_some() && existing_docs == ds.corpus.len() as u64 {
        println!("reusing the kept index: {existing_docs} documents, {existing_chunks} chunks");
    } else {
        ingest(&svc, tenant, coll.id, &ds).await?;
    }
    if let Some(e) = &svc.embedder {
        let texts: Vec<String> = ds
            .corpus
            .iter()
            .take(200)
            .map(|(_, t, x)| format!("{t}\n{x}"))
            .collect();
        let t0 = Instant::now();
        e.embed(&texts).await.map_err(|e| anyhow::anyhow!(e))?;
        let dt = t0.elapsed().as_secs_f64();
        let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
        println!(
            "embedding ({}): {:.1} passages/s, ~{:.0} words/s on {} passages",
            e.model_id(),
            texts.len() as f64 / dt,
            words as f64 / dt,
            texts.len()
        );
    }

    // "hybrid" is the configured default fusion ([search]); the other two name theirs.
    let modes: Vec<(&str, SearchMode, Option<Fusion>)> = match svc.embedder {
        Some(_) => vec![
            ("bm25", SearchMode::Keyword, None),
            ("dense", SearchMode::Vector, None),
            ("hybrid", SearchMode::Hybrid, None),
            ("h-rrf", SearchMode::Hybrid, Some(Fusion::Rrf { k: 60.0 })),
            (
                "h-wtd",
                SearchMode::Hybrid,
                Some(Fusion::Weighted { vector_weight: 0.5 }),
            ),
        ],
        None => vec![("bm25", SearchMode::Keyword, None)],
    };
    println!(
        "hybrid: the configured fusion ({}); h-rrf: rrf, k 60; h-wtd: weighted, vector weight 0.5",
        Fusion::from_config(&svc.config.search).name()
    );
    let mut qids: Vec<&String> = ds.queries.keys().collect();
    qids.sort();
    println!(
        "{:<8} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "mode", "nDCG@10", "Recall@100", "MRR@10", "p50 ms", "p95 ms", "p99 ms"
    );
    for (label, mode, fusion) in modes {
        let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
        let mut lat = Vec::with_capacity(qids.len());
        for qid in &qids {
            let mut p = SearchParams::new(ds.queries[*qid].clone());
            p.top_k = 100;
            p.mode = mode;
            p.fusion = fusion;
            // BEIR judges documents: one hit per document, fused at document level.
            p.group = Grouping::Document;
            p.collections = vec![coll.id];
            let t0 = Instant::now();
            let res = svc
                .search(tenant, &p)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            lat.push(t0.elapsed());
            let mut seen = HashSet::new();
            let mut scored: Vec<(String, f32)> = res
                .hits
                .iter()
                .map(|h| (h.filename.trim_end_matches(".md").to_owned(), h.score))
                .filter(|(d, _)| seen.insert(d.clone()))
                .collect();
            // trec_eval's order: by score, ties by document id descending (as the reference
            // figures in the dataset's README were computed).
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
            let ranking: Vec<String> = scored.into_iter().map(|(d, _)| d).collect();
            let (n, r, m) = metrics(&ranking, &ds.qrels[*qid]);
            ndcg += n;
            recall += r;
            mrr += m;
        }
        let q = qids.len() as f64;
        lat.sort();
        println!(
            "{label:<8} {:>8.4} {:>10.4} {:>8.4} {:>9.2} {:>9.2} {:>9.2}",
            ndcg / q,
            recall / q,
            mrr / q,
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            percentile(&lat, 0.99)
        );
    }
    db.close().await;
    Ok(())
}

/// Uploads the corpus into `collection` and drains the queue with the configured number of
/// workers, printing the ingest figures.
async fn ingest(
    svc: &Services,
    tenant: TenantId,
    collection: CollectionId,
    ds: &Dataset,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for (id, title, text) in &ds.corpus {
        let body = if title.is_empty() {
            text.clone()
        } else {
            format!("# {title}\n\n{text}")
        };
        let bytes = bytes::Bytes::from(body.into_bytes());
        let upload = Upload {
            filename: format!("{id}.md"),
            declared_mime: "text/markdown".into(),
            metadata: Default::default(),
            body: futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) }).boxed(),
        };
        svc.upload_document(tenant, collection, upload)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let uploaded = started.elapsed();
    let workers = svc.config.worker.concurrency.max(1);
    let runs = (0..workers).map(|i| {
        let svc = svc.clone();
        async move { docent_core::worker::drain(&svc, &format!("bench-{i}")).await }
    });
    for r in futures::future::join_all(runs).await {
        r.map_err(|e| anyhow::anyhow!(e))?;
    }
    let ingest = started.elapsed();
    let (_, chunks) = count_documents(svc, tenant).await?;
    println!(
        "ingest: {:.1}s ({:.1}s upload), {:.1} documents/s, {} chunks, {:.1} chunks/s",
        ingest.as_secs_f64(),
        uploaded.as_secs_f64(),
        ds.corpus.len() as f64 / ingest.as_secs_f64(),
        chunks,
        chunks as f64 / ingest.as_secs_f64()
    );
    Ok(())
}

/// The tenant's documents and their chunks.
async fn count_documents(svc: &Services, tenant: TenantId) -> anyhow::Result<(u64, u64)> {
    let (mut docs, mut n) = (0u64, 0u64);
    let mut cursor = None;
    loop {
        let page = svc
            .store
            .list_documents(
                tenant,
                Default::default(),
                docent_domain::PageRequest { limit: 200, cursor },
            )
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        docs += page.items.len() as u64;
        n += page
            .items
            .iter()
            .map(|d| u64::from(d.chunk_count))
            .sum::<u64>();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok((docs, n)),
        }
    }
}

/// Deterministic clustered unit vectors: `n` points around `n / 100` random centres, like
/// embeddings of a corpus of topics (xorshift noise, no dependency on an RNG crate's stream).
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.max(1);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1_000_000) as f32 / 500_000.0 - 1.0
    };
    let unit = |v: Vec<f32>| {
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let centres: Vec<Vec<f32>> = (0..(n / 100).max(1))
        .map(|_| unit((0..dim).map(|_| next()).collect()))
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            unit(
                c.iter()
                    .map(|x| x + 0.6 * next() / (dim as f32).sqrt() * 4.0)
                    .collect(),
            )
        })
        .collect()
}

/// `docent bench vectors`: the exact scan against the HNSW graph on one collection of `n`
/// vectors; prints build time, recall@10 of the graph and both latencies.
pub fn vectors(n: usize, dim: usize, queries: usize) -> anyhow::Result<()> {
    use docent_domain::ports::IndexFilter;
    use docent_domain::{ChunkId, CollectionId, DocumentId};
    use docent_index::VectorIndex;
    if n == 0 || dim == 0 || queries == 0 {
        bail!("--n, --dim and --queries must be positive");
    }
    let data = clustered(n + queries, dim, 42);
    let (rows, qs) = data.split_at(n);
    let idx = VectorIndex::new(n);
    let (tenant, coll) = (TenantId::new(), CollectionId::new());
    let started = Instant::now();
    idx.load(
        tenant,
        rows.iter().enumerate().map(|(i, v)| {
            (
                coll,
                ChunkId {
                    document: DocumentId::new(),
                    ordinal: i as u32,
                },
                v.clone(),
            )
        }),
    );
    while idx.is_building(tenant, coll) {
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::ensure!(idx.has_graph(tenant, coll), "the graph was not built");
    let build = started.elapsed();
    let all = IndexFilter::default();
    let (mut exact_lat, mut graph_lat, mut found) = (Vec::new(), Vec::new(), 0usize);
    for q in qs {
        let t0 = Instant::now();
        let exact = idx.search_with(tenant, &all, q, 10, false);
        exact_lat.push(t0.elapsed());
        let t0 = Instant::now();
        let graph = idx.search(tenant, &all, q, 10);
        graph_lat.push(t0.elapsed());
        let truth: HashSet<_> = exact.iter().map(|h| h.id).collect();
        found += graph.iter().filter(|h| truth.contains(&h.id)).count();
    }
    exact_lat.sort();
    graph_lat.sort();
    println!(
        "{n} vectors × {dim}: graph built in {:.1}s on {} threads; recall@10 {:.3} over {} queries",
        build.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |p| p.get()),
        found as f64 / (qs.len() * 10) as f64,
        qs.len()
    );
    println!(
        "exact scan: p50 {:.2} ms, p99 {:.2} ms; graph: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&exact_lat, 0.5),
        percentile(&exact_lat, 0.99),
        percentile(&graph_lat, 0.5),
        percentile(&graph_lat, 0.99)
    );
    Ok(())
}

/// `docent bench load`: `clients` concurrent clients send `POST /api/v1/search` to a running
/// server for `duration`, cycling through the queries; prints latency percentiles and rps.
pub async fn load(
    url: &str,
    queries_file: &Path,
    clients: usize,
    duration: Duration,
    top_k: usize,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(queries_file)
        .with_context(|| format!("reading {}", queries_file.display()))?;
    let queries: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect();
    if queries.is_empty() {
        bail!("no queries (expected JSON lines with a `text` field)");
    }
    let queries = std::sync::Arc::new(queries);
    // Like the other `--url` commands: `DOCENT_TOKEN` (an API key or access token) as bearer.
    let http =
        crate::client::with_token(reqwest::Client::builder().pool_max_idle_per_host(clients))?
            .build()?;
    let endpoint = format!("{}/api/v1/search", url.trim_end_matches('/'));
    // Warm up: one pass over a few queries; a refused request (no token, rate limit) stops here.
    for q in queries.iter().take(8) {
        let r = http
            .post(&endpoint)
            .json(&serde_json::json!({"query": q, "top_k": top_k}))
            .send()
            .await?;
        if !r.status().is_success() {
            let status = r.status();
            bail!(
                "the server answered {status} to a warm-up search: {} (set DOCENT_TOKEN to an \
                 API key; for a load test, also raise auth.rate_limit on the server)",
                r.text().await.unwrap_or_default()
            );
        }
    }
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let (http, endpoint, queries) = (http.clone(), endpoint.clone(), queries.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = c;
            while started.elapsed() < duration {
                let q = &queries[i % queries.len()];
                i += clients;
                let t0 = Instant::now();
                match http
                    .post(&endpoint)
                    .json(&serde_json::json!({"query": q, "top_k": top_k}))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        })
    });
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in futures::future::join_all(tasks).await {
        let (l, e) = t?;
        lat.extend(l);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "{clients} clients, {:.0}s: {} requests, {:.1} rps, {errors} errors; latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wall,
        lat.len(),
        lat.len() as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    Ok(())
}

/// Seconds from sending `req` until the first non-empty piece of answer text arrives, reading
/// the event stream with `text_of` (which picks the text out of one `data:` payload).
async fn first_token(
    req: reqwest::RequestBuilder,
    text_of: impl Fn(&serde_json::Value) -> Option<String>,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!("{status}: {}", resp.text().await.unwrap_or_default());
    }
    let mut buf = String::new();
    while let Some(bytes) = resp.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                    continue;
                };
                if text_of(&v).is_some_and(|t| !t.is_empty()) {
                    let elapsed = t0.elapsed();
                    // Read the rest so the connection is reused cleanly.
                    while resp.chunk().await?.is_some() {}
                    return Ok(elapsed);
                }
            }
        }
    }
    bail!("the stream ended without answer text")
}

/// Time to first token through docent (a bot's streamed chat) against the model's own.
pub async fn chat(
    url: &str,
    bot: &str,
    llm_url: &str,
    llm_model: &str,
    question: &str,
    requests: usize,
) -> anyhow::Result<()> {
    let docent = crate::client::with_token(reqwest::Client::builder())?.build()?;
    let model = reqwest::Client::new();
    let chat_url = format!("{}/api/v1/bots/{bot}/chat", url.trim_end_matches('/'));
    let llm_chat = format!("{}/chat/completions", llm_url.trim_end_matches('/'));
    // The model alone gets a prompt of the size docent sends: a few sources and the question.
    let sources: String = (1..=5)
        .map(|i| format!("[{i}] {}\n\n", "Some retrieved passage text. ".repeat(30)))
        .collect();
    let direct_body = serde_json::json!({
        "model": llm_model,
        "stream": true,
        "messages": [
            {"role": "system", "content": "Answer from the sources."},
            {"role": "user", "content": format!("<sources>\n{sources}</sources>\n\nQuestion: {question}")},
        ],
    });
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for i in 0..requests + 2 {
        let d = first_token(model.post(&llm_chat).json(&direct_body), |v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .await
        .context("streaming from the model")?;
        let t = first_token(
            docent
                .post(&chat_url)
                .json(&serde_json::json!({"message": question, "stream": true})),
            |v| v["text"].as_str().map(str::to_owned),
        )
        .await
        .context("streaming from the bot")?;
        // The first two of each warm up connections and caches.
        if i >= 2 {
            direct.push(d);
            via.push(t);
        }
    }
    direct.sort();
    via.sort();
    let (d50, v50) = (percentile(&direct, 0.5), percentile(&via, 0.5));
    let (d95, v95) = (percentile(&direct, 0.95), percentile(&via, 0.95));
    println!("time to first token over {requests} requests each:");
    println!("  model alone    p50 {d50:>8.2} ms   p95 {d95:>8.2} ms");
    println!("  through docent p50 {v50:>8.2} ms   p95 {v95:>8.2} ms");
    println!(
        "  docent adds    p50 {:>8.2} ms   p95 {:>8.2} ms (retrieval, prompt, storage, relay)",
        v50 - d50,
        v95 - d95
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trec_metrics() {
        let rels: HashMap<String, u32> = [("a".to_owned(), 1), ("b".to_owned(), 1)].into();
        let ranking: Vec<String> = ["x", "a", "y", "b"].iter().map(|s| s.to_string()).collect();
        let (ndcg, recall, mrr) = metrics(&ranking, &rels);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg - dcg / idcg).abs() < 1e-9);
        assert_eq!(recall, 1.0);
        assert_eq!(mrr, 0.5);
    }
}
