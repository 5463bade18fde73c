//! Tests against the real `docent` binary as a child process: kill -9 mid-run and restart,
//! graceful shutdown on SIGTERM, `/health` soon after start, and the CLI.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::markdown_doc;
use common::servers::free_port;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_docent");

struct Server {
    child: Child,
    base: String,
}

fn start(data: &Path, port: u16, extra_env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DOCENT__DATA_DIR", data)
        .env("DOCENT__QUEUE__VISIBILITY_TIMEOUT", "2s")
        .env("DOCENT__QUEUE__BACKOFF_BASE", "100ms")
        .env("DOCENT__QUEUE__POLL_INTERVAL", "50ms")
        .env("DOCENT__WORKER__CONCURRENCY", "2")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__AUTH__MODE", "none")
        .env_remove("DOCENT_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("docent starts");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_collection(client: &reqwest::Client, base: &str, name: &str) -> String {
    let body: Value = client
        .post(format!("{base}/api/v1/collections"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    cid: &str,
    name: String,
    bytes: Vec<u8>,
) -> Value {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name),
    );
    let r = client
        .post(format!("{base}/api/v1/collections/{cid}/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// All documents of a collection, following pagination.
async fn documents(client: &reqwest::Client, base: &str, cid: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            client,
            format!("{base}/api/v1/collections/{cid}/documents?limit=200{cursor}"),
        )
        .await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

async fn wait_all_terminal(
    client: &reqwest::Client,
    base: &str,
    cid: &str,
    n: usize,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let docs = documents(client, base, cid).await;
        let done = docs
            .iter()
            .filter(|d| {
                ["completed", "failed", "cancelled", "partially_completed"]
                    .contains(&d["status"].as_str().unwrap())
            })
            .count();
        if docs.len() == n && done == n {
            return docs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{done}/{n} documents finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every document completed, with exactly one task (completed) and exactly its chunks.
async fn assert_completed_exactly_once(
    client: &reqwest::Client,
    base: &str,
    docs: &[Value],
) -> usize {
    let mut redelivered = 0;
    for d in docs {
        let id = d["id"].as_str().unwrap();
        assert_eq!(d["status"], "completed", "{d}");
        let tasks = get(client, format!("{base}/api/v1/tasks?document_id={id}")).await;
        let tasks = tasks["items"].as_array().unwrap();
        assert_eq!(tasks.len(), 1, "one task per document: {tasks:?}");
        assert_eq!(tasks[0]["status"], "completed");
        if tasks[0]["attempts"].as_u64().unwrap() > 1 {
            redelivered += 1;
        }
        let mut ordinals: Vec<u64> = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = get(
                client,
                format!("{base}/api/v1/documents/{id}/chunks?limit=200{cursor}"),
            )
            .await;
            ordinals.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["ordinal"].as_u64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        let n = d["chunk_count"].as_u64().unwrap();
        assert!(n > 0);
        assert!(
            ordinals.iter().copied().eq(0..n),
            "chunks of {id} must be exactly 0..{n} with no duplicates ({} listed)",
            ordinals.len()
        );
    }
    redelivered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_completes_every_document_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = reqwest::Client::new();
    let server = start(dir.path(), port, &[]);
    let healthy_after = wait_healthy(&client, &server.base).await;
    eprintln!("/health answered {healthy_after:?} after start");

    let cid = create_collection(&client, &server.base, "crash").await;
    // Large documents so that tasks are still running when the process dies.
    for i in 0..50 {
        upload(
            &client,
            &server.base,
            &cid,
            format!("doc-{i}.md"),
            markdown_doc(i, 400),
        )
        .await;
    }
    // Wait until a task is mid-run, then kill -9.
    let started = Instant::now();
    loop {
        let running = get(
            &client,
            format!("{}/api/v1/tasks?status=processing", server.base),
        )
        .await;
        let chunks = get(
            &client,
            format!("{}/api/v1/tasks?status=processing_chunks", server.base),
        )
        .await;
        if !running["items"].as_array().unwrap().is_empty()
            || !chunks["items"].as_array().unwrap().is_empty()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no task ever ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    drop(server);

    let server = start(dir.path(), port, &[]);
    wait_healthy(&client, &server.base).await;
    let docs = wait_all_terminal(&client, &server.base, &cid, 50).await;
    let redelivered = assert_completed_exactly_once(&client, &server.base, &docs).await;
    // The task that was running when the process died ran again after its lease lapsed.
    assert!(
        redelivered >= 1,
        "no task was re-delivered; the kill did not hit a running task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code)]
async fn sigterm_stops_gracefully_and_releases_work() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = reqwest::Client::new();
    let mut server = start(
        dir.path(),
        port,
        &[("DOCENT__SERVER__SHUTDOWN_GRACE", "50ms")],
    );
    wait_healthy(&client, &server.base).await;
    let cid = create_collection(&client, &server.base, "term").await;
    for i in 0..20 {
        upload(
            &client,
            &server.base,
            &cid,
            format!("doc-{i}.md"),
            markdown_doc(i, 400),
        )
        .await;
    }
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "docent did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    drop(server);

    // Nothing is left leased: a restart finishes everything at once, without waiting for
    // lapsed leases, and no attempt was used up by the shutdown.
    let server = start(
        dir.path(),
        port,
        &[("DOCENT__QUEUE__VISIBILITY_TIMEOUT", "10m")],
    );
    wait_healthy(&client, &server.base).await;
    let docs = wait_all_terminal(&client, &server.base, &cid, 20).await;
    let redelivered = assert_completed_exactly_once(&client, &server.base, &docs).await;
    assert_eq!(
        redelivered, 0,
        "interrupted tasks were released without using up an attempt"
    );
}

#[test]
fn cli_ingest_tasks_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("a.md"), "# A\n\nalpha text").unwrap();
    std::fs::write(files.join("sub/b.txt"), "beta text").unwrap();
    std::fs::write(files.join("sub/c.png"), b"\x89PNG\r\n\x1a\n\x00\x00").unwrap();
    std::fs::write(files.join(".hidden"), "skipped").unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("DOCENT__DATA_DIR", &data)
            .env("DOCENT__LLM__KIND", "none")
            .env("DOCENT__EMBEDDER__KIND", "none")
            .env_remove("DOCENT_CONFIG")
            .env_remove("DOCENT_URL")
            .output()
            .unwrap()
    };
    let out = run(&["ingest", files.to_str().unwrap(), "--collection", "notes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a failed file makes the exit code non-zero"
    );
    assert!(
        stdout.contains(
            "3 files: 3 uploaded, 0 already present; 2 completed, 1 failed, 0 still processing"
        ),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("c.png") && stderr.contains("unsupported_format"),
        "{stderr}"
    );

    let out = run(&["tasks", "--status", "failed"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("unsupported_format"));
    let out = run(&["tasks", "--status", "bogus"]);
    assert!(!out.status.success());

    let out = run(&["config", "show"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("data_dir"), "{shown}");
    assert!(shown.contains("[queue]"));
    let out = Command::new(BIN)
        .args(["config", "show"])
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__LLM__KIND", "openai")
        .env("DOCENT__LLM__BASE_URL", "http://127.0.0.1:9/v1")
        .env("DOCENT__LLM__MODEL", "m")
        .env("DOCENT__LLM__API_KEY", "sk-canary-do-not-print")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !shown.contains("sk-canary-do-not-print") && shown.contains("[redacted]"),
        "{shown}"
    );
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("DOCENT__WORKER__CONCURRENCY", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.concurrency"));

    let out = run(&["migrate"]);
    assert!(out.status.success());

    // Indexes are derived data: wipe them, rebuild from the database, search again.
    std::fs::remove_dir_all(data.join("index")).unwrap();
    let out = run(&["search", "alpha"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no results"),
        "index gone: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["reindex"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reindexed 2 chunks"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["search", "alpha", "--collection", "notes"]);
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && found.contains("a.md"), "{found}");
    let out = run(&["search", "text", "--group-by", "document"]);
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && found.contains("a.md") && found.contains("b.txt"),
        "{found}"
    );

    // A collection's language is chosen when it is created, and fixed.
    let german = dir.path().join("german");
    std::fs::create_dir_all(&german).unwrap();
    std::fs::write(german.join("h.md"), "# Häuser\n\nDie Häuser der Stadt").unwrap();
    let out = run(&[
        "ingest",
        german.to_str().unwrap(),
        "--collection",
        "akten",
        "--language",
        "de",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["search", "Haus", "--collection", "akten"]);
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(found.contains("h.md"), "German stemming: {found}");
    let out = run(&[
        "ingest",
        german.to_str().unwrap(),
        "--collection",
        "notes",
        "--language",
        "de",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fixed at creation"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "ingest",
        german.to_str().unwrap(),
        "--collection",
        "x",
        "--language",
        "xx",
    ]);
    assert!(!out.status.success(), "an unknown language is refused");
    let out = run(&["ask", "what about beta text"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("b.txt"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docent-extract/tests/fixtures/headings_list_table_footnote.docx"
    );
    let out = run(&["extract", fixture, "--chunks", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "Docx Sample");
    assert_eq!(v["blocks"][0]["kind"], "heading1");
    assert!(!v["chunks"].as_array().unwrap().is_empty());
    let out = run(&["extract", files.join("sub/c.png").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported_format"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_ingest_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = reqwest::Client::new();
    let server = start(&dir.path().join("data"), port, &[]);
    wait_healthy(&client, &server.base).await;
    let file = dir.path().join("remote.md");
    std::fs::write(&file, "# Remote\n\nuploaded over HTTP").unwrap();
    let out = tokio::task::spawn_blocking({
        let base = server.base.clone();
        move || {
            Command::new(BIN)
                .args([
                    "ingest",
                    file.to_str().unwrap(),
                    "--collection",
                    "remote",
                    "--url",
                    &base,
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "1 file: 1 uploaded, 0 already present; 1 completed, 0 failed, 0 still processing"
        ),
        "{stdout}"
    );
    let out = Command::new(BIN)
        .args(["tasks", "--url", &server.base])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("completed"));
}

/// `docent serve` with `auth.mode = "none"` set explicitly (and nothing else about auth) on
/// `bind`, stderr captured.
fn serve_mode_none(data: &Path, bind: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--bind", bind])
        .env("DOCENT__DATA_DIR", data)
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__AUTH__MODE", "none")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env_remove("DOCENT_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_none_is_refused_beyond_loopback_and_loud_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = serve_mode_none(&data, &format!("0.0.0.0:{}", free_port()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to start") && stderr.contains("auth.mode = \"none\""),
        "{stderr}"
    );

    let port = free_port();
    let child = serve_mode_none(&data, &format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.base).await;
    let r = client
        .get(format!("{}/api/v1/collections", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "open on loopback");
    let _ = server.child.kill();
    let _ = server.child.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("AUTHENTICATION IS DISABLED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_config_needs_a_token_and_the_printed_setup_gives_one() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing about auth in the environment: the defaults.
    let child = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DOCENT__DATA_DIR", dir.path().join("data"))
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env("DOCENT__AUTH__PASSWORD__MEMORY_KIB", "64")
        .env("DOCENT__AUTH__PASSWORD__ITERATIONS", "1")
        .env_remove("DOCENT_CONFIG")
        .env_remove("DOCENT__AUTH__MODE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    // The banner: the token on its own line, and the curl that completes setup.
    // The reader keeps draining stderr after the banner, so the server never writes into a
    // closed pipe.
    let stderr = server.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        let mut sent = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                banner.push_str(&line);
                banner.push('\n');
                if line.contains("docent users create") {
                    let _ = tx.send(std::mem::take(&mut banner));
                    sent = true;
                }
            }
        }
    });
    let banner = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the setup banner");
    assert!(banner.contains("/api/v1/setup"), "{banner}");
    assert!(
        banner.contains("curl -sS --fail-with-body -X POST"),
        "{banner}"
    );
    // The link opens the console with the token in the fragment (never sent to the server).
    let link = banner
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/#/setup?token="))
        .expect("the setup link line");
    assert!(link.starts_with(&server.base), "{link}");
    let token = link
        .split("token=")
        .nth(1)
        .expect("the token in the link")
        .to_owned();
    assert!(
        banner.contains(&format!("\"token\": \"{token}\"")),
        "{banner}"
    );

    let client = reqwest::Client::new();
    wait_healthy(&client, &server.base).await;
    let collections = format!("{}/api/v1/collections", server.base);
    let r = client.get(&collections).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API is closed without a token");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");

    let r = client
        .post(format!("{}/api/v1/setup", server.base))
        .json(&json!({ "token": token, "email": "you@example.com", "password": "a long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let session: Value = r.json().await.unwrap();
    let access = session["access_token"].as_str().unwrap();
    let r = client
        .post(&collections)
        .bearer_auth(access)
        .json(&json!({ "name": "handbook" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .get(&collections)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"][0]["name"], "handbook", "{list}");
    let _ = server.child.kill();
}

/// Runs the binary with `args` and `env` on a blocking thread; stdout and stderr as text.
async fn docent(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .env_remove("DOCENT_CONFIG")
            .env_remove("DOCENT_URL")
            .env_remove("DOCENT_TOKEN");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary directory with a data directory and a folder of files to ingest.
struct Folder {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    files: std::path::PathBuf,
}

impl Folder {
    /// `files/NAME` for each `(NAME, bytes)`.
    fn new(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (data, folder) = (dir.path().join("data"), dir.path().join("files"));
        std::fs::create_dir_all(&folder).unwrap();
        for (name, bytes) in files {
            std::fs::write(folder.join(name), bytes).unwrap();
        }
        Self {
            _dir: dir,
            data,
            files: folder,
        }
    }

    /// The environment of a local command on the data directory: no embedder, quiet, plus
    /// `extra`.
    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("DOCENT__DATA_DIR", self.data.to_str().unwrap()),
            ("DOCENT__EMBEDDER__KIND", "none"),
            ("DOCENT__LOG__LEVEL", "warn"),
        ];
        env.extend_from_slice(extra);
        env
    }

    /// `docent ingest FILES --collection NAME` with `env` and `args` added.
    async fn ingest(
        &self,
        collection: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (bool, String, String) {
        let mut all = vec![
            "ingest",
            self.files.to_str().unwrap(),
            "--collection",
            collection,
        ];
        all.extend_from_slice(args);
        docent(&all, env).await
    }
}

/// The `docent_http_requests_total` count of `method route`, over every status (or only
/// `status`), from `/metrics`.
async fn requests(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    route: &str,
    status: Option<&str>,
) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("docent_http_requests_total{"))
        .filter(|l| l.contains(&format!("method=\"{method}\"")))
        .filter(|l| l.contains(&format!("route=\"{route}\"")))
        .filter(|l| status.is_none_or(|s| l.contains(&format!("status=\"{s}\""))))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Issue 15 item 1: a folder much larger than the upload burst (20) goes through a server with
/// the default configuration (built-in accounts, default rate limits) in one run; a rerun
/// uploads nothing; a read-only key stops at the first file with a summary that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_ingest_through_a_default_server_finishes_and_a_rerun_sends_nothing() {
    const FILES: usize = 50;
    // Plus one with the same content as doc-000: stored once.
    let folder = Folder::new(
        (0..FILES)
            .map(|i| (format!("doc-{i:03}.md"), markdown_doc(i, 2)))
            .chain([("copy-of-0.md".to_owned(), markdown_doc(0, 2))]),
    );
    let base_env = folder.env(&[]);
    // Keys made by the operator before the server starts.
    let key = |read_only: bool| {
        let base_env = &base_env;
        async move {
            let mut args = vec!["keys", "create", "--name", "bulk"];
            if read_only {
                args.push("--read-only");
            }
            let (ok, out, err) = docent(&args, base_env).await;
            assert!(ok, "{err}");
            out.trim().to_owned()
        }
    };
    let (write_key, read_key) = (key(false).await, key(true).await);

    let port = free_port();
    let client = reqwest::Client::new();
    let server = start(&folder.data, port, &[("DOCENT__AUTH__MODE", "builtin")]);
    wait_healthy(&client, &server.base).await;
    let upload_route = "/api/v1/collections/{id}/documents";
    let lookup_route = "/api/v1/collections/{id}/documents/lookup";

    let url = ["--url", server.base.as_str()];
    let (ok, out, err) = folder
        .ingest("bulk", &url, &[("DOCENT_TOKEN", &write_key)])
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{} files: {FILES} uploaded, 1 already present; {} completed, 0 failed, 0 still processing",
            FILES + 1,
            FILES + 1
        )),
        "{out}\n{err}"
    );
    let uploads = requests(&client, &server.base, "POST", upload_route, None).await;
    let accepted = requests(&client, &server.base, "POST", upload_route, Some("202")).await;
    assert_eq!(accepted, FILES as u64, "every distinct file uploaded once");
    assert!(uploads >= accepted);
    // One lookup before uploading, then one per round of waiting: never one per document.
    let lookups = requests(&client, &server.base, "POST", lookup_route, None).await;
    assert!((2..=12).contains(&lookups), "{lookups} lookups");
    assert_eq!(
        requests(&client, &server.base, "GET", "/api/v1/documents/{id}", None).await,
        0,
        "no polling of single documents"
    );

    // A rerun finds everything there: no upload request at all.
    let (ok, out, err) = folder
        .ingest("bulk", &url, &[("DOCENT_TOKEN", &write_key)])
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{n} files: 0 uploaded, {n} already present; {n} completed, 0 failed, 0 still processing",
            n = FILES + 1
        )),
        "{out}\n{err}"
    );
    assert_eq!(
        requests(&client, &server.base, "POST", upload_route, None).await,
        uploads,
        "the rerun sent no upload"
    );

    // A read-only key: refused at the first new file, the rest not attempted, and the
    // summary says so and why.
    let more = Folder::new((0..3).map(|i| (format!("new-{i}.md"), markdown_doc(1000 + i, 1))));
    let (ok, out, err) = more
        .ingest("bulk", &url, &[("DOCENT_TOKEN", &read_key)])
        .await;
    assert!(!ok);
    assert!(
        out.contains(
            "3 files: 0 uploaded, 0 already present; 0 completed, 0 failed, 0 still processing, 3 not attempted"
        ),
        "{out}\n{err}"
    );
    assert!(
        err.contains("stopped: ") && err.contains("403") && err.contains("read_write"),
        "{err}"
    );
}

/// Issue 15 item 2: `docent ingest` without `--url` next to a running server stores the
/// documents and lets the server's workers process them (no second index writer, nothing
/// dead-lettered, nothing reported failed while it was still processing); reindexing and a
/// second server or worker on the same data directory are refused with one clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_ingest_next_to_a_running_server_hands_the_work_to_it() {
    const FILES: usize = 12;
    // Large enough that several are in flight at once.
    let folder = Folder::new((0..FILES).map(|i| (format!("doc-{i:02}.md"), markdown_doc(i, 150))));
    let local_env = folder.env(&[("DOCENT__AUTH__MODE", "none")]);
    let files = &folder.files;

    let port = free_port();
    let client = reqwest::Client::new();
    let server = start(&folder.data, port, &[]);
    wait_healthy(&client, &server.base).await;
    // The server has written its index already (and so holds the index's writer), as in the
    // report: one document through its API first.
    let first = create_collection(&client, &server.base, "first").await;
    upload(
        &client,
        &server.base,
        &first,
        "first.md".into(),
        markdown_doc(500, 2),
    )
    .await;
    wait_all_terminal(&client, &server.base, &first, 1).await;

    let (ok, out, err) = folder.ingest("side", &[], &local_env).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{FILES} files: {FILES} uploaded, 0 already present; {FILES} completed, 0 failed, 0 still processing"
        )),
        "{out}\n{err}"
    );
    let dead = get(
        &client,
        format!("{}/api/v1/tasks?dead_lettered=true", server.base),
    )
    .await;
    assert_eq!(dead["items"], json!([]), "{dead}");
    let failed = get(
        &client,
        format!("{}/api/v1/tasks?status=failed", server.base),
    )
    .await;
    assert_eq!(failed["items"], json!([]), "{failed}");
    // Each processed once, by the server: no attempt failed on a second index writer.
    let tasks = get(&client, format!("{}/api/v1/tasks?limit=200", server.base)).await;
    let tasks = tasks["items"].as_array().unwrap();
    assert_eq!(tasks.len(), FILES + 1);
    assert!(
        tasks
            .iter()
            .all(|t| t["status"] == "completed" && t["attempts"] == 1),
        "{tasks:?}"
    );
    // The server indexed them itself: its search finds them.
    let hits: Value = client
        .post(format!("{}/api/v1/search", server.base))
        .json(&json!({ "query": "paragraph section topic", "mode": "keyword" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = hits["hits"].as_array().expect("hits");
    assert!(
        hits.iter()
            .any(|h| h["filename"].as_str().unwrap().starts_with("doc-")),
        "{hits:?}"
    );

    // It said so.
    assert!(
        err.contains(&format!("docent serve (pid {}", server.child.id()))
            && err.contains("its workers process these files"),
        "{err}"
    );
    // Commands that would write the index, or run a second writer, refuse up front.
    let (ok, _, err) = docent(&["reindex"], &local_env).await;
    assert!(!ok);
    assert!(err.contains("cannot reindex: docent serve (pid"), "{err}");
    let other = free_port().to_string();
    let bind = format!("127.0.0.1:{other}");
    let (ok, _, err) = docent(&["serve", "--bind", &bind], &local_env).await;
    assert!(!ok);
    assert!(
        err.contains("docent serve cannot start: docent serve (pid"),
        "{err}"
    );
    let (ok, _, err) = docent(&["worker"], &local_env).await;
    assert!(!ok);
    assert!(err.contains("docent worker cannot start"), "{err}");

    // With the server gone, the same command processes here (and skips what is there).
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    std::fs::write(files.join("late.md"), markdown_doc(99, 3)).unwrap();
    let (ok, out, err) = folder.ingest("side", &[], &local_env).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{} files: 1 uploaded, {FILES} already present; {} completed, 0 failed, 0 still processing",
            FILES + 1,
            FILES + 1
        )),
        "{out}\n{err}"
    );

    // A server without workers: nothing would process, so nothing is stored.
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--no-workers",
        "--bind",
        &format!("127.0.0.1:{port}"),
    ])
    .env_remove("DOCENT_CONFIG")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    for (k, v) in &local_env {
        cmd.env(k, v);
    }
    let server = Server {
        child: cmd.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_healthy(&client, &server.base).await;
    std::fs::write(files.join("later.md"), markdown_doc(100, 3)).unwrap();
    let (ok, out, err) = folder.ingest("side", &[], &local_env).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("--no-workers")
            && err.contains("runs no workers")
            && err.contains("nothing was stored"),
        "{err}"
    );
    let collections = get(&client, format!("{}/api/v1/collections", server.base)).await;
    let cid = collections["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "side")
        .and_then(|c| c["id"].as_str())
        .unwrap()
        .to_owned();
    assert_eq!(
        documents(&client, &server.base, &cid).await.len(),
        FILES + 1,
        "later.md was not stored"
    );
}
