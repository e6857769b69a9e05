//! Trust boundaries: credentials (a pod's client assertion, a client secret, a bearer token) go only
//! to the host they are meant for. None of the provider's peers redirects, so a 3xx from any of
//! them fails the call at once and nothing is sent to the `Location`. The redirect target below is
//! a listener that counts connections; it is reachable through `--resolve`, so a client that
//! followed the redirect would reach it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tonic::Code;

use crate::support::harness::*;

const V: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const APP: &str = "11111111-2222-3333-4444-555555555555";
const NODE_MI: &str = "6a1e2b3c-0000-4000-8000-00000000a001";
/// Where the redirects point: a host routed to [`Counter`] by `--resolve`.
const ELSEWHERE: &str = "collector.example";

/// A TCP listener that counts the connections it accepts (and answers none).
struct Counter {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Counter {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Self { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The `Location` the redirecting peer sends: the counter's host, a path, and a query that a
    /// message must not repeat.
    fn location(&self) -> String {
        format!(
            "https://{ELSEWHERE}:{}/collect?state=do-not-echo",
            self.addr.port()
        )
    }

    /// The same by address, for the node-local client (which has no `--resolve` overrides).
    fn local_location(&self) -> String {
        format!("http://{}/collect?state=do-not-echo", self.addr)
    }
}

/// A peer that answers every request with `status` and `Location: location`, over TLS with the
/// emulator's certificate or in plain HTTP (IMDS, NMI); returns its address and a request count.
async fn redirecting_peer(
    tls: Option<rustls::ServerConfig>,
    status: u16,
    location: String,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, location, count) = (acceptor.clone(), location.clone(), count.clone());
            tokio::spawn(async move {
                let answer = format!(
                    "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                );
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(mut tls) = acceptor.accept(tcp).await {
                            answer_once(&mut tls, &answer, &count).await;
                        }
                    }
                    None => {
                        let mut tcp = tcp;
                        answer_once(&mut tcp, &answer, &count).await;
                    }
                }
            });
        }
    });
    (addr, requests)
}

/// Reads one request's headers (and whatever body came with them), then answers.
async fn answer_once(
    io: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    answer: &str,
    count: &AtomicUsize,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    let _ = io.write_all(answer.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// TLS as the emulator serves it, HTTP/1.1 only (the peer speaks raw HTTP/1.1).
fn emulator_tls(emu: &Emulator) -> rustls::ServerConfig {
    let mut tls = (*emu.pki().server_config()).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}

async fn seeded() -> Emulator {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("db-password", plain_secret(V, "trust-test-secret", 1));
    emu
}

fn one_secret() -> String {
    objects(&["objectName: db-password\nobjectType: secret"])
}

/// The node's user-assigned managed identity `NODE_MI`.
fn vm_identity() -> akv_csi_provider::proto::MountRequest {
    let mut b = MountBuilder::workload(&one_secret())
        .without("clientID")
        .param("useVMManagedIdentity", "true")
        .param("userAssignedIdentityID", NODE_MI);
    b.token = None;
    b.build()
}

/// aad-pod-identity for the default pod.
fn pod_identity() -> akv_csi_provider::proto::MountRequest {
    let mut b = MountBuilder::workload(&one_secret())
        .without("clientID")
        .param("usePodIdentity", "true");
    b.token = None;
    b.build()
}

/// The service principal `APP` with its client secret.
fn service_principal() -> akv_csi_provider::proto::MountRequest {
    let mut b = MountBuilder::workload(&one_secret()).without("clientID");
    b.token = None;
    b.secrets = format!(r#"{{"clientid":"{APP}","clientsecret":"sp-secret-not-for-others"}}"#);
    b.build()
}

/// Routes `host` to `addr` and the redirect target to `counter`.
fn route(config: &mut akv_csi_provider::Config, host: &str, addr: SocketAddr, counter: &Counter) {
    for (h, a) in [(host, addr), (ELSEWHERE, counter.addr)] {
        config
            .resolve_overrides
            .push(format!("{h}={a}").parse().unwrap());
    }
}

/// The Mount failed naming the redirecting host, the status and the target host (not the query),
/// nothing reached the target, and the peer was asked exactly once (a redirect is not retried).
async fn refused(
    provider: &Provider,
    request: akv_csi_provider::proto::MountRequest,
    (host, target): (&str, &str),
    status: u16,
    counter: &Counter,
    peer_requests: &AtomicUsize,
) -> String {
    let (_, message) = provider
        .mount_fails(
            request,
            Code::Unavailable,
            &[
                host,
                &format!("HTTP {status}"),
                &format!("redirecting to {target}"),
                "never redirect",
            ],
        )
        .await;
    assert!(!message.contains("do-not-echo"), "{message}");
    assert_eq!(counter.accepted(), 0, "a request followed the redirect");
    assert_eq!(peer_requests.load(Ordering::SeqCst), 1, "{message}");
    message
}

fn metric_line(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

/// Regression: Entra answering 307 made the provider POST the pod's service-account token (the
/// client assertion) again to the `Location`'s host.
#[tokio::test]
async fn a_redirect_from_entra_keeps_the_client_assertion_home() {
    let emu = seeded().await;
    let counter = Counter::start().await;
    let (peer, asked) = redirecting_peer(Some(emulator_tls(&emu)), 307, counter.location()).await;
    let provider = Provider::start(&emu, |c| {
        route(c, "login.microsoftonline.com", peer, &counter)
    })
    .await;
    let request = MountBuilder::workload(&one_secret()).build();
    refused(
        &provider,
        request,
        ("login.microsoftonline.com", ELSEWHERE),
        307,
        &counter,
        &asked,
    )
    .await;
    let metrics = provider.metrics().await;
    assert!(
        metric_line(
            &metrics,
            "akv_token_requests_total{mode=\"workload_identity\",outcome=\"transport\"} 1"
        ),
        "{metrics}"
    );
}

/// Regression: the same for a service principal's client secret (308 keeps the method and body).
#[tokio::test]
async fn a_redirect_from_entra_keeps_the_client_secret_home() {
    let emu = seeded().await;
    emu.entra()
        .add_client_secret(TENANT, APP, "sp-secret-not-for-others");
    let counter = Counter::start().await;
    let (peer, asked) = redirecting_peer(Some(emulator_tls(&emu)), 308, counter.location()).await;
    let provider = Provider::start(&emu, |c| {
        route(c, "login.microsoftonline.com", peer, &counter)
    })
    .await;
    refused(
        &provider,
        service_principal(),
        ("login.microsoftonline.com", ELSEWHERE),
        308,
        &counter,
        &asked,
    )
    .await;
}

/// Regression: Key Vault's redirects were followed (without the bearer token, but the other host's
/// answer would have been mounted as the secret).
#[tokio::test]
async fn a_redirect_from_key_vault_is_not_followed() {
    let emu = seeded().await;
    let counter = Counter::start().await;
    let (peer, asked) = redirecting_peer(Some(emulator_tls(&emu)), 302, counter.location()).await;
    let provider = Provider::start(&emu, |c| {
        route(c, "kv-main.vault.azure.net", peer, &counter)
    })
    .await;
    let message = refused(
        &provider,
        MountBuilder::workload(&one_secret()).build(),
        ("kv-main.vault.azure.net", ELSEWHERE),
        302,
        &counter,
        &asked,
    )
    .await;
    assert!(message.contains("db-password"), "{message}");
    let metrics = provider.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keyvault_request_count{") && l.contains("error=\"transport\"")),
        "{metrics}"
    );
}

/// IMDS answering 307: no request to the target, and no retry of IMDS either.
#[tokio::test]
async fn a_redirect_from_imds_is_not_followed() {
    let emu = seeded().await;
    let counter = Counter::start().await;
    let (peer, asked) = redirecting_peer(None, 307, counter.local_location()).await;
    let provider = Provider::start(&emu, |c| {
        c.imds_endpoint = format!("http://{peer}");
    })
    .await;
    refused(
        &provider,
        vm_identity(),
        ("127.0.0.1", "127.0.0.1"),
        307,
        &counter,
        &asked,
    )
    .await;
}

/// aad-pod-identity's NMI answering 307.
#[tokio::test]
async fn a_redirect_from_nmi_is_not_followed() {
    let emu = seeded().await;
    let counter = Counter::start().await;
    let (peer, asked) = redirecting_peer(None, 307, counter.local_location()).await;
    let provider = Provider::start(&emu, |c| {
        c.nmi_endpoint = format!("http://{peer}");
    })
    .await;
    refused(
        &provider,
        pod_identity(),
        ("127.0.0.1", "127.0.0.1"),
        307,
        &counter,
        &asked,
    )
    .await;
}

/// The AKS token proxy (identity binding) answering 307: the pod's token stays home.
#[tokio::test]
async fn a_redirect_from_the_token_proxy_is_not_followed() {
    let emu = seeded().await;
    let counter = Counter::start().await;
    let (peer, asked) = redirecting_peer(Some(emulator_tls(&emu)), 307, counter.location()).await;
    let provider = Provider::start(&emu, |c| {
        with_token_proxy(c);
        route(c, "kubernetes.default.svc", peer, &counter);
    })
    .await;
    let request = identity_binding(&emu, &one_secret()).build();
    refused(
        &provider,
        request,
        ("tokenproxy.aks.example", ELSEWHERE),
        307,
        &counter,
        &asked,
    )
    .await;
}

/// Names the kubelet can write stay accepted: Linux stores Unicode names as given.
#[tokio::test]
async fn ordinary_unicode_file_names_are_mounted_as_given() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: db-password\nobjectType: secret\nobjectAlias: pässwort",
        "objectName: db-password\nobjectType: secret\nobjectAlias: 密码/db",
    ]))
    .build();
    let response = provider.mount(request).await.expect("mount");
    for path in ["pässwort", "密码/db"] {
        assert_eq!(file(&response, path).contents, b"trust-test-secret");
    }
}

// A token Key Vault refuses (HTTP 401) is replaced once, not served from the cache until it expires.

/// A claims request as continuous access evaluation sends it (base64 in the challenge).
const CLAIMS: &str = r#"{"access_token":{"nbf":{"essential":true,"value":"1726077595"}}}"#;

fn token_cache_line(metrics: &str, result: &str) -> Option<u64> {
    let prefix = format!("akv_token_cache_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

/// Regression: a revoked token stayed cached, and every Mount of that identity failed with 401
/// until the token expired (up to a day for managed identities).
#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_mount_succeeds() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = || MountBuilder::workload(&one_secret()).build();
    provider.mount(request()).await.expect("first Mount");
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 1);
    emu.revoke_tokens(CLIENT_ID);
    let response = provider
        .mount(request())
        .await
        .expect("Mount after revocation");
    assert_eq!(response.files[0].contents, b"trust-test-secret");
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
    // The replacement is cached in turn.
    provider.mount(request()).await.expect("third Mount");
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
    let metrics = provider.metrics().await;
    assert_eq!(token_cache_line(&metrics, "replaced"), Some(1), "{metrics}");
}

/// Mounts of one identity that meet the refusal together share one replacement.
#[tokio::test]
async fn concurrent_mounts_share_one_replacement() {
    let emu = seeded().await;
    let provider = Arc::new(Provider::start(&emu, |_| {}).await);
    let request = || MountBuilder::workload(&one_secret()).build();
    provider.mount(request()).await.expect("first Mount");
    emu.revoke_tokens(CLIENT_ID);
    let mounts: Vec<_> = (0..20)
        .map(|_| {
            let provider = provider.clone();
            let request = request();
            tokio::spawn(async move { provider.mount(request).await })
        })
        .collect();
    for mount in mounts {
        mount.await.unwrap().expect("Mount after revocation");
    }
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
    let metrics = provider.metrics().await;
    assert_eq!(token_cache_line(&metrics, "replaced"), Some(1), "{metrics}");
}

/// Continuous access evaluation: the 401's `insufficient_claims` challenge is answered by a token
/// request that carries its claims.
#[tokio::test]
async fn a_claims_challenge_is_answered_with_its_claims() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = || MountBuilder::workload(&one_secret()).build();
    provider.mount(request()).await.expect("first Mount");
    emu.vault(VAULT).require_claims(CLAIMS);
    provider
        .mount(request())
        .await
        .expect("Mount after the challenge");
    let form = emu.entra().last_form().expect("a token request");
    assert_eq!(form.get("claims").map(String::as_str), Some(CLAIMS));
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
}

/// A second 401, for the new token, fails the Mount with UNAUTHENTICATED naming the vault, the
/// object, the identity and what to check; the next Mount uses the new token.
#[tokio::test]
async fn a_token_refused_twice_fails_naming_vault_and_identity() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let request = || MountBuilder::workload(&one_secret()).build();
    provider.mount(request()).await.expect("first Mount");
    emu.vault(VAULT).fail_next(2, 401);
    provider
        .mount_fails(
            request(),
            Code::Unauthenticated,
            &[
                "\"db-password\" from vault kv-main",
                &format!("workload identity with client ID {CLIENT_ID}"),
                "twice",
                "tenantID",
            ],
        )
        .await;
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
    provider.mount(request()).await.expect("Mount afterwards");
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
}

/// Only the refused identity's token is dropped: another identity's stays cached.
#[tokio::test]
async fn only_the_refused_identitys_token_is_dropped() {
    let emu = seeded().await;
    emu.entra()
        .add_client_secret(TENANT, APP, "sp-secret-not-for-others");
    emu.vault(VAULT).grant(APP);
    let provider = Provider::start(&emu, |_| {}).await;
    let workload = || MountBuilder::workload(&one_secret()).build();
    let principal = service_principal;
    provider.mount(workload()).await.expect("workload");
    provider
        .mount(principal())
        .await
        .expect("service principal");
    emu.revoke_tokens(CLIENT_ID);
    provider
        .mount(principal())
        .await
        .expect("service principal");
    provider
        .mount(workload())
        .await
        .expect("workload, replaced");
    assert_eq!(emu.entra().requests_for(APP), 1);
    assert_eq!(emu.entra().requests_for(CLIENT_ID), 2);
}

/// A managed identity's token refused by Key Vault is asked of IMDS once more (IMDS takes no
/// claims; a token it still caches is refused again and the Mount fails as above).
#[tokio::test]
async fn a_refused_managed_identity_token_is_asked_of_imds_again() {
    let emu = seeded().await;
    emu.node().assign_user_identity(NODE_MI);
    emu.vault(VAULT).grant(NODE_MI);
    let imds = emu.local_url();
    let provider = Provider::start(&emu, |c| c.imds_endpoint = imds).await;
    let request = vm_identity;
    provider.mount(request()).await.expect("first Mount");
    let asked = emu.node().requests();
    emu.revoke_tokens(NODE_MI);
    provider
        .mount(request())
        .await
        .expect("Mount after revocation");
    assert_eq!(emu.node().requests(), asked + 1);
}

/// Identity binding: the replacement goes through the token proxy, with the claims.
#[tokio::test]
async fn the_token_proxy_gets_the_claims_challenge() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, with_token_proxy).await;
    let b = identity_binding(&emu, &one_secret());
    provider.mount(b.build()).await.expect("first Mount");
    emu.vault(VAULT).require_claims(CLAIMS);
    provider
        .mount(b.build())
        .await
        .expect("Mount after the challenge");
    assert_eq!(
        emu.entra().last_host().as_deref(),
        Some("tokenproxy.aks.example")
    );
    let form = emu.entra().last_form().expect("a token request");
    assert_eq!(form.get("claims").map(String::as_str), Some(CLAIMS));
}

/// The bearer token goes only to the vault's host: a version listing whose `nextLink` points at
/// another host is refused, and that host gets no request.
#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let emu = seeded().await;
    let counter = Counter::start().await;
    emu.vault(VAULT).put_raw_json(
        "/secrets/db-password/versions",
        200,
        serde_json::json!({"value": [], "nextLink": counter.location()}),
    );
    let provider = Provider::start(&emu, |c| {
        c.resolve_overrides
            .push(format!("{ELSEWHERE}={}", counter.addr).parse().unwrap());
    })
    .await;
    let request = MountBuilder::workload(&objects(&[
        "objectName: db-password\nobjectType: secret\nobjectVersionHistory: 2",
    ]))
    .build();
    let (_, message) = provider
        .mount_fails(
            request,
            Code::Internal,
            &["db-password", "kv-main", "points outside", ELSEWHERE],
        )
        .await;
    assert!(!message.contains("do-not-echo"), "{message}");
    assert_eq!(counter.accepted(), 0);
}
