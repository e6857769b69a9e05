//! What the `:authority` rewriting layer costs (issue 5). Run: `cargo bench --bench authority`.
//!
//! 1. The rewriter alone on a grpc-go Mount request as driver v1.5 sends it (HEADERS with a
//!    socket-path authority, then a 4 KiB DATA frame), and on the same request with `localhost`.
//! 2. End to end: `Version` round trips over the real Unix socket through `akv_csi_provider::run`
//!    (which always has the layer), one tonic client, sequential calls, for scale.
//!
//! Plain `Instant` timing over many iterations after a warm-up; medians of 5 runs are printed.

use std::time::{Duration, Instant};

use akv_csi_provider::cli::grpc_v15::{
    DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, frame, headers,
};
use akv_csi_provider::server::authority_rewrite::Rewriter;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// ns per request through the rewriter (preface handled once outside the loop).
fn rewriter_ns(authority: &str, iterations: u32) -> f64 {
    let block = headers("/v1alpha1.CSIDriverProvider/Mount", authority);
    let mut request = frame(HEADERS, END_HEADERS, 1, &block);
    request.extend(frame(DATA, END_STREAM, 1, &[0x5a; 4096]));
    let mut rw = Rewriter::default();
    let mut out = Vec::with_capacity(8192);
    rw.process(PREFACE, &mut out).expect("preface");
    let started = Instant::now();
    for _ in 0..iterations {
        out.clear();
        let n = rw
            .process(std::hint::black_box(&request), &mut out)
            .expect("rewrite");
        assert_eq!(n, request.len());
        std::hint::black_box(&out);
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let iterations = 200_000;
    let _ = rewriter_ns("localhost", 10_000);
    let socket: Vec<f64> = (0..5)
        .map(|_| {
            rewriter_ns(
                "/etc/kubernetes/secrets-store-csi-providers/azure.sock",
                iterations,
            )
        })
        .collect();
    let localhost: Vec<f64> = (0..5)
        .map(|_| rewriter_ns("localhost", iterations))
        .collect();
    println!(
        "rewriter, socket-path authority (rewritten): {:.0} ns per request (HEADERS + 4 KiB DATA)",
        median(socket)
    );
    println!(
        "rewriter, localhost authority (re-encoded):  {:.0} ns per request (HEADERS + 4 KiB DATA)",
        median(localhost)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("akv-bench-{}", std::process::id()));
        let path = dir.join("azure.sock");
        let config = akv_csi_provider::Config {
            socket_path: path.clone(),
            healthz: None,
            metrics: akv_csi_provider::config::MetricsConfig::Prometheus { port: 0 },
            ..Default::default()
        };
        let listener = akv_csi_provider::server::socket::bind(&path).expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(akv_csi_provider::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let channel = akv_csi_provider::server::socket::connect(&path)
            .await
            .expect("connect");
        let mut client =
            akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient::new(
                channel,
            );
        let call = akv_csi_provider::proto::VersionRequest {
            version: "v1alpha1".into(),
        };
        for _ in 0..1000 {
            client.version(call.clone()).await.expect("version");
        }
        let mut runs = Vec::new();
        for _ in 0..5 {
            let n = 5_000;
            let started = Instant::now();
            for _ in 0..n {
                client.version(call.clone()).await.expect("version");
            }
            runs.push(started.elapsed().as_nanos() as f64 / f64::from(n));
        }
        println!(
            "Version round trip over the socket (layer included): {:.0} ns",
            median(runs)
        );
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        let _ = std::fs::remove_dir_all(dir);
    });
}
