//! `secretsmanager:` references in configuration: any string value of the configuration — in
//! the TOML file or a `DOCENT__*` variable — may name an AWS Secrets Manager secret instead of
//! holding the value:
//!
//! | value                                   | resolves to                                    |
//! |-----------------------------------------|------------------------------------------------|
//! | `secretsmanager:NAME`                   | the secret's whole `SecretString`              |
//! | `secretsmanager:NAME#key`               | field `key` of the `SecretString`, a JSON object |
//! | `secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf#key` | the same, by ARN |
//!
//! The text after the prefix is split at its *last* `#` (secret names and ARNs hold no `#`; ARNs
//! hold `:`). A JSON field that is a number or a boolean resolves to its JSON text.
//!
//! [`load_config`] types loaded configuration layers (as `Config::load` does) once every
//! reference in them is resolved with the current version (`AWSCURRENT`) of each secret, fetching each secret once per
//! load however many references name it. The binary calls it at start and again on SIGHUP.
//! The Secrets Manager client uses the standard AWS environment: region, credentials chain,
//! and `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or `AWS_ENDPOINT_URL`) for another endpoint. A
//! configuration without references never builds the client.
//!
//! Errors name the reference (and the configuration key holding it), never a secret's value;
//! nothing here logs a value.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use docent_config::{Config, ConfigError, ConfigLayers};
use secrecy::{ExposeSecret, SecretString};

/// The prefix that marks a value as a reference.
pub const PREFIX: &str = "secretsmanager:";

/// A parsed `secretsmanager:NAME[#key]` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The secret's name or ARN.
    pub name: String,
    /// The JSON field, when the reference has `#key`.
    pub key: Option<String>,
}

impl Reference {
    /// `None` when `value` is not a reference; an error when it is one but malformed.
    pub fn parse(value: &str) -> Option<Result<Reference, String>> {
        let rest = value.strip_prefix(PREFIX)?;
        let (name, key) = match rest.rsplit_once('#') {
            Some((name, key)) => (name, Some(key)),
            None => (rest, None),
        };
        Some(if name.trim().is_empty() {
            Err(format!("`{value}` names no secret"))
        } else if key.is_some_and(|k| k.trim().is_empty()) {
            Err(format!("`{value}` has an empty key after `#`"))
        } else {
            Ok(Reference {
                name: name.to_owned(),
                key: key.map(str::to_owned),
            })
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{PREFIX}{}#{key}", self.name),
            None => write!(f, "{PREFIX}{}", self.name),
        }
    }
}

/// Where secrets come from: Secrets Manager ([`SecretsManager`]), or a fake in tests.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The `SecretString` of the secret `name` (a name or an ARN); `Ok(None)` when there is no
    /// such secret. An error says why it could not be read, never what it holds.
    async fn secret_string(&self, name: &str) -> Result<Option<SecretString>, String>;
}

/// AWS Secrets Manager as a [`SecretSource`].
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    /// A client from the standard AWS environment (see the module docs), with bounded
    /// timeouts: 3 s to connect, 10 s a call.
    pub async fn from_env() -> Self {
        Self::connect(None, None).await
    }

    /// Like [`from_env`](Self::from_env), with an endpoint (e.g. `http://127.0.0.1:5000` for
    /// moto) and a region when given.
    pub async fn connect(endpoint: Option<&str>, region: Option<&str>) -> Self {
        let sdk = crate::sdk_config(endpoint, region).await;
        let config = aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        Self::new(aws_sdk_secretsmanager::Client::from_conf(config))
    }

    /// Over an existing client.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// The client (tests create and rotate secrets with it).
    pub fn client(&self) -> &aws_sdk_secretsmanager::Client {
        &self.client
    }
}

#[async_trait]
impl SecretSource for SecretsManager {
    #[tracing::instrument(skip_all, fields(secret = %name))]
    async fn secret_string(&self, name: &str) -> Result<Option<SecretString>, String> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => match out.secret_string() {
                Some(s) => Ok(Some(SecretString::from(s.to_owned()))),
                None => Err("the secret holds binary data, not a string".to_owned()),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("cannot read it: {}", DisplayErrorContext(&e))),
        }
    }
}

/// Resolves references against a [`SecretSource`], fetching each secret once: call
/// [`fetch`](Resolver::fetch) with every value first, then [`resolve`](Resolver::resolve) (no
/// I/O) for each.
pub struct Resolver<'a> {
    source: &'a dyn SecretSource,
    fetched: HashMap<String, Option<SecretString>>,
}

impl<'a> Resolver<'a> {
    /// A resolver with nothing fetched yet.
    pub fn new(source: &'a dyn SecretSource) -> Self {
        Self {
            source,
            fetched: HashMap::new(),
        }
    }

    /// Fetches every secret the references among `values` name, each once (values that are
    /// not references are skipped). Returns how many references there were.
    pub async fn fetch<'v>(
        &mut self,
        values: impl IntoIterator<Item = &'v str>,
    ) -> Result<usize, String> {
        let mut references = 0;
        for value in values {
            let Some(reference) = Reference::parse(value) else {
                continue;
            };
            let reference = reference?;
            references += 1;
            if self.fetched.contains_key(&reference.name) {
                continue;
            }
            let secret = self
                .source
                .secret_string(&reference.name)
                .await
                .map_err(|why| format!("{reference}: {why}"))?;
            self.fetched.insert(reference.name, secret);
        }
        Ok(references)
    }

    /// How many secrets were fetched.
    pub fn secrets_fetched(&self) -> usize {
        self.fetched.len()
    }

    /// The value `value` stands for: `Ok(None)` when it is not a reference, the secret (or
    /// its JSON field) when it is. The secret must have been [fetched](Resolver::fetch).
    pub fn resolve(&self, value: &str) -> Result<Option<String>, String> {
        let Some(reference) = Reference::parse(value) else {
            return Ok(None);
        };
        let reference = reference?;
        let secret = match self.fetched.get(&reference.name) {
            Some(Some(secret)) => secret,
            Some(None) => {
                return Err(format!(
                    "{reference}: no secret named `{}` (or no permission to read it)",
                    reference.name
                ));
            }
            None => return Err(format!("{reference}: the secret was not fetched")),
        };
        let Some(key) = &reference.key else {
            return Ok(Some(secret.expose_secret().to_owned()));
        };
        // The parse error would quote the secret: it is left out.
        let json: serde_json::Value = serde_json::from_str(secret.expose_secret())
            .map_err(|_| format!("{reference}: the secret is not JSON, so it has no keys"))?;
        let Some(object) = json.as_object() else {
            return Err(format!(
                "{reference}: the secret is not a JSON object, so it has no keys"
            ));
        };
        match object.get(key) {
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                Ok(Some(v.to_string()))
            }
            Some(_) => Err(format!(
                "{reference}: key `{key}` is not a string, number or boolean"
            )),
            None => Err(format!("{reference}: the secret has no key `{key}`")),
        }
    }
}

/// A configuration loaded with its references resolved.
#[derive(Debug)]
pub struct Loaded {
    /// The typed, validated configuration.
    pub config: Config,
    /// How many values were references.
    pub references: usize,
    /// How many secrets were fetched for them.
    pub secrets_fetched: usize,
}

/// Types the configuration `layers` (e.g. `ConfigLayers::load(file)`) after resolving every
/// `secretsmanager:` reference in them from AWS Secrets Manager (a client is built only when
/// there is one).
pub async fn load_config(layers: ConfigLayers) -> Result<Loaded, ConfigError> {
    if !has_references(&layers)? {
        return Ok(Loaded {
            config: layers.into_config()?,
            references: 0,
            secrets_fetched: 0,
        });
    }
    resolve_layers(layers, &SecretsManager::from_env().await).await
}

/// Resolves the references of `layers` from `source`, then types and validates them.
pub async fn resolve_layers(
    layers: ConfigLayers,
    source: &dyn SecretSource,
) -> Result<Loaded, ConfigError> {
    let strings = layers.strings()?;
    let mut resolver = Resolver::new(source);
    let mut references = 0;
    for (key, value) in &strings {
        references += resolver
            .fetch([value.as_str()])
            .await
            .map_err(|why| ConfigError::Invalid(format!("{key}: {why}")))?;
    }
    let config = layers.resolve(|_key, value| resolver.resolve(value))?;
    Ok(Loaded {
        config,
        references,
        secrets_fetched: resolver.secrets_fetched(),
    })
}

fn has_references(layers: &ConfigLayers) -> Result<bool, ConfigError> {
    Ok(layers
        .strings()?
        .iter()
        .any(|(_, value)| value.starts_with(PREFIX)))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Secrets in memory, counting fetches per name.
    #[derive(Default)]
    struct Fake {
        secrets: HashMap<String, String>,
        fetches: Mutex<HashMap<String, usize>>,
    }

    #[async_trait]
    impl SecretSource for Fake {
        async fn secret_string(&self, name: &str) -> Result<Option<SecretString>, String> {
            *self
                .fetches
                .lock()
                .unwrap()
                .entry(name.to_owned())
                .or_default() += 1;
            Ok(self
                .secrets
                .get(name)
                .map(|s| SecretString::from(s.clone())))
        }
    }

    fn fake(secrets: &[(&str, &str)]) -> Fake {
        Fake {
            secrets: secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Fake::default()
        }
    }

    #[test]
    fn references_split_at_the_prefix_and_the_last_hash() {
        assert_eq!(Reference::parse("postgres://x"), None);
        assert_eq!(
            Reference::parse("secretsmanager:docent/db"),
            Some(Ok(Reference {
                name: "docent/db".into(),
                key: None
            }))
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docent/db-AbCdEf";
        assert_eq!(
            Reference::parse(&format!("secretsmanager:{arn}#password")),
            Some(Ok(Reference {
                name: arn.into(),
                key: Some("password".into())
            }))
        );
        assert!(matches!(Reference::parse("secretsmanager:"), Some(Err(_))));
        assert!(matches!(
            Reference::parse("secretsmanager:#k"),
            Some(Err(_))
        ));
        assert!(matches!(
            Reference::parse("secretsmanager:n#"),
            Some(Err(_))
        ));
        let r = Reference::parse("secretsmanager:a#b").unwrap().unwrap();
        assert_eq!(r.to_string(), "secretsmanager:a#b");
    }

    #[tokio::test]
    async fn each_secret_is_fetched_once_and_keys_are_read_from_json() {
        let source = fake(&[
            (
                "docent/llm",
                r#"{"api_key":"sk-1","port":5432,"tls":true,"n":null}"#,
            ),
            ("plain", "hunter2"),
        ]);
        let mut r = Resolver::new(&source);
        let values = [
            "secretsmanager:docent/llm#api_key",
            "secretsmanager:docent/llm#port",
            "secretsmanager:docent/llm",
            "secretsmanager:plain",
            "not a reference",
        ];
        assert_eq!(r.fetch(values).await.unwrap(), 4);
        assert_eq!(r.fetch(values).await.unwrap(), 4, "nothing fetched again");
        assert_eq!(r.secrets_fetched(), 2);
        let fetches = source.fetches.lock().unwrap().clone();
        assert_eq!(fetches.get("docent/llm"), Some(&1));
        assert_eq!(fetches.get("plain"), Some(&1));

        let ok = |v: &str| r.resolve(v).unwrap();
        assert_eq!(ok(values[0]).as_deref(), Some("sk-1"));
        assert_eq!(ok(values[1]).as_deref(), Some("5432"));
        assert_eq!(ok("secretsmanager:docent/llm#tls").as_deref(), Some("true"));
        assert_eq!(ok("secretsmanager:plain").as_deref(), Some("hunter2"));
        assert_eq!(ok("not a reference"), None);

        let err = |v: &str| r.resolve(v).unwrap_err();
        assert!(err("secretsmanager:docent/llm#nope").contains("no key `nope`"));
        assert!(err("secretsmanager:docent/llm#n").contains("not a string"));
        let e = err("secretsmanager:plain#k");
        assert!(e.contains("not JSON") && !e.contains("hunter2"), "{e}");
        assert!(err("secretsmanager:other").contains("not fetched"));
    }

    #[tokio::test]
    async fn a_missing_secret_is_named_when_resolved() {
        let source = fake(&[]);
        let mut r = Resolver::new(&source);
        r.fetch(["secretsmanager:gone#k"]).await.unwrap();
        let e = r.resolve("secretsmanager:gone#k").unwrap_err();
        assert!(
            e.contains("secretsmanager:gone#k") && e.contains("no secret"),
            "{e}"
        );
    }

    fn layers(toml: &str) -> (tempfile::TempDir, ConfigLayers) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docent.toml");
        std::fs::write(&file, toml).unwrap();
        let layers = ConfigLayers::load(Some(&file)).unwrap();
        (dir, layers)
    }

    #[tokio::test]
    async fn every_string_of_the_config_may_be_a_reference() {
        let source = fake(&[
            ("docent/llm", r#"{"api_key":"sk-live","model":"gpt-x"}"#),
            ("origins", "https://app.example.com"),
        ]);
        let (_dir, layers) = layers(
            r#"
            [llm]
            kind = "openai"
            base_url = "https://api.example.com/v1"
            model = "secretsmanager:docent/llm#model"
            api_key = "secretsmanager:docent/llm#api_key"
            [server.cors]
            allowed_origins = ["https://other.example.com", "secretsmanager:origins"]
            "#,
        );
        let loaded = resolve_layers(layers, &source).await.unwrap();
        assert_eq!((loaded.references, loaded.secrets_fetched), (3, 2));
        let docent_config::LlmConfig::Openai { model, .. } = &loaded.config.llm else {
            panic!("openai expected");
        };
        assert_eq!(model, "gpt-x");
        assert_eq!(
            loaded
                .config
                .llm
                .api_key()
                .unwrap()
                .unwrap()
                .expose_secret(),
            "sk-live"
        );
        assert_eq!(
            loaded.config.server.cors.allowed_origins,
            ["https://other.example.com", "https://app.example.com"]
        );
        // Untouched values keep their defaults and file values.
        assert_eq!(loaded.config.server.cors.allowed_methods.len(), 5);
        assert!(!loaded.config.to_redacted_toml().contains("sk-live"));
    }

    #[tokio::test]
    async fn errors_name_the_key_and_reference_but_never_the_value() {
        let source = fake(&[("bind", "not-an-address-s3cr3t")]);
        let (_dir, l) = layers(
            "[llm]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\napi_key = \"secretsmanager:missing#k\"\n",
        );
        let e = resolve_layers(l, &source).await.unwrap_err().to_string();
        assert!(
            e.contains("llm.api_key") && e.contains("secretsmanager:missing#k"),
            "{e}"
        );
        // A secret that does not parse in its field: the error hides it.
        let (_dir, l) = layers("[server]\nbind = \"secretsmanager:bind\"\n");
        let e = resolve_layers(l, &source).await.unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("bind"), "{e}");
    }
}
