use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

// The services allocate per record on several threads; glibc malloc spends a fifth
// of ingest's time there, mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = techmon::cli::Cli::parse();
    techmon::allocator::no_transparent_huge_pages();
    techmon::allocator::keep_freed_memory(cli.command.workload());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // A relink's merge warns of a file metric it derives, on every merge.
            EnvFilter::new(
                "info,deltalake_core=warn,deltalake_core::operations::merge=error,buoyant_kernel=warn,datafusion=warn",
            )
        }))
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in a log file or journal.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match techmon::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // The chain, without a cause that its error's own message already shows.
            let mut message = error.to_string();
            for cause in error.chain().skip(1).map(ToString::to_string) {
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
