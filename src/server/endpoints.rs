//! The daemon's two small HTTP endpoints, liveness (`--healthz-port`) and Prometheus metrics
//! (`--prometheus-port`): bound at start so that a port in use stops the daemon with a message
//! naming the flag, then served over HTTP/1.1 with a backoff on accept errors (a full file
//! descriptor table must not turn the accept loop into a busy loop).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// An endpoint port could not be bound.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on port {port} (--{flag}): {error}; another process uses it or the port needs \
     privileges; choose another --{flag}"
)]
pub struct BindError {
    /// The flag that chose the port.
    pub flag: &'static str,
    /// The port.
    pub port: u16,
    /// The OS error.
    pub error: std::io::Error,
}

/// Binds `0.0.0.0:port` (all interfaces, like the Go provider); port 0 takes an ephemeral port.
pub async fn bind(flag: &'static str, port: u16) -> Result<TcpListener, BindError> {
    TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|error| BindError { flag, port, error })
}

/// The address a listener got (port 0 is resolved).
pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut backoff = AcceptBackoff::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                stream
            }
            Err(e) => {
                backoff.failed(&e, "HTTP endpoint").await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The wait after a failed `accept` (no file descriptors left, out of memory): 5 ms, doubling up
/// to a second, back to 5 ms after a success. Without it the listener is ready again at once and
/// the accept loop spins a core for as long as the condition lasts.
pub(crate) struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// An accept succeeded.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// An accept on `listener` failed with `error`: logs it and waits before the next one.
    pub(crate) async fn failed(&mut self, error: &std::io::Error, listener: &'static str) {
        tracing::warn!(%error, listener, backoff = ?self.next, "accepting a connection failed");
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Self::MAX);
    }
}

/// A plain-text response.
pub fn text(
    status: http::StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
