//! Secret rotation end to end: the real `docent` binary takes its chat model's API key from a
//! Secrets Manager reference (moto, `DOCENT_TEST_AWS_ENDPOINT`); the key is rotated in Secrets
//! Manager, the process gets SIGHUP, and the next chat reaches the (fake) model with the new
//! key — while no secret value ever reaches the log. Prints
//! `skipped: DOCENT_TEST_AWS_ENDPOINT not set` and passes without it.

#![cfg(all(unix, feature = "aws"))]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use docent_aws::secrets::SecretsManager;
use docent_fake_openai::{CHAT_MODEL, FakeConfig, FakeServer};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_docent");
const OLD_KEY: &str = "sk-old-0123456789abcdef";
const NEW_KEY: &str = "sk-new-fedcba9876543210";

fn endpoint() -> Option<String> {
    match std::env::var("DOCENT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: DOCENT_TEST_AWS_ENDPOINT not set");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn secret_json(key: &str) -> String {
    json!({ "api_key": key, "unused": "x" }).to_string()
}

async fn ok_json(r: reqwest::RequestBuilder) -> Value {
    let r = r.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status} {body}");
    body
}

/// Statuses of the chat requests the fake model has seen.
fn chat_statuses(fake: &FakeServer) -> Vec<u16> {
    fake.log()
        .iter()
        .filter(|e| e.path == "/v1/chat/completions")
        .map(|e| e.status)
        .collect()
}

#[tokio::test]
async fn sighup_rotates_the_model_key_from_secrets_manager() {
    let Some(endpoint) = endpoint() else { return };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("docent-test/reload-{}-{nanos}", std::process::id());
    let sm = SecretsManager::connect(Some(&endpoint), Some("us-east-1")).await;
    sm.client()
        .create_secret()
        .name(&name)
        .secret_string(secret_json(OLD_KEY))
        .send()
        .await
        .unwrap();
    // The model only accepts the key the secret will be rotated to.
    let fake = FakeServer::start(FakeConfig {
        api_key: Some(NEW_KEY.into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("docent.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("DOCENT_CONFIG")
        .env("DOCENT__DATA_DIR", data.path())
        .env("DOCENT__LOG__LEVEL", "info")
        .env("DOCENT__EMBEDDER__KIND", "none")
        .env("DOCENT__AUTH__MODE", "none")
        .env("DOCENT__QUEUE__POLL_INTERVAL", "50ms")
        .env("DOCENT__LLM__KIND", "openai")
        .env("DOCENT__LLM__BASE_URL", fake.base_url())
        .env("DOCENT__LLM__MODEL", CHAT_MODEL)
        .env(
            "DOCENT__LLM__API_KEY",
            format!("secretsmanager:{name}#api_key"),
        )
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("docent starts");
    let server = Server(child);

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
            "server never became healthy: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A document, processed, and a bot over it.
    let coll = ok_json(
        client
            .post(format!("{base}/api/v1/collections"))
            .json(&json!({ "name": "notes" })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(
            b"# Geography\n\nThe capital of France is Paris. Paris lies on the Seine.\n".to_vec(),
        )
        .file_name("france.md"),
    );
    let doc = ok_json(
        client
            .post(format!("{base}/api/v1/collections/{coll}/documents"))
            .multipart(form),
    )
    .await["document"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    loop {
        let d = ok_json(client.get(format!("{base}/api/v1/documents/{doc}"))).await;
        if d["status"] == "completed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bot = ok_json(
        client
            .post(format!("{base}/api/v1/bots"))
            .json(&json!({ "name": "geo", "collection_ids": [coll] })),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat = || {
        client
            .post(format!("{base}/api/v1/bots/{bot}/chat"))
            .json(&json!({ "message": "What is the capital of France?" }))
            .send()
    };

    // With the old key the model refuses.
    let r = chat().await.unwrap();
    assert!(!r.status().is_success(), "{}", r.status());
    assert_eq!(chat_statuses(&fake), [401]);

    // Rotate, then SIGHUP: the next chats carry the new key.
    sm.client()
        .put_secret_value()
        .secret_id(&name)
        .secret_string(secret_json(NEW_KEY))
        .send()
        .await
        .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let started = Instant::now();
    loop {
        let r = chat().await.unwrap();
        if r.status().is_success() {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["answered_by"], "model", "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the new key never took effect: {:?}\n{}",
            chat_statuses(&fake),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chat_statuses(&fake).last(), Some(&200));

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("secrets reloaded"), "{log}");
    for secret in [OLD_KEY, NEW_KEY] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    drop(server);
}
