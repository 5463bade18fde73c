//! Seed compatibility: the environment variables of the applications docent replaces
//! (`DATABASE_URL`, `REDIS_URL`, `S3_BUCKET_NAME`, `SQS_QUEUE_URL`, `DYNAMODB_CACHE_TABLE`,
//! `OPENAI_API_KEY`, ...) read as aliases of docent's keys, so an operator moving one of those
//! apps to docent can keep its environment. [`ALIASES`] is the table (the README prints it).
//!
//! Precedence, lowest first: compiled-in defaults → seed variables → the configuration file →
//! `DOCENT__*` variables. Anything said in docent's own terms wins, key by key. A seed variable
//! that implies a backend (`DATABASE_URL` means `database.kind = "postgres"`) is ignored when
//! the file or a `DOCENT__` variable chooses another kind for that section, and is reported as
//! ignored. `OPENAI_API_KEY` alone fills `embedder.api_key` only when docent's own settings
//! already chose `embedder.kind = "openai"` (switching the embedder changes every collection's
//! vectors, so only `OPENAI_EMBEDDING_MODEL` does that).
//!
//! Values are never printed: [`SeedUse`] names the variable and the keys it set.

use std::collections::BTreeMap;

use figment::Figment;
use figment::value::{Dict, Value};

use crate::ConfigError;
use crate::dict_path::insert;

/// One documented alias: seed variable → docent keys, and what it implies.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    /// The seed application's variable.
    pub variable: &'static str,
    /// The docent keys it sets.
    pub keys: &'static str,
    /// What else to know.
    pub notes: &'static str,
}

/// Every seed variable docent reads, in the order the README lists them.
pub const ALIASES: &[Alias] = &[
    Alias {
        variable: "DATABASE_URL",
        keys: "database.kind = \"postgres\", database.url",
        notes: "a postgres:// or postgresql:// URL (a SQLAlchemy driver suffix such as \
                `+asyncpg` is dropped); any other scheme is refused",
    },
    Alias {
        variable: "REDIS_URL",
        keys: "redis.url, cache.kind = \"redis\"",
        notes: "with DYNAMODB_CACHE_TABLE: cache.kind = \"tiered\" (in process → Redis → DynamoDB)",
    },
    Alias {
        variable: "DYNAMODB_CACHE_TABLE",
        keys: "cache.kind = \"dynamodb\", cache.table",
        notes: "region and endpoint from the AWS environment (AWS_REGION, AWS_ENDPOINT_URL)",
    },
    Alias {
        variable: "S3_BUCKET_NAME",
        keys: "storage.kind = \"s3\", storage.bucket, storage.region",
        notes: "also S3_BUCKET; the region from AWS_REGION or AWS_DEFAULT_REGION",
    },
    Alias {
        variable: "SQS_QUEUE_URL",
        keys: "queue.backend.kind = \"sqs\", queue.backend.queue_name, dlq_name, region, endpoint",
        notes: "the name is the URL's last segment; the region comes from an amazonaws.com \
                host, any other host becomes the endpoint; the dead-letter queue is \
                SQS_DLQ_URL's, else NAME-dlq",
    },
    Alias {
        variable: "SQS_DLQ_URL",
        keys: "queue.backend.dlq_name",
        notes: "also SQS_DEAD_LETTER_QUEUE_URL; only with SQS_QUEUE_URL",
    },
    Alias {
        variable: "OPENAI_API_KEY",
        keys: "llm.kind = \"openai\", llm.api_key (and embedder.api_key of an openai embedder)",
        notes: "model from OPENAI_MODEL (or OPENAI_CHAT_MODEL), else gpt-4o-mini",
    },
    Alias {
        variable: "OPENAI_BASE_URL",
        keys: "llm.base_url, embedder.base_url",
        notes: "also OPENAI_API_BASE; else https://api.openai.com/v1",
    },
    Alias {
        variable: "OPENAI_MODEL",
        keys: "llm.model",
        notes: "also OPENAI_CHAT_MODEL; only with OPENAI_API_KEY",
    },
    Alias {
        variable: "OPENAI_EMBEDDING_MODEL",
        keys: "embedder.kind = \"openai\", embedder.model, embedder.api_key",
        notes: "also EMBEDDING_MODEL; a collection keeps the model it was filled with",
    },
    Alias {
        variable: "HOST",
        keys: "server.bind (its address)",
        notes: "only with PORT",
    },
    Alias {
        variable: "PORT",
        keys: "server.bind",
        notes: "HOST:PORT, HOST defaulting to 127.0.0.1",
    },
    Alias {
        variable: "LOG_LEVEL",
        keys: "log.level",
        notes: "DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)",
    },
    Alias {
        variable: "CORS_ORIGINS",
        keys: "server.cors.allowed_origins",
        notes: "also ALLOWED_ORIGINS; comma-separated, or a JSON array",
    },
    Alias {
        variable: "MAX_UPLOAD_SIZE",
        keys: "ingest.max_upload_size",
        notes: "bytes, or with a unit (`50MB`)",
    },
];

/// The variables read besides the aliases' own names.
const EXTRA: &[&str] = &[
    "S3_BUCKET",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "SQS_DEAD_LETTER_QUEUE_URL",
    "OPENAI_API_BASE",
    "OPENAI_CHAT_MODEL",
    "EMBEDDING_MODEL",
    "ALLOWED_ORIGINS",
];

/// The seed variables of an environment.
#[derive(Debug, Clone, Default)]
pub struct SeedEnv {
    vars: BTreeMap<String, String>,
}

impl SeedEnv {
    /// The seed variables of this process (only the names docent knows are read).
    pub fn from_process() -> Self {
        Self::from_pairs(
            ALIASES
                .iter()
                .map(|a| a.variable)
                .chain(EXTRA.iter().copied())
                .filter_map(|name| Some((name, std::env::var(name).ok()?))),
        )
    }

    /// These variables (tests). Empty values count as unset.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim())
    }

    /// The first of `names` that is set, with its name.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names.iter().find_map(|n| Some((*n, self.get(n)?)))
    }
}

/// What one seed variable did to the configuration (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUse {
    /// The variable.
    pub variable: String,
    /// The keys it set (`database.url`), empty when ignored.
    pub keys: Vec<String>,
    /// Why it was not used.
    pub ignored: Option<String>,
}

impl std::fmt::Display for SeedUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ignored {
            Some(why) => write!(f, "{}: ignored ({why})", self.variable),
            None => write!(f, "{} → {}", self.variable, self.keys.join(", ")),
        }
    }
}

/// The values of one section (`database`, `queue.backend`) that some seed variables imply.
struct Fragment {
    /// Dotted path of the section.
    section: &'static str,
    /// The backend kind the values belong to (`None`: the section has no kinds).
    kind: Option<&'static str>,
    /// Whether the variables choose the kind, or only fill in a kind docent's settings chose.
    chooses: bool,
    /// Keys relative to the section, dotted, and their values.
    values: Vec<(&'static str, Value)>,
    /// The variables behind it, the one that chooses the kind first.
    variables: Vec<&'static str>,
    /// Keys set by a variable other than the first (a key may have several).
    owners: Vec<(&'static str, &'static str)>,
}

/// A fragment, or why the variables behind it cannot be used.
type Parsed = Result<Fragment, (Vec<&'static str>, &'static str, String)>;

/// The seed layer for `overrides` (the file and `DOCENT__` variables): the values to merge
/// between the defaults and `overrides`, the kind each seeded section gets (for the defaults
/// of another kind to be dropped), and a report per variable.
pub(crate) struct SeedLayer {
    pub(crate) values: Dict,
    pub(crate) kinds: Vec<(&'static str, &'static str)>,
    pub(crate) uses: Vec<SeedUse>,
}

pub(crate) fn layer(
    seed: &SeedEnv,
    overrides: &Figment,
    default_kind: impl Fn(&str) -> Option<String>,
) -> Result<SeedLayer, ConfigError> {
    let mut out = SeedLayer {
        values: Dict::new(),
        kinds: Vec::new(),
        uses: Vec::new(),
    };
    for parsed in fragments(seed) {
        let fragment = match parsed {
            Ok(f) => f,
            Err((variables, section, why)) => {
                // docent's own settings for the section make the variable moot.
                if let Some(kind) = chosen_kind(overrides, section) {
                    for v in variables {
                        out.uses
                            .push(ignored(v, format!("{section}.kind = {kind:?} is set")));
                    }
                    continue;
                }
                return Err(ConfigError::Invalid(format!(
                    "{}: {why}",
                    variables.join(", ")
                )));
            }
        };
        if let Some(kind) = fragment.kind {
            let theirs = chosen_kind(overrides, fragment.section);
            let applies = match &theirs {
                Some(k) => k == kind,
                None => fragment.chooses || default_kind(fragment.section).as_deref() == Some(kind),
            };
            if !applies {
                let why = match theirs {
                    Some(k) => format!("{}.kind = {k:?} is set", fragment.section),
                    None => format!("only used when {}.kind = {kind:?}", fragment.section),
                };
                for v in &fragment.variables {
                    out.uses.push(ignored(v, why.clone()));
                }
                continue;
            }
            out.kinds.push((fragment.section, kind));
            insert(
                &mut out.values,
                &format!("{}.kind", fragment.section),
                kind.into(),
            );
        }
        let primary = fragment.variables.first().copied();
        let owns = |var: &str, key: &str| {
            let named: Vec<&str> = fragment
                .owners
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .collect();
            if named.is_empty() {
                primary == Some(var)
            } else {
                named.contains(&var)
            }
        };
        let mut reported: Vec<(&'static str, Vec<String>)> = Vec::new();
        for &v in &fragment.variables {
            let kind = fragment
                .kind
                .filter(|_| fragment.chooses && primary == Some(v))
                .map(|_| format!("{}.kind", fragment.section));
            let keys = kind
                .into_iter()
                .chain(
                    fragment
                        .values
                        .iter()
                        .filter(|(k, _)| owns(v, k))
                        .map(|(k, _)| format!("{}.{k}", fragment.section)),
                )
                .collect();
            reported.push((v, keys));
        }
        for (key, value) in fragment.values {
            insert(
                &mut out.values,
                &format!("{}.{key}", fragment.section),
                value,
            );
        }
        for (v, keys) in reported {
            match out
                .uses
                .iter_mut()
                .find(|u| u.variable == v && u.ignored.is_none())
            {
                Some(u) => u.keys.extend(keys),
                None => out.uses.push(SeedUse {
                    variable: v.to_owned(),
                    keys,
                    ignored: None,
                }),
            }
        }
    }
    Ok(out)
}

fn ignored(variable: &str, why: String) -> SeedUse {
    SeedUse {
        variable: variable.to_owned(),
        keys: Vec::new(),
        ignored: Some(why),
    }
}

/// The kind the file or a `DOCENT__` variable chose for `section`.
fn chosen_kind(overrides: &Figment, section: &str) -> Option<String> {
    overrides
        .find_value(&format!("{section}.kind"))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn region(seed: &SeedEnv) -> Option<&str> {
    seed.first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
        .map(|(_, r)| r)
}

/// Every section the seed variables speak of.
fn fragments(seed: &SeedEnv) -> Vec<Parsed> {
    let mut out = Vec::new();
    if let Some(url) = seed.get("DATABASE_URL") {
        out.push(database(url));
    }
    let redis = seed.get("REDIS_URL");
    if let Some(url) = redis {
        out.push(Ok(Fragment {
            section: "redis",
            kind: None,
            chooses: false,
            values: vec![("url", url.into())],
            variables: vec!["REDIS_URL"],
            owners: Vec::new(),
        }));
    }
    let table = seed.get("DYNAMODB_CACHE_TABLE");
    match (redis, table) {
        (None, None) => {}
        (Some(_), None) => out.push(Ok(Fragment {
            section: "cache",
            kind: Some("redis"),
            chooses: true,
            values: Vec::new(),
            variables: vec!["REDIS_URL"],
            owners: Vec::new(),
        })),
        (None, Some(table)) => out.push(Ok(Fragment {
            section: "cache",
            kind: Some("dynamodb"),
            chooses: true,
            values: vec![("table", table.into())],
            variables: vec!["DYNAMODB_CACHE_TABLE"],
            owners: Vec::new(),
        })),
        (Some(_), Some(table)) => out.push(Ok(Fragment {
            section: "cache",
            kind: Some("tiered"),
            chooses: true,
            values: vec![("redis", true.into()), ("dynamodb.table", table.into())],
            variables: vec!["REDIS_URL", "DYNAMODB_CACHE_TABLE"],
            owners: vec![("dynamodb.table", "DYNAMODB_CACHE_TABLE")],
        })),
    }
    if let Some((var, bucket)) = seed.first(&["S3_BUCKET_NAME", "S3_BUCKET"]) {
        let mut values = vec![("bucket", bucket.into())];
        values.extend(region(seed).map(|r| ("region", r.into())));
        out.push(Ok(Fragment {
            section: "storage",
            kind: Some("s3"),
            chooses: true,
            values,
            variables: vec![var],
            owners: Vec::new(),
        }));
    }
    if let Some(url) = seed.get("SQS_QUEUE_URL") {
        out.push(sqs(seed, url));
    }
    let base_url = seed.first(&["OPENAI_BASE_URL", "OPENAI_API_BASE"]);
    let with_base = |mut f: Fragment| {
        if let Some((var, url)) = base_url {
            f.values
                .push(("base_url", url.trim_end_matches('/').into()));
            f.variables.push(var);
            f.owners.push(("base_url", var));
        }
        f
    };
    let key = seed.get("OPENAI_API_KEY");
    if let Some(key) = key {
        let (model_var, model) = seed
            .first(&["OPENAI_MODEL", "OPENAI_CHAT_MODEL"])
            .map_or((None, "gpt-4o-mini"), |(v, m)| (Some(v), m));
        let mut f = Fragment {
            section: "llm",
            kind: Some("openai"),
            chooses: true,
            values: vec![("api_key", key.into()), ("model", model.into())],
            variables: vec!["OPENAI_API_KEY"],
            owners: Vec::new(),
        };
        if let Some(var) = model_var {
            f.variables.push(var);
            f.owners.push(("model", var));
        }
        f = with_base(f);
        if base_url.is_none() {
            f.values
                .push(("base_url", "https://api.openai.com/v1".into()));
        }
        out.push(Ok(f));
    }
    match (
        seed.first(&["OPENAI_EMBEDDING_MODEL", "EMBEDDING_MODEL"]),
        key,
    ) {
        (Some((var, model)), key) => {
            let mut f = Fragment {
                section: "embedder",
                kind: Some("openai"),
                chooses: true,
                values: vec![("model", model.into())],
                variables: vec![var],
                owners: Vec::new(),
            };
            if let Some(key) = key {
                f.values.push(("api_key", key.into()));
                f.variables.push("OPENAI_API_KEY");
                f.owners.push(("api_key", "OPENAI_API_KEY"));
            }
            f = with_base(f);
            if base_url.is_none() {
                f.values
                    .push(("base_url", "https://api.openai.com/v1".into()));
            }
            out.push(Ok(f));
        }
        (None, Some(key)) => out.push(Ok(Fragment {
            section: "embedder",
            kind: Some("openai"),
            chooses: false,
            values: vec![("api_key", key.into())],
            variables: vec!["OPENAI_API_KEY"],
            owners: Vec::new(),
        })),
        (None, None) => {}
    }
    let mut server = Fragment {
        section: "server",
        kind: None,
        chooses: false,
        values: Vec::new(),
        variables: Vec::new(),
        owners: Vec::new(),
    };
    if let Some(port) = seed.get("PORT") {
        match bind(seed.get("HOST"), port) {
            Ok(bind) => {
                server.values.push(("bind", bind.into()));
                server.variables.push("PORT");
                server.owners.push(("bind", "PORT"));
                if seed.get("HOST").is_some() {
                    server.variables.push("HOST");
                    server.owners.push(("bind", "HOST"));
                }
            }
            Err(why) => out.push(Err((vec!["PORT"], "server", why))),
        }
    }
    if let Some((var, origins)) = seed.first(&["CORS_ORIGINS", "ALLOWED_ORIGINS"]) {
        match origin_list(origins) {
            Ok(list) => {
                server.values.push(("cors.allowed_origins", list.into()));
                server.variables.push(var);
                server.owners.push(("cors.allowed_origins", var));
            }
            Err(why) => out.push(Err((vec![var], "server", why))),
        }
    }
    if !server.values.is_empty() {
        out.push(Ok(server));
    }
    if let Some(level) = seed.get("LOG_LEVEL") {
        let level = match level.to_ascii_lowercase().as_str() {
            "warning" => "warn".to_owned(),
            "critical" | "fatal" => "error".to_owned(),
            other => other.to_owned(),
        };
        out.push(Ok(Fragment {
            section: "log",
            kind: None,
            chooses: false,
            values: vec![("level", level.into())],
            variables: vec!["LOG_LEVEL"],
            owners: Vec::new(),
        }));
    }
    if let Some(size) = seed.get("MAX_UPLOAD_SIZE") {
        let value: Value = match size.parse::<u64>() {
            Ok(n) => n.into(),
            Err(_) => size.into(),
        };
        out.push(Ok(Fragment {
            section: "ingest",
            kind: None,
            chooses: false,
            values: vec![("max_upload_size", value)],
            variables: vec!["MAX_UPLOAD_SIZE"],
            owners: Vec::new(),
        }));
    }
    out
}

/// `DATABASE_URL`: PostgreSQL only (the value is a secret: never quoted).
fn database(url: &str) -> Parsed {
    let refuse = |why: &str| Err((vec!["DATABASE_URL"], "database", why.to_owned()));
    let Some((scheme, rest)) = url.split_once("://") else {
        return refuse("not a URL (expected postgres://user:password@host:5432/db)");
    };
    // SQLAlchemy names its driver after a `+`: postgresql+asyncpg://, postgresql+psycopg2://.
    let engine = scheme.split('+').next().unwrap_or_default();
    if !matches!(engine, "postgres" | "postgresql") || rest.is_empty() {
        return refuse(
            "docent reads only a PostgreSQL URL (postgres://…) here; for SQLite set \
             database.path (DOCENT__DATABASE__PATH), or unset DATABASE_URL",
        );
    }
    Ok(Fragment {
        section: "database",
        kind: Some("postgres"),
        chooses: true,
        values: vec![("url", format!("postgres://{rest}").into())],
        variables: vec!["DATABASE_URL"],
        owners: Vec::new(),
    })
}

/// `SQS_QUEUE_URL` (and `SQS_DLQ_URL`): scheme://host/account/name.
fn sqs(seed: &SeedEnv, url: &str) -> Parsed {
    let dlq = seed.first(&["SQS_DLQ_URL", "SQS_DEAD_LETTER_QUEUE_URL"]);
    let mut variables = vec!["SQS_QUEUE_URL"];
    variables.extend(dlq.map(|(v, _)| v));
    let fail = |why: String| Err((variables.clone(), "queue.backend", why));
    let Some((scheme, host, name)) = split_queue_url(url) else {
        return fail(
            "not an SQS queue URL (expected https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)".into(),
        );
    };
    let dlq_name = match dlq {
        Some((var, dlq_url)) => match split_queue_url(dlq_url) {
            Some((_, _, n)) => n.to_owned(),
            None => return fail(format!("{var} is not an SQS queue URL")),
        },
        None => format!("{name}-dlq"),
    };
    let mut values = vec![
        ("queue_name", Value::from(name)),
        ("dlq_name", dlq_name.into()),
    ];
    let owners: Vec<_> = dlq.map(|(var, _)| ("dlq_name", var)).into_iter().collect();
    if host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn") {
        // sqs.REGION.amazonaws.com, or the legacy REGION.queue.amazonaws.com.
        let labels: Vec<&str> = host.split('.').collect();
        let from_host = match labels.as_slice() {
            ["sqs", region, ..] => Some(*region),
            [region, "queue", ..] => Some(*region),
            _ => None,
        };
        if let Some(r) = from_host.or(region(seed)) {
            values.push(("region", r.into()));
        }
    } else {
        values.push(("endpoint", format!("{scheme}://{host}").into()));
        values.extend(region(seed).map(|r| ("region", r.into())));
    }
    Ok(Fragment {
        section: "queue.backend",
        kind: Some("sqs"),
        chooses: true,
        values,
        variables,
        owners,
    })
}

/// An SQS queue URL's scheme, host (with port) and queue name.
fn split_queue_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let (host, path) = rest.split_once('/')?;
    let name = path.trim_end_matches('/').rsplit('/').next()?;
    let ok = !host.is_empty()
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some((scheme, host, name))
}

/// `HOST` and `PORT` as a socket address.
fn bind(host: Option<&str>, port: &str) -> Result<String, String> {
    let port: u16 = port
        .parse()
        .map_err(|_| format!("PORT {port:?} is not a port number"))?;
    let host = host.unwrap_or("127.0.0.1");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let addr = format!("{host}:{port}");
    addr.parse::<std::net::SocketAddr>()
        .map(|_| addr)
        .map_err(|_| "HOST must be an IP address (0.0.0.0, 127.0.0.1, ::)".into())
}

/// A comma-separated list, or a JSON array of strings.
fn origin_list(s: &str) -> Result<Vec<String>, String> {
    if s.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(s)
            .map_err(|_| "not a JSON array of origins".into());
    }
    Ok(s.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use figment::providers::Env;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::*;

    /// Loads with `seed` as the seed variables, `docent` as `DOCENT__` variables (under a
    /// prefix of the test's own) and `file` as the configuration file.
    fn load(
        test: &str,
        seed: &[(&str, &str)],
        docent: &[(&str, &str)],
        file: Option<&str>,
    ) -> Result<(Config, Vec<SeedUse>), ConfigError> {
        let prefix = format!("DOCENT_SEED_{test}_{}__", std::process::id());
        for (k, v) in docent {
            set_var(&format!("{prefix}{k}"), v);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docent.toml");
        if let Some(toml) = file {
            std::fs::write(&path, toml).unwrap();
        }
        let layers = ConfigLayers::load_in_with(
            None,
            file.map(|_| path.as_path()),
            Env::prefixed(&prefix).split("__"),
            &SeedEnv::from_pairs(seed.iter().copied()),
        )?;
        let uses = layers.seed_uses().to_vec();
        Ok((layers.into_config()?, uses))
    }

    #[allow(unsafe_code)]
    fn set_var(k: &str, v: &str) {
        // SAFETY: test code; each test's variables carry a prefix of its own.
        unsafe { std::env::set_var(k, v) }
    }

    fn used<'a>(uses: &'a [SeedUse], var: &str) -> &'a SeedUse {
        uses.iter()
            .find(|u| u.variable == var && u.ignored.is_none())
            .unwrap_or_else(|| panic!("{var} unused: {uses:?}"))
    }

    fn ignored<'a>(uses: &'a [SeedUse], var: &str) -> &'a str {
        uses.iter()
            .find_map(|u| {
                (u.variable == var)
                    .then_some(u.ignored.as_deref())
                    .flatten()
            })
            .unwrap_or_else(|| panic!("{var} not ignored: {uses:?}"))
    }

    /// A seed app's production environment configures docent's distributed shape.
    #[test]
    fn seed_variables_configure_the_distributed_shape() {
        let (c, uses) = load(
            "shape",
            &[
                (
                    "DATABASE_URL",
                    "postgresql+asyncpg://app:pw-canary@db:5432/app",
                ),
                ("REDIS_URL", "rediss://:redis-canary@cache:6379/0"),
                ("DYNAMODB_CACHE_TABLE", "docent-cache"),
                ("S3_BUCKET_NAME", "docs"),
                ("AWS_REGION", "eu-west-1"),
                (
                    "SQS_QUEUE_URL",
                    "https://sqs.eu-west-1.amazonaws.com/123456789012/ingest",
                ),
                ("OPENAI_API_KEY", "sk-seed-canary"),
                ("OPENAI_MODEL", "gpt-4o"),
                ("HOST", "0.0.0.0"),
                ("PORT", "8000"),
                ("LOG_LEVEL", "WARNING"),
                (
                    "CORS_ORIGINS",
                    "https://a.example.com, https://b.example.com/",
                ),
                ("MAX_UPLOAD_SIZE", "52428800"),
            ],
            &[],
            None,
        )
        .unwrap();
        let db = c.database.postgres_url().unwrap().unwrap();
        assert_eq!(db.expose_secret(), "postgres://app:pw-canary@db:5432/app");
        assert_eq!(
            c.redis.url().unwrap().unwrap().expose_secret(),
            "rediss://:redis-canary@cache:6379/0"
        );
        match &c.cache {
            CacheConfig::Tiered {
                redis, dynamodb, ..
            } => {
                assert!(redis);
                assert_eq!(dynamodb.as_ref().unwrap().table, "docent-cache");
            }
            other => panic!("{other:?}"),
        }
        match &c.storage {
            StorageConfig::S3 { bucket, region, .. } => {
                assert_eq!((bucket.as_str(), region.as_str()), ("docs", "eu-west-1"));
            }
            other => panic!("{other:?}"),
        }
        match &c.queue.backend {
            QueueBackend::Sqs(q) => {
                assert_eq!(q.queue_name, "ingest");
                assert_eq!(q.dlq_name, "ingest-dlq");
                assert_eq!(q.region.as_deref(), Some("eu-west-1"));
                assert_eq!(q.endpoint, None, "AWS itself");
            }
            other => panic!("{other:?}"),
        }
        match &c.llm {
            LlmConfig::Openai {
                base_url, model, ..
            } => {
                assert_eq!(base_url, "https://api.openai.com/v1");
                assert_eq!(model, "gpt-4o");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.llm.api_key().unwrap().unwrap().expose_secret(),
            "sk-seed-canary"
        );
        // The embedder stays the local model: a key alone does not change every vector.
        assert!(
            matches!(c.embedder, EmbedderConfig::Local { .. }),
            "{:?}",
            c.embedder
        );
        assert!(ignored(&uses, "OPENAI_API_KEY").contains("embedder.kind"));
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:8000");
        assert_eq!(c.log.level, "warn");
        assert_eq!(
            c.server.cors.allowed_origins,
            ["https://a.example.com", "https://b.example.com"]
        );
        assert_eq!(c.ingest.max_upload_size.as_u64(), 52_428_800);

        let db = used(&uses, "DATABASE_URL");
        assert_eq!(db.keys, ["database.kind", "database.url"]);
        assert_eq!(
            used(&uses, "REDIS_URL").keys,
            ["redis.url", "cache.kind", "cache.redis"]
        );
        assert_eq!(
            used(&uses, "DYNAMODB_CACHE_TABLE").keys,
            ["cache.dynamodb.table"]
        );
        assert_eq!(
            used(&uses, "OPENAI_API_KEY").keys,
            ["llm.kind", "llm.api_key", "llm.base_url"]
        );
        assert_eq!(used(&uses, "OPENAI_MODEL").keys, ["llm.model"]);
        assert_eq!(used(&uses, "HOST").keys, ["server.bind"]);
        assert_eq!(used(&uses, "PORT").keys, ["server.bind"]);
        assert_eq!(
            used(&uses, "CORS_ORIGINS").keys,
            ["server.cors.allowed_origins"]
        );
        // Values never appear in the report or in `config show`.
        let shown = format!("{}{uses:?}", c.to_redacted_toml());
        for secret in ["pw-canary", "redis-canary", "sk-seed-canary"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    /// docent's own keys win: key by key, and a kind of their own turns a seed variable off.
    #[test]
    fn docents_own_keys_win() {
        let (c, uses) = load(
            "win",
            &[
                ("DATABASE_URL", "postgres://seed@db/app"),
                ("REDIS_URL", "redis://seed-cache:6379"),
                ("OPENAI_API_KEY", "sk-seed"),
                ("OPENAI_MODEL", "seed-model"),
                ("PORT", "9000"),
            ],
            &[
                ("DATABASE__URL", "postgres://own@db/app"),
                ("SERVER__BIND", "127.0.0.1:7000"),
            ],
            Some("[llm]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"own-model\"\n\n[cache]\nkind = \"memory\"\nmax_entries = 5\n"),
        )
        .unwrap();
        assert_eq!(
            c.database.postgres_url().unwrap().unwrap().expose_secret(),
            "postgres://own@db/app"
        );
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:7000");
        match &c.llm {
            LlmConfig::Openai {
                base_url, model, ..
            } => {
                assert_eq!(
                    (base_url.as_str(), model.as_str()),
                    ("http://127.0.0.1:1/v1", "own-model")
                );
            }
            other => panic!("{other:?}"),
        }
        // The key the file left out comes from the seed variable.
        assert_eq!(c.llm.api_key().unwrap().unwrap().expose_secret(), "sk-seed");
        // The file's cache kind wins; REDIS_URL still names the Redis server.
        assert!(
            matches!(c.cache, CacheConfig::Memory { max_entries: 5 }),
            "{:?}",
            c.cache
        );
        assert!(ignored(&uses, "REDIS_URL").contains("cache.kind = \"memory\""));
        assert_eq!(used(&uses, "REDIS_URL").keys, ["redis.url"]);

        // A kind chosen by a DOCENT__ variable turns DATABASE_URL off, and says so.
        let (c, uses) = load(
            "kind",
            &[("DATABASE_URL", "postgres://seed@db/app")],
            &[("DATABASE__KIND", "sqlite"), ("DATABASE__PATH", "own.db")],
            None,
        )
        .unwrap();
        assert!(
            matches!(c.database, DatabaseConfig::Sqlite { .. }),
            "{:?}",
            c.database
        );
        assert!(ignored(&uses, "DATABASE_URL").contains("database.kind = \"sqlite\""));
    }

    #[test]
    fn local_queue_urls_name_an_endpoint_and_the_dead_letter_queue() {
        let (c, _) = load(
            "sqs",
            &[
                ("SQS_QUEUE_URL", "http://127.0.0.1:5000/000000000000/jobs"),
                (
                    "SQS_DLQ_URL",
                    "http://127.0.0.1:5000/000000000000/jobs-dead",
                ),
            ],
            &[],
            None,
        )
        .unwrap();
        match &c.queue.backend {
            QueueBackend::Sqs(q) => {
                assert_eq!(
                    (q.queue_name.as_str(), q.dlq_name.as_str()),
                    ("jobs", "jobs-dead")
                );
                assert_eq!(q.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_embedding_model_variable_chooses_the_openai_embedder() {
        let (c, _) = load(
            "embed",
            &[
                ("OPENAI_API_KEY", "sk-seed"),
                ("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ],
            &[],
            None,
        )
        .unwrap();
        match &c.embedder {
            EmbedderConfig::Openai {
                base_url, model, ..
            } => {
                assert_eq!(base_url, "http://127.0.0.1:9/v1");
                assert_eq!(model, "text-embedding-3-small");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.embedder.api_key().unwrap().unwrap().expose_secret(),
            "sk-seed"
        );
        // An openai embedder chosen by docent's own settings takes the key too.
        let (c, _) = load(
            "embedkey",
            &[("OPENAI_API_KEY", "sk-seed")],
            &[],
            Some("[embedder]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"e\"\n"),
        )
        .unwrap();
        assert_eq!(
            c.embedder.api_key().unwrap().unwrap().expose_secret(),
            "sk-seed"
        );
    }

    /// Values docent cannot use are refused, naming the variable and never quoting a value.
    #[test]
    fn unusable_values_are_refused_by_name() {
        for (var, value, want) in [
            ("DATABASE_URL", "mysql://root:hunter2@db/app", "PostgreSQL"),
            ("SQS_QUEUE_URL", "jobs", "not an SQS queue URL"),
            ("PORT", "http", "not a port number"),
            ("CORS_ORIGINS", "[not json", "JSON array"),
        ] {
            let e = load("bad", &[(var, value)], &[], None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains(want), "{var}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        // With docent's own kind set, an unusable DATABASE_URL is only ignored.
        let (_, uses) = load(
            "badmoot",
            &[("DATABASE_URL", "mysql://root:hunter2@db/app")],
            &[("DATABASE__KIND", "sqlite")],
            None,
        )
        .unwrap();
        assert!(ignored(&uses, "DATABASE_URL").contains("sqlite"));
    }

    /// The README's table names every variable read.
    #[test]
    fn the_readme_documents_every_variable() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .unwrap();
        for name in ALIASES
            .iter()
            .map(|a| a.variable)
            .chain(EXTRA.iter().copied())
        {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} missing from README.md"
            );
        }
    }

    /// Only the documented names are read from the process.
    #[test]
    fn the_process_is_read_for_the_documented_names_only() {
        let names: Vec<&str> = ALIASES
            .iter()
            .map(|a| a.variable)
            .chain(EXTRA.iter().copied())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a name listed twice");
        let seed = SeedEnv::from_process();
        assert!(seed.vars.keys().all(|k| names.contains(&k.as_str())));
    }
}
