//! `akv-csi-provider demo`: the README's first command. Its files are checked byte for byte against
//! expectations computed independently (the Go provider's own expected PEM for the PFX, OpenSSL's
//! output for the key), and the binary itself runs to a clean exit.

use std::os::unix::fs::PermissionsExt as _;

use akv_csi_provider::cli::demo;

fn vector(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/vectors/keyvault/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_writes_exactly_the_expected_files() {
    let out = tempfile::tempdir().unwrap();
    let report = demo::run(out.path()).await.expect("demo");
    let read = |p: &str| std::fs::read(out.path().join(p)).unwrap();
    let mode = |p: &str| {
        std::fs::metadata(out.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };

    assert_eq!(read("db-password"), demo::DB_PASSWORD.as_bytes());
    assert_eq!(mode("db-password"), 0o600);
    // History: newest first.
    for (i, token) in demo::API_TOKENS.iter().rev().enumerate() {
        assert_eq!(
            read(&format!("api-token/{i}")),
            token.as_bytes(),
            "api-token/{i}"
        );
        assert_eq!(mode(&format!("api-token/{i}")), 0o644);
    }
    // The PFX: what the Go provider's test expects for this very file (key, then leaf → root).
    let expected_pem = vector("go-provider-vectors/decodePKCS12/case2/expected_output.pem");
    assert_eq!(
        String::from_utf8(read("tls/web.pem")).unwrap(),
        expected_pem
    );
    // The certificate object: the leaf alone, the first certificate of that chain.
    let leaf_start = expected_pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    let leaf_end = expected_pem[leaf_start..]
        .find("-----END CERTIFICATE-----\n")
        .unwrap()
        + leaf_start
        + "-----END CERTIFICATE-----\n".len();
    assert_eq!(
        String::from_utf8(read("tls/web.crt")).unwrap(),
        expected_pem[leaf_start..leaf_end]
    );
    // The key: OpenSSL's SubjectPublicKeyInfo PEM of the recorded JWK.
    let expected_keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/src/convert/testdata/jwk-expected.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(read("signing-key.pub")).unwrap(),
        expected_keys["d_get_key_ec/cpp__KeyVaultKeyClient.CreateEcKey__001.json"]
            .as_str()
            .unwrap()
    );
    let mut written: Vec<String> = report
        .response
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "api-token/0",
            "api-token/1",
            "api-token/2",
            "db-password",
            "signing-key.pub",
            "tls/web.crt",
            "tls/web.pem"
        ]
    );

    assert!(
        report.v15_same,
        "the driver v1.5 Mount returned the same files"
    );
    assert_eq!(report.failure.0, tonic::Code::Unauthenticated);
    assert!(
        report.failure.1.contains("AADSTS70021")
            && report
                .failure
                .1
                .contains("system:serviceaccount:demo:batch")
            && report
                .failure
                .1
                .contains("az identity federated-credential create"),
        "{}",
        report.failure.1
    );
    // Both Mounts of the pod share one token exchange; the failing pod makes its own.
    assert_eq!(
        demo::metric_sum(&report.metrics, "akv_token_requests_total"),
        2.0
    );
    assert_eq!(
        demo::metric_sum(&report.metrics, "akv_mount_duration_seconds_count"),
        3.0
    );
}

#[test]
fn the_demo_binary_exits_cleanly() {
    let out = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .args(["demo", "--out"])
        .arg(out.path().join("files"))
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("served, same files"), "{stdout}");
    assert!(out.path().join("files/tls/web.pem").is_file());
    // Nothing of the demo's secrets is printed: sizes only.
    assert!(!stdout.contains(demo::DB_PASSWORD), "{stdout}");
}

/// The demo's daemon listens on a socket in a temporary directory of its own; the directory goes
/// when the demo ends, whether it succeeded or failed. The binary runs with a private TMPDIR, which
/// must be empty afterwards.
#[test]
fn the_demo_leaves_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let leftovers = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let run = |out_dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
            .args(["demo", "--out"])
            .arg(out_dir)
            .env("TMPDIR", tmp.path())
            .output()
            .expect("run the demo")
    };
    let output = run(&out.path().join("files"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        leftovers(),
        Vec::<std::path::PathBuf>::new(),
        "after a demo that succeeded"
    );
    // It failed after the daemon served: the output "directory" is a file, so writing the files fails.
    let blocker = out.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let output = run(&blocker);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).starts_with("demo: "),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        leftovers(),
        Vec::<std::path::PathBuf>::new(),
        "after a demo that failed"
    );
}

/// Interrupted (Ctrl-C) while its daemon serves, the demo still removes its socket directory.
#[test]
fn an_interrupted_demo_leaves_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_akv-csi-provider"))
        .args(["demo", "--out"])
        .arg(out.path().join("files"))
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the demo");
    // Wait for the socket directory, then interrupt.
    let started = std::time::Instant::now();
    let mut seen = None;
    while seen.is_none() && started.elapsed() < std::time::Duration::from_secs(30) {
        seen = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("akv-csi-provider-demo-")
            });
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let dir = seen.expect("the demo made its socket directory under TMPDIR");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    // 130 when the signal came while it ran; 0 if it had just finished.
    assert!(
        matches!(output.status.code(), Some(130 | 0)),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
