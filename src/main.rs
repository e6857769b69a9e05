//! The program: a subcommand (`check`, `mount`, `demo`, `emulator`) when the first argument names
//! one; otherwise the daemon, which parses the Go provider's flags, sets up logging, binds the socket
//! and runs the server until SIGTERM or SIGINT.

#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

use std::process::ExitCode;

use akv_csi_provider::config::{self, Command};
use akv_csi_provider::server::{self, socket};
use anyhow::Context as _;

const SUBCOMMANDS: &str = "\nSubcommands (each has --help):\n  \
    akv-csi-provider demo              see a Mount work end to end, offline (emulated Azure)\n  \
    akv-csi-provider check FILE...     validate SecretProviderClasses offline (CI, GitOps)\n  \
    akv-csi-provider mount -f SPC ...  perform one Mount from a workstation and write its files\n  \
    akv-csi-provider emulator ...      serve the Entra ID / Key Vault emulator for local clusters\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Go's flag syntax puts every daemon argument after a dash, so a bare first word is a
    // subcommand; the subcommands' parser answers a mistyped one with the nearest name (a typo must
    // never start the daemon on the default socket and ports).
    if args.first().is_some_and(|a| !a.starts_with('-')) {
        return akv_csi_provider::cli::main(&args);
    }
    let command = match config::parse_args(args, &config::Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n{}{SUBCOMMANDS}", config::usage());
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => {
            eprint!("{}{SUBCOMMANDS}", config::usage());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            let version = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                // The commit built from (build.rs): "<sha>", "<sha>-dirty" or "unknown".
                "gitCommit": env!("AKV_GIT_COMMIT"),
                "runtimeName": server::RUNTIME_NAME,
                "apiVersion": server::API_VERSION,
            });
            println!("{version}");
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => *config,
    };
    akv_csi_provider::logging::init(config.log_format_json, config.verbosity);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
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
            commit = env!("AKV_GIT_COMMIT"),
            "akv-csi-provider listening"
        );
        server::run(config, listener, server::shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}
