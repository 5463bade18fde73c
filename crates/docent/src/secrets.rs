//! Secrets at start and on SIGHUP.
//!
//! [`load_config`] is how the command line loads its configuration: `ConfigLayers::load_in` (the
//! defaults' paths in the docent home), with every `secretsmanager:NAME[#key]` value resolved from AWS Secrets Manager (`docent_aws::secrets`;
//! without the `aws` cargo feature such a value is refused).
//!
//! On SIGHUP, a running `serve` or `worker` ([`reload_on_sighup`]) loads the configuration
//! again — the same file, the environment, `*_file` secrets and fresh Secrets Manager values —
//! and applies what can change without a restart:
//!
//! - `database.url` (PostgreSQL): connections opened from then on use the new URL (a rotated
//!   password); open ones are kept until the pool retires them.
//! - `llm.api_key` and `embedder.api_key` (`openai` kinds): the next request sends the new key.
//!
//! Nothing else is applied: other changed settings need a restart, and the Redis URL, the JWT
//! and SMTP secrets and OIDC settings keep the values read at start. S3, SQS and DynamoDB take
//! their credentials from the AWS credentials chain, which renews them by itself. A reload that
//! fails (file unreadable, Secrets Manager down) is logged and changes nothing. Values are never
//! logged: the reload logs `secrets reloaded` with counts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use docent_config::Config;
use docent_llm::{SharedApiKey, WeakApiKey};
use secrecy::SecretString;

/// Which configured key a [`SharedApiKey`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    /// `llm.api_key`.
    Llm,
    /// `embedder.api_key`.
    Embedder,
}

/// Where the command line loaded its configuration from; `None` until [`load_config`] runs.
static SOURCE: Mutex<Option<Source>> = Mutex::new(None);

/// The docent home and the configuration file (`None`: defaults and environment only).
#[derive(Debug, Clone)]
struct Source {
    home: PathBuf,
    file: Option<PathBuf>,
}

/// The SIGHUP listener registered by [`load_config`], taken by [`reload_on_sighup`].
#[cfg(unix)]
static EARLY_HANGUPS: Mutex<Option<tokio::signal::unix::Signal>> = Mutex::new(None);

/// The model API keys in use in this process, to replace on SIGHUP.
static KEYS: Mutex<Vec<(KeySlot, WeakApiKey)>> = Mutex::new(Vec::new());

/// The PostgreSQL search index, whose own pool follows a rotated URL too.
#[cfg(feature = "postgres")]
static INDEX: Mutex<Option<std::sync::Weak<docent_index::PgIndex>>> = Mutex::new(None);

/// Registers the PostgreSQL search index for [`reload`].
#[cfg(feature = "postgres")]
pub fn register_index(index: &std::sync::Arc<docent_index::PgIndex>) {
    *INDEX.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::downgrade(index));
}

/// What a load found.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// How many values were `secretsmanager:` references.
    pub references: usize,
}

/// Loads the configuration (defaults, their relative paths in `home` → `file` → `DOCENT__*`),
/// resolving `secretsmanager:` references, and remembers where from for reloads.
pub async fn load_config(home: &Path, file: Option<&Path>) -> anyhow::Result<Config> {
    let source = Source {
        home: home.to_path_buf(),
        file: file.map(Path::to_path_buf),
    };
    *SOURCE.lock().unwrap_or_else(|e| e.into_inner()) = Some(source.clone());
    // Listen from the start: SIGHUP's default action ends the process, and opening the
    // services (a reindex, say) can take a while before `reload_on_sighup` runs. A SIGHUP
    // meanwhile is kept and reloads once the listener starts.
    #[cfg(unix)]
    if let Ok(s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        *EARLY_HANGUPS.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }
    let loaded = load(&source).await?;
    if loaded.references > 0 {
        tracing::info!(
            references = loaded.references,
            "secrets resolved from Secrets Manager"
        );
    }
    Ok(loaded.config)
}

/// What the seed applications' variables did at the last load.
static SEED: Mutex<Vec<docent_config::SeedUse>> = Mutex::new(Vec::new());

/// What each seed variable (`DATABASE_URL`, ...) set at the last load, or why it was ignored;
/// for `docent config show` and `check`.
pub fn seed_uses() -> Vec<docent_config::SeedUse> {
    SEED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The configuration layers of `source`, remembering what the seed variables did.
fn layers(source: &Source) -> anyhow::Result<docent_config::ConfigLayers> {
    let layers = docent_config::ConfigLayers::load_in(&source.home, source.file.as_deref())?;
    *SEED.lock().unwrap_or_else(|e| e.into_inner()) = layers.seed_uses().to_vec();
    Ok(layers)
}

#[cfg(feature = "aws")]
async fn load(source: &Source) -> anyhow::Result<Loaded> {
    let layers = layers(source)?;
    let loaded = docent_aws::secrets::load_config(layers).await?;
    Ok(Loaded {
        config: loaded.config,
        references: loaded.references,
    })
}

#[cfg(not(feature = "aws"))]
async fn load(source: &Source) -> anyhow::Result<Loaded> {
    let layers = layers(source)?;
    let config = layers.resolve(|_, value| {
        if value.starts_with("secretsmanager:") {
            Err("Secrets Manager references need docent built with the `aws` cargo feature".into())
        } else {
            Ok(None)
        }
    })?;
    Ok(Loaded {
        config,
        references: 0,
    })
}

/// A slot holding the API key of `slot`, replaced on SIGHUP for as long as a client holds it.
pub fn api_key(slot: KeySlot, key: Option<SecretString>) -> SharedApiKey {
    let shared = SharedApiKey::new(key);
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    keys.retain(|(_, k)| k.upgrade().is_some());
    keys.push((slot, shared.downgrade()));
    shared
}

/// Loads the configuration again and applies the secrets that can change at run time (see
/// the module docs) to this process's model keys and to `db`. Returns the number of
/// `secretsmanager:` references resolved.
pub async fn reload(db: &docent_store::Database) -> anyhow::Result<usize> {
    let source = SOURCE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .context("the configuration was not loaded from the command line; nothing to reload")?;
    let loaded = load(&source).await?;
    let config = &loaded.config;
    // Every value first, so a reload that fails changes nothing.
    let database_url = config.database.postgres_url()?;
    let index_url = config.index.postgres_url(&config.database)?;
    let llm = config.llm.api_key()?;
    let embedder = config.embedder.api_key()?;
    let database = match database_url {
        Some(url) => db
            .set_postgres_url(&url)
            .map_err(|e| anyhow::anyhow!(e.chain()))?,
        None => false,
    };
    #[cfg(feature = "postgres")]
    if let (Some(url), Some(index)) = (
        index_url,
        INDEX
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|w| w.upgrade()),
    ) {
        use secrecy::ExposeSecret;
        index
            .set_url(url.expose_secret())
            .map_err(|e| anyhow::anyhow!(e.chain()))?;
    }
    #[cfg(not(feature = "postgres"))]
    let _ = index_url;
    let mut keys = 0;
    for (slot, key) in KEYS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if let Some(shared) = key.upgrade() {
            shared.set(match slot {
                KeySlot::Llm => llm.clone(),
                KeySlot::Embedder => embedder.clone(),
            });
            keys += 1;
        }
    }
    tracing::info!(
        references = loaded.references,
        database,
        model_keys = keys,
        "secrets reloaded"
    );
    Ok(loaded.references)
}

/// Stops the SIGHUP listener when dropped.
#[derive(Debug)]
pub struct ReloadTask(Option<tokio::task::JoinHandle<()>>);

impl Drop for ReloadTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Calls [`reload`] on every SIGHUP until the returned task is dropped (Unix only; elsewhere
/// nothing listens).
pub fn reload_on_sighup(db: docent_store::Database) -> ReloadTask {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let early = EARLY_HANGUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut hangups = match early.map_or_else(|| signal(SignalKind::hangup()), Ok) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; secrets will not reload");
                return ReloadTask(None);
            }
        };
        ReloadTask(Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if let Err(e) = reload(&db).await {
                    tracing::error!(error = %format!("{e:#}"), "secrets not reloaded; keeping the current ones");
                }
            }
        })))
    }
    #[cfg(not(unix))]
    {
        let _ = db;
        ReloadTask(None)
    }
}
