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
//!
//! Four files, four jobs: [`class`] (the bounded error classes), `backend` (the Prometheus/OTLP
//! adapter), `instruments` (every instrument and the [`Metrics`] handle) and `go` (the Go provider's
//! names and buckets).

mod backend;
pub(crate) mod class;
mod go;
mod instruments;

pub use backend::OtlpError;
pub use class::ErrorClass;
pub(crate) use go::go_code_name;
pub use instruments::{CacheEvent, Metrics};

#[cfg(test)]
mod tests {
    use super::go::BUCKETS;
    use super::*;
    use std::time::Duration;

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
