//! The gRPC server on the provider socket: `v1alpha1.CSIDriverProvider` (Version, Mount) and
//! `grpc.health.v1.Health`, plus the HTTP liveness endpoint, with graceful shutdown.

pub mod authority;
pub mod health;
pub mod socket;

use std::future::Future;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::http::{HttpSettings, build_client, build_local_client};
use crate::mount::MountService;
use crate::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};
use authority::AuthorityFix;

/// The contract version we implement.
pub const API_VERSION: &str = "v1alpha1";
/// `VersionResponse.runtime_name`.
pub const RUNTIME_NAME: &str = "akv-csi-provider";

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The outgoing HTTPS client could not be built.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The gRPC server failed.
    #[error("serving gRPC: {0}")]
    Transport(tonic::transport::Error),
}

/// The `CSIDriverProvider` service.
#[derive(Clone, Debug)]
pub struct Provider {
    mounts: MountService,
}

#[tonic::async_trait]
impl CsiDriverProvider for Provider {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: API_VERSION.to_owned(),
            runtime_name: RUNTIME_NAME.to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let response = self.mounts.mount(request.into_inner()).await?;
        Ok(Response::new(response))
    }
}

/// The certificates of a PEM bundle; a missing or unreadable file is logged and yields none.
fn read_ca_file(path: &std::path::Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    match rustls::pki_types::CertificateDer::pem_file_iter(path) {
        Ok(certs) => certs.filter_map(Result::ok).collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the token proxy CA bundle");
            Vec::new()
        }
    }
}

/// Serves on `listener` (bound with [`socket::bind`] at `config.socket_path`) until `shutdown` completes, then lets in-flight Mounts finish within the grace
/// period and removes the socket.
pub async fn run(
    config: Config,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    // The listener was bound in a private directory and renamed into place (see `socket`), so its
    // own address is stale: the configured path is where clients find it.
    let socket_path = config.socket_path.clone();
    let mut extra_roots: Vec<rustls::pki_types::CertificateDer<'static>> = config
        .extra_root_certs
        .iter()
        .map(|der| rustls::pki_types::CertificateDer::from(der.clone()))
        .collect();
    if config.token_proxy.is_some() {
        extra_roots.extend(read_ca_file(&config.token_proxy_ca_file));
    }
    let settings = HttpSettings {
        user_agent: config.user_agent(),
        connect_timeout: config.connect_timeout,
        request_timeout: config.request_timeout,
        resolve_overrides: config.resolve_overrides.clone(),
        extra_roots,
        aliases: config.token_proxy.iter().map(|p| p.alias.clone()).collect(),
    };
    let http = build_client(&settings)?;
    let local_http = build_local_client(&settings)?;
    let provider = Provider {
        mounts: MountService::new(config.clone(), http, local_http),
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CsiDriverProviderServer<Provider>>()
        .await;

    let healthz = config
        .healthz
        .clone()
        .map(|h| tokio::spawn(health::serve_http(h, socket_path.clone())));

    let incoming = UnixListenerStream::new(listener).map(|conn| conn.map(AuthorityFix::new));
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; waiting for in-flight Mounts");
        let _ = stopping_tx.send(());
    };
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(provider))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serve);
    let grace = config.shutdown_grace;
    let result = tokio::select! {
        result = &mut serve => result.map_err(ServeError::Transport),
        () = async {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "in-flight Mounts did not finish within the grace period; exiting");
            Ok(())
        }
    };
    if let Some(task) = healthz {
        task.abort();
    }
    socket::remove(&socket_path);
    result
}
