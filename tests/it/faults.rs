//! When Azure misbehaves: each fault is one test asserting the gRPC code, the message (which names
//! the host or the vault and object) and that the Mount ends within its deadline; after each, the
//! daemon still answers Health and serves a good Mount.
//!
//! Faults the emulator models (throttling, 5xx) come from it; the others come from a misbehaving
//! HTTPS peer below, which presents a certificate of the emulator's CA (or, for the TLS rows, one
//! the daemon must refuse) and answers in raw HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_csi_provider::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;

use crate::support::harness::*;

const V: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// The Mount deadline of these tests (`--mount-timeout`).
const DEADLINE: Duration = Duration::from_secs(3);

/// How the misbehaving peer answers.
#[derive(Clone, Copy)]
enum Fault {
    /// HTTP 503 with a JSON error body, every time.
    ServerError,
    /// Reads the request and never answers.
    Hang,
    /// 200 with an HTML body.
    Garbage,
    /// 200 announcing 2000 bytes, sends 20, closes.
    ResetMidBody,
    /// 200, then one byte of body every 300 ms.
    Trickle,
}

/// A TLS listener that misbehaves as told.
async fn faulty_peer(tls: rustls::ServerConfig, fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                loop {
                    // One request: headers, then the body its Content-Length announces.
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    let header_end = loop {
                        let Ok(n) = tls.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&request[..header_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while request.len() < header_end + length {
                        let Ok(n) = tls.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    let reply = |status: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    match fault {
                        Fault::ServerError => {
                            let body = r#"{"error":"temporarily_unavailable","error_description":"AADSTS90006: try again","error_codes":[90006]}"#;
                            let body = if head.contains("/secrets/") {
                                r#"{"error":{"code":"InternalServerError","message":"try again"}}"#
                            } else {
                                body
                            };
                            if tls
                                .write_all(reply("503 Service Unavailable", body).as_bytes())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Fault::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        Fault::Garbage => {
                            let _ = tls
                                .write_all(reply("200 OK", "<html>gateway</html>").as_bytes())
                                .await;
                        }
                        Fault::ResetMidBody => {
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{\"value\":\"partial")
                                .await;
                            let _ = tls.shutdown().await;
                            return;
                        }
                        Fault::Trickle => {
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n")
                                .await;
                            for _ in 0..2000 {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                if tls.write_all(b" ").await.is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// TLS as the emulator serves it, HTTP/1.1 only (the peer speaks raw HTTP/1.1).
fn emulator_tls(emu: &Emulator) -> rustls::ServerConfig {
    let mut tls = (*emu.pki().server_config()).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}

/// TLS with a certificate of the emulator's CA for a name that is not the host's.
fn wrong_name_tls(emu: &Emulator) -> rustls::ServerConfig {
    let leaf = emu
        .pki()
        .leaf("elsewhere", &["elsewhere.example".into()])
        .unwrap();
    tls_with(leaf.cert_der, &leaf.key_pem)
}

/// TLS with a self-signed certificate for the vault's name: an issuer the daemon has never seen.
/// (Another emulator's CA would not do: it has the trusted CA's name, so its certificates fail on
/// their signature rather than on an unknown issuer.)
fn unknown_ca_tls() -> rustls::ServerConfig {
    let own =
        rcgen::generate_simple_self_signed(vec!["kv-main.vault.azure.net".to_owned()]).unwrap();
    tls_with(own.cert.der().to_vec(), &own.signing_key.serialize_pem())
}

/// TLS with `cert_der` and its PKCS#8 PEM key, HTTP/1.1 only.
fn tls_with(cert_der: Vec<u8>, key_pem: &str) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject as _;
    let cert = rustls::pki_types::CertificateDer::from(cert_der);
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}

fn point(config: &mut Config, host: &str, addr: SocketAddr) {
    config.mount_timeout = DEADLINE;
    // A later override of the same host wins.
    config
        .resolve_overrides
        .push(format!("{host}={addr}").parse().unwrap());
}

async fn seeded() -> Emulator {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret(V, "fault-test-secret", 1_700_000_000),
    );
    emu.vault("kv-other").grant(CLIENT_ID).put_secret(
        "db-password",
        plain_secret(V, "fault-test-other", 1_700_000_000),
    );
    emu
}

fn request(vault: &str) -> akv_csi_provider::proto::MountRequest {
    MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
        .param("keyvaultName", vault)
        .build()
}

/// After a fault: Health answers, and a Mount that avoids the faulty peer succeeds (`via_us_gov`:
/// authenticate through the US Government cloud's authority when the public one is the faulty peer).
async fn still_serves(provider: &Provider, via_us_gov: bool) {
    let health = akv_csi_provider::server::health::check_socket(
        provider.socket.clone(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(health, Ok(()));
    let mut good =
        MountBuilder::workload(&objects(&["objectName: db-password\nobjectType: secret"]))
            .param("keyvaultName", "kv-other");
    if via_us_gov {
        good = good.param("cloudName", "AzureUSGovernmentCloud");
    }
    let response = provider
        .mount(good.build())
        .await
        .expect("a good Mount after the fault");
    assert_eq!(response.files[0].contents, b"fault-test-other");
}

/// Mounts `request`, expecting `code`, a message with every one of `words`, within the deadline;
/// returns how long it took and the message.
async fn expect_failure(
    provider: &Provider,
    request: akv_csi_provider::proto::MountRequest,
    code: Code,
    words: &[&str],
) -> (Duration, String) {
    let (elapsed, message) = provider.mount_fails(request, code, words).await;
    assert!(
        elapsed <= DEADLINE + Duration::from_secs(1),
        "took {elapsed:?}"
    );
    (elapsed, message)
}

#[tokio::test]
async fn entra_refusing_connections() {
    let emu = seeded().await;
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let provider = Provider::start(&emu, |c| point(c, "login.microsoftonline.com", closed)).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &["login.microsoftonline.com"],
    )
    .await;
    still_serves(&provider, true).await;
}

#[tokio::test]
async fn entra_answering_5xx() {
    let emu = seeded().await;
    let peer = faulty_peer(emulator_tls(&emu), Fault::ServerError).await;
    let provider = Provider::start(&emu, |c| point(c, "login.microsoftonline.com", peer)).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &["login.microsoftonline.com", "HTTP 503"],
    )
    .await;
    still_serves(&provider, true).await;
}

#[tokio::test]
async fn entra_answering_slower_than_the_deadline() {
    let emu = seeded().await;
    let peer = faulty_peer(emulator_tls(&emu), Fault::Hang).await;
    let provider = Provider::start(&emu, |c| point(c, "login.microsoftonline.com", peer)).await;
    let (elapsed, _) = expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &["login.microsoftonline.com", "did not answer in time"],
    )
    .await;
    assert!(
        elapsed >= DEADLINE - Duration::from_millis(500),
        "waited for the deadline: {elapsed:?}"
    );
    still_serves(&provider, true).await;
}

#[tokio::test]
async fn entra_answering_garbage() {
    let emu = seeded().await;
    let peer = faulty_peer(emulator_tls(&emu), Fault::Garbage).await;
    let provider = Provider::start(&emu, |c| point(c, "login.microsoftonline.com", peer)).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &[
            "Entra ID at login.microsoftonline.com",
            "not the expected JSON",
        ],
    )
    .await;
    still_serves(&provider, true).await;
}

#[tokio::test]
async fn key_vault_429_storm() {
    let emu = seeded().await;
    emu.vault(VAULT).throttle_next(1000, 1);
    let provider = Provider::start(&emu, |c| c.mount_timeout = DEADLINE).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &["kv-main", "db-password", "throttling"],
    )
    .await;
    // Retried within bounds: about one request per Retry-After second, not a storm.
    let requests = emu.vault(VAULT).requests().len();
    assert!(
        (2..=5).contains(&requests),
        "{requests} requests in {DEADLINE:?}"
    );
    still_serves(&provider, false).await;
}

#[tokio::test]
async fn key_vault_5xx_storm() {
    let emu = seeded().await;
    emu.vault(VAULT).fail_next(1000, 503);
    let provider = Provider::start(&emu, |c| c.mount_timeout = DEADLINE).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &["kv-main", "db-password", "HTTP 503"],
    )
    .await;
    assert_eq!(emu.vault(VAULT).requests().len(), 3, "three attempts");
    still_serves(&provider, false).await;
}

#[tokio::test]
async fn key_vault_resetting_the_connection_mid_body() {
    let emu = seeded().await;
    let peer = faulty_peer(emulator_tls(&emu), Fault::ResetMidBody).await;
    let provider = Provider::start(&emu, |c| point(c, "kv-main.vault.azure.net", peer)).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &["kv-main.vault.azure.net", "db-password"],
    )
    .await;
    still_serves(&provider, false).await;
}

#[tokio::test]
async fn key_vault_trickling_its_body() {
    let emu = seeded().await;
    let peer = faulty_peer(emulator_tls(&emu), Fault::Trickle).await;
    let provider = Provider::start(&emu, |c| point(c, "kv-main.vault.azure.net", peer)).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &[
            "kv-main.vault.azure.net",
            "did not answer in time",
            "db-password",
        ],
    )
    .await;
    still_serves(&provider, false).await;
}

#[tokio::test]
async fn tls_with_an_unknown_ca() {
    let emu = seeded().await;
    let peer = faulty_peer(unknown_ca_tls(), Fault::Garbage).await;
    let provider = Provider::start(&emu, |c| point(c, "kv-main.vault.azure.net", peer)).await;
    expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &[
            "TLS with kv-main.vault.azure.net failed",
            "the certificate of kv-main.vault.azure.net is not trusted",
            "SSL_CERT_FILE",
        ],
    )
    .await;
    still_serves(&provider, false).await;
}

#[tokio::test]
async fn tls_with_a_certificate_for_another_name() {
    let emu = seeded().await;
    let peer = faulty_peer(wrong_name_tls(&emu), Fault::Garbage).await;
    let provider = Provider::start(&emu, |c| point(c, "kv-main.vault.azure.net", peer)).await;
    let (_, message) = expect_failure(
        &provider,
        request(VAULT),
        Code::Unavailable,
        &[
            "TLS with kv-main.vault.azure.net failed",
            "does not match the host name kv-main.vault.azure.net",
        ],
    )
    .await;
    // Trusting another CA would not help, so there is no advice to.
    assert!(
        !message.contains("SSL_CERT_FILE") && !message.contains("not trusted"),
        "{message}"
    );
    still_serves(&provider, false).await;
}

/// The client's deadline is shorter than the work: the Mount stops at the client's deadline, its
/// fetches are cancelled, and no task is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_mount_leaves_nothing_behind() {
    // The emulator runs on a runtime of its own, so that the task counts below are the daemon's
    // alone (the emulator's handlers sleep through their latency whatever the client does).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            tx.send(seeded().await).unwrap();
            std::future::pending::<()>().await
        })
    });
    let emu = rx.recv().unwrap();
    emu.vault(VAULT).set_latency(Duration::from_secs(2));
    let provider = Provider::start(&emu, |_| {}).await;
    // Warm up: connections, the token, lazily started tasks.
    still_serves(&provider, false).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let rss_before = rss_kib();
    for _ in 0..10 {
        // A deadline the daemon is told about (grpc-timeout): it answers by then, naming the peer.
        let mut req = tonic::Request::new(request(VAULT));
        req.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let status = provider
            .client()
            .await
            .mount(req)
            .await
            .expect_err("cancelled");
        assert!(
            matches!(
                status.code(),
                Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable
            ),
            "{status:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // A client that just goes away (the stream is reset).
        let mut client = provider.client().await;
        let gone =
            tokio::time::timeout(Duration::from_millis(300), client.mount(request(VAULT))).await;
        assert!(gone.is_err(), "the client gave up first");
    }
    // The fetches were cancelled, not left to finish their 2 s: well before then, nothing is in
    // flight and the tasks are back to where they were (polled: a loaded machine is slower to
    // run the connections' clean-up).
    let settled = Instant::now() + Duration::from_secs(1);
    let tasks_after = loop {
        let text = provider.metrics().await;
        let tasks = metrics.num_alive_tasks();
        if (text.contains("akv_mounts_in_flight 0") && tasks <= tasks_before + 2)
            || Instant::now() > settled
        {
            assert!(text.contains("akv_mounts_in_flight 0"), "{text}");
            break tasks;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rss_after = rss_kib();
    eprintln!(
        "cancellation: alive tasks {tasks_before} -> {tasks_after}, RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        tasks_after <= tasks_before + 2,
        "tasks {tasks_before} -> {tasks_after}"
    );
    still_serves(&provider, false).await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// SIGTERM with Mounts in flight: they finish within the grace period, the socket is removed and
/// the daemon exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_mounts_in_flight() {
    let emu = seeded().await;
    emu.vault(VAULT).set_latency(Duration::from_millis(800));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.ca_pem()).unwrap();
    let socket = dir.path().join("azure.sock");
    let addr = emu.addr();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args([
            "--healthz-port=0",
            "--prometheus-port=0",
            "--shutdown-grace-period=10s",
        ])
        .arg(format!("--resolve=login.microsoftonline.com={addr}"))
        .arg(format!("--resolve=kv-main.vault.azure.net={addr}"))
        .env("SSL_CERT_FILE", &ca)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_socket(&socket).await;
    let mut mounts = Vec::new();
    for _ in 0..3 {
        let socket = socket.clone();
        mounts.push(tokio::spawn(async move {
            let channel = akv_csi_provider::server::socket::connect(&socket)
                .await
                .unwrap();
            akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient::new(
                channel,
            )
            .mount(request(VAULT))
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    for m in mounts {
        let response = m
            .await
            .unwrap()
            .expect("an in-flight Mount finishes")
            .into_inner();
        assert_eq!(response.files[0].contents, b"fault-test-secret");
    }
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket is removed");
}
