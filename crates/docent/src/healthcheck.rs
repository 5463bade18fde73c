//! `docent healthcheck`: the container image's `HEALTHCHECK`, since a minimal image has no curl.
//! It asks the server of this configuration for `GET /ready` and exits 0 on 200, 1 otherwise.
//!
//! It reads only `server.bind` from the configuration layers (file and `DOCENT__*`), never
//! resolving secrets or opening a backend, so running it every few seconds costs one local
//! HTTP request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// The URL checked without `--url`: `/ready` on `server.bind`, through the loopback address of
/// the same family when the server listens on every address.
pub fn default_url(home: &Path, file: Option<&Path>) -> anyhow::Result<String> {
    let layers = docent_config::ConfigLayers::load_in(home, file)?;
    let bind = layers
        .strings()?
        .into_iter()
        .find_map(|(k, v)| (k == "server.bind").then_some(v))
        .context("server.bind is not set")?;
    let mut addr: SocketAddr = bind
        .parse()
        .with_context(|| format!("server.bind {bind:?} is not an address like 0.0.0.0:8080"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{addr}/ready"))
}

/// Checks `url` within `timeout`: one line on stdout (ready) or stderr (why not).
pub async fn run(url: &str, timeout: Duration) -> ExitCode {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => {
            println!("ready ({url})");
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            eprintln!("unhealthy: {url} answered {status}: {}", body.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
