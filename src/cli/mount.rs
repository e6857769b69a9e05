//! `akv-csi-provider mount`: one real Mount from a workstation, through the daemon's own Mount code,
//! with the request built the way the CSI driver builds it: the SecretProviderClass parameters, the
//! pod attributes, and the service-account token (from `kubectl create token SA --audience
//! api://AzureADTokenExchange`) or a service principal's client secret. The files are written with
//! their modes into a directory and listed; a failure prints the exact message the pod would get.
//! With `--socket` the request goes instead to a running daemon through its socket, as the driver
//! sends it (v1.6, or v1.5 with the socket path as HTTP/2 `:authority`): a node's provider can be
//! checked from the node, and deploy/image-check.sh checks the image's pod that way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use super::check::azure_classes;
use crate::auth::assertion::WORKLOAD_IDENTITY_AUDIENCE;
use crate::config::{self, Command, Env};
use crate::metrics::Metrics;
use crate::mount::MountService;
use crate::mount::identity::{IDENTITY_BINDING_AUDIENCE, TOKENS_KEY};
use crate::proto::{MountRequest, MountResponse};

/// `mount`'s command line. The daemon's own flags (`--resolve`, `--cloud-name`, `-v`, …) may be
/// given too: they go to the daemon's parser ([`split_daemon_flags`]).
#[derive(clap::Args)]
#[command(
    about = "Perform one Mount from a workstation, as the daemon would, and write its files",
    long_about = "Performs the Mount the daemon would for a pod of NS running as SA, against Azure (or \
                  the emulator with --resolve), and writes the files with their modes into DIR. The token \
                  comes from `kubectl create token SA -n NS --audience api://AzureADTokenExchange > FILE`. \
                  Daemon flags such as --resolve, --cloud-name and -v are accepted. Exit status: 0 \
                  mounted, 1 the Mount failed, 2 usage."
)]
pub struct MountArgs {
    /// The SecretProviderClass (a YAML file; - for standard input).
    #[arg(short = 'f', long = "file", value_name = "SPC.yaml")]
    file: PathBuf,
    /// The class's name, when the file holds several.
    #[arg(long)]
    name: Option<String>,
    /// The pod's namespace.
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// The pod's name.
    #[arg(long, default_value = "akv-csi-provider-mount")]
    pod: String,
    /// The pod's service account (workload identity).
    #[arg(long, value_name = "SA", requires = "token_file")]
    service_account: Option<String>,
    /// The service account's token (workload identity).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A service principal's client id.
    #[arg(long, value_name = "ID", requires = "client_secret_file")]
    client_id: Option<String>,
    /// A file holding the service principal's client secret.
    #[arg(long, value_name = "FILE", requires = "client_id")]
    client_secret_file: Option<PathBuf>,
    /// Where to write the files.
    #[arg(long, value_name = "DIR", required_unless_present = "dry_run")]
    out: Option<PathBuf>,
    /// Perform the Mount in memory and list the files without writing them.
    #[arg(long)]
    dry_run: bool,
    /// Send the Mount to the daemon listening on this socket (e.g. a node's
    /// /var/run/secrets-store-csi-providers/azure.sock) as the CSI driver does, instead of
    /// performing it here.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// With --socket: call as this driver version does (v1.5 sends the socket path as HTTP/2
    /// :authority).
    #[arg(long, value_enum, default_value = "v1.6", requires = "socket")]
    driver: Driver,
}

/// `--driver`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Driver {
    #[value(name = "v1.6", alias = "1.6")]
    V16,
    #[value(name = "v1.5", alias = "1.5")]
    V15,
}

/// Flags of `mount` itself (the rest that the daemon knows go to the daemon's parser).
const OWN_FLAGS: &[&str] = &[
    "f",
    "file",
    "name",
    "n",
    "namespace",
    "pod",
    "service-account",
    "token-file",
    "client-id",
    "client-secret-file",
    "out",
    "dry-run",
    "socket",
    "driver",
    "h",
    "help",
];

/// Splits `mount`'s command line (`argv[1]` is the subcommand) into its own arguments and the
/// daemon's flags (with their values); other subcommands' lines are returned whole.
pub(super) fn split_daemon_flags(argv: Vec<String>) -> (Vec<String>, Vec<String>) {
    if argv.get(1).map(String::as_str) != Some("mount") {
        return (argv, Vec::new());
    }
    let (mut own, mut daemon) = (Vec::new(), Vec::new());
    let mut iter = argv.into_iter();
    while let Some(arg) = iter.next() {
        let body = arg.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, _)) => (n, true),
            None => (body, false),
        };
        let takes_value = crate::config::takes_value(name);
        if !arg.starts_with('-') || OWN_FLAGS.contains(&name) || takes_value.is_none() {
            own.push(arg);
            continue;
        }
        daemon.push(arg.clone());
        // `--resolve H=A:P` as well as `--resolve=H=A:P`.
        if !inline && takes_value == Some(true) {
            daemon.extend(iter.next());
        }
    }
    (own, daemon)
}

/// Runs `mount` with the daemon flags given beside its own.
pub fn main(args: MountArgs, daemon_flags: Vec<String>) -> ExitCode {
    if args.socket.is_some() && !daemon_flags.is_empty() {
        eprintln!(
            "mount: --socket: {} would not reach the daemon behind the socket (give them to that \
             daemon)",
            daemon_flags.join(" ")
        );
        return ExitCode::from(2);
    }
    let config = match config::parse_args(daemon_flags.iter().cloned(), &Env::from_process()) {
        Ok(Command::Run(c)) => *c,
        Ok(_) => {
            eprintln!("mount: --help and --version are not daemon flags here");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("mount: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(config.log_format_json, config.verbosity);
    let Some(runtime) = super::runtime("mount") else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(run(args, config))
}

async fn run(args: MountArgs, config: crate::Config) -> ExitCode {
    let request = match build_request(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mount: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let result = match &args.socket {
        Some(socket) => through_socket(socket, args.driver == Driver::V15, request).await,
        None => {
            let (http, local_http) = match crate::http::clients(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("mount: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let service =
                MountService::new(Arc::new(config), http, local_http, Metrics::disabled());
            service
                .mount(request, None)
                .await
                .map_err(|e| rpc_error(&tonic::Status::from(e)))
        }
    };
    match result {
        Ok(response) => {
            let elapsed = started.elapsed();
            if let Some(dir) = args.out.as_deref().filter(|_| !args.dry_run)
                && let Err(e) = write_files(dir, &response)
            {
                eprintln!("mount: {e}");
                return ExitCode::FAILURE;
            }
            super::print(&super::table::files(&response));
            super::print(&format!(
                "{} file(s) {} in {} ms\n",
                response.files.len(),
                match (&args.out, args.dry_run) {
                    (_, true) => "fetched (dry run: nothing written)".to_owned(),
                    (Some(dir), false) => format!("written to {}", dir.display()),
                    (None, false) => "fetched".to_owned(),
                },
                elapsed.as_millis()
            ));
            ExitCode::SUCCESS
        }
        Err(message) => {
            super::print(&format!(
                "the Mount failed; the pod would get:\n  {message}\n"
            ));
            ExitCode::FAILURE
        }
    }
}

/// A failed call as the driver reports it to the pod.
fn rpc_error(status: &tonic::Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        crate::metrics::go_code_name(status.code()),
        status.message()
    )
}

/// The Mount sent to the daemon behind `socket`, as driver v1.6 (tonic, `:authority` localhost) or
/// v1.5 (the socket path as `:authority`) sends it.
async fn through_socket(
    socket: &Path,
    driver_v15: bool,
    request: MountRequest,
) -> Result<MountResponse, String> {
    use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;
    if driver_v15 {
        return super::grpc_v15::mount(socket, &request)
            .await
            .map_err(|e| e.to_string());
    }
    let channel = crate::server::socket::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    CsiDriverProviderClient::new(channel)
        .mount(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| rpc_error(&status))
}

fn read_secret_file(path: &Path, what: &str) -> Result<SecretString, String> {
    // Tokens and secrets are small; a cap keeps a wrong path (a device, a log) from being read whole.
    const MAX: u64 = 64 * 1024;
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() > MAX {
        return Err(format!(
            "{what} {} is not a regular file of at most {MAX} bytes",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

/// The MountRequest the driver would send for a pod of the given namespace and service account.
/// The one SecretProviderClass with provider azure in `-f` (named by `--name` when there are
/// several); when there is none, what was found instead.
fn select_class(args: &MountArgs) -> Result<super::check::AzureClass, String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("reading {}: {e}", args.file.display()))?;
    let mut classes = azure_classes(&text);
    if let Some(name) = &args.name {
        classes.retain(|c| &c.name == name);
    }
    match classes.len() {
        1 => Ok(classes.remove(0)),
        0 => {
            // Say what was found instead: invalid YAML at its line, a near-miss kind or provider.
            let mut survey = super::check::Survey::default();
            survey.add(&args.file.display().to_string(), &text);
            let skipped: String = survey
                .skipped()
                .iter()
                .map(|why| format!("\n  skipped {why}"))
                .collect();
            Err(format!(
                "{} has no SecretProviderClass with provider azure{}{skipped}",
                args.file.display(),
                args.name
                    .as_ref()
                    .map(|n| format!(" named {n}"))
                    .unwrap_or_default()
            ))
        }
        n => Err(format!(
            "{} has {n} SecretProviderClasses with provider azure; choose one with --name",
            args.file.display()
        )),
    }
}

fn build_request(args: &MountArgs) -> Result<MountRequest, String> {
    let class = select_class(args)?;
    let namespace = args
        .namespace
        .clone()
        .or_else(|| (!class.namespace.is_empty()).then(|| class.namespace.clone()))
        .ok_or("--namespace is required (the SecretProviderClass names none)")?;
    let mut attributes: serde_json::Map<String, serde_json::Value> = class
        .parameters
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    attributes.insert("secretProviderClass".into(), class.name.into());
    attributes.insert(
        "csi.storage.k8s.io/pod.name".into(),
        args.pod.clone().into(),
    );
    attributes.insert("csi.storage.k8s.io/pod.namespace".into(), namespace.into());
    attributes.insert(
        "csi.storage.k8s.io/pod.uid".into(),
        "00000000-0000-4000-8000-000000000000".into(),
    );
    attributes.insert("csi.storage.k8s.io/ephemeral".into(), "false".into());
    if let Some(sa) = &args.service_account {
        attributes.insert(
            "csi.storage.k8s.io/serviceAccount.name".into(),
            sa.clone().into(),
        );
    }
    if let Some(file) = &args.token_file {
        let token = read_secret_file(file, "--token-file")?;
        let audience = if attributes
            .get("useAzureTokenProxy")
            .and_then(|v| v.as_str())
            .is_some_and(|v| config::parse_bool(v.trim()) == Ok(true))
        {
            IDENTITY_BINDING_AUDIENCE
        } else {
            WORKLOAD_IDENTITY_AUDIENCE
        };
        let tokens = serde_json::json!({ audience: { "token": token.expose_secret(), "expirationTimestamp": "" } });
        attributes.insert(TOKENS_KEY.into(), tokens.to_string().into());
    }
    let secrets = match (&args.client_id, &args.client_secret_file) {
        (Some(id), Some(file)) => {
            let secret = read_secret_file(file, "--client-secret-file")?;
            serde_json::json!({ "clientid": id, "clientsecret": secret.expose_secret() })
                .to_string()
        }
        _ => "null".to_owned(),
    };
    Ok(MountRequest {
        attributes: serde_json::Value::Object(attributes).to_string(),
        secrets,
        target_path: String::new(),
        permission: "420".to_owned(),
        current_object_version: Vec::new(),
    })
}

/// Writes the files under `dir` with their modes, as the driver does (paths were checked by the
/// Mount's validation: relative, no `..`).
pub fn write_files(dir: &Path, response: &MountResponse) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    for file in &response.files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let mode = u32::try_from(file.mode).unwrap_or(0o600) & 0o777;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        out.write_all(&file.contents)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        // The mode of an existing file is not changed by `open`.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Regression: `--resolve H=A:P` (as the emulator prints it) and `-v 5` lost their value,
    /// which then failed as an unexpected argument; only the `--flag=value` form worked.
    #[test]
    fn daemon_flags_pass_through_in_both_forms() {
        let (own, daemon) = split_daemon_flags(args(&[
            "akv-csi-provider",
            "mount",
            "-f",
            "spc.yaml",
            "--resolve",
            "login.microsoftonline.com=127.0.0.1:8443",
            "-v",
            "5",
            "--resolve=*.vault.azure.net=127.0.0.1:8443",
            "--log-format-json",
            "--dry-run",
        ]));
        assert_eq!(
            daemon,
            args(&[
                "--resolve",
                "login.microsoftonline.com=127.0.0.1:8443",
                "-v",
                "5",
                "--resolve=*.vault.azure.net=127.0.0.1:8443",
                "--log-format-json",
            ])
        );
        assert_eq!(
            own,
            args(&["akv-csi-provider", "mount", "-f", "spc.yaml", "--dry-run"])
        );
        let config = match config::parse_args(daemon, &Env::default()) {
            Ok(Command::Run(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.resolve_overrides.len(), 2);
        // A value flag at the end keeps its name, and the daemon's parser says what is missing.
        let (_, daemon) = split_daemon_flags(args(&["x", "mount", "--resolve"]));
        assert!(matches!(
            config::parse_args(daemon, &Env::default()),
            Err(config::FlagError::MissingValue(f)) if f == "resolve"
        ));
    }
}
