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

/// What `mount` was asked to do.
struct Args {
    file: PathBuf,
    name: Option<String>,
    namespace: Option<String>,
    pod: String,
    service_account: Option<String>,
    token_file: Option<PathBuf>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    out: Option<PathBuf>,
    dry_run: bool,
    /// Send the Mount to the daemon listening on this socket instead of performing it here.
    socket: Option<PathBuf>,
    /// With `--socket`: call as driver v1.5 does (socket path as `:authority`) instead of v1.6.
    driver_v15: bool,
    /// Daemon flags (`--resolve`, `--cloud-name`, …), passed to the daemon's own parser.
    daemon_flags: Vec<String>,
}

fn usage() -> &'static str {
    "Usage: akv-csi-provider mount -f SPC.yaml [--name NAME] --namespace NS [--pod NAME]\n\
     \x20   (--service-account SA --token-file FILE | --client-id ID --client-secret-file FILE)\n\
     \x20   (--out DIR | --dry-run) [daemon flags such as --resolve, --cloud-name, -v]\n\
     \x20   [--socket PATH [--driver v1.6|v1.5]]\n\
     Performs the Mount the daemon would for a pod of NS running as SA, against Azure (or the\n\
     emulator with --resolve), and writes the files with their modes into DIR. The token comes from\n\
     `kubectl create token SA -n NS --audience api://AzureADTokenExchange > FILE`.\n\
     --dry-run performs the Mount in memory and lists the files without writing them.\n\
     --socket sends the Mount to the daemon listening on PATH (e.g. a node's\n\
     /var/run/secrets-store-csi-providers/azure.sock) as the CSI driver does, instead of performing\n\
     it here; daemon flags then belong to that daemon and are refused. --driver v1.5 calls as driver\n\
     v1.5 does (the socket path as HTTP/2 :authority); the default is v1.6.\n\
     Exit status: 0 mounted, 1 the Mount failed, 2 usage.\n"
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        file: PathBuf::new(),
        name: None,
        namespace: None,
        pod: "akv-csi-provider-mount".to_owned(),
        service_account: None,
        token_file: None,
        client_id: None,
        client_secret_file: None,
        out: None,
        dry_run: false,
        socket: None,
        driver_v15: false,
        daemon_flags: Vec::new(),
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.trim_start_matches('-'), Some(v.to_owned())),
            _ => (arg.trim_start_matches('-'), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .ok_or_else(|| format!("--{name} needs a value"))
        };
        match flag {
            "f" | "file" => parsed.file = value("file")?.into(),
            "name" => parsed.name = Some(value("name")?),
            "n" | "namespace" => parsed.namespace = Some(value("namespace")?),
            "pod" => parsed.pod = value("pod")?,
            "service-account" => parsed.service_account = Some(value("service-account")?),
            "token-file" => parsed.token_file = Some(value("token-file")?.into()),
            "client-id" => parsed.client_id = Some(value("client-id")?),
            "client-secret-file" => {
                parsed.client_secret_file = Some(value("client-secret-file")?.into())
            }
            "out" => parsed.out = Some(value("out")?.into()),
            "dry-run" => parsed.dry_run = inline.as_deref().is_none_or(|v| v == "true"),
            "socket" => parsed.socket = Some(value("socket")?.into()),
            "driver" => match value("driver")?.as_str() {
                "v1.5" | "1.5" => parsed.driver_v15 = true,
                "v1.6" | "1.6" => parsed.driver_v15 = false,
                other => return Err(format!("--driver {other:?}: v1.6 or v1.5")),
            },
            _ if arg.starts_with('-') => {
                parsed.daemon_flags.push(arg.clone());
                // `--resolve H=A:P` as well as `--resolve=H=A:P`: a daemon value flag without `=`
                // takes the next argument with it.
                if inline.is_none() && crate::config::takes_value(flag) == Some(true) {
                    parsed.daemon_flags.push(value(flag)?);
                }
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if parsed.file.as_os_str().is_empty() {
        return Err("-f SPC.yaml is required".to_owned());
    }
    if parsed.out.is_none() && !parsed.dry_run {
        return Err("--out DIR (or --dry-run) is required".to_owned());
    }
    if parsed.socket.is_some() && !parsed.daemon_flags.is_empty() {
        return Err(format!(
            "--socket: {} would not reach the daemon behind the socket (give them to that daemon)",
            parsed.daemon_flags.join(" ")
        ));
    }
    if parsed.client_id.is_some() != parsed.client_secret_file.is_some() {
        return Err("--client-id and --client-secret-file go together".to_owned());
    }
    Ok(parsed)
}

/// Runs `mount` with its command line (after `mount`).
pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        eprint!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mount: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let config = match config::parse_args(args.daemon_flags.iter().cloned(), &Env::from_process()) {
        Ok(Command::Run(c)) => *c,
        Ok(_) => {
            eprintln!("mount: {}", usage());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("mount: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    crate::logging::init(config.log_format_json, config.verbosity);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mount: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, config))
}

async fn run(args: Args, config: crate::Config) -> ExitCode {
    let request = match build_request(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mount: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let result = match &args.socket {
        Some(socket) => through_socket(socket, args.driver_v15, request).await,
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
fn build_request(args: &Args) -> Result<MountRequest, String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("reading {}: {e}", args.file.display()))?;
    let mut classes = azure_classes(&text);
    if let Some(name) = &args.name {
        classes.retain(|c| &c.name == name);
    }
    let class = match classes.len() {
        1 => classes.remove(0),
        0 => {
            return Err(format!(
                "{} has no SecretProviderClass with provider azure{}",
                args.file.display(),
                args.name
                    .as_ref()
                    .map(|n| format!(" named {n}"))
                    .unwrap_or_default()
            ));
        }
        n => {
            return Err(format!(
                "{} has {n} SecretProviderClasses with provider azure; choose one with --name",
                args.file.display()
            ));
        }
    };
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
        let parsed = parse(&args(&[
            "-f",
            "spc.yaml",
            "--resolve",
            "login.microsoftonline.com=127.0.0.1:8443",
            "-v",
            "5",
            "--resolve=*.vault.azure.net=127.0.0.1:8443",
            "--log-format-json",
            "--dry-run",
        ]))
        .unwrap();
        assert_eq!(
            parsed.daemon_flags,
            args(&[
                "--resolve",
                "login.microsoftonline.com=127.0.0.1:8443",
                "-v",
                "5",
                "--resolve=*.vault.azure.net=127.0.0.1:8443",
                "--log-format-json",
            ])
        );
        assert!(parsed.dry_run);
        let config = match config::parse_args(parsed.daemon_flags, &Env::default()) {
            Ok(Command::Run(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(config.resolve_overrides.len(), 2);
        assert_eq!(
            parse(&args(&["-f", "x", "--dry-run", "--resolve"])).err(),
            Some("--resolve needs a value".to_owned())
        );
    }
}
