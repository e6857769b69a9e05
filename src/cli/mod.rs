//! The subcommands beside the daemon: `check` (validate SecretProviderClasses offline), `mount`
//! (one real Mount from a workstation), and, with the `emulator` feature (on by default), `demo` and
//! `emulator`, which run the emulator of Entra ID and Key Vault. The daemon's own code path never
//! calls the emulator; an image built with `--no-default-features` does not contain it. With no subcommand, or with flags only, the
//! program is the daemon and takes the Go provider's flags.

pub mod check;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod grpc_v15;
pub mod mount;
pub(crate) mod table;

/// Writes to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
