//! `docent bots` through the binary: on the local data directory (the default workspace), and
//! with `--url` + `DOCENT_TOKEN` against a running server.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{builtin_auth, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_docent");

fn docent(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DOCENT__DATA_DIR", data)
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__LLM__KIND", "none")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env_remove("DOCENT_CONFIG")
        .env_remove("DOCENT_URL")
        .env_remove("DOCENT_TOKEN")
        .output()
        .expect("docent runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_out(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON on stdout")
}

#[test]
fn bots_on_the_local_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("zebras.md");
    std::fs::write(&file, "# Zebras\n\nZebras graze on the savanna.").unwrap();
    ok(&docent(
        &data,
        &["ingest", file.to_str().unwrap(), "--collection", "notes"],
    ));
    ok(&docent(
        &data,
        &["ingest", file.to_str().unwrap(), "--collection", "other"],
    ));

    let bot = json_out(&docent(
        &data,
        &[
            "bots",
            "create",
            "--name",
            "Helper",
            "--collection",
            "notes",
            "--system-prompt",
            "Be brief.",
            "--model",
            "m1",
            "--temperature",
            "0.5",
            "--top-k",
            "6",
            "--welcome",
            "Hi!",
            "--origin",
            "https://Example.com",
            "--origin",
            "http://localhost:3000",
        ],
    ));
    let id = bot["id"].as_str().unwrap().to_owned();
    assert_eq!(bot["name"], "Helper");
    assert_eq!(bot["system_prompt"], "Be brief.");
    assert_eq!(bot["model"], "m1");
    assert_eq!(bot["temperature"], 0.5);
    assert_eq!(bot["retrieval"]["top_k"], 6);
    assert_eq!(bot["welcome_message"], "Hi!");
    assert_eq!(
        bot["allowed_origins"],
        json!(["https://example.com", "http://localhost:3000"])
    );
    assert_eq!(bot["collection_ids"].as_array().unwrap().len(), 1);
    let notes = bot["collection_ids"][0].as_str().unwrap().to_owned();

    let listed = ok(&docent(&data, &["bots", "list"]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.contains(&id) && listed.contains("Helper") && listed.contains("model=m1"),
        "{listed}"
    );

    // By name or id; update changes only what is given.
    assert_eq!(json_out(&docent(&data, &["bots", "get", "Helper"])), bot);
    let updated = json_out(&docent(
        &data,
        &["bots", "update", &id, "--name", "Helper 2", "--top-k", "9"],
    ));
    assert_eq!(updated["name"], "Helper 2");
    assert_eq!(updated["retrieval"]["top_k"], 9);
    assert_eq!(updated["retrieval"]["mode"], "hybrid");
    assert_eq!(updated["model"], "m1", "kept");
    assert_eq!(updated["collection_ids"], json!([notes]), "kept");
    // A collection given by id.
    let updated = json_out(&docent(
        &data,
        &["bots", "update", "Helper 2", "--collection", &notes],
    ));
    assert_eq!(updated["collection_ids"], json!([notes]));

    let docs = ok(&docent(&data, &["bots", "documents", "Helper 2"]));
    assert_eq!(docs.lines().count(), 1, "only `notes`: {docs}");
    assert!(
        docs.contains("zebras.md") && docs.contains("completed") && docs.contains(&notes),
        "{docs}"
    );

    // Refusals name the problem.
    let err = failed(&docent(
        &data,
        &["bots", "create", "--name", "x", "--temperature", "5"],
    ));
    assert!(
        err.contains("invalid_field") && err.contains("temperature"),
        "{err}"
    );
    let err = failed(&docent(
        &data,
        &["bots", "create", "--name", "x", "--collection", "nope"],
    ));
    assert!(err.contains("no collection named `nope`"), "{err}");
    let err = failed(&docent(
        &data,
        &["bots", "create", "--name", "x", "--origin", "*"],
    ));
    assert!(err.contains("allowed_origins[0]"), "{err}");
    let err = failed(&docent(&data, &["bots", "get", "Nobody"]));
    assert!(err.contains("no bot named `Nobody`"), "{err}");
    let err = failed(&docent(
        &data,
        &["bots", "get", &docent_domain::BotId::new().to_string()],
    ));
    assert!(err.contains("bot_not_found"), "{err}");

    let deleted = ok(&docent(&data, &["bots", "delete", "Helper 2"]));
    assert!(deleted.contains(&id), "{deleted}");
    assert_eq!(ok(&docent(&data, &["bots", "list"])).trim(), "");
}

#[tokio::test]
async fn bots_through_a_running_server() {
    let app = spawn_app_with(builtin_auth).await;
    let (s, session) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": "a@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert!(s.is_success(), "{session}");
    let token = session["access_token"].as_str().unwrap().to_owned();
    let r = app
        .client
        .post(app.url("/api/v1/collections"))
        .bearer_auth(&token)
        .json(&json!({ "name": "kb" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let kb: Value = r.json().await.unwrap();
    let kb = kb["id"].as_str().unwrap().to_owned();

    let remote = |args: Vec<String>, token: Option<String>| {
        let base = app.base.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(BIN);
            cmd.args(["bots", "--url", &base])
                .args(&args)
                .env("DOCENT__LOG__LEVEL", "warn")
                .env_remove("DOCENT_CONFIG")
                .env_remove("DOCENT_TOKEN");
            if let Some(t) = token {
                cmd.env("DOCENT_TOKEN", t);
            }
            cmd.output().expect("docent runs")
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let t = Some(token.clone());

    let bot = json_out(
        &remote(
            args(&[
                "create",
                "--name",
                "Remote",
                "--collection",
                "kb",
                "--origin",
                "https://example.com",
            ]),
            t.clone(),
        )
        .await
        .unwrap(),
    );
    let id = bot["id"].as_str().unwrap().to_owned();
    assert_eq!(bot["collection_ids"], json!([kb]));

    // What the CLI made is what the API serves.
    let r = app
        .client
        .get(app.url(&format!("/api/v1/bots/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), bot);

    let listed = ok(&remote(args(&["list"]), t.clone()).await.unwrap());
    assert!(
        listed.contains(&id) && listed.contains("Remote"),
        "{listed}"
    );
    assert_eq!(
        json_out(&remote(args(&["get", "Remote"]), t.clone()).await.unwrap()),
        bot
    );
    let updated = json_out(
        &remote(
            args(&["update", "Remote", "--model", "m2", "--temperature", "1"]),
            t.clone(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(updated["model"], "m2");
    assert_eq!(updated["temperature"], 1.0);
    assert_eq!(updated["allowed_origins"], json!(["https://example.com"]));
    let docs = ok(&remote(args(&["documents", &id]), t.clone()).await.unwrap());
    assert_eq!(docs.trim(), "");

    let err = failed(
        &remote(args(&["create", "--name", " "]), t.clone())
            .await
            .unwrap(),
    );
    assert!(
        err.contains("invalid_field") && err.contains("name"),
        "{err}"
    );
    let err = failed(&remote(args(&["list"]), None).await.unwrap());
    assert!(err.contains("unauthenticated"), "{err}");

    ok(&remote(args(&["delete", &id]), t.clone()).await.unwrap());
    assert_eq!(
        ok(&remote(args(&["list"]), t.clone()).await.unwrap()).trim(),
        ""
    );
    app.stop().await;
}

#[test]
fn chat_with_a_bot_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("zebras.md");
    std::fs::write(
        &file,
        "# Zebras\n\nZebras graze on the savanna grasses. They live in herds.",
    )
    .unwrap();
    ok(&docent(
        &data,
        &["ingest", file.to_str().unwrap(), "--collection", "notes"],
    ));
    ok(&docent(
        &data,
        &["bots", "create", "--name", "zoo", "--collection", "notes"],
    ));
    // No chat model configured: the extractive answer, cited.
    let out = ok(&docent(&data, &["chat", "zoo", "What do zebras graze on?"]));
    assert!(out.contains("savanna grasses"), "{out}");
    assert!(out.contains("[1] zebras.md"), "{out}");
    let conversation = out
        .lines()
        .find_map(|l| l.strip_prefix("conversation: "))
        .expect("a conversation id")
        .to_owned();
    // Continuing it, and a question nothing answers (exit code 2).
    let out = docent(
        &data,
        &[
            "chat",
            "zoo",
            "quantum chromodynamics",
            "--conversation",
            &conversation,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("I don't know"));
    let err = failed(&docent(&data, &["chat", "nobody", "hi"]));
    assert!(err.contains("no bot named `nobody`"), "{err}");
}

#[test]
fn widget_keys_on_the_local_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bot = json_out(&docent(&data, &["bots", "create", "--name", "site helper"]));
    assert_eq!(bot["widget"]["sources"], "none");
    let key = json_out(&docent(
        &data,
        &[
            "bots",
            "widget-keys",
            "create",
            "site helper",
            "--name",
            "Main site",
            "--daily-quota",
            "25",
        ],
    ));
    let (id, text) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    assert!(text.starts_with("dwk_"));
    assert_eq!(key["daily_quota"], 25);
    assert!(key["snippet"].as_str().unwrap().contains(text));
    let list = ok(&docent(
        &data,
        &["bots", "widget-keys", "list", "site helper"],
    ));
    assert!(
        list.contains(id) && list.contains("active") && list.contains("0/25"),
        "{list}"
    );
    let rotated = json_out(&docent(
        &data,
        &["bots", "widget-keys", "rotate", "site helper", id],
    ));
    assert_ne!(rotated["key"], text);
    assert_eq!(rotated["name"], "Main site");
    let new_id = rotated["id"].as_str().unwrap();
    ok(&docent(
        &data,
        &["bots", "widget-keys", "revoke", "site helper", new_id],
    ));
    let list = ok(&docent(
        &data,
        &["bots", "widget-keys", "list", "site helper"],
    ));
    assert_eq!(list.matches("revoked").count(), 2, "{list}");
    let err = failed(&docent(
        &data,
        &["bots", "widget-keys", "rotate", "site helper", id],
    ));
    assert!(
        err.contains("widget_key_not_found") || err.contains("not found"),
        "{err}"
    );
}

#[tokio::test]
async fn widget_keys_through_a_running_server() {
    let app = spawn_app_with(builtin_auth).await;
    let (s, session) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({ "email": "w@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert!(s.is_success(), "{session}");
    let token = session["access_token"].as_str().unwrap().to_owned();
    let r = app
        .client
        .post(app.url("/api/v1/bots"))
        .bearer_auth(&token)
        .json(&json!({ "name": "remote helper" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let run = |args: Vec<&'static str>| {
        let (base, token) = (app.base.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["bots", "--url", &base])
                .args(&args)
                .env("DOCENT__LOG__LEVEL", "warn")
                .env_remove("DOCENT_CONFIG")
                .env("DOCENT_TOKEN", token)
                .output()
                .expect("docent runs")
        })
    };
    let key = json_out(
        &run(vec!["widget-keys", "create", "remote helper"])
            .await
            .unwrap(),
    );
    assert!(
        key["snippet"]
            .as_str()
            .unwrap()
            .starts_with(&format!("<script src=\"{}/widget.js\"", app.base)),
        "{key}"
    );
    let list = ok(&run(vec!["widget-keys", "list", "remote helper"])
        .await
        .unwrap());
    assert!(list.contains(key["id"].as_str().unwrap()), "{list}");
    app.stop().await;
}
