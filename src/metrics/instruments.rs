//! The instruments themselves: every metric the provider records, defined once, and [`Metrics`],
//! the handle the rest of the crate records through.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use prometheus_client::registry::Registry;

use super::backend::{
    self, Builder, CounterVec, GaugeVec, HistogramVec, OtlpError, SecondsCounterVec,
};
use super::class::ErrorClass;
use super::go::{OS_TYPE, PROVIDER, go_code_name};
use crate::config::{MetricsConfig, OtlpConfig};

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
    optional_skipped: CounterVec,
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
            optional_skipped: b.counter(
                "akv_optional_objects_skipped_total",
                "Objects marked optional that were not mounted because they do not exist or are \
                 disabled, by object type and reason (not_found, disabled)",
            ),
            build_info: b.gauge("akv_build_info", "Always 1; the version label is the provider's"),
        };
        instruments
            .build_info
            .add(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1);
        // The gauges without labels exist from the start at 0, so that an idle node's dashboard and
        // alerts read 0, not "no data".
        for gauge in [
            &instruments.mounts_in_flight,
            &instruments.mounts_queued,
            &instruments.object_cache_entries,
            &instruments.object_cache_bytes,
        ] {
            gauge.add(Vec::new(), 0);
        }
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
        let provider = backend::otlp_provider(config, interval)?;
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

    /// An optional object was skipped: `reason` is `not_found` or `disabled`.
    pub fn optional_skipped(&self, object_type: &'static str, reason: &'static str) {
        self.instruments.optional_skipped.add(
            vec![
                ("object_type", object_type.to_owned()),
                ("reason", reason.to_owned()),
            ],
            1,
        );
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
