//! A load generator that plays one node against the local emulator: the real daemon binary as a
//! child process, called over its Unix socket the way CSI driver v1.6 calls it, with Entra ID and
//! Key Vault emulated by `akv-emulator` (per-vault latency as the RTT, and optionally its
//! throttling model: N requests per fixed window per vault, then 429 with `Retry-After`).
//!
//! Build and run: `cargo bench` builds the daemon binary with the bench profile (= release) and
//! hands its path to this bench (`CARGO_BIN_EXE_akv-csi-provider`, i.e.
//! `target/release/akv-csi-provider`, the same file `cargo build --release` makes); set
//! `AKV_BENCH_DAEMON=/path/to/binary` to run another build; with `AKV_BENCH_PEER=1` as well, another
//! provider (BENCHMARKS.md, "Beside Azure's provider", runs Azure's Go provider this way).
//!
//! ```sh
//! cargo bench --bench node -- reference                 # the published scenario (also the default)
//! cargo bench --bench node -- scaleout --pods 100 --objects 10 --rtt-ms 20
//! cargo bench --bench node -- rotation --pods 100 --objects 10 --cycles 3 --cache-ttl 0s,10m
//! cargo bench --bench node -- mix --workloads 10 --pods 100 --objects 10 --cycles 1
//! cargo bench --bench node -- burst --pods 1000 --objects 10
//! cargo bench --bench node -- wide --objects 64 --rtt-ms 20 --repeat 50
//! cargo bench --bench node -- pfxburst --pods 200 --objects 3 --repeat 5
//! cargo bench --bench node -- sweep --fetches 4,8,16,32,64
//! cargo bench --bench node -- all                       # everything in BENCHMARKS.md
//! ```
//!
//! Every run starts a fresh emulator and a fresh daemon (so caches are cold and the peak RSS is the
//! run's own). A run is a start phase (P pods of W workloads mount at once, as after a scale-out)
//! followed by K rotation cycles (every pod remounts once, one Mount after another, as the driver's
//! rotation does; cycles back to back, or every `--interval-ms`). Per phase it reports Mount
//! latency (p50/p99, measured by the client), Key Vault GETs answered and 429s apart, Entra token
//! exchanges (the emulator's counters), how the 429s were grouped (runs of consecutive 429s in the
//! vault's log: "rounds"), CPU of the daemon per Mount (utime + stime from `/proc/<pid>/stat`, in
//! clock ticks of `getconf CLK_TCK`) and the daemon's peak RSS (`VmHWM` of `/proc/<pid>/status`).
//! The daemon's own `/metrics` are read at the end of a run and cross-checked against the
//! emulator's counts (printed as an HTML comment under the rows).
//!
//! Caveat: the emulator and the load generator run in this process on the same machine as the
//! daemon, so on a small machine they compete with it for CPU; the CPU figures are the daemon's
//! alone, the latencies include that contention.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient;
use akv_csi_provider::proto::{MountRequest, ObjectVersion, VersionRequest};
use akv_emulator::{Emulator, Issuer, KvRequest, SecretVersion, WORKLOAD_IDENTITY_AUDIENCE};
use tonic::transport::Channel;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ISSUER: &str = "https://oidc.bench.example/cluster-1/";
const VAULT: &str = "kv-bench";

const USAGE: &str = "\
usage: cargo bench --bench node -- <scenario> [options]

scenarios:
  reference   100 pods x 10 objects, one workload, RTT 20 ms, 3 rotation cycles, throttling model
              500 requests per 10 s; cache off, --object-cache-ttl=10m, and 1s with cycles every 1.5s
  scaleout    P pods start together (default 100 pods, 10 objects, 1 workload, no cycles)
  rotation    start, then K sequential rotation cycles (default 3)
  mix         W workloads with their own service accounts and identities (default 10)
  burst       1,000 Mounts at once (default 1,000 pods, 10 objects; 1 and 100 workloads)
  wide        one Mount of many objects with a warm token, repeated (default 64 objects, 50 times)
  pfxburst    200 Mounts at once of 3 objects, the last a PFX; CPU per Mount, idle RSS and RSS after
              the burst (default 3 runs, each with a fresh daemon)
  sweep       --max-concurrent-fetches over wide Mounts and scale-outs (default 4,8,16,32,64,128)
  all         every table of BENCHMARKS.md

options (a comma-separated list runs each value):
  --pods N  --objects M  --workloads W  --cycles K  --rtt-ms R  --repeat N  --value-bytes B
  --cache-ttl 0s,10m        --object-cache-ttl of the daemon (0s: off)
  --fetches 8,32            --max-concurrent-fetches (default: the daemon's default)
  --max-mounts N            --max-concurrent-mounts (default: the daemon's default)
  --throttle 500/10s|none   the emulator's per-vault throttling model
  --interval-ms I           start a rotation cycle every I ms instead of back to back
";

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Options {
    pods: Option<usize>,
    objects: Option<usize>,
    workloads: Option<usize>,
    cycles: Option<usize>,
    rtt_ms: u64,
    repeat: Option<usize>,
    value_bytes: usize,
    cache_ttl: Option<Vec<String>>,
    fetches: Option<Vec<usize>>,
    max_mounts: Option<usize>,
    throttle: Option<Option<(u32, Duration)>>,
    interval_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pods: None,
            objects: None,
            workloads: None,
            cycles: None,
            rtt_ms: 20,
            repeat: None,
            value_bytes: 64,
            cache_ttl: None,
            fetches: None,
            max_mounts: None,
            throttle: None,
            interval_ms: None,
        }
    }
}

fn parse_list<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Vec<T>, String> {
    value
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{flag}: bad value {v:?}"))
        })
        .collect()
}

fn parse_one<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: bad value {value:?}"))
}

/// `500/10s` → (500, 10 s); `none` → no throttling model.
fn parse_throttle(value: &str) -> Result<Option<(u32, Duration)>, String> {
    if value == "none" || value == "off" {
        return Ok(None);
    }
    let err = || format!("--throttle: expected N/<seconds>s such as 500/10s, got {value:?}");
    let (n, window) = value.split_once('/').ok_or_else(err)?;
    let secs: u64 = window
        .strip_suffix('s')
        .ok_or_else(err)?
        .parse()
        .map_err(|_| err())?;
    Ok(Some((
        n.parse().map_err(|_| err())?,
        Duration::from_secs(secs),
    )))
}

fn parse_args(args: &[String]) -> Result<(String, Options), String> {
    let mut scenario = None;
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // `cargo bench` appends `--bench` to every bench binary's arguments.
        if arg == "--bench" || arg.is_empty() {
            continue;
        }
        if !arg.starts_with("--") {
            if scenario.replace(arg.clone()).is_some() {
                return Err(format!("more than one scenario given ({arg})"));
            }
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match flag.as_str() {
            "--pods" => o.pods = Some(parse_one(&flag, &value)?),
            "--objects" => o.objects = Some(parse_one(&flag, &value)?),
            "--workloads" => o.workloads = Some(parse_one(&flag, &value)?),
            "--cycles" => o.cycles = Some(parse_one(&flag, &value)?),
            "--rtt-ms" => o.rtt_ms = parse_one(&flag, &value)?,
            "--repeat" => o.repeat = Some(parse_one(&flag, &value)?),
            "--value-bytes" => o.value_bytes = parse_one(&flag, &value)?,
            "--cache-ttl" => {
                o.cache_ttl = Some(value.split(',').map(|s| s.trim().to_owned()).collect());
            }
            "--fetches" => o.fetches = Some(parse_list(&flag, &value)?),
            "--max-mounts" => o.max_mounts = Some(parse_one(&flag, &value)?),
            "--throttle" => o.throttle = Some(parse_throttle(&value)?),
            "--interval-ms" => o.interval_ms = Some(parse_one(&flag, &value)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok((scenario.unwrap_or_else(|| "reference".to_owned()), o))
}

// ---------------------------------------------------------------------------------------------
// What one run is

/// One node run: a start phase, then rotation cycles.
#[derive(Clone, Debug)]
struct RunSpec {
    scenario: String,
    pods: usize,
    objects: usize,
    workloads: usize,
    cycles: usize,
    rtt: Duration,
    /// Rotation cycles start this far apart (none: back to back).
    interval: Option<Duration>,
    /// `--max-concurrent-fetches` (none: the daemon's default).
    fetches: Option<usize>,
    /// `--object-cache-ttl`.
    cache_ttl: String,
    /// The emulator's throttling model on the vault.
    throttle: Option<(u32, Duration)>,
    max_mounts: Option<usize>,
    value_bytes: usize,
    /// The last object is a certificate's secret holding Key Vault's own PFX (3DES/RC2, 2,048
    /// iterations), mounted as `objectType: secret` (converted to PEM key and chain).
    pfx: bool,
}

impl RunSpec {
    fn flags(&self) -> Vec<String> {
        let mut flags = vec![format!("--object-cache-ttl={}", self.cache_ttl)];
        if let Some(n) = self.fetches {
            flags.push(format!("--max-concurrent-fetches={n}"));
        }
        if let Some(n) = self.max_mounts {
            flags.push(format!("--max-concurrent-mounts={n}"));
        }
        flags
    }

    fn fetches_label(&self) -> String {
        self.fetches
            .map_or_else(|| "default".to_owned(), |n| n.to_string())
    }

    fn throttle_label(&self) -> String {
        self.throttle.map_or_else(
            || "none".to_owned(),
            |(n, w)| format!("{n}/{}s", w.as_secs()),
        )
    }
}

/// What one phase measured.
#[derive(Clone, Debug, Default)]
struct Phase {
    name: String,
    mounts: usize,
    failed: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    /// Key Vault GET requests received (any answer, 429s included).
    gets: u64,
    exchanges: u64,
    throttled: u64,
    /// Runs of consecutive 429 answers in the vault's log (one per throttled window when the node
    /// backs off together), and the longest.
    rounds: usize,
    max_round: usize,
    cpu_seconds: f64,
    first_error: Option<String>,
}

impl Phase {
    fn add(&mut self, other: &Phase) {
        self.mounts += other.mounts;
        self.failed += other.failed;
        self.wall += other.wall;
        self.latencies.extend_from_slice(&other.latencies);
        self.gets += other.gets;
        self.exchanges += other.exchanges;
        self.throttled += other.throttled;
        self.rounds += other.rounds;
        self.max_round = self.max_round.max(other.max_round);
        self.cpu_seconds += other.cpu_seconds;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    fn cpu_ms_per_mount(&self) -> f64 {
        self.cpu_seconds * 1000.0 / self.mounts.max(1) as f64
    }
}

/// A run's phases and whole-run figures.
struct RunResult {
    phases: Vec<Phase>,
    peak_rss_kib: u64,
    idle_rss_kib: u64,
    /// `VmRSS` once the last phase is over.
    end_rss_kib: u64,
    metrics_note: String,
}

impl RunResult {
    fn total(&self) -> Phase {
        let mut total = Phase {
            name: "total".into(),
            ..Phase::default()
        };
        for p in &self.phases {
            total.add(p);
        }
        total
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring the daemon from /proc

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(11) + field(12)) as f64 / ticks
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The node: emulator, daemon, client

struct Workload {
    client_id: String,
    namespace: String,
    service_account: String,
}

/// The emulator seeded with the vault's objects and the workloads' identities.
struct Cloud {
    emu: Emulator,
    issuer: Issuer,
    workloads: Vec<Workload>,
}

impl Cloud {
    async fn start(
        objects: usize,
        workloads: usize,
        rtt: Duration,
        throttle: Option<(u32, Duration)>,
        value_bytes: usize,
    ) -> Self {
        let emu = Emulator::start().await.expect("start the emulator");
        let issuer = emu.entra().add_issuer(ISSUER).expect("issuer");
        let vault = emu.vault(VAULT);
        vault.set_latency(rtt);
        let created = akv_emulator::now() - 86_400;
        for i in 0..objects {
            let value: String = format!("value-of-obj-{i:03}-")
                .chars()
                .cycle()
                .take(value_bytes)
                .collect();
            vault.put_secret(
                &object_name(i),
                SecretVersion::new(
                    &format!("{:032x}", 0xbe9c_0000u128 + i as u128),
                    &value,
                    created,
                ),
            );
        }
        let workloads: Vec<Workload> = (0..workloads)
            .map(|w| Workload {
                client_id: format!("{:08x}-0000-4000-8000-{w:012x}", 0xb0c0_0000u32),
                namespace: format!("team-{w}"),
                service_account: format!("app-{w}"),
            })
            .collect();
        for w in &workloads {
            emu.entra().add_federated_credential(
                TENANT,
                &w.client_id,
                ISSUER,
                &format!(
                    "system:serviceaccount:{}:{}",
                    w.namespace, w.service_account
                ),
                WORKLOAD_IDENTITY_AUDIENCE,
            );
            vault.grant(&w.client_id);
        }
        if let Some((n, window)) = throttle {
            vault.limit_requests(n, window);
        }
        Self {
            emu,
            issuer,
            workloads,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.emu.addr()
    }

    /// The Mount request of pod `pod` of `workload` as driver v1.6 sends it (its own projected
    /// token, pod name and uid; the workload's namespace and service account).
    fn request(&self, workload: usize, pod: usize, objects_yaml: &str) -> MountRequest {
        let w = &self.workloads[workload];
        let pod_name = format!("{}-{pod}", w.service_account);
        let uid = format!("0b6f1c1e-0000-4000-8000-{pod:012x}");
        let now = akv_emulator::now();
        let token = self
            .issuer
            .sign(&serde_json::json!({
                "aud": [WORKLOAD_IDENTITY_AUDIENCE], "exp": now + 3600, "iat": now, "nbf": now,
                "iss": ISSUER,
                "sub": format!("system:serviceaccount:{}:{}", w.namespace, w.service_account),
                "kubernetes.io": {
                    "namespace": w.namespace,
                    "pod": { "name": pod_name, "uid": uid },
                    "serviceaccount": { "name": w.service_account, "uid": "9b7c1f0e-0000-4000-8000-000000000001" },
                },
            }))
            .expect("sign the pod's token");
        let attributes = serde_json::json!({
            "keyvaultName": VAULT,
            "tenantID": TENANT,
            "clientID": w.client_id,
            "objects": objects_yaml,
            "secretProviderClass": format!("spc-{}", w.service_account),
            "csi.storage.k8s.io/pod.name": pod_name,
            "csi.storage.k8s.io/pod.namespace": w.namespace,
            "csi.storage.k8s.io/pod.uid": uid,
            "csi.storage.k8s.io/serviceAccount.name": w.service_account,
            "csi.storage.k8s.io/ephemeral": "false",
            "csi.storage.k8s.io/serviceAccount.tokens":
                akv_emulator::tokens_attribute(WORKLOAD_IDENTITY_AUDIENCE, &token, "2099-01-01T00:00:00Z"),
        });
        MountRequest {
            attributes: attributes.to_string(),
            secrets: "null".into(),
            target_path: format!(
                "/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/secrets-store/mount"
            ),
            permission: "420".into(),
            current_object_version: Vec::new(),
        }
    }

    fn gets(&self) -> u64 {
        self.emu.counters().kv_gets.values().sum()
    }

    fn exchanges(&self) -> u64 {
        self.emu.counters().token_exchanges.values().sum()
    }

    fn throttled(&self) -> u64 {
        self.emu.counters().throttled_total()
    }
}

/// Key Vault's own PFX (3DES key bag, RC2-40 certificate bag, 2,048 KDF and MAC iterations, an EC
/// P-256 key and a chain of three), from the Go provider's test vectors.
const PFX_BASE64: &str = include_str!(
    "../tests/data/vectors/keyvault/go-provider-vectors/decodePKCS12/case2/input.pfx.b64"
);

impl Cloud {
    /// A certificate whose secret is [`PFX_BASE64`], named `name` (only its secret is mounted).
    fn add_pfx(&self, name: &str) {
        self.emu.vault(VAULT).put_certificate_with_secret(
            name,
            &format!("{:032x}", 0xce27_0000u128),
            "",
            PFX_BASE64.trim(),
            "application/x-pkcs12",
            akv_emulator::now() - 86_400,
            true,
        );
    }
}

fn object_name(i: usize) -> String {
    format!("obj-{i:03}")
}

/// The `objects` parameter naming objects `0..n`.
fn objects_yaml(n: usize) -> String {
    let mut out = String::from("array:\n");
    for i in 0..n {
        let _ = write!(
            out,
            "  - |\n    objectName: {}\n    objectType: secret\n",
            object_name(i)
        );
    }
    out
}

/// `AKV_BENCH_PEER` set: the daemon is another provider (Azure's, for a side-by-side run), so what this
/// project's daemon guarantees (a token kept warm between Mounts) is reported instead of asserted.
fn peer() -> bool {
    std::env::var_os("AKV_BENCH_PEER").is_some()
}

/// The daemon binary: the one Cargo built beside this bench, or `AKV_BENCH_DAEMON`.
fn daemon_binary() -> PathBuf {
    std::env::var_os("AKV_BENCH_DAEMON").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_akv-csi-provider")),
        PathBuf::from,
    )
}

/// The daemon as a child process, as a DaemonSet runs it.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    metrics_port: u16,
}

impl Daemon {
    fn spawn(cloud: &Cloud, flags: &[String]) -> Self {
        let emu = &cloud.emu;
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("azure.sock");
        let ca = dir.path().join("emulator-ca.pem");
        std::fs::write(&ca, emu.ca_pem()).expect("write the CA");
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log file");
        // A free port for /metrics (released just before the daemon binds it).
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let addr = cloud.addr();
        // The binary's pages leave the page cache first, so that every run starts the way a node's
        // first start after the image pull does: how much of the executable becomes resident at
        // start depends on how its file sits in the page cache (a just-linked or just-copied file is
        // cached in large folios that a fault maps whole), which made idle RSS differ by over 1 MiB
        // between identical builds. `dd … iflag=nocache count=0` is coreutils' way to drop a file.
        let _ = Command::new("dd")
            .arg(format!("if={}", daemon_binary().display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status();
        let mut command = Command::new(daemon_binary());
        command
            .arg(format!("--endpoint=unix://{}", socket.display()))
            .arg(format!("--resolve=login.microsoftonline.com={addr}"))
            .arg(format!("--resolve=*.vault.azure.net={addr}"))
            .arg("--healthz-port=0")
            .arg(format!("--prometheus-port={metrics_port}"))
            .args(flags)
            .env("SSL_CERT_FILE", &ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "RUST_LOG",
            "SSL_CERT_DIR",
        ] {
            command.env_remove(var);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it with `cargo build --release` or run through `cargo \
                 bench`)",
                daemon_binary().display()
            )
        });
        Self {
            child,
            dir,
            socket,
            metrics_port,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Connects like driver v1.6 (HTTP/2 over the socket, `:authority` localhost) once the
    /// daemon answers `Version`.
    async fn connect(&mut self) -> Channel {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the daemon did not answer within 20 s:\n{}",
                self.log_tail()
            );
            if self.socket.exists() {
                let channel = akv_csi_provider::server::socket::connect(&self.socket).await;
                if let Ok(channel) = channel {
                    let version = CsiDriverProviderClient::new(channel.clone())
                        .version(VersionRequest {
                            version: "v1alpha1".into(),
                        })
                        .await;
                    if version.is_ok() {
                        return channel;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The daemon's `/metrics` text.
    async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await
        else {
            return String::new();
        };
        let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the samples of a Prometheus metric family whose label set contains `filter`.
fn metric_sum(text: &str, family: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

// ---------------------------------------------------------------------------------------------
// Mounts

type Outcome = (Duration, Result<Vec<ObjectVersion>, String>);

async fn mount(channel: Channel, request: MountRequest) -> Outcome {
    let mut client = CsiDriverProviderClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let started = Instant::now();
    let result = client.mount(request).await;
    let elapsed = started.elapsed();
    (
        elapsed,
        result
            .map(|r| r.into_inner().object_version)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
    )
}

/// Every request at once (each in its own task, released together).
async fn all_at_once(channel: &Channel, requests: Vec<MountRequest>) -> Vec<Outcome> {
    let (go, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::with_capacity(requests.len());
    for request in requests {
        let mut ready = go.subscribe();
        let channel = channel.clone();
        tasks.push(tokio::spawn(async move {
            let _ = ready.recv().await;
            mount(channel, request).await
        }));
    }
    tokio::task::yield_now().await;
    let _ = go.send(());
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("mount task"));
    }
    out
}

/// One request after another, as the driver's rotation does.
async fn one_by_one(channel: &Channel, requests: &mut [MountRequest]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(requests.len());
    for request in requests.iter_mut() {
        let outcome = mount(channel.clone(), request.clone()).await;
        // The driver sends the versions it has on the next rotation.
        if let Ok(versions) = &outcome.1 {
            request.current_object_version.clone_from(versions);
        }
        out.push(outcome);
    }
    out
}

/// Runs `work` as a phase: counters, CPU and the vault's log before and after.
async fn phase<F>(name: &str, cloud: &Cloud, daemon: &Daemon, ticks: f64, work: F) -> Phase
where
    F: std::future::Future<Output = Vec<Outcome>>,
{
    let log_before = cloud.emu.vault(VAULT).requests().len();
    let (gets, exchanges, throttled) = (cloud.gets(), cloud.exchanges(), cloud.throttled());
    let cpu = cpu_seconds(daemon.pid(), ticks);
    let started = Instant::now();
    let outcomes = work.await;
    let wall = started.elapsed();
    let cpu = cpu_seconds(daemon.pid(), ticks) - cpu;
    let log = cloud.emu.vault(VAULT).requests();
    let (rounds, max_round) = rounds_of_429(&log[log_before.min(log.len())..]);
    let failed = outcomes.iter().filter(|o| o.1.is_err()).count();
    Phase {
        name: name.to_owned(),
        mounts: outcomes.len(),
        failed,
        wall,
        first_error: outcomes.iter().find_map(|o| o.1.clone().err()),
        latencies: outcomes.into_iter().map(|o| o.0).collect(),
        gets: cloud.gets() - gets,
        exchanges: cloud.exchanges() - exchanges,
        throttled: cloud.throttled() - throttled,
        rounds,
        max_round,
        cpu_seconds: cpu,
    }
}

/// (runs of consecutive 429 answers, the longest run) in a vault's log.
fn rounds_of_429(log: &[KvRequest]) -> (usize, usize) {
    let (mut rounds, mut longest, mut current) = (0, 0, 0);
    for request in log {
        if request.status == 429 {
            if current == 0 {
                rounds += 1;
            }
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    (rounds, longest)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

// ---------------------------------------------------------------------------------------------
// Node runs

async fn run_node(spec: &RunSpec, ticks: f64) -> RunResult {
    let secrets = spec.objects - usize::from(spec.pfx && spec.objects > 0);
    let cloud = Cloud::start(
        secrets,
        spec.workloads,
        spec.rtt,
        spec.throttle,
        spec.value_bytes,
    )
    .await;
    if secrets < spec.objects {
        cloud.add_pfx(&object_name(secrets));
    }
    let mut daemon = Daemon::spawn(&cloud, &spec.flags());
    let channel = daemon.connect().await;
    let idle_rss_kib = status_kib(daemon.pid(), "VmRSS");
    let yaml = objects_yaml(spec.objects);
    let mut requests: Vec<MountRequest> = (0..spec.pods)
        .map(|pod| cloud.request(pod % spec.workloads, pod, &yaml))
        .collect();
    let mut phases = Vec::new();
    let start = phase("start", &cloud, &daemon, ticks, async {
        all_at_once(&channel, requests.clone()).await
    })
    .await;
    phases.push(start);
    let rotation_started = Instant::now();
    for cycle in 1..=spec.cycles {
        if let Some(interval) = spec.interval {
            let at = rotation_started + interval * (cycle as u32 - 1);
            tokio::time::sleep_until(at.into()).await;
        }
        let p = phase(&format!("cycle {cycle}"), &cloud, &daemon, ticks, async {
            one_by_one(&channel, &mut requests).await
        })
        .await;
        phases.push(p);
    }
    let peak_rss_kib = status_kib(daemon.pid(), "VmHWM");
    let end_rss_kib = status_kib(daemon.pid(), "VmRSS");
    let metrics = daemon.metrics().await;
    let metrics_note = metrics_check(&metrics, &cloud);
    daemon.stop();
    RunResult {
        phases,
        peak_rss_kib,
        idle_rss_kib,
        end_rss_kib,
        metrics_note,
    }
}

/// The daemon's own counts against the emulator's.
fn metrics_check(metrics: &str, cloud: &Cloud) -> String {
    if metrics.is_empty() {
        return "daemon /metrics not reachable".to_owned();
    }
    let log = cloud.emu.kv_requests();
    let ok = log.iter().filter(|r| r.status == 200).count() as f64;
    let misses = metric_sum(metrics, "akv_object_cache_total", "result=\"miss\"");
    let hits = metric_sum(metrics, "akv_object_cache_total", "result=\"hit\"");
    let coalesced = metric_sum(metrics, "akv_object_cache_total", "result=\"coalesced\"");
    let throttled = metric_sum(metrics, "akv_keyvault_throttled_total", "");
    let token_requests = metric_sum(metrics, "akv_token_requests_total", "");
    let emu_429 = cloud.throttled() as f64;
    let emu_tokens = cloud.emu.entra().requests() as f64;
    let agree = misses == ok && throttled == emu_429 && token_requests == emu_tokens;
    format!(
        "daemon /metrics: object lookups {misses} miss / {hits} hit / {coalesced} coalesced, \
         {throttled} 429s, {token_requests} token requests; emulator: {ok} GETs answered 200, \
         {emu_429} 429s, {emu_tokens} token requests -> {}",
        if agree { "agree" } else { "DISAGREE" }
    )
}

const NODE_HEADER: &str = "| scenario | pods × objects, workloads | RTT | throttle | cache TTL | fetches | phase | Mounts (failed) | wall s | Mount p50 ms | p99 ms | KV GETs answered | Entra exchanges | 429s (rounds, longest) | CPU ms/Mount | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn node_row(spec: &RunSpec, p: &Phase, peak_rss_kib: u64) -> String {
    let mut sorted = p.latencies.clone();
    sorted.sort();
    format!(
        "| {} | {} × {}, {} | {} ms | {} | {} | {} | {} | {} ({}) | {:.2} | {} | {} | {} | {} | {} ({}, {}) | {:.2} | {:.1} |",
        spec.scenario,
        spec.pods,
        spec.objects,
        spec.workloads,
        spec.rtt.as_millis(),
        spec.throttle_label(),
        if spec.cache_ttl == "0s" {
            "off".to_owned()
        } else {
            spec.cache_ttl.clone()
        },
        spec.fetches_label(),
        p.name,
        p.mounts,
        p.failed,
        p.wall.as_secs_f64(),
        ms(percentile(&sorted, 50.0)),
        ms(percentile(&sorted, 99.0)),
        p.gets - p.throttled,
        p.exchanges,
        p.throttled,
        p.rounds,
        p.max_round,
        p.cpu_ms_per_mount(),
        peak_rss_kib as f64 / 1024.0,
    )
}

/// Runs `spec` and prints a row per phase (plus a total when there are cycles).
async fn print_node_run(spec: &RunSpec, ticks: f64, per_phase: bool) -> RunResult {
    let result = run_node(spec, ticks).await;
    if per_phase {
        for p in &result.phases {
            println!("{}", node_row(spec, p, result.peak_rss_kib));
        }
    }
    if !per_phase || result.phases.len() > 1 {
        let mut total = result.total();
        if !per_phase && result.phases.len() == 1 {
            total.name.clone_from(&result.phases[0].name);
        }
        println!("{}", node_row(spec, &total, result.peak_rss_kib));
    }
    for p in result.phases.iter().filter(|p| p.failed > 0) {
        println!(
            "<!-- {} {}: {} Mounts failed; first error: {} -->",
            spec.scenario,
            p.name,
            p.failed,
            p.first_error.as_deref().unwrap_or("")
        );
    }
    println!(
        "<!-- {} (cache {}, fetches {}): idle RSS {:.1} MiB; {} -->",
        spec.scenario,
        spec.cache_ttl,
        spec.fetches_label(),
        result.idle_rss_kib as f64 / 1024.0,
        result.metrics_note
    );
    result
}

// ---------------------------------------------------------------------------------------------
// The wide Mount: many objects, warm token

#[derive(Clone, Debug)]
struct WideSpec {
    objects: usize,
    rtt: Duration,
    fetches: Option<usize>,
    repeat: usize,
    value_bytes: usize,
}

struct WideResult {
    sorted: Vec<Duration>,
    gets_per_mount: f64,
    cpu_ms_per_mount: f64,
    failed: usize,
    peak_rss_kib: u64,
}

async fn run_wide(spec: &WideSpec, ticks: f64) -> WideResult {
    let cloud = Cloud::start(spec.objects, 1, spec.rtt, None, spec.value_bytes).await;
    let mut flags = vec!["--object-cache-ttl=0s".to_owned()];
    if let Some(n) = spec.fetches {
        flags.push(format!("--max-concurrent-fetches={n}"));
    }
    let mut daemon = Daemon::spawn(&cloud, &flags);
    let channel = daemon.connect().await;
    // Warm-up: the token exchange and the connection to the vault.
    let warm = mount(channel.clone(), cloud.request(0, 0, &objects_yaml(1))).await;
    if let Err(e) = &warm.1 {
        panic!("warm-up Mount failed: {e}\n{}", daemon.log_tail());
    }
    let request = cloud.request(0, 1, &objects_yaml(spec.objects));
    let measured = phase("wide", &cloud, &daemon, ticks, async {
        let mut out = Vec::new();
        for _ in 0..spec.repeat {
            out.push(mount(channel.clone(), request.clone()).await);
        }
        out
    })
    .await;
    if peer() {
        println!(
            "<!-- {} token exchanges during the {} measured Mounts (the peer keeps no token between Mounts) -->",
            measured.exchanges, spec.repeat
        );
    } else {
        assert_eq!(measured.exchanges, 0, "the token was warm");
    }
    let peak_rss_kib = status_kib(daemon.pid(), "VmHWM");
    daemon.stop();
    let mut sorted = measured.latencies.clone();
    sorted.sort();
    WideResult {
        sorted,
        gets_per_mount: measured.gets as f64 / measured.mounts.max(1) as f64,
        cpu_ms_per_mount: measured.cpu_ms_per_mount(),
        failed: measured.failed,
        peak_rss_kib,
    }
}

const WIDE_HEADER: &str = "| objects | RTT | fetches | Mounts (failed) | min ms | p50 ms | max ms | p50 in RTTs | KV GETs/Mount | CPU ms/Mount | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|";

async fn print_wide(spec: &WideSpec, ticks: f64) -> WideResult {
    let r = run_wide(spec, ticks).await;
    let p50 = percentile(&r.sorted, 50.0);
    println!(
        "| {} | {} ms | {} | {} ({}) | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.1} |",
        spec.objects,
        spec.rtt.as_millis(),
        spec.fetches
            .map_or_else(|| "default".to_owned(), |n| n.to_string()),
        r.sorted.len(),
        r.failed,
        ms(r.sorted.first().copied().unwrap_or_default()),
        ms(p50),
        ms(r.sorted.last().copied().unwrap_or_default()),
        if spec.rtt.is_zero() {
            0.0
        } else {
            p50.as_secs_f64() / spec.rtt.as_secs_f64()
        },
        r.gets_per_mount,
        r.cpu_ms_per_mount,
        r.peak_rss_kib as f64 / 1024.0,
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn base_spec(scenario: &str, o: &Options) -> RunSpec {
    RunSpec {
        scenario: scenario.to_owned(),
        pods: o.pods.unwrap_or(100),
        objects: o.objects.unwrap_or(10),
        workloads: o.workloads.unwrap_or(1).max(1),
        cycles: o.cycles.unwrap_or(0),
        rtt: Duration::from_millis(o.rtt_ms),
        interval: o.interval_ms.map(Duration::from_millis),
        fetches: None,
        cache_ttl: "0s".into(),
        throttle: o.throttle.unwrap_or(None),
        max_mounts: o.max_mounts,
        value_bytes: o.value_bytes,
        pfx: false,
    }
}

/// One run per (fetches, cache TTL) combination of the options.
async fn node_runs(spec: RunSpec, o: &Options, ttls: &[&str], ticks: f64, per_phase: bool) {
    println!("{NODE_HEADER}");
    let ttls: Vec<String> = o
        .cache_ttl
        .clone()
        .unwrap_or_else(|| ttls.iter().map(|s| (*s).to_owned()).collect());
    let fetches: Vec<Option<usize>> = o
        .fetches
        .clone()
        .map_or_else(|| vec![None], |f| f.into_iter().map(Some).collect());
    for f in &fetches {
        for ttl in &ttls {
            let spec = RunSpec {
                fetches: *f,
                cache_ttl: ttl.clone(),
                ..spec.clone()
            };
            print_node_run(&spec, ticks, per_phase).await;
        }
    }
    println!();
}

async fn reference(o: &Options, ticks: f64) {
    println!(
        "### Reference: 100 pods × 10 objects, one workload, RTT 20 ms, 3 rotation cycles, 500 requests per 10 s per vault\n"
    );
    let spec = RunSpec {
        pods: o.pods.unwrap_or(100),
        objects: o.objects.unwrap_or(10),
        workloads: 1,
        cycles: o.cycles.unwrap_or(3),
        throttle: o.throttle.unwrap_or(Some((500, Duration::from_secs(10)))),
        ..base_spec("reference", o)
    };
    println!("{NODE_HEADER}");
    for ttl in ["0s", "10m"] {
        let spec = RunSpec {
            cache_ttl: ttl.into(),
            fetches: o.fetches.as_ref().and_then(|f| f.first().copied()),
            ..spec.clone()
        };
        print_node_run(&spec, ticks, true).await;
    }
    // A TTL shorter than the rotation interval: every cycle finds the cache expired.
    let spec = RunSpec {
        cache_ttl: "1s".into(),
        interval: Some(Duration::from_millis(1500)),
        fetches: o.fetches.as_ref().and_then(|f| f.first().copied()),
        scenario: "reference, cycles every 1.5 s".into(),
        ..spec.clone()
    };
    print_node_run(&spec, ticks, true).await;
    println!();
}

async fn burst(o: &Options, ticks: f64) {
    println!("### Burst: 1,000 Mounts at once\n");
    println!("{NODE_HEADER}");
    let workloads = o.workloads.map_or_else(|| vec![1, 100], |w| vec![w.max(1)]);
    let ttls = o
        .cache_ttl
        .clone()
        .unwrap_or_else(|| vec!["0s".into(), "10m".into()]);
    for w in workloads {
        for ttl in &ttls {
            let spec = RunSpec {
                pods: o.pods.unwrap_or(1000),
                workloads: w,
                cache_ttl: ttl.clone(),
                fetches: o.fetches.as_ref().and_then(|f| f.first().copied()),
                ..base_spec("burst", o)
            };
            print_node_run(&spec, ticks, false).await;
        }
    }
    if o.max_mounts.is_none() && o.workloads.is_none() {
        // Every Mount admitted at once: what the in-flight bound alone keeps in check.
        let spec = RunSpec {
            pods: o.pods.unwrap_or(1000),
            workloads: 100,
            max_mounts: Some(1000),
            fetches: o.fetches.as_ref().and_then(|f| f.first().copied()),
            scenario: "burst, --max-concurrent-mounts=1000".into(),
            ..base_spec("burst", o)
        };
        print_node_run(&spec, ticks, false).await;
    }
    println!();
}

const PFX_BURST_HEADER: &str = "| run | pods × objects | RTT | fetches | Mounts (failed) | wall s | Mount p50 ms | p99 ms | KV GETs answered | Entra exchanges | CPU ms/Mount | idle RSS MiB | RSS after MiB | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// A burst of Mounts whose objects include a PFX: what one Mount costs in daemon CPU (TLS, HTTP/2,
/// JSON, PKCS#12 key derivation, PEM), and the daemon's resident memory idle and after the burst.
/// Each run is a fresh emulator and daemon (cold caches, one token exchange, production defaults
/// but for `--resolve` and the trusted CA); `--repeat` runs give the spread.
async fn pfx_burst(o: &Options, ticks: f64) {
    println!("### Burst of Mounts with a PFX: CPU per Mount and resident memory\n");
    println!("{PFX_BURST_HEADER}");
    for run in 1..=o.repeat.unwrap_or(3) {
        let spec = RunSpec {
            pods: o.pods.unwrap_or(200),
            objects: o.objects.unwrap_or(3).max(1),
            cache_ttl: o
                .cache_ttl
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_else(|| "0s".into()),
            fetches: o.fetches.as_ref().and_then(|f| f.first().copied()),
            pfx: true,
            ..base_spec("pfx burst", o)
        };
        let r = run_node(&spec, ticks).await;
        let p = r.total();
        let mut sorted = p.latencies.clone();
        sorted.sort();
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "| {run} | {} × {} | {} ms | {} | {} ({}) | {:.2} | {} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} |",
            spec.pods,
            spec.objects,
            spec.rtt.as_millis(),
            spec.fetches_label(),
            p.mounts,
            p.failed,
            p.wall.as_secs_f64(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            p.gets - p.throttled,
            p.exchanges,
            p.cpu_ms_per_mount(),
            mib(r.idle_rss_kib),
            mib(r.end_rss_kib),
            mib(r.peak_rss_kib),
        );
        if let Some(e) = &p.first_error {
            println!("<!-- {} Mounts failed; first error: {e} -->", p.failed);
        }
        println!("<!-- {} -->", r.metrics_note);
    }
    println!();
}

async fn wide(o: &Options, ticks: f64) {
    println!("### Wide Mount, warm token, cache off\n");
    println!("{WIDE_HEADER}");
    // Calibration: what one round trip and the Mount's own work cost through this setup.
    for (objects, rtt_ms) in [(1, o.rtt_ms), (1, 0), (o.objects.unwrap_or(64), 0)] {
        let spec = WideSpec {
            objects,
            rtt: Duration::from_millis(rtt_ms),
            fetches: Some(256),
            repeat: o.repeat.unwrap_or(50),
            value_bytes: o.value_bytes,
        };
        print_wide(&spec, ticks).await;
    }
    let fetches: Vec<Option<usize>> = o
        .fetches
        .clone()
        .map_or_else(|| vec![None], |f| f.into_iter().map(Some).collect());
    for f in fetches {
        let spec = WideSpec {
            objects: o.objects.unwrap_or(64),
            rtt: Duration::from_millis(o.rtt_ms),
            fetches: f,
            repeat: o.repeat.unwrap_or(50),
            value_bytes: o.value_bytes,
        };
        print_wide(&spec, ticks).await;
    }
    println!();
}

async fn sweep(o: &Options, ticks: f64) {
    let values = o
        .fetches
        .clone()
        .unwrap_or_else(|| vec![4, 8, 16, 32, 64, 128]);
    let o = Options {
        fetches: Some(values),
        ..o.clone()
    };
    wide(
        &Options {
            objects: Some(o.objects.unwrap_or(64)),
            ..o.clone()
        },
        ticks,
    )
    .await;
    let scale = Options {
        objects: Some(o.objects.unwrap_or(10)),
        cache_ttl: Some(o.cache_ttl.clone().unwrap_or_else(|| vec!["0s".into()])),
        ..o.clone()
    };
    println!("### Scale-out, one workload (100 pods × 10 objects)\n");
    node_runs(base_spec("scaleout", &scale), &scale, &["0s"], ticks, false).await;
    println!("### Scale-out, 100 workloads of one pod (1,000 distinct requests)\n");
    let spread = RunSpec {
        workloads: o.workloads.unwrap_or(100),
        ..base_spec("scaleout", &scale)
    };
    node_runs(spread.clone(), &scale, &["0s"], ticks, false).await;
    println!("### Scale-out, 100 workloads of one pod, throttling model 500 per 10 s\n");
    let throttled = RunSpec {
        throttle: o.throttle.unwrap_or(Some((500, Duration::from_secs(10)))),
        ..spread
    };
    node_runs(throttled, &scale, &["0s"], ticks, false).await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (scenario, o) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}\n");
            }
            eprint!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    let ticks = clock_ticks();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "<!-- node bench: {scenario}, daemon {}, {cpus} CPUs, CLK_TCK {ticks} -->\n",
        daemon_binary().display(),
    );
    match scenario.as_str() {
        "reference" => reference(&o, ticks).await,
        "scaleout" => {
            println!("### Scale-out\n");
            node_runs(base_spec("scaleout", &o), &o, &["0s", "10m"], ticks, false).await;
        }
        "rotation" => {
            println!("### Rotation\n");
            let spec = RunSpec {
                cycles: o.cycles.unwrap_or(3),
                ..base_spec("rotation", &o)
            };
            node_runs(spec, &o, &["0s", "10m"], ticks, true).await;
        }
        "mix" => {
            println!("### Mix of workloads\n");
            let spec = RunSpec {
                workloads: o.workloads.unwrap_or(10).max(1),
                cycles: o.cycles.unwrap_or(1),
                ..base_spec("mix", &o)
            };
            node_runs(spec, &o, &["0s", "10m"], ticks, true).await;
        }
        "burst" => burst(&o, ticks).await,
        "pfxburst" => pfx_burst(&o, ticks).await,
        "wide" => wide(&o, ticks).await,
        "sweep" => sweep(&o, ticks).await,
        "all" => {
            reference(&o, ticks).await;
            println!("### Mix of workloads\n");
            let mix = RunSpec {
                workloads: 10,
                cycles: 1,
                ..base_spec("mix", &o)
            };
            node_runs(mix, &o, &["0s", "10m"], ticks, true).await;
            burst(&o, ticks).await;
            pfx_burst(&o, ticks).await;
            // The sweep includes the wide Mount at the default (32).
            sweep(&o, ticks).await;
        }
        other => {
            eprintln!("error: unknown scenario {other:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
