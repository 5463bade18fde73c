//! Builds the application from configuration: one factory call per subsystem, then the router
//! and (optionally) the in-process worker pool. `docent serve` and the API tests use the same
//! [`Application`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use docent_config::{Config, EmbedderConfig, IndexConfig, LlmConfig};
use docent_core::Services;
use docent_core::worker::WorkerPool;
use docent_domain::TenantId;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Opens every backend named by the configuration and returns the services over them.
pub async fn open_services(config: Config) -> anyhow::Result<(Services, docent_store::Database)> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let data_path = |p: &std::path::Path| config.data_path(p);
    let db = docent_store::open(&config.database, data_path)
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    let blobs =
        docent_blob::open(&config.storage, data_path).map_err(|e| anyhow::anyhow!(e.chain()))?;
    let queue = db.queue(&config.queue);
    let cache = docent_cache::open(&config.cache);
    check_not_yet_used(&config)?;
    let services = Services {
        config: config.clone(),
        store: db.metadata(),
        queue,
        blobs,
        cache,
        wake: Arc::new(Notify::new()),
    };
    services
        .store
        .ensure_tenant(TenantId::DEFAULT, "default")
        .await
        .map_err(|e| anyhow::anyhow!(e.chain()))?;
    Ok((services, db))
}

/// Subsystems whose backends arrive with later features: validate what is configured so a
/// config file written today keeps working, and say plainly what is not used yet.
fn check_not_yet_used(config: &Config) -> anyhow::Result<()> {
    match &config.index {
        IndexConfig::Embedded { .. } => {}
    }
    match &config.embedder {
        EmbedderConfig::None => {}
        EmbedderConfig::Local { model_dir } => {
            tracing::warn!(model_dir = %model_dir.display(), "embedder.kind = \"local\" is configured but vector search is not available in this build yet");
        }
    }
    if let LlmConfig::Openai { .. } = &config.llm {
        config.llm.api_key().map_err(|e| anyhow::anyhow!(e))?;
        tracing::warn!(
            "llm.kind = \"openai\" is configured but chat is not available in this build yet"
        );
    }
    Ok(())
}

/// A running docent: listener bound, services open.
pub struct Application {
    listener: TcpListener,
    services: Services,
    db: docent_store::Database,
}

impl Application {
    /// Opens the backends and binds the listener (`server.bind`; port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let bind = config.server.bind;
        let (services, db) = open_services(config).await?;
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        Ok(Self {
            listener,
            services,
            db,
        })
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
        let state = docent_http::AppState {
            services: self.services.clone(),
            metrics: docent_http::metrics::install(),
        };
        let router = docent_http::router(state);
        let pool = config
            .server
            .run_workers
            .then(|| WorkerPool::start(self.services.clone(), config.worker.concurrency));
        tracing::info!(addr = %self.local_addr(), "docent is listening");
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        tracing::info!("shutting down");
        if let Some(pool) = pool {
            pool.shutdown(config.server.shutdown_grace).await;
        }
        self.db.close().await;
        Ok(())
    }
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
