//! Builds the application from configuration: one factory call per subsystem, then the router
//! and (optionally) the in-process worker pool. `docent serve` and the API tests use the same
//! [`Application`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use docent_auth::AuthService;
use docent_config::{AuthMode, CacheConfig, Config, LlmConfig, QueueBackend};
use docent_core::Services;
use docent_core::worker::WorkerPool;
use docent_domain::TenantId;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Opens every backend named by the configuration and returns the services over them.
pub async fn open_services(config: Config) -> anyhow::Result<(Services, docent_store::Database)> {
    let (services, db, _) = open_services_with_deliveries(config).await?;
    Ok((services, db))
}

/// [`open_services`], with the task queue itself when a broker carries its deliveries (`SQS`, a
/// Redis Stream): the AWS Lambda worker hands it the deliveries of its events.
pub async fn open_services_with_deliveries(
    config: Config,
) -> anyhow::Result<(
    Services,
    docent_store::Database,
    Option<Arc<docent_queue::DeliveryQueue>>,
)> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let data_path = |p: &std::path::Path| config.data_path(p);
    let db = docent_store::open(&config.database, data_path)
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    let blobs = docent_blob::open(&config.storage, data_path)
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    let redis = open_redis(&config)?;
    let deliveries = open_queue(&config, &db, redis.as_ref()).await?;
    let queue = match &deliveries {
        Some(q) => q.clone(),
        None => db.queue(&config.queue),
    };
    let cache = open_cache(&config, redis.as_ref()).await?;
    let budgets = budget_store(&config, redis.as_ref());
    let llm = open_llm(&config, budgets.clone())?;
    let embedder = crate::embedder::open_with(&config.embedder, budgets).await?;
    let index = open_index(&config, data_path, embedder.as_deref()).await?;
    let services = Services {
        config: config.clone(),
        store: db.metadata(),
        queue,
        blobs,
        cache,
        index: index.search(),
        embedder,
        llm,
        wake: Arc::new(Notify::new()),
        facts: Default::default(),
        widget: Arc::new(docent_core::widget::WidgetRuntime::new(&config.widget)),
    };
    services
        .store
        .ensure_tenant(TenantId::DEFAULT, "default")
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    if index.needs_rebuild() {
        let n = reindex(&services).await?;
        tracing::info!(chunks = n, "search index rebuilt from the database");
    } else if let Some(embedded) = index.embedded() {
        load_vectors(&services, embedded).await?;
    }
    // Tasks enqueued by other processes wake this one's workers (PostgreSQL NOTIFY; SQLite polls).
    db.wake_on_new_tasks(services.wake.clone(), std::time::Duration::from_secs(5));
    Ok((services, db, deliveries))
}

/// The search index of `[index]`: the embedded one (vectors loaded into memory at start) or
/// PostgreSQL's.
enum SearchIndexes {
    Embedded(Arc<docent_index::EmbeddedIndex>),
    #[cfg(feature = "postgres")]
    Postgres(Arc<docent_index::PgIndex>),
}

impl SearchIndexes {
    /// The embedded index, whose vectors are loaded into memory at start.
    fn embedded(&self) -> Option<&Arc<docent_index::EmbeddedIndex>> {
        match self {
            SearchIndexes::Embedded(i) => Some(i),
            #[cfg(feature = "postgres")]
            SearchIndexes::Postgres(_) => None,
        }
    }

    /// The index as the services see it.
    fn search(&self) -> Arc<dyn docent_domain::ports::SearchIndex> {
        match self {
            SearchIndexes::Embedded(i) => i.clone(),
            #[cfg(feature = "postgres")]
            SearchIndexes::Postgres(i) => i.clone(),
        }
    }

    /// Whether the index was (re)created empty and needs filling from the database.
    fn needs_rebuild(&self) -> bool {
        match self {
            SearchIndexes::Embedded(i) => i.needs_rebuild(),
            #[cfg(feature = "postgres")]
            SearchIndexes::Postgres(i) => i.needs_rebuild(),
        }
    }
}

/// Opens `[index]`; a PostgreSQL index takes the embedder's vector dimension.
async fn open_index(
    config: &Config,
    data_path: impl Fn(&std::path::Path) -> std::path::PathBuf,
    embedder: Option<&dyn docent_domain::ports::Embedder>,
) -> anyhow::Result<SearchIndexes> {
    let err = |e: docent_domain::Error| anyhow::anyhow!(e.chain());
    match &config.index {
        docent_config::IndexConfig::Embedded { .. } => Ok(SearchIndexes::Embedded(
            docent_index::open(&config.index, data_path).map_err(err)?,
        )),
        #[cfg(feature = "postgres")]
        docent_config::IndexConfig::Postgres { .. } => {
            let dimension = embedder.map(|e| e.dimension());
            let index = docent_index::PgIndex::open(&config.index, &config.database, dimension)
                .await
                .map_err(err)
                .context("opening the PostgreSQL search index ([index] kind = \"postgres\")")?;
            let index = Arc::new(index);
            crate::secrets::register_index(&index);
            Ok(SearchIndexes::Postgres(index))
        }
        #[cfg(not(feature = "postgres"))]
        docent_config::IndexConfig::Postgres { .. } => {
            let _ = embedder;
            anyhow::bail!("this build has no PostgreSQL support (docent feature `postgres`)")
        }
    }
}

/// Every stored vector of a tenant: `(collection, chunk, vector)`.
async fn stored_vectors(
    services: &Services,
    tenant: TenantId,
) -> anyhow::Result<
    Vec<(
        docent_domain::CollectionId,
        docent_domain::ChunkId,
        Vec<f32>,
    )>,
> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let rows = services
            .store
            .scan_embeddings(tenant, after, 5000)
            .await
            .map_err(|e| anyhow::anyhow!(e.chain()))?;
        let Some(last) = rows.last() else {
            return Ok(out);
        };
        after = Some(last.1);
        out.extend(rows);
    }
}

/// Loads the stored vectors into the in-memory vector index.
async fn load_vectors(
    services: &Services,
    index: &docent_index::EmbeddedIndex,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    for tenant in services
        .store
        .list_tenants()
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))?
    {
        index
            .vectors()
            .load(tenant, stored_vectors(services, tenant).await?);
    }
    tracing::info!(
        vectors = index.vectors().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "vector index loaded"
    );
    Ok(())
}

/// Rebuilds the search indexes from the metadata store: every chunk of every document, with its
/// stored vector. Returns the number of chunks indexed.
pub async fn reindex(services: &Services) -> anyhow::Result<u64> {
    use docent_domain::ports::IndexChunk;
    use docent_domain::{DocumentFilter, PageRequest};
    let err = |e: docent_domain::Error| anyhow::anyhow!(e.chain());
    services.index.clear().await.map_err(err)?;
    let mut total = 0u64;
    for tenant in services.store.list_tenants().await.map_err(err)? {
        let mut vectors: std::collections::HashMap<_, _> = stored_vectors(services, tenant)
            .await?
            .into_iter()
            .map(|(_, id, v)| (id, v))
            .collect();
        let mut languages = std::collections::HashMap::new();
        let mut cursor = None;
        loop {
            let page = services
                .store
                .list_documents(
                    tenant,
                    DocumentFilter::default(),
                    PageRequest {
                        limit: PageRequest::MAX_LIMIT,
                        cursor,
                    },
                )
                .await
                .map_err(err)?;
            for doc in &page.items {
                let language = match languages.get(&doc.collection_id) {
                    Some(l) => *l,
                    None => {
                        let c = services
                            .store
                            .get_collection(tenant, doc.collection_id)
                            .await
                            .map_err(err)?;
                        languages.insert(c.id, c.language);
                        c.language
                    }
                };
                let chunks: Vec<IndexChunk> = services
                    .document_chunks(tenant, doc.id)
                    .await
                    .map_err(err)?
                    .into_iter()
                    .map(|c| IndexChunk {
                        id: c.id,
                        collection_id: c.collection_id,
                        vector: vectors.remove(&c.id),
                        char_start: c.char_start,
                        text: c.text,
                        heading_path: c.heading_path,
                        title: doc.filename.clone(),
                        language,
                        metadata: docent_core::ingest::overlay(&doc.metadata, &c.metadata),
                        created_at: doc.created_at,
                    })
                    .collect();
                total += chunks.len() as u64;
                if !chunks.is_empty() {
                    services
                        .index
                        .upsert_document(tenant, doc.id, chunks)
                        .await
                        .map_err(err)?;
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(total)
}

/// The chat model for `[llm]`: an OpenAI-compatible API behind the shared request budget, or
/// `None` (answers are extractive).
/// The connection to the Redis server (or Redis Cluster, `redis.cluster`) of `[redis]`, when
/// one is configured. Lazy: the process starts while Redis is down, and calls fail as
/// unavailable until it is back.
fn open_redis(config: &Config) -> anyhow::Result<Option<docent_redis::Redis>> {
    let Some(url) = config.redis.url().map_err(|e| anyhow::anyhow!(e))? else {
        return Ok(None);
    };
    let options = docent_redis::RedisOptions {
        connect_timeout: config.redis.connect_timeout,
        command_timeout: config.redis.command_timeout,
    };
    let tls_ca_pem = match &config.redis.tls_ca_file {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("redis.tls_ca_file {}", path.display()))?,
        ),
        None => None,
    };
    let security = docent_redis::Security {
        username: config.redis.username.clone(),
        password: config
            .redis
            .password()
            .map_err(|e| anyhow::anyhow!(e))?
            .map(|p| p.expose_secret().to_owned()),
        tls_ca_pem,
    };
    let redis = if config.redis.cluster {
        let mut seeds = vec![url.expose_secret().to_owned()];
        seeds.extend(config.redis.cluster_nodes.iter().cloned());
        docent_redis::Redis::open_cluster(&seeds, options, &security)
            .map_err(|e| anyhow::anyhow!(e.chain()))
            .context("redis.url and redis.cluster_nodes (a Redis Cluster)")?
    } else {
        docent_redis::Redis::open_with(url.expose_secret(), options, &security)
            .map_err(|e| anyhow::anyhow!(e.chain()))
            .context("redis.url")?
    };
    Ok(Some(redis))
}

/// The task queue of `queue.backend` when a broker delivers its tasks (SQS or a Redis Stream,
/// the tasks' state in the database's `tasks` table); `None` for the table alone
/// (`db.queue`).
async fn open_queue(
    config: &Config,
    db: &docent_store::Database,
    redis: Option<&docent_redis::Redis>,
) -> anyhow::Result<Option<Arc<docent_queue::DeliveryQueue>>> {
    Ok(match &config.queue.backend {
        QueueBackend::Sql => None,
        QueueBackend::Redis(q) => {
            let redis = redis.context("queue.backend kind \"redis\" needs [redis] url")?;
            let settings = docent_redis::RedisQueueSettings {
                prefix: format!("{}{}", config.redis.key_prefix, q.name),
                group: q.group.clone(),
                block_time: q.block_time,
                ..docent_redis::RedisQueueSettings::new("")
            };
            let delivery = docent_redis::RedisDelivery::new(redis.clone(), &settings)
                .map_err(|e| anyhow::anyhow!(e.chain()))
                .context("queue.backend (Redis)")?;
            tracing::info!(stream = %delivery.stream_key(), group = %delivery.group(), "Redis Streams task queue");
            Some(delivery_queue(
                config,
                db,
                Arc::new(delivery),
                q.republish_after,
            ))
        }
        #[cfg(feature = "aws")]
        QueueBackend::Sqs(sqs) => {
            let delivery = docent_aws::sqs::SqsDelivery::connect(sqs, config.queue.max_attempts)
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))
                .context("queue.backend (SQS)")?;
            Some(delivery_queue(
                config,
                db,
                Arc::new(delivery),
                sqs.republish_after,
            ))
        }
        #[cfg(not(feature = "aws"))]
        QueueBackend::Sqs(_) => {
            anyhow::bail!(
                "queue.backend kind \"sqs\" needs docent built with the `aws` cargo feature"
            )
        }
    })
}

/// The queue whose deliveries `delivery` (SQS, a Redis Stream) carries and whose task state the
/// database keeps.
fn delivery_queue(
    config: &Config,
    db: &docent_store::Database,
    delivery: Arc<dyn docent_domain::ports::Delivery>,
    republish_after: std::time::Duration,
) -> Arc<docent_queue::DeliveryQueue> {
    let backoff = docent_domain::ports::Backoff {
        base: config.queue.backoff_base,
        max: config.queue.backoff_max,
    };
    Arc::new(docent_queue::DeliveryQueue::new(
        db.ledger(&config.queue),
        delivery,
        backoff,
        republish_after,
    ))
}

/// The cache of `[cache]`: in-process, Redis, DynamoDB, or those stacked (in-process → Redis →
/// DynamoDB) in a `TieredCache`.
async fn open_cache(
    config: &Config,
    redis: Option<&docent_redis::Redis>,
) -> anyhow::Result<Arc<dyn docent_domain::ports::Cache>> {
    use docent_cache::{MemoryCache, Tier, TieredCache};
    let redis_cache = || -> anyhow::Result<Arc<dyn docent_domain::ports::Cache>> {
        let redis = redis.context("cache kind \"redis\"/\"tiered\" needs [redis] url")?;
        let prefix = format!("{}cache:", config.redis.key_prefix);
        Ok(Arc::new(docent_redis::RedisCache::new(
            redis.clone(),
            prefix,
        )))
    };
    Ok(match &config.cache {
        CacheConfig::Memory { .. } => {
            docent_cache::open(&config.cache).context("an in-process cache")?
        }
        CacheConfig::Redis => redis_cache()?,
        CacheConfig::Dynamodb(table) => open_dynamodb_cache(table).await?,
        CacheConfig::Tiered {
            max_entries,
            local_ttl,
            redis,
            dynamodb,
        } => {
            let mut tiers = vec![
                Tier::new("memory", Arc::new(MemoryCache::new(*max_entries))).max_ttl(*local_ttl),
            ];
            if *redis {
                tiers.push(Tier::new("redis", redis_cache()?));
            }
            if let Some(table) = dynamodb {
                tiers.push(Tier::new("dynamodb", open_dynamodb_cache(table).await?));
            }
            Arc::new(TieredCache::new(tiers))
        }
    })
}

/// A DynamoDB cache table (the `aws` cargo feature).
#[cfg(feature = "aws")]
async fn open_dynamodb_cache(
    table: &docent_config::DynamoCacheConfig,
) -> anyhow::Result<Arc<dyn docent_domain::ports::Cache>> {
    let cache = docent_aws::dynamo::DynamoCache::connect(table)
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))
        .context("the DynamoDB cache table")?;
    Ok(Arc::new(cache))
}

#[cfg(not(feature = "aws"))]
async fn open_dynamodb_cache(
    _table: &docent_config::DynamoCacheConfig,
) -> anyhow::Result<Arc<dyn docent_domain::ports::Cache>> {
    anyhow::bail!("cache kind \"dynamodb\" needs docent built with the `aws` cargo feature")
}

/// Where model-call budgets keep their buckets: Redis when `[redis]` has a url and
/// `share_model_budget` is on (every process shares one budget per provider), else this
/// process's memory.
fn budget_store(
    config: &Config,
    redis: Option<&docent_redis::Redis>,
) -> Arc<dyn docent_domain::budget::BudgetStore> {
    match redis {
        Some(redis) if config.redis.share_model_budget => {
            let prefix = format!("{}budget:", config.redis.key_prefix);
            Arc::new(docent_redis::RedisBudgetStore::new(redis.clone(), prefix))
        }
        _ => docent_llm::InProcessBudgetStore::global(),
    }
}

fn open_llm(
    config: &Config,
    budgets: Arc<dyn docent_domain::budget::BudgetStore>,
) -> anyhow::Result<Option<Arc<dyn docent_domain::llm::ChatModel>>> {
    let LlmConfig::Openai {
        base_url,
        model,
        requests_per_second,
        tokens_per_minute,
        tenant_share,
        request_timeout,
        ..
    } = &config.llm
    else {
        return Ok(None);
    };
    let mut provider = docent_llm::ProviderConfig::new(base_url.clone(), model.clone());
    provider.api_key = config.llm.api_key().map_err(|e| anyhow::anyhow!(e))?;
    // Replaced on SIGHUP (secret rotation).
    provider.shared_key = Some(crate::secrets::api_key(
        crate::secrets::KeySlot::Llm,
        provider.api_key.clone(),
    ));
    provider.request_timeout = *request_timeout;
    provider.budget.requests_per_second = *requests_per_second;
    provider.budget.tokens_per_minute = *tokens_per_minute;
    provider.budget.tenant_share = *tenant_share;
    let chat = docent_llm::chat_model_with(&docent_llm::ChatConfig::new(provider), budgets)
        .map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(model = %model, "chat model configured");
    Ok(Some(chat))
}

/// The account service when `auth.mode = "builtin"` (the default), or `None` in mode `none`.
/// Mode `none` must be chosen explicitly and is refused on a listener beyond loopback (the API
/// would be open to anyone who reaches it); on loopback it gets a loud warning.
pub fn open_auth(
    config: &Config,
    db: &docent_store::Database,
) -> anyhow::Result<Option<Arc<AuthService>>> {
    match config.auth.mode {
        AuthMode::Builtin => Ok(Some(Arc::new(
            AuthService::from_config(config, db.auth()).map_err(|e| anyhow::anyhow!(e.chain()))?,
        ))),
        AuthMode::None => {
            check_mode_none_bind(config.server.bind)?;
            tracing::warn!(
                bind = %config.server.bind,
                "AUTHENTICATION IS DISABLED (auth.mode = \"none\"): every local process can read, \
                 change and delete every document. Remove auth.mode = \"none\" to require sign-in"
            );
            Ok(None)
        }
    }
}

/// `auth.mode = "none"` only on loopback: anything else is a configuration error.
pub fn check_mode_none_bind(bind: SocketAddr) -> anyhow::Result<()> {
    if bind.ip().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to start: auth.mode = \"none\" disables authentication, and server.bind = {bind} \
         is not a loopback address, so anyone who can reach it could read, change and delete every \
         document. Remove auth.mode = \"none\" (the default, \"builtin\", requires sign-in) or bind \
         to 127.0.0.1"
    )
}

/// The example password in the printed setup command: the one the README's quick tour signs in
/// with, so pasting either works with the other (a test keeps them equal). It passes the password
/// rules (long enough, not on the common list).
pub const SETUP_EXAMPLE_PASSWORD: &str = "correct horse battery";

/// What `docent serve` prints while no user exists: the setup link that opens the web console
/// with the one-time token filled in, the token itself, the `curl` that completes setup with it
/// (and answers with an access token), and the CLI alternative.
fn setup_banner(link: &str, token: &str, base: &str, ttl: std::time::Duration) -> String {
    let rule = "=".repeat(78);
    format!(
        "\n{rule}\n  \
         docent has no users yet. Open this link to create the first account (valid {ttl}):\n\n    \
         {link}\n\n  \
         Or with the one-time setup token, from a terminal (the password the README's quick \
         tour signs in with; for real use pick your own, 10+ characters):\n\n    \
         curl -sS --fail-with-body -X POST {base}/api/v1/setup -H 'content-type: application/json' \\\n      \
         -d '{{\"token\": \"{token}\", \"email\": \"you@example.com\", \"password\": \"{SETUP_EXAMPLE_PASSWORD}\"}}'\n\n  \
         Or create an admin from the shell: docent users create --email you@example.com --admin --password-file FILE\n\
         {rule}\n",
        ttl = humantime::format_duration(ttl),
    )
}

/// A running docent: listener bound, services open.
pub struct Application {
    listener: TcpListener,
    services: Services,
    auth: Option<Arc<AuthService>>,
    setup_link: Option<String>,
    db: docent_store::Database,
    /// The data directory's lock (embedded index), held until the server has stopped.
    lock: Option<crate::datadir_lock::DataDirLock>,
}

impl Application {
    /// Opens the backends and binds the listener (`server.bind`; port 0 picks a free port).
    /// With the embedded index, first takes the data directory's lock
    /// ([`crate::datadir_lock`]), refusing to start while another process holds it.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let bind = config.server.bind;
        if config.auth.mode == AuthMode::None {
            check_mode_none_bind(bind)?;
        }
        // Before anything is opened: one process at a time writes an embedded index.
        let mut lock =
            crate::datadir_lock::claim_or_refuse(&config, "serve", config.server.run_workers)?;
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        // Port 0 picked a free port: links built from the bind address (the setup link, mailed
        // links without `auth.public_url`) must name the real one.
        config.server.bind = listener.local_addr().context("reading the bound address")?;
        if let Some(lock) = &mut lock {
            lock.set_address(config.server.bind)?;
        }
        let (services, db) = open_services(config).await?;
        let auth = open_auth(&services.config, &db)?;
        let mut setup_link = None;
        if let Some(auth) = &auth
            && let Some(token) = auth
                .ensure_setup_token()
                .await
                .map_err(|e| anyhow::anyhow!(e.chain()))?
        {
            let link = auth.setup_link(&token);
            // Printed once, to stderr only: the token is a credential and stays out of the log.
            // A write error (nobody reading stderr any more) must not stop the server, as
            // `eprintln!` would by panicking.
            let banner = setup_banner(
                &link,
                &token,
                &auth.settings().public_url,
                services.config.auth.setup_token_ttl,
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), banner.as_bytes());
            tracing::info!("first-run setup token printed to stderr");
            setup_link = Some(link);
        }
        Ok(Self {
            listener,
            services,
            auth,
            setup_link,
            db,
            lock,
        })
    }

    /// The first-run setup link printed at start, while no user exists (`auth.mode = "builtin"`).
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// The account service (`auth.mode = "builtin"`).
    pub fn auth(&self) -> Option<&Arc<AuthService>> {
        self.auth.as_ref()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The services (tests use them to drain the queue).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until `shutdown` resolves, then stops taking requests, lets workers finish or
    /// release their leases within `server.shutdown_grace`, and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.services.config.clone();
        let router = http_router(&self.services, self.auth.clone());
        let pool = config
            .server
            .run_workers
            .then(|| WorkerPool::start(self.services.clone(), config.worker.concurrency));
        // Rate-limit buckets that are full again are forgotten every minute (bounded memory).
        let pruner = self.auth.clone().map(|auth| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    auth.limiter().prune();
                }
            })
        });
        // SIGHUP reloads the secrets that can change at run time (see `crate::secrets`).
        let _secrets = crate::secrets::reload_on_sighup(self.db.clone());
        tracing::info!(
            addr = %self.local_addr(),
            data_dir = %config.data_dir.display(),
            "docent is listening"
        );
        let limits = docent_http::server::ServeLimits {
            header_read_timeout: config.server.header_read_timeout,
            max_connections: config.server.max_connections,
            shutdown_grace: config.server.shutdown_grace,
        };
        docent_http::server::serve(self.listener, router, limits, shutdown)
            .await
            .context("serving HTTP")?;
        tracing::info!("shutting down");
        if let Some(pruner) = pruner {
            pruner.abort();
        }
        if let Some(pool) = pool {
            pool.shutdown(config.server.shutdown_grace).await;
        }
        self.db.close().await;
        drop(self.lock);
        Ok(())
    }
}

/// The HTTP API over `services` (metrics recorder installed), as `serve` and `lambda api` run it.
pub fn http_router(services: &Services, auth: Option<Arc<AuthService>>) -> axum::Router {
    let state = docent_http::AppState {
        services: services.clone(),
        metrics: docent_http::metrics::install(),
        auth,
    };
    docent_http::router(state)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
