//! Fakes of the node-local token endpoints, plain HTTP on 127.0.0.1 like the real ones: IMDS
//! (`/metadata/identity/oauth2/token`, spec 3.3) and aad-pod-identity's NMI (`/host/token/`, spec 3.4).
//! Tokens are minted by the fake Entra so that the fake Key Vault accepts them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Mints a Key Vault access token for a client id (the principal).
pub type Mint = Arc<dyn Fn(&str) -> String + Send + Sync>;

#[derive(Default)]
struct State {
    /// Client id of the system-assigned identity, if the node has one.
    system: Option<String>,
    /// Client ids of user-assigned identities on the node.
    user: Vec<String>,
    /// NMI: "ns/pod" → client id.
    pod_bindings: HashMap<String, String>,
    requests: u32,
    fail_next: Vec<u16>,
    missing_metadata_header: u32,
}

/// A fake IMDS and NMI on one port.
pub struct FakeLocal {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLocal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLocal {
    pub async fn start(mint: Mint) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let mint = mint.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        let mint = mint.clone();
                        async move { Ok::<_, Infallible>(handle(req, &st, &mint).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_system_identity(&self, client_id: &str) {
        self.state.lock().unwrap().system = Some(client_id.to_owned());
    }

    pub fn assign_user_identity(&self, client_id: &str) {
        self.state.lock().unwrap().user.push(client_id.to_owned());
    }

    pub fn bind_pod(&self, namespace: &str, pod: &str, client_id: &str) {
        self.state
            .lock()
            .unwrap()
            .pod_bindings
            .insert(format!("{namespace}/{pod}"), client_id.to_owned());
    }

    /// The next requests answer these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .fail_next
            .extend_from_slice(statuses);
    }

    pub fn requests(&self) -> u32 {
        self.state.lock().unwrap().requests
    }

    pub fn requests_without_metadata_header(&self) -> u32 {
        self.state.lock().unwrap().missing_metadata_header
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    r
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

async fn handle(
    req: Request<Incoming>,
    state: &Mutex<State>,
    mint: &Mint,
) -> Response<Full<Bytes>> {
    let q = query(&req);
    let path = req.uri().path().to_owned();
    let metadata = req.headers().get("metadata").and_then(|v| v.to_str().ok()) == Some("true");
    let podns = req
        .headers()
        .get("podns")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let podname = req
        .headers()
        .get("podname")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = req.into_body().collect().await;
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if !s.fail_next.is_empty() {
        let status = s.fail_next.remove(0);
        return json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            serde_json::json!({"error": "unavailable", "error_description": "temporarily unavailable"}),
        );
    }
    let resource = q.get("resource").cloned().unwrap_or_default();
    if path == "/metadata/identity/oauth2/token" {
        if !metadata {
            s.missing_metadata_header += 1;
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error":"invalid_request","error_description":"Required metadata header not specified"}),
            );
        }
        if !q.contains_key("api-version") || resource.is_empty() {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error":"invalid_request","error_description":"Required query variable 'resource' is missing"}),
            );
        }
        let principal = match q.get("client_id") {
            Some(id) if s.user.contains(id) => id.clone(),
            Some(_) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error":"invalid_request","error_description":"Identity not found"}),
                );
            }
            None => match (&s.system, s.user.len()) {
                (Some(system), _) => system.clone(),
                (None, 1) => s.user[0].clone(),
                (None, 0) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error":"invalid_request","error_description":"Identity not found"}),
                    );
                }
                (None, _) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error":"invalid_request","error_description":"Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"}),
                    );
                }
            },
        };
        drop(s);
        let token = mint(&principal);
        let now = super::harness::now();
        // Numbers as strings, as IMDS sends them.
        return json(
            StatusCode::OK,
            serde_json::json!({
                "access_token": token, "client_id": principal, "expires_in": "86399",
                "expires_on": (now + 86399).to_string(), "ext_expires_in": "86399",
                "not_before": now.to_string(), "resource": resource, "token_type": "Bearer"
            }),
        );
    }
    if path == "/host/token/" {
        let key = format!(
            "{}/{}",
            podns.unwrap_or_default(),
            podname.unwrap_or_default()
        );
        let Some(principal) = s.pod_bindings.get(&key).cloned() else {
            let mut r = Response::new(Full::new(Bytes::from(format!(
                "no AzureAssignedIdentity found for pod:{key} in assigned state\n"
            ))));
            *r.status_mut() = StatusCode::FORBIDDEN;
            return r;
        };
        drop(s);
        let token = mint(&principal);
        let now = super::harness::now();
        return json(
            StatusCode::OK,
            serde_json::json!({
                "token": {"access_token": token, "expires_in": "3599", "expires_on": (now + 3599).to_string(),
                          "resource": resource, "token_type": "Bearer"},
                "clientid": principal
            }),
        );
    }
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error":"not_found"}),
    )
}
