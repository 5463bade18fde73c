//! The worker's time limits (issue 19 item 7), on the real SQLite store and SQL queue.
//!
//! - Past the soft limit a record file stops after a committed batch and hands its lease back:
//!   no attempt is used, its progress and checkpoint stay, and the next lease resumes there —
//!   so a file needing more runs than `queue.max_attempts` still completes, each row embedded
//!   once.
//! - Past the hard limit the attempt fails with `task_timeout`, and the stuck call is dropped.
//!
//! The limits are tiny (a zero soft limit is past at once) and the embedder is a test double: a
//! model that never answers is what makes a task outlive its hard limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use docent_config::Config;
use docent_core::Services;
use docent_core::documents::Upload;
use docent_core::worker::{drain, run_leased};
use docent_domain::ports::Embedder;
use docent_domain::*;
use futures::StreamExt;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

mod common;

/// Records every text it embeds; with `hang`, never answers.
#[derive(Default)]
struct TestEmbedder {
    hang: bool,
    texts: Mutex<Vec<String>>,
    /// Calls dropped before they answered.
    dropped: Arc<AtomicUsize>,
}

/// Counts a call dropped before it finished.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Embedder for TestEmbedder {
    fn model_id(&self) -> &str {
        "test"
    }
    fn dimension(&self) -> usize {
        2
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if self.hang {
            let _counter = DropCounter(self.dropped.clone());
            std::future::pending::<()>().await;
        }
        self.texts.lock().unwrap().extend(texts.iter().cloned());
        Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
    }
}

struct App {
    svc: Services,
    embedder: Arc<TestEmbedder>,
    _dir: TempDir,
}

async fn app(embedder: TestEmbedder, set: impl FnOnce(&mut Config)) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    set(&mut config);
    let embedder = Arc::new(embedder);
    let svc = common::services(config, Some(embedder.clone() as Arc<dyn Embedder>)).await;
    App {
        svc,
        embedder,
        _dir: dir,
    }
}

/// Uploads `bytes` as `name` into a new collection of a new tenant; returns the tenant, the
/// document and its task.
async fn upload(
    svc: &Services,
    name: &str,
    bytes: &'static [u8],
) -> (TenantId, DocumentId, TaskId) {
    let (t, c) = common::tenant_with_collection(svc).await;
    let body =
        futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from_static(bytes)) });
    let out = svc
        .upload_document(
            t,
            c,
            Upload {
                filename: name.into(),
                declared_mime: String::new(),
                metadata: Metadata::new(),
                body: body.boxed(),
            },
        )
        .await
        .expect("upload");
    (t, out.document.id, out.task.expect("a task").id)
}

/// Leases the next task and runs it to an outcome, as a worker does.
async fn run_one(svc: &Services) -> Option<TaskStatus> {
    let lease = svc
        .queue
        .lease("w1", svc.config.queue.visibility_timeout)
        .await
        .expect("lease")
        .expect("a runnable task");
    run_leased(svc, lease, &CancellationToken::new()).await
}

const ROWS: &[u8] = b"{\"n\": 1, \"city\": \"Lyon\"}\n{\"n\": 2, \"city\": \"Nice\"}\n\
{\"n\": 3, \"city\": \"Metz\"}\n{\"n\": 4, \"city\": \"Caen\"}\n{\"n\": 5, \"city\": \"Pau\"}\n\
{\"n\": 6, \"city\": \"Albi\"}\n{\"n\": 7, \"city\": \"Agen\"}\n";

#[tokio::test]
async fn past_the_soft_limit_a_record_file_pauses_after_a_batch_and_resumes_there() {
    let app = app(TestEmbedder::default(), |c| {
        // Past at once: every run stops after its first committed batch.
        c.worker.soft_time_limit = Duration::ZERO;
        c.ingest.record_batch = 2;
        // Fewer attempts than the runs the file needs: a pause must not use one.
        c.queue.max_attempts = 2;
    })
    .await;
    let svc = &app.svc;
    let (t, doc, task) = upload(svc, "cities.jsonl", ROWS).await;

    assert_eq!(
        run_one(svc).await,
        Some(TaskStatus::Pending),
        "paused, not finished"
    );
    let paused = svc.queue.get(t, task).await.unwrap();
    assert_eq!(paused.status, TaskStatus::Pending);
    assert_eq!(paused.attempts, 0, "a pause uses no attempt: {paused:?}");
    assert!(paused.lease_owner.is_none(), "the lease is released");
    assert!(paused.error.is_none(), "{paused:?}");
    assert_eq!(paused.progress.chunks_total, 7, "{paused:?}");
    assert_eq!(
        paused.progress.chunks_done, 2,
        "the first batch's progress is kept"
    );
    let stored = svc.store.get_document(t, doc).await.unwrap();
    assert_eq!(stored.chunk_count, 2, "the first batch is committed");

    // Each further run commits one more batch; the last one completes.
    let more = drain(svc, "w2").await.unwrap();
    assert_eq!(more, 3, "four batches of at most two rows, one per run");
    let done = svc.queue.get(t, task).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert_eq!(
        done.attempts, 1,
        "only the run that finished counts: {done:?}"
    );
    assert_eq!(done.progress.chunks_done, 7);
    assert_eq!(svc.store.get_document(t, doc).await.unwrap().chunk_count, 7);
    // Every row was embedded exactly once: each run resumed after the checkpoint.
    let mut texts = app.embedder.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 7, "{texts:?}");
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 7, "a row was embedded twice");
}

#[tokio::test]
async fn the_soft_limit_lets_a_document_without_checkpoints_finish() {
    let app = app(TestEmbedder::default(), |c| {
        c.worker.soft_time_limit = Duration::ZERO;
    })
    .await;
    let svc = &app.svc;
    let (t, _, task) = upload(svc, "notes.md", b"# Notes\n\nA short note about Lyon.\n").await;
    assert_eq!(run_one(svc).await, Some(TaskStatus::Completed));
    let done = svc.queue.get(t, task).await.unwrap();
    assert_eq!((done.status, done.attempts), (TaskStatus::Completed, 1));
}

#[tokio::test]
async fn past_the_hard_limit_the_attempt_fails_with_task_timeout() {
    let embedder = TestEmbedder {
        hang: true,
        ..Default::default()
    };
    let dropped = embedder.dropped.clone();
    let app = app(embedder, |c| {
        c.worker.soft_time_limit = Duration::from_millis(50);
        c.worker.hard_time_limit = Duration::from_millis(200);
    })
    .await;
    let svc = &app.svc;
    for (name, bytes) in [
        ("stuck.md", &b"# Stuck\n\nThe model never answers.\n"[..]),
        ("stuck.jsonl", ROWS),
    ] {
        let (t, doc, task) = upload(svc, name, bytes).await;
        assert_eq!(run_one(svc).await, Some(TaskStatus::Failed), "{name}");
        let failed = svc.queue.get(t, task).await.unwrap();
        let error = failed.error.clone().expect("an error");
        assert_eq!(error.code, "task_timeout", "{name}: {failed:?}");
        assert!(error.message.contains("hard time limit"), "{error:?}");
        assert_eq!(failed.attempts, 1, "{name}: the attempt is used");
        assert!(
            failed.lease_owner.is_none(),
            "{name}: the lease is given up"
        );
        let d = svc.store.get_document(t, doc).await.unwrap();
        assert_eq!(
            d.status,
            TaskStatus::Failed,
            "{name}: the document shows it"
        );
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "each stuck call was dropped"
    );
}
