//! Redis backends for docent's distributed shape, over one bounded connection ([`Redis`]):
//!
//! - [`RedisCache`]: the [`Cache`](docent_domain::ports::Cache) port (`SET … PX`, `GET`, `DEL`)
//!   under a key prefix. Stack it behind the in-process cache with `docent_cache::TieredCache`.
//! - [`RedisBudgetStore`]: [`BudgetStore`](docent_domain::budget::BudgetStore) as atomic Lua token buckets on the
//!   server's clock, so every process shares one model-call budget per provider.
//! - [`RedisDelivery`]: the [`Delivery`](docent_domain::ports::Delivery) port on a Redis Stream
//!   with a consumer group (pending-entry reclaim with `XAUTOCLAIM`, a delayed set for deferred
//!   deliveries, a dead-letter stream): the transport of `docent_queue::DeliveryQueue`, which
//!   keeps task state in the database (see [`queue`]).
//!
//! Architecture invariant: no call waits longer than [`RedisOptions::command_timeout`] — an
//! outage or a stalled server is a `service_unavailable` error within that bound, never a hang —
//! and no error text or log line carries the Redis URL (it may hold a password).
//!
//! A `rediss://` URL connects over TLS (rustls): the server's certificate must chain to the
//! system's roots or to the CA of [`Security::tls_ca_pem`] (`redis.tls_ca_file`), and name the
//! host. [`Security`] also carries the ACL user and password (`AUTH user password`).
//!
//! **Cluster mode** ([`Redis::open_cluster`], `redis.cluster = true`): the URL is a seed node or
//! the configuration endpoint of a Redis Cluster (ElastiCache cluster mode, ElastiCache
//! Serverless); commands are routed to the node owning their key's slot, following `MOVED` and
//! `ASK`. The backends are written once over [`Redis`], whichever it is: every command, pipeline
//! and script they send names keys of one slot — single-key commands, and the queue's keys
//! share one hash tag (`{prefix}:…`); unit tests compute the slots of every script's keys.

pub mod budget;
pub mod cache;
pub mod queue;

use std::time::Duration;

use docent_domain::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisError};

pub use budget::RedisBudgetStore;
pub use cache::RedisCache;
pub use docent_domain::ports::Backoff;
pub use queue::{RedisDelivery, RedisQueueSettings};

/// Connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Longest a single (re)connection attempt may take.
    pub connect_timeout: Duration,
    /// Longest any one call may take in all, waiting for a reconnection included.
    pub command_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// Who to sign in as and which certificate authorities to trust, over what the URL says.
#[derive(Clone, Default)]
pub struct Security {
    /// ACL user (`AUTH user password`); `None`: the URL's.
    pub username: Option<String>,
    /// Password of the user (or of `default`); `None`: the URL's.
    pub password: Option<String>,
    /// PEM certificate authorities for a `rediss://` URL; `None`: the system's roots.
    pub tls_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// A shared, self-reconnecting connection to one Redis server or to a Redis Cluster
/// (multiplexed: clones share it), every call bounded by [`RedisOptions::command_timeout`].
#[derive(Clone)]
pub struct Redis {
    target: Target,
    options: RedisOptions,
    timeout: Duration,
    /// Whether the URL is `rediss://` (errors of a plain one hint at TLS).
    tls: bool,
}

/// What a [`Redis`] talks to.
#[derive(Clone)]
enum Target {
    /// One server, through a self-reconnecting multiplexed connection.
    Single {
        /// Boxed: a client holds its whole connection info.
        client: Box<Client>,
        conn: ConnectionManager,
    },
    /// A cluster: connections to every primary, commands routed by slot.
    Cluster(std::sync::Arc<ClusterTarget>),
}

/// A cluster's client and its connection, shared by the clones of a [`Redis`]. The connection
/// is made on first use (it spawns its driver task, which needs the runtime).
struct ClusterTarget {
    client: ClusterClient,
    config: ClusterConfig,
    conn: std::sync::OnceLock<ClusterConnection>,
}

/// One call's handle on the connection of a [`Redis`]: the commands, pipelines and scripts of
/// the backends run on it the same way, whichever the target.
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("cluster", &self.is_cluster())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a URL was refused, without the URL (it may carry a password).
#[derive(Debug)]
struct InvalidUrl(redis::ErrorKind);

impl std::fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid Redis URL ({:?})", self.0)
    }
}

impl std::error::Error for InvalidUrl {}

/// A connection dropped before any answer on a plain `redis://` URL: perhaps a TLS-only server.
#[derive(Debug)]
struct MaybeNeedsTls(RedisError);

impl std::fmt::Display for MaybeNeedsTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server closed the connection; if it accepts only TLS (ElastiCache in-transit \
             encryption), redis.url must start with rediss://"
        )
    }
}

impl std::error::Error for MaybeNeedsTls {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A call that ran out of time.
#[derive(Debug)]
struct TimedOut(Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis call timed out after {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

impl Redis {
    /// A connection to `url` (`redis://[:password@]host:port/db`, or `rediss://` where TLS is
    /// built in). Lazy: nothing touches the network until the first call, so a process starts
    /// even while Redis is down. A malformed URL is an internal error whose text never repeats
    /// the URL.
    pub fn open(url: &str, options: RedisOptions) -> Result<Self> {
        Self::open_with(url, options, &Security::default())
    }

    /// [`Redis::open`] with a user, password and trusted CAs beyond the URL's.
    pub fn open_with(url: &str, options: RedisOptions, security: &Security) -> Result<Self> {
        let (info, tls) = connection_info(url, security)?;
        let client = if tls {
            install_crypto_provider();
            Client::build_with_tls(info, certificates(security)).map_err(invalid)?
        } else {
            Client::open(info).map_err(invalid)?
        };
        Self::single(client, options, Duration::ZERO, tls)
    }

    /// A connection to the Redis Cluster that `seeds` belong to (its configuration endpoint,
    /// or some of its nodes: one answering is enough), with the user, password and trusted CAs
    /// of `security`. Every seed must use the same scheme (`redis://` or `rediss://`). Lazy,
    /// like [`Redis::open`]: the nodes are discovered (`CLUSTER SLOTS`) on the first call.
    pub fn open_cluster(
        seeds: &[impl AsRef<str>],
        options: RedisOptions,
        security: &Security,
    ) -> Result<Self> {
        let mut infos = Vec::with_capacity(seeds.len());
        let mut tls = None;
        for seed in seeds {
            let (info, seed_tls) = connection_info(seed.as_ref(), security)?;
            if tls.is_some_and(|t| t != seed_tls) {
                return Err(Error::internal(
                    "the Redis cluster's seed nodes mix redis:// and rediss:// URLs",
                ));
            }
            tls = Some(seed_tls);
            infos.push(info);
        }
        let Some(tls) = tls else {
            return Err(Error::internal(
                "a Redis cluster needs at least one seed node",
            ));
        };
        let mut builder = ClusterClientBuilder::new(infos)
            .connection_timeout(options.connect_timeout)
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if tls {
            install_crypto_provider();
            builder = builder.certs(certificates(security));
        }
        let client = builder.build().map_err(invalid)?;
        Ok(Self::cluster(client, options, Duration::ZERO, tls))
    }

    /// Whether this is a connection to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// A connection of its own to the same server (or cluster), for commands that block the
    /// connection they run on (`XREADGROUP … BLOCK`): on the shared, multiplexed one they would
    /// hold up every other call. Its calls may take `block` longer than the command timeout.
    /// Lazy, like [`Redis::open`].
    pub fn dedicated(&self, block: Duration) -> Result<Self> {
        match &self.target {
            Target::Single { client, .. } => {
                Self::single((**client).clone(), self.options, block, self.tls)
            }
            Target::Cluster(cluster) => Ok(Self::cluster(
                cluster.client.clone(),
                self.options,
                block,
                self.tls,
            )),
        }
    }

    fn single(client: Client, options: RedisOptions, block: Duration, tls: bool) -> Result<Self> {
        let timeout = options.command_timeout.saturating_add(block);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(invalid)?;
        Ok(Self {
            target: Target::Single {
                client: Box::new(client),
                conn,
            },
            options,
            timeout,
            tls,
        })
    }

    fn cluster(client: ClusterClient, options: RedisOptions, block: Duration, tls: bool) -> Self {
        let timeout = options.command_timeout.saturating_add(block);
        let config = ClusterConfig::new()
            .set_connection_timeout(options.connect_timeout)
            .set_response_timeout(timeout);
        Self {
            target: Target::Cluster(std::sync::Arc::new(ClusterTarget {
                client,
                config,
                conn: std::sync::OnceLock::new(),
            })),
            options,
            timeout,
            tls,
        }
    }

    /// This call's handle on the shared connection (a cluster's is made on first use).
    fn connection(&self) -> Connection {
        match &self.target {
            Target::Single { conn, .. } => Connection::Single(conn.clone()),
            Target::Cluster(cluster) => Connection::Cluster(
                cluster
                    .conn
                    .get_or_init(|| {
                        cluster
                            .client
                            .get_pending_async_connection_with_config(cluster.config.clone())
                    })
                    .clone(),
            ),
        }
    }

    /// Checks the server answers.
    pub async fn ping(&self) -> Result<()> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::internal(format!("unexpected PING reply {pong:?}")))
        }
    }

    /// Runs one command (in a cluster, on the node owning its key's slot), bounded like every
    /// call.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.connection();
        self.bounded(async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs a pipeline.
    pub(crate) async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.connection();
        self.bounded(async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Runs a Lua script (`EVALSHA`, loading it on first use).
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.connection();
        self.bounded(async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Err(e))
                if !self.tls
                    && (e.is_connection_dropped() || e.is_io_error())
                    && !e.is_connection_refusal()
                    && !e.is_timeout() =>
            {
                Err(Error::unavailable("redis", MaybeNeedsTls(e)))
            }
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(Error::unavailable("redis", TimedOut(self.timeout))),
        }
    }
}

/// A refused URL, as an error that does not repeat it.
fn invalid(e: RedisError) -> Error {
    Error::internal(InvalidUrl(e.kind()))
}

/// `url` parsed, with the user and password of `security` over the URL's, and whether it is a
/// TLS (`rediss://`) URL. A CA file with a plain URL is refused.
fn connection_info(url: &str, security: &Security) -> Result<(ConnectionInfo, bool)> {
    let mut info = url.into_connection_info().map_err(invalid)?;
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if security.username.is_some() || security.password.is_some() {
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &security.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &security.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
    }
    if !tls && security.tls_ca_pem.is_some() {
        return Err(Error::internal(
            "redis.tls_ca_file is set but redis.url is not a rediss:// (TLS) URL",
        ));
    }
    Ok((info, tls))
}

/// The roots a TLS connection trusts: the CA of `security`, else the system's.
fn certificates(security: &Security) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: security.tls_ca_pem.clone(),
    }
}

/// rustls needs one process-wide crypto provider; another crate may have set it.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Connection trouble is `service_unavailable` (retryable); anything else (a script bug, a
/// wrong type) is internal.
pub(crate) fn map_err(e: RedisError) -> Error {
    use redis::{ErrorKind, ServerErrorKind};
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                // A cluster with no reachable node (it reconnects to the seeds on the next call).
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if transient {
        Error::unavailable("redis", e)
    } else {
        Error::internal(e)
    }
}
