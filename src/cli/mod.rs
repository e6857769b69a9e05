//! The subcommands beside the daemon: `check` (validate SecretProviderClasses offline), `mount`
//! (one real Mount from a workstation), and, with the `emulator` feature (on by default), `demo` and
//! `emulator`, which run the emulator of Entra ID and Key Vault. The daemon's own code path never
//! calls the emulator; an image built with `--no-default-features` does not contain it. With no
//! subcommand, or with flags only, the program is the daemon and takes the Go provider's flags.
//!
//! One parser (clap's derive API) for every subcommand: `--help` on standard output, errors and
//! unknown values answered with what is accepted, a mistyped subcommand with the nearest one, exit
//! status 2 for usage errors. The daemon keeps Go's flag syntax (`crate::config`).

pub mod check;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod grpc_v15;
pub mod mount;
pub(crate) mod table;

use std::process::ExitCode;

use clap::Parser as _;

/// The subcommands (the daemon itself is the program without one).
#[derive(clap::Parser)]
#[command(
    name = "akv-csi-provider",
    version,
    about = "Azure Key Vault provider for the Secrets Store CSI Driver. Without a subcommand the \
             program is the daemon (akv-csi-provider -h lists its flags)."
)]
enum Subcommand {
    /// See a Mount work end to end, offline (emulated Azure).
    #[cfg(feature = "emulator")]
    Demo(demo::DemoArgs),
    /// Validate SecretProviderClasses offline (CI, GitOps).
    Check(check::CheckArgs),
    /// Perform one Mount from a workstation and write its files.
    Mount(Box<mount::MountArgs>),
    /// Serve the Entra ID / Key Vault emulator for local clusters.
    #[cfg(feature = "emulator")]
    Emulator(emulator::EmulatorArgs),
}

/// The subcommands' names, for the daemon's messages.
pub const SUBCOMMANDS: &[&str] = &[
    "check",
    "mount",
    #[cfg(feature = "emulator")]
    "demo",
    #[cfg(feature = "emulator")]
    "emulator",
];

/// Runs the subcommand `args` names (`args[0]` is the subcommand). Usage errors exit 2.
pub fn main(args: &[String]) -> ExitCode {
    let argv = std::iter::once("akv-csi-provider".to_owned()).chain(args.iter().cloned());
    // `mount` passes the daemon's own flags (`--resolve`, `-v`, …) to the daemon's parser.
    let (argv, daemon_flags) = mount::split_daemon_flags(argv.collect());
    let command = match Subcommand::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match command {
        #[cfg(feature = "emulator")]
        Subcommand::Demo(a) => demo::main(a),
        Subcommand::Check(a) => check::main(a),
        Subcommand::Mount(a) => mount::main(*a, daemon_flags),
        #[cfg(feature = "emulator")]
        Subcommand::Emulator(a) => emulator::main(a),
    }
}

/// The runtime every subcommand runs on; `None` (after saying why) when it cannot start.
pub(crate) fn runtime(subcommand: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("{subcommand}: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Writes to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
