//! Query embedding under concurrency: the cost a search pays before it can look anything up.
//!
//! ```text
//! cargo run --release -p docent-models --example query_bench -- \
//!     [--model DIR] [--queries queries.jsonl] [--clients 16] [--seconds 10] [--threads N] [--no-coalesce]
//! ```
//!
//! First embeds the queries one at a time (latency of a lone query), then runs `--clients`
//! tasks that each embed one query after another through [`Embedder::embed`] for `--seconds`
//! (what the search endpoint does under load; small concurrent requests are coalesced into
//! shared forward passes). Prints queries/s and latency percentiles.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use docent_models::{Embedder, LocalMiniLm, LocalMiniLmOptions};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut model = root.join("models/all-MiniLM-L6-v2");
    let mut queries = root.join("../shared/datasets/scifact/queries.jsonl");
    let (mut clients, mut seconds) = (16usize, 10u64);
    let mut options = LocalMiniLmOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = value().into(),
            "--queries" => queries = value().into(),
            "--clients" => clients = value().parse().expect("--clients"),
            "--seconds" => seconds = value().parse().expect("--seconds"),
            "--threads" => options.threads = Some(value().parse().expect("--threads")),
            "--no-coalesce" => options.coalesce = false,
            other => panic!("unknown argument {other}"),
        }
    }
    let texts: Vec<String> = std::fs::read_to_string(&queries)
        .unwrap_or_else(|e| panic!("{}: {e}", queries.display()))
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect();
    assert!(!texts.is_empty(), "no queries in {}", queries.display());
    let m = LocalMiniLm::load(&model, options).expect("model");
    println!(
        "{} queries, {} inference threads, bf16 {}",
        texts.len(),
        m.threads(),
        m.uses_bf16()
    );

    // Warm up, then one at a time.
    m.embed(&texts[..8]).await.expect("embed");
    let mut lone = Vec::new();
    for t in texts.iter().take(200) {
        let t0 = Instant::now();
        m.embed(std::slice::from_ref(t)).await.expect("embed");
        lone.push(t0.elapsed());
    }
    lone.sort();
    println!(
        "one at a time: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lone, 0.5),
        percentile(&lone, 0.99)
    );

    let texts = Arc::new(texts);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (m, texts, stop) = (m.clone(), Arc::clone(&texts), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = c * 7;
                while !stop.load(Ordering::Relaxed) {
                    let t = &texts[i % texts.len()];
                    let t0 = Instant::now();
                    m.embed(std::slice::from_ref(t)).await.expect("embed");
                    lat.push(t0.elapsed());
                    i += clients;
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "{clients} clients: {:.0} queries/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        lat.len() as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99)
    );
}
