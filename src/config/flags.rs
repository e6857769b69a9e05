//! The daemon's command line, parsed the way Go's `flag` package does.
//!
//! Existing DaemonSets and the Go provider's Helm chart pass these flags, so every one of them is
//! accepted with Go's syntax: `-name` and `--name` are the same, values come as `--name=value` or
//! `--name value`, boolean flags may be bare, and parsing stops at the first non-flag argument or
//! `--`. klog's flags are accepted too (`-v=N` maps onto our log level; the others are ignored).
//!
//! [`FLAGS`] is the one table of flags: parsing looks a flag up there and calls its setter, the usage
//! text is printed from it, and the defaults are its `default` strings run through the same setters,
//! so a flag cannot be listed without being handled, nor documented with a default it does not have.
//! Setters only parse their own value into [`RawFlags`]; rules that involve several flags or the
//! environment are checked once, in [`RawFlags::validate`].

use std::path::PathBuf;
use std::time::Duration;

use super::{Command, Config, Env, FlagError};
use crate::cloud::CloudName;
use crate::http::ResolveOverride;

/// Whether a flag takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// May be bare (`--flag`) or `--flag=true|false`.
    Bool,
    /// Needs `--flag=value` or `--flag value`.
    Value,
}

/// Parses a flag's value into the raw configuration.
type Setter = fn(&mut RawFlags, &str) -> Result<(), String>;

/// One command-line flag.
struct Flag {
    name: &'static str,
    kind: Kind,
    /// The default, as a value the setter accepts ("" = no default); also shown in the usage text.
    default: &'static str,
    help: &'static str,
    set: Setter,
}

/// The flags as given, each parsed into its type; [`RawFlags::validate`] turns them into a [`Config`].
#[derive(Clone, Debug, Default)]
pub(crate) struct RawFlags {
    pub(crate) socket_path: PathBuf,
    pub(crate) construct_pem_chain: bool,
    pub(crate) write_cert_and_key_in_separate_files: bool,
    pub(crate) cloud_name: CloudName,
    pub(crate) healthz_port: u16,
    pub(crate) healthz_path: String,
    pub(crate) healthz_timeout: Duration,
    pub(crate) metrics_backend: String,
    pub(crate) prometheus_port: u16,
    pub(crate) log_format_json: bool,
    pub(crate) verbosity: u32,
    pub(crate) custom_user_agent: String,
    pub(crate) token_proxy_url: String,
    pub(crate) sni_name: String,
    pub(crate) resolve: Vec<ResolveOverride>,
    pub(crate) mount_timeout: Duration,
    pub(crate) max_concurrent_fetches: usize,
    pub(crate) object_cache_ttl: Duration,
    pub(crate) object_cache_max_bytes: usize,
    pub(crate) max_concurrent_mounts: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) version: bool,
}

/// Every flag we accept, in usage order.
const FLAGS: &[Flag] = &[
    Flag {
        name: "endpoint",
        kind: Kind::Value,
        default: "unix:///tmp/azure.sock",
        help: "gRPC endpoint the CSI driver dials: unix:///path/to/azure.sock",
        set: |r, v| {
            r.socket_path = parse_endpoint(v)?;
            Ok(())
        },
    },
    Flag {
        name: "construct-pem-chain",
        kind: Kind::Bool,
        default: "true",
        help: "order the certificates of a PFX leaf to root",
        set: |r, v| {
            r.construct_pem_chain = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "write-cert-and-key-in-separate-files",
        kind: Kind::Bool,
        default: "false",
        help: "also write <file>.crt and <file>.key for certificate-backed secrets",
        set: |r, v| {
            r.write_cert_and_key_in_separate_files = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "cloud-name",
        kind: Kind::Value,
        default: "AzurePublicCloud",
        help: "cloud used when a SecretProviderClass sets no cloudName",
        set: |r, v| {
            r.cloud_name = v.parse()?;
            Ok(())
        },
    },
    Flag {
        name: "healthz-port",
        kind: Kind::Value,
        default: "8989",
        help: "port of the HTTP liveness endpoint; 0 disables it",
        set: |r, v| {
            r.healthz_port = parse_port(v)?;
            Ok(())
        },
    },
    Flag {
        name: "healthz-path",
        kind: Kind::Value,
        default: "/healthz",
        help: "path of the HTTP liveness endpoint",
        set: |r, v| {
            if !v.starts_with('/') {
                return Err("must start with /, e.g. /healthz".to_owned());
            }
            r.healthz_path = v.to_owned();
            Ok(())
        },
    },
    Flag {
        name: "healthz-timeout",
        kind: Kind::Value,
        default: "5s",
        help: "timeout of the liveness check against the provider's own socket",
        set: |r, v| {
            r.healthz_timeout = parse_positive_duration(v)?;
            Ok(())
        },
    },
    Flag {
        name: "metrics-backend",
        kind: Kind::Value,
        default: "Prometheus",
        help: "metrics backend: prometheus (served on -prometheus-port) or otlp (pushed to \
               $otlpMetricsEndpointGrpc)",
        set: |r, v| {
            r.metrics_backend = v.to_owned();
            Ok(())
        },
    },
    Flag {
        name: "prometheus-port",
        kind: Kind::Value,
        default: "8898",
        help: "port of the Prometheus /metrics endpoint (all interfaces)",
        set: |r, v| {
            r.prometheus_port = parse_port(v)?;
            Ok(())
        },
    },
    Flag {
        name: "log-format-json",
        kind: Kind::Bool,
        default: "false",
        help: "log one JSON object per line",
        set: |r, v| {
            r.log_format_json = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "enable-pprof",
        kind: Kind::Bool,
        default: "false",
        help: "accepted for compatibility; no profiling server is started",
        set: ignore_bool,
    },
    Flag {
        name: "pprof-port",
        kind: Kind::Value,
        default: "6060",
        help: "accepted for compatibility",
        set: |_, v| parse_port(v).map(drop),
    },
    Flag {
        name: "custom-user-agent",
        kind: Kind::Value,
        default: "",
        help: "appended to the User-Agent of requests to Entra ID and Key Vault",
        set: |r, v| {
            r.custom_user_agent = v.trim().to_owned();
            Ok(())
        },
    },
    Flag {
        name: "token-proxy-url",
        kind: Kind::Value,
        default: "",
        help: "identity binding: URL of the AKS token proxy, e.g. https://kubernetes.default.svc",
        set: |r, v| {
            r.token_proxy_url = v.trim().to_owned();
            Ok(())
        },
    },
    Flag {
        name: "sni-name",
        kind: Kind::Value,
        default: "",
        help: "identity binding: TLS server name of the token proxy",
        set: |r, v| {
            r.sni_name = v.trim().to_owned();
            Ok(())
        },
    },
    Flag {
        name: "resolve",
        kind: Kind::Value,
        default: "",
        help: "HOST=ADDR:PORT: connect to ADDR:PORT for HOST (repeatable; *.suffix matches subdomains)",
        set: |r, v| {
            r.resolve.push(v.parse()?);
            Ok(())
        },
    },
    Flag {
        name: "mount-timeout",
        kind: Kind::Value,
        default: "90s",
        help: "upper bound on one Mount (driver v1.5 rotation sends no deadline)",
        set: |r, v| {
            r.mount_timeout = parse_positive_duration(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-concurrent-fetches",
        kind: Kind::Value,
        // 64: a Mount of up to 64 objects goes out in one round trip (BENCHMARKS.md, "The 64-object
        // Mount"), far below what Key Vault allows one vault (4,000 reads per 10 s).
        default: "64",
        help: "Key Vault requests in flight per vault, shared by all Mounts (1-256)",
        set: |r, v| {
            r.max_concurrent_fetches = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or("must be a whole number from 1 to 256")?;
            Ok(())
        },
    },
    Flag {
        name: "object-cache-ttl",
        kind: Kind::Value,
        default: "0s",
        help: "keep Key Vault answers this long per identity (0s: off, as the Go provider); a new \
               version is then picked up up to this much later",
        set: |r, v| {
            r.object_cache_ttl = parse_duration(v)?;
            Ok(())
        },
    },
    Flag {
        name: "object-cache-max-bytes",
        kind: Kind::Value,
        default: "16Mi",
        help: "memory the object cache may use: bytes, or with a Ki, Mi or Gi suffix",
        set: |r, v| {
            r.object_cache_max_bytes = parse_size(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-concurrent-mounts",
        kind: Kind::Value,
        default: "64",
        help: "Mounts served at once; more wait in line until their deadline (1-4096)",
        set: |r, v| {
            r.max_concurrent_mounts = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=4096).contains(n))
                .ok_or("must be a whole number from 1 to 4096")?;
            Ok(())
        },
    },
    Flag {
        name: "max-response-bytes",
        kind: Kind::Value,
        default: "4Mi",
        help: "largest Mount response; keep it at or below the driver's --max-call-recv-msg-size",
        set: |r, v| {
            let n = parse_size(v)?;
            if n < 64 << 10 {
                return Err("must be at least 64Ki".to_owned());
            }
            r.max_response_bytes = n;
            Ok(())
        },
    },
    Flag {
        name: "shutdown-grace-period",
        kind: Kind::Value,
        default: "20s",
        help: "time in-flight Mounts get after SIGTERM",
        set: |r, v| {
            r.shutdown_grace = parse_duration(v)?;
            Ok(())
        },
    },
    Flag {
        name: "version",
        kind: Kind::Bool,
        default: "",
        help: "print the version as JSON and exit",
        set: |r, v| {
            r.version = parse_bool(v)?;
            Ok(())
        },
    },
    Flag {
        name: "v",
        kind: Kind::Value,
        default: "0",
        help: "klog verbosity: 0 info, 1-4 debug, 5 and above trace",
        set: |r, v| {
            r.verbosity = v.parse::<u32>().map_err(|_| "must be a whole number")?;
            Ok(())
        },
    },
    // klog's flags, which the Go provider registers: accepted so that existing manifests work.
    Flag {
        name: "vmodule",
        kind: Kind::Value,
        default: "",
        help: "klog: ignored",
        set: ignore_value,
    },
    Flag {
        name: "logtostderr",
        kind: Kind::Bool,
        default: "",
        help: "klog: ignored (logs always go to stderr)",
        set: ignore_bool,
    },
    Flag {
        name: "alsologtostderr",
        kind: Kind::Bool,
        default: "",
        help: "klog: ignored",
        set: ignore_bool,
    },
    Flag {
        name: "log_dir",
        kind: Kind::Value,
        default: "",
        help: "klog: ignored",
        set: ignore_value,
    },
    Flag {
        name: "log_file",
        kind: Kind::Value,
        default: "",
        help: "klog: ignored",
        set: ignore_value,
    },
    Flag {
        name: "log_file_max_size",
        kind: Kind::Value,
        default: "",
        help: "klog: ignored",
        set: ignore_value,
    },
    Flag {
        name: "skip_headers",
        kind: Kind::Bool,
        default: "",
        help: "klog: ignored",
        set: ignore_bool,
    },
    Flag {
        name: "skip_log_headers",
        kind: Kind::Bool,
        default: "",
        help: "klog: ignored",
        set: ignore_bool,
    },
    Flag {
        name: "stderrthreshold",
        kind: Kind::Value,
        default: "",
        help: "klog: ignored",
        set: ignore_value,
    },
    Flag {
        name: "one_output",
        kind: Kind::Bool,
        default: "",
        help: "klog: ignored",
        set: ignore_bool,
    },
    Flag {
        name: "add_dir_header",
        kind: Kind::Bool,
        default: "",
        help: "klog: ignored",
        set: ignore_bool,
    },
    Flag {
        name: "log_backtrace_at",
        kind: Kind::Value,
        default: "",
        help: "klog: ignored",
        set: ignore_value,
    },
];

fn ignore_bool(_: &mut RawFlags, value: &str) -> Result<(), String> {
    parse_bool(value).map(drop)
}

fn ignore_value(_: &mut RawFlags, _: &str) -> Result<(), String> {
    Ok(())
}

impl RawFlags {
    /// Every flag at its default, through the same setters a command line goes through.
    pub(crate) fn defaults() -> Self {
        let mut raw = Self::default();
        for flag in FLAGS.iter().filter(|f| !f.default.is_empty()) {
            // The defaults are constants checked by a unit test; a bad one would be a build bug.
            if let Err(reason) = (flag.set)(&mut raw, flag.default) {
                debug_assert!(false, "default of -{} is invalid: {reason}", flag.name);
            }
        }
        raw
    }

    /// Cross-flag and environment rules; the result is what the daemon runs with.
    pub(crate) fn validate(self, env: &Env) -> Result<Config, FlagError> {
        let invalid = |flag: &str, value: &str, reason: String| FlagError::Invalid {
            flag: flag.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let metrics =
            super::MetricsConfig::from_flags(&self.metrics_backend, self.prometheus_port, env)
                .map_err(|reason| invalid("metrics-backend", &self.metrics_backend, reason))?;
        let token_proxy = match self.token_proxy_url.as_str() {
            "" => None,
            url => Some(
                super::TokenProxy::new(url, &self.sni_name)
                    .map_err(|reason| invalid("token-proxy-url", url, reason))?,
            ),
        };
        Ok(self.into_config(metrics, token_proxy, env))
    }

    /// The configuration these flags give, once the rules that can fail have given `metrics` and
    /// `token_proxy`: the settings that are not flags take their fixed values, then the
    /// environment's.
    pub(super) fn into_config(
        self,
        metrics: super::MetricsConfig,
        token_proxy: Option<super::TokenProxy>,
        env: &Env,
    ) -> Config {
        let healthz = (self.healthz_port != 0).then(|| super::Healthz {
            port: self.healthz_port,
            path: self.healthz_path.clone(),
            timeout: self.healthz_timeout,
        });
        let mut config = Config {
            socket_path: self.socket_path,
            construct_pem_chain: self.construct_pem_chain,
            write_cert_and_key_in_separate_files: self.write_cert_and_key_in_separate_files,
            default_cloud: self.cloud_name,
            healthz,
            metrics,
            log_format_json: self.log_format_json,
            verbosity: self.verbosity,
            custom_user_agent: self.custom_user_agent,
            token_proxy,
            resolve_overrides: self.resolve,
            extra_root_certs: Vec::new(),
            mount_timeout: self.mount_timeout,
            max_concurrent_fetches: self.max_concurrent_fetches,
            object_cache_ttl: self.object_cache_ttl,
            object_cache_max_bytes: self.object_cache_max_bytes,
            max_concurrent_mounts: self.max_concurrent_mounts,
            max_response_bytes: self.max_response_bytes,
            shutdown_grace: self.shutdown_grace,
            connect_timeout: super::CONNECT_TIMEOUT,
            request_timeout: super::REQUEST_TIMEOUT,
            imds_endpoint: super::IMDS_ENDPOINT.to_owned(),
            nmi_endpoint: super::NMI_ENDPOINT.to_owned(),
            token_proxy_ca_file: PathBuf::from(super::TOKEN_PROXY_CA_FILE),
            azure_environment_file: None,
        };
        config.apply_env(env);
        config
    }
}

/// The usage text printed with `-h` and after a flag error.
pub fn usage() -> String {
    let mut out = String::from(
        "Usage of akv-csi-provider:\n  akv-csi-provider [flags]            run the provider daemon\n",
    );
    for flag in FLAGS {
        let arg = if flag.kind == Kind::Value {
            " value"
        } else {
            ""
        };
        out.push_str(&format!("  -{}{arg}\n    \t{}", flag.name, flag.help));
        if !flag.default.is_empty() {
            out.push_str(&format!(" (default {})", flag.default));
        }
        out.push('\n');
    }
    out
}

/// Whether the daemon flag `name` (without dashes) takes a separate value when given without `=`:
/// `Some(true)` for a value flag, `Some(false)` for a boolean, `None` for no such flag. Lets `mount`
/// pass daemon flags through in either form.
pub fn takes_value(name: &str) -> Option<bool> {
    FLAGS
        .iter()
        .find(|f| f.name == name)
        .map(|f| matches!(f.kind, Kind::Value))
}

/// Parses the daemon's arguments (after the program name); `env` supplies the environment
/// variables the configuration reads.
pub fn parse_args<I, S>(args: I, env: &Env) -> Result<Command, FlagError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut raw = RawFlags::defaults();
    while let Some(arg) = args.next() {
        if arg == "--" {
            // Go's end of flags: what follows would be positional, and the daemon takes none.
            return match args.next() {
                Some(extra) => Err(FlagError::Positional(extra)),
                None => break,
            };
        }
        // Go stops at the first non-flag argument and ignores the rest, flags included; an
        // argument the daemon cannot use is refused instead ("-" alone is a non-flag too).
        let Some(stripped) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            return Err(FlagError::Positional(arg));
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
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            return Ok(Command::Help);
        }
        let flag = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| FlagError::Unknown(name.to_owned()))?;
        let value = match (flag.kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Value, None) => args
                .next()
                .ok_or_else(|| FlagError::MissingValue(name.to_owned()))?,
        };
        (flag.set)(&mut raw, &value).map_err(|reason| FlagError::Invalid {
            flag: name.to_owned(),
            value: value.clone(),
            reason,
        })?;
    }
    if raw.version {
        return Ok(Command::Version);
    }
    Ok(Command::Run(Box::new(raw.validate(env)?)))
}

/// `unix:///provider/azure.sock` → `/provider/azure.sock`. The scheme is case-insensitive; a bare
/// path is accepted as well. TCP endpoints are refused: the driver only dials Unix sockets.
fn parse_endpoint(value: &str) -> Result<PathBuf, String> {
    let lower = value.to_ascii_lowercase();
    let path = if lower.starts_with("unix://") {
        &value["unix://".len()..]
    } else if lower.starts_with("tcp://") {
        return Err(
            "TCP endpoints are not supported: the CSI driver only dials Unix sockets; use \
                    unix:///provider/azure.sock"
                .to_owned(),
        );
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

/// A size in bytes: `1048576`, `512Ki`, `16Mi`, `1Gi` (at most 4 GiB).
fn parse_size(value: &str) -> Result<usize, String> {
    let err = || format!("{value:?} is not a size such as 16Mi, 512Ki or 1048576");
    let (digits, scale) = match value.trim() {
        v if v.ends_with("Ki") => (&v[..v.len() - 2], 1u64 << 10),
        v if v.ends_with("Mi") => (&v[..v.len() - 2], 1 << 20),
        v if v.ends_with("Gi") => (&v[..v.len() - 2], 1 << 30),
        v => (v, 1),
    };
    let n: u64 = digits.parse().map_err(|_| err())?;
    n.checked_mul(scale)
        .filter(|b| *b <= 4 << 30)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(err)
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
    use crate::config::{Healthz, MetricsConfig};

    fn no_env() -> Env {
        Env::default()
    }

    fn run(args: &[&str]) -> Config {
        match parse_args(args.iter().copied(), &no_env()) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn every_default_is_accepted_by_its_own_setter() {
        for flag in FLAGS.iter().filter(|f| !f.default.is_empty()) {
            let mut raw = RawFlags::default();
            assert_eq!((flag.set)(&mut raw, flag.default), Ok(()), "-{}", flag.name);
        }
        let names: std::collections::BTreeSet<_> = FLAGS.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FLAGS.len(), "a flag is listed twice");
    }

    #[test]
    fn defaults_match_the_go_provider() {
        let c = run(&[]);
        assert_eq!(c.socket_path, PathBuf::from("/tmp/azure.sock"));
        assert!(c.construct_pem_chain);
        assert!(!c.write_cert_and_key_in_separate_files);
        assert_eq!(c.default_cloud, CloudName::Public);
        assert_eq!(
            c.healthz,
            Some(Healthz {
                port: 8989,
                path: "/healthz".into(),
                timeout: Duration::from_secs(5),
            })
        );
        assert_eq!(c.metrics, MetricsConfig::Prometheus { port: 8898 });
        assert_eq!(c.mount_timeout, Duration::from_secs(90));
        assert_eq!(c.max_concurrent_fetches, 64);
        assert_eq!(c.max_concurrent_mounts, 64);
        assert_eq!(c.max_response_bytes, 4 << 20);
        assert_eq!(c.object_cache_max_bytes, 16 << 20);
        assert_eq!(c.shutdown_grace, Duration::from_secs(20));
        // The settings that are not flags.
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.imds_endpoint, "http://169.254.169.254");
        assert_eq!(c.nmi_endpoint, "http://localhost:2579");
        assert_eq!(
            c.token_proxy_ca_file,
            PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        );
        assert_eq!(c.azure_environment_file, None);
        // `Config::default()` is the same parse (its fallback, which would break this under
        // debug assertions, is never taken).
        assert_eq!(c, Config::default());
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
        let h = c.healthz.clone().unwrap();
        assert_eq!(h.port, 9999);
        assert_eq!(h.path, "/live");
        assert_eq!(h.timeout, Duration::from_secs(90));
        assert_eq!(c.verbosity, 5);
        assert_eq!(c.default_cloud, CloudName::UsGovernment);
        assert_eq!(c.resolve_overrides.len(), 1);
        assert!(c.user_agent().ends_with(" team-x"));
    }

    #[test]
    fn endpoint_scheme_is_case_insensitive_and_tcp_refused() {
        assert_eq!(
            run(&["-endpoint", "UNIX:///a/b.sock"]).socket_path,
            PathBuf::from("/a/b.sock")
        );
        assert!(matches!(
            parse_args(["--endpoint=tcp://0.0.0.0:1"], &no_env()),
            Err(FlagError::Invalid { .. })
        ));
    }

    /// Regression: Go's flag package stops at the first non-flag argument and ignores the rest,
    /// so `--endpoint=… stray --healthz-port=0` silently dropped the port; a stray argument is
    /// now an error naming it.
    #[test]
    fn a_positional_argument_is_refused_not_the_end_of_flags() {
        for args in [
            &["-v=2", "positional", "--bogus"][..],
            &["-v=2", "-", "--healthz-port=0"],
            &["-v=2", "--", "extra"],
        ] {
            let err = parse_args(args.iter().copied(), &no_env()).unwrap_err();
            assert!(matches!(err, FlagError::Positional(_)), "{args:?}: {err}");
            assert!(
                err.to_string().contains("the daemon takes flags only"),
                "{err}"
            );
        }
        assert_eq!(run(&["-v=2", "--"]).verbosity, 2);
    }

    #[test]
    fn unknown_flags_and_bad_values_are_errors() {
        let err = parse_args(["--nope"], &no_env()).unwrap_err();
        assert_eq!(err.to_string(), "flag provided but not defined: -nope");
        assert!(matches!(
            parse_args(["--healthz-port"], &no_env()),
            Err(FlagError::MissingValue(_))
        ));
        for bad in [
            "--construct-pem-chain=yes",
            "--cloud-name=Mars",
            "---x",
            "--healthz-path=healthz",
            "--max-concurrent-fetches=0",
        ] {
            assert!(
                matches!(parse_args([bad], &no_env()), Err(FlagError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn version_and_help() {
        assert!(matches!(
            parse_args(["--version"], &no_env()),
            Ok(Command::Version)
        ));
        assert!(matches!(
            parse_args(["-version=false"], &no_env()),
            Ok(Command::Run(_))
        ));
        assert!(matches!(parse_args(["-h"], &no_env()), Ok(Command::Help)));
        let usage = usage();
        assert!(usage.contains("-endpoint value"), "{usage}");
        assert!(
            usage.contains("(default unix:///tmp/azure.sock)"),
            "{usage}"
        );
        for flag in FLAGS {
            assert!(
                usage.contains(&format!("  -{}", flag.name)),
                "{}",
                flag.name
            );
        }
    }

    #[test]
    fn healthz_port_zero_disables_it_and_later_flags_are_still_checked() {
        assert_eq!(run(&["--healthz-port=0"]).healthz, None);
        // Regression: a --healthz-path after --healthz-port=0 used to be silently ignored; it is
        // still validated, and a later non-zero port brings the endpoint back with that path.
        assert!(parse_args(["--healthz-port=0", "--healthz-path=x"], &no_env()).is_err());
        let c = run(&[
            "--healthz-port=0",
            "--healthz-path=/live",
            "--healthz-port=1234",
        ]);
        assert_eq!(
            c.healthz.map(|h| (h.port, h.path)),
            Some((1234, "/live".into()))
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16Mi"), Ok(16 << 20));
        assert_eq!(parse_size("512Ki"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        for bad in ["", "1.5Mi", "16MB", "-1", "5Gi"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        let c = run(&["--object-cache-ttl=5m", "--object-cache-max-bytes=1Mi"]);
        assert_eq!(c.object_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.object_cache_max_bytes, 1 << 20);
        assert_eq!(run(&[]).object_cache_ttl, Duration::ZERO);
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
