//! Connecting to PostgreSQL: pool limits, `statement_timeout` and (for isolated test schemas)
//! `search_path` set on every connection, secret rotation, and the embedded migrations.

use std::time::Duration;

use docent_domain::{Error, Result};
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

use super::db_err;
use crate::store::PgStore;

/// The migrations embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How to connect to PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing with `service_unavailable`.
    pub acquire_timeout: Duration,
    /// Per-statement limit (`SET statement_timeout`); `None` keeps the server's setting.
    pub statement_timeout: Option<Duration>,
    /// A schema to work in (`SET search_path`), created if missing; `None` keeps the server's
    /// `search_path` (normally `public`). Tests use a fresh schema each to run in parallel.
    pub schema: Option<String>,
    /// TLS to the server (`[database.tls]`, over the URL's `sslmode`).
    pub tls: docent_config::PgTls,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
            schema: None,
            tls: docent_config::PgTls::default(),
        }
    }
}

/// Quotes an identifier for PostgreSQL.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgStore {
    /// Connects to `url` and applies pending migrations.
    pub async fn connect(url: &str, options: &PgOptions) -> Result<Self> {
        let connect = docent_config::pg::connect_options(url, &options.tls)
            .map_err(|e| Error::unavailable("the database (invalid URL)", e))?;
        // Shown in pg_stat_activity; a schema's own name, so its connections can be found.
        let connect = connect.application_name(options.schema.as_deref().unwrap_or("docent"));
        let unreachable = |e| {
            let e = docent_config::pg::ConnectError::new(e, &connect, "database");
            Error::unavailable("the database", e)
        };
        let mut setup = String::new();
        if let Some(t) = options.statement_timeout {
            setup.push_str(&format!("SET statement_timeout = {};", t.as_millis()));
        }
        if let Some(schema) = &options.schema {
            let schema = quote_ident(schema);
            // Created on a plain connection first, so every pooled one can point at it.
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect)
                .await
                .map_err(unreachable)?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .await
            .map_err(db_err)?;
            sqlx::Connection::close(conn).await.ok();
            setup.push_str(&format!("SET search_path TO {schema};"));
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let setup = setup.clone();
                Box::pin(async move {
                    if !setup.is_empty() {
                        conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(unreachable)?;
        MIGRATOR.run(&pool).await.map_err(Error::internal)?;
        let mut store = Self::new(pool);
        store.tls = options.tls.clone();
        Ok(store)
    }

    /// Points the connections opened from now on at `url` (a rotated password, say); open
    /// connections are kept until the pool retires them. Settings made at connect time
    /// (`statement_timeout`, `search_path`, the application name) stay.
    pub fn set_url(&self, url: &str) -> Result<()> {
        let connect = docent_config::pg::connect_options(url, &self.tls)
            .map_err(|e| Error::unavailable("the database (invalid URL)", e))?;
        let name = self
            .pool
            .connect_options()
            .get_application_name()
            .unwrap_or("docent")
            .to_owned();
        self.pool
            .set_connect_options(connect.application_name(&name));
        Ok(())
    }
}
