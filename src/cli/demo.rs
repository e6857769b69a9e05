//! `akv-csi-provider demo`: the provider doing its job on one machine, without a cluster, an Azure
//! tenant or a network.
//!
//! It starts the emulator of Entra ID and Key Vault ([`akv_emulator`]) seeded with a secret, a
//! secret with three versions, a certificate whose secret is Key Vault's own 3DES/RC2 PFX with a
//! chain, and an EC key; starts the daemon ([`crate::server::Daemon`]) on a temporary 0600 socket
//! with production defaults except that it resolves Entra ID and the vault to the emulator and
//! trusts its CA; then mounts a SecretProviderClass exactly as driver v1.6 does (workload identity,
//! with a service-account token signed by a key the demo made) and once more as driver v1.5 does
//! (the socket path as HTTP/2 `:authority`), writes the files, lists them with what the daemon's
//! metrics endpoint says about the work, and shows a Mount that fails the way a pod would see it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use akv_emulator::{Emulator, SecretVersion, WORKLOAD_IDENTITY_AUDIENCE};

use crate::config::{Config, MetricsConfig};
use crate::proto::MountRequest;
use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;
use crate::server::{Daemon, socket};

/// Tenant, identity and vault of the demo.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The workload's managed identity (client id).
pub const CLIENT_ID: &str = "8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e";
/// The demo's vault.
pub const VAULT: &str = "demo-vault";
/// The demo cluster's service-account token issuer.
pub const ISSUER: &str = "https://oidc.demo.example/cluster-1/";
/// The pod's namespace and service account, federated with [`CLIENT_ID`].
pub const NAMESPACE: &str = "demo";
/// The pod's service account.
pub const SERVICE_ACCOUNT: &str = "web";
/// The database password.
pub const DB_PASSWORD: &str = "s3cr3t-p@ssw0rd";
/// The three versions of `api-token`, oldest first.
pub const API_TOKENS: [&str; 3] = ["token-2024-01", "token-2024-06", "token-2025-01"];
/// Key Vault's own PFX (3DES key bag, RC2-40 certificate bag, MAC iteration 1): an EC P-256 key
/// with a leaf ← intermediate ← root chain, from the Go provider's tests.
pub const PFX_BASE64: &str = include_str!(
    "../../tests/data/vectors/keyvault/go-provider-vectors/decodePKCS12/case2/input.pfx.b64"
);
/// A recorded GET key answer (EC P-256).
const EC_KEY_RECORDING: &str = include_str!(
    "../../tests/data/vectors/keyvault/d_get_key_ec/cpp__KeyVaultKeyClient.CreateEcKey__001.json"
);

/// The SecretProviderClass the demo mounts (also printed, for reference).
pub fn objects_yaml() -> &'static str {
    "array:
  - |
    objectName: db-password
    objectType: secret
    filePermission: \"0600\"
  - |
    objectName: api-token
    objectType: secret
    objectVersionHistory: 3
  - |
    objectName: web-tls
    objectType: secret
    objectAlias: tls/web.pem
  - |
    objectName: web-tls
    objectType: cert
    objectAlias: tls/web.crt
  - |
    objectName: signing-key
    objectType: key
    objectAlias: signing-key.pub
"
}

/// What a demo run produced, for the summary and for tests.
pub struct Report {
    /// The files written, with their contents, from the driver v1.6 Mount.
    pub response: crate::proto::MountResponse,
    /// The driver v1.5 Mount returned the same files.
    pub v15_same: bool,
    /// The failing Mount's gRPC code and message.
    pub failure: (tonic::Code, String),
    /// The daemon's metrics text after the Mounts.
    pub metrics: String,
    /// How long the v1.6 Mount took.
    pub mount_time: Duration,
}

/// Errors that stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setting up the emulator failed.
    #[error("emulator: {0}")]
    Emulator(String),
    /// Setting up or calling the daemon failed.
    #[error("daemon: {0}")]
    Daemon(String),
    /// A Mount that should work did not.
    #[error("the {driver} Mount failed: {message}")]
    Mount {
        /// Which driver's Mount.
        driver: &'static str,
        /// What it said.
        message: String,
    },
    /// Writing the files failed.
    #[error("{0}")]
    Write(String),
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Version ids: 32 hex digits, stable between runs.
fn version_id(n: u8) -> String {
    format!(
        "{:032x}",
        0x5eed_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(n)
    )
}

/// Seeds the emulator as described in the module docs; returns the issuer that signs pod tokens.
fn seed(emu: &Emulator) -> Result<akv_emulator::Issuer, DemoError> {
    let err = |e: String| DemoError::Emulator(e);
    let issuer = emu
        .entra()
        .add_issuer(ISSUER)
        .map_err(|e| err(e.to_string()))?;
    emu.entra().add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        &format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
        WORKLOAD_IDENTITY_AUDIENCE,
    );
    let created = now() - 86_400;
    let vault = emu.vault(VAULT);
    vault.grant(CLIENT_ID).put_secret(
        "db-password",
        SecretVersion::new(&version_id(1), DB_PASSWORD, created),
    );
    for (i, token) in API_TOKENS.iter().enumerate() {
        vault.put_secret(
            "api-token",
            SecretVersion::new(&version_id(10 + i as u8), token, created + i as i64 * 3600),
        );
    }
    let leaf = leaf_certificate_base64().map_err(err)?;
    vault.put_certificate_with_secret(
        "web-tls",
        &version_id(20),
        &leaf,
        PFX_BASE64.trim(),
        "application/x-pkcs12",
        created,
        true,
    );
    let recording: serde_json::Value =
        serde_json::from_str(EC_KEY_RECORDING).map_err(|e| err(e.to_string()))?;
    let mut jwk = recording["response"]["body"]["key"].clone();
    if let Some(k) = jwk.as_object_mut() {
        k.remove("kid");
    }
    vault.put_key("signing-key", &version_id(30), jwk, created, true);
    Ok(issuer)
}

/// The PFX's leaf certificate (base64 DER), which Key Vault returns as the certificate's `cer`.
fn leaf_certificate_base64() -> Result<String, String> {
    use base64::Engine as _;
    let converted = crate::convert::secret_contents(
        PFX_BASE64,
        Some("application/x-pkcs12"),
        true,
        crate::convert::SecretOptions {
            format: crate::convert::ObjectFormat::Pem,
            construct_pem_chain: true,
        },
    )
    .map_err(|e| e.to_string())?;
    let leaf = crate::convert::pem::decode_all(&converted.contents)
        .into_iter()
        .find(|b| b.label == "CERTIFICATE")
        .ok_or("the PFX has no certificate")?;
    Ok(base64::engine::general_purpose::STANDARD.encode(leaf.der.as_slice()))
}

/// A Mount request as the driver builds it for a pod of `service_account` in [`NAMESPACE`].
pub fn request(
    issuer: &akv_emulator::Issuer,
    service_account: &str,
    pod: &str,
) -> Result<MountRequest, String> {
    let token = issuer
        .service_account_token(
            NAMESPACE,
            service_account,
            &[WORKLOAD_IDENTITY_AUDIENCE],
            now() + 3600,
        )
        .map_err(|e| e.to_string())?;
    let tokens = serde_json::json!({
        WORKLOAD_IDENTITY_AUDIENCE: { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" }
    });
    let attributes = serde_json::json!({
        "keyvaultName": VAULT,
        "tenantID": TENANT,
        "clientID": CLIENT_ID,
        "objects": objects_yaml(),
        "secretProviderClass": "demo-secrets",
        "csi.storage.k8s.io/pod.name": pod,
        "csi.storage.k8s.io/pod.namespace": NAMESPACE,
        "csi.storage.k8s.io/pod.uid": "6c4e1f2a-0000-4000-8000-000000000001",
        "csi.storage.k8s.io/serviceAccount.name": service_account,
        "csi.storage.k8s.io/ephemeral": "false",
        "csi.storage.k8s.io/serviceAccount.tokens": tokens.to_string(),
    });
    Ok(MountRequest {
        attributes: attributes.to_string(),
        secrets: "null".into(),
        target_path: "/var/lib/kubelet/pods/6c4e1f2a/volumes/kubernetes.io~csi/secrets/mount"
            .into(),
        permission: "420".into(),
        current_object_version: Vec::new(),
    })
}

async fn client(
    socket: &Path,
) -> Result<CsiDriverProviderClient<tonic::transport::Channel>, DemoError> {
    let channel = crate::server::socket::connect(socket)
        .await
        .map_err(|e| DemoError::Daemon(format!("connecting to the socket: {e}")))?;
    Ok(CsiDriverProviderClient::new(channel))
}

/// Runs the demo, writing the files under `out`.
pub async fn run(out: &Path) -> Result<Report, DemoError> {
    let emu = Emulator::start()
        .await
        .map_err(|e| DemoError::Emulator(e.to_string()))?;
    let issuer = seed(&emu)?;
    let dir = tempfile::Builder::new()
        .prefix("akv-csi-provider-demo-")
        .tempdir()
        .map_err(|e| DemoError::Daemon(e.to_string()))?;
    let socket_path = dir.path().join("azure.sock");
    let addr = emu.addr();
    let config = Config {
        socket_path: socket_path.clone(),
        resolve_overrides: [
            format!("login.microsoftonline.com={addr}"),
            // The demo's vault only, as the standalone emulator prints it: any other name fails in DNS.
            format!("{VAULT}.vault.azure.net={addr}"),
        ]
        .iter()
        .map(|o| o.parse())
        .collect::<Result<_, _>>()
        .map_err(DemoError::Daemon)?,
        extra_root_certs: vec![emu.ca_der().to_vec()],
        // No fixed ports on a workstation: the liveness endpoint off, metrics on an ephemeral port.
        healthz: None,
        metrics: MetricsConfig::Prometheus { port: 0 },
        ..Config::default()
    };
    let listener = socket::bind(&socket_path).map_err(|e| DemoError::Daemon(e.to_string()))?;
    let daemon = Daemon::start(config, listener)
        .await
        .map_err(|e| DemoError::Daemon(e.to_string()))?;
    let metrics_addr = daemon.metrics_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(daemon.serve(async move {
        let _ = stopped.await;
    }));

    let result = mounts(&socket_path, &issuer, out, metrics_addr).await;
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(DemoError::Daemon(e.to_string())),
        _ => return Err(DemoError::Daemon("did not stop".into())),
    }
    emu.stop();
    result
}

async fn mounts(
    socket: &Path,
    issuer: &akv_emulator::Issuer,
    out: &Path,
    metrics_addr: Option<std::net::SocketAddr>,
) -> Result<Report, DemoError> {
    let good = request(issuer, SERVICE_ACCOUNT, "web-0").map_err(DemoError::Emulator)?;
    let started = Instant::now();
    let response = client(socket)
        .await?
        .mount(good.clone())
        .await
        .map_err(|s| DemoError::Mount {
            driver: "driver v1.6",
            message: s.message().to_owned(),
        })?
        .into_inner();
    let mount_time = started.elapsed();
    super::mount::write_files(out, &response).map_err(DemoError::Write)?;

    let v15 = super::grpc_v15::mount(socket, &good)
        .await
        .map_err(|e| DemoError::Mount {
            driver: "driver v1.5",
            message: e.to_string(),
        })?;
    let v15_same = v15.files == response.files && v15.object_version == response.object_version;

    // A pod of another service account: no federated credential matches its token.
    let other = request(issuer, "batch", "batch-0").map_err(DemoError::Emulator)?;
    let failure = match client(socket).await?.mount(other).await {
        Ok(_) => (tonic::Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    };

    let metrics = match metrics_addr {
        Some(addr) => scrape(addr).await.unwrap_or_default(),
        None => String::new(),
    };
    Ok(Report {
        response,
        v15_same,
        failure,
        metrics,
        mount_time,
    })
}

/// `GET /metrics` like Prometheus would (HTTP/1.0 over loopback: no client library needed).
async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()))
        .await
        .ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The sum of every sample of `name` (all label sets).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

fn summary(report: &Report, out: &Path) -> String {
    let m = &report.metrics;
    let mut s = String::new();
    s.push_str(&format!(
        "Mounted SecretProviderClass demo-secrets for pod {NAMESPACE}/web-0 as CSI driver v1.6 does, \
         into {}:\n\n",
        out.display()
    ));
    s.push_str(&super::table::files(&report.response));
    s.push_str(&format!(
        "\nThe same Mount as CSI driver v1.5 sends it (socket path as HTTP/2 :authority): {}.\n",
        if report.v15_same {
            "served, same files"
        } else {
            "served, but the files DIFFER"
        }
    ));
    s.push_str(&format!(
        "\nFrom the daemon's /metrics: {} token exchange(s) with Entra ID, {} Key Vault request(s), \
         {} Mount(s); the first Mount took {} ms.\n",
        metric_sum(m, "akv_token_requests_total"),
        metric_sum(m, "keyvault_request_count"),
        metric_sum(m, "akv_mount_duration_seconds_count"),
        report.mount_time.as_millis()
    ));
    s.push_str(&format!(
        "\nA pod running as service account {NAMESPACE}/batch, which has no federated credential, \
         gets:\n  MountVolume.SetUp failed ... rpc error: code = {} desc = {}\n",
        crate::metrics::go_code_name(report.failure.0),
        report.failure.1
    ));
    s
}

/// Runs `demo` with its command line (after `demo`).
/// `demo`'s command line.
#[derive(clap::Args)]
#[command(
    about = "See a Mount work end to end against an emulated Entra ID and Key Vault, offline"
)]
pub struct DemoArgs {
    /// Where the mounted files are written.
    #[arg(long, value_name = "DIR", default_value = "demo-mount")]
    out: PathBuf,
}

/// Runs `demo`.
pub fn main(args: DemoArgs) -> ExitCode {
    let out = args.out;
    let Some(runtime) = super::runtime("demo") else {
        return ExitCode::FAILURE;
    };
    // On SIGINT or SIGTERM the demo stops where it is: dropping `run` drops its temporary socket
    // directory, which the default action of the signal (exit at once) would leave behind.
    let outcome = runtime.block_on(async {
        // Biased: the signal handlers are installed (first poll) before `run` makes the directory.
        tokio::select! {
            biased;
            () = crate::server::shutdown_signal() => None,
            result = run(&out) => Some(result),
        }
    });
    let Some(outcome) = outcome else {
        eprintln!("demo: interrupted");
        return ExitCode::from(130);
    };
    match outcome {
        Ok(report) => {
            super::print(&summary(&report, &out));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
