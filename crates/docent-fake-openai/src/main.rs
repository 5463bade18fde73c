//! `docent-fake-openai`: runs the fake OpenAI-compatible server from the command line, e.g.
//!
//! ```text
//! docent-fake-openai --listen 127.0.0.1:8089 --rate-limit-share 0.1 --retry-after 1 \
//!     --server-error-share 0.05 --latency 50ms --budget-rps 5 --log requests.jsonl
//! ```
//!
//! It prints `listening on http://ADDR/v1` once ready and stops on Ctrl-C or SIGTERM,
//! reporting how many requests arrived over the `--budget-rps` budget.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use docent_fake_openai::{FakeConfig, FakeServer, Faults, RateCheck, RetryAfter};

/// A fake OpenAI-compatible server with fault injection and a request log.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Embedding dimension when a request does not ask for `dimensions`.
    #[arg(long, default_value_t = 64)]
    dimension: usize,
    /// Model ids served (repeat the flag); default `fake-chat` and `fake-embed`.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Answer every chat with this text.
    #[arg(long)]
    fixed_reply: Option<String>,
    /// Require this API key (`Authorization: Bearer` or `api-key`).
    #[arg(long, env = "FAKE_OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Share of chat/embedding requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_share: f64,
    /// `Retry-After` seconds sent with 429s.
    #[arg(long, default_value_t = 1, conflicts_with_all = ["retry_after_ms", "retry_after_date"])]
    retry_after: u64,
    /// Send `retry-after-ms` (and a rounded-up `Retry-After`) instead.
    #[arg(long)]
    retry_after_ms: Option<u64>,
    /// Send `Retry-After` as an HTTP date this far ahead (e.g. `2s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    retry_after_date: Option<Duration>,
    /// Share of chat/embedding requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    server_error_share: f64,
    /// Share of streamed chats cut before they finish.
    #[arg(long, default_value_t = 0.0)]
    truncate_share: f64,
    /// Added to every chat/embedding answer (e.g. `200ms`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    latency: Duration,
    /// Pause between streamed chunks (e.g. `20ms`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    chunk_delay: Duration,
    /// Offsets the deterministic fault sequence.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Mark requests arriving faster than this many per second (any 1 s window).
    #[arg(long)]
    budget_rps: Option<usize>,
    /// Jitter tolerated by the budget check.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "50ms")]
    budget_tolerance: Duration,
    /// Answer `400 invalid_request_error` to embeddings requests with an input containing this.
    #[arg(long)]
    reject_inputs_containing: Option<String>,
    /// Append every request as a JSON line to this file.
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
async fn stopped() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let retry_after = match (args.retry_after_ms, args.retry_after_date) {
        (Some(ms), _) => RetryAfter::Millis(ms),
        (None, Some(d)) => RetryAfter::Date(d),
        (None, None) => RetryAfter::Seconds(args.retry_after),
    };
    let mut config = FakeConfig {
        dimension: args.dimension,
        fixed_reply: args.fixed_reply,
        api_key: args.api_key,
        faults: Faults {
            rate_limit_share: args.rate_limit_share,
            retry_after,
            server_error_share: args.server_error_share,
            truncate_share: args.truncate_share,
            latency: args.latency,
            seed: args.seed,
            script: Vec::new(),
            reject_inputs_containing: args.reject_inputs_containing,
        },
        rate_check: args.budget_rps.map(|n| RateCheck {
            max_requests: n,
            window: Duration::from_secs(1),
            tolerance: args.budget_tolerance,
        }),
        log_file: args.log,
        chunk_delay: args.chunk_delay,
        ..FakeConfig::default()
    };
    if !args.models.is_empty() {
        config.models = args.models;
    }
    let server = FakeServer::bind(args.listen, config).await?;
    println!("listening on {}", server.base_url());
    stopped().await?;
    let violations = server.rate_violations();
    if violations > 0 {
        eprintln!("{violations} request(s) arrived over budget");
    }
    server.shutdown().await;
    Ok(())
}
