//! The "Limits" section of README.md, one test per bound: going over it fails the Mount with the
//! documented gRPC code and a message that names what went over (vault and object, field, peer)
//! and the bound's value; afterwards the daemon still answers Health and serves a good Mount.
//!
//! Bounds covered elsewhere: the `:authority` layer's frame and header caps (unit tests of
//! `src/server/authority_rewrite/`), `--mount-timeout` and the caller's deadline (`faults.rs`),
//! `--max-concurrent-fetches` and `Retry-After` (`load.rs`, `versions.rs`), the caches (unit tests).
//! Not tested: the IMDS and NMI answer bound (only Entra ID's), the 16 token requests in flight
//! per Entra authority, and the liveness and metrics endpoints' 10 s header deadline.

use std::time::{Duration, Instant};

use serde_json::json;
use tonic::Code;

use crate::support::harness::*;

const V: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// A user-assigned identity of the node.
const NODE_ID: &str = "7a3c1e52-0d4b-4f6a-9c8e-2b1d5f7e9a30";
const GOOD: &str = "objectName: db-password\nobjectType: secret";

/// An emulator with `db-password` in both vaults, readable by `CLIENT_ID`.
async fn seeded() -> Emulator {
    let emu = federated_emulator().await;
    emu.vault(VAULT)
        .put_secret("db-password", plain_secret(V, "limits-main", 1_700_000_000));
    emu.vault("kv-other").grant(CLIENT_ID).put_secret(
        "db-password",
        plain_secret(V, "limits-other", 1_700_000_000),
    );
    emu
}

/// Health answers and a good Mount (from `kv-other`, which no test slows down) succeeds.
async fn still_serves(provider: &Provider) {
    let health = akv_csi_provider::server::health::check_socket(
        provider.socket.clone(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(health, Ok(()));
    let response = provider
        .mount(
            MountBuilder::workload(&objects(&[GOOD]))
                .param("keyvaultName", "kv-other")
                .build(),
        )
        .await
        .expect("a good Mount after going over the bound");
    assert_eq!(response.files.len(), 1);
    assert_eq!(response.files[0].contents, b"limits-other");
}

/// Mounts `request` expecting `code` and a message with every one of `words`; returns the message.
async fn expect_failure(
    provider: &Provider,
    request: akv_csi_provider::proto::MountRequest,
    code: Code,
    words: &[&str],
) -> String {
    provider.mount_fails(request, code, words).await.1
}

/// Key Vault answer for one object: 256 KiB (`MAX_OBJECT_BODY`). Not retried: the same object
/// would be as large the next time.
#[tokio::test]
async fn key_vault_object_body_over_256_kib() {
    let emu = seeded().await;
    emu.vault(VAULT)
        .put_secret("huge", plain_secret(V, &"h".repeat(300_000), 1_700_000_000));
    let provider = Provider::start(&emu, |_| {}).await;
    expect_failure(
        &provider,
        MountBuilder::workload(&objects(&["objectName: huge\nobjectType: secret"])).build(),
        Code::Internal,
        &[
            "secret \"huge\" from vault kv-main",
            "kv-main.vault.azure.net",
            "larger than 262144 bytes",
        ],
    )
    .await;
    let fetches = emu
        .vault(VAULT)
        .requests()
        .iter()
        .filter(|r| r.name.as_deref() == Some("huge"))
        .count();
    assert_eq!(fetches, 1, "an oversized answer is not retried");
    still_serves(&provider).await;
}

/// One page of a version listing: 1 MiB (`MAX_PAGE_BODY`).
#[tokio::test]
async fn version_listing_page_over_1_mib() {
    let emu = seeded().await;
    emu.vault(VAULT).put_raw_json(
        "/secrets/fat/versions",
        200,
        json!({
            "value": [{
                "id": format!("https://kv-main.vault.azure.net/secrets/fat/{V}"),
                "attributes": {"enabled": true, "created": 1_700_000_000},
                "tags": {"padding": "t".repeat(1_100_000)},
            }],
            "nextLink": null,
        }),
    );
    let provider = Provider::start(&emu, |_| {}).await;
    expect_failure(
        &provider,
        MountBuilder::workload(&objects(&[
            "objectName: fat\nobjectType: secret\nobjectVersionHistory: 2",
        ]))
        .build(),
        Code::Internal,
        &[
            "secret \"fat\" from vault kv-main",
            "kv-main.vault.azure.net",
            "larger than 1048576 bytes",
        ],
    )
    .await;
    still_serves(&provider).await;
}

/// Pages followed in one version listing: 200 (`MAX_PAGES`), against a `nextLink` that loops.
#[tokio::test]
async fn version_listing_over_200_pages() {
    let emu = seeded().await;
    emu.vault(VAULT).put_raw_json(
        "/secrets/looping/versions",
        200,
        json!({
            "value": [{
                "id": format!("https://kv-main.vault.azure.net/secrets/looping/{V}"),
                "attributes": {"enabled": true, "created": 1_700_000_000},
            }],
            "nextLink": "https://kv-main.vault.azure.net/secrets/looping/versions?api-version=7.4&maxresults=25&$skiptoken=again",
        }),
    );
    let provider = Provider::start(&emu, |_| {}).await;
    expect_failure(
        &provider,
        MountBuilder::workload(&objects(&[
            "objectName: looping\nobjectType: secret\nobjectVersionHistory: 3",
        ]))
        .build(),
        Code::Internal,
        &[
            "secret \"looping\" from vault kv-main",
            "more than 200 pages of versions",
        ],
    )
    .await;
    let pages = emu
        .vault(VAULT)
        .requests()
        .iter()
        .filter(|r| r.listing)
        .count();
    assert_eq!(pages, 200, "followed exactly the bound's pages");
    still_serves(&provider).await;
}

/// Entra ID's token answer: 64 KiB (`MAX_TOKEN_BODY`). A token request is not retried by the
/// daemon; the Mount is UNAVAILABLE (a garbled answer usually comes from a proxy) for the driver
/// to retry.
#[tokio::test]
async fn entra_token_answer_over_64_kib() {
    let emu = seeded().await;
    emu.entra().answer_next(
        1,
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "access_token": "padded-token",
            "padding": "p".repeat(70_000),
        }),
    );
    let provider = Provider::start(&emu, |_| {}).await;
    expect_failure(
        &provider,
        MountBuilder::workload(&objects(&[GOOD])).build(),
        Code::Unavailable,
        &[
            "Entra ID",
            "login.microsoftonline.com",
            "larger than 65536 bytes",
        ],
    )
    .await;
    assert_eq!(emu.entra().requests(), 1, "one token request");
    assert!(
        emu.kv_requests().is_empty(),
        "no Key Vault call without a token"
    );
    still_serves(&provider).await;
}

/// IMDS and NMI answers: 64 KiB (`MAX_TOKEN_BODY`), like Entra's. The node-local endpoints are
/// plain HTTP on the node: a rogue process on the IMDS address must not grow the daemon's memory.
#[tokio::test]
async fn imds_and_nmi_answers_over_64_kib() {
    let emu = seeded().await;
    let node = emu.node();
    node.assign_user_identity(NODE_ID);
    let pod = Pod::default();
    node.bind_pod(&pod.namespace, &pod.name, NODE_ID);
    emu.vault(VAULT).grant(NODE_ID);
    let oversized = json!({
        "access_token": "padded-token",
        "expires_in": "86399",
        "token_type": "Bearer",
        "padding": "p".repeat(70_000),
    });
    // Enough oversized answers for every retry of both Mounts.
    node.answer_next(20, 200, oversized);
    let local = emu.local_url();
    let provider = Provider::start(&emu, |c| {
        c.imds_endpoint = local.clone();
        c.nmi_endpoint = local.clone();
    })
    .await;
    let node_local = |param: &str| {
        let mut b = MountBuilder::workload(&objects(&[GOOD]))
            .without("clientID")
            .param(param, "true");
        if param == "useVMManagedIdentity" {
            b = b.param("userAssignedIdentityID", NODE_ID);
        }
        b.token = None;
        b.build()
    };
    let (_, imds) = provider
        .mount_fails(
            node_local("useVMManagedIdentity"),
            Code::Unavailable,
            &["IMDS", "larger than 65536 bytes"],
        )
        .await;
    let (_, nmi) = provider
        .mount_fails(
            node_local("usePodIdentity"),
            Code::Unavailable,
            &["NMI", "larger than 65536 bytes"],
        )
        .await;
    assert!(!imds.contains("padded-token") && !nmi.contains("padded-token"));
    assert!(
        emu.kv_requests().is_empty(),
        "no Key Vault call without a token"
    );
    still_serves(&provider).await;
}

/// `cloudEnvFileName`: a regular file of at most 64 KiB (`MAX_ENVIRONMENT_FILE`); a larger file
/// or a device is refused without being read.
#[tokio::test]
async fn cloud_environment_file_over_64_kib_or_not_a_file() {
    let emu = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("azurestackcloud.json");
    std::fs::write(&big, vec![b' '; 70_000]).unwrap();
    let provider = Provider::start(&emu, |_| {}).await;
    let stack = |path: &str| {
        MountBuilder::workload(&objects(&[GOOD]))
            .param("cloudName", "AzureStackCloud")
            .param("cloudEnvFileName", path)
            .build()
    };
    expect_failure(
        &provider,
        stack(big.to_str().unwrap()),
        Code::InvalidArgument,
        &[
            "cloudEnvFileName",
            big.to_str().unwrap(),
            "70000 bytes",
            "at most 65536",
        ],
    )
    .await;
    expect_failure(
        &provider,
        stack("/dev/zero"),
        Code::InvalidArgument,
        &["cloudEnvFileName", "/dev/zero", "not a regular file"],
    )
    .await;
    assert_eq!(emu.entra().requests(), 0, "no token request");
    still_serves(&provider).await;
}

/// The service-account tokens attribute: 64 KiB (`MAX_TOKENS_ATTRIBUTE`).
#[tokio::test]
async fn service_account_tokens_attribute_over_64_kib() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let mut request = MountBuilder::workload(&objects(&[GOOD])).build();
    let mut attributes: serde_json::Value = serde_json::from_str(&request.attributes).unwrap();
    let key = "csi.storage.k8s.io/serviceAccount.tokens";
    let mut tokens: serde_json::Value =
        serde_json::from_str(attributes[key].as_str().unwrap()).unwrap();
    tokens["api://padding"] = json!({
        "token": "q".repeat(70_000),
        "expirationTimestamp": "2099-01-01T00:00:00Z",
    });
    attributes[key] = tokens.to_string().into();
    request.attributes = attributes.to_string();
    expect_failure(
        &provider,
        request,
        Code::InvalidArgument,
        &[key, "more than the 65536"],
    )
    .await;
    assert_eq!(emu.entra().requests(), 0, "no token request");
    still_serves(&provider).await;
}

/// A gRPC request: 1 MiB (`MAX_REQUEST_BYTES`), refused by tonic before the daemon parses it.
#[tokio::test]
async fn grpc_request_over_1_mib() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let mut client = provider.client().await;
    let status = client
        .mount(akv_csi_provider::proto::MountRequest {
            attributes: "x".repeat((1 << 20) + 1),
            secrets: "null".into(),
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/secrets/mount".into(),
            permission: "420".into(),
            current_object_version: Vec::new(),
        })
        .await
        .expect_err("refused");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(
        status.message().contains("1048576"),
        "the message names the bound: {}",
        status.message()
    );
    // The same connection and a new one still serve.
    let response = client
        .mount(
            MountBuilder::workload(&objects(&[GOOD]))
                .param("keyvaultName", "kv-other")
                .build(),
        )
        .await
        .expect("a good Mount on the same connection")
        .into_inner();
    assert_eq!(response.files[0].contents, b"limits-other");
    still_serves(&provider).await;
}

/// PFX KDF and MAC iterations: 1,000,000 (`MAX_ITERATIONS`), refused before any key derivation.
/// The fixture is a throwaway P-256 key and self-signed certificate exported with OpenSSL 3.0:
/// `openssl pkcs12 -export -inkey key.pem -in cert.pem -passout pass: -iter 1000001 -macalg sha256`
/// (MAC and PBES2 iterations 1,000,001).
#[tokio::test]
async fn pfx_iterations_over_1_000_000() {
    let emu = seeded().await;
    let pfx = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/testdata/pfx-iter-1000001.pfx.b64"
    ))
    .unwrap();
    let mut version = plain_secret(V, pfx.trim(), 1_700_000_000);
    // Certificate-backed, as Key Vault stores a certificate's secret: only then is a PFX decoded.
    version.content_type = Some("application/x-pkcs12".into());
    version.kid = Some(format!("https://kv-main.vault.azure.net/keys/slow-pfx/{V}"));
    emu.vault(VAULT).put_secret("slow-pfx", version);
    let provider = Provider::start(&emu, |_| {}).await;
    let started = Instant::now();
    expect_failure(
        &provider,
        MountBuilder::workload(&objects(&["objectName: slow-pfx\nobjectType: secret"])).build(),
        Code::FailedPrecondition,
        &[
            "secret \"slow-pfx\" from vault kv-main",
            "iteration count 1000001",
            "1 to 1000000",
        ],
    )
    .await;
    // Refused on the count: 10^6 PBKDF rounds would take seconds in a debug build.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    still_serves(&provider).await;
}

/// Connections on the provider socket: 256 (`MAX_CONNECTIONS`); a new one over the bound is closed
/// at once (logged with the bound), and a freed slot is taken again. Each connection advertises at
/// most 1,024 concurrent streams (`MAX_STREAMS_PER_CONNECTION`) in its HTTP/2 SETTINGS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_256_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    /// The client preface and an empty SETTINGS frame.
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let mut held = Vec::new();
    for i in 0..256 {
        let mut conn = tokio::net::UnixStream::connect(&provider.socket)
            .await
            .unwrap();
        conn.write_all(PREFACE).await.unwrap();
        if i == 0 {
            // The server's SETTINGS frame comes first: 9 bytes of header, then 6 bytes a setting.
            let mut header = [0u8; 9];
            conn.read_exact(&mut header).await.unwrap();
            assert_eq!(header[3], 0x4, "a SETTINGS frame");
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0u8; len];
            conn.read_exact(&mut payload).await.unwrap();
            let max_streams = payload.chunks(6).find_map(|s| {
                (u16::from_be_bytes([s[0], s[1]]) == 0x3)
                    .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
            });
            assert_eq!(max_streams, Some(1024), "SETTINGS_MAX_CONCURRENT_STREAMS");
        }
        held.push(conn);
    }
    // The 257th is accepted and closed without a byte (an accepted connection gets SETTINGS).
    let mut over = tokio::net::UnixStream::connect(&provider.socket)
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), over.read(&mut buf))
        .await
        .expect("the connection over the bound is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        crate::support::hygiene::lines().iter().any(|l| l
            .contains("too many connections on the provider socket")
            && l.contains("256")),
        "the refusal is logged with the bound"
    );
    // One connection closes: its slot serves a new client.
    held.pop();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let health = akv_csi_provider::server::health::check_socket(
            provider.socket.clone(),
            Duration::from_secs(1),
        )
        .await;
        if health.is_ok() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the freed slot was not reused: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    let until = Instant::now() + Duration::from_secs(5);
    while akv_csi_provider::server::health::check_socket(
        provider.socket.clone(),
        Duration::from_secs(1),
    )
    .await
    .is_err()
    {
        assert!(Instant::now() < until, "slots not freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    still_serves(&provider).await;
}

/// The bounds validation enforces, before any network call: objects per SecretProviderClass 256
/// (`MAX_OBJECTS`), `objectVersionHistory` 100 (`MAX_VERSION_HISTORY`), files per Mount 1,024
/// (`MAX_FILES`: objects × history × split files; here 11 × 100).
#[tokio::test]
async fn validation_bounds_are_refused_before_any_network_call() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let many = |n: usize, extra: &str| -> Vec<String> {
        (0..n)
            .map(|i| format!("objectName: s{i}\nobjectType: secret{extra}"))
            .collect()
    };
    let cases: [(Vec<String>, &[&str]); 3] = [
        (
            many(257, ""),
            &["objects: 257 entries", "at most 256 objects"],
        ),
        (
            vec!["objectName: rotating\nobjectType: secret\nobjectVersionHistory: 101".into()],
            &[
                "objects.array[0] (rotating)",
                "objectVersionHistory 101",
                "at most 100",
            ],
        ),
        (
            many(11, "\nobjectVersionHistory: 100"),
            &["objects", "1100 files", "more than the 1024"],
        ),
    ];
    for (items, words) in cases {
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        expect_failure(
            &provider,
            MountBuilder::workload(&objects(&items)).build(),
            Code::InvalidArgument,
            words,
        )
        .await;
    }
    assert_eq!(emu.entra().requests(), 0, "refused before any network call");
    still_serves(&provider).await;
}

/// The Mount response: `--max-response-bytes` (here 64 KiB, the flag's minimum). The whole Mount
/// fails naming the three largest files, so that no partial volume is written.
#[tokio::test]
async fn response_over_max_response_bytes() {
    let emu = seeded().await;
    for (name, fill, size) in [
        ("large-a", "a", 30_000),
        ("large-b", "b", 25_000),
        ("large-c", "c", 12_000),
        ("tiny", "tiny-value", 1),
    ] {
        emu.vault(VAULT)
            .put_secret(name, plain_secret(V, &fill.repeat(size), 1_700_000_000));
    }
    let provider = Provider::start(&emu, |c| c.max_response_bytes = 64 << 10).await;
    let message = expect_failure(
        &provider,
        MountBuilder::workload(&objects(&[
            "objectName: tiny\nobjectType: secret",
            "objectName: large-c\nobjectType: secret",
            "objectName: large-a\nobjectType: secret",
            "objectName: large-b\nobjectType: secret",
        ]))
        .build(),
        Code::ResourceExhausted,
        &[
            "more than the 65536 bytes",
            "--max-response-bytes",
            "the largest: large-a (30000 bytes), large-b (25000 bytes), large-c (12000 bytes)",
        ],
    )
    .await;
    assert!(!message.contains("tiny"), "only the largest: {message}");
    // Under the bound, the same objects are served.
    let response = provider
        .mount(
            MountBuilder::workload(&objects(&[
                "objectName: tiny\nobjectType: secret",
                "objectName: large-a\nobjectType: secret",
            ]))
            .build(),
        )
        .await
        .expect("under the bound");
    assert_eq!(response.files.len(), 2);
    still_serves(&provider).await;
}

fn queued(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("akv_mounts_queued "))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `/metrics` until `akv_mounts_queued` is `want`, for at most `within`.
async fn wait_for_queued(provider: &Provider, want: f64, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let text = provider.metrics().await;
        if queued(&text) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < until,
            "akv_mounts_queued is {:?}, not {want}",
            queued(&text)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mounts served at once: `--max-concurrent-mounts` (here 1), the others waiting in line.
///
/// Regression (busy answered late): a queued Mount waited for a slot until its whole deadline, so
/// its client saw only its own deadline pass (CANCELLED/DEADLINE_EXCEEDED) instead of the
/// provider's UNAVAILABLE "busy"; the wait now ends a margin before the deadline.
///
/// Regression (queued gauge leak): a queued Mount whose client went away was dropped without
/// leaving `akv_mounts_queued`, which then stayed above zero for good; a drop guard now counts it
/// out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_mounts_busy_before_the_deadline_and_queue_gauge() {
    let emu = seeded().await;
    let provider = Provider::start(&emu, |c| c.max_concurrent_mounts = 1).await;
    // Warm up (the token is cached), then slow the vault so that one Mount holds the only slot.
    still_serves(&provider).await;
    emu.vault(VAULT).set_latency(Duration::from_secs(6));
    let socket = provider.socket.clone();
    let first = tokio::spawn(async move {
        let channel = akv_csi_provider::server::socket::connect(&socket)
            .await
            .unwrap();
        akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient::new(channel)
            .mount(MountBuilder::workload(&objects(&[GOOD])).build())
            .await
    });
    let until = Instant::now() + Duration::from_secs(5);
    while !provider.metrics().await.contains("akv_mounts_in_flight 1") {
        assert!(Instant::now() < until, "the first Mount did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A Mount with a 1 s deadline is told the provider is busy, before that deadline.
    let timeout = Duration::from_secs(1);
    let mut request = tonic::Request::new(
        MountBuilder::workload(&objects(&[GOOD]))
            .param("keyvaultName", "kv-other")
            .build(),
    );
    request.set_timeout(timeout);
    let started = Instant::now();
    let status = provider
        .client()
        .await
        .mount(request)
        .await
        .expect_err("no slot");
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("busy")
            && status.message().contains("serving 1 Mounts")
            && status.message().contains("--max-concurrent-mounts"),
        "{}",
        status.message()
    );
    assert!(
        elapsed < timeout,
        "answered after the deadline: {elapsed:?}"
    );
    wait_for_queued(&provider, 0.0, Duration::from_secs(2)).await;

    // A queued Mount whose client goes away leaves the line.
    let mut client = provider.client().await;
    let (gone, ()) = tokio::join!(
        tokio::time::timeout(
            Duration::from_millis(1500),
            client.mount(
                MountBuilder::workload(&objects(&[GOOD]))
                    .param("keyvaultName", "kv-other")
                    .build(),
            ),
        ),
        wait_for_queued(&provider, 1.0, Duration::from_millis(1400)),
    );
    assert!(gone.is_err(), "the client gave up while queued");
    wait_for_queued(&provider, 0.0, Duration::from_secs(3)).await;

    // The first Mount finishes, and the provider serves the next one.
    let response = first.await.unwrap().expect("the first Mount").into_inner();
    assert_eq!(response.files[0].contents, b"limits-main");
    still_serves(&provider).await;
    assert_eq!(queued(&provider.metrics().await), Some(0.0));
}

/// A client id for the `i`th of many workload identities.
fn identity(i: usize) -> String {
    format!("8c9f4a2e-1b7d-4c55-9a1e-{i:012x}")
}

/// Token requests in flight per Entra authority: 16 (`ENTRA_IN_FLIGHT`). With Entra slow, the
/// Mounts of 20 identities at once send at most 16 token requests at a time and all succeed; when
/// slots stay taken until a Mount's deadline, that Mount says it waited for a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_per_authority_are_bounded() {
    let emu = seeded().await;
    for i in 0..40 {
        emu.entra().add_federated_credential(
            TENANT,
            &identity(i),
            ISSUER,
            &Pod::default().subject(),
            WI_AUDIENCE,
        );
        emu.vault(VAULT).grant(&identity(i));
    }
    emu.entra().set_latency(Duration::from_secs(1));
    let provider = Provider::start(&emu, |_| {}).await;
    let mount_as = |i: usize| {
        MountBuilder::workload(&objects(&[GOOD]))
            .param("clientID", &identity(i))
            .build()
    };
    let results =
        futures_util::future::join_all((0..20).map(|i| provider.mount(mount_as(i)))).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let most = emu.counters().token_in_flight_max;
    assert!(
        (2..=16).contains(&most),
        "{most} token requests at once to one authority"
    );

    // Entra slower than the Mounts' deadlines: 16 Mounts hold every slot; Mounts behind them
    // whose deadline comes first are told they waited for a slot, not that Entra is throttling.
    emu.entra().set_latency(Duration::from_secs(5));
    let mut client = provider.client().await;
    let attempt = |i: usize, timeout: Duration| {
        let mut request = tonic::Request::new(mount_as(i));
        request.set_timeout(timeout);
        let mut client = client.clone();
        async move { client.mount(request).await }
    };
    let holders =
        futures_util::future::join_all((20..36).map(|i| attempt(i, Duration::from_secs(4))));
    let waiters = async {
        // Once the holders' token requests are out.
        tokio::time::sleep(Duration::from_millis(500)).await;
        futures_util::future::join_all((36..40).map(|i| attempt(i, Duration::from_secs(1)))).await
    };
    let (held, waited) = tokio::join!(holders, waiters);
    for status in held
        .into_iter()
        .map(|r| r.expect_err("Entra answers after the deadline"))
    {
        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
        assert!(
            status.message().contains("did not answer in time"),
            "{}",
            status.message()
        );
    }
    for status in waited.into_iter().map(|r| r.expect_err("no slot in time")) {
        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
        assert!(
            status.message().contains("free request slot")
                && status.message().contains("login.microsoftonline.com")
                && !status.message().contains("throttling"),
            "{}",
            status.message()
        );
    }
    emu.entra().set_latency(Duration::ZERO);
    let _ = client.mount(mount_as(0)).await.expect("still serves");
}
