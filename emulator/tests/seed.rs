//! The seed format: the example file parses and serves what it says (through the standalone
//! runner, with the CA file it writes and the tokens it prints), and each kind of mistake is an
//! error naming its field.

use std::time::Duration;

use akv_emulator::standalone::{Options, start};
use akv_emulator::{EmulatorConfig, JWT_BEARER};
use base64::Engine as _;
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("../examples/seed.yaml");

#[test]
fn seed_errors_name_the_field() {
    let secret = |extra: &str| {
        format!("vaults:\n  kv-a:\n    secrets:\n      s:\n        - value: v\n{extra}")
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("unknown top-level field", "vault: {}".into(), "(document)", "vault"),
        ("YAML syntax", "vaults: [".into(), "(document)", ""),
        (
            "unknown version field",
            secret("          colour: red\n"),
            "(document)",
            "colour",
        ),
        ("bad vault name", "vaults:\n  kv_a: {}".into(), "vaults.kv_a", "vault name"),
        (
            "bad object name",
            "vaults:\n  kv-a:\n    secrets:\n      my_secret:\n        - value: v".into(),
            "vaults.kv-a.secrets.my_secret",
            "object name",
        ),
        (
            "bad version",
            secret("          version: v1\n"),
            "vaults.kv-a.secrets.s[0].version",
            "32 hex",
        ),
        (
            "no versions",
            "vaults:\n  kv-a:\n    secrets:\n      s: []".into(),
            "vaults.kv-a.secrets.s",
            "at least one",
        ),
        (
            "key without jwk or generate",
            "vaults:\n  kv-a:\n    keys:\n      k:\n        - enabled: true".into(),
            "vaults.kv-a.keys.k[0]",
            "jwk or generate",
        ),
        (
            "unsupported key generation",
            "vaults:\n  kv-a:\n    keys:\n      k:\n        - generate: RSA-2048".into(),
            "vaults.kv-a.keys.k[0].generate",
            "P-256",
        ),
        (
            "pfx without cer",
            "vaults:\n  kv-a:\n    certificates:\n      c:\n        - pfx: UEZY".into(),
            "vaults.kv-a.certificates.c[0].cer",
            "required",
        ),
        (
            "pfx not base64",
            "vaults:\n  kv-a:\n    certificates:\n      c:\n        - pfx: '!!'\n          cer: AA==".into(),
            "vaults.kv-a.certificates.c[0].pfx",
            "base64",
        ),
        (
            "pem without a certificate",
            "vaults:\n  kv-a:\n    certificates:\n      c:\n        - pem: nothing".into(),
            "vaults.kv-a.certificates.c[0].pem",
            "CERTIFICATE",
        ),
        (
            "certificate and secret of one name",
            "vaults:\n  kv-a:\n    secrets:\n      c:\n        - value: v\n    certificates:\n      c:\n        - generate: {}".into(),
            "vaults.kv-a.certificates.c",
            "secret of the same name",
        ),
        (
            "throttle of zero",
            "vaults:\n  kv-a:\n    throttle: { requests: 0, windowSeconds: 10 }".into(),
            "vaults.kv-a.throttle",
            "requests",
        ),
        (
            "issuer not https",
            "identities:\n  - clientId: a\n    federatedCredentials:\n      - issuer: http://x\n        subject: s".into(),
            "identities[0].federatedCredentials[0].issuer",
            "https",
        ),
        (
            "grant on a bad vault name",
            "identities:\n  - clientId: a\n    vaults: [Kv!]".into(),
            "identities[0].vaults[0]",
            "vault name",
        ),
        (
            "JWKS without usable keys",
            "issuers:\n  - url: https://k8s.example\n    jwks: {keys: []}".into(),
            "issuers[0].jwks",
            "no RSA",
        ),
        (
            "missing clientId",
            "identities:\n  - name: x".into(),
            "(document)",
            "clientId",
        ),
    ];
    let mut failures = Vec::new();
    for (name, yaml, field, word) in cases {
        match EmulatorConfig::from_yaml(&yaml) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                if e.field != field || !e.message.contains(word) {
                    failures.push(format!("{name}: {e:?}, want field {field} and {word:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn minimal_and_defaulted_seeds_parse() {
    assert!(EmulatorConfig::from_yaml("{}").is_ok());
    let config = EmulatorConfig::from_yaml(EXAMPLE).expect("the example seed");
    assert_eq!(config.vaults["kv-demo"].secrets["db-password"].len(), 2);
    assert_eq!(
        config.issuer_hosts(),
        vec!["oidc.emulator.example".to_owned()]
    );
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_example_seed_serves_what_it_says() {
    let config = EmulatorConfig::from_yaml(EXAMPLE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new("127.0.0.1:0".parse().unwrap());
    options.local_listen = Some("127.0.0.1:0".parse().unwrap());
    options.ca_file = Some(dir.path().join("ca.pem"));
    let started = start(&config, &options).await.expect("start");
    let emu = &started.emulator;
    let addr = emu.addr();

    // The instructions name the overrides and files a daemon needs.
    let text = &started.instructions;
    for want in [
        format!("--resolve login.microsoftonline.com={addr}"),
        // One per seeded vault, no wildcard (another vault name must fail in DNS).
        format!("--resolve kv-demo.vault.azure.net={addr}"),
        format!("--resolve kv-busy.vault.azure.net={addr}"),
        format!("SSL_CERT_FILE={}", dir.path().join("ca.pem").display()),
        format!(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST=http://{}",
            emu.local_addr()
        ),
    ] {
        assert!(text.contains(&want), "{want} missing from:\n{text}");
    }
    assert!(!text.contains("*.vault"), "{text}");
    let token = text
        .lines()
        .skip_while(|l| !l.starts_with("Service-account token for web"))
        .nth(1)
        .expect("a token for web")
        .to_owned();

    // A client that trusts only the CA file the emulator wrote.
    use rustls::pki_types::pem::PemObject as _;
    let ca_pem = std::fs::read(&started.ca_file).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(&ca_pem).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut builder = reqwest::ClientBuilder::new()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(10));
    for host in [
        "login.microsoftonline.com",
        "kv-demo.vault.azure.net",
        "kv-busy.vault.azure.net",
        "oidc.emulator.example",
    ] {
        builder = builder.resolve(host, addr);
    }
    let c = builder.build().unwrap();

    let (status, body) = send(
        c.post("https://login.microsoftonline.com/33333333-3333-3333-3333-333333333333/oauth2/v2.0/token")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e"),
                ("scope", "https://vault.azure.net/.default"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", token.as_str()),
            ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().unwrap().to_owned();
    let get = |path: &str| {
        c.get(format!(
            "https://kv-demo.vault.azure.net{path}?api-version=7.6"
        ))
        .bearer_auth(&at)
    };
    let (status, body) = send(get("/secrets/db-password")).await;
    assert_eq!((status, body["value"].clone()), (200, json!("s3cr3t!")));
    let latest = body["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(latest.len(), 32, "derived version ids are 32 hex digits");
    let (_, listing) = send(get("/secrets/db-password/versions")).await;
    assert_eq!(listing["value"].as_array().unwrap().len(), 2);
    let (status, body) = send(get("/secrets/retired")).await;
    assert_eq!(
        (status, body["error"]["innererror"]["code"].clone()),
        (403, json!("SecretDisabled"))
    );
    let (status, body) = send(get("/keys/signing")).await;
    assert_eq!((status, body["key"]["crv"].clone()), (200, json!("P-256")));
    // The generated certificate: PEM key then chain, and the certificate's cer is its leaf.
    let (status, secret) = send(get("/secrets/web-tls")).await;
    assert_eq!(status, 200);
    assert_eq!(secret["contentType"], "application/x-pem-file");
    assert!(
        secret["kid"]
            .as_str()
            .unwrap()
            .starts_with("https://kv-demo.vault.azure.net/keys/web-tls/")
    );
    let pem = secret["value"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let (_, cert) = send(get("/certificates/web-tls")).await;
    let cer = base64::engine::general_purpose::STANDARD
        .decode(cert["cer"].as_str().unwrap())
        .unwrap();
    assert!(!cer.is_empty());
    // Not granted on kv-busy.
    let (status, _) = send(
        c.get("https://kv-busy.vault.azure.net/secrets/api-key?api-version=7.6")
            .bearer_auth(&at),
    )
    .await;
    assert_eq!(status, 403);

    // The issuer's JWKS and discovery are served on its host.
    let (status, jwks) =
        send(c.get("https://oidc.emulator.example/cluster-1/openid/v1/jwks")).await;
    assert_eq!(
        (status, jwks["keys"][0]["alg"].clone()),
        (200, json!("ES256"))
    );
    let (_, discovery) =
        send(c.get("https://oidc.emulator.example/cluster-1/.well-known/openid-configuration"))
            .await;
    assert_eq!(
        discovery["jwks_uri"],
        "https://oidc.emulator.example/cluster-1/openid/v1/jwks"
    );

    // IMDS serves the node identity.
    let (status, body) = send(
        c.get(format!(
            "http://{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
            emu.local_addr()
        ))
        .header("Metadata", "true"),
    )
    .await;
    assert_eq!(
        (status, body["client_id"].clone()),
        (200, json!("6a1e2b3c-0000-4000-8000-00000000a001"))
    );
}

/// A real cluster's issuer: the seed gives its JWKS, and the emulator verifies RS256 or ES256
/// tokens against it without holding the key.
#[tokio::test]
async fn an_external_jwks_verifies_tokens_it_did_not_sign() {
    let cluster =
        akv_emulator::Issuer::generate("https://kubernetes.default.svc.cluster.local").unwrap();
    let yaml = format!(
        "issuers:\n  - url: https://kubernetes.default.svc.cluster.local\n    jwks: {}\nidentities:\n  - clientId: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e\n    federatedCredentials:\n      - issuer: https://kubernetes.default.svc.cluster.local\n        subject: system:serviceaccount:demo:web\n",
        cluster.jwks()
    );
    let config = EmulatorConfig::from_yaml(&yaml).unwrap();
    let emu = akv_emulator::Emulator::start().await.unwrap();
    let held = emu.seed(&config).unwrap();
    assert!(
        held.is_empty(),
        "no key generated for an issuer with a JWKS"
    );
    let c = reqwest::ClientBuilder::new()
        .tls_backend_preconfigured(emu.pki().client_config().unwrap())
        .resolve("login.microsoftonline.com", emu.addr())
        .build()
        .unwrap();
    let exchange = |assertion: String| {
        let c = c.clone();
        async move {
            send(
                c.post("https://login.microsoftonline.com/33333333-3333-3333-3333-333333333333/oauth2/v2.0/token")
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", "8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e"),
                        ("scope", "https://vault.azure.net/.default"),
                        ("client_assertion_type", JWT_BEARER),
                        ("client_assertion", assertion.as_str()),
                    ]),
            )
            .await
        }
    };
    let exp = akv_emulator::now() + 600;
    let genuine = cluster
        .service_account_token("demo", "web", &["api://AzureADTokenExchange"], exp)
        .unwrap();
    assert_eq!(exchange(genuine).await.0, 200);
    let impostor =
        akv_emulator::Issuer::generate("https://kubernetes.default.svc.cluster.local").unwrap();
    let forged = impostor
        .service_account_token("demo", "web", &["api://AzureADTokenExchange"], exp)
        .unwrap();
    let (status, body) = exchange(forged).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (401, Some(700027))
    );
}
