//! The emulator's own PKI: a CA generated at start (rcgen, ECDSA P-256), the one server
//! certificate every HTTPS host of the emulator presents, and leaf certificates for seeded
//! certificates. Clients trust the CA explicitly (the daemon through `SSL_CERT_FILE` or its
//! `extra_root_certs`), so TLS is verified exactly as against the real services; no private key
//! is ever written to disk.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Host names on the server certificate: the Entra authorities and Key Vault suffixes of every
/// cloud the daemon knows, the test Azure Stack cloud, and the AKS token proxy names.
pub const SERVER_NAMES: &[&str] = &[
    "localhost",
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.microsoftonline.de",
    "*.vault.azure.net",
    "*.vault.usgovcloudapi.net",
    "*.vault.azure.cn",
    "*.vault.microsoftazure.de",
    "login.example",
    "*.vault.example",
    "kubernetes.default.svc",
    "tokenproxy.aks.example",
];

/// Why the PKI could not be generated (only at start: never in answer to a request). Each message
/// includes its cause, which is therefore not also the `source()`: a `{:#}` chain names it once.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused a parameter or failed to sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(rcgen::Error),
    /// rustls refused the generated certificate or key.
    #[error("TLS configuration failed: {0}")]
    Tls(rustls::Error),
}

/// A certificate issued by the emulator's CA, with its private key.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
}

/// The CA and the server side of TLS.
pub struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// A new CA and a server certificate for [`SERVER_NAMES`], `extra_names`, 127.0.0.1, ::1 and
    /// `extra_ips` (the listen addresses, so a client may also use the IP itself).
    pub fn generate(extra_names: &[String], extra_ips: &[IpAddr]) -> Result<Self, PkiError> {
        let ca_key = KeyPair::generate().map_err(PkiError::Rcgen)?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(PkiError::Rcgen)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "akv-emulator CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(PkiError::Rcgen)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(PkiError::Rcgen)?;
        let mut names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut params = CertificateParams::new(names).map_err(PkiError::Rcgen)?;
        let mut ips: Vec<IpAddr> = vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
        for ip in extra_ips {
            if !ip.is_unspecified() && !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        params
            .subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        params
            .distinguished_name
            .push(DnType::CommonName, "akv-emulator");
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .map_err(PkiError::Rcgen)?;

        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(PkiError::Tls)?
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .map_err(PkiError::Tls)?;
        // Both, because the daemon speaks HTTP/2 where offered and the SDKs often HTTP/1.1.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            issuer,
            server: Arc::new(server),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The emulator's TLS server configuration (its certificate for the Entra ID and Key Vault host
    /// names), e.g. for a test peer that must look like the emulator.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// A client configuration that trusts only this CA (ring provider, ALPN `h2` then
    /// `http/1.1`), e.g. for reqwest's `tls_backend_preconfigured`, which uses the ALPN list as
    /// given: clear it for HTTP/1.1 only.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(self.ca_der.clone()))
            .map_err(PkiError::Tls)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(PkiError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A TLS leaf (P-256 key) for `dns_names`, issued by the CA: what a seeded certificate with
    /// `generate:` holds, so a mounted certificate chains to a CA the user can inspect.
    pub fn leaf(&self, common_name: &str, dns_names: &[String]) -> Result<Leaf, PkiError> {
        let key = KeyPair::generate().map_err(PkiError::Rcgen)?;
        let mut params = CertificateParams::new(dns_names.to_vec()).map_err(PkiError::Rcgen)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(PkiError::Rcgen)?;
        Ok(Leaf {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_server_and_leaf_are_well_formed() {
        let pki = Pki::generate(&["oidc.example".into()], &["10.1.2.3".parse().unwrap()]).unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!pki.ca_der().is_empty());
        assert_eq!(
            pki.server_config().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let leaf = pki.leaf("web", &["web.example".into()]).unwrap();
        assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // Two emulators never share a CA.
        assert_ne!(Pki::generate(&[], &[]).unwrap().ca_der(), pki.ca_der());
    }
}
