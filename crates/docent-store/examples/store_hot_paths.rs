//! Micro-benchmark of two hot store paths on both engines: a document read by id
//! (`MetadataStore::get_document`, what every search hit and API read does) and the queue's
//! lease (`TaskQueue::lease`, what every worker runs in a loop). Prints figures; asserts nothing
//! about time. Run through `bench/store/run` (see bench/store/README.md).
//!
//! usage: store_hot_paths [ROUNDS=5] [READS=2000] [LEASES=300]
//! PostgreSQL runs when `DOCENT_TEST_POSTGRES_URL` is set (a fresh schema, dropped after).

use std::time::{Duration, Instant};

use docent_domain::ports::{MetadataStore, TaskQueue};
use docent_domain::*;
use docent_store::{Backoff, SqliteQueue, SqliteStore};

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

/// Median, 90th percentile and mean of `samples`, in microseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median = us(samples[samples.len() / 2]);
    let p90 = us(samples[samples.len() * 9 / 10]);
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    (median, p90, mean)
}

async fn seed(store: &dyn MetadataStore, tenants: &[TenantId]) -> Vec<(TenantId, DocumentId)> {
    let mut docs = Vec::new();
    for (n, tenant) in tenants.iter().enumerate() {
        store
            .ensure_tenant(*tenant, &format!("bench {n}"))
            .await
            .unwrap();
        let collection = store
            .create_collection(
                *tenant,
                NewCollection {
                    name: "bench".into(),
                    description: Some("hot paths".into()),
                    metadata: Metadata::new(),
                    language: TextLanguage::default(),
                },
            )
            .await
            .unwrap();
        for i in 0..50 {
            let mut metadata = Metadata::new();
            metadata.insert("team".into(), serde_json::json!("search"));
            metadata.insert("n".into(), serde_json::json!(i));
            let (doc, _) = store
                .insert_document(
                    *tenant,
                    NewDocument {
                        id: DocumentId::new(),
                        collection_id: collection.id,
                        filename: format!("report-{i}.pdf"),
                        declared_mime: "application/pdf".into(),
                        size_bytes: 12_345,
                        sha256: format!("{i:064x}"),
                        blob_key: format!("blobs/{i}"),
                        metadata,
                    },
                )
                .await
                .unwrap();
            docs.push((*tenant, doc.id));
        }
    }
    docs
}

async fn bench_reads(
    store: &dyn MetadataStore,
    docs: &[(TenantId, DocumentId)],
    n: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let (tenant, id) = docs[(i * 7919) % docs.len()];
        let start = Instant::now();
        let doc = store.get_document(tenant, id).await.unwrap();
        samples.push(start.elapsed());
        std::hint::black_box(doc);
    }
    samples
}

/// Enqueues `n` tasks over the tenants, then times `n` leases (each finds one) and one lease
/// of the drained queue per task (the idle poll); completes every lease outside the timing.
async fn bench_leases(
    queue: &dyn TaskQueue,
    docs: &[(TenantId, DocumentId)],
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    for i in 0..n {
        let (tenant, id) = docs[i % docs.len()];
        queue
            .enqueue(
                tenant,
                NewTask {
                    kind: TaskKind::IngestDocument,
                    document_id: Some(id),
                    collection_id: None,
                    max_attempts: None,
                    payload: serde_json::Value::Null,
                    traceparent: None,
                },
            )
            .await
            .unwrap();
    }
    let mut leased = Vec::with_capacity(n);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let lease = queue.lease("bench", Duration::from_secs(60)).await.unwrap();
        samples.push(start.elapsed());
        leased.push(lease.expect("a queued task"));
    }
    for lease in &leased {
        queue
            .complete(lease, TaskStatus::Completed, Progress::default())
            .await
            .unwrap();
    }
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let lease = queue.lease("bench", Duration::from_secs(60)).await.unwrap();
        idle.push(start.elapsed());
        assert!(lease.is_none());
    }
    (samples, idle)
}

fn print(engine: &str, round: usize, what: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (median, p90, mean) = summary(samples);
    println!(
        "{engine:<10} round {round}  {what:<14} n={n:<5} median {median:>8.1} µs  p90 {p90:>8.1} µs  mean {mean:>8.1} µs"
    );
}

async fn run(
    engine: &str,
    store: &dyn MetadataStore,
    queue: &dyn TaskQueue,
    rounds: usize,
    reads: usize,
    leases: usize,
) {
    let tenants: Vec<TenantId> = (0..20).map(|_| TenantId::new()).collect();
    let docs = seed(store, &tenants).await;
    // Warm-up: connections opened, statements prepared.
    bench_reads(store, &docs, 200).await;
    bench_leases(queue, &docs, 20).await;
    for round in 1..=rounds {
        print(
            engine,
            round,
            "get_document",
            bench_reads(store, &docs, reads).await,
        );
        let (lease, idle) = bench_leases(queue, &docs, leases).await;
        print(engine, round, "lease", lease);
        print(engine, round, "lease (empty)", idle);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let rounds = args.first().copied().unwrap_or(5);
    let reads = args.get(1).copied().unwrap_or(2000);
    let leases = args.get(2).copied().unwrap_or(300);

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db"), 4, Duration::from_secs(5))
        .await
        .unwrap();
    let queue =
        SqliteQueue::new(store.pool().clone(), 3, backoff()).with_max_running_per_tenant(1000);
    run("sqlite", &store, &queue, rounds, reads, leases).await;

    #[cfg(feature = "postgres")]
    match std::env::var("DOCENT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let options = docent_store::PgOptions {
                max_connections: 4,
                schema: Some(schema.clone()),
                ..Default::default()
            };
            let store = docent_store::PgStore::connect(&url, &options)
                .await
                .unwrap();
            let queue = docent_store::PgQueue::new(store.pool().clone(), 3, backoff())
                .with_max_running_per_tenant(1000);
            run("postgres", &store, &queue, rounds, reads, leases).await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA \"{schema}\" CASCADE"
            )))
            .execute(store.pool())
            .await
            .unwrap();
        }
        _ => eprintln!("postgres skipped: DOCENT_TEST_POSTGRES_URL not set"),
    }
}
