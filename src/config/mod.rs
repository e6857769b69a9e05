//! Daemon configuration: the command line ([`flags`]) and the environment, validated once at start
//! into the [`Config`] the rest of the crate uses.

pub(crate) mod flags;

use std::path::PathBuf;
use std::time::Duration;

use crate::cloud::CloudName;
use crate::http::ResolveOverride;
pub use flags::{parse_args, parse_bool, parse_duration, takes_value, usage};

/// Validated daemon configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Path of the Unix socket the driver dials.
    pub socket_path: PathBuf,
    /// `--construct-pem-chain`: order PFX certificates leaf to root.
    pub construct_pem_chain: bool,
    /// `--write-cert-and-key-in-separate-files`.
    pub write_cert_and_key_in_separate_files: bool,
    /// Cloud used when a SecretProviderClass sets no `cloudName`.
    pub default_cloud: CloudName,
    /// HTTP liveness endpoint; `None` when `--healthz-port=0`.
    pub healthz: Option<Healthz>,
    /// Where metrics go.
    pub metrics: MetricsConfig,
    /// `--log-format-json`.
    pub log_format_json: bool,
    /// klog verbosity (`-v`).
    pub verbosity: u32,
    /// Appended to the User-Agent of every outgoing request.
    pub custom_user_agent: String,
    /// Identity binding's token proxy, when `--token-proxy-url` is set.
    pub token_proxy: Option<TokenProxy>,
    /// Host → address overrides for outgoing requests (`--resolve`).
    pub resolve_overrides: Vec<ResolveOverride>,
    /// Extra CA certificates (DER) trusted in addition to the system store. Not a flag: the system
    /// store (`SSL_CERT_FILE`, `SSL_CERT_DIR`) is how operators add CAs; embedders and tests set this.
    pub extra_root_certs: Vec<Vec<u8>>,
    /// Upper bound on one Mount, whatever the caller's deadline (driver v1.5 rotation sends none).
    pub mount_timeout: Duration,
    /// Key Vault requests in flight per vault, shared by every Mount (`--max-concurrent-fetches`).
    pub max_concurrent_fetches: usize,
    /// How long Key Vault answers are kept (`--object-cache-ttl`); zero: not at all.
    pub object_cache_ttl: Duration,
    /// Bytes the object cache may hold (`--object-cache-max-bytes`).
    pub object_cache_max_bytes: usize,
    /// Mounts served at once (`--max-concurrent-mounts`); more wait in line.
    pub max_concurrent_mounts: usize,
    /// Largest Mount response in bytes (`--max-response-bytes`): the driver's gRPC client refuses
    /// larger messages (4 MiB by default).
    pub max_response_bytes: usize,
    /// How long in-flight Mounts may run after SIGTERM before the daemon exits anyway.
    pub shutdown_grace: Duration,
    /// Connection timeout of outgoing HTTPS requests.
    pub connect_timeout: Duration,
    /// Upper bound of one outgoing request (headers and body).
    pub request_timeout: Duration,
    /// IMDS base URL (`AZURE_POD_IDENTITY_AUTHORITY_HOST` overrides it, as in the Azure SDKs).
    pub imds_endpoint: String,
    /// aad-pod-identity NMI base URL.
    pub nmi_endpoint: String,
    /// CA bundle trusted for the identity-binding token proxy (the cluster CA).
    pub token_proxy_ca_file: PathBuf,
    /// `AZURE_ENVIRONMENT_FILEPATH`: the Azure Stack environment file used when a
    /// SecretProviderClass sets no `cloudEnvFileName`.
    pub azure_environment_file: Option<String>,
}

impl Default for Config {
    /// The configuration of a command line without flags, in an empty environment: the defaults of
    /// the flag table plus the settings that are not flags.
    fn default() -> Self {
        let raw = flags::RawFlags::defaults();
        let env = Env::default();
        raw.clone().validate(&env).unwrap_or_else(|err| {
            // The defaults validate (a unit test checks it); were one of the rules that can fail
            // (an OTLP backend without its endpoint, a bad proxy URL) to refuse them, the plain
            // reading of the same flags stands.
            debug_assert!(false, "the default flags do not validate: {err}");
            let metrics = MetricsConfig::Prometheus {
                port: raw.prometheus_port,
            };
            raw.into_config(metrics, None, &env)
        })
    }
}

/// Connection timeout of outgoing HTTPS requests (not a flag).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of one outgoing request (not a flag).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Where IMDS listens on every Azure VM.
const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Where aad-pod-identity's NMI listens on the node.
const NMI_ENDPOINT: &str = "http://localhost:2579";
/// The cluster CA as every pod sees it: what the identity-binding token proxy's certificate chains to.
const TOKEN_PROXY_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

impl Config {
    /// Takes the environment variables that change the configuration, read once at start.
    fn apply_env(&mut self, env: &Env) {
        if let Some(host) = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") {
            self.imds_endpoint = host;
        }
        self.azure_environment_file = env.get("AZURE_ENVIRONMENT_FILEPATH");
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

/// The HTTP liveness probe settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthz {
    /// `--healthz-port`.
    pub port: u16,
    /// `--healthz-path`.
    pub path: String,
    /// `--healthz-timeout`.
    pub timeout: Duration,
}

/// `--metrics-backend` with what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsConfig {
    /// Served as Prometheus text on `:{port}/metrics` (port 0: an ephemeral port).
    Prometheus {
        /// `--prometheus-port`.
        port: u16,
    },
    /// Pushed over OTLP/gRPC.
    Otlp(OtlpConfig),
}

/// The OTLP exporter's settings, from the environment like the Go provider's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `otlpMetricsEndpointGrpc`, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// `otlpInsecureGrpc=true`: plaintext gRPC.
    pub insecure: bool,
    /// `EXTENSION_RESOURCE_ID`: the `microsoft.resourceId` resource attribute (AKS Arc extension).
    pub resource_id: Option<String>,
}

impl MetricsConfig {
    fn from_flags(backend: &str, prometheus_port: u16, env: &Env) -> Result<Self, String> {
        match backend.trim().to_ascii_lowercase().as_str() {
            "prometheus" => Ok(Self::Prometheus {
                port: prometheus_port,
            }),
            "otlp" => {
                let endpoint = env.get("otlpMetricsEndpointGrpc").ok_or(
                    "otlp needs the OTLP/gRPC collector endpoint in the environment variable \
                     otlpMetricsEndpointGrpc, e.g. http://otel-collector.monitoring:4317",
                )?;
                let insecure = match env.get("otlpInsecureGrpc") {
                    None => false,
                    Some(v) => parse_bool(&v)
                        .map_err(|_| format!("otlpInsecureGrpc={v:?} must be true or false"))?,
                };
                Ok(Self::Otlp(OtlpConfig {
                    endpoint,
                    insecure,
                    resource_id: env.get("EXTENSION_RESOURCE_ID"),
                }))
            }
            _ => Err("unknown metrics backend; use prometheus or otlp".to_owned()),
        }
    }
}

/// AKS identity binding: the token proxy, reached under its TLS server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenProxy {
    /// The proxy as an Entra authority under its TLS server name: `https://<sni-name>[:port]/`.
    pub authority: String,
    /// How the client reaches that name: the host and port of `--token-proxy-url`.
    pub alias: crate::http::HostAlias,
}

impl TokenProxy {
    /// The proxy at `url` (https), addressed as `sni_name` when given.
    pub fn new(url: &str, sni_name: &str) -> Result<Self, String> {
        let uri = http::Uri::try_from(url)
            .ok()
            .filter(|u| u.scheme_str() == Some("https"))
            .ok_or("must be an https:// URL such as https://kubernetes.default.svc")?;
        let host = uri
            .host()
            .ok_or("must be an https:// URL with a host, such as https://kubernetes.default.svc")?
            .to_owned();
        let port = uri.port_u16();
        let sni = match sni_name {
            "" => host.clone(),
            sni => sni.to_owned(),
        };
        let authority = match port {
            Some(p) => format!("https://{sni}:{p}/"),
            None => format!("https://{sni}/"),
        };
        Ok(Self {
            authority,
            alias: crate::http::HostAlias {
                name: sni,
                target_host: host,
                port: port.unwrap_or(443),
            },
        })
    }
}

/// The environment variables the configuration reads, captured once (tests pass their own).
#[derive(Clone, Debug, Default)]
pub struct Env(std::collections::BTreeMap<String, String>);

impl Env {
    /// The variables of this process that the configuration reads.
    pub fn from_process() -> Self {
        const NAMES: &[&str] = &[
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "AZURE_ENVIRONMENT_FILEPATH",
            "otlpMetricsEndpointGrpc",
            "otlpInsecureGrpc",
            "EXTENSION_RESOURCE_ID",
        ];
        NAMES
            .iter()
            .filter_map(|name| Some((*name, std::env::var(name).ok()?)))
            .collect()
    }

    /// A variable's value, trimmed; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// What the daemon's command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the daemon.
    Run(Box<Config>),
    /// `--version`.
    Version,
    /// `-h`.
    Help,
}

/// A command-line error; `main` prints it with the usage and exits 2, like Go's `flag`.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// A flag that is not in the table.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A value flag at the end of the arguments.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A value its flag does not accept.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    Invalid {
        /// The flag's name.
        flag: String,
        /// The value as given.
        value: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// An argument that is not a flag, after the flags (the daemon takes no positional argument;
    /// Go's flag package would silently ignore it and every flag after it).
    #[error(
        "unexpected argument {0:?}: the daemon takes flags only (a subcommand goes first: check, \
         mount, demo, emulator)"
    )]
    Positional(String),
}

/// The HTTP clients' settings a daemon configuration selects: system roots plus the configured
/// extra ones, and the cluster CA when identity binding is on.
impl From<&Config> for crate::http::HttpSettings {
    fn from(config: &Config) -> Self {
        let mut extra_roots: Vec<rustls::pki_types::CertificateDer<'static>> = config
            .extra_root_certs
            .iter()
            .map(|der| rustls::pki_types::CertificateDer::from(der.clone()))
            .collect();
        if config.token_proxy.is_some() {
            extra_roots.extend(crate::http::read_ca_file(&config.token_proxy_ca_file));
        }
        Self {
            user_agent: config.user_agent(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            resolve_overrides: config.resolve_overrides.clone(),
            extra_roots,
            aliases: config.token_proxy.iter().map(|p| p.alias.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, FlagError> {
        let env: Env = env.iter().copied().collect();
        match parse_args(args.iter().copied(), &env)? {
            Command::Run(c) => Ok(*c),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn environment_is_read_into_the_config() {
        let c = with_env(
            &[],
            &[
                ("AZURE_POD_IDENTITY_AUTHORITY_HOST", " http://127.0.0.1:1 "),
                ("AZURE_ENVIRONMENT_FILEPATH", "/etc/stack.json"),
            ],
        )
        .unwrap();
        assert_eq!(c.imds_endpoint, "http://127.0.0.1:1");
        assert_eq!(c.azure_environment_file.as_deref(), Some("/etc/stack.json"));
    }

    #[test]
    fn metrics_backend_is_case_insensitive_and_otlp_needs_an_endpoint() {
        let c = with_env(
            &["--metrics-backend=PROMETHEUS", "--prometheus-port=9100"],
            &[],
        )
        .unwrap();
        assert_eq!(c.metrics, MetricsConfig::Prometheus { port: 9100 });
        let err = with_env(&["--metrics-backend=otlp"], &[]).unwrap_err();
        assert!(
            err.to_string().contains("-metrics-backend")
                && err.to_string().contains("otlpMetricsEndpointGrpc"),
            "{err}"
        );
        let c = with_env(
            &["--metrics-backend=OTLP"],
            &[
                ("otlpMetricsEndpointGrpc", "http://collector:4317"),
                ("otlpInsecureGrpc", "true"),
                ("EXTENSION_RESOURCE_ID", "/subscriptions/x"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.metrics,
            MetricsConfig::Otlp(OtlpConfig {
                endpoint: "http://collector:4317".into(),
                insecure: true,
                resource_id: Some("/subscriptions/x".into()),
            })
        );
        let err = with_env(&["--metrics-backend=statsd"], &[]).unwrap_err();
        assert!(err.to_string().contains("-metrics-backend"), "{err}");
    }

    #[test]
    fn token_proxy_is_typed() {
        let c = with_env(
            &[
                "--token-proxy-url=https://10.0.0.1:8443",
                "--sni-name=proxy.aks.internal",
            ],
            &[],
        )
        .unwrap();
        let proxy = c.token_proxy.unwrap();
        assert_eq!(proxy.authority, "https://proxy.aks.internal:8443/");
        assert_eq!(proxy.alias.name, "proxy.aks.internal");
        assert_eq!(proxy.alias.target_host, "10.0.0.1");
        assert_eq!(proxy.alias.port, 8443);
        assert!(with_env(&["--token-proxy-url=http://x"], &[]).is_err());
        let plain = with_env(&["--token-proxy-url=https://kubernetes.default.svc"], &[])
            .unwrap()
            .token_proxy
            .unwrap();
        assert_eq!(plain.authority, "https://kubernetes.default.svc/");
        assert_eq!(plain.alias.port, 443);
    }
}
