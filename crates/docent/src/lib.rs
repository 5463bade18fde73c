//! The docent application: wiring configuration to backends ([`app`]), the command line
//! ([`cli`], with `docent ingest` in [`ingest`]), logging ([`telemetry`]), the HTTP client used
//! by `--url` commands ([`client`]), the data directory's lock ([`datadir_lock`]) and the
//! container health check ([`healthcheck`]), and the AWS Lambda hosts (`lambda`, feature `aws`).
//!
//! The binary (`main.rs`) only parses arguments and calls [`cli::run`]; tests build the same
//! [`app::Application`] that `docent serve` runs.

pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod datadir_lock;
pub mod embedder;
pub mod healthcheck;
pub mod ingest;
pub mod inspect;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod paths;
pub mod secrets;
pub mod telemetry;
pub mod worker_metrics;
