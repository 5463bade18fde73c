//! Planted canary secrets (HS256 JWT secret, SMTP password, OpenAI API key), inline and as
//! `*_file`, must never appear in `docent config show`, in the server's logs (human and JSON,
//! at debug level) or in any response body — successes and client errors alike. (`ask` is
//! extractive until the LLM is wired into it; the configured `openai` section, with its
//! unreachable base URL, is loaded and validated all the same.) A server that cannot start (SMTP without the feature) must not print them either.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_docent");
const JWT: &str = "canary-jwt-9f1c2b7a5d3e4f60718293a4b5c6d7e8";
const SMTP: &str = "canary-smtp-4e5d6c7b8a";
const OPENAI: &str = "sk-canary-openai-0a1b2c3d4e";

fn canaries(tag: &str) -> [String; 3] {
    [
        format!("{JWT}-{tag}"),
        format!("{SMTP}-{tag}"),
        format!("{OPENAI}-{tag}"),
    ]
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} shows the canary {s}:\n{text}"
        );
        // Nor a recognisable part of it.
        assert!(
            !text.contains(&s[..20]),
            "{what} shows part of the canary {s}:\n{text}"
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the configuration: secrets inline, or in files (`tag` keeps the runs apart).
fn write_config(dir: &Path, tag: &str, as_files: bool, smtp: bool, json_logs: bool) -> PathBuf {
    let [jwt, smtp_pw, openai] = canaries(tag);
    let data = dir.join("data");
    let secret_line = |key: &str, value: &str| {
        if as_files {
            let file = dir.join(format!("{key}.secret"));
            std::fs::write(&file, format!("{value}\n")).unwrap();
            format!("{key}_file = {:?}\n", file.display().to_string())
        } else {
            format!("{key} = {value:?}\n")
        }
    };
    let config = format!(
        "data_dir = {data:?}\n\
         [log]\nformat = \"{}\"\nlevel = \"debug\"\n\
         [embedder]\nkind = \"none\"\n\
         [llm]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"gpt-canary\"\n{}\
         [auth]\nmode = \"builtin\"\n\
         [auth.password]\nmemory_kib = 64\niterations = 1\n\
         [auth.jwt]\nalgorithm = \"HS256\"\n{}\
         [auth.mail]\nkind = \"{}\"\nhost = \"127.0.0.1\"\nport = 9\nusername = \"mailer\"\n{}",
        if json_logs { "json" } else { "human" },
        secret_line("api_key", &openai),
        secret_line("secret", &jwt),
        if smtp { "smtp" } else { "file" },
        secret_line("password", &smtp_pw),
        data = data.display().to_string(),
    );
    let path = dir.join("docent.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn docent(config: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .env_remove("DOCENT_CONFIG")
        .env_remove("DOCENT_URL")
        .env_remove("DOCENT_TOKEN")
        .env_remove("RUST_LOG");
    cmd
}

fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Calls the API; returns the status and the body as text (every body is checked).
async fn call(
    client: &reqwest::Client,
    bodies: &mut String,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = format!("{:?}", r.headers());
    let text = r.text().await.unwrap_or_default();
    bodies.push_str(&headers);
    bodies.push_str(&text);
    bodies.push('\n');
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn exercise(tag: &str, as_files: bool, json_logs: bool) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = canaries(tag);
    let config = write_config(dir.path(), tag, as_files, false, json_logs);

    // `config show` and `config check`.
    let out = docent(&config).args(["config", "show"]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let shown = output_text(&out);
    assert!(shown.contains("[redacted]") || as_files, "{shown}");
    assert_clean("config show", &shown, &secrets);
    let out = docent(&config).args(["config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_clean("config check", &output_text(&out), &secrets);

    // The server, its stderr (the log) captured in a file.
    let port = free_port();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server(
        docent(&config)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("docent starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server never became healthy:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    use reqwest::Method as M;
    let mut bodies = String::new();
    let b = &mut bodies;
    let u = |p: &str| format!("{base}{p}");
    let password = "correct horse battery";
    let (s, session) = call(
        &client,
        b,
        M::POST,
        u("/api/v1/auth/signup"),
        None,
        Some(json!({ "email": "canary@example.com", "password": password })),
    )
    .await;
    assert_eq!(s, 201, "{session}");
    let token = session["access_token"].as_str().unwrap().to_owned();
    // Client errors of all kinds.
    call(
        &client,
        b,
        M::POST,
        u("/api/v1/auth/signin"),
        None,
        Some(json!({ "email": "canary@example.com", "password": "wrong password!" })),
    )
    .await;
    call(
        &client,
        b,
        M::GET,
        u("/api/v1/collections"),
        Some("not-a-jwt"),
        None,
    )
    .await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push('A');
    call(
        &client,
        b,
        M::GET,
        u("/api/v1/collections"),
        Some(&tampered),
        None,
    )
    .await;
    call(&client, b, M::GET, u("/api/v1/nope"), Some(&token), None).await;
    call(
        &client,
        b,
        M::POST,
        u("/api/v1/collections"),
        Some(&token),
        Some(json!({ "bogus": 1 })),
    )
    .await;
    call(
        &client,
        b,
        M::POST,
        u("/api/v1/auth/password/reset"),
        None,
        Some(json!({ "email": "canary@example.com" })),
    )
    .await;
    call(
        &client,
        b,
        M::POST,
        u("/api/v1/keys"),
        Some(&token),
        Some(json!({ "name": "canary" })),
    )
    .await;
    call(&client, b, M::GET, u("/openapi.json"), None, None).await;
    call(&client, b, M::GET, u("/api/v1/errors"), None, None).await;

    // A document processed by the in-process workers, then a question and a summary.
    let (s, col) = call(
        &client,
        b,
        M::POST,
        u("/api/v1/collections"),
        Some(&token),
        Some(json!({ "name": "canary" })),
    )
    .await;
    assert_eq!(s, 201, "{col}");
    let cid = col["id"].as_str().unwrap().to_owned();
    let part = reqwest::multipart::Part::bytes(
        b"# Zebras\n\nZebras graze on the savanna and have stripes.\n".to_vec(),
    )
    .file_name("zebra.md");
    let r = client
        .post(u(&format!("/api/v1/collections/{cid}/documents")))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let up: Value = r.json().await.unwrap();
    let task = up["task"]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let (_, t) = call(
            &client,
            b,
            M::GET,
            u(&format!("/api/v1/tasks/{task}")),
            Some(&token),
            None,
        )
        .await;
        if matches!(
            t["status"].as_str(),
            Some("completed" | "failed" | "dead_lettered" | "cancelled")
        ) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "task never finished: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, ans) = call(
        &client,
        b,
        M::POST,
        u("/api/v1/ask"),
        Some(&token),
        Some(json!({ "question": "what do zebras eat?" })),
    )
    .await;
    assert!(s >= 200, "{ans}");
    call(
        &client,
        b,
        M::GET,
        u(&format!(
            "/api/v1/documents/{}/summary",
            up["document"]["id"].as_str().unwrap()
        )),
        Some(&token),
        None,
    )
    .await;
    drop(server);

    assert_clean("response bodies", &bodies, &secrets);
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(!logged.trim().is_empty(), "the server logged nothing");
    if json_logs {
        assert!(logged.lines().any(|l| l.starts_with('{')), "{logged}");
    }
    assert_clean("the server log", &logged, &secrets);
    assert!(
        logged.contains("/api/v1/ask"),
        "the log misses the requests:\n{logged}"
    );
}

#[tokio::test]
async fn inline_secrets_never_leak_json_logs() {
    exercise("inline", false, true).await;
}

#[tokio::test]
async fn file_secrets_never_leak_human_logs() {
    exercise("files", true, false).await;
}

#[test]
fn a_server_that_cannot_start_does_not_print_its_secrets() {
    for as_files in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let tag = if as_files { "smtpfile" } else { "smtpinline" };
        let secrets = canaries(tag);
        let config = write_config(dir.path(), tag, as_files, true, true);
        let port = free_port();
        let out = docent(&config)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // Without the `smtp` feature the server refuses to start; with it, it would run —
        // either way nothing printed so far may hold a secret.
        assert_clean("a failed start", &output_text(&out), &secrets);
        // A configuration error that quotes values: still no secret.
        let bad =
            std::fs::read_to_string(&config).unwrap() + "[server]\nrequest_timeout = \"soon\"\n";
        std::fs::write(&config, bad).unwrap();
        let out = docent(&config).args(["config", "check"]).output().unwrap();
        assert!(!out.status.success());
        assert_clean("a config error", &output_text(&out), &secrets);
    }
}
