//! Fair scheduling across workspaces, end to end (issue 21, M6): two workers, workspace A
//! uploads two long record files (slow embedder, small batches), workspace B then a tiny
//! file. B's document must finish while both of A's are still being processed — without
//! fairness it waited until one of A's files was done.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::spawn_app_with;
use docent_core::documents::Upload;
use docent_domain::{CollectionId, NewCollection, Task, TaskId, TaskStatus, TenantId};
use docent_fake_openai::{FakeConfig, FakeServer, Faults};

/// A CSV of `rows` one-number rows, as in the report.
fn numbers(rows: usize) -> Vec<u8> {
    let mut out = String::from("n\n");
    for i in 0..rows {
        out.push_str(&format!("{i}\n"));
    }
    out.into_bytes()
}

async fn collection(app: &common::TestApp, tenant: TenantId) -> CollectionId {
    app.services
        .store
        .ensure_tenant(tenant, &format!("t-{tenant}"))
        .await
        .unwrap();
    app.services
        .create_collection(
            tenant,
            NewCollection {
                name: "files".into(),
                description: None,
                metadata: Default::default(),
                language: Default::default(),
            },
        )
        .await
        .unwrap()
        .id
}

async fn upload(
    app: &common::TestApp,
    tenant: TenantId,
    coll: CollectionId,
    name: &str,
    bytes: Vec<u8>,
) -> TaskId {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
    let outcome = app
        .services
        .upload_document(
            tenant,
            coll,
            Upload {
                filename: name.into(),
                declared_mime: String::new(),
                metadata: Default::default(),
                body: Box::pin(body),
            },
        )
        .await
        .unwrap();
    outcome.task.expect("an ingest task").id
}

async fn task(app: &common::TestApp, tenant: TenantId, id: TaskId) -> Task {
    app.services.queue.get(tenant, id).await.unwrap()
}

/// Polls (every 10 ms, at most 60 s) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_upload_is_not_stuck_behind_another_workspaces_large_files() {
    let fake = FakeServer::start(FakeConfig {
        dimension: 16,
        faults: Faults {
            latency: Duration::from_millis(25),
            ..Faults::default()
        },
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let base_url = fake.base_url();
    let app = spawn_app_with(move |c| {
        c.embedder = docent_config::EmbedderConfig::Openai {
            base_url,
            model: docent_fake_openai::EMBED_MODEL.into(),
            api_key: None,
            api_key_file: None,
            dimension: Some(16),
            requests_per_second: 1000.0,
            tokens_per_minute: None,
            tenant_share: 1.0,
            batch_size: 16,
            batch_tokens: 300_000,
            max_attempts: 3,
            request_timeout: Duration::from_secs(10),
        };
        // Batches of 16 rows, one embedding request of 25 ms each: 600 rows take ~1 s.
        c.ingest.record_batch = 16;
        c.worker.concurrency = 2;
        c.server.run_workers = true;
        c.queue.max_running_per_tenant = 1;
    })
    .await;
    let (a, b) = (TenantId::new(), TenantId::new());
    let (coll_a, coll_b) = (collection(&app, a).await, collection(&app, b).await);

    let big = [
        upload(&app, a, coll_a, "one.csv", numbers(600)).await,
        upload(&app, a, coll_a, "two.csv", numbers(601)).await,
    ];
    // Both workers busy with A's files.
    until("both of A's files to be processing", async || {
        let mut running = 0;
        for id in big {
            if task(&app, a, id).await.status == TaskStatus::ProcessingChunks {
                running += 1;
            }
        }
        running == 2
    })
    .await;

    let small = upload(
        &app,
        b,
        coll_b,
        "hello.txt",
        b"hello from the other workspace".to_vec(),
    )
    .await;
    until("B's tiny file", async || {
        task(&app, b, small).await.status.is_terminal()
    })
    .await;
    assert_eq!(task(&app, b, small).await.status, TaskStatus::Completed);
    for id in big {
        let t = task(&app, a, id).await;
        assert!(
            !t.status.is_terminal(),
            "B's file finished only after A's {id} ({:?}, {}/{} chunks): it waited for a worker",
            t.status,
            t.progress.chunks_done,
            t.progress.chunks_total
        );
    }

    // A's files still finish, resumed from their checkpoints after yielding.
    until("A's files", async || {
        let mut done = 0;
        for id in big {
            if task(&app, a, id).await.status.is_terminal() {
                done += 1;
            }
        }
        done == 2
    })
    .await;
    for id in big {
        let t = task(&app, a, id).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
        assert_eq!(t.progress.chunks_done, t.progress.chunks_total);
    }
    app.stop().await;
}
