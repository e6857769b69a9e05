//! The adapter between our instruments and the backend `--metrics-backend` selects: a
//! `prometheus-client` registry, or the OpenTelemetry SDK pushing over OTLP/gRPC with delta
//! temporality. Each family type records into whichever of the two is present.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::UpDownCounter as OtelUpDown;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::go::BUCKETS;
use crate::config::OtlpConfig;

pub(super) type Labels = Vec<(&'static str, String)>;
/// Histograms built with the Go buckets.
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn otel_attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// A counter family in whichever backend is active.
pub(super) struct CounterVec {
    prom: Option<Family<Labels, Counter>>,
    otel: Option<OtelCounter<u64>>,
}

impl CounterVec {
    pub(super) fn add(&self, labels: Labels, n: u64) {
        if let Some(otel) = &self.otel {
            otel.add(n, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).inc_by(n);
        }
    }
}

/// A counter of (fractional) seconds.
pub(super) struct SecondsCounterVec {
    prom: Option<Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>>,
    otel: Option<OtelCounter<f64>>,
}

impl SecondsCounterVec {
    pub(super) fn add(&self, labels: Labels, seconds: f64) {
        if let Some(otel) = &self.otel {
            otel.add(seconds, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).inc_by(seconds);
        }
    }
}

/// A histogram family (seconds, the Go buckets).
pub(super) struct HistogramVec {
    prom: Option<HistogramFamily>,
    otel: Option<OtelHistogram<f64>>,
}

impl HistogramVec {
    pub(super) fn observe(&self, labels: Labels, seconds: f64) {
        if let Some(otel) = &self.otel {
            otel.record(seconds, &otel_attributes(&labels));
        }
        if let Some(prom) = &self.prom {
            prom.get_or_create(&labels).observe(seconds);
        }
    }
}

/// A value that goes up and down.
pub(super) struct GaugeVec {
    prom: Option<Family<Labels, Gauge>>,
    otel: Option<OtelUpDown<i64>>,
}

impl GaugeVec {
    pub(super) fn add(&self, labels: Labels, delta: i64) {
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
pub(super) enum Builder<'a> {
    Prometheus(&'a mut Registry),
    Otel(&'a Meter),
    /// Instruments that record nowhere (tools that run one Mount, unit tests).
    None,
}

impl Builder<'_> {
    pub(super) fn counter(&mut self, name: &'static str, help: &'static str) -> CounterVec {
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

    pub(super) fn seconds_counter(
        &mut self,
        name: &'static str,
        help: &'static str,
    ) -> SecondsCounterVec {
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

    pub(super) fn histogram(&mut self, name: &'static str, help: &'static str) -> HistogramVec {
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

    pub(super) fn gauge(&mut self, name: &'static str, help: &'static str) -> GaugeVec {
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

/// The OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
pub struct OtlpError {
    endpoint: String,
    reason: String,
}

/// An OpenTelemetry meter provider pushing over OTLP/gRPC every `interval`. Needs a Tokio runtime.
pub(super) fn otlp_provider(
    config: &OtlpConfig,
    interval: Duration,
) -> Result<opentelemetry_sdk::metrics::SdkMeterProvider, OtlpError> {
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
        builder =
            builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
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
    Ok(provider)
}
