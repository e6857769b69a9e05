//! The provider's metrics: every instrument defined once, recorded into the backend
//! `--metrics-backend` selects — a `prometheus-client` registry served on `--prometheus-port`, or
//! the OpenTelemetry SDK pushing over OTLP/gRPC with delta temporality.
//!
//! The Go provider's two histograms keep their names, label keys and buckets so that existing
//! dashboards and alerts keep working: `keyvault_request` and `grpc_request`. Their `error` and
//! `grpc_message` labels differ on purpose: they hold a bounded class ([`ErrorClass`]), never error
//! text, whose unbounded values are what makes the Go provider's series count explode. Our own
//! instruments are prefixed `akv_`. No label ever holds a pod name, a token or secret material; the
//! only names in labels are the vault and object names an operator configured.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use opentelemetry::metrics::{MeterProvider as _, UpDownCounter as OtelUpDown};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::{MetricsConfig, OtlpConfig};

/// The Go provider's histogram buckets (seconds).
pub const BUCKETS: [f64; 14] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
];
/// `provider` label of the Go-compatible histograms.
const PROVIDER: &str = "azure";
/// `os_type` label of the Go-compatible histograms.
const OS_TYPE: &str = "linux";

/// Why something failed, as a bounded set for labels and log fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The SecretProviderClass or request is invalid.
    Invalid,
    /// Entra ID, IMDS or Key Vault refused the credential or token.
    Unauthenticated,
    /// The identity lacks a role or access policy, or the object is disabled.
    Forbidden,
    /// The vault, object or version does not exist.
    NotFound,
    /// 429: the vault or Entra is throttling.
    Throttled,
    /// 5xx from Key Vault, Entra or IMDS.
    ServerError,
    /// The peer could not be reached or the connection failed.
    Transport,
    /// A host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// A deadline passed.
    Timeout,
    /// The content could not be converted (PFX, JWK, encoding) or is too large.
    Conversion,
    /// The provider lacks a setting the mode needs.
    Configuration,
    /// The caller went away before the work finished.
    Cancelled,
}

impl ErrorClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Transport => "transport",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Conversion => "conversion",
            Self::Configuration => "configuration",
            Self::Cancelled => "cancelled",
        }
    }

    /// The class of an HTTP error status.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 => Self::Unauthenticated,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            429 => Self::Throttled,
            500.. => Self::ServerError,
            _ => Self::Invalid,
        }
    }

    /// Every class, for documentation and tests.
    pub const ALL: [Self; 13] = [
        Self::Invalid,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Throttled,
        Self::ServerError,
        Self::Transport,
        Self::Dns,
        Self::Tls,
        Self::Timeout,
        Self::Conversion,
        Self::Configuration,
        Self::Cancelled,
    ];
}

type Labels = Vec<(&'static str, String)>;
/// Histograms built with the Go buckets.
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn otel_attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// A counter family in whichever backend is active.
struct CounterVec {
    prom: Option<Family<Labels, Counter>>,
    otel: Option<OtelCounter<u64>>,
}

impl CounterVec {
    fn add(&self, labels: Labels, n: u64) {
        if let Some(otel) = &self.otel {
            otel.add(n, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).inc_by(n);
        }
    }
}

/// A counter of (fractional) seconds.
struct SecondsCounterVec {
    prom: Option<Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>>,
    otel: Option<OtelCounter<f64>>,
}

impl SecondsCounterVec {
    fn add(&self, labels: Labels, seconds: f64) {
        if let Some(otel) = &self.otel {
            otel.add(seconds, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).inc_by(seconds);
        }
    }
}

/// A histogram family (seconds, the Go buckets).
struct HistogramVec {
    prom: Option<HistogramFamily>,
    otel: Option<OtelHistogram<f64>>,
}

impl HistogramVec {
    fn observe(&self, labels: Labels, seconds: f64) {
        if let Some(otel) = &self.otel {
            otel.record(seconds, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).observe(seconds);
        }
    }
}

/// A value that goes up and down.
struct GaugeVec {
    prom: Option<Family<Labels, Gauge>>,
    otel: Option<OtelUpDown<i64>>,
}

impl GaugeVec {
    fn add(&self, labels: Labels, delta: i64) {
        if let Some(otel) = &self.otel {
            otel.add(delta, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).inc_by(delta);
        }
    }
}

fn go_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Registers instruments in one backend.
enum Builder<'a> {
    Prometheus(&'a mut Registry),
    Otel(&'a Meter),
    /// Instruments that record nowhere (tools that run one Mount, unit tests).
    None,
}

impl Builder<'_> {
    fn counter(&mut self, name: &'static str, help: &'static str) -> CounterVec {
        match self {
            Self::Prometheus(registry) => {
                let family = Family::default();
                // prometheus-client appends `_total` to counters itself.
                registry.register(name.trim_end_matches("_total"), help, family.clone());
                CounterVec {
                    prom: Some(family),
                    otel: None,
                }
            }
            Self::Otel(meter) => CounterVec {
                prom: None,
                otel: Some(meter.u64_counter(name).with_description(help).build()),
            },
            Self::None => CounterVec {
                prom: None,
                otel: None,
            },
        }
    }

    fn seconds_counter(&mut self, name: &'static str, help: &'static str) -> SecondsCounterVec {
        match self {
            Self::Prometheus(registry) => {
                let family = Family::default();
                registry.register(name.trim_end_matches("_total"), help, family.clone());
                SecondsCounterVec {
                    prom: Some(family),
                    otel: None,
                }
            }
            Self::Otel(meter) => SecondsCounterVec {
                prom: None,
                otel: Some(
                    meter
                        .f64_counter(name)
                        .with_description(help)
                        .with_unit("s")
                        .build(),
                ),
            },
            Self::None => SecondsCounterVec {
                prom: None,
                otel: None,
            },
        }
    }

    fn histogram(&mut self, name: &'static str, help: &'static str) -> HistogramVec {
        match self {
            Self::Prometheus(registry) => {
                let family = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
                    go_histogram,
                );
                registry.register(name, help, family.clone());
                HistogramVec {
                    prom: Some(family),
                    otel: None,
                }
            }
            Self::Otel(meter) => HistogramVec {
                prom: None,
                otel: Some(
                    meter
                        .f64_histogram(name)
                        .with_description(help)
                        .with_unit("s")
                        .with_boundaries(BUCKETS.to_vec())
                        .build(),
                ),
            },
            Self::None => HistogramVec {
                prom: None,
                otel: None,
            },
        }
    }

    fn gauge(&mut self, name: &'static str, help: &'static str) -> GaugeVec {
        match self {
            Self::Prometheus(registry) => {
                let family = Family::default();
                registry.register(name, help, family.clone());
                GaugeVec {
                    prom: Some(family),
                    otel: None,
                }
            }
            Self::Otel(meter) => GaugeVec {
                prom: None,
                otel: Some(
                    meter
                        .i64_up_down_counter(name)
                        .with_description(help)
                        .build(),
                ),
            },
            Self::None => GaugeVec {
                prom: None,
                otel: None,
            },
        }
    }
}

/// Token cache events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// Served from the cache.
    Hit,
    /// Nothing cached: a token request was made.
    Miss,
    /// Waited for another Mount's in-flight request for the same key.
    Coalesced,
    /// A cached token past its refresh point was renewed.
    Refresh,
    /// A refresh failed and the still-valid current token was served.
    Stale,
    /// Key Vault refused a cached token (HTTP 401): it was dropped and a new one requested.
    Replaced,
}

impl CacheEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
            Self::Refresh => "refresh",
            Self::Stale => "stale",
            Self::Replaced => "replaced",
        }
    }
}

struct Instruments {
    keyvault_request: HistogramVec,
    grpc_request: HistogramVec,
    token_requests: CounterVec,
    token_cache: CounterVec,
    object_cache: CounterVec,
    object_cache_entries: GaugeVec,
    object_cache_bytes: GaugeVec,
    keyvault_throttled: CounterVec,
    throttle_wait: SecondsCounterVec,
    mounts_in_flight: GaugeVec,
    mounts_queued: GaugeVec,
    mount_duration: HistogramVec,
    authority_rewritten: CounterVec,
    build_info: GaugeVec,
}

impl Instruments {
    fn new(mut b: Builder<'_>) -> Self {
        let instruments = Self {
            keyvault_request: b.histogram(
                "keyvault_request",
                "Duration of Key Vault requests in seconds (retries included), as the Go provider",
            ),
            grpc_request: b.histogram(
                "grpc_request",
                "Duration of the provider's gRPC calls in seconds, as the Go provider",
            ),
            token_requests: b.counter(
                "akv_token_requests_total",
                "Token requests to Entra ID, IMDS, NMI or the AKS token proxy, by identity mode and outcome",
            ),
            token_cache: b.counter(
                "akv_token_cache_total",
                "Token cache lookups by result: hit, miss, coalesced (waited for an in-flight request), \
                 refresh, stale (current token served after a failed refresh)",
            ),
            object_cache: b.counter(
                "akv_object_cache_total",
                "Key Vault object lookups by result: hit (cached), miss (fetched), coalesced (waited for an \
                 identical in-flight fetch)",
            ),
            object_cache_entries: b.gauge(
                "akv_object_cache_entries",
                "Key Vault objects held by the object cache",
            ),
            object_cache_bytes: b.gauge(
                "akv_object_cache_bytes",
                "Bytes of Key Vault responses held by the object cache",
            ),
            keyvault_throttled: b.counter(
                "akv_keyvault_throttled_total",
                "HTTP 429 answers received from Key Vault, by vault",
            ),
            throttle_wait: b.seconds_counter(
                "akv_keyvault_throttle_wait_seconds_total",
                "Seconds requests to a vault waited because it was throttling (Retry-After), by vault",
            ),
            mounts_in_flight: b.gauge("akv_mounts_in_flight", "Mounts being served now"),
            mounts_queued: b.gauge(
                "akv_mounts_queued",
                "Mounts waiting for a slot (--max-concurrent-mounts)",
            ),
            mount_duration: b.histogram(
                "akv_mount_duration_seconds",
                "Duration of Mounts in seconds, by outcome (ok or the error class)",
            ),
            authority_rewritten: b.counter(
                "akv_authority_rewritten_connections_total",
                "Connections whose HTTP/2 :authority was a socket path (CSI driver v1.5) and was rewritten",
            ),
            build_info: b.gauge("akv_build_info", "Always 1; the version label is the provider's"),
        };
        instruments
            .build_info
            .add(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1);
        instruments
    }
}

/// The metrics of one daemon. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    instruments: Arc<Instruments>,
    registry: Option<Arc<Registry>>,
    otel: Option<Arc<opentelemetry_sdk::metrics::SdkMeterProvider>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prometheus", &self.registry.is_some())
            .field("otlp", &self.otel.is_some())
            .finish()
    }
}

/// The OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
pub struct OtlpError {
    endpoint: String,
    reason: String,
}

impl Metrics {
    /// Metrics that record nowhere.
    pub fn disabled() -> Self {
        Self {
            instruments: Arc::new(Instruments::new(Builder::None)),
            registry: None,
            otel: None,
        }
    }

    /// A Prometheus registry with every instrument.
    pub fn prometheus() -> Self {
        let mut registry = Registry::default();
        let instruments = Instruments::new(Builder::Prometheus(&mut registry));
        Self {
            instruments: Arc::new(instruments),
            registry: Some(Arc::new(registry)),
            otel: None,
        }
    }

    /// Instruments pushed over OTLP/gRPC every `interval`. Needs a Tokio runtime.
    pub fn otlp(config: &OtlpConfig, interval: Duration) -> Result<Self, OtlpError> {
        use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
        let bare = config
            .endpoint
            .split_once("://")
            .map_or(config.endpoint.as_str(), |(_, rest)| rest);
        let endpoint = if config.insecure {
            format!("http://{bare}")
        } else {
            format!("https://{bare}")
        };
        let mut builder = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(10))
            .with_temporality(opentelemetry_sdk::metrics::Temporality::Delta);
        if !config.insecure {
            builder = builder
                .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
        }
        let exporter = builder.build().map_err(|e| OtlpError {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
        let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
            .with_interval(interval)
            .build();
        let mut resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("akv-csi-provider")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if let Some(id) = &config.resource_id {
            resource = resource.with_attribute(KeyValue::new("microsoft.resourceId", id.clone()));
        }
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource.build())
            .build();
        let meter = provider.meter("akv-csi-provider");
        Ok(Self {
            instruments: Arc::new(Instruments::new(Builder::Otel(&meter))),
            registry: None,
            otel: Some(Arc::new(provider)),
        })
    }

    /// The backend the configuration selects; OTLP pushes every 60 s like the Go provider.
    pub fn from_config(config: &MetricsConfig) -> Result<Self, OtlpError> {
        match config {
            MetricsConfig::Prometheus { .. } => Ok(Self::prometheus()),
            MetricsConfig::Otlp(otlp) => Self::otlp(otlp, Duration::from_secs(60)),
        }
    }

    /// The Prometheus text exposition, when this is the Prometheus backend.
    pub fn encode_prometheus(&self) -> Option<String> {
        let registry = self.registry.as_ref()?;
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).ok()?;
        Some(out)
    }

    /// Pushes what is pending (OTLP) and stops the exporter.
    pub fn shutdown(&self) {
        if let Some(provider) = &self.otel {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "could not push the last metrics over OTLP");
            }
            let _ = provider.shutdown();
        }
    }

    /// One Key Vault request (retries included), with its error class or `None` on success.
    pub fn keyvault_request(
        &self,
        object_type: &str,
        object_name: &str,
        error: Option<ErrorClass>,
        elapsed: Duration,
    ) {
        self.instruments.keyvault_request.observe(
            vec![
                ("provider", PROVIDER.to_owned()),
                ("os_type", OS_TYPE.to_owned()),
                ("object_type", object_type.to_owned()),
                ("object_name", object_name.to_owned()),
                (
                    "error",
                    error.map(ErrorClass::as_str).unwrap_or("").to_owned(),
                ),
            ],
            elapsed.as_secs_f64(),
        );
    }

    /// One gRPC call: full method name, the Go name of the status code, the error class.
    pub fn grpc_request(
        &self,
        method: &str,
        code: tonic::Code,
        error: Option<ErrorClass>,
        elapsed: Duration,
    ) {
        self.instruments.grpc_request.observe(
            vec![
                ("provider", PROVIDER.to_owned()),
                ("os_type", OS_TYPE.to_owned()),
                ("grpc_method", method.to_owned()),
                ("grpc_code", go_code_name(code).to_owned()),
                (
                    "grpc_message",
                    error.map(ErrorClass::as_str).unwrap_or("").to_owned(),
                ),
            ],
            elapsed.as_secs_f64(),
        );
    }

    /// One token request to an identity endpoint.
    pub fn token_request(&self, mode: &'static str, error: Option<ErrorClass>) {
        self.instruments.token_requests.add(
            vec![
                ("mode", mode.replace(' ', "_").to_ascii_lowercase()),
                (
                    "outcome",
                    error.map(ErrorClass::as_str).unwrap_or("ok").to_owned(),
                ),
            ],
            1,
        );
    }

    /// A token cache lookup.
    pub fn token_cache(&self, event: CacheEvent) {
        self.instruments
            .token_cache
            .add(vec![("result", event.as_str().to_owned())], 1);
    }

    /// An object cache lookup.
    pub fn object_cache(&self, event: CacheEvent) {
        self.instruments
            .object_cache
            .add(vec![("result", event.as_str().to_owned())], 1);
    }

    /// The object cache grew (or shrank, negative) by `entries` and `bytes`.
    pub fn object_cache_size(&self, entries: i64, bytes: i64) {
        self.instruments
            .object_cache_entries
            .add(Vec::new(), entries);
        self.instruments.object_cache_bytes.add(Vec::new(), bytes);
    }

    /// A 429 from `vault`.
    pub fn keyvault_throttled(&self, vault: &str) {
        self.instruments
            .keyvault_throttled
            .add(vec![("vault", vault.to_owned())], 1);
    }

    /// Time a request to `vault` waited because the vault was throttling.
    pub fn throttle_wait(&self, vault: &str, waited: Duration) {
        self.instruments
            .throttle_wait
            .add(vec![("vault", vault.to_owned())], waited.as_secs_f64());
    }

    /// A Mount started (`+1`) or ended (`-1`).
    pub fn mounts_in_flight(&self, delta: i64) {
        self.instruments.mounts_in_flight.add(Vec::new(), delta);
    }

    /// A Mount began (`+1`) or stopped (`-1`) waiting for a slot.
    pub fn mounts_queued(&self, delta: i64) {
        self.instruments.mounts_queued.add(Vec::new(), delta);
    }

    /// A Mount ended.
    pub fn mount_finished(&self, error: Option<ErrorClass>, elapsed: Duration) {
        self.instruments.mount_duration.observe(
            vec![(
                "outcome",
                error.map(ErrorClass::as_str).unwrap_or("ok").to_owned(),
            )],
            elapsed.as_secs_f64(),
        );
    }

    /// A connection's `:authority` was rewritten (driver v1.5).
    pub fn authority_rewritten(&self) {
        self.instruments.authority_rewritten.add(Vec::new(), 1);
    }
}

/// The name grpc-go gives a status code (what the Go provider's `grpc_code` label holds).
pub fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_histograms_keep_their_names_labels_and_buckets() {
        let m = Metrics::prometheus();
        m.keyvault_request(
            "secret",
            "db",
            Some(ErrorClass::Throttled),
            Duration::from_millis(150),
        );
        m.grpc_request(
            "/v1alpha1.CSIDriverProvider/Mount",
            tonic::Code::Ok,
            None,
            Duration::from_millis(20),
        );
        let text = m.encode_prometheus().unwrap();
        assert!(
            text.contains(
                "keyvault_request_bucket{le=\"0.2\",provider=\"azure\",os_type=\"linux\",\
                 object_type=\"secret\",object_name=\"db\",error=\"throttled\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "grpc_request_count{provider=\"azure\",os_type=\"linux\",grpc_method=\
                 \"/v1alpha1.CSIDriverProvider/Mount\",grpc_code=\"OK\",grpc_message=\"\"} 1"
            ),
            "{text}"
        );
        for bucket in BUCKETS {
            assert!(text.contains(&format!("le=\"{bucket:?}\"")), "{bucket}");
        }
        assert!(text.contains("akv_build_info{version=\""), "{text}");
    }

    #[test]
    fn counters_and_gauges_are_exposed_with_their_suffixes() {
        let m = Metrics::prometheus();
        m.token_request("workload identity", None);
        m.token_request("VM managed identity", Some(ErrorClass::Timeout));
        m.token_cache(CacheEvent::Coalesced);
        m.keyvault_throttled("kv1");
        m.throttle_wait("kv1", Duration::from_millis(1500));
        m.mounts_in_flight(1);
        m.authority_rewritten();
        let text = m.encode_prometheus().unwrap();
        for line in [
            "akv_token_requests_total{mode=\"workload_identity\",outcome=\"ok\"} 1",
            "akv_token_requests_total{mode=\"vm_managed_identity\",outcome=\"timeout\"} 1",
            "akv_token_cache_total{result=\"coalesced\"} 1",
            "akv_keyvault_throttled_total{vault=\"kv1\"} 1",
            "akv_keyvault_throttle_wait_seconds_total{vault=\"kv1\"} 1.5",
            "akv_mounts_in_flight 1",
            "akv_authority_rewritten_connections_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn disabled_metrics_record_nowhere() {
        let m = Metrics::disabled();
        m.mounts_in_flight(1);
        assert!(m.encode_prometheus().is_none());
    }
}
