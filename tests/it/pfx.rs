//! Certificates stored as PEM (`application/x-pem-file`) asked for as PFX, through the socket
//! (Azure issue #1945): `objectFormat: pfx` with `objectEncoding: base64` writes a binary PKCS#12
//! built from the PEM, the same kind of file a PKCS#12-stored certificate gives with the same fields,
//! read back here with OpenSSL 3; `objectFormat: pfx` alone keeps the Go provider's PEM passthrough.

use base64::Engine as _;
use tonic::Code;

use crate::support::harness::*;

const V1: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const V2: &str = "f9e8d7c6b5a4938271605f4e3d2c1b0a";

const PFX_FIELDS: &str = "objectType: secret\nobjectFormat: pfx\nobjectEncoding: base64";

/// A PEM-stored certificate version as Key Vault holds one: key, leaf, CA (the emulator's).
fn put_pem_certificate(emu: &Emulator, name: &str, version: &str, created: i64) -> String {
    let leaf = emu
        .pki()
        .leaf(name, &[format!("{name}.example")])
        .expect("leaf");
    let pem = format!("{}{}{}", leaf.key_pem, leaf.cert_pem, emu.ca_pem());
    // The key's base64 must never reach a log line or a message.
    for line in leaf.key_pem.lines().filter(|l| !l.starts_with("-----")) {
        crate::support::hygiene::forbid(line);
    }
    let cer = base64::engine::general_purpose::STANDARD.encode(&leaf.cert_der);
    emu.vault(VAULT).put_certificate_with_secret(
        name,
        version,
        &cer,
        &pem,
        "application/x-pem-file",
        created,
        true,
    );
    pem
}

/// `openssl <args>` with `input` written to a file given as the last argument: its stdout and
/// stderr. Fails (never skips) when openssl is missing.
fn openssl(args: &[&str], input: &[u8]) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input");
    std::fs::write(&path, input).unwrap();
    let out = std::process::Command::new("openssl")
        .args(args)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs the openssl command (apt-get install openssl): {e}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "openssl {args:?}: {stderr}");
    (out.stdout, stderr)
}

/// DER of every `label` block, in order.
fn blocks(pem_text: &[u8], label: &str) -> Vec<Vec<u8>> {
    akv_csi_provider::convert::pem::decode_all(pem_text)
        .into_iter()
        .filter(|b| b.label == label)
        .map(|b| b.der.to_vec())
        .collect()
}

/// A private key as OpenSSL re-encodes it (PKCS#8 DER), whatever form it was written in.
fn canonical_key(key_pem: &[u8]) -> Vec<u8> {
    openssl(&["pkey", "-outform", "DER", "-in"], key_pem).0
}

#[tokio::test]
async fn a_pem_certificate_mounts_as_a_pfx_openssl_reads() {
    let emu = federated_emulator().await;
    let pem = put_pem_certificate(&emu, "web", V1, 100);
    let provider = Provider::start(&emu, |_| {}).await;
    let object = format!("objectName: web\n{PFX_FIELDS}\nobjectAlias: tls/web.pfx");
    let request = MountBuilder::workload(&objects(&[&object])).build();
    let first = provider.mount(request.clone()).await.expect("mount");
    let file = file(&first, "tls/web.pfx");

    let (info, stderr) = openssl(
        &["pkcs12", "-info", "-noenc", "-passin", "pass:", "-in"],
        &file.contents,
    );
    let all = format!("{}{stderr}", String::from_utf8_lossy(&info));
    assert!(all.contains("MAC: sha256, Iteration 2048"), "{all}");
    assert!(
        all.contains("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC"),
        "{all}"
    );
    assert!(
        all.contains("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC"),
        "{all}"
    );
    // The same key, and the certificates leaf first, as stored.
    let keys = blocks(&info, "PRIVATE KEY");
    assert_eq!(keys.len(), 1);
    let printed_key = akv_csi_provider::convert::pem::encode("PRIVATE KEY", &keys[0]);
    assert_eq!(
        canonical_key(printed_key.as_bytes()),
        canonical_key(pem.as_bytes())
    );
    assert_eq!(
        blocks(&info, "CERTIFICATE"),
        blocks(pem.as_bytes(), "CERTIFICATE")
    );

    // One ObjectVersion: the certificate's version, unchanged by a second Mount, and so are the bytes
    // (salts and IVs derive from the certificate, so a rotation poll rewrites nothing).
    assert_eq!(first.object_version.len(), 1);
    assert_eq!(first.object_version[0].id, "secret/web");
    assert_eq!(first.object_version[0].version, V1);
    let second = provider.mount(request.clone()).await.expect("second mount");
    assert_eq!(second.object_version, first.object_version);
    assert_eq!(second.files, first.files);

    // A new certificate version: a new ObjectVersion and a new file.
    put_pem_certificate(&emu, "web", V2, 200);
    let third = provider.mount(request).await.expect("after rotation");
    assert_eq!(third.object_version[0].version, V2);
    assert_ne!(third.files[0].contents, first.files[0].contents);
}

/// The same fields on a PKCS#12-stored and a PEM-stored certificate give the same kind of file (a
/// binary PFX with the empty password); without `objectEncoding` the PEM-stored one stays the PEM the
/// Go provider writes.
#[tokio::test]
async fn pem_and_pkcs12_stored_certificates_give_the_same_kind_of_file() {
    let emu = federated_emulator().await;
    let pem = put_pem_certificate(&emu, "from-pem", V1, 100);
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/data/vectors/keyvault/c_get_secret_pkcs12/cpp__KeyVaultCertificateClientTest.DownloadImportPkcs__005.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let body = &recorded["response"]["body"];
    emu.vault(VAULT).put_certificate_with_secret(
        "from-pkcs12",
        V1,
        "",
        body["value"].as_str().unwrap(),
        "application/x-pkcs12",
        100,
        true,
    );
    let provider = Provider::start(&emu, |_| {}).await;
    let response = provider
        .mount(
            MountBuilder::workload(&objects(&[
                &format!("objectName: from-pem\n{PFX_FIELDS}\nobjectAlias: pem.pfx"),
                &format!("objectName: from-pkcs12\n{PFX_FIELDS}\nobjectAlias: pkcs12.pfx"),
                "objectName: from-pem\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: pem.txt",
            ]))
            .build(),
        )
        .await
        .expect("mount");
    for path in ["pem.pfx", "pkcs12.pfx"] {
        let (info, _) = openssl(
            &["pkcs12", "-info", "-noenc", "-passin", "pass:", "-in"],
            &file(&response, path).contents,
        );
        assert_eq!(blocks(&info, "PRIVATE KEY").len(), 1, "{path}");
        assert!(!blocks(&info, "CERTIFICATE").is_empty(), "{path}");
    }
    assert_eq!(file(&response, "pem.txt").contents, pem.as_bytes());
    let ids: Vec<(&str, &str)> = response
        .object_version
        .iter()
        .map(|o| (o.id.as_str(), o.version.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("secret/from-pem", V1),
            ("secret/from-pkcs12", V1),
            ("secret/from-pem", V1)
        ]
    );
}

#[tokio::test]
async fn a_pem_without_its_key_fails_naming_the_object_and_the_fix() {
    let emu = federated_emulator().await;
    let leaf = emu.pki().leaf("nokey", &[]).expect("leaf");
    let cer = base64::engine::general_purpose::STANDARD.encode(&leaf.cert_der);
    // What Key Vault stores for a certificate whose key is not exportable: the certificate alone.
    emu.vault(VAULT).put_certificate_with_secret(
        "nokey",
        V1,
        &cer,
        &leaf.cert_pem,
        "application/x-pem-file",
        100,
        true,
    );
    let provider = Provider::start(&emu, |_| {}).await;
    for (fields, want) in [
        (PFX_FIELDS, "holds no private key"),
        (
            "objectType: secret\nobjectFormat: pfx\nobjectEncoding: hex",
            "use objectEncoding base64",
        ),
    ] {
        let status = provider
            .mount(
                MountBuilder::workload(&objects(&[&format!("objectName: nokey\n{fields}")]))
                    .build(),
            )
            .await
            .expect_err("no key");
        assert_eq!(status.code(), Code::FailedPrecondition);
        let message = status.message();
        assert!(
            message.starts_with(&format!(
                "secret \"nokey\" from vault {VAULT}: the certificate is stored as PEM"
            )),
            "{message}"
        );
        assert!(message.contains(want), "{message}");
    }
}
