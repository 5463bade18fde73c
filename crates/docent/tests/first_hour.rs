//! What a new user meets in their first hour (issue 15): the setup command `docent serve`
//! prints and the README's quick tour agree and fail loudly, the log is plain text without
//! per-request noise, `/` leads to the docs, `/health` ends its line, `docent --help` lists every
//! command, and release builds carry no debug info.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::servers::free_port;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_docent");

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The README's `sh` code blocks, in order.
fn readme_shell_blocks() -> Vec<String> {
    let readme = repo_file("README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```sh") => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Shell commands with their `\`-continued lines joined.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The value of `"password": "…"` in a JSON body written in a shell command (quotes possibly
/// escaped).
fn passwords(text: &str) -> Vec<String> {
    let text = text.replace("\\\"", "\"");
    let key = "\"password\": \"";
    text.match_indices(key)
        .filter_map(|(at, _)| {
            let rest = &text[at + key.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `docent serve` on a fresh data directory with built-in accounts, its stderr (banner and
/// log) written to a file, as when a newcomer redirects it.
fn serve(data: &Path) -> Server {
    let port = free_port();
    let log = data.join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DOCENT__DATA_DIR", data.join("data"))
        .env("DOCENT__LOG__LEVEL", "info")
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__AUTH__MODE", "builtin")
        .env("DOCENT__AUTH__PASSWORD__MEMORY_KIB", "64")
        .env("DOCENT__AUTH__PASSWORD__ITERATIONS", "1")
        .env_remove("DOCENT_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("docent starts");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// The JSON body (`-d '…'`) of the `curl` the banner prints.
async fn printed_setup_body(server: &Server) -> Value {
    let started = Instant::now();
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| l.trim_start().starts_with("-d '")) {
            let body = line
                .trim()
                .trim_start_matches("-d '")
                .trim_end_matches('\'');
            return serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no setup command printed:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_printed_setup_command_works_and_the_readme_tour_signs_in_with_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let body = printed_setup_body(&server).await;
    let printed = body["password"].as_str().unwrap().to_owned();
    assert_eq!(printed, docent::app::SETUP_EXAMPLE_PASSWORD);

    // Every password the README's shell blocks use is the printed one.
    let readme = readme_shell_blocks().join("\n");
    let readme_passwords = passwords(&readme);
    assert!(
        readme_passwords.len() >= 2,
        "the tour sets up and signs in with a password: {readme_passwords:?}"
    );
    for p in &readme_passwords {
        assert_eq!(p, &printed, "README and the printed setup command disagree");
    }

    // The printed body, sent as printed, sets up the first account (the password passes the
    // rules, common list included) ...
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/setup", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let setup: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {setup}");
    assert!(setup["access_token"].is_string(), "{setup}");

    // ... and the README's sign-in, sent as written, works after it.
    let r = client
        .post(format!("{}/api/v1/auth/signin", server.base))
        .json(&serde_json::json!({ "email": body["email"], "password": readme_passwords[0] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The log went to a file: no colour codes in it, and no line per ordinary request.
    for _ in 0..5 {
        client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .unwrap();
        client
            .get(format!("{}/api/v1/collections", server.base))
            .send()
            .await
            .unwrap();
    }
    let log = server.log();
    assert!(
        log.contains("INFO"),
        "the log is written at info level:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a file:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("response") && l.contains("status=200")),
        "ordinary requests are logged at info:\n{log}"
    );
}

#[test]
fn readme_tour_steps_that_keep_a_value_fail_loudly() {
    let tour = readme_shell_blocks()
        .into_iter()
        .find(|b| b.contains("SETUP_TOKEN="))
        .expect("the quick tour starts with the setup token");
    let mut checked = 0;
    {
        for command in commands(&tour) {
            let trimmed = command.trim_start();
            let Some((var, rest)) = trimmed.split_once("=$(curl") else {
                continue;
            };
            if !var.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                continue;
            }
            checked += 1;
            assert!(
                rest.contains("--fail-with-body") || rest.contains(" -f") || rest.contains("-sf"),
                "an HTTP error would go unnoticed: {command}"
            );
            assert!(
                rest.contains("jq -e"),
                "a missing field would become \"null\": {command}"
            );
        }
    }
    assert!(checked >= 5, "the tour keeps tokens and ids: {checked}");
}

#[tokio::test]
async fn root_serves_the_console_and_health_ends_its_line() {
    let app = common::spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(
        h["content-type"].to_str().unwrap().starts_with("text/html"),
        "{h:?}"
    );
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains("/console/js/app.js"), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    // Its assets, with types, tags, revalidation and compression.
    let r = client
        .get(app.url("/console/js/app.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let etag = r.headers()["etag"].clone();
    let r = client
        .get(app.url("/console/js/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = client
        .get(app.url("/console/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The API documentation is still there.
    let docs = reqwest::get(app.url("/docs/")).await.unwrap();
    assert_eq!(docs.status(), 200);

    for path in ["/health", "/api/v1/health"] {
        let r = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = r.text().await.unwrap();
        assert!(body.ends_with("}\n"), "{body:?}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "ok");
    }
    app.stop().await;
}

#[test]
fn help_lists_every_command_on_one_line() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let first = help.lines().next().unwrap_or_default();
    assert!(
        !first.contains(" | "),
        "the summary names only some commands: {first}"
    );
    let cli = docent::cli::Cli::command();
    let names: Vec<&str> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name())
        .collect();
    assert!(names.len() >= 17, "{names:?}");
    for name in names {
        let line = help
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("`{name}` missing from --help:\n{help}"));
        assert!(
            line.split_whitespace().count() >= 2,
            "`{name}` has no description"
        );
        assert!(
            line.len() <= 100,
            "`{name}`'s description is not one short line: {line}"
        );
    }
}

#[test]
fn release_builds_carry_no_debug_info_and_profiling_builds_keep_line_tables() {
    let manifest: toml::Table = repo_file("Cargo.toml").parse().unwrap();
    let profiles = manifest["profile"].as_table().unwrap();
    let release = profiles["release"].as_table().unwrap();
    assert!(
        matches!(
            release.get("debug"),
            Some(toml::Value::Boolean(false)) | None
        ) || release.get("debug").and_then(|v| v.as_integer()) == Some(0),
        "{release:?}"
    );
    assert_eq!(
        release.get("strip").and_then(|v| v.as_str()),
        Some("debuginfo")
    );
    let profiling = profiles["profiling"].as_table().unwrap();
    assert_eq!(profiling["inherits"].as_str(), Some("release"));
    assert_eq!(profiling["debug"].as_str(), Some("line-tables-only"));
}
