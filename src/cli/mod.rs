//! The subcommands beside the daemon: `check` (validate SecretProviderClasses offline) and
//! `mount` (one real Mount from a workstation). With no subcommand, or with flags only, the
//! program is the daemon and takes the Go provider's flags.

pub mod check;
pub mod mount;
pub mod table;

/// Writes to standard output; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
