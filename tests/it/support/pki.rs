//! The test PKI: one CA per test binary, generated on first use with rcgen (cached in a `OnceLock`,
//! so every test shares it), and one server certificate signed by it for every host name the fakes
//! answer for ([`SERVER_NAMES`] plus the IP address 127.0.0.1). The provider trusts the CA through
//! `Config::extra_root_certs` and verifies TLS as in production; nothing is ever written to disk.

use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    server: Arc<rustls::ServerConfig>,
}

/// Host names on the server certificate.
pub const SERVER_NAMES: &[&str] = &[
    "localhost",
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "*.vault.azure.net",
    "*.vault.usgovcloudapi.net",
    "*.vault.azure.cn",
    "login.example",
    "*.vault.example",
    "kubernetes.default.svc",
    "tokenproxy.aks.example",
];

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "akv-csi-provider test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(
            SERVER_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .expect("server params");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        params
            .distinguished_name
            .push(DnType::CommonName, "fake azure");
        let server_cert = params.signed_by(&server_key, &issuer).expect("server cert");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .expect("server config");
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Pki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            server: Arc::new(server),
        }
    })
}

/// The test CA certificate, PEM.
pub fn ca_pem() -> String {
    pki().ca_pem.clone()
}

/// The test CA certificate, DER.
pub fn ca_der() -> Vec<u8> {
    pki().ca_der.clone()
}

/// Server side of the fakes: the certificate for [`SERVER_NAMES`], ALPN `h2` and `http/1.1`, ring.
pub fn server_tls_config() -> Arc<rustls::ServerConfig> {
    pki().server.clone()
}

/// A client configuration that trusts only the test CA (ring provider, ALPN `h2` then `http/1.1`),
/// for tests that call the fakes directly, e.g. with reqwest's `tls_backend_preconfigured` (which
/// uses the ALPN list as given: clear it for HTTP/1.1).
pub fn client_tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der()))
        .expect("test CA");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
