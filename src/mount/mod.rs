//! The Mount: parse and validate the request, get a token, fetch every object concurrently, convert
//! and assemble the files. All or nothing: any object failing fails the whole Mount, so a pod never
//! starts with half its files.

pub mod error;
pub mod objects;
pub mod paths;
pub mod request;

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::auth::{AccessToken, Authenticator, LocalEndpoints};
use crate::cloud;
use crate::config::Config;
use crate::convert::{self, ObjectFormat, SecretOptions};
use crate::keyvault::models::version_of;
use crate::keyvault::{KeyVaultClient, KeyVaultError, ObjectKind};
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
pub use error::MountError;
use objects::ObjectSpec;
use request::MountPlan;

/// One file of the volume, with the object version it came from.
struct OutputFile {
    path: String,
    mode: u32,
    contents: Zeroizing<Vec<u8>>,
    id: String,
    version: String,
}

/// Serves Mounts; shared by every connection.
#[derive(Clone, Debug)]
pub struct MountService {
    config: Arc<Config>,
    auth: Authenticator,
    keyvault: KeyVaultClient,
}

impl MountService {
    pub fn new(
        config: Arc<Config>,
        http: reqwest::Client,
        local_http: reqwest::Client,
        token_proxy: Option<String>,
    ) -> Self {
        let endpoints = LocalEndpoints {
            imds: config.imds_endpoint.clone(),
            nmi: config.nmi_endpoint.clone(),
            token_proxy,
        };
        Self {
            auth: Authenticator::new(http.clone(), local_http, endpoints),
            keyvault: KeyVaultClient::new(http),
            config,
        }
    }

    /// Handles one Mount, bounded by the configured timeout, and logs one line about it.
    pub async fn mount(&self, request: MountRequest) -> Result<MountResponse, MountError> {
        let started = Instant::now();
        let plan = request::parse(
            &request.attributes,
            &request.secrets,
            &request.permission,
            self.config.default_cloud,
            crate::auth::assertion::unix_now(),
        );
        let plan = match plan {
            Ok(plan) => plan,
            Err(errors) => {
                let err = MountError::Invalid(errors);
                tracing::warn!(outcome = err.class(), error = %err, "mount refused");
                return Err(err);
            }
        };
        let result = tokio::time::timeout(self.config.mount_timeout, self.execute(&plan))
            .await
            .unwrap_or(Err(MountError::Timeout(self.config.mount_timeout)));
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(response) => tracing::info!(
                pod = %format!("{}/{}", plan.pod.namespace, plan.pod.name),
                spc = %plan.pod.secret_provider_class,
                vault = %plan.vault_name,
                mode = plan.identity.mode(),
                objects = plan.objects.len(),
                files = response.files.len(),
                elapsed_ms,
                outcome = "ok",
                "mount"
            ),
            Err(err) => tracing::warn!(
                pod = %format!("{}/{}", plan.pod.namespace, plan.pod.name),
                spc = %plan.pod.secret_provider_class,
                vault = %plan.vault_name,
                mode = plan.identity.mode(),
                objects = plan.objects.len(),
                elapsed_ms,
                outcome = err.class(),
                error = %err,
                "mount failed"
            ),
        }
        result
    }

    async fn execute(&self, plan: &MountPlan) -> Result<MountResponse, MountError> {
        let env_var_file = std::env::var("AZURE_ENVIRONMENT_FILEPATH").ok();
        let cloud = cloud::resolve(
            plan.cloud,
            plan.cloud_env_file.as_deref(),
            env_var_file.as_deref(),
        )
        .await?;
        let token = self
            .auth
            .token(&cloud, &plan.tenant, &plan.identity)
            .await?;
        let vault_url = cloud.vault_url(&plan.vault_name);
        let fetcher = Fetcher {
            service: self,
            plan,
            vault_url: &vault_url,
            token: &token,
        };
        // `buffered` keeps SecretProviderClass order while fetching up to N objects at once, and
        // `try_collect` stops at the first failure, dropping (cancelling) the other fetches.
        let fetches: Vec<_> = plan
            .objects
            .iter()
            .map(|spec| fetcher.fetch(spec))
            .collect();
        let per_object: Vec<Vec<OutputFile>> = futures_util::stream::iter(fetches)
            .buffered(self.config.max_concurrent_fetches)
            .try_collect()
            .await?;
        let mut response = MountResponse::default();
        for file in per_object.into_iter().flatten() {
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
        Ok(response)
    }
}

/// Fetches and converts the objects of one Mount.
struct Fetcher<'a> {
    service: &'a MountService,
    plan: &'a MountPlan,
    vault_url: &'a str,
    token: &'a AccessToken,
}

impl Fetcher<'_> {
    fn kv_error(&self, spec: &ObjectSpec, source: KeyVaultError) -> MountError {
        MountError::KeyVault {
            vault: self.plan.vault_name.clone(),
            kind: spec.kind,
            object: spec.name.clone(),
            source,
        }
    }

    fn object_error(&self, spec: &ObjectSpec, message: String) -> MountError {
        MountError::Object {
            vault: self.plan.vault_name.clone(),
            kind: spec.kind,
            object: spec.name.clone(),
            message,
        }
    }

    fn convert_error(&self, spec: &ObjectSpec, source: convert::ConvertError) -> MountError {
        MountError::Convert {
            vault: self.plan.vault_name.clone(),
            kind: spec.kind,
            object: spec.name.clone(),
            source,
        }
    }

    async fn fetch(&self, spec: &ObjectSpec) -> Result<Vec<OutputFile>, MountError> {
        let mode = spec.mode.unwrap_or(self.plan.default_mode);
        if spec.history <= 1 {
            let (files, version) = self.fetch_version(spec, spec.version.as_deref()).await?;
            return Ok(self.outputs(spec, &spec.alias, None, mode, files, &version));
        }
        let versions = self.select_versions(spec).await?;
        let mut out = Vec::new();
        for (i, version) in versions.iter().enumerate() {
            let index = i as u32;
            let (files, version) = self.fetch_version(spec, Some(version)).await?;
            let path = format!("{}/{index}", spec.alias);
            out.extend(self.outputs(spec, &path, Some(index), mode, files, &version));
        }
        Ok(out)
    }

    fn outputs(
        &self,
        spec: &ObjectSpec,
        path: &str,
        index: Option<u32>,
        mode: u32,
        files: Vec<(&'static str, Zeroizing<Vec<u8>>)>,
        version: &str,
    ) -> Vec<OutputFile> {
        files
            .into_iter()
            .map(|(suffix, contents)| OutputFile {
                path: format!("{path}{suffix}"),
                mode,
                contents,
                id: spec.version_id(index),
                version: version.to_owned(),
            })
            .collect()
    }

    /// The newest `history` enabled versions, newest first, starting at `objectVersion` when given.
    async fn select_versions(&self, spec: &ObjectSpec) -> Result<Vec<String>, MountError> {
        let items = self
            .service
            .keyvault
            .list_versions(self.vault_url, spec.kind, &spec.name, self.token)
            .await
            .map_err(|e| self.kv_error(spec, e))?;
        let mut versions: Vec<(i64, String)> = items
            .into_iter()
            .filter(|item| item.attributes.enabled.unwrap_or(true))
            .filter_map(|item| {
                let id = item.id.or(item.kid)?;
                Some((
                    item.attributes.created.unwrap_or(0),
                    version_of(&id).to_owned(),
                ))
            })
            .collect();
        // Newest first; ties broken by id so that the order is stable across calls.
        versions.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let start = match &spec.version {
            None => 0,
            Some(v) => versions
                .iter()
                .position(|(_, id)| id.eq_ignore_ascii_case(v))
                .ok_or_else(|| {
                    self.object_error(
                        spec,
                        format!(
                            "objectVersion {v} is not among the enabled versions of the object; check the \
                             version id or enable it"
                        ),
                    )
                })?,
        };
        let selected: Vec<String> = versions
            .into_iter()
            .skip(start)
            .take(spec.history as usize)
            .map(|(_, id)| id)
            .collect();
        if selected.is_empty() {
            return Err(self.object_error(spec, "the object has no enabled versions".to_owned()));
        }
        Ok(selected)
    }

    /// Fetches one version; returns the files (suffix, contents) and the resolved version id.
    async fn fetch_version(
        &self,
        spec: &ObjectSpec,
        version: Option<&str>,
    ) -> Result<(Vec<(&'static str, Zeroizing<Vec<u8>>)>, String), MountError> {
        let kv = &self.service.keyvault;
        match spec.kind {
            ObjectKind::Secret => {
                let bundle = kv
                    .get_secret(self.vault_url, &spec.name, version, self.token)
                    .await
                    .map_err(|e| self.kv_error(spec, e))?;
                let certificate_backed = bundle.kid.is_some();
                let options = SecretOptions {
                    format: spec.format,
                    construct_pem_chain: self.service.config.construct_pem_chain,
                };
                let converted = convert::secret_contents(
                    bundle.value.expose_secret(),
                    bundle.content_type.as_deref(),
                    certificate_backed,
                    options,
                )
                .map_err(|e| self.convert_error(spec, e))?;
                if let Some(warning) = &converted.warning {
                    tracing::warn!(vault = %self.plan.vault_name, object = %spec.name, "{warning}");
                }
                let contents = converted.contents;
                let mut files = Vec::new();
                let split =
                    certificate_backed && self.service.config.write_cert_and_key_in_separate_files;
                if split && spec.format == ObjectFormat::Pfx {
                    tracing::info!(
                        object = %spec.name,
                        "objectFormat pfx: not writing .crt/.key files (they would be empty)"
                    );
                }
                let split_files = if split && spec.format == ObjectFormat::Pem {
                    let (crt, key) = convert::split_cert_and_key(&contents);
                    Some((crt, key))
                } else {
                    None
                };
                let main = convert::encoding::decode(contents, spec.encoding)
                    .map_err(|e| self.convert_error(spec, e))?;
                files.push(("", main));
                if let Some((crt, key)) = split_files {
                    files.push((".crt", Zeroizing::new(crt)));
                    files.push((".key", Zeroizing::new(key)));
                }
                Ok((files, version_of(&bundle.id).to_owned()))
            }
            ObjectKind::Key => {
                let bundle = kv
                    .get_key(self.vault_url, &spec.name, version, self.token)
                    .await
                    .map_err(|e| self.kv_error(spec, e))?;
                let pem = convert::jwk::public_key_pem(&bundle.key)
                    .map_err(|e| self.convert_error(spec, e))?;
                let kid = bundle.key.kid.clone().unwrap_or_default();
                Ok((
                    vec![("", Zeroizing::new(pem.into_bytes()))],
                    version_of(&kid).to_owned(),
                ))
            }
            ObjectKind::Cert => {
                let bundle = kv
                    .get_certificate(self.vault_url, &spec.name, version, self.token)
                    .await
                    .map_err(|e| self.kv_error(spec, e))?;
                let der = base64::engine::general_purpose::STANDARD
                    .decode(bundle.cer.trim())
                    .map_err(|e| {
                        self.object_error(
                            spec,
                            format!("the certificate's cer field is not base64: {e}"),
                        )
                    })?;
                let pem = convert::cert_pem(&der);
                Ok((
                    vec![("", Zeroizing::new(pem.into_bytes()))],
                    version_of(&bundle.id).to_owned(),
                ))
            }
        }
    }
}
