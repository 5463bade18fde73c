//! PostgreSQL connection options from configuration (feature `postgres`): the one place that
//! turns a URL and its TLS section (`[database.tls]`, `[index.tls]`) into sqlx's
//! [`PgConnectOptions`], for the metadata store and queue and for the pgvector index alike, and
//! that explains a failed connection in terms of those settings.
//!
//! TLS is rustls (with aws-lc-rs); without a `root_cert` a verifying mode trusts the Mozilla
//! roots built into the binary, so a managed server with a private CA (RDS) needs its bundle.

use std::fmt;

use sqlx::postgres::{PgConnectOptions, PgSslMode as SqlxMode};

use crate::{PgSslMode, PgTls};

/// `url` with the TLS settings of `tls` applied over the URL's own (`?sslmode=…`); the error
/// (a malformed URL) never repeats the URL, which may hold a password.
pub fn connect_options(url: &str, tls: &PgTls) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options: PgConnectOptions = url.parse()?;
    if let Some(mode) = tls.mode {
        options = options.ssl_mode(match mode {
            PgSslMode::Disable => SqlxMode::Disable,
            PgSslMode::Allow => SqlxMode::Allow,
            PgSslMode::Prefer => SqlxMode::Prefer,
            PgSslMode::Require => SqlxMode::Require,
            PgSslMode::VerifyCa => SqlxMode::VerifyCa,
            PgSslMode::VerifyFull => SqlxMode::VerifyFull,
        });
    }
    if let Some(path) = &tls.root_cert {
        options = options.ssl_root_cert(path);
    }
    if let Some(path) = &tls.client_cert {
        options = options.ssl_client_cert(path);
    }
    if let Some(path) = &tls.client_key {
        options = options.ssl_client_key(path);
    }
    Ok(options)
}

/// A failed connection, with what the TLS settings under `section` (`database`, `index`) have
/// to do with it when they are the likely cause: a server that accepts only TLS while TLS is
/// off, a server without TLS while it is required, a certificate that did not verify.
#[derive(Debug)]
pub struct ConnectError {
    hint: Option<String>,
    source: sqlx::Error,
}

impl ConnectError {
    /// Wraps `source`, the error of connecting with `options`.
    pub fn new(source: sqlx::Error, options: &PgConnectOptions, section: &str) -> Self {
        let mode = options.get_ssl_mode();
        let name = match mode {
            SqlxMode::Disable => "disable",
            SqlxMode::Allow => "allow",
            SqlxMode::Prefer => "prefer",
            SqlxMode::Require => "require",
            SqlxMode::VerifyCa => "verify-ca",
            SqlxMode::VerifyFull => "verify-full",
        };
        let hint = match &source {
            // pg_hba.conf has `hostssl` lines only: "no pg_hba.conf entry for host …, no
            // encryption" (28000).
            sqlx::Error::Database(e)
                if e.code().as_deref() == Some("28000")
                    && e.message().contains("no encryption") =>
            {
                Some(format!(
                    "the server accepts only TLS connections but {section}.tls.mode is \
                     \"{name}\": set {section}.tls.mode = \"verify-full\" (with \
                     {section}.tls.root_cert) or \"require\""
                ))
            }
            sqlx::Error::Tls(e) if e.to_string().contains("does not support TLS") => Some(format!(
                "{section}.tls.mode = \"{name}\" requires TLS but the server does not \
                     offer it (ssl = off)"
            )),
            // A failed handshake: rustls's verdict comes as sqlx's `Tls`, or (on the wire)
            // as an I/O error carrying it ("invalid peer certificate: UnknownIssuer").
            sqlx::Error::Tls(_) | sqlx::Error::Io(_)
                if matches!(source, sqlx::Error::Tls(_))
                    || source.to_string().contains("certificate") =>
            {
                Some(format!(
                    "TLS with the server failed under {section}.tls.mode = \"{name}\": check that \
                 {section}.tls.root_cert holds the CA that signed the server's certificate \
                 (and, for verify-full, that the certificate names the host)"
                ))
            }
            _ => None,
        };
        Self { hint, source }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hint {
            Some(hint) => f.write_str(hint),
            None => write!(f, "connecting failed"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
