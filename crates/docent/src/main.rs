//! `docent`: one binary for the server, the workers and the admin/ingest command line.

use clap::Parser;

/// mimalloc instead of the system allocator: a search request makes many small, short-lived
/// allocations across threads, and glibc's malloc took about a sixth of the server's CPU
/// under load (measured with `docent bench load`; see ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = docent::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(docent::cli::run(args));
    runtime.block_on(docent::telemetry::shutdown());
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
