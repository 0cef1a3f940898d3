//! `cairn`: parse flags, set up logging, run the server until SIGTERM/SIGINT.

use clap::Parser;

// glibc's malloc was an eighth of the server's CPU under a put load (docs/performance.md)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let flags = cairn_server::Flags::parse();
    let config = match flags.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    // openraft narrates every election at info; keep its warnings only unless CAIRN_LOG says otherwise
    let default_filter = format!("{},openraft=warn", config.log_level);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cairn_server::server::run(
        config,
        cairn_client::signals::stopped(),
    )) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cairn: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
