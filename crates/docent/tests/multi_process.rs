//! The distributed shape as separate processes: two `docent serve --no-workers` and two
//! `docent worker` processes sharing PostgreSQL (metadata, task state and the pgvector /
//! full-text search index), S3 (originals) and SQS (deliveries, with a dead-letter queue) — the
//! real binary, real servers (PostgreSQL 16 + pgvector, moto for S3 and SQS).
//!
//! 200 documents go in through both APIs, plus one poison document: a large file whose worker
//! is killed (`kill -9`, as the kernel's OOM killer would) every time one takes it. One worker
//! is also killed mid-run while it works on an ordinary document. Then: every ordinary
//! document completed exactly once (one completed task, its chunks exactly once in the store and
//! in the search index), search from either API answers the same, and the dead-letter queue
//! holds the poison document's task and nothing else.
//!
//! Needs `DOCENT_TEST_PGVECTOR_URL` and `DOCENT_TEST_AWS_ENDPOINT` (`scripts/test-services`);
//! skips, saying so, without them.

#![cfg(all(feature = "postgres", feature = "s3", feature = "aws"))]

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::markdown_doc;
use common::servers::free_port;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

const BIN: &str = env!("CARGO_BIN_EXE_docent");
const DOCUMENTS: usize = 200;
const MAX_ATTEMPTS: i64 = 3;

/// The environment every process shares: one database, bucket and queue pair.
struct Shape {
    env: Vec<(String, String)>,
    db_url: String,
    queue: String,
    dlq: String,
}

fn shape(db_url: &str, endpoint: &str) -> Shape {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let db_url = db_url.to_owned();
    let (queue, dlq) = (format!("docent-mp-{tag}"), format!("docent-mp-{tag}-dlq"));
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let env = [
        ("DOCENT__DATABASE__KIND", "postgres"),
        ("DOCENT__DATABASE__URL", &db_url),
        ("DOCENT__DATABASE__MAX_CONNECTIONS", "4"),
        ("DOCENT__INDEX__KIND", "postgres"),
        ("DOCENT__STORAGE__KIND", "s3"),
        ("DOCENT__STORAGE__BUCKET", &format!("docent-mp-{tag}")),
        ("DOCENT__STORAGE__REGION", &region),
        ("DOCENT__STORAGE__ENDPOINT", endpoint),
        ("DOCENT__STORAGE__ALLOW_HTTP", "true"),
        ("DOCENT__STORAGE__CREATE_BUCKET", "true"),
        ("DOCENT__QUEUE__BACKEND__KIND", "sqs"),
        ("DOCENT__QUEUE__BACKEND__QUEUE_NAME", &queue),
        ("DOCENT__QUEUE__BACKEND__DLQ_NAME", &dlq),
        ("DOCENT__QUEUE__BACKEND__ENDPOINT", endpoint),
        ("DOCENT__QUEUE__BACKEND__REGION", &region),
        ("DOCENT__QUEUE__BACKEND__CREATE_QUEUES", "true"),
        ("DOCENT__QUEUE__BACKEND__WAIT_TIME", "1s"),
        ("DOCENT__QUEUE__VISIBILITY_TIMEOUT", "3s"),
        ("DOCENT__QUEUE__MAX_ATTEMPTS", &MAX_ATTEMPTS.to_string()),
        ("DOCENT__QUEUE__BACKOFF_BASE", "100ms"),
        ("DOCENT__QUEUE__BACKOFF_MAX", "1s"),
        ("DOCENT__QUEUE__POLL_INTERVAL", "100ms"),
        ("DOCENT__EMBEDDER__KIND", "none"),
        ("DOCENT__AUTH__MODE", "none"),
        ("DOCENT__LOG__LEVEL", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Shape {
        env,
        db_url,
        queue,
        dlq,
    }
}

/// A child process, killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(shape: &Shape, data: &std::path::Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("DOCENT__DATA_DIR", data)
            .env_remove("DOCENT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &shape.env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("docent starts"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn worker(shape: &Shape, data: &std::path::Path) -> Proc {
    Proc::spawn(shape, data, &["worker", "--concurrency", "1"])
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{base} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    cid: &str,
    name: &str,
    bytes: Vec<u8>,
) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let r = client
        .post(format!("{base}/api/v1/collections/{cid}/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let body: Value = r.json().await.unwrap();
    body["document"]["id"].as_str().unwrap().to_owned()
}

/// The poison: a large Markdown file, processed long enough for the test to see which worker
/// holds it.
fn poison_doc() -> Vec<u8> {
    let mut s = String::from("# Poison\n\n");
    let mut i = 0;
    while s.len() < 12 << 20 {
        s.push_str(&format!(
            "Paragraph {i} of the poison document repeats itself about nothing in particular.\n\n"
        ));
        i += 1;
    }
    s.into_bytes()
}

/// `(status, attempts, dead_lettered, lease_owner)` of a document's task, read from the
/// database every process shares.
async fn task_row(db: &mut PgConnection, document: &str) -> (String, i64, bool, Option<String>) {
    let row = sqlx::query(
        "SELECT status, attempts::BIGINT AS attempts, dead_lettered, lease_owner FROM tasks \
         WHERE document_id = $1",
    )
    .bind(document)
    .fetch_one(db)
    .await
    .expect("the poison's task");
    (
        row.get("status"),
        row.get("attempts"),
        row.get("dead_lettered"),
        row.get("lease_owner"),
    )
}

/// The process id in a worker name (`{host}-{pid}-{slot}`).
fn owner_pid(owner: &str) -> u32 {
    let mut parts = owner.rsplitn(3, '-');
    let _slot = parts.next();
    parts
        .next()
        .unwrap()
        .parse()
        .expect("a pid in the worker name")
}

async fn search(client: &reqwest::Client, base: &str, query: &str) -> Vec<(String, String)> {
    let r: Value = client
        .post(format!("{base}/api/v1/search"))
        .json(&json!({ "query": query, "top_k": 20 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|h| {
            (
                h["document_id"].as_str().unwrap().to_owned(),
                h["chunk_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_two_workers_on_postgres_s3_sqs_survive_kill_9_and_dead_letter_only_the_poison() {
    let (Ok(pg), Ok(endpoint)) = (
        std::env::var("DOCENT_TEST_PGVECTOR_URL"),
        std::env::var("DOCENT_TEST_AWS_ENDPOINT"),
    ) else {
        eprintln!(
            "skipped: DOCENT_TEST_PGVECTOR_URL and DOCENT_TEST_AWS_ENDPOINT are needed (scripts/test-services)"
        );
        return;
    };
    // A database of its own on the pgvector server (dropped at the end).
    let database = docent_testkit::pg::TestDatabase::create(&pg, "docent_mp").await;
    let shape = shape(database.url(), &endpoint);
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let client = reqwest::Client::new();

    // The first API migrates the database and creates the bucket and queues before the others
    // start, so the processes do not race to create them.
    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let serve = |i: usize| {
        Proc::spawn(
            &shape,
            dirs[i].path(),
            &[
                "serve",
                "--no-workers",
                "--bind",
                &format!("127.0.0.1:{}", ports[i]),
            ],
        )
    };
    let _api0 = serve(0);
    wait_healthy(&client, &bases[0]).await;
    let _api1 = serve(1);
    wait_healthy(&client, &bases[1]).await;
    let mut workers = vec![
        worker(&shape, dirs[2].path()),
        worker(&shape, dirs[3].path()),
    ];
    let mut db = PgConnection::connect(&shape.db_url).await.unwrap();

    let cid: Value = client
        .post(format!("{}/api/v1/collections", bases[0]))
        .json(&json!({ "name": "shared" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = cid["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{cid}"))
        .to_owned();

    // The poison first; 200 ordinary documents follow through both APIs, 8 at a time, while
    // the loop below kills workers.
    let poison = upload(&client, &bases[1], &cid, "poison.md", poison_doc()).await;
    let uploads = {
        let (client, bases, cid) = (client.clone(), bases.clone(), cid.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for batch in (0..DOCUMENTS).collect::<Vec<_>>().chunks(8) {
                let uploads = batch.iter().map(|&i| {
                    let (client, base, cid) = (&client, &bases[i % 2], &cid);
                    async move {
                        upload(
                            client,
                            base,
                            cid,
                            &format!("doc-{i}.md"),
                            markdown_doc(i, 2),
                        )
                        .await
                    }
                });
                ids.extend(futures::future::join_all(uploads).await);
            }
            ids
        })
    };

    // Kill whichever worker takes the poison, every time, replacing it; once, also kill a
    // worker busy with an ordinary document.
    let started = Instant::now();
    let mut poison_kills = 0;
    let mut ordinary_kill = false;
    let mut next_dir = 4;
    loop {
        let (status, attempts, dead, owner) = task_row(&mut db, &poison).await;
        if dead && ordinary_kill {
            assert_eq!(status, "failed");
            assert_eq!(
                attempts, MAX_ATTEMPTS,
                "dead-lettered after its last attempt"
            );
            break;
        }
        if let Some(owner) = owner.filter(|_| !dead && status.starts_with("processing")) {
            let pid = owner_pid(&owner);
            if let Some(i) = workers.iter().position(|w| w.pid() == pid) {
                workers[i].kill_9();
                poison_kills += 1;
                let dir = dirs[next_dir % dirs.len()].path();
                next_dir += 1;
                workers[i] = worker(&shape, dir);
            }
        }
        if !ordinary_kill {
            let busy: Option<String> = sqlx::query_scalar(
                "SELECT lease_owner FROM tasks WHERE status LIKE 'processing%' \
                 AND document_id <> $1 AND lease_owner IS NOT NULL LIMIT 1",
            )
            .bind(&poison)
            .fetch_optional(&mut db)
            .await
            .unwrap();
            if let Some(owner) = busy {
                let pid = owner_pid(&owner);
                if let Some(i) = workers.iter().position(|w| w.pid() == pid) {
                    workers[i].kill_9();
                    ordinary_kill = true;
                    workers[i] = worker(&shape, dirs[next_dir % dirs.len()].path());
                    next_dir += 1;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the poison was never dead-lettered (status {status}, {attempts} attempts, \
             {poison_kills} kills, ordinary kill: {ordinary_kill})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        poison_kills >= 1,
        "the poison was taken and its workers killed"
    );
    eprintln!(
        "poison dead-lettered after {:?}: {poison_kills} workers killed holding it, one more mid-run",
        started.elapsed()
    );
    let ids = uploads.await.expect("uploads");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), DOCUMENTS);

    // Every ordinary document completes, exactly once.
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE status = 'completed' AND document_id <> $1",
        )
        .bind(&poison)
        .fetch_one(&mut db)
        .await
        .unwrap();
        if done as usize == DOCUMENTS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{done}/{DOCUMENTS} documents completed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        let tasks: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, attempts::BIGINT FROM tasks WHERE document_id = $1")
                .bind(id)
                .fetch_all(&mut db)
                .await
                .unwrap();
        assert_eq!(tasks.len(), 1, "one task for {id}: {tasks:?}");
        assert_eq!(tasks[0].0, "completed", "{id}");
        let doc: Value = client
            .get(format!("{}/api/v1/documents/{id}", bases[0]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["status"], "completed", "{doc}");
        let n = doc["chunk_count"].as_i64().unwrap();
        assert!(n > 0, "{doc}");
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM chunks WHERE document_id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(stored, n, "chunks of {id} stored exactly once");
    }
    let poison_doc: Value = client
        .get(format!("{}/api/v1/documents/{poison}", bases[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(poison_doc["status"], "failed", "{poison_doc}");

    // Search answers the same from either API (one shared index), and finds the documents.
    for query in ["document 17 topic", "section 1 paragraph", "document 123"] {
        let a = search(&client, &bases[0], query).await;
        let b = search(&client, &bases[1], query).await;
        assert!(!a.is_empty(), "{query}");
        assert_eq!(a, b, "{query}");
    }
    let hits = search(&client, &bases[1], "document 123").await;
    let doc_123 = &ids[123];
    assert!(hits.iter().any(|(d, _)| d == doc_123), "{hits:?}");

    // The dead-letter queue holds the poison's task and nothing else; the main queue is empty.
    let settings = docent_aws::sqs::SqsQueueSettings::from(&docent_config::SqsQueueConfig {
        queue_name: shape.queue.clone(),
        dlq_name: shape.dlq.clone(),
        endpoint: Some(endpoint.clone()),
        region: None,
        wait_time: Duration::from_secs(1),
        create_queues: false,
        republish_after: Duration::from_secs(120),
    });
    let sqs = docent_aws::sqs::client(&settings).await;
    let queues = docent_aws::sqs::resolve_queues(&sqs, &settings, MAX_ATTEMPTS as u32)
        .await
        .unwrap();
    let poison_task: String = sqlx::query_scalar("SELECT id FROM tasks WHERE document_id = $1")
        .bind(&poison)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let mut dead = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&queues.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        dead.extend(messages.into_iter().filter_map(|m| m.body));
    }
    assert_eq!(dead.len(), 1, "only the poison in the DLQ: {dead:?}");
    let body: Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(body["task_id"], poison_task.as_str(), "{body}");
    let left = sqs
        .receive_message()
        .queue_url(&queues.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(
        left.messages.unwrap_or_default().is_empty(),
        "no delivery left in the main queue"
    );

    drop(workers);
    drop(db);
    drop(database);
}
