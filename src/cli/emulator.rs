//! `akv-csi-provider emulator --config FILE --listen ADDR`: the Entra ID, Key Vault and IMDS/NMI
//! emulator as a program, seeded from a YAML file (format: `emulator/README.md`), so that the daemon
//! can be pointed at it with `--resolve` in a local cluster (kind) or a CI job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use akv_emulator::seed::EmulatorConfig;
use akv_emulator::standalone::{self, Options};

const USAGE: &str = "Usage: akv-csi-provider emulator --config SEED.yaml [--listen ADDR:PORT] \
[--local-listen ADDR:PORT] [--ca-file PATH]\n\
Serves Entra ID and Key Vault over HTTPS on --listen (default 127.0.0.1:8443) and IMDS/NMI over HTTP on\n\
--local-listen (default: the next port; a free port when --listen has port 0), writes its CA certificate,\n\
and prints the addresses it bound, the daemon flags and service-account tokens to use it. ADDR:PORT may be\n\
:PORT (all interfaces, as Go writes it). Stops on SIGINT or SIGTERM.\n";

/// `ADDR:PORT`, or Go's `:PORT` for every interface.
fn parse_addr(value: &str) -> Option<SocketAddr> {
    match value.strip_prefix(':') {
        Some(port) => Some(SocketAddr::from(([0, 0, 0, 0], port.parse().ok()?))),
        None => value.parse().ok(),
    }
}

/// Runs `emulator` with its command line (after `emulator`).
pub fn main(args: &[String]) -> ExitCode {
    let mut config = None;
    let mut options = Options::new(SocketAddr::from(([127, 0, 0, 1], 8443)));
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| iter.next().cloned());
        let parsed = match flag.trim_start_matches('-') {
            "h" | "help" => {
                eprint!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "config" => value()
                .map(|v| config = Some(PathBuf::from(v)))
                .ok_or("--config needs a file"),
            "listen" => value()
                .and_then(|v| parse_addr(&v))
                .map(|a| options.listen = a)
                .ok_or("--listen needs ADDR:PORT"),
            "local-listen" => value()
                .and_then(|v| parse_addr(&v))
                .map(|a| options.local_listen = Some(a))
                .ok_or("--local-listen needs ADDR:PORT"),
            "ca-file" => value()
                .map(|v| options.ca_file = Some(PathBuf::from(v)))
                .ok_or("--ca-file needs a path"),
            _ => Err("unknown argument"),
        };
        if let Err(e) = parsed {
            eprintln!("emulator: {e} ({arg})\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(path) = config else {
        eprintln!("emulator: --config is required\n{USAGE}");
        return ExitCode::from(2);
    };
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("emulator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
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
