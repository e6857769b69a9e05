//! The emulator as a program: seeded from YAML, listening on a chosen address, printing what a
//! daemon needs to use it (the `--resolve` overrides, the CA file, the IMDS address, and a signed
//! service-account token per federated credential), until shutdown. The daemon's CLI wires
//! `akv-csi-provider emulator --config FILE --listen ADDR` to [`run`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::seed::EmulatorConfig;
use crate::{Emulator, EmulatorError, Listen};

/// How the standalone emulator listens and where it writes its CA.
#[derive(Clone, Debug)]
pub struct Options {
    /// HTTPS (Entra ID and Key Vault).
    pub listen: SocketAddr,
    /// Plain HTTP (IMDS and NMI); default: the next port on the same address, or an ephemeral port
    /// when `listen` asks for one (port 0) or there is no next port.
    pub local_listen: Option<SocketAddr>,
    /// Where to write the CA certificate (PEM); default `<temp dir>/akv-emulator-<port>-ca.pem`.
    pub ca_file: Option<PathBuf>,
    /// Lifetime of the printed service-account tokens.
    pub token_lifetime: Duration,
}

impl Options {
    /// Defaults for `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            local_listen: None,
            ca_file: None,
            token_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// Runs with default [`Options`] for `listen` until `shutdown` completes.
pub async fn run(
    config: EmulatorConfig,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EmulatorError> {
    run_with(config, Options::new(listen), shutdown).await
}

/// Starts, seeds, writes the CA, prints the instructions to stderr, and serves until `shutdown`.
pub async fn run_with(
    config: EmulatorConfig,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EmulatorError> {
    let started = start(&config, &options).await?;
    eprint!("{}", started.instructions);
    shutdown.await;
    started.emulator.stop();
    Ok(())
}

/// A seeded emulator with its CA written out.
#[derive(Debug)]
pub struct Started {
    /// The running emulator (stopped when dropped).
    pub emulator: Emulator,
    /// Where the CA certificate was written.
    pub ca_file: PathBuf,
    /// What [`run`] prints: the daemon's flags and environment, and the service-account tokens.
    pub instructions: String,
}

/// Starts and seeds an emulator and writes its CA file, without printing or waiting.
pub async fn start(config: &EmulatorConfig, options: &Options) -> Result<Started, EmulatorError> {
    let local = options
        .local_listen
        .unwrap_or_else(|| default_local(options.listen));
    let emulator = Emulator::start_on(Listen {
        https: options.listen,
        local,
        extra_names: config.issuer_hosts(),
    })
    .await?;
    let issuers = emulator.seed(config)?;
    let ca_file = options.ca_file.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("akv-emulator-{}-ca.pem", emulator.addr().port()))
    });
    tokio::fs::write(&ca_file, emulator.ca_pem())
        .await
        .map_err(|error| EmulatorError::Write {
            path: ca_file.clone(),
            error,
        })?;
    let instructions = instructions(
        &emulator,
        config,
        &issuers,
        &ca_file,
        options.token_lifetime,
    );
    Ok(Started {
        emulator,
        ca_file,
        instructions,
    })
}

/// The IMDS/NMI address when none is given: the port after `listen`'s on the same address. Port 0
/// (any free port) stays 0, so that both listeners get a free port of their own: "the next port"
/// would be port 1, privileged (and served by root, silently). Port 65535 has no next one either.
fn default_local(listen: SocketAddr) -> SocketAddr {
    let port = match listen.port() {
        0 | u16::MAX => 0,
        p => p + 1,
    };
    SocketAddr::new(listen.ip(), port)
}

/// A reachable form of a listen address: the unspecified address becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// What to tell the user: the daemon's flags and environment, and one token per federated
/// credential (signed by the emulator's key for that issuer, so Entra's check passes).
fn instructions(
    emulator: &Emulator,
    config: &EmulatorConfig,
    issuers: &[crate::Issuer],
    ca_file: &std::path::Path,
    token_lifetime: Duration,
) -> String {
    let addr = reachable(emulator.addr());
    let local = reachable(emulator.local_addr());
    // One override per seeded vault, not `*.vault.azure.net`: a vault name that is not one of them
    // is looked up in DNS and fails as a vault that does not exist does in Azure, with the
    // daemon's message for it, instead of reaching the emulator.
    let mut vaults: std::collections::BTreeSet<&str> =
        config.vaults.keys().map(String::as_str).collect();
    vaults.extend(
        config
            .identities
            .iter()
            .flat_map(|i| i.vaults.iter().map(String::as_str)),
    );
    let vault_flags: String = vaults
        .iter()
        .map(|v| format!(" --resolve {v}.vault.azure.net={addr}"))
        .collect();
    let mut out = format!(
        "akv-emulator: Entra ID and Key Vault on https://{addr}, IMDS and NMI on http://{local}\n\
         CA certificate: {ca}\n\
         Run the daemon against it (from another host or a kind node, use an address of this host it can reach):\n  \
         SSL_CERT_FILE={ca} AZURE_POD_IDENTITY_AUTHORITY_HOST=http://{local} akv-csi-provider \\\n    \
         --resolve login.microsoftonline.com={addr}{vault_flags} [other flags]\n  \
         (a vault not listed here is looked up in DNS, and fails as a vault that does not exist does)\n",
        ca = ca_file.display(),
    );
    if local.port() != 2579 {
        out.push_str(
            "  (pod identity: the daemon asks NMI on localhost:2579; listen there to emulate it)\n",
        );
    }
    let expires_at =
        crate::now().saturating_add(i64::try_from(token_lifetime.as_secs()).unwrap_or(i64::MAX));
    for (label, issuer_url, subject, audience) in config.federated_subjects() {
        let Some(issuer) = issuers.iter().find(|i| i.url() == issuer_url) else {
            continue;
        };
        let mut parts = subject.splitn(4, ':');
        let (Some("system"), Some("serviceaccount"), Some(ns), Some(sa)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match issuer.service_account_token(ns, sa, &[audience.as_str()], expires_at) {
            Ok(token) => out.push_str(&format!(
                "Service-account token for {label} ({subject}, audience {audience}, issuer {issuer_url}):\n{token}\n"
            )),
            Err(e) => out.push_str(&format!("no token for {label}: {e}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_local_port_follows_listen_and_stays_ephemeral_for_port_0() {
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(default_local(at(8443)), at(8444));
        assert_eq!(default_local(at(0)), at(0));
        assert_eq!(default_local(at(65535)), at(0));
    }
}
