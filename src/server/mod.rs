//! The gRPC server on the provider socket: `v1alpha1.CSIDriverProvider` (Version, Mount) and
//! `grpc.health.v1.Health`, plus the HTTP liveness and metrics endpoints, with graceful shutdown.

pub mod authority_rewrite;
pub(crate) mod endpoints;
pub mod health;
mod limited;
pub mod socket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::config::{Config, MetricsConfig};
use crate::metrics::{ErrorClass, Metrics};
use crate::mount::MountService;
use crate::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};
use authority_rewrite::AuthorityFix;
use limited::Limited;

/// The contract version we implement.
pub const API_VERSION: &str = "v1alpha1";
/// `VersionResponse.runtime_name`.
pub const RUNTIME_NAME: &str = "akv-csi-provider";
/// Connections served at once on the socket (the driver keeps one; health checks open one each).
const MAX_CONNECTIONS: usize = 256;
/// Concurrent requests on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;
/// Largest request: a Mount request is the SecretProviderClass parameters plus a few tokens.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Full gRPC method names, as the `grpc_method` label has them.
const MOUNT_METHOD: &str = "/v1alpha1.CSIDriverProvider/Mount";
const VERSION_METHOD: &str = "/v1alpha1.CSIDriverProvider/Version";

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The outgoing HTTPS client could not be built.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The liveness or metrics port could not be bound.
    #[error(transparent)]
    Bind(#[from] endpoints::BindError),
    /// The OTLP exporter could not be set up.
    #[error(transparent)]
    Otlp(#[from] crate::metrics::OtlpError),
    /// The gRPC server failed.
    #[error("serving gRPC: {0}")]
    Transport(tonic::transport::Error),
}

/// The `CSIDriverProvider` service.
#[derive(Clone, Debug)]
pub struct Provider {
    mounts: MountService,
    metrics: Metrics,
}

#[tonic::async_trait]
impl CsiDriverProvider for Provider {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        let started = Instant::now();
        let response = VersionResponse {
            version: API_VERSION.to_owned(),
            runtime_name: RUNTIME_NAME.to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        self.metrics
            .grpc_request(VERSION_METHOD, tonic::Code::Ok, None, started.elapsed());
        Ok(Response::new(response))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let call = GrpcCall::new(&self.metrics);
        let timeout = grpc_timeout(request.metadata());
        let result = self.mounts.mount(request.into_inner(), timeout).await;
        let (code, class) = match &result {
            Ok(_) => (tonic::Code::Ok, None),
            Err(e) => (e.code(), Some(e.class())),
        };
        call.finish(code, class);
        Ok(Response::new(result?))
    }
}

/// One `grpc_request` observation per Mount call, also for a call the client abandons: tonic
/// drops the handler's future when the stream is reset or the client's deadline passes, and such
/// a call is recorded as `Canceled` (what a Go server reports for it) instead of not at all.
struct GrpcCall<'a> {
    metrics: &'a Metrics,
    started: Instant,
    finished: bool,
}

impl<'a> GrpcCall<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        Self {
            metrics,
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(mut self, code: tonic::Code, class: Option<ErrorClass>) {
        self.finished = true;
        self.metrics
            .grpc_request(MOUNT_METHOD, code, class, self.started.elapsed());
    }
}

impl Drop for GrpcCall<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.grpc_request(
                MOUNT_METHOD,
                tonic::Code::Cancelled,
                Some(ErrorClass::Cancelled),
                self.started.elapsed(),
            );
        }
    }
}

/// Completes on SIGTERM or SIGINT (what the daemon and the emulator stop on).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
}

/// Serves on `listener` (bound with [`socket::bind`] at `config.socket_path`) until `shutdown`
/// completes, then lets in-flight Mounts finish within the grace period and removes the socket.
pub async fn run(
    config: Config,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Daemon::start(config, listener).await?.serve(shutdown).await
}

/// A daemon whose ports are bound and whose clients are built, ready to serve. Start-up failures
/// (a port in use, an OTLP endpoint that cannot be used) surface from [`Daemon::start`], before
/// anything is served.
pub struct Daemon {
    config: Arc<Config>,
    listener: UnixListener,
    provider: Provider,
    metrics: Metrics,
    healthz: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
}

impl Daemon {
    /// Builds the clients and the metrics backend and binds the HTTP endpoints. On failure the
    /// socket is removed: a daemon that never served must not leave a socket the driver would
    /// dial in vain.
    pub async fn start(config: Config, listener: UnixListener) -> Result<Self, ServeError> {
        let socket_path = config.socket_path.clone();
        let started = Self::build(config, listener).await;
        if started.is_err() {
            socket::remove(&socket_path);
        }
        started
    }

    async fn build(config: Config, listener: UnixListener) -> Result<Self, ServeError> {
        let config = Arc::new(config);
        let (http, local_http) = crate::http::clients(&*config)?;
        let metrics = Metrics::from_config(&config.metrics)?;
        let healthz = match &config.healthz {
            Some(h) => Some(endpoints::bind("healthz-port", h.port).await?),
            None => None,
        };
        let metrics_listener = match config.metrics {
            MetricsConfig::Prometheus { port } => {
                Some(endpoints::bind("prometheus-port", port).await?)
            }
            MetricsConfig::Otlp(_) => None,
        };
        let provider = Provider {
            mounts: MountService::new(config.clone(), http, local_http, metrics.clone()),
            metrics: metrics.clone(),
        };
        Ok(Self {
            config,
            listener,
            provider,
            metrics,
            healthz,
            metrics_listener,
        })
    }

    /// Where `/metrics` is served (the ephemeral port when `--prometheus-port=0`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(endpoints::local_addr)
    }

    /// Where the liveness endpoint is served.
    pub fn healthz_addr(&self) -> Option<SocketAddr> {
        self.healthz.as_ref().and_then(endpoints::local_addr)
    }

    /// Serves until `shutdown` completes, then lets in-flight Mounts finish within the grace
    /// period and removes the socket.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            config,
            listener,
            provider,
            metrics,
            healthz,
            metrics_listener,
        } = self;
        // The listener was bound in a private directory and renamed into place (see `socket`), so
        // its own address is stale: the configured path is where clients find it.
        let socket_path = config.socket_path.clone();
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<CsiDriverProviderServer<Provider>>()
            .await;
        let mut background = Vec::new();
        if let (Some(listener), Some(h)) = (healthz, config.healthz.clone()) {
            background.push(tokio::spawn(health::serve_http(
                listener,
                h,
                socket_path.clone(),
            )));
        }
        if let Some(listener) = metrics_listener {
            // The address itself, not `Some(…)`: log fields show values.
            match endpoints::local_addr(&listener) {
                Some(addr) => tracing::info!(%addr, "metrics endpoint listening"),
                None => tracing::info!("metrics endpoint listening"),
            }
            let metrics = metrics.clone();
            background.push(tokio::spawn(endpoints::serve(listener, move |req| {
                let metrics = metrics.clone();
                async move { metrics_response(&req, &metrics) }
            })));
        }

        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let rewritten: authority_rewrite::RewriteHook = {
            let metrics = metrics.clone();
            Arc::new(move || metrics.authority_rewritten())
        };
        let incoming = accepted(listener, connections, rewritten);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; waiting for in-flight Mounts");
            let _ = stopping_tx.send(());
        };
        let serve = tonic::transport::Server::builder()
            // Dead peers are found and their connections closed; a stuck client holds a connection
            // (bounded above), never a Mount slot past its deadline.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .add_service(health_service)
            .add_service(
                CsiDriverProviderServer::new(provider).max_decoding_message_size(MAX_REQUEST_BYTES),
            )
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
        for task in background {
            task.abort();
        }
        metrics.shutdown();
        socket::remove(&socket_path);
        result
    }
}

/// The connections accepted on the provider socket, each wrapped to hold a slot of the connection
/// bound and to have its HTTP/2 `:authority` fixed. Over the bound a new connection is closed at
/// once (a client that leaks connections must not exhaust the daemon's file descriptors); a failed
/// accept backs off instead of being retried at once.
fn accepted(
    listener: UnixListener,
    connections: Arc<Semaphore>,
    rewritten: authority_rewrite::RewriteHook,
) -> impl Stream<Item = Result<Limited<AuthorityFix<UnixStream>>, std::io::Error>> {
    let state = (listener, endpoints::AcceptBackoff::new());
    futures_util::stream::unfold(state, move |(listener, mut backoff)| {
        let connections = connections.clone();
        let rewritten = rewritten.clone();
        async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        backoff.failed(&e, "provider socket").await;
                        continue;
                    }
                };
                backoff.reset();
                match connections.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let conn = Limited::new(
                            AuthorityFix::with_rewrite_hook(stream, rewritten.clone()),
                            permit,
                        );
                        return Some((Ok(conn), (listener, backoff)));
                    }
                    Err(_) => tracing::warn!(
                        limit = MAX_CONNECTIONS,
                        "too many connections on the provider socket; closing a new one"
                    ),
                }
            }
        }
    })
}

/// The caller's deadline from the `grpc-timeout` header (driver v1.6 passes kubelet's; v1.5 rotation
/// sends none): digits and a unit, `H`, `M`, `S`, `m`, `u` or `n`.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn metrics_response(
    req: &http::Request<hyper::body::Incoming>,
    metrics: &Metrics,
) -> http::Response<http_body_util::Full<hyper::body::Bytes>> {
    match (req.uri().path(), metrics.encode_prometheus()) {
        ("/metrics", Some(text)) => endpoints::text(
            http::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        _ => endpoints::text(
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_owned(),
        ),
    }
}
