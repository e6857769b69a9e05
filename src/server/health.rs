//! The HTTP liveness endpoint (README, "Configuration"): `GET :{healthz-port}{healthz-path}` dials the provider's own
//! socket and calls `grpc.health.v1.Health/Check`, so the DaemonSet's liveness probe fails when the
//! gRPC server stops answering, not merely when the process is gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::config::Healthz;

/// Calls Health/Check on the socket at `path` within `timeout`.
pub async fn check_socket(path: PathBuf, timeout: std::time::Duration) -> Result<(), String> {
    let attempt = async {
        let channel = super::socket::connect(&path)
            .await
            .map_err(|e| format!("connecting to the provider socket: {e}"))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| format!("Health/Check failed: {}", e.message()))?;
        match response.into_inner().status {
            1 => Ok(()),
            other => Err(format!("Health/Check returned status {other}, not SERVING")),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("Health/Check did not answer within {timeout:?}")))
}

/// Serves the liveness endpoint on `listener` until the task is aborted.
pub async fn serve_http(listener: TcpListener, config: Healthz, socket: PathBuf) {
    tracing::info!(port = config.port, path = %config.path, "healthz endpoint listening");
    let config = Arc::new(config);
    let socket = Arc::new(socket);
    super::endpoints::serve(listener, move |req: Request<Incoming>| {
        let config = config.clone();
        let socket = socket.clone();
        async move { respond(&req, &config, &socket).await }
    })
    .await;
}

async fn respond(
    req: &Request<Incoming>,
    config: &Healthz,
    socket: &Path,
) -> Response<Full<Bytes>> {
    let (status, body) = if req.uri().path() != config.path {
        (StatusCode::NOT_FOUND, "not found\n".to_owned())
    } else {
        match check_socket(socket.to_owned(), config.timeout).await {
            Ok(()) => (StatusCode::OK, "ok".to_owned()),
            Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        }
    };
    super::endpoints::text(status, "text/plain; charset=utf-8", body)
}
