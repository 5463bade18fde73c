//! `docent ingest`: put files into a collection and wait until they are processed — on the
//! local data directory or through a server (`--url`). One state machine ([`run`]) over a
//! [`Target`] with a handful of verbs, implemented by [`LocalTarget`] and [`RemoteTarget`]:
//!
//! 1. Hash every file (sha256), then ask the target which of those contents the collection
//!    already holds ([`Target::lookup`], 200 hashes a call; through a server that is
//!    `POST …/documents/lookup`, a read, so skipping files never spends upload budget). Files
//!    already there — or with the same content as an earlier file of this run — are skipped,
//!    and so are files over the target's upload limit (reported failed, never sent).
//! 2. Upload the rest, one at a time (the client paces uploads and honours `Retry-After`). A
//!    failure of one file is recorded and the next goes on; a failure that every later file
//!    would meet too (no access, collection gone, server unreachable, refused for longer than
//!    the client waits) stops uploading.
//! 3. Unless `--no-wait`, wait for every document involved — uploaded now or found already
//!    there but unfinished, so a rerun finishes what an earlier run left — by looking them up
//!    again by content: one call per 200 documents per round, every 250 ms at first, the pause
//!    growing to [`MAX_POLL`]. Between rounds the target may process itself
//!    ([`Target::tick`]: the local target runs the queue when it holds the data directory).
//! 4. Always print the summary, also after a stop or Ctrl-C: one line per failed file with
//!    why, then the counts (uploaded, already present, completed, failed, still processing,
//!    not attempted) and how to follow what is still processing.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use docent_config::Config;
use docent_core::Services;
use docent_core::documents::Upload;
use docent_domain::{CollectionId, Document, PageRequest, TaskStatus, TenantId};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::client::{ApiError, Client, RetryNotice, TransportError};
use crate::datadir_lock::{Claim, DataDirLock, Holder};

/// The longest pause between two looks at the documents being processed.
pub const MAX_POLL: Duration = Duration::from_secs(5);
/// The first pause.
const FIRST_POLL: Duration = Duration::from_millis(250);

/// A document as the ingest follows it.
#[derive(Debug, Clone)]
pub struct Found {
    /// Document id.
    pub id: String,
    /// Hex sha256 of its content.
    pub sha256: String,
    /// Processing status.
    pub status: TaskStatus,
    /// Why processing failed (`code: message`).
    pub error: Option<String>,
}

impl From<Document> for Found {
    fn from(d: Document) -> Self {
        Self {
            id: d.id.to_string(),
            sha256: d.sha256,
            status: d.status,
            error: d.error.map(|e| format!("{}: {}", e.code, e.message)),
        }
    }
}

impl Found {
    /// A document as the API renders it.
    fn from_json(d: &Value) -> Self {
        let error = d["error"]["code"]
            .as_str()
            .map(|code| format!("{code}: {}", d["error"]["message"].as_str().unwrap_or("")));
        Self {
            id: d["id"].as_str().unwrap_or_default().to_owned(),
            sha256: d["sha256"].as_str().unwrap_or_default().to_owned(),
            status: d["status"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(TaskStatus::Pending),
            error,
        }
    }
}

/// What a lookup answers.
#[derive(Debug, Default)]
pub struct Lookup {
    /// The documents holding some of the contents asked for.
    pub found: Vec<Found>,
    /// The largest file the target takes, when it says.
    pub max_upload_size: Option<u64>,
}

/// Why an upload failed.
#[derive(Debug)]
pub enum UploadFailure {
    /// This file only; the next may go on.
    File(String),
    /// Every later file would fail the same way: stop uploading.
    Fatal(anyhow::Error),
}

/// A file to ingest.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size when hashed.
    pub size: u64,
    /// Hex sha256 of its content.
    pub sha256: String,
}

/// Where an ingest puts its files.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// The collection's documents holding any of `sha256` (at most 200).
    async fn lookup(&self, sha256: &[String]) -> anyhow::Result<Lookup>;
    /// Stores one file; `true` when the collection already held its content.
    async fn upload(&self, file: &LocalFile) -> Result<(Found, bool), UploadFailure>;
    /// Runs between two looks while waiting (the local target processes the queue there).
    async fn tick(&mut self) -> anyhow::Result<()>;
    /// How to follow documents still processing when the command ends.
    fn follow_up(&self) -> String;
}

/// The progress bar on screen, if any: retry notices are shown on it.
#[derive(Clone, Default)]
pub struct Bars(Arc<Mutex<Option<(ProgressBar, &'static str)>>>);

impl Bars {
    fn show(&self, len: usize, what: &'static str) -> ProgressBar {
        let pb = ProgressBar::new(len as u64);
        let style =
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        pb.set_style(style);
        pb.set_message(what);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((pb.clone(), what));
        pb
    }

    fn done(&self, pb: &ProgressBar) {
        pb.finish_and_clear();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Shows a client's retries on the current bar.
    pub fn retry_notice(&self) -> RetryNotice {
        let bars = self.clone();
        Arc::new(move |why: &str, wait: Duration| {
            if let Some((pb, what)) = &*bars.0.lock().unwrap_or_else(|p| p.into_inner()) {
                pb.set_message(format!(
                    "{what} (waiting {}s: {why})",
                    wait.as_secs_f32().ceil()
                ));
            }
        })
    }

    /// Puts the bar's own message back after a retry notice.
    fn reset_message(&self) {
        if let Some((pb, what)) = &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            pb.set_message(*what);
        }
    }
}

/// What became of one file.
#[derive(Debug, Clone)]
enum Fate {
    /// Sent now; the document of this content.
    Uploaded(String),
    /// Not sent: the collection already held this content (or an earlier file of this run).
    Present(String),
    /// Failed before a document existed.
    Failed(String),
    /// Never tried (stopped before).
    NotAttempted,
}

/// Every file's fate, the documents followed, and why the run stopped early (if it did).
struct Report {
    files: Vec<(String, Fate)>,
    docs: HashMap<String, Found>,
    stopped: Option<String>,
    interrupted: bool,
}

/// The counts of [`Report::summarize`].
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    uploaded: usize,
    present: usize,
    completed: usize,
    failed: Vec<(String, String)>,
    processing: usize,
    not_attempted: usize,
}

impl Report {
    fn summarize(&self) -> Counts {
        let mut c = Counts::default();
        for (shown, fate) in &self.files {
            let sha = match fate {
                Fate::Uploaded(sha) => {
                    c.uploaded += 1;
                    sha
                }
                Fate::Present(sha) => {
                    c.present += 1;
                    sha
                }
                Fate::Failed(why) => {
                    c.failed.push((shown.clone(), why.clone()));
                    continue;
                }
                Fate::NotAttempted => {
                    c.not_attempted += 1;
                    continue;
                }
            };
            match self.docs.get(sha) {
                Some(d) => match d.status {
                    TaskStatus::Completed | TaskStatus::PartiallyCompleted => c.completed += 1,
                    TaskStatus::Failed | TaskStatus::Cancelled => {
                        let why = d.error.clone().unwrap_or_else(|| d.status.to_string());
                        let why = match fate {
                            Fate::Present(_) => format!("{why} (stored earlier as {})", d.id),
                            _ => why,
                        };
                        c.failed.push((shown.clone(), why));
                    }
                    TaskStatus::Pending | TaskStatus::Processing | TaskStatus::ProcessingChunks => {
                        c.processing += 1
                    }
                },
                None => c.processing += 1,
            }
        }
        c
    }

    /// Prints the summary; the exit code says whether everything went in and (when waited
    /// for) was processed.
    fn print(&self, waited: bool, follow_up: &str) -> ExitCode {
        let c = self.summarize();
        for (file, why) in &c.failed {
            eprintln!("failed: {file}: {why}");
        }
        let n = self.files.len();
        let mut line = format!(
            "{n} file{}: {} uploaded, {} already present; {} completed, {} failed, {} still processing",
            if n == 1 { "" } else { "s" },
            c.uploaded,
            c.present,
            c.completed,
            c.failed.len(),
            c.processing
        );
        if c.not_attempted > 0 {
            line.push_str(&format!(", {} not attempted", c.not_attempted));
        }
        println!("{line}");
        if c.processing > 0 {
            println!("still processing: {}: {follow_up}", c.processing);
        }
        if let Some(why) = &self.stopped {
            eprintln!("stopped: {why}");
        }
        if self.interrupted {
            ExitCode::from(130)
        } else if c.failed.is_empty()
            && c.not_attempted == 0
            && self.stopped.is_none()
            && (c.processing == 0 || !waited)
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Size and hex sha256 of a file, read in blocks.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hex::encode(hasher.finalize())));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}

/// Ingests `paths` into `target` (see the module docs); the summary is printed whatever
/// happens, and `stop` (Ctrl-C) ends the run early with it.
pub async fn run<T: Target>(
    target: &mut T,
    paths: &[PathBuf],
    wait: bool,
    bars: &Bars,
    stop: &CancellationToken,
) -> ExitCode {
    let mut report = Report {
        files: paths
            .iter()
            .map(|p| (p.display().to_string(), Fate::NotAttempted))
            .collect(),
        docs: HashMap::new(),
        stopped: None,
        interrupted: false,
    };
    let files = hash_all(paths, &mut report, bars, stop).await;
    if !stop.is_cancelled() {
        upload_all(target, &files, &mut report, bars, stop).await;
    }
    if wait && report.stopped.is_none() && !stop.is_cancelled() {
        wait_all(target, &mut report, bars, stop).await;
    }
    report.interrupted = stop.is_cancelled();
    if report.interrupted && report.stopped.is_none() {
        report.stopped = Some("interrupted".into());
    }
    report.print(wait, &target.follow_up())
}

/// Hashes every file; an unreadable one is failed. Returns `(index in report, file)`.
async fn hash_all(
    paths: &[PathBuf],
    report: &mut Report,
    bars: &Bars,
    stop: &CancellationToken,
) -> Vec<(usize, LocalFile)> {
    let pb = bars.show(paths.len(), "hashing");
    let mut files = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        if stop.is_cancelled() {
            break;
        }
        let p = path.clone();
        match tokio::task::spawn_blocking(move || hash_file(&p)).await {
            Ok(Ok((size, sha256))) => files.push((
                i,
                LocalFile {
                    path: path.clone(),
                    size,
                    sha256,
                },
            )),
            Ok(Err(e)) => report.files[i].1 = Fate::Failed(format!("reading the file: {e}")),
            Err(e) => report.files[i].1 = Fate::Failed(format!("reading the file: {e}")),
        }
        pb.inc(1);
    }
    bars.done(&pb);
    files
}

/// Looks `hashes` up in batches, adding what is found to `report.docs`; the target's upload
/// limit, when it gave one.
async fn lookup_all<T: Target>(
    target: &T,
    hashes: &[String],
    report: &mut Report,
) -> anyhow::Result<Option<u64>> {
    let mut limit = None;
    for batch in hashes.chunks(PageRequest::MAX_LIMIT as usize) {
        let answer = target.lookup(batch).await?;
        limit = answer.max_upload_size.or(limit);
        for d in answer.found {
            report.docs.insert(d.sha256.clone(), d);
        }
    }
    Ok(limit)
}

async fn upload_all<T: Target>(
    target: &T,
    files: &[(usize, LocalFile)],
    report: &mut Report,
    bars: &Bars,
    stop: &CancellationToken,
) {
    let mut hashes: Vec<String> = files.iter().map(|(_, f)| f.sha256.clone()).collect();
    hashes.sort();
    hashes.dedup();
    let limit = tokio::select! {
        r = lookup_all(target, &hashes, report) => r,
        () = stop.cancelled() => return,
    };
    let limit = match limit {
        Ok(l) => l,
        Err(e) => {
            report.stopped = Some(format!(
                "asking which files the collection already has: {e:#}"
            ));
            return;
        }
    };
    let pb = bars.show(files.len(), "uploading");
    for (i, file) in files {
        if stop.is_cancelled() || report.stopped.is_some() {
            break;
        }
        let fate = if report.docs.contains_key(&file.sha256) {
            Fate::Present(file.sha256.clone())
        } else if let Some(max) = limit.filter(|max| file.size > *max) {
            Fate::Failed(format!(
                "{} is over the largest upload the server takes, {} (`ingest.max_upload_size`); not sent",
                bytesize::ByteSize::b(file.size).display().iec(),
                bytesize::ByteSize::b(max).display().iec(),
            ))
        } else {
            let outcome = tokio::select! {
                r = target.upload(file) => r,
                () = stop.cancelled() => break,
            };
            match outcome {
                Ok((mut found, duplicate)) => {
                    // Followed by the content hashed here, whatever the answer said.
                    found.sha256.clone_from(&file.sha256);
                    report.docs.insert(file.sha256.clone(), found);
                    if duplicate {
                        Fate::Present(file.sha256.clone())
                    } else {
                        Fate::Uploaded(file.sha256.clone())
                    }
                }
                Err(UploadFailure::File(why)) => Fate::Failed(why),
                Err(UploadFailure::Fatal(e)) => {
                    report.stopped = Some(format!("{e:#}"));
                    break;
                }
            }
        };
        report.files[*i].1 = fate;
        bars.reset_message();
        pb.inc(1);
    }
    bars.done(&pb);
}

/// Waits until every document involved has finished (or the run is stopped).
async fn wait_all<T: Target>(
    target: &mut T,
    report: &mut Report,
    bars: &Bars,
    stop: &CancellationToken,
) {
    let unfinished = |report: &Report| -> Vec<String> {
        let mut v: Vec<String> = report
            .docs
            .values()
            .filter(|d| !d.status.is_terminal())
            .map(|d| d.sha256.clone())
            .collect();
        v.sort();
        v
    };
    let total = unfinished(report).len();
    if total == 0 {
        return;
    }
    let pb = bars.show(total, "processing");
    pb.enable_steady_tick(Duration::from_millis(200));
    let mut pause = FIRST_POLL;
    loop {
        let round = async {
            target.tick().await?;
            lookup_all(target, &unfinished(report), report).await
        };
        let outcome = tokio::select! {
            r = round => r,
            () = stop.cancelled() => break,
        };
        if let Err(e) = outcome {
            report.stopped = Some(format!("following the processing: {e:#}"));
            break;
        }
        let left = unfinished(report).len();
        pb.set_position((total - left.min(total)) as u64);
        bars.reset_message();
        if left == 0 {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => break,
        }
        pause = (pause * 3 / 2).min(MAX_POLL);
    }
    bars.done(&pb);
}

/// Ingest into the local data directory, in the default workspace.
pub struct LocalTarget {
    svc: Services,
    collection: CollectionId,
    processing: Processing,
}

/// Who processes what a local ingest queues.
#[derive(Debug)]
pub enum Processing {
    /// This process (holding the data directory's lock where the index needs one).
    Here(Option<DataDirLock>),
    /// The process holding the lock (a server's workers); this one takes over if it goes.
    There(Holder),
    /// Nobody now (`--no-wait`): the tasks wait in the queue.
    Later,
}

impl Processing {
    /// Decides before anything is stored: process here when the data directory is free, hand
    /// the work to the holder's workers when it has some, refuse when nothing would process
    /// (a server running without workers).
    pub fn decide(config: &Config, wait: bool) -> anyhow::Result<Self> {
        if !wait {
            return Ok(Processing::Later);
        }
        if !DataDirLock::needed(config) {
            return Ok(Processing::Here(None));
        }
        match DataDirLock::claim(config, Holder::me("ingest", true))? {
            Claim::Acquired(lock) => Ok(Processing::Here(Some(lock))),
            Claim::Held(holder) if !holder.workers => anyhow::bail!(
                "{} is using the data directory {} and runs no workers, so nothing would \
                 process these files (nothing was stored): restart it with its workers, or stop \
                 it to ingest here (`--no-wait` stores the files and leaves them queued)",
                holder.describe(),
                config.data_dir.display(),
            ),
            Claim::Held(holder) => {
                eprintln!(
                    "{} is using this data directory: its workers process these files while \
                     this command waits",
                    holder.describe()
                );
                Ok(Processing::There(holder))
            }
        }
    }
}

impl LocalTarget {
    /// The target for `collection` (created if missing, with `language`).
    pub async fn open(
        svc: Services,
        collection: &str,
        language: Option<docent_domain::TextLanguage>,
        processing: Processing,
    ) -> anyhow::Result<Self> {
        let coll = svc
            .collection_by_name_or_create(TenantId::DEFAULT, collection, language)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Self {
            svc,
            collection: coll.id,
            processing,
        })
    }

    /// Runs workers in this process until no task is runnable.
    async fn process_here(&self) -> anyhow::Result<()> {
        let n = self.svc.config.worker.concurrency;
        let runs = (0..n).map(|i| {
            let svc = self.svc.clone();
            async move {
                docent_core::worker::drain(&svc, &format!("cli-{}-{i}", std::process::id())).await
            }
        });
        for r in futures::future::join_all(runs).await {
            r.map_err(|e| anyhow::anyhow!(e))?;
        }
        Ok(())
    }
}

impl Target for LocalTarget {
    async fn lookup(&self, sha256: &[String]) -> anyhow::Result<Lookup> {
        let found = self
            .svc
            .documents_by_content(TenantId::DEFAULT, self.collection, sha256)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Lookup {
            found: found.into_iter().map(Found::from).collect(),
            max_upload_size: Some(self.svc.config.ingest.max_upload_size.as_u64()),
        })
    }

    async fn upload(&self, file: &LocalFile) -> Result<(Found, bool), UploadFailure> {
        let opened = tokio::fs::File::open(&file.path)
            .await
            .with_context(|| format!("opening {}", file.path.display()))
            .map_err(|e| UploadFailure::File(format!("{e:#}")))?;
        let filename = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let upload = Upload {
            filename,
            declared_mime: String::new(),
            metadata: Default::default(),
            body: tokio_util::io::ReaderStream::new(opened).boxed(),
        };
        match self
            .svc
            .upload_document(TenantId::DEFAULT, self.collection, upload)
            .await
        {
            Ok(o) => Ok((o.document.into(), o.duplicate)),
            Err(e) => Err(UploadFailure::File(format!("{}: {}", e.code, e.message))),
        }
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        if let Processing::There(holder) = &self.processing {
            // Reading the holder may wait a little for it to write its details: off the runtime.
            let config = self.svc.config.clone();
            let claim = tokio::task::spawn_blocking(move || {
                DataDirLock::claim(&config, Holder::me("ingest", true))
            })
            .await??;
            match claim {
                Claim::Acquired(lock) => {
                    eprintln!(
                        "{} has stopped: processing the rest here",
                        holder.describe()
                    );
                    self.processing = Processing::Here(Some(lock));
                }
                Claim::Held(now) => self.processing = Processing::There(now),
            }
        }
        match self.processing {
            Processing::Here(_) => self.process_here().await,
            Processing::There(_) | Processing::Later => Ok(()),
        }
    }

    fn follow_up(&self) -> String {
        match &self.processing {
            Processing::There(h) => format!(
                "{} is processing them; run the same `docent ingest` again to wait for them \
                 (files already stored are skipped), or see `docent tasks`",
                h.describe()
            ),
            Processing::Here(_) => "run the same `docent ingest` again to finish them (files \
                                    already stored are skipped), or see `docent tasks`"
                .into(),
            Processing::Later => "queued; they are processed by `docent serve` or `docent \
                                  worker` on this data directory, or by a `docent ingest` \
                                  that waits; `docent tasks` lists them"
                .into(),
        }
    }
}

/// Ingest through a server's API.
pub struct RemoteTarget {
    client: Client,
    collection: String,
}

impl RemoteTarget {
    /// The target for the collection with id `collection` on the client's server.
    pub fn new(client: Client, collection: String) -> Self {
        Self { client, collection }
    }
}

impl Target for RemoteTarget {
    async fn lookup(&self, sha256: &[String]) -> anyhow::Result<Lookup> {
        let path = format!("/api/v1/collections/{}/documents/lookup", self.collection);
        let answer = self
            .client
            .post(&path, &serde_json::json!({ "sha256": sha256 }))
            .await?;
        Ok(Lookup {
            found: answer["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Found::from_json)
                .collect(),
            max_upload_size: answer["max_upload_size"].as_u64(),
        })
    }

    async fn upload(&self, file: &LocalFile) -> Result<(Found, bool), UploadFailure> {
        let e = match self
            .client
            .upload(&self.collection, &file.path, file.size)
            .await
        {
            Ok(v) => return Ok((Found::from_json(&v["document"]), v["duplicate"] == true)),
            Err(e) => e,
        };
        if let Some(api) = e.downcast_ref::<ApiError>() {
            // No access, no collection, or refused for longer than the client waits: the same
            // for every later file.
            let fatal = matches!(
                api.status,
                StatusCode::UNAUTHORIZED
                    | StatusCode::FORBIDDEN
                    | StatusCode::NOT_FOUND
                    | StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::SERVICE_UNAVAILABLE
            );
            let why = match api.code.as_str() {
                "insufficient_scope" | "insufficient_role" => format!(
                    "{api} (uploading needs a read_write API key, or the access token of a \
                     member, admin or owner, in DOCENT_TOKEN)"
                ),
                _ => api.to_string(),
            };
            return Err(if fatal {
                UploadFailure::Fatal(anyhow::anyhow!(why))
            } else {
                UploadFailure::File(why)
            });
        }
        if e.downcast_ref::<TransportError>().is_some() {
            // Still answering: something about this file (e.g. a proxy in between refusing a
            // body this large before reading it, which looks like a reset connection).
            if self.client.reachable().await {
                return Err(UploadFailure::File(format!(
                    "{e:#} (the server still answers: something refused this file, e.g. a \
                     proxy's body size limit)"
                )));
            }
            return Err(UploadFailure::Fatal(e));
        }
        Err(UploadFailure::File(format!("{e:#}")))
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn follow_up(&self) -> String {
        format!(
            "the server is processing them; run the same `docent ingest` again to wait for them \
             (files already uploaded are skipped), or see `docent tasks --url {}`",
            self.client.base()
        )
    }
}

/// Cancelled on the first Ctrl-C (the run stops and prints its summary); a second one exits
/// at once.
pub fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("interrupted: stopping to print the summary (Ctrl-C again to quit at once)");
        t.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(sha: &str, status: TaskStatus, error: Option<&str>) -> Found {
        Found {
            id: format!("doc-{sha}"),
            sha256: sha.into(),
            status,
            error: error.map(Into::into),
        }
    }

    #[test]
    fn every_file_lands_in_exactly_one_count() {
        let docs = [
            found("a", TaskStatus::Completed, None),
            found("b", TaskStatus::Failed, Some("unsupported_format: png")),
            found("c", TaskStatus::Processing, None),
            found("d", TaskStatus::Failed, Some("extraction_failed: bad")),
        ];
        let report = Report {
            files: vec![
                ("a.md".into(), Fate::Uploaded("a".into())),
                ("b.png".into(), Fate::Uploaded("b".into())),
                ("c.md".into(), Fate::Uploaded("c".into())),
                ("a-copy.md".into(), Fate::Present("a".into())),
                ("d.pdf".into(), Fate::Present("d".into())),
                ("big.bin".into(), Fate::Failed("over the limit".into())),
                ("later.md".into(), Fate::NotAttempted),
            ],
            docs: docs.into_iter().map(|d| (d.sha256.clone(), d)).collect(),
            stopped: None,
            interrupted: false,
        };
        assert_eq!(
            report.summarize(),
            Counts {
                uploaded: 3,
                present: 2,
                completed: 2,
                failed: vec![
                    ("b.png".into(), "unsupported_format: png".into()),
                    (
                        "d.pdf".into(),
                        "extraction_failed: bad (stored earlier as doc-d)".into()
                    ),
                    ("big.bin".into(), "over the limit".into()),
                ],
                processing: 1,
                not_attempted: 1,
            }
        );
    }

    #[test]
    fn hashes_are_the_sha256_of_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hash_file(&p).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            )
        );
    }
}
