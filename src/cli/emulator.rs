//! `akv-csi-provider emulator --config FILE --listen ADDR`: the Entra ID, Key Vault and IMDS/NMI
//! emulator as a program, seeded from a YAML file (format: `emulator/README.md`), so that the daemon
//! can be pointed at it with `--resolve` in a local cluster (kind) or a CI job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use akv_emulator::seed::EmulatorConfig;
use akv_emulator::standalone::{self, Options};

/// `emulator`'s command line.
#[derive(clap::Args)]
#[command(
    about = "Serve Entra ID and Key Vault over HTTPS on --listen and IMDS/NMI over HTTP on --local-listen",
    long_about = "Serves Entra ID and Key Vault over HTTPS on --listen and IMDS/NMI over HTTP on \
                  --local-listen (default: the next port; a free port when --listen has port 0), writes \
                  its CA certificate, and prints the addresses it bound, the daemon flags and \
                  service-account tokens to use it. ADDR:PORT may be :PORT (all interfaces, as Go \
                  writes it). Stops on SIGINT or SIGTERM."
)]
pub struct EmulatorArgs {
    /// The seed file (format: emulator/README.md).
    #[arg(long, value_name = "SEED.yaml")]
    config: PathBuf,
    /// HTTPS address of Entra ID and Key Vault.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8443", value_parser = parse_addr)]
    listen: SocketAddr,
    /// HTTP address of IMDS and NMI.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_addr)]
    local_listen: Option<SocketAddr>,
    /// Where to write the CA certificate.
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
}

/// `ADDR:PORT`, or Go's `:PORT` for every interface.
fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    let parsed = match value.strip_prefix(':') {
        Some(port) => port
            .parse()
            .ok()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
        None => value.parse().ok(),
    };
    parsed.ok_or_else(|| format!("{value:?} is not ADDR:PORT or :PORT"))
}

/// Runs `emulator`.
pub fn main(args: EmulatorArgs) -> ExitCode {
    let mut options = Options::new(args.listen);
    options.local_listen = args.local_listen;
    options.ca_file = args.ca_file;
    let path = args.config;
    let seed = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| EmulatorConfig::from_yaml(&text).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("emulator: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = super::runtime("emulator") else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(standalone::run_with(
        seed,
        options,
        crate::server::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emulator: {e}");
            ExitCode::FAILURE
        }
    }
}
