//! The Mount: parse and validate the request, get a token, fetch every object, convert and
//! assemble the files. All or nothing: any object failing fails the whole Mount, so a pod never
//! starts with half its files.

pub(crate) mod error;
mod expand;
mod fetch;
pub mod findings;
pub(crate) mod identity;
pub(crate) mod layout;
pub mod objects;
pub(crate) mod paths;
pub mod request;
mod shared;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

use crate::auth::{Authenticator, LocalEndpoints};
use crate::cloud;
use crate::config::Config;
use crate::keyvault::{Caller, ClientSettings, KeyVaultClient};
use crate::metrics::{ErrorClass, Metrics};
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
pub use error::MountError;
use fetch::{Fetcher, OutputFile};
use request::{MountPlan, ParseContext, RawAttributes};

/// A value with surrounding whitespace removed; empty counts as absent (README, "The SecretProviderClass it accepts").
pub(crate) fn trimmed(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Hints for keys that are the known key `wanted` but for case.
pub(crate) fn near_miss(other: &BTreeMap<String, serde_json::Value>, wanted: &str) -> String {
    near_misses(other, wanted)
        .map(|k| format!(" (found {k:?}: parameter names are case-sensitive, write {wanted})"))
        .collect()
}

fn near_misses<'a>(
    other: &'a BTreeMap<String, serde_json::Value>,
    wanted: &'a str,
) -> impl Iterator<Item = &'a String> {
    other
        .keys()
        .filter(move |k| k.eq_ignore_ascii_case(wanted) && k.as_str() != wanted)
}

/// A required parameter is missing: the finding is located at the near miss written instead, if
/// any (that is where the reader must look), else at the parameter itself.
pub(crate) fn missing(
    other: &BTreeMap<String, serde_json::Value>,
    wanted: &str,
    message: String,
) -> findings::Finding {
    let key = near_misses(other, wanted)
        .next()
        .map_or(wanted, String::as_str);
    findings::Finding::parameter(key, format!("{message}{}", near_miss(other, wanted)))
}

/// Serves Mounts; shared by every connection.
#[derive(Clone, Debug)]
pub struct MountService {
    config: Arc<Config>,
    auth: Authenticator,
    keyvault: KeyVaultClient,
    metrics: Metrics,
    next_id: Arc<AtomicU64>,
    /// `--max-concurrent-mounts`.
    slots: Arc<Semaphore>,
    /// CPU-heavy conversions (PFX key derivation) run on the blocking pool, this many at once.
    conversions: Arc<Semaphore>,
    /// Heavy conversions in progress, shared by the Mounts that need the same one.
    shared: shared::Conversions,
}

impl MountService {
    /// A service over the shared HTTP clients (`local_http` for IMDS and NMI).
    pub fn new(
        config: Arc<Config>,
        http: reqwest::Client,
        local_http: reqwest::Client,
        metrics: Metrics,
    ) -> Self {
        let endpoints = LocalEndpoints {
            imds: config.imds_endpoint.clone(),
            nmi: config.nmi_endpoint.clone(),
            token_proxy: config.token_proxy.as_ref().map(|p| p.authority.clone()),
        };
        Self {
            auth: Authenticator::new(http.clone(), local_http, endpoints, metrics.clone()),
            keyvault: KeyVaultClient::new(
                http,
                metrics.clone(),
                ClientSettings {
                    max_in_flight_per_vault: config.max_concurrent_fetches,
                    cache_ttl: config.object_cache_ttl,
                    cache_max_bytes: config.object_cache_max_bytes,
                },
            ),
            metrics,
            slots: Arc::new(Semaphore::new(config.max_concurrent_mounts)),
            conversions: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            shared: shared::conversions(),
            config,
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A short id for the Mount's log lines: unique within the process and unpredictable across
    /// restarts, so that lines of concurrent Mounts can be told apart.
    fn request_id(&self) -> String {
        use std::hash::{BuildHasher, RandomState};
        thread_local! {
            static SEED: RandomState = RandomState::new();
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let hash = SEED.with(|s| s.hash_one(n));
        format!("{:08x}", hash as u32)
    }

    /// Handles one Mount within `--mount-timeout` or the caller's deadline (`timeout`), whichever
    /// ends first. Every event inside carries the Mount's span (request id, pod,
    /// SecretProviderClass, vault, identity mode); one summary line ends it.
    pub async fn mount(
        &self,
        request: MountRequest,
        timeout: Option<Duration>,
    ) -> Result<MountResponse, MountError> {
        let span = tracing::info_span!(
            "mount",
            request_id = %self.request_id(),
            pod = tracing::field::Empty,
            spc = tracing::field::Empty,
            vault = tracing::field::Empty,
            mode = tracing::field::Empty,
        );
        let budget = timeout.map_or(self.config.mount_timeout, |t| {
            t.min(self.config.mount_timeout)
        });
        self.mount_in_span(request, budget).instrument(span).await
    }

    async fn mount_in_span(
        &self,
        request: MountRequest,
        budget: Duration,
    ) -> Result<MountResponse, MountError> {
        let started = Instant::now();
        let deadline = started + budget;
        // Counts the Mount in flight, and records its end even if the client goes away first.
        let mut summary = Summary::new(&self.metrics, started);
        let span = tracing::Span::current();
        let plan = RawAttributes::from_json(&request.attributes)
            .map_err(|e| vec![findings::Finding::request("attributes", e)])
            .and_then(|raw| {
                span.record("pod", raw.pod_label());
                span.record("spc", trimmed(&raw.secret_provider_class).unwrap_or(""));
                span.record("vault", trimmed(&raw.keyvault_name).unwrap_or(""));
                let ctx = ParseContext {
                    default_cloud: self.config.default_cloud,
                    split_files: self.config.write_cert_and_key_in_separate_files,
                    now: crate::auth::assertion::unix_now(),
                };
                request::validate(raw, &request.secrets, &request.permission, &ctx)
            });
        let result = match plan {
            Err(findings) => Err(MountError::Invalid(findings)),
            Ok(plan) => {
                span.record("mode", plan.identity.mode());
                summary.objects = plan.objects.len();
                // Waiting and work stop a little before the Mount's deadline, so that a busy
                // provider or a slow peer is reported by name to the client, which would
                // otherwise see only its own deadline pass (or the catch-all timeout below).
                let margin = (budget / 10).min(Duration::from_millis(250));
                match self.slot(deadline - margin).await {
                    Err(e) => Err(e),
                    Ok(_slot) => {
                        let work = self.execute(&plan, deadline - margin);
                        tokio::time::timeout_at(deadline.into(), work)
                            .await
                            .unwrap_or(Err(MountError::Timeout(budget)))
                    }
                }
            }
        };
        summary.finish(&result);
        result
    }

    /// A Mount slot, waiting in line (counted in `akv_mounts_queued`) until `until`.
    async fn slot(&self, until: Instant) -> Result<OwnedSemaphorePermit, MountError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // A guard, so that a queued Mount the client abandons leaves the line too.
        let _queued = Queued::new(&self.metrics);
        match tokio::time::timeout_at(until.into(), self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(MountError::Busy(self.config.max_concurrent_mounts)),
        }
    }

    async fn execute(
        &self,
        plan: &MountPlan,
        deadline: Instant,
    ) -> Result<MountResponse, MountError> {
        let cloud = cloud::resolve(
            plan.cloud,
            plan.cloud_env_file.as_deref(),
            self.config.azure_environment_file.as_deref(),
        )
        .await?;
        let token = self
            .auth
            .token(&cloud, &plan.tenant, &plan.identity, deadline)
            .await?;
        let files = match self.fetch(plan, &cloud, &token, deadline).await {
            // Key Vault refused the token (revoked, or continuous access evaluation asks for
            // claims): the cache must not serve it until it expires. Replace it once and retry.
            Err(err) if let Some(claims) = err.refused_token() => {
                tracing::info!(error = %err, "Key Vault refused the token; replacing it");
                let fresh = self
                    .auth
                    .replace(
                        &cloud,
                        &plan.tenant,
                        &plan.identity,
                        &token,
                        claims,
                        deadline,
                    )
                    .await?;
                self.fetch(plan, &cloud, &fresh, deadline)
                    .await
                    .map_err(|e| e.refused_again(plan.identity.describe()))?
            }
            other => other?,
        };
        check_size(&files, self.config.max_response_bytes)?;
        Ok(assemble(files))
    }

    /// Every object's files, fetched with `token`.
    async fn fetch(
        &self,
        plan: &MountPlan,
        cloud: &cloud::CloudEnvironment,
        token: &crate::auth::IdentityToken,
        deadline: Instant,
    ) -> Result<Vec<OutputFile>, MountError> {
        Fetcher {
            config: &self.config,
            conversions: &self.conversions,
            shared: &self.shared,
            keyvault: &self.keyvault,
            plan,
            cloud,
            caller: Caller { token, deadline },
            metrics: &self.metrics,
        }
        .fetch_all()
        .await
    }
}

/// Counts a Mount in `akv_mounts_queued` while it waits for a slot.
struct Queued<'a>(&'a Metrics);

impl<'a> Queued<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.mounts_queued(1);
        Self(metrics)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.mounts_queued(-1);
    }
}

/// A Mount from start to end: counted in `akv_mounts_in_flight` while it runs, then one summary
/// line and one `akv_mount_duration_seconds` observation. A Mount whose client goes away (stream
/// reset, deadline passed on the client's side) is dropped mid-way: the guard records it as
/// `cancelled` then, inside the Mount's span, so that it is neither invisible nor counted in flight.
struct Summary<'a> {
    metrics: &'a Metrics,
    started: Instant,
    objects: usize,
    finished: bool,
}

impl<'a> Summary<'a> {
    fn new(metrics: &'a Metrics, started: Instant) -> Self {
        metrics.mounts_in_flight(1);
        Self {
            metrics,
            started,
            objects: 0,
            finished: false,
        }
    }

    fn finish(&mut self, result: &Result<MountResponse, MountError>) {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        let objects = self.objects;
        self.metrics
            .mount_finished(result.as_ref().err().map(MountError::class), elapsed);
        match result {
            Ok(response) => tracing::info!(
                elapsed_ms,
                objects,
                files = response.files.len(),
                outcome = "ok",
                "mount"
            ),
            Err(err) => tracing::warn!(
                elapsed_ms,
                objects,
                files = 0,
                outcome = err.class().as_str(),
                object = err.object().unwrap_or_default(),
                error = %err,
                "mount failed"
            ),
        }
    }
}

impl Drop for Summary<'_> {
    fn drop(&mut self) {
        self.metrics.mounts_in_flight(-1);
        if self.finished {
            return;
        }
        let elapsed = self.started.elapsed();
        self.metrics
            .mount_finished(Some(ErrorClass::Cancelled), elapsed);
        tracing::info!(
            elapsed_ms = elapsed.as_millis() as u64,
            objects = self.objects,
            files = 0,
            outcome = ErrorClass::Cancelled.as_str(),
            "mount cancelled by the client"
        );
    }
}

/// Refuses a response the driver could not receive, before building it; names the largest files.
fn check_size(files: &[OutputFile], limit: usize) -> Result<(), MountError> {
    // Each file costs its path and contents plus a few bytes of protobuf framing, and its object
    // version its id and version; 64 bytes per file covers the framing generously.
    let cost = |f: &OutputFile| f.contents.len() + f.path.len() + f.id.len() + f.version.len() + 64;
    let total: usize = files.iter().map(cost).sum();
    if total <= limit {
        return Ok(());
    }
    let mut largest: Vec<(String, usize)> = files
        .iter()
        .map(|f| (f.path.clone(), f.contents.len()))
        .collect();
    largest.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    largest.truncate(3);
    Err(MountError::TooLarge {
        total,
        limit,
        largest,
    })
}

/// The response: files in SecretProviderClass order, one object version per file.
fn assemble(files: Vec<OutputFile>) -> MountResponse {
    let mut response = MountResponse::default();
    for file in files {
        response.object_version.push(ObjectVersion {
            id: file.id,
            version: file.version,
        });
        response.files.push(File {
            path: file.path,
            mode: file.mode as i32,
            contents: file.contents.to_vec(),
        });
    }
    response
}
