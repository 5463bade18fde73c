//! `secretsmanager:` references against a Secrets Manager-compatible server (moto,
//! `DOCENT_TEST_AWS_ENDPOINT`, with the dummy `AWS_*` credentials `scripts/test-services`
//! exports): the whole string, a JSON key, the ARN form, a rotated value, the errors (missing
//! secret, missing key, not JSON) naming the reference but never a value, and a whole
//! configuration file resolved. Tests print `skipped: DOCENT_TEST_AWS_ENDPOINT not set` and pass
//! without it.

use std::time::{SystemTime, UNIX_EPOCH};

use docent_aws::secrets::{Resolver, SecretsManager, resolve_layers};
use docent_config::{ConfigLayers, DatabaseConfig, LlmConfig};
use secrecy::ExposeSecret;

const JSON: &str = r#"{"api_key":"sk-from-sm-123","username":"docent","port":5432}"#;

fn endpoint() -> Option<String> {
    match std::env::var("DOCENT_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: DOCENT_TEST_AWS_ENDPOINT not set");
            None
        }
    }
}

/// A secret name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("docent-test/{what}-{}-{nanos}", std::process::id())
}

async fn client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(
        &docent_aws::sdk_config(Some(endpoint), Some("us-east-1")).await,
    )
}

/// Creates a secret; returns its ARN.
async fn create(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) -> String {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

async fn resolve_one(source: &SecretsManager, value: &str) -> Result<Option<String>, String> {
    let mut r = Resolver::new(source);
    r.fetch([value]).await?;
    r.resolve(value)
}

#[tokio::test]
async fn whole_strings_json_keys_and_arns_resolve() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint).await;
    let plain = unique("plain");
    let json = unique("json");
    create(&client, &plain, "hunter2-plain").await;
    let arn = create(&client, &json, JSON).await;
    let sm = SecretsManager::connect(Some(&endpoint), Some("us-east-1")).await;

    let ok = |v: String| {
        let sm = &sm;
        async move { resolve_one(sm, &v).await.unwrap() }
    };
    assert_eq!(
        ok(format!("secretsmanager:{plain}")).await.as_deref(),
        Some("hunter2-plain")
    );
    assert_eq!(
        ok(format!("secretsmanager:{json}#api_key"))
            .await
            .as_deref(),
        Some("sk-from-sm-123")
    );
    assert_eq!(
        ok(format!("secretsmanager:{json}#port")).await.as_deref(),
        Some("5432")
    );
    assert_eq!(
        ok(format!("secretsmanager:{json}")).await.as_deref(),
        Some(JSON)
    );
    // By ARN (it holds ':'), with a key.
    assert!(arn.starts_with("arn:aws:secretsmanager:"), "{arn}");
    assert_eq!(
        ok(format!("secretsmanager:{arn}#username"))
            .await
            .as_deref(),
        Some("docent")
    );
    assert_eq!(ok("plain text".to_owned()).await, None);

    // A rotated value is what the next resolution sees.
    client
        .put_secret_value()
        .secret_id(&plain)
        .secret_string("hunter3-rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok(format!("secretsmanager:{plain}")).await.as_deref(),
        Some("hunter3-rotated")
    );
}

#[tokio::test]
async fn errors_name_the_reference_and_never_the_value() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint).await;
    let plain = unique("not-json");
    let json = unique("json");
    create(&client, &plain, "hunter2-secret-value").await;
    create(&client, &json, JSON).await;
    let sm = SecretsManager::connect(Some(&endpoint), Some("us-east-1")).await;

    let missing = unique("missing");
    let reference = format!("secretsmanager:{missing}#k");
    let e = resolve_one(&sm, &reference).await.unwrap_err();
    assert!(e.contains(&reference) && e.contains("no secret"), "{e}");

    let reference = format!("secretsmanager:{json}#password");
    let e = resolve_one(&sm, &reference).await.unwrap_err();
    assert!(
        e.contains(&reference) && e.contains("no key `password`"),
        "{e}"
    );
    assert!(!e.contains("sk-from-sm"), "{e}");

    let reference = format!("secretsmanager:{plain}#k");
    let e = resolve_one(&sm, &reference).await.unwrap_err();
    assert!(e.contains("not JSON") && !e.contains("hunter2"), "{e}");

    // Secrets Manager unreachable: an error naming the reference, soon.
    let dead = SecretsManager::connect(Some("http://127.0.0.1:1"), Some("us-east-1")).await;
    let started = std::time::Instant::now();
    let e = resolve_one(&dead, &format!("secretsmanager:{plain}"))
        .await
        .unwrap_err();
    assert!(e.contains("cannot read it"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

/// A whole configuration: the LLM key from a JSON key, the PostgreSQL URL from a plain secret,
/// each secret fetched once.
#[tokio::test]
async fn a_config_file_resolves_its_references() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint).await;
    let llm = unique("llm");
    let db = unique("db");
    create(&client, &llm, JSON).await;
    create(
        &client,
        &db,
        "postgres://docent:pw-from-sm@db.internal:5432/docent",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docent.toml");
    std::fs::write(
        &file,
        format!(
            r#"
            [llm]
            kind = "openai"
            base_url = "https://api.example.com/v1"
            model = "gpt-test"
            api_key = "secretsmanager:{llm}#api_key"

            [embedder]
            kind = "openai"
            base_url = "https://api.example.com/v1"
            model = "embed-test"
            dimension = 8
            api_key = "secretsmanager:{llm}#api_key"

            [database]
            kind = "postgres"
            url = "secretsmanager:{db}"
            "#
        ),
    )
    .unwrap();
    let sm = SecretsManager::connect(Some(&endpoint), Some("us-east-1")).await;
    let loaded = resolve_layers(ConfigLayers::load(Some(&file)).unwrap(), &sm)
        .await
        .unwrap();
    assert_eq!((loaded.references, loaded.secrets_fetched), (3, 2));
    let config = loaded.config;
    assert!(matches!(config.llm, LlmConfig::Openai { .. }));
    assert_eq!(
        config.llm.api_key().unwrap().unwrap().expose_secret(),
        "sk-from-sm-123"
    );
    assert_eq!(
        config.embedder.api_key().unwrap().unwrap().expose_secret(),
        "sk-from-sm-123"
    );
    assert!(matches!(config.database, DatabaseConfig::Postgres { .. }));
    assert!(
        config
            .database
            .postgres_url()
            .unwrap()
            .unwrap()
            .expose_secret()
            .contains("pw-from-sm")
    );
    let shown = config.to_redacted_toml();
    assert!(
        !shown.contains("sk-from-sm") && !shown.contains("pw-from-sm"),
        "{shown}"
    );

    // A reference to a secret that is gone stops the load, naming the key.
    std::fs::write(
        &file,
        format!("[llm]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\napi_key = \"secretsmanager:{llm}-gone#api_key\"\n"),
    )
    .unwrap();
    let e = resolve_layers(ConfigLayers::load(Some(&file)).unwrap(), &sm)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("llm.api_key") && e.contains("-gone"), "{e}");
}
