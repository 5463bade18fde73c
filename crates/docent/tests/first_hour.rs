//! What a new user meets in their first hour (issue 15): the README runs top to bottom against
//! a fresh server, the setup command `docent serve` prints and the README's quick tour agree and
//! fail loudly, the log is plain text without per-request noise, `/` leads to the docs, `/health`
//! ends its line, `docent --help` lists every command, and release builds carry no debug info.

mod common;
#[path = "first_hour/readme.rs"]
mod readme;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::servers::free_port;
use readme::{readme_blocks, repo_file};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_docent");

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

/// The environment of `docent serve` on a fresh data directory with built-in accounts (cheap
/// password hashing), and of local CLI commands working on the same data; `model`: the local
/// embedding model, else keyword search only.
fn docent_env(data: &Path, model: Option<&Path>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DOCENT__DATA_DIR", data.join("data").display().to_string()),
        ("DOCENT__AUTH__MODE", "builtin".to_owned()),
        ("DOCENT__AUTH__PASSWORD__MEMORY_KIB", "64".to_owned()),
        ("DOCENT__AUTH__PASSWORD__ITERATIONS", "1".to_owned()),
    ];
    match model {
        Some(dir) => {
            env.push(("DOCENT__EMBEDDER__KIND", "local".to_owned()));
            env.push(("DOCENT__EMBEDDER__MODEL_DIR", dir.display().to_string()));
        }
        None => env.push(("DOCENT__EMBEDDER__KIND", "none".to_owned())),
    }
    env
}

/// `docent serve` with [`docent_env`], its stderr (banner and log) written to a file, as when a
/// newcomer redirects it.
fn serve(data: &Path, model: Option<&Path>) -> Server {
    let port = free_port();
    let log = data.join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .envs(docent_env(data, model))
        .env("DOCENT__LOG__LEVEL", "info")
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
    let server = serve(dir.path(), None);
    let body = printed_setup_body(&server).await;
    let printed = body["password"].as_str().unwrap().to_owned();
    assert_eq!(printed, docent::app::SETUP_EXAMPLE_PASSWORD);

    // Every password the README's shell blocks use is the printed one.
    let readme: String = readme_blocks()
        .iter()
        .filter(|b| b.is_shell())
        .map(|b| b.text.as_str())
        .collect();
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

/// The README, run as a newcomer would, top to bottom: every `sh`/`bash` block in order in one
/// `bash -euo pipefail` session (variables carry over), in an empty working directory, against a
/// fresh `docent serve` on the embedded default with the local model and no LLM (bots answer
/// extractively: nothing leaves the machine). Conventions:
///
/// - A block whose fence follows `<!-- readme-test: skip (why) -->` is not run; the test starts
///   the server itself, so `make run` is one of those. Other languages (`toml`, `json`, `text`)
///   are not run; `python` blocks run with `DOCENT_TEST_OPENAI_PYTHON` (a Python with the
///   `openai` package), and are reported as not run without it.
/// - `127.0.0.1:8080` and `localhost:8080` are replaced by the server's address, and
///   `paste-the-printed-token-here` by the setup token it printed.
/// - `docent` is the binary under test, with the server's `DOCENT__*` environment, so local
///   commands work on its data directory.
/// - Any command that fails stops the run, naming its README line. `curl` fails on an HTTP error
///   status (`--fail-with-body` is added) unless its command shows an error (`.error.code`);
///   then its request must fail.
#[tokio::test]
async fn every_readme_block_runs_in_order_against_a_fresh_server() {
    let Some(model) = common::model_dir() else {
        eprintln!(
            "SKIPPED: the README runs with the local embedding model, and it is not in models/ \
             (`make model`)"
        );
        return;
    };
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new(tool).arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "the README test needs `{tool}` on PATH"
        );
    }
    let python = std::env::var_os("DOCENT_TEST_OPENAI_PYTHON");
    if python.is_none() {
        eprintln!("NOT RUN: the README's Python blocks (DOCENT_TEST_OPENAI_PYTHON not set)");
    }

    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), Some(&model));
    let body = printed_setup_body(&server).await;
    let token = body["token"]
        .as_str()
        .expect("the printed body has the token");
    let blocks = readme_blocks();
    assert!(
        blocks
            .iter()
            .any(|b| b.text.contains(readme::SETUP_TOKEN_PLACEHOLDER)),
        "the tour pastes the setup token as `{}`",
        readme::SETUP_TOKEN_PLACEHOLDER
    );
    let address = server.base.trim_start_matches("http://");
    let (script, run, skipped) = readme::script(
        &blocks,
        &readme::Substitutions {
            address,
            setup_token: token,
            python: python.is_some(),
        },
    );
    let script_path = dir.path().join("readme.sh");
    std::fs::write(&script_path, &script).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();

    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let output_path = dir.path().join("readme.out");
    let output = std::fs::File::create(&output_path).unwrap();
    let mut bash = tokio::process::Command::new("bash");
    bash.arg(&script_path)
        .current_dir(&work)
        .envs(docent_env(dir.path(), Some(&model)))
        .env("PATH", path)
        .env("DOCENT__LOG__LEVEL", "warn")
        .env_remove("DOCENT_CONFIG")
        .env_remove("DOCENT_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(output.try_clone().unwrap()))
        .stderr(Stdio::from(output))
        .kill_on_drop(true);
    if let Some(python) = &python {
        bash.env("README_PYTHON", python);
    }
    let mut child = bash.spawn().unwrap();
    // A guard against a command that never returns (a wait on a document that never completes),
    // not a measure: the run takes seconds.
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait()).await;
    let out = std::fs::read_to_string(&output_path).unwrap_or_default();
    let report = || {
        let log = server.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "README output:\n{out}\n--- server log (tail):\n{}",
            tail.join("\n")
        )
    };
    match status {
        Ok(status) => assert!(status.unwrap().success(), "{}", report()),
        Err(_) => panic!("the README did not finish within 300 s\n{}", report()),
    }
    for note in &skipped {
        eprintln!("{note}");
    }
    // Every section with commands ran: the tour, the aliases, bots, chat, the command line.
    assert!(run >= 8, "only {run} README blocks ran");
}

/// The README test's splitter finds top-level commands whatever spans lines: `\`, pipes,
/// quotes, `$(…)`, compound commands and here-documents; comments are no commands.
#[test]
fn shell_blocks_split_into_their_top_level_commands() {
    let block = r#"# a comment with an apostrophe's quote
A=$(jq -n '{a: 1,
  b: "x"}' |
  curl -s -d @- http://h | jq -er .id)   # it's kept
curl -s http://h \
  -d '{"name": "nope"}' | jq .error.code
wait_for() { until curl -s "http://h/$1" | jq -e '.done' > /dev/null; do sleep 0.2; done; }
if true; then
  echo "while (" done
fi
cat > x.toml <<'EOF'
[a]
b = "it's"
EOF
echo "$(printf '%s' ')')" && echo b &&
  echo c
for x in a b
do echo $x; done
"#;
    let commands = readme::shell_commands(block);
    let starts: Vec<usize> = commands.iter().map(|c| c.line).collect();
    assert_eq!(starts, [1, 4, 6, 7, 10, 14, 16], "{commands:#?}");
    assert_eq!(commands[0].assigned_from_output(), Some("A"));
    assert!(!commands[0].text.contains("kept"), "{:?}", commands[0].text);
    assert!(!commands[0].shows_an_error());
    assert!(commands[1].shows_an_error());
    assert!(commands[4].text.ends_with("EOF"), "{:?}", commands[4].text);
    assert!(commands.iter().all(|c| !c.text.contains("comment")));

    let blocks = readme::blocks(
        "text\n\n<!-- readme-test: skip (needs S3) -->\n```sh\ncurl x\n```\n```toml\na = 1\n```\n",
    );
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].skip.as_deref(), Some("needs S3"));
    assert_eq!(blocks[0].line, 5);
    assert!(blocks[0].is_shell() && !blocks[1].is_shell());
    assert_eq!(blocks[1].skip, None);
}

/// A value kept from a request (`ID=$(curl … | jq -e …)`) is never an HTTP error's body or
/// `null`: `set -e` stops there, as the README test does.
#[test]
fn readme_steps_that_keep_a_value_fail_loudly() {
    let mut checked = 0;
    for block in readme_blocks().iter().filter(|b| b.is_shell()) {
        for command in readme::shell_commands(&block.text) {
            let Some(name) = command.assigned_from_output() else {
                continue;
            };
            let at = block.line + command.line;
            let text = &command.text;
            checked += 1;
            if text.contains("curl") {
                assert!(
                    text.contains("--fail-with-body") || text.contains(" -f"),
                    "README.md:{at}: an HTTP error would end up in ${name}: {text}"
                );
            }
            if text.contains("jq") {
                assert!(
                    text.contains("jq -e"),
                    "README.md:{at}: a missing field would make ${name} \"null\": {text}"
                );
            }
        }
    }
    assert!(checked >= 8, "the README keeps tokens and ids: {checked}");
}

#[tokio::test]
async fn root_serves_the_console_and_health_and_ready_end_their_line() {
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

    for (path, status) in [
        ("/health", "ok"),
        ("/api/v1/health", "ok"),
        ("/ready", "ready"),
    ] {
        let r = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = r.text().await.unwrap();
        assert!(body.ends_with("}\n"), "{path}: {body:?}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], status);
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
