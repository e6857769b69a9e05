//! The Mount: parse and validate the request, get a token, fetch every object, convert and
//! assemble the files. All or nothing: any object failing fails the whole Mount, so a pod never
//! starts with half its files.

pub mod error;
mod fetch;
pub(crate) mod identity;
pub mod objects;
pub(crate) mod paths;
pub mod request;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

use crate::auth::{Authenticator, LocalEndpoints};
use crate::cloud;
use crate::config::Config;
use crate::keyvault::{Caller, ClientSettings, KeyVaultClient};
use crate::metrics::Metrics;
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
pub use error::MountError;
use fetch::{Fetcher, OutputFile};
use request::{MountPlan, ParseContext, RawAttributes};

/// A value with surrounding whitespace removed; empty counts as absent (spec 2.1).
pub(crate) fn trimmed(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
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
        let _in_flight = InFlight::new(&self.metrics);
        let span = tracing::Span::current();
        let plan = RawAttributes::from_json(&request.attributes)
            .map_err(|e| vec![e])
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
            Err(errors) => Err(MountError::Invalid(errors)),
            Ok(plan) => {
                span.record("mode", plan.identity.mode());
                match self.slot(deadline).await {
                    Err(e) => Err(e),
                    Ok(_slot) => {
                        // The work stops a little before the Mount's deadline, so that a slow peer
                        // is reported by name rather than by the catch-all timeout below.
                        let margin = (budget / 10).min(Duration::from_millis(250));
                        let work = self.execute(&plan, deadline - margin);
                        tokio::time::timeout_at(deadline.into(), work)
                            .await
                            .unwrap_or(Err(MountError::Timeout(budget)))
                            .map(|response| (response, plan.objects.len()))
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        self.metrics
            .mount_finished(result.as_ref().err().map(MountError::class), elapsed);
        match result {
            Ok((response, objects)) => {
                tracing::info!(
                    elapsed_ms,
                    objects,
                    files = response.files.len(),
                    outcome = "ok",
                    "mount"
                );
                Ok(response)
            }
            Err(err) => {
                tracing::warn!(
                    elapsed_ms,
                    outcome = err.class().as_str(),
                    object = err.object().unwrap_or_default(),
                    error = %err,
                    "mount failed"
                );
                Err(err)
            }
        }
    }

    /// A Mount slot, waiting in line (counted in `akv_mounts_queued`) until the deadline.
    async fn slot(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, MountError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        self.metrics.mounts_queued(1);
        let waited =
            tokio::time::timeout_at(deadline.into(), self.slots.clone().acquire_owned()).await;
        self.metrics.mounts_queued(-1);
        match waited {
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
        let vault_url = cloud.vault_url(&plan.vault_name);
        let fetcher = Fetcher {
            config: &self.config,
            conversions: &self.conversions,
            keyvault: &self.keyvault,
            plan,
            vault_url: &vault_url,
            caller: Caller {
                token: &token,
                deadline,
            },
        };
        let files = fetcher.fetch_all().await?;
        check_size(&files, self.config.max_response_bytes)?;
        Ok(assemble(files))
    }
}

/// Counts a Mount in `akv_mounts_in_flight` for as long as it lives, also when the caller cancels it.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.mounts_in_flight(1);
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.mounts_in_flight(-1);
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
