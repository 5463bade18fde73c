//! `docent worker --metrics-bind ADDR`: a worker process serves no API, but the series it
//! records — tasks finished and their durations, ingest stages and outcomes, model calls, rate
//! limits and budget waits — live in its own Prometheus recorder. This serves them on
//! `GET /metrics` (with the queue gauges refreshed from the task table, as the API's
//! `/metrics` does), so a metrics sidecar (deploy/aws: the ADOT collector) can scrape the
//! worker like the API. Bind it to the loopback address: `server.metrics_token` is not asked.

use std::net::SocketAddr;

use anyhow::Context;
use axum::http::header;
use docent_core::Services;

/// Starts serving `/metrics` on `addr`; the server runs until the process ends.
pub async fn serve(
    addr: SocketAddr,
    services: Services,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let handle = docent_http::metrics::install();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let services = services.clone();
            let handle = handle.clone();
            async move {
                docent_http::metrics::refresh(&services).await;
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for --metrics-bind"))?;
    tracing::info!(%addr, "worker metrics on GET /metrics");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the worker metrics server stopped");
        }
    }))
}
