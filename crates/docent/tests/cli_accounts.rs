//! `docent users`, `docent tenants` and `docent keys` through the binary: on the local data
//! directory as the operator, and `docent keys --url` against a running server.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::spawn_app_in;
use docent_config::AuthMode;
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_docent");
const PASSWORD: &str = "correct horse battery";

fn docent(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DOCENT__DATA_DIR", data)
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__AUTH__MODE", "builtin")
        .env("DOCENT__AUTH__PASSWORD__MEMORY_KIB", "64")
        .env("DOCENT__AUTH__PASSWORD__ITERATIONS", "1")
        .env("DOCENT__LOG__LEVEL", "warn")
        .env("DOCENT_PASSWORD", PASSWORD)
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

#[tokio::test]
async fn users_tenants_and_keys_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    ok(&docent(
        &data,
        &["users", "create", "--email", "op@example.com", "--admin"],
    ));
    ok(&docent(
        &data,
        &[
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--tenant-name",
            "Ann's",
        ],
    ));
    let users = ok(&docent(&data, &["users", "list"]));
    assert_eq!(users.lines().count(), 2, "{users}");
    assert!(
        users.contains("op@example.com") && users.contains("ann@example.com"),
        "{users}"
    );
    assert!(users.contains("verified"), "{users}");
    assert!(
        users.contains(&format!("{}:owner", docent_domain::TenantId::DEFAULT)),
        "{users}"
    );

    // Tenants: create one owned by Ann; it lists.
    let created = ok(&docent(
        &data,
        &[
            "tenants",
            "create",
            "--name",
            "Research",
            "--owner",
            "Ann@Example.com",
        ],
    ));
    assert!(
        created.contains("Research") && created.contains("ann@example.com"),
        "{created}"
    );
    let tenants = ok(&docent(&data, &["tenants", "list"]));
    let research = tenants
        .lines()
        .find(|l| l.ends_with("Research"))
        .unwrap_or_else(|| panic!("{tenants}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(tenants.contains("Ann's"), "{tenants}");
    let users = ok(&docent(&data, &["users", "list"]));
    assert!(users.contains(&format!("{research}:owner")), "{users}");
    let out = docent(
        &data,
        &[
            "tenants",
            "create",
            "--name",
            "X",
            "--owner",
            "nobody@example.com",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("user_not_found")
            || String::from_utf8_lossy(&out.stderr).contains("no user")
    );

    // Keys in the research workspace: the secret alone on stdout.
    let secret = ok(&docent(
        &data,
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--read-only",
            "--tenant",
            &research,
        ],
    ));
    let secret = secret.trim().to_owned();
    assert!(
        secret.starts_with("dk_") && !secret.contains(' '),
        "{secret}"
    );
    let spare = ok(&docent(
        &data,
        &["keys", "create", "--name", "spare", "--tenant", &research],
    ))
    .trim()
    .to_owned();
    let listed = ok(&docent(&data, &["keys", "list", "--tenant", &research]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        !listed.contains(&secret) && !listed.contains(&spare),
        "{listed}"
    );
    assert!(
        listed.contains("read ") && listed.contains("read_write"),
        "{listed}"
    );
    // Each key says who made it: here the operator, from the command line.
    assert!(
        listed.lines().all(|l| l.contains(" by operator ")),
        "{listed}"
    );
    // The default workspace has none.
    assert_eq!(ok(&docent(&data, &["keys", "list"])).trim(), "");
    let out = docent(&data, &["keys", "list", "--tenant", "nope"]);
    assert!(!out.status.success());

    // Serve the same data directory: the keys work there.
    let app = spawn_app_in(dir, |c| {
        c.data_dir = data.clone();
        c.auth.mode = AuthMode::Builtin;
        c.auth.password.memory_kib = 64;
        c.auth.password.iterations = 1;
        c.auth.password.parallelism = 1;
        c.auth.rate_limit.enabled = false;
    })
    .await;
    let get = |key: String| {
        let app_client = app.client.clone();
        let url = app.url("/api/v1/collections");
        async move {
            app_client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get(secret.clone()).await, StatusCode::OK);

    // Revoke the read-only key from the CLI: it stops working.
    let ci_id = listed
        .lines()
        .find(|l| l.ends_with(" ci"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let revoked = ok(&docent(
        &data,
        &["keys", "revoke", &ci_id, "--tenant", &research],
    ));
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(get(secret.clone()).await, StatusCode::UNAUTHORIZED);

    // `--url` with DOCENT_TOKEN (Ann signs in to Research).
    let (s, session) = app
        .post_json(
            "/api/v1/auth/signin",
            serde_json::json!({ "email": "ann@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    let mut token = session["access_token"].as_str().unwrap().to_owned();
    if session["tenant_id"] != research.as_str() {
        let r = app
            .client
            .post(app.url("/api/v1/auth/switch"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "tenant_id": research }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let b: serde_json::Value = r.json().await.unwrap();
        token = b["access_token"].as_str().unwrap().to_owned();
    }
    let remote = |args: Vec<String>, token: Option<String>| {
        let base = app.base.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(BIN);
            cmd.args(["keys", "--url", &base])
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
    let listed = ok(&remote(vec!["list".into()], Some(token.clone()))
        .await
        .unwrap());
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let made = ok(&remote(
        vec!["create".into(), "--name".into(), "remote".into()],
        Some(token.clone()),
    )
    .await
    .unwrap());
    let remote_key = made.trim().to_owned();
    assert!(remote_key.starts_with("dk_"), "{made}");
    assert_eq!(get(remote_key).await, StatusCode::OK);
    // Listed with its maker (issue 21).
    let listed = ok(&remote(vec!["list".into()], Some(token.clone()))
        .await
        .unwrap());
    assert!(
        listed
            .lines()
            .any(|l| l.contains(" by ann@example.com ") && l.ends_with("remote")),
        "{listed}"
    );
    let out = remote(vec!["list".into()], None).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"));
    let out = remote(
        vec!["list".into(), "--tenant".into(), research.clone()],
        Some(token),
    )
    .await
    .unwrap();
    assert!(!out.status.success());
    app.stop().await;
}
