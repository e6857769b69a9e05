//! The daemon: parses the Go provider's flags, sets up logging, binds the socket and runs the server
//! until SIGTERM or SIGINT.

use std::process::ExitCode;

use akv_csi_provider::config::{self, Command};
use akv_csi_provider::server::{self, socket};
use anyhow::Context as _;

fn main() -> ExitCode {
    let command = match config::parse_args(std::env::args().skip(1), &config::Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n{}", config::usage());
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => {
            eprint!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            let version = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "runtimeName": server::RUNTIME_NAME,
                "apiVersion": server::API_VERSION,
            });
            println!("{version}");
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => *config,
    };
    init_logging(config.log_format_json, config.verbosity);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool, verbosity: u32) {
    // klog's -v: 0 is info; 1-4 debug; 5 and above trace. RUST_LOG still wins when set.
    let level = match verbosity {
        0 => "info",
        1..=4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Dependencies stay at info so that -v=5 does not print HTTP internals.
        tracing_subscriber::EnvFilter::new(format!("info,akv_csi_provider={level}"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn serve(config: akv_csi_provider::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = socket::bind(&config.socket_path)
            .with_context(|| format!("binding {}", config.socket_path.display()))?;
        tracing::info!(
            socket = %config.socket_path.display(),
            version = env!("CARGO_PKG_VERSION"),
            "akv-csi-provider listening"
        );
        server::run(config, listener, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
}
