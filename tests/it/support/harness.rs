//! Starts the real provider (`akv_csi_provider::run`) on a temporary Unix socket, pointed at the
//! emulator (`akv-emulator`) through the production resolver override and trusting the emulator's
//! CA, and calls it with a generated tonic client the way the driver does. Pods present
//! service-account tokens signed by one test issuer whose key the emulator trusts, so Entra's
//! signature check is exercised on every workload-identity exchange.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use akv_csi_provider::Config;
use akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use akv_csi_provider::proto::{MountRequest, MountResponse, VersionRequest};
use akv_csi_provider::server::socket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use akv_emulator::{Emulator, SecretVersion};

pub const TENANT: &str = "33333333-3333-3333-3333-333333333333";
pub const CLIENT_ID: &str = "8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e";
pub const ISSUER: &str = "https://oidc.prod-aks.azure.com/1c2d3e4f-aaaa-bbbb-cccc-000000000001/5a6b7c8d-dddd-eeee-ffff-000000000002/";
pub const VAULT: &str = "kv-main";
pub const WI_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Vaults the resolver override sends to the emulator. Any other name goes to the system's DNS: in
/// CI's loopback-only network namespace that fails at once; elsewhere it is one DNS query, which
/// only `mount::unknown_vault_fails_fast_naming_its_host` makes, for a vault that does not exist.
pub const VAULTS: &[&str] = &["kv-main", "kv-other"];

/// A running provider.
pub struct Provider {
    pub socket: PathBuf,
    /// Where `/metrics` is served (an ephemeral port).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Where the liveness endpoint is served, when the configuration asks for it.
    pub healthz_addr: Option<std::net::SocketAddr>,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), akv_csi_provider::server::ServeError>>>,
}

impl Provider {
    /// Mounts `request` expecting it to fail with `code` and a message holding every one of
    /// `words`; returns how long it took and the message.
    pub async fn mount_fails(
        &self,
        request: MountRequest,
        code: tonic::Code,
        words: &[&str],
    ) -> (Duration, String) {
        let started = std::time::Instant::now();
        let status = self.mount(request).await.expect_err("the Mount fails");
        let elapsed = started.elapsed();
        assert_eq!(status.code(), code, "{}", status.message());
        for w in words {
            assert!(
                status.message().contains(w),
                "{w:?} missing from: {}",
                status.message()
            );
        }
        (elapsed, status.message().to_owned())
    }

    /// Starts a provider that reaches `emu` for the public and US Government clouds and the
    /// `login.example`/`vault.example` Azure Stack test cloud.
    pub async fn start(emu: &Emulator, tweak: impl FnOnce(&mut Config)) -> Self {
        super::hygiene::init();
        let dir = tempfile::tempdir().expect("tempdir");
        let socket_path = dir.path().join("azure.sock");
        let addr = emu.addr();
        let mut config = Config {
            socket_path: socket_path.clone(),
            healthz: None,
            // An ephemeral port, so that tests running in parallel do not collide.
            metrics: akv_csi_provider::config::MetricsConfig::Prometheus { port: 0 },
            extra_root_certs: vec![emu.ca_der().to_vec()],
            mount_timeout: Duration::from_secs(20),
            ..Config::default()
        };
        let mut hosts: Vec<String> = vec![
            "login.microsoftonline.com".into(),
            "login.microsoftonline.us".into(),
            "login.example".into(),
            "kubernetes.default.svc".into(),
        ];
        for vault in VAULTS {
            hosts.push(format!("{vault}.vault.azure.net"));
            hosts.push(format!("{vault}.vault.usgovcloudapi.net"));
            hosts.push(format!("{vault}.vault.example"));
        }
        config.resolve_overrides = hosts
            .iter()
            .map(|h| format!("{h}={addr}").parse().expect("override"))
            .collect();
        tweak(&mut config);
        let listener = socket::bind(&socket_path).expect("bind socket");
        let daemon = akv_csi_provider::server::Daemon::start(config, listener)
            .await
            .expect("start the daemon");
        let metrics_addr = daemon.metrics_addr();
        let healthz_addr = daemon.healthz_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            socket: socket_path,
            metrics_addr,
            healthz_addr,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `GET /metrics`, as Prometheus scrapes it.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let port = self.metrics_addr.expect("Prometheus metrics").port();
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to /metrics");
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
            "{text}"
        );
        text.split_once("\r\n\r\n").unwrap().1.to_owned()
    }

    /// A client like the driver v1.6's: HTTP/2 over the socket, `:authority` localhost.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        let channel = socket::connect(&self.socket)
            .await
            .expect("connect to provider socket");
        CsiDriverProviderClient::new(channel)
    }

    pub async fn mount(&self, request: MountRequest) -> Result<MountResponse, tonic::Status> {
        let result = self
            .client()
            .await
            .mount(request)
            .await
            .map(tonic::Response::into_inner);
        super::hygiene::check(result.as_ref().err().map(tonic::Status::message));
        result
    }

    pub async fn version(&self) -> String {
        self.client()
            .await
            .version(VersionRequest {
                version: "v1alpha1".into(),
            })
            .await
            .expect("Version")
            .into_inner()
            .runtime_name
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("run returned an error");
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The pod a request is for.
#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
}

impl Default for Pod {
    fn default() -> Self {
        Self {
            namespace: "app".into(),
            name: "web-0".into(),
            service_account: "web".into(),
        }
    }
}

impl Pod {
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// The pod's projected token for `audience`, valid for an hour.
    pub fn token(&self, audience: &str) -> String {
        self.token_expiring(audience, now() + 3600)
    }

    /// The pod's projected token for `audience`, expiring at `exp` (Unix seconds).
    pub fn token_expiring(&self, audience: &str, exp: i64) -> String {
        let token = issuer()
            .service_account_token(&self.namespace, &self.service_account, &[audience], exp)
            .expect("sign service-account token");
        super::hygiene::forbid(&token);
        token
    }
}

pub use akv_emulator::now;

/// The cluster's service-account token issuer (`ISSUER`), one key per test binary.
pub fn issuer() -> &'static akv_emulator::Issuer {
    static ISSUER_KEY: OnceLock<akv_emulator::Issuer> = OnceLock::new();
    ISSUER_KEY.get_or_init(|| akv_emulator::Issuer::generate(ISSUER).expect("issuer key"))
}

/// Builds a MountRequest like driver v1.6 sends: SPC parameters plus pod attributes and tokens.
pub struct MountBuilder {
    pub params: serde_json::Map<String, serde_json::Value>,
    pub secrets: String,
    pub permission: String,
    pub pod: Pod,
    pub token: Option<String>,
}

impl MountBuilder {
    /// Workload identity against `VAULT` with the given objects YAML (the `array:` document).
    pub fn workload(objects: &str) -> Self {
        let pod = Pod::default();
        let mut params = serde_json::Map::new();
        params.insert("keyvaultName".into(), VAULT.into());
        params.insert("tenantID".into(), TENANT.into());
        params.insert("clientID".into(), CLIENT_ID.into());
        params.insert("objects".into(), objects.into());
        Self {
            token: Some(pod.token(WI_AUDIENCE)),
            params,
            secrets: "null".into(),
            permission: "420".into(),
            pod,
        }
    }

    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.params.remove(key);
        self
    }

    pub fn pod(mut self, pod: Pod) -> Self {
        self.token = Some(pod.token(WI_AUDIENCE));
        self.pod = pod;
        self
    }

    pub fn build(&self) -> MountRequest {
        // A service principal's client secret must never be logged or echoed.
        if let Ok(serde_json::Value::Object(secrets)) = serde_json::from_str(&self.secrets) {
            for (key, value) in secrets {
                if let (true, Some(v)) = (key.eq_ignore_ascii_case("clientsecret"), value.as_str())
                {
                    super::hygiene::forbid(v);
                }
            }
        }
        let mut attrs = self.params.clone();
        attrs.insert("secretProviderClass".into(), "spc".into());
        attrs.insert(
            "csi.storage.k8s.io/pod.name".into(),
            self.pod.name.clone().into(),
        );
        attrs.insert(
            "csi.storage.k8s.io/pod.namespace".into(),
            self.pod.namespace.clone().into(),
        );
        attrs.insert(
            "csi.storage.k8s.io/pod.uid".into(),
            "0b6f1c1e-0000-4000-8000-000000000001".into(),
        );
        attrs.insert(
            "csi.storage.k8s.io/serviceAccount.name".into(),
            self.pod.service_account.clone().into(),
        );
        attrs.insert("csi.storage.k8s.io/ephemeral".into(), "false".into());
        if let Some(token) = &self.token {
            attrs.insert(
                "csi.storage.k8s.io/serviceAccount.tokens".into(),
                akv_emulator::tokens_attribute(WI_AUDIENCE, token, "2099-01-01T00:00:00Z").into(),
            );
        }
        MountRequest {
            attributes: serde_json::Value::Object(attrs).to_string(),
            secrets: self.secrets.clone(),
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/secrets/mount".into(),
            permission: self.permission.clone(),
            current_object_version: Vec::new(),
        }
    }
}

/// `array:` YAML for the given per-object YAML snippets.
pub fn objects(items: &[&str]) -> String {
    let mut out = String::from("array:\n");
    for item in items {
        out.push_str("  - |\n");
        for line in item.lines() {
            out.push_str("    ");
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}

/// The file at `path` in a response.
pub fn file<'a>(response: &'a MountResponse, path: &str) -> &'a akv_csi_provider::proto::File {
    response
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no file {path:?} in {:?}",
                response.files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
}

/// A plain (not certificate-backed) secret version.
pub fn plain_secret(version: &str, value: &str, created: i64) -> SecretVersion {
    super::hygiene::forbid(value);
    SecretVersion::new(version, value, created)
}

/// An emulator that trusts the test issuer's key, with nothing else configured.
pub async fn emulator() -> Emulator {
    let emu = Emulator::start().await.expect("start the emulator");
    emu.entra().trust_issuer(issuer());
    emu
}

/// Federates `CLIENT_ID` with the default pod's service account and lets it read `VAULT`.
pub fn federate(emu: &Emulator) {
    emu.entra().add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        &Pod::default().subject(),
        WI_AUDIENCE,
    );
    emu.vault(VAULT).grant(CLIENT_ID);
}

/// An emulator where `CLIENT_ID` is federated with the default pod and may read `VAULT`.
pub async fn federated_emulator() -> Emulator {
    let emu = emulator().await;
    federate(&emu);
    emu
}

/// Waits until a daemon started as a process has put its socket at `socket` (20 s at most: a
/// loaded machine starts processes slowly).
pub async fn wait_for_socket(socket: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not put its socket at {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audience of the AKS identity-binding token the CSIDriver requests.
pub const BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// Identity binding: the daemon sends token requests to the AKS token proxy (reached as
/// `kubernetes.default.svc`, which the harness routes to the emulator) under its TLS server name.
pub fn with_token_proxy(config: &mut Config) {
    config.token_proxy = Some(
        akv_csi_provider::config::TokenProxy::new(
            "https://kubernetes.default.svc",
            "tokenproxy.aks.example",
        )
        .expect("token proxy"),
    );
    config.token_proxy_ca_file = "/nonexistent/ca.crt".into();
}

/// A Mount of `objects` through identity binding, with the default pod's token for the binding
/// audience; federates that audience for `CLIENT_ID` in `emu`.
pub fn identity_binding(emu: &Emulator, objects: &str) -> MountBuilder {
    let pod = Pod::default();
    emu.entra().add_federated_credential(
        TENANT,
        CLIENT_ID,
        ISSUER,
        &pod.subject(),
        BINDING_AUDIENCE,
    );
    let mut b = MountBuilder::workload(objects).param("useAzureTokenProxy", "true");
    b.token = None;
    b.param(
        "csi.storage.k8s.io/serviceAccount.tokens",
        &akv_emulator::tokens_attribute(
            BINDING_AUDIENCE,
            &pod.token(BINDING_AUDIENCE),
            "2099-01-01T00:00:00Z",
        ),
    )
}
