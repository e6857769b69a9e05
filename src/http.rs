//! The one shared HTTPS client, used for Entra ID and Key Vault.
//!
//! One `reqwest::Client` for the whole daemon keeps connections to Entra and to each vault alive
//! across Mounts (the Go provider builds a new SDK client, and so new connections, per Mount).
//! TLS is rustls; the trust store is the system's, loaded the way OpenSSL/Go do (honouring
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`), so Azure Stack Hub and TLS-inspecting proxies whose CA is
//! mounted into the container keep working. Proxies come from `HTTPS_PROXY`/`NO_PROXY`.
//!
//! Name resolution goes through [`Resolver`]: the system resolver, plus operator-given overrides
//! (`--resolve`, for private endpoints without DNS and for local emulators). Its failures carry the
//! host name so that a mistyped vault name is reported as such instead of as a generic connect error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::CertificateDer;

/// Settings of the shared client.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Product token plus the operator's `--custom-user-agent`.
    pub user_agent: String,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Upper bound for one request (headers and body); the Mount deadline bounds the whole Mount.
    pub request_timeout: Duration,
    /// Host name (or `*.suffix`) → address overrides.
    pub resolve_overrides: Vec<ResolveOverride>,
    /// Extra trusted roots (DER), in addition to the system store.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Names reached at another host's address: the identity-binding proxy is addressed by its TLS
    /// server name (`--sni-name`) at the address of `--token-proxy-url`'s host.
    pub aliases: Vec<HostAlias>,
}

/// `HOST=ADDR:PORT`: connect to `ADDR:PORT` for `HOST`. A host of `*.example.net` matches every
/// name ending in `.example.net`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveOverride {
    /// Lower-case host name, or `*.suffix`.
    pub host: String,
    /// Where to connect instead.
    pub addr: SocketAddr,
}

impl std::str::FromStr for ResolveOverride {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, addr) = s.split_once('=').ok_or_else(|| {
            format!("{s:?} is not HOST=ADDR:PORT (e.g. myvault.vault.azure.net=10.0.0.5:443)")
        })?;
        let host = host.trim().to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("{s:?} has an empty host name"));
        }
        let addr = addr
            .trim()
            .parse::<SocketAddr>()
            .map_err(|e| format!("{s:?}: {addr:?} is not ADDR:PORT ({e})"))?;
        Ok(Self { host, addr })
    }
}

/// A host name that is resolved as another host and port (TLS still uses `name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAlias {
    /// The name requests use (and TLS verifies).
    pub name: String,
    /// The host whose addresses are used.
    pub target_host: String,
    /// The port to connect to.
    pub port: u16,
}

/// Errors building the client at start-up.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TLS configuration was refused.
    #[error("building the TLS configuration: {0}")]
    Tls(rustls::Error),
    /// reqwest refused the client settings.
    #[error("building the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// What kind of transport failure a request met (a bounded class, for messages and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The host name does not resolve.
    Dns,
    /// No complete answer within the request timeout.
    Timeout,
    /// The TLS handshake failed.
    Tls(TlsFailure),
    /// Any other connection or protocol failure.
    Connect,
    /// The body is larger than what the peer can legitimately send.
    TooLarge,
    /// The peer answered with a redirect (3xx). None of the provider's peers redirect, and following
    /// one would send the request (a client assertion, a client secret or a bearer token) to another
    /// host, so it is refused.
    Redirect,
}

/// Why a TLS handshake failed, as far as that changes what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer's certificate chains to no trusted CA (a TLS-inspecting proxy, a private CA), or
    /// only to one by name whose key did not sign it.
    UntrustedCertificate,
    /// The peer's certificate is valid, but for other names (the name resolves to another server).
    WrongName,
    /// Anything else (an expired certificate, no common protocol version, …).
    Other,
}

impl TlsFailure {
    fn of(err: &rustls::Error) -> Self {
        use rustls::CertificateError as E;
        match err {
            rustls::Error::InvalidCertificate(E::UnknownIssuer | E::BadSignature) => {
                Self::UntrustedCertificate
            }
            rustls::Error::InvalidCertificate(
                E::NotValidForName | E::NotValidForNameContext { .. },
            ) => Self::WrongName,
            _ => Self::Other,
        }
    }
}

/// A request that got no complete answer. `Display` is complete (host, what went wrong, what to
/// check), built from every message of the underlying error's chain, so there is no `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct TransportError {
    /// Host name of the peer.
    pub host: String,
    /// What went wrong.
    pub kind: FailureKind,
    detail: String,
}

impl TransportError {
    /// Classifies a reqwest failure for `url`.
    pub fn new(url: &str, err: reqwest::Error) -> Self {
        let kind = if dns_error(&err).is_some() {
            FailureKind::Dns
        } else if err.is_timeout() {
            FailureKind::Timeout
        } else if let Some(tls) = rustls_error(&err) {
            FailureKind::Tls(TlsFailure::of(tls))
        } else if chain_mentions(
            &err,
            &["certificate", "tls", "handshake", "InvalidCertificate"],
        ) {
            // A TLS failure whose rustls error did not survive the wrapping.
            FailureKind::Tls(TlsFailure::Other)
        } else {
            FailureKind::Connect
        };
        Self {
            host: host_of(url),
            kind,
            detail: describe(&err),
        }
    }

    /// A body over `limit` bytes.
    pub fn too_large(url: &str, limit: usize) -> Self {
        Self::from_parts(
            host_of(url),
            FailureKind::TooLarge,
            format!("the response is larger than {limit} bytes"),
        )
    }

    /// A 3xx answer: refused, never followed (see [`FailureKind::Redirect`]). Names the target host
    /// but not the rest of the `Location`, whose query string may carry anything.
    pub fn redirected(url: &str, status: reqwest::StatusCode, location: Option<&str>) -> Self {
        let target = location
            .and_then(|l| reqwest::Url::parse(url).ok()?.join(l).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        let to = match target {
            Some(target) => format!(" to {target}"),
            None => String::new(),
        };
        Self::from_parts(
            host_of(url),
            FailureKind::Redirect,
            format!("answered HTTP {} redirecting{to}", status.as_u16()),
        )
    }

    /// A failure found by our own checks rather than reported by reqwest.
    pub(crate) fn from_parts(host: String, kind: FailureKind, detail: String) -> Self {
        Self { host, kind, detail }
    }

    /// Whether the same request may succeed a moment later: not for a name that does not resolve, an
    /// oversized answer or a redirect, which come back the same every time.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self.kind,
            FailureKind::Dns | FailureKind::TooLarge | FailureKind::Redirect
        )
    }

    /// The metrics class of this failure.
    pub fn class(&self) -> crate::metrics::class::ErrorClass {
        use crate::metrics::class::ErrorClass;
        match self.kind {
            FailureKind::Dns => ErrorClass::Dns,
            FailureKind::Timeout => ErrorClass::Timeout,
            FailureKind::Tls(_) => ErrorClass::Tls,
            FailureKind::Connect | FailureKind::TooLarge | FailureKind::Redirect => {
                ErrorClass::Transport
            }
        }
    }

    fn describe(&self) -> String {
        let host = &self.host;
        match self.kind {
            FailureKind::Dns => self.detail.clone(),
            FailureKind::Timeout => format!("{host} did not answer in time"),
            FailureKind::Tls(TlsFailure::UntrustedCertificate) => format!(
                "TLS with {host} failed: {}; the certificate of {host} is not trusted: if a proxy or a \
                 private CA signs it, mount that CA into the provider and point SSL_CERT_FILE at it",
                self.detail
            ),
            // Trusting another CA would not help: the name leads to a server that is not {host}.
            FailureKind::Tls(TlsFailure::WrongName) => format!(
                "TLS with {host} failed: {}; the server's certificate does not match the host name \
                 {host}: check that {host} resolves to the right server (private endpoint DNS, \
                 --resolve)",
                self.detail
            ),
            FailureKind::Tls(TlsFailure::Other) => format!(
                "TLS with {host} failed: {}; if a proxy or a private CA signs its certificate, mount that \
                 CA into the provider and point SSL_CERT_FILE at it",
                self.detail
            ),
            FailureKind::Redirect => format!(
                "{host} {}; the request was not sent there: Entra ID, Key Vault, IMDS, NMI and the \
                 token proxy never redirect, so a proxy or a wrong --resolve/private endpoint entry \
                 answers for {host}",
                self.detail
            ),
            FailureKind::Connect | FailureKind::TooLarge => {
                format!("request to {host} failed: {}", self.detail)
            }
        }
    }
}

#[cfg(test)]
impl HttpSettings {
    /// No overrides, no extra roots, two-second timeouts.
    pub(crate) fn for_tests() -> Self {
        Self {
            user_agent: "test".into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            resolve_overrides: Vec::new(),
            extra_roots: Vec::new(),
            aliases: Vec::new(),
        }
    }
}

/// What is left of a deadline, for a request's own timeout: a request never outlives the Mount it
/// serves, and when the deadline is what ends it, the error names the host that was slow (at
/// least one millisecond, so that an expired deadline still fails as a timeout).
pub fn until(deadline: std::time::Instant) -> Duration {
    deadline
        .saturating_duration_since(std::time::Instant::now())
        .max(Duration::from_millis(1))
}

/// A short single-line excerpt of an error body that is not the expected JSON (a proxy's or
/// gateway's HTML or text), for messages. Only response bodies are quoted, never request bodies.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Retry-After` in seconds (the form Key Vault and Entra send; an HTTP date is ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The host name of a URL ("" when it has none).
pub fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads a response body of at most `limit` bytes; a longer one fails without being buffered.
/// Every request of the provider ends here, so this is also where a redirect is refused: the
/// clients never follow one ([`build_client`]), and no caller may take a 3xx for an answer.
pub async fn read_body(
    url: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, TransportError> {
    if response.status().is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok());
        return Err(TransportError::redirected(url, response.status(), location));
    }
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(TransportError::too_large(url, limit));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TransportError::new(url, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(TransportError::too_large(url, limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A DNS lookup failed: the name probably does not exist (for a vault: the vault does not exist or
/// is misspelled).
#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {host} failed: {reason}")]
pub(crate) struct DnsError {
    host: String,
    reason: String,
}

/// The resolver the shared client uses.
#[derive(Debug, Default)]
pub struct Resolver {
    exact: HashMap<String, SocketAddr>,
    suffixes: Vec<(String, SocketAddr)>,
    aliases: HashMap<String, (String, u16)>,
}

impl Resolver {
    /// A resolver with overrides only.
    #[cfg(test)]
    pub fn new(overrides: &[ResolveOverride]) -> Self {
        Self::with_aliases(overrides, &[])
    }

    /// A resolver with overrides and aliases.
    pub fn with_aliases(overrides: &[ResolveOverride], aliases: &[HostAlias]) -> Self {
        let mut resolver = Self::default();
        for alias in aliases.iter().filter(|a| a.name != a.target_host) {
            resolver.aliases.insert(
                alias.name.to_ascii_lowercase(),
                (alias.target_host.to_ascii_lowercase(), alias.port),
            );
        }
        for o in overrides {
            match o.host.strip_prefix('*') {
                // Keep the leading dot so that "*.vault.azure.net" never matches "evilvault.azure.net".
                Some(suffix) if suffix.starts_with('.') => {
                    resolver.suffixes.push((suffix.to_owned(), o.addr))
                }
                _ => {
                    resolver.exact.insert(o.host.clone(), o.addr);
                }
            }
        }
        resolver
    }

    fn lookup_override(&self, host: &str) -> Option<SocketAddr> {
        let host = host.to_ascii_lowercase();
        if let Some(addr) = self.exact.get(&host) {
            return Some(*addr);
        }
        self.suffixes
            .iter()
            .find(|(suffix, _)| host.ends_with(suffix.as_str()))
            .map(|(_, addr)| *addr)
    }
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let mut host = name.as_str().to_owned();
        let mut port = 0;
        if let Some((target, target_port)) = self.aliases.get(&host.to_ascii_lowercase()) {
            host = target.clone();
            port = *target_port;
        }
        if let Some(addr) = self.lookup_override(&host) {
            let addrs: Addrs = Box::new(std::iter::once(addr));
            return Box::pin(std::future::ready(Ok(addrs)));
        }
        Box::pin(async move {
            let lookup = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|addrs| addrs.collect::<Vec<SocketAddr>>());
            match lookup {
                Ok(addrs) => {
                    if addrs.is_empty() {
                        return Err(Box::new(DnsError {
                            host,
                            reason: "no addresses".into(),
                        })
                            as Box<dyn std::error::Error + Send + Sync>);
                    }
                    let addrs: Addrs = Box::new(addrs.into_iter());
                    Ok(addrs)
                }
                Err(e) => Err(Box::new(DnsError {
                    host,
                    reason: e.to_string(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The rustls configuration: ring, system roots plus the extra ones, ALPN h2 and HTTP/1.1.
fn tls_config(settings: &HttpSettings) -> Result<rustls::ClientConfig, HttpError> {
    tls_config_with(trusted_roots(settings))
}

/// The system roots plus the extra ones.
fn trusted_roots(settings: &HttpSettings) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::warn!(error = %err, "could not load some system CA certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    let (extra, extra_ignored) = roots.add_parsable_certificates(settings.extra_roots.clone());
    tracing::debug!(
        system = added,
        extra,
        ignored = ignored + extra_ignored,
        "loaded trusted CA certificates"
    );
    if roots.is_empty() {
        tracing::warn!(
            "no trusted CA certificates found: every HTTPS call will fail; mount the system CA bundle \
             or set SSL_CERT_FILE"
        );
    }
    roots
}

/// A rustls configuration trusting `roots`.
fn tls_config_with(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(HttpError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// The shared client and the node-local one. Takes only the HTTP settings (the daemon's
/// configuration converts into them, see `From<&Config> for HttpSettings`), so that this module
/// never depends on the configuration.
pub fn clients(
    settings: impl Into<HttpSettings>,
) -> Result<(reqwest::Client, reqwest::Client), HttpError> {
    let settings = settings.into();
    Ok((build_client(&settings)?, build_local_client(&settings)?))
}

/// The certificates of a PEM bundle; a missing or unreadable file is logged and yields none.
pub(crate) fn read_ca_file(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    match CertificateDer::pem_file_iter(path) {
        Ok(certs) => certs.filter_map(Result::ok).collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the token proxy CA bundle");
            Vec::new()
        }
    }
}

/// Builds the shared client.
pub fn build_client(settings: &HttpSettings) -> Result<reqwest::Client, HttpError> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(settings)?)
        .dns_resolver(Resolver::with_aliases(
            &settings.resolve_overrides,
            &settings.aliases,
        ))
        .user_agent(settings.user_agent.clone())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        // A redirect would carry the request, body included, to whichever host `Location` names:
        // the pod's client assertion or a client secret to Entra's look-alike, or the answer of
        // another host mounted as a secret. None of our peers redirects; read_body refuses a 3xx.
        .redirect(reqwest::redirect::Policy::none())
        .https_only(false)
        .build()
        .map_err(HttpError::Client)?;
    Ok(client)
}

/// The client for node-local endpoints (IMDS, NMI): plain HTTP, no proxy (an `HTTP_PROXY` meant for
/// the internet must not receive node-local token requests), short connect timeout.
pub fn build_local_client(settings: &HttpSettings) -> Result<reqwest::Client, HttpError> {
    // reqwest needs a TLS configuration even for a plain-HTTP client; this one is never used for
    // TLS, so it trusts nothing rather than holding a second parsed copy of the system store.
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config_with(rustls::RootCertStore::empty())?)
        .no_proxy()
        // IMDS and NMI never redirect either (see build_client).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(settings.user_agent.clone())
        .connect_timeout(Duration::from_secs(2))
        .timeout(settings.request_timeout)
        .build()
        .map_err(HttpError::Client)
}

/// Finds a [`DnsError`] in an error's source chain.
fn dns_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a DnsError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(dns) = e.downcast_ref::<DnsError>() {
            return Some(dns);
        }
        current = e.source();
    }
    None
}

/// The rustls error in an error's source chain. TLS streams report it inside an `io::Error` (itself
/// inside another one), and an `io::Error`'s `source()` is that of the error it wraps, skipping the
/// wrapped error itself: so the walk steps into each `io::Error` instead.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped),
            None => e.source(),
        };
    }
    None
}

/// The failure in one phrase: each distinct message of the error's source chain, once.
fn describe(err: &reqwest::Error) -> String {
    if let Some(dns) = dns_error(err) {
        return dns.to_string();
    }
    let mut msg = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
        current = e.source();
    }
    // reqwest's own outer message repeats the URL, which the caller names by host already.
    msg.replace("error sending request for url ", "sending ")
}

/// Whether any error in the chain says one of `needles`.
fn chain_mentions(err: &(dyn std::error::Error + 'static), needles: &[&str]) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        let text = format!("{e} {e:?}");
        if needles.iter().any(|n| text.contains(n)) {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_parses_host_and_socket_addr() {
        let o: ResolveOverride = "MyVault.vault.azure.net=127.0.0.1:8443".parse().unwrap();
        assert_eq!(o.host, "myvault.vault.azure.net");
        assert_eq!(o.addr, "127.0.0.1:8443".parse().unwrap());
        let v6: ResolveOverride = "x=[::1]:443".parse().unwrap();
        assert_eq!(v6.addr.port(), 443);
        assert!("nohost".parse::<ResolveOverride>().is_err());
        assert!("=1.2.3.4:1".parse::<ResolveOverride>().is_err());
        assert!("a=1.2.3.4".parse::<ResolveOverride>().is_err());
    }

    /// A name that does not resolve is a DNS failure naming the host (the Mount then says the vault
    /// does not exist, see `mount::error`). Hermetic on any machine: the system resolver refuses a
    /// label over 63 bytes before a query leaves it. Plain `http` because rustls refuses such a
    /// name as a TLS server name before resolving it, so an HTTPS request cannot reach the resolver
    /// with it; which is also why this is tested here and not end to end.
    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_dns_failure_naming_the_host() {
        let client = build_client(&HttpSettings::for_tests()).unwrap();
        let host = format!("kv-main.{}.example", "a".repeat(64));
        let url = format!("http://{host}/secrets/db-password");
        let err = client.get(&url).send().await.unwrap_err();
        let failure = TransportError::new(&url, err);
        assert_eq!(failure.kind, FailureKind::Dns, "{failure}");
        assert_eq!(failure.host, host);
        assert!(
            failure
                .to_string()
                .contains(&format!("DNS lookup of {host} failed")),
            "{failure}"
        );
    }

    /// Only an untrusted issuer gets the advice to trust a CA; a certificate for other names
    /// gets its own description (the end-to-end cases are in `tests/it/faults.rs`).
    #[test]
    fn tls_failures_say_what_to_fix() {
        use rustls::CertificateError as E;
        let kind_of = |e: E| TlsFailure::of(&rustls::Error::InvalidCertificate(e));
        assert_eq!(kind_of(E::UnknownIssuer), TlsFailure::UntrustedCertificate);
        assert_eq!(kind_of(E::BadSignature), TlsFailure::UntrustedCertificate);
        assert_eq!(kind_of(E::NotValidForName), TlsFailure::WrongName);
        assert_eq!(kind_of(E::Expired), TlsFailure::Other);
        assert_eq!(
            TlsFailure::of(&rustls::Error::HandshakeNotComplete),
            TlsFailure::Other
        );
        let describe = |failure| {
            TransportError::from_parts(
                "kv.vault.azure.net".into(),
                FailureKind::Tls(failure),
                "invalid peer certificate".into(),
            )
            .to_string()
        };
        let untrusted = describe(TlsFailure::UntrustedCertificate);
        assert!(
            untrusted.contains("the certificate of kv.vault.azure.net is not trusted")
                && untrusted.contains("SSL_CERT_FILE"),
            "{untrusted}"
        );
        let wrong_name = describe(TlsFailure::WrongName);
        assert!(
            wrong_name.contains("does not match the host name kv.vault.azure.net")
                && !wrong_name.contains("SSL_CERT_FILE"),
            "{wrong_name}"
        );
    }

    #[test]
    fn wildcard_matches_only_below_the_dot() {
        let r = Resolver::new(&[
            "*.vault.azure.net=127.0.0.1:1".parse().unwrap(),
            "login.microsoftonline.com=127.0.0.1:2".parse().unwrap(),
        ]);
        assert_eq!(
            r.lookup_override("a.vault.azure.net").map(|a| a.port()),
            Some(1)
        );
        assert_eq!(
            r.lookup_override("A.VAULT.azure.net").map(|a| a.port()),
            Some(1)
        );
        assert_eq!(r.lookup_override("evilvault.azure.net"), None);
        assert_eq!(
            r.lookup_override("login.microsoftonline.com")
                .map(|a| a.port()),
            Some(2)
        );
        assert_eq!(r.lookup_override("other.example"), None);
    }
}
