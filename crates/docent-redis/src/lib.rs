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

pub mod budget;
pub mod cache;
pub mod queue;

use std::time::Duration;

use docent_domain::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue, IntoConnectionInfo, RedisError};

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

/// A shared, self-reconnecting connection to one Redis server (multiplexed: clones share it),
/// every call bounded by [`RedisOptions::command_timeout`].
#[derive(Clone)]
pub struct Redis {
    client: Client,
    options: RedisOptions,
    conn: ConnectionManager,
    timeout: Duration,
    /// Whether the URL is `rediss://` (errors of a plain one hint at TLS).
    tls: bool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
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
        let invalid = |e: RedisError| Error::internal(InvalidUrl(e.kind()));
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
        let client = if tls {
            // rustls needs one process-wide crypto provider; another crate may have set it.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: security.tls_ca_pem.clone(),
            };
            Client::build_with_tls(info, certs).map_err(invalid)?
        } else if security.tls_ca_pem.is_some() {
            return Err(Error::internal(
                "redis.tls_ca_file is set but redis.url is not a rediss:// (TLS) URL",
            ));
        } else {
            Client::open(info).map_err(invalid)?
        };
        let mut redis = Self::with_client(client, options, Duration::ZERO)?;
        redis.tls = tls;
        Ok(redis)
    }

    /// A connection of its own to the same server, for commands that block the connection they
    /// run on (`XREADGROUP … BLOCK`): on the shared, multiplexed one they would hold up every
    /// other call. Its calls may take `block` longer than the command timeout. Lazy, like
    /// [`Redis::open`].
    pub fn dedicated(&self, block: Duration) -> Result<Self> {
        let mut redis = Self::with_client(self.client.clone(), self.options, block)?;
        redis.tls = self.tls;
        Ok(redis)
    }

    fn with_client(client: Client, options: RedisOptions, block: Duration) -> Result<Self> {
        let timeout = options.command_timeout.saturating_add(block);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| Error::internal(InvalidUrl(e.kind())))?;
        Ok(Self {
            client,
            options,
            conn,
            timeout,
            tls: false,
        })
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

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        self.bounded(async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs a pipeline.
    pub(crate) async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.conn.clone();
        self.bounded(async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Runs a Lua script (`EVALSHA`, loading it on first use).
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conn.clone();
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
