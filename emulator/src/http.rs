//! HTTP plumbing shared by every emulated service: the accept loops (HTTPS with ALPN h2/http1.1,
//! plain HTTP/1.1 for the node-local endpoints), JSON responses, and request parsing that never
//! fails loudly: a malformed request gets an HTTP error, never a crashed task.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Every response the emulator sends.
pub(crate) type Resp = Response<Full<Bytes>>;

/// Request bodies larger than this are refused: the token endpoint's form is a few KiB.
const MAX_BODY: usize = 1 << 20;

pub(crate) fn json_response(status: u16, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub(crate) fn text_response(status: u16, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

pub(crate) fn set_header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// A Key Vault-style error body (`{"error":{"code","message"}}`).
pub(crate) fn kv_error(status: u16, code: &str, message: &str) -> Resp {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

pub(crate) fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Lower-case host without port or trailing dot: the HTTP/2 `:authority` or the HTTP/1 `Host`.
pub(crate) fn host_of(req: &Request<Incoming>) -> String {
    let host = match req.uri().authority() {
        Some(a) => a.host().to_owned(),
        None => {
            let h = header(req, "host").unwrap_or_default();
            if let Some(rest) = h.strip_prefix('[') {
                rest.split(']').next().unwrap_or_default().to_owned()
            } else {
                h.split(':').next().unwrap_or_default().to_owned()
            }
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The whole body, or `None` if it could not be read or is over [`MAX_BODY`].
pub(crate) async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes())
}

/// A request handler: the service routed to by a listener.
pub(crate) type Handler<S> =
    fn(Request<Incoming>, Arc<S>) -> std::pin::Pin<Box<dyn Future<Output = Resp> + Send>>;

/// Serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) until the task is aborted.
pub(crate) async fn serve_tls<S: Send + Sync + 'static>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<S>,
    handler: Handler<S>,
) {
    serve(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(tls)),
        state,
        handler,
    )
    .await;
}

/// Serves plain HTTP (IMDS and NMI are plain HTTP on the node) until the task is aborted.
pub(crate) async fn serve_plain<S: Send + Sync + 'static>(
    listener: TcpListener,
    state: Arc<S>,
    handler: Handler<S>,
) {
    serve(listener, None, state, handler).await;
}

/// The accept loop. Connections are owned by the loop's `JoinSet`, so aborting the loop also ends
/// every open connection: a stopped emulator stops answering at once.
async fn serve<S: Send + Sync + 'static>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<S>,
    handler: Handler<S>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                // Like Azure's front ends: small answers go out at once, not after a delayed ACK
                // (Nagle's algorithm would add ~40 ms to every second response on a connection).
                let _ = tcp.set_nodelay(true);
                let tls = tls.clone();
                let state = state.clone();
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                serve_connection(TokioIo::new(tls), state, handler).await;
                            }
                        }
                        None => serve_connection(TokioIo::new(tcp), state, handler).await,
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<I, S>(io: I, state: Arc<S>, handler: Handler<S>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: Send + Sync + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let fut = handler(req, state.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await;
}
