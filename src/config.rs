//! Daemon configuration: the Go provider's command line, parsed the way Go's `flag` package does, and
//! the validated [`Config`] the rest of the crate uses.
//!
//! Existing DaemonSets and the Helm chart pass these flags, so every one of them is accepted with Go's
//! syntax: `-name` and `--name` are the same, values come as `--name=value` or `--name value`, boolean
//! flags may be bare, and parsing stops at the first non-flag argument or `--`. klog's flags are
//! accepted too (`-v=N` maps onto our log level); the rest of klog's are accepted and ignored.

use std::path::PathBuf;
use std::time::Duration;

use crate::cloud::CloudName;
use crate::http::ResolveOverride;

/// Validated daemon configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Path of the Unix socket the driver dials.
    pub socket_path: PathBuf,
    pub construct_pem_chain: bool,
    pub write_cert_and_key_in_separate_files: bool,
    /// Cloud used when a SecretProviderClass sets no `cloudName`.
    pub default_cloud: CloudName,
    /// HTTP liveness endpoint; `None` when `--healthz-port=0`.
    pub healthz: Option<Healthz>,
    pub metrics_backend: String,
    pub prometheus_port: u16,
    pub log_format_json: bool,
    /// klog verbosity (`-v`).
    pub verbosity: u32,
    /// Appended to the User-Agent of every outgoing request.
    pub custom_user_agent: String,
    /// Identity binding: the token proxy and the TLS server name to use with it.
    pub token_proxy_url: String,
    pub sni_name: String,
    /// Host → address overrides for outgoing requests (`--resolve`).
    pub resolve_overrides: Vec<ResolveOverride>,
    /// Extra CA certificates (DER) trusted in addition to the system store. Not a flag: the system
    /// store (`SSL_CERT_FILE`, `SSL_CERT_DIR`) is how operators add CAs; embedders and tests set this.
    pub extra_root_certs: Vec<Vec<u8>>,
    /// Upper bound on one Mount, whatever the caller's deadline (driver v1.5 rotation sends none).
    pub mount_timeout: Duration,
    /// Objects of one Mount fetched at the same time.
    pub max_concurrent_fetches: usize,
    /// How long in-flight Mounts may run after SIGTERM before the daemon exits anyway.
    pub shutdown_grace: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// IMDS base URL; `main` takes `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set, as the Azure SDKs do.
    pub imds_endpoint: String,
    /// aad-pod-identity NMI base URL.
    pub nmi_endpoint: String,
    /// CA bundle trusted for the identity-binding token proxy (the cluster CA), read when
    /// `--token-proxy-url` is set.
    pub token_proxy_ca_file: PathBuf,
}

/// The HTTP liveness probe settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthz {
    pub port: u16,
    pub path: String,
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket_path: PathBuf::from("/tmp/azure.sock"),
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
            default_cloud: CloudName::Public,
            healthz: Some(Healthz {
                port: 8989,
                path: "/healthz".to_owned(),
                timeout: Duration::from_secs(5),
            }),
            metrics_backend: "Prometheus".to_owned(),
            prometheus_port: 8898,
            log_format_json: false,
            verbosity: 0,
            custom_user_agent: String::new(),
            token_proxy_url: String::new(),
            sni_name: String::new(),
            resolve_overrides: Vec::new(),
            extra_root_certs: Vec::new(),
            mount_timeout: Duration::from_secs(90),
            max_concurrent_fetches: 8,
            shutdown_grace: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            imds_endpoint: "http://169.254.169.254".to_owned(),
            nmi_endpoint: "http://localhost:2579".to_owned(),
            token_proxy_ca_file: PathBuf::from(
                "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            ),
        }
    }
}

impl Config {
    /// Identity binding: (authority under the TLS server name, alias of that name to the proxy's
    /// host and port), when `--token-proxy-url` is set.
    pub fn token_proxy(&self) -> Option<(String, (String, String, u16))> {
        let uri = http::Uri::try_from(self.token_proxy_url.as_str()).ok()?;
        let host = uri.host()?.to_owned();
        let port = uri.port_u16();
        let sni = match self.sni_name.trim() {
            "" => host.clone(),
            sni => sni.to_owned(),
        };
        let authority = match port {
            Some(p) => format!("https://{sni}:{p}/"),
            None => format!("https://{sni}/"),
        };
        Some((authority, (sni, host, port.unwrap_or(443))))
    }

    /// The User-Agent sent on every outgoing request.
    pub fn user_agent(&self) -> String {
        let base = format!("akv-csi-provider/{}", env!("CARGO_PKG_VERSION"));
        match self.custom_user_agent.trim() {
            "" => base,
            custom => format!("{base} {custom}"),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Version,
    Help,
}

/// A command-line error; `main` prints it with the usage and exits 2, like Go's `flag`.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    Invalid {
        flag: String,
        value: String,
        reason: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}

/// Every flag we accept: (name, kind, help). Order is the usage order.
const FLAGS: &[(&str, Kind, &str)] = &[
    (
        "endpoint",
        Kind::Value,
        "gRPC endpoint: unix:///path/to/azure.sock (default unix:///tmp/azure.sock)",
    ),
    (
        "construct-pem-chain",
        Kind::Bool,
        "order PFX certificates leaf to root (default true)",
    ),
    (
        "write-cert-and-key-in-separate-files",
        Kind::Bool,
        "also write <file>.crt and <file>.key for certificates (default false)",
    ),
    (
        "cloud-name",
        Kind::Value,
        "cloud used when the SecretProviderClass sets none (default AzurePublicCloud)",
    ),
    (
        "healthz-port",
        Kind::Value,
        "port of the HTTP liveness endpoint; 0 disables it (default 8989)",
    ),
    (
        "healthz-path",
        Kind::Value,
        "path of the HTTP liveness endpoint (default /healthz)",
    ),
    (
        "healthz-timeout",
        Kind::Value,
        "timeout of the liveness check against the socket (default 5s)",
    ),
    (
        "metrics-backend",
        Kind::Value,
        "metrics backend (default Prometheus)",
    ),
    (
        "prometheus-port",
        Kind::Value,
        "Prometheus metrics port (default 8898)",
    ),
    (
        "log-format-json",
        Kind::Bool,
        "log as JSON lines (default false)",
    ),
    (
        "enable-pprof",
        Kind::Bool,
        "accepted for compatibility; no profiling server is started",
    ),
    ("pprof-port", Kind::Value, "accepted for compatibility"),
    (
        "custom-user-agent",
        Kind::Value,
        "appended to the User-Agent of outgoing requests",
    ),
    (
        "token-proxy-url",
        Kind::Value,
        "identity binding: URL of the AKS token proxy",
    ),
    (
        "sni-name",
        Kind::Value,
        "identity binding: TLS server name for the token proxy",
    ),
    (
        "resolve",
        Kind::Value,
        "HOST=ADDR:PORT: connect to ADDR:PORT for HOST (repeatable; *.suffix matches subdomains)",
    ),
    (
        "mount-timeout",
        Kind::Value,
        "upper bound on one Mount (default 90s)",
    ),
    (
        "max-concurrent-fetches",
        Kind::Value,
        "Key Vault objects of one Mount fetched at once (default 8)",
    ),
    (
        "shutdown-grace-period",
        Kind::Value,
        "time in-flight Mounts get after SIGTERM (default 20s)",
    ),
    ("version", Kind::Bool, "print the version as JSON and exit"),
    (
        "v",
        Kind::Value,
        "klog verbosity: 0 info, 1-4 debug, 5+ trace",
    ),
    // klog flags the Go provider registers; accepted so existing manifests keep working.
    ("vmodule", Kind::Value, "klog: ignored"),
    ("logtostderr", Kind::Bool, "klog: ignored (always stderr)"),
    ("alsologtostderr", Kind::Bool, "klog: ignored"),
    ("log_dir", Kind::Value, "klog: ignored"),
    ("log_file", Kind::Value, "klog: ignored"),
    ("log_file_max_size", Kind::Value, "klog: ignored"),
    ("skip_headers", Kind::Bool, "klog: ignored"),
    ("skip_log_headers", Kind::Bool, "klog: ignored"),
    ("stderrthreshold", Kind::Value, "klog: ignored"),
    ("one_output", Kind::Bool, "klog: ignored"),
    ("add_dir_header", Kind::Bool, "klog: ignored"),
    ("log_backtrace_at", Kind::Value, "klog: ignored"),
];

/// The usage text printed with `-h` and after a flag error.
pub fn usage() -> String {
    let mut out = String::from("Usage of akv-csi-provider:\n");
    for (name, kind, help) in FLAGS {
        let arg = if *kind == Kind::Value { " value" } else { "" };
        out.push_str(&format!("  -{name}{arg}\n    \t{help}\n"));
    }
    out
}

/// Parses the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Command, FlagError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut config = Config::default();
    let mut version = false;
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        // Go stops at the first non-flag argument ("-" alone is a non-flag too).
        let Some(stripped) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            break;
        };
        let body = stripped.strip_prefix('-').unwrap_or(stripped);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Invalid {
                flag: body.to_owned(),
                value: arg.clone(),
                reason: "bad flag syntax".to_owned(),
            });
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (body.to_owned(), None),
        };
        if name == "h" || name == "help" {
            return Ok(Command::Help);
        }
        let kind = FLAGS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, k, _)| *k)
            .ok_or_else(|| FlagError::Unknown(name.clone()))?;
        let value = match (kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Value, None) => args
                .next()
                .ok_or_else(|| FlagError::MissingValue(name.clone()))?,
        };
        let invalid = |reason: String| FlagError::Invalid {
            flag: name.clone(),
            value: value.clone(),
            reason,
        };
        match name.as_str() {
            "endpoint" => config.socket_path = parse_endpoint(&value).map_err(invalid)?,
            "construct-pem-chain" => {
                config.construct_pem_chain = parse_bool(&value).map_err(invalid)?
            }
            "write-cert-and-key-in-separate-files" => {
                config.write_cert_and_key_in_separate_files = parse_bool(&value).map_err(invalid)?
            }
            "cloud-name" => config.default_cloud = value.parse().map_err(invalid)?,
            "healthz-port" => {
                let port = parse_port(&value).map_err(invalid)?;
                config.healthz = match (port, config.healthz.take()) {
                    (0, _) => None,
                    (port, Some(h)) => Some(Healthz { port, ..h }),
                    (port, None) => Some(Healthz {
                        port,
                        ..default_healthz()
                    }),
                };
            }
            "healthz-path" => {
                if !value.starts_with('/') {
                    return Err(invalid("must start with /".to_owned()));
                }
                if let Some(h) = config.healthz.as_mut() {
                    h.path = value.clone();
                }
            }
            "healthz-timeout" => {
                let timeout = parse_duration(&value).map_err(invalid)?;
                if let Some(h) = config.healthz.as_mut() {
                    h.timeout = timeout;
                }
            }
            "metrics-backend" => config.metrics_backend = value.clone(),
            "prometheus-port" => config.prometheus_port = parse_port(&value).map_err(invalid)?,
            "log-format-json" => config.log_format_json = parse_bool(&value).map_err(invalid)?,
            "enable-pprof" | "logtostderr" | "alsologtostderr" | "skip_headers"
            | "skip_log_headers" | "one_output" | "add_dir_header" => {
                parse_bool(&value).map_err(invalid)?;
            }
            "pprof-port" => {
                parse_port(&value).map_err(invalid)?;
            }
            "custom-user-agent" => config.custom_user_agent = value.clone(),
            "token-proxy-url" => {
                if !value.is_empty() {
                    let url = http::Uri::try_from(value.as_str())
                        .ok()
                        .filter(|u| u.scheme_str() == Some("https") && u.host().is_some())
                        .ok_or_else(|| {
                            invalid(
                                "must be an https:// URL such as https://kubernetes.default.svc"
                                    .to_owned(),
                            )
                        })?;
                    drop(url);
                }
                config.token_proxy_url = value.clone()
            }
            "sni-name" => config.sni_name = value.clone(),
            "resolve" => config
                .resolve_overrides
                .push(value.parse().map_err(invalid)?),
            "mount-timeout" => {
                config.mount_timeout = parse_positive_duration(&value).map_err(invalid)?
            }
            "max-concurrent-fetches" => {
                config.max_concurrent_fetches = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| invalid("must be a whole number from 1 to 256".to_owned()))?
            }
            "shutdown-grace-period" => {
                config.shutdown_grace = parse_duration(&value).map_err(invalid)?
            }
            "version" => version = parse_bool(&value).map_err(invalid)?,
            "v" => {
                config.verbosity = value
                    .parse::<u32>()
                    .map_err(|_| invalid("must be a whole number".to_owned()))?
            }
            // klog flags that take a value and that we ignore.
            _ => {}
        }
    }
    if version {
        return Ok(Command::Version);
    }
    Ok(Command::Run(Box::new(config)))
}

fn default_healthz() -> Healthz {
    Healthz {
        port: 8989,
        path: "/healthz".to_owned(),
        timeout: Duration::from_secs(5),
    }
}

/// `unix:///provider/azure.sock` → `/provider/azure.sock`. The scheme is case-insensitive; a bare
/// path is accepted as well. TCP endpoints are refused: the driver only dials Unix sockets.
fn parse_endpoint(value: &str) -> Result<PathBuf, String> {
    let lower = value.to_ascii_lowercase();
    let path = if lower.starts_with("unix://") {
        &value["unix://".len()..]
    } else if lower.starts_with("tcp://") {
        return Err("TCP endpoints are not supported: the CSI driver only dials Unix sockets; use unix:///provider/azure.sock".to_owned());
    } else if lower.contains("://") {
        return Err("expected unix:///path/to/socket".to_owned());
    } else {
        value
    };
    if path.is_empty() {
        return Err("the socket path is empty; use unix:///provider/azure.sock".to_owned());
    }
    Ok(PathBuf::from(path))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("must be a boolean: true or false".to_owned()),
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .parse::<u16>()
        .map_err(|_| "must be a port number from 0 to 65535".to_owned())
}

fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    let d = parse_duration(value)?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

/// Go's `time.ParseDuration` for non-negative values: a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (e.g. `5s`, `1m30s`, `1.5h`); `0` alone is allowed.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let err = || format!("{value:?} is not a duration such as 5s, 300ms or 1m30s");
    let s = value.strip_prefix('+').unwrap_or(value);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_go_provider() {
        let c = run(&[]);
        assert_eq!(c.socket_path, PathBuf::from("/tmp/azure.sock"));
        assert!(c.construct_pem_chain);
        assert!(!c.write_cert_and_key_in_separate_files);
        assert_eq!(c.default_cloud, CloudName::Public);
        assert_eq!(c.healthz, Some(default_healthz()));
        assert_eq!(c.prometheus_port, 8898);
    }

    #[test]
    fn go_flag_syntax_is_accepted() {
        let c = run(&[
            "--endpoint=unix:///provider/azure.sock",
            "-construct-pem-chain=false",
            "--write-cert-and-key-in-separate-files",
            "--healthz-port",
            "9999",
            "-healthz-path=/live",
            "--healthz-timeout=1m30s",
            "-v=5",
            "--cloud-name",
            "azureusgovernmentcloud",
            "--custom-user-agent=team-x",
            "--enable-pprof",
            "--pprof-port=6061",
            "--logtostderr",
            "--resolve=myvault.vault.azure.net=127.0.0.1:8443",
        ]);
        assert_eq!(c.socket_path, PathBuf::from("/provider/azure.sock"));
        assert!(!c.construct_pem_chain);
        assert!(c.write_cert_and_key_in_separate_files);
        let h = c.healthz.unwrap();
        assert_eq!(h.port, 9999);
        assert_eq!(h.path, "/live");
        assert_eq!(h.timeout, Duration::from_secs(90));
        assert_eq!(c.verbosity, 5);
        assert_eq!(c.default_cloud, CloudName::UsGovernment);
        assert_eq!(c.resolve_overrides.len(), 1);
        assert!(
            run(&["--custom-user-agent=team-x"])
                .user_agent()
                .ends_with(" team-x")
        );
    }

    #[test]
    fn endpoint_scheme_is_case_insensitive_and_tcp_refused() {
        assert_eq!(
            run(&["-endpoint", "UNIX:///a/b.sock"]).socket_path,
            PathBuf::from("/a/b.sock")
        );
        assert!(matches!(
            parse_args(["--endpoint=tcp://0.0.0.0:1"]),
            Err(FlagError::Invalid { .. })
        ));
    }

    #[test]
    fn parsing_stops_at_first_non_flag() {
        let c = run(&["-v=2", "positional", "--bogus"]);
        assert_eq!(c.verbosity, 2);
    }

    #[test]
    fn unknown_flags_and_bad_values_are_errors() {
        let err = parse_args(["--nope"]).unwrap_err();
        assert_eq!(err.to_string(), "flag provided but not defined: -nope");
        assert!(matches!(
            parse_args(["--healthz-port"]),
            Err(FlagError::MissingValue(_))
        ));
        assert!(matches!(
            parse_args(["--construct-pem-chain=yes"]),
            Err(FlagError::Invalid { .. })
        ));
        assert!(matches!(
            parse_args(["--cloud-name=Mars"]),
            Err(FlagError::Invalid { .. })
        ));
        assert!(matches!(
            parse_args(["---x"]),
            Err(FlagError::Invalid { .. })
        ));
    }

    #[test]
    fn version_and_help() {
        assert!(matches!(parse_args(["--version"]), Ok(Command::Version)));
        assert!(matches!(
            parse_args(["-version=false"]),
            Ok(Command::Run(_))
        ));
        assert!(matches!(parse_args(["-h"]), Ok(Command::Help)));
        assert!(usage().contains("-endpoint value"));
    }

    #[test]
    fn healthz_port_zero_disables_it() {
        assert_eq!(run(&["--healthz-port=0"]).healthz, None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "-1s", "1..5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
