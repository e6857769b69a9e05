//! The daemon around Mount: Version, health, socket permissions and graceful shutdown.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use crate::support::harness::*;

#[tokio::test]
async fn version_and_health_answer() {
    let emu = emulator().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let response = provider
        .client()
        .await
        .version(akv_csi_provider::proto::VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(response.version, "v1alpha1");
    assert_eq!(response.runtime_name, "akv-csi-provider");
    assert_eq!(response.runtime_version, env!("CARGO_PKG_VERSION"));
    let health = akv_csi_provider::server::health::check_socket(
        provider.socket.clone(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(health, Ok(()));
}

#[tokio::test]
async fn socket_is_private_and_removed_at_shutdown() {
    let emu = emulator().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let meta = std::fs::symlink_metadata(&provider.socket).expect("socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let path = provider.socket.clone();
    provider.stop().await;
    assert!(!path.exists(), "socket removed at shutdown");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_mount_finish() {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "slow",
        plain_secret("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "finished-value-7", 1),
    );
    emu.set_latency(std::time::Duration::from_millis(700));
    let provider = Provider::start(&emu, |_| {}).await;
    let mut client = provider.client().await;
    let request =
        MountBuilder::workload(&objects(&["objectName: slow\nobjectType: secret"])).build();
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let path = provider.socket.clone();
    provider.stop().await;
    let response = in_flight
        .await
        .expect("join")
        .expect("in-flight Mount completes")
        .into_inner();
    assert_eq!(response.files[0].contents, b"finished-value-7");
    assert!(!path.exists());
}

/// The real binary: flags, `--version`, and a SIGTERM that removes the socket and exits 0.
#[tokio::test]
async fn the_binary_starts_serves_and_stops_on_sigterm() {
    let bin = env!("CARGO_BIN_EXE_akv-csi-provider");
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(out.status.success());
    let version: serde_json::Value = serde_json::from_slice(&out.stdout).expect("version is JSON");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    // The commit this test was built from: the binary's build script and this test read the same
    // checkout (or GIT_COMMIT), so they must agree.
    let commit = version["gitCommit"]
        .as_str()
        .expect("gitCommit is a string");
    match expected_commit() {
        Expected::Exact(want) => assert_eq!(commit, want, "gitCommit of --version"),
        // Files outside what build.rs watches (tests/, docs) may have been edited since the binary
        // was built, so it may or may not say "-dirty"; the commit must still be HEAD.
        Expected::DirtyTree(head) => assert!(
            commit == head || commit == format!("{head}-dirty"),
            "gitCommit of --version: {commit:?}, HEAD is {head}"
        ),
    }

    let out = std::process::Command::new(bin)
        .arg("--no-such-flag")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("flag provided but not defined: -no-such-flag")
    );

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let child = std::process::Command::new(bin)
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args([
            "--healthz-port=0",
            "--prometheus-port=0",
            "-v=2",
            "--construct-pem-chain",
            "--logtostderr",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    wait_for_socket(&socket).await;
    let health = akv_csi_provider::server::health::check_socket(
        socket.clone(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(health, Ok(()));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(!socket.exists(), "socket removed");
    // Regression: fields printed Rust's Debug of an Option (`addr=Some(0.0.0.0:8898)`).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metrics endpoint listening addr=0.0.0.0:"),
        "{stderr}"
    );
    assert!(!stderr.contains("Some("), "{stderr}");
}

/// Regression: a second daemon on the same `--endpoint` replaced the first one's socket (and
/// deleted it on exit), leaving the first running, unreachable. Now it exits 1 naming the path, and
/// the first keeps serving on its own socket.
#[tokio::test]
async fn a_second_daemon_never_takes_over_a_live_socket() {
    use std::os::unix::fs::MetadataExt as _;
    let emu = emulator().await;
    let first = Provider::start(&emu, |_| {}).await;
    let ino = std::fs::metadata(&first.socket).unwrap().ino();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", first.socket.display()))
        .args(["--healthz-port=0", "--prometheus-port=0"])
        .output()
        .expect("run a second daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another provider is serving {}",
            first.socket.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&first.socket).unwrap().ino(), ino);
    assert_eq!(first.version().await, "akv-csi-provider");
}

/// A socket whose directory is missing is refused, as the Go provider's listen fails: the daemon
/// does not create directories the driver does not watch.
#[tokio::test]
async fn a_missing_socket_directory_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("providers/azure.sock");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args(["--healthz-port=0", "--prometheus-port=0"])
        .output()
        .expect("run the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("providers does not exist"), "{stderr}");
    // Regression: log lines carried ANSI colour codes when standard error was not a terminal.
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in piped logs: {stderr:?}"
    );
    assert!(!dir.path().join("providers").exists());
}

/// The HTTP liveness endpoint the DaemonSet probes: 200 `ok` while the gRPC server answers, 404
/// elsewhere.
#[tokio::test]
async fn healthz_answers_over_http() {
    let emu = emulator().await;
    let provider = with_liveness_endpoint(&emu).await;
    let port = provider.healthz_addr.expect("liveness endpoint").port();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(emu.pki().client_config().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut response = None;
    for _ in 0..50 {
        if let Ok(r) = client.get(&url).send().await {
            response = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let response = response.expect("healthz endpoint listening");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    let other = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    provider.stop().await;
}

/// The liveness endpoint gives a client 10 s to send its request headers: one that sends half a
/// request and stalls is disconnected, so stalled clients cannot pile up connections.
#[tokio::test]
async fn a_stalled_http_client_is_disconnected_after_the_header_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = emulator().await;
    let provider = with_liveness_endpoint(&emu).await;
    let addr = provider.healthz_addr.expect("liveness endpoint");
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()))
        .await
        .unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    // The server closes the connection (perhaps after a 408); reading ends either way.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stalled.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "still connected after 20 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_secs(9)
            && elapsed < std::time::Duration::from_secs(15),
        "closed after {elapsed:?}"
    );
    provider.stop().await;
}

/// Regression: an `accept` on the provider socket that failed (here: the process is out of file
/// descriptors while clients keep connecting) went back to the server at once, which retried at
/// once — a core spinning for as long as the condition lasted. It backs off now, and the daemon
/// serves again once descriptors are free.
#[tokio::test]
async fn failed_accepts_back_off_instead_of_spinning() {
    let bin = env!("CARGO_BIN_EXE_akv-csi-provider");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    // A small descriptor limit, so that a few dozen connections exhaust it.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 40 && exec \"$0\" \"$@\"", bin])
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args(["--healthz-port=0", "--prometheus-port=0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn daemon");
    wait_for_socket(&socket).await;
    let mut clients = Vec::new();
    for _ in 0..60 {
        clients.push(
            tokio::net::UnixStream::connect(&socket)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cpu_ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        // Fields after the command name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').expect("comm").1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu_ticks(child.id());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let spent = cpu_ticks(child.id()) - before;
    // Spinning costs ~200 ticks (2 s of a core at 100 ticks/s); backing off costs next to nothing.
    assert!(
        spent < 40,
        "the daemon used {spent} ticks of CPU in 2 s while accepts failed"
    );
    drop(clients);
    let health = akv_csi_provider::server::health::check_socket(
        socket.clone(),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(health, Ok(()), "serves again once descriptors are free");
    let _ = child.kill();
    let _ = child.wait();
}

/// A provider serving `/healthz` on an ephemeral port, bound at start: no other test can take it
/// in between.
async fn with_liveness_endpoint(emu: &Emulator) -> Provider {
    Provider::start(emu, |c| {
        c.healthz = Some(akv_csi_provider::config::Healthz {
            port: 0,
            path: "/healthz".into(),
            timeout: std::time::Duration::from_secs(5),
        })
    })
    .await
}

enum Expected {
    Exact(String),
    DirtyTree(String),
}

/// What `--version` must report as gitCommit: `GIT_COMMIT` when set at build time, else the
/// checkout's HEAD (a full commit name; "-dirty" when tracked files differ), else "unknown".
fn expected_commit() -> Expected {
    if let Some(commit) = option_env!("GIT_COMMIT").filter(|c| !c.trim().is_empty()) {
        return Expected::Exact(commit.trim().to_owned());
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("--no-optional-locks")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => {
            assert_eq!(head.len(), 40, "HEAD {head:?} is a full commit name");
            match git(&["status", "--porcelain", "--untracked-files=no"]) {
                Some(status) if status.is_empty() => Expected::Exact(head),
                _ => Expected::DirtyTree(head),
            }
        }
        None => Expected::Exact("unknown".to_owned()),
    }
}
