//! Logging: `tracing` to stderr, human-readable or JSON lines, filtered by `RUST_LOG` or
//! `log.level`. Colour only when stderr is a terminal: a log redirected to a file or a pipe
//! carries no ANSI escape codes.

use std::io::IsTerminal;

use docent_config::LogFormat;
use tracing_subscriber::EnvFilter;

/// The filter used unless `RUST_LOG` is set: `level`, with two chatty dependencies quietened.
/// hnsw_rs reports every graph build step at info (docent logs the build itself); pdf_extract
/// warns once per glyph it cannot name (hundreds for one PDF, and the text is extracted
/// anyway). Whenever its warnings or debug lines are asked for (`RUST_LOG=debug`,
/// `RUST_LOG=info,pdf_extract=warn`), docent-extract counts them instead and logs one debug line
/// per document; by default nothing of them is collected or shown.
pub fn default_filter(level: &str) -> String {
    format!("{level},hnsw_rs=warn,pdf_extract=error")
}

/// Installs the global subscriber (once; later calls are no-ops).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter(level)))
        .unwrap_or_else(|_| EnvFilter::new(default_filter("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
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
