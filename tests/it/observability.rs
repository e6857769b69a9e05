//! Operating the daemon: `/metrics` after real Mounts (the Go provider's histograms with bounded
//! labels, and ours), the same instruments pushed over OTLP to a collector, and the JSON logs of the
//! real binary with the Mount's fields on the line of a failure deep inside.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use akv_csi_provider::config::{MetricsConfig, OtlpConfig};
use akv_csi_provider::metrics::ErrorClass;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

use crate::support::harness::*;

const V: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Every label value in a Prometheus exposition.
fn label_values(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, _)) = rest.rsplit_once('}') else {
            continue;
        };
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            let Some((value, tail)) = after.split_once('"') else {
                break;
            };
            out.push((key.trim_start_matches(',').to_owned(), value.to_owned()));
            rest = tail;
        }
    }
    out
}

#[tokio::test]
async fn metrics_after_real_mounts_keep_the_go_names_and_bounded_labels() {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret(
            "db-password",
            plain_secret(V, "metrics-secret-value", 1_700_000_000),
        )
        .put_secret(
            "api-key",
            plain_secret(V, "metrics-api-key-value", 1_700_000_000),
        );
    let provider = Provider::start(&emu, |_| {}).await;
    let two = objects(&[
        "objectName: db-password\nobjectType: secret",
        "objectName: api-key\nobjectType: secret",
    ]);
    // Success.
    let response = provider
        .mount(MountBuilder::workload(&two).build())
        .await
        .expect("ok");
    assert_eq!(response.files.len(), 2);
    // 403: the identity has no role on the other vault.
    let forbidden =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("keyvaultName", "kv-other");
    let status = provider.mount(forbidden.build()).await.expect_err("403");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // 429, then success after Retry-After.
    emu.vault(VAULT).throttle_next(1, 0);
    provider
        .mount(
            MountBuilder::workload(&objects(&["objectName: api-key\nobjectType: secret"])).build(),
        )
        .await
        .expect("throttled once, then served");
    // Invalid.
    let invalid = MountBuilder::workload(&objects(&["objectName: x\nobjectType: sekret"]));
    assert_eq!(
        provider
            .mount(invalid.build())
            .await
            .expect_err("invalid")
            .code(),
        tonic::Code::InvalidArgument
    );

    let text = provider.metrics().await;
    let kv = "keyvault_request_count{provider=\"azure\",os_type=\"linux\",object_type=\"secret\",";
    assert_eq!(
        sample(
            &text,
            &format!("{kv}object_name=\"db-password\",error=\"\"}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{kv}object_name=\"db-password\",error=\"forbidden\"}}")
        ),
        1.0,
        "{text}"
    );
    // One observation per object fetch, retries included: the throttled fetch ended well.
    assert_eq!(
        sample(&text, &format!("{kv}object_name=\"api-key\",error=\"\"}}")),
        2.0,
        "{text}"
    );
    let grpc = "grpc_request_count{provider=\"azure\",os_type=\"linux\",grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\",";
    assert_eq!(
        sample(
            &text,
            &format!("{grpc}grpc_code=\"OK\",grpc_message=\"\"}}")
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{grpc}grpc_code=\"PermissionDenied\",grpc_message=\"forbidden\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("{grpc}grpc_code=\"InvalidArgument\",grpc_message=\"invalid\"}}")
        ),
        1.0
    );
    assert!(
        text.contains("keyvault_request_bucket{le=\"0.1\","),
        "the Go buckets"
    );
    assert_eq!(
        sample(&text, "akv_keyvault_throttled_total{vault=\"kv-main\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "akv_token_requests_total{mode=\"workload_identity\",outcome=\"ok\"}"
        ),
        1.0,
        "one exchange serves the pod's Mounts: {text}"
    );
    assert!(
        sample(&text, "akv_token_cache_total{result=\"hit\"}") >= 2.0,
        "{text}"
    );
    assert_eq!(sample(&text, "akv_mounts_in_flight "), 0.0);
    assert_eq!(
        sample(&text, "akv_mount_duration_seconds_count{outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "akv_mount_duration_seconds_count{outcome=\"forbidden\"}"
        ),
        1.0
    );
    assert!(text.contains("akv_build_info{version=\""));

    // Labels are bounded: error classes only, and nothing secret, no token, no error text.
    let classes: BTreeSet<&str> = ErrorClass::ALL
        .iter()
        .map(|c| c.as_str())
        .chain([""])
        .collect();
    for (key, value) in label_values(&text) {
        if key == "error" || key == "grpc_message" {
            assert!(
                classes.contains(value.as_str()),
                "{key}={value:?} is not a class"
            );
        }
        for secret in [
            "metrics-secret-value",
            "metrics-api-key-value",
            "emulator-at.",
            "eyJ",
            "Caller is not authorized",
            "Throttled",
        ] {
            assert!(!value.contains(secret), "label {key}={value:?}");
        }
        assert!(
            value.len() < 64,
            "label {key}={value:?} looks like text, not a class or a name"
        );
    }
}

/// A collector that keeps what it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_pushes_the_same_instruments_with_delta_temporality() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret(V, "otlp-secret-value", 1_700_000_000),
    );
    let provider = Provider::start(&emu, |c| {
        c.metrics = MetricsConfig::Otlp(OtlpConfig {
            // As the Go provider's variable holds it: no scheme, plaintext with otlpInsecureGrpc.
            endpoint: addr.to_string(),
            insecure: true,
            resource_id: Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c".into()),
        })
    })
    .await;
    assert!(
        provider.metrics_addr.is_none(),
        "no /metrics endpoint with otlp"
    );
    provider
        .mount(
            MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
                .build(),
        )
        .await
        .expect("mount");
    // Shutdown pushes what is pending.
    provider.stop().await;

    let requests = collector.0.lock().unwrap().clone();
    assert!(!requests.is_empty(), "the collector received metrics");
    let mut names = BTreeSet::new();
    let mut resource_ids = BTreeSet::new();
    for request in &requests {
        for rm in &request.resource_metrics {
            for attr in rm.resource.iter().flat_map(|r| &r.attributes) {
                if attr.key == "microsoft.resourceId" {
                    resource_ids.insert(format!("{:?}", attr.value));
                }
            }
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    names.insert(m.name.clone());
                    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                    match &m.data {
                        Some(Data::Histogram(h)) => {
                            assert_eq!(h.aggregation_temporality, 1, "delta: {}", m.name)
                        }
                        Some(Data::Sum(s)) if s.is_monotonic => {
                            assert_eq!(s.aggregation_temporality, 1, "delta: {}", m.name)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    for wanted in [
        "keyvault_request",
        "grpc_request",
        "akv_token_requests_total",
        "akv_mount_duration_seconds",
        "akv_build_info",
    ] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    assert_eq!(resource_ids.len(), 1, "{resource_ids:?}");
    assert!(
        resource_ids
            .iter()
            .next()
            .unwrap()
            .contains("connectedClusters/c")
    );
    server.abort();
}

/// A port in use stops the daemon at start: exit status 1 (main.rs: `ExitCode::FAILURE` for every
/// start-up error after the flags parsed), an error naming the flag and the port, and no socket left
/// behind (`Daemon::start` removes it: the driver must not dial a socket nobody serves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_port_in_use_stops_the_daemon_naming_the_flag() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    for (flag, args) in [
        (
            "--prometheus-port",
            [
                "--healthz-port=0".to_owned(),
                format!("--prometheus-port={port}"),
            ],
        ),
        (
            "--healthz-port",
            [
                format!("--healthz-port={port}"),
                "--prometheus-port=0".to_owned(),
            ],
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
            .arg(format!("--endpoint=unix://{}", socket.display()))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on port {port} ({flag}):")),
            "{flag}: {stderr}"
        );
        // It got as far as binding the socket (logged before the ports are bound), then removed it.
        assert!(
            stderr.contains("akv-csi-provider listening"),
            "{flag}: {stderr}"
        );
        assert!(
            std::fs::symlink_metadata(&socket).is_err(),
            "{flag}: the socket {} is left behind",
            socket.display()
        );
    }
    drop(taken);
}

/// The real binary with `--log-format-json -v=5`: a Mount failing with 403 on its third object has
/// the pod, SecretProviderClass, vault and object on its line, and no line holds a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_mount_fields_and_no_secrets() {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("one", plain_secret(V, "json-log-secret-one", 1_700_000_000))
        .put_secret("two", plain_secret(V, "json-log-secret-two", 1_700_000_000));
    emu.vault(VAULT).put_raw_json(
        "/secrets/three",
        403,
        serde_json::json!({"error": {"code": "Forbidden", "message": "Caller is not authorized", "innererror": {"code": "ForbiddenByRbac"}}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    let socket = dir.path().join("azure.sock");
    let addr = emu.addr();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args([
            "--log-format-json",
            "-v=5",
            "--healthz-port=0",
            "--prometheus-port=0",
        ])
        .arg(format!("--resolve=login.microsoftonline.com={addr}"))
        .arg(format!("--resolve=kv-main.vault.azure.net={addr}"))
        .env("SSL_CERT_FILE", &ca)
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_socket(&socket).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: one\nobjectType: secret",
        "objectName: two\nobjectType: secret",
        "objectName: three\nobjectType: secret",
    ]));
    let token = request.token.clone().unwrap();
    let client_provider = ClientOnly {
        socket: socket.clone(),
    };
    let status = client_provider
        .mount(request.build())
        .await
        .expect_err("403 on the third");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "exit 0 after SIGTERM");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.len() > 5,
        "trace level logs more than the summary: {stderr}"
    );
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    let failed = lines
        .iter()
        .find(|l| l["message"] == "mount failed")
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    assert_eq!(failed["pod"], "app/web-0");
    assert_eq!(failed["spc"], "spc");
    assert_eq!(failed["vault"], "kv-main");
    assert_eq!(failed["mode"], "workload identity");
    assert_eq!(failed["object"], "three");
    assert_eq!(failed["outcome"], "forbidden");
    assert!(
        failed["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 8)
    );
    // Events inside the Mount carry its fields too.
    assert!(
        lines
            .iter()
            .any(|l| l["vault"] == "kv-main" && l["message"] != "mount failed")
    );
    for secret in [
        "json-log-secret-one",
        "json-log-secret-two",
        token.as_str(),
        "eyJ",
        "emulator-at.",
    ] {
        assert!(!stderr.contains(secret), "a secret is logged");
    }
}

/// A driver-like client for a daemon started by the test itself.
struct ClientOnly {
    socket: std::path::PathBuf,
}

impl ClientOnly {
    async fn mount(
        &self,
        request: akv_csi_provider::proto::MountRequest,
    ) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
        let channel = akv_csi_provider::server::socket::connect(&self.socket)
            .await
            .unwrap();
        akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient::new(channel)
            .mount(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// Regression: a Mount whose client went away (stream reset, or the client's own deadline) was
/// dropped without a trace: no `akv_mount_duration_seconds` or `grpc_request` observation, no
/// summary line. It is recorded as cancelled now, in the Mount's span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_the_client_abandons_is_recorded_as_cancelled() {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret(V, "cancelled-secret", 1_700_000_000),
    );
    emu.vault(VAULT)
        .set_latency(std::time::Duration::from_secs(2));
    let provider = Provider::start(&emu, |_| {}).await;
    let pod = Pod {
        name: "abandoned-0".into(),
        ..Pod::default()
    };
    let request =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .pod(pod)
            .build();
    let mut client = provider.client().await;
    let gone =
        tokio::time::timeout(std::time::Duration::from_millis(300), client.mount(request)).await;
    assert!(gone.is_err(), "the client gave up first");
    drop(client);
    // The server notices the reset and drops the Mount.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let grpc_cancelled = "grpc_request_count{provider=\"azure\",os_type=\"linux\",grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\",grpc_code=\"Canceled\",grpc_message=\"cancelled\"}";
    let text = loop {
        let text = provider.metrics().await;
        // Both are recorded as the call is dropped, one right after the other.
        if sample(
            &text,
            "akv_mount_duration_seconds_count{outcome=\"cancelled\"}",
        ) >= 1.0
            && sample(&text, grpc_cancelled) >= 1.0
        {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cancelled Mount recorded:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(text.contains("akv_mounts_in_flight 0"), "{text}");
    assert_eq!(sample(&text, grpc_cancelled), 1.0, "{text}");
    let line = crate::support::hygiene::lines()
        .into_iter()
        .find(|l| l.contains("abandoned-0") && l.contains("mount cancelled by the client"))
        .expect("a summary line for the cancelled Mount");
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["outcome"], "cancelled");
    assert_eq!(line["pod"], "app/abandoned-0");
    assert_eq!(line["vault"], VAULT);
    assert_eq!(line["objects"], 1);
}

/// An idle daemon serves its gauges at 0 before any Mount, so that a quiet node's dashboard and
/// alerts read 0 rather than "no data" (they used to appear only with the first Mount).
#[tokio::test]
async fn an_idle_daemon_serves_its_gauges_at_zero() {
    let emu = federated_emulator().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let text = provider.metrics().await;
    for line in [
        "akv_mounts_in_flight 0",
        "akv_mounts_queued 0",
        "akv_object_cache_entries 0",
        "akv_object_cache_bytes 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}
