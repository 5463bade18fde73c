//! Logging and traces. Logs: `tracing` to stderr, human-readable or JSON lines, filtered by
//! `RUST_LOG` or `log.level`. Colour only when stderr is a terminal: a log redirected to a file
//! or a pipe carries no ANSI escape codes.
//!
//! Traces (`[telemetry.otlp]`, off by default): the same spans exported over OTLP/HTTP
//! (protobuf) by `tracing-opentelemetry`, batched on the tokio runtime, sampled by
//! `sample_ratio` at the root (a continued trace keeps its parent's decision). [`shutdown`]
//! flushes what is buffered before the process exits. Header values (a collector's API key)
//! go to the exporter only, never to a log.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

use docent_config::{LogFormat, OtlpConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use secrecy::ExposeSecret;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The filter used unless `RUST_LOG` is set: `level`, with two chatty dependencies quietened.
/// hnsw_rs reports every graph build step at info (docent logs the build itself); pdf_extract
/// warns once per glyph it cannot name (hundreds for one PDF, and the text is extracted
/// anyway). Whenever its warnings or debug lines are asked for (`RUST_LOG=debug`,
/// `RUST_LOG=info,pdf_extract=warn`), docent-extract counts them instead and logs one debug line
/// per document; by default nothing of them is collected or shown.
pub fn default_filter(level: &str) -> String {
    format!("{level},hnsw_rs=warn,pdf_extract=error")
}

/// The trace provider while export is on, for [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber (once; later calls are no-ops): logs, and with an OTLP
/// endpoint ([`OtlpConfig::target`], from the configuration or the standard `OTEL_*`
/// variables) trace export. Must run on the tokio runtime (the exporter's batches do).
pub fn init(format: LogFormat, level: &str, otlp: &OtlpConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter(level)))
        .unwrap_or_else(|_| EnvFilter::new(default_filter("info")));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let target = otlp.target(|k| std::env::var(k).ok());
    let traces = match &target {
        Some(target) if PROVIDER.get().is_none() => {
            let provider = provider(otlp, target)?;
            let tracer = provider.tracer("docent");
            let _ = PROVIDER.set(provider);
            // Its own filter: traces do not follow the log level (`warn` logs still export
            // every info span), nor `RUST_LOG`.
            let spans = EnvFilter::new(default_filter("info"));
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(spans),
            )
        }
        _ => None,
    };
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces)
        .try_init()
        .is_ok();
    if installed && let Some(target) = target {
        tracing::info!(
            endpoint = %target.traces_url,
            service = %target.service_name,
            sample_ratio = otlp.sample_ratio,
            "exporting traces over OTLP"
        );
    }
    Ok(())
}

fn provider(
    otlp: &OtlpConfig,
    target: &docent_config::OtlpTarget,
) -> anyhow::Result<SdkTracerProvider> {
    let headers: HashMap<String, String> = otlp
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(target.traces_url.clone())
        .with_timeout(otlp.timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| anyhow::anyhow!("telemetry.otlp: cannot build the OTLP exporter: {e}"))?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            otlp.sample_ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(target.service_name.clone())
                .build(),
        )
        .build())
}

/// Exports the spans still buffered and stops trace export (a no-op while it is off). Called
/// once, as the process exits.
pub async fn shutdown() {
    with_provider(SdkTracerProvider::shutdown).await;
}

/// Exports the spans buffered so far, export going on (a Lambda invocation's, before the
/// runtime freezes the process); a no-op while export is off.
pub async fn flush() {
    with_provider(SdkTracerProvider::force_flush).await;
}

async fn with_provider(op: fn(&SdkTracerProvider) -> opentelemetry_sdk::error::OTelSdkResult) {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    // The provider blocks until its batch task (on this runtime) has exported.
    match tokio::task::spawn_blocking(move || op(&provider)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not export the last traces"),
        Err(e) => tracing::warn!(error = %e, "could not export the last traces"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(level: &str) -> String {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(default_filter(level)))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "pdf_extract", "unknown glyph name 'g17' for font F1");
            tracing::warn!(target: "docent_extract::pdf", "a docent warning");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn pdf_extract_glyph_warnings_are_quiet_by_default() {
        let out = logged("info");
        assert!(!out.contains("unknown glyph name"), "{out}");
        assert!(out.contains("a docent warning"), "{out}");
    }
}
