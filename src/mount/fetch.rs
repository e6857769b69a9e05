//! Fetching a Mount's objects from Key Vault and turning each into its files: patterns expanded
//! first (`expand.rs`), then every object asked for at once, each from its own vault; an optional
//! object that does not exist or is disabled writes nothing.

use std::sync::Arc;

use secrecy::ExposeSecret as _;
use tracing::Instrument as _;
use zeroize::Zeroizing;

use super::MountError;
use super::objects::ObjectSpec;
use super::request::MountPlan;
use crate::cloud::CloudEnvironment;
use crate::config::Config;
use crate::convert::ConvertError;
use crate::convert::files::{self, ObjectFiles, SecretFileOptions};
use crate::convert::json::JsonSecret;
use crate::keyvault::models::{CertificateBundle, KeyBundle, SecretBundle, version_of};
use crate::keyvault::{Caller, KeyVaultClient, KeyVaultError, KeyVaultObject, ObjectKind};
use tokio::sync::Semaphore;

/// One file of the volume, with the object version it came from.
pub(super) struct OutputFile {
    pub(super) path: String,
    pub(super) mode: u32,
    pub(super) contents: Zeroizing<Vec<u8>>,
    pub(super) id: String,
    pub(super) version: String,
}

/// One object version, converted: its files, and the values of its `jmesPath` items.
struct Fetched {
    files: ObjectFiles,
    json: Vec<Zeroizing<Vec<u8>>>,
}

/// Fetches and converts the objects of one Mount.
pub(super) struct Fetcher<'a> {
    pub(super) config: &'a Config,
    pub(super) conversions: &'a Arc<Semaphore>,
    pub(super) shared: &'a super::shared::Conversions,
    pub(super) keyvault: &'a KeyVaultClient,
    pub(super) plan: &'a MountPlan,
    pub(super) cloud: &'a CloudEnvironment,
    pub(super) caller: Caller<'a>,
    pub(super) metrics: &'a crate::metrics::Metrics,
}

impl Fetcher<'_> {
    /// Every object's files, in SecretProviderClass order. All objects are asked for at once; the
    /// vault's shared in-flight bound (`--max-concurrent-fetches`) paces them, and the first failure
    /// drops (cancels) the others.
    pub(super) async fn fetch_all(&self) -> Result<Vec<OutputFile>, MountError> {
        let expanded;
        let objects = if self.plan.objects.iter().any(|o| o.pattern.is_some()) {
            expanded = self.expand_patterns().await?;
            &expanded
        } else {
            &self.plan.objects
        };
        let fetches = objects.iter().map(|spec| {
            // Events about one object carry its name and type.
            let span = tracing::debug_span!("object", object = %spec.name, object_type = spec.kind.as_str());
            self.fetch(spec).instrument(span)
        });
        let per_object = futures_util::future::try_join_all(fetches).await?;
        Ok(per_object.into_iter().flatten().collect())
    }

    /// One object's files; none for an optional object that does not exist or is disabled (one
    /// log line and `akv_optional_objects_skipped_total` say so).
    async fn fetch(&self, spec: &ObjectSpec) -> Result<Vec<OutputFile>, MountError> {
        match self.fetch_required(spec).await {
            Err(MountError::KeyVault { error, .. })
                if spec.optional
                    && let Some(reason) = error.absence() =>
            {
                self.skip(spec, reason);
                Ok(Vec::new())
            }
            Err(MountError::Object { .. }) if spec.optional && spec.history > 1 => {
                // No enabled version left: the object is disabled as far as history mode goes.
                self.skip(spec, "disabled");
                Ok(Vec::new())
            }
            other => other,
        }
    }

    fn skip(&self, spec: &ObjectSpec, reason: &'static str) {
        tracing::info!(
            object = %spec.name,
            object_type = spec.kind.as_str(),
            vault = self.vault_of(spec),
            reason,
            "optional object skipped: it does not exist or is disabled; no file written for it"
        );
        self.metrics.optional_skipped(spec.kind.as_str(), reason);
    }

    /// The object's vault, by name.
    pub(super) fn vault_of<'s>(&'s self, spec: &'s ObjectSpec) -> &'s str {
        spec.vault_name(&self.plan.vault_name)
    }

    /// The object's vault, as a URL.
    pub(super) fn vault_url(&self, spec: &ObjectSpec) -> String {
        self.cloud.vault_url(self.vault_of(spec))
    }

    /// One object's files: the single version asked for, or the newest `objectVersionHistory`.
    async fn fetch_required(&self, spec: &ObjectSpec) -> Result<Vec<OutputFile>, MountError> {
        if spec.history <= 1 {
            let (fetched, version) = self.fetch_version(spec, spec.version.as_deref()).await?;
            let mut out = self.outputs(spec, &spec.alias, None, fetched.files, &version);
            out.extend(self.json_files(spec, fetched.json, &version));
            return Ok(out);
        }
        // The selected versions are fetched at once, like the objects (one round trip after the
        // listing, not one per version); the files keep the listing's order.
        let versions = self.select_versions(spec).await?;
        let fetched = futures_util::future::try_join_all(
            versions
                .iter()
                .map(|version| self.fetch_version(spec, Some(version))),
        )
        .await?;
        let mut out = Vec::new();
        for (index, (fetched, version)) in (0u32..).zip(fetched) {
            let path = format!("{}/{index}", spec.alias);
            out.extend(self.outputs(spec, &path, Some(index), fetched.files, &version));
        }
        Ok(out)
    }

    /// Fetches one version and converts it; returns its files and its version id.
    async fn fetch_version(
        &self,
        spec: &ObjectSpec,
        version: Option<&str>,
    ) -> Result<(Fetched, String), MountError> {
        let mut json = Vec::new();
        let (converted, version) = match spec.kind {
            ObjectKind::Secret => {
                let bundle: SecretBundle = self.download(spec, version).await?;
                let version = bundle.version().to_owned();
                if !spec.json_keys.is_empty() {
                    json = self.json_values(spec, bundle.value.expose_secret())?;
                }
                let options = SecretFileOptions {
                    format: spec.format,
                    encoding: spec.encoding,
                    construct_pem_chain: self.config.construct_pem_chain,
                    split_files: self.config.write_cert_and_key_in_separate_files,
                };
                (self.convert_secret(bundle, options).await, version)
            }
            ObjectKind::Key => {
                let bundle: KeyBundle = self.download(spec, version).await?;
                (files::key(&bundle.key), bundle.version().to_owned())
            }
            ObjectKind::Cert => {
                let bundle: CertificateBundle = self.download(spec, version).await?;
                (files::certificate(&bundle.cer), bundle.version().to_owned())
            }
        };
        let converted = converted.map_err(|e| self.convert_error(spec, e))?;
        tracing::trace!(version = %version, files = converted.files.len(), "converted");
        for note in &converted.notes {
            tracing::warn!(object = %spec.name, "{note}");
        }
        let fetched = Fetched {
            files: converted,
            json,
        };
        Ok((fetched, version))
    }

    /// The value of each `jmesPath` item of a secret, in order. Cheap next to the request (a JSON
    /// parse of at most 25 KB, Key Vault's limit on a secret), so it runs inline.
    fn json_values(
        &self,
        spec: &ObjectSpec,
        value: &str,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, MountError> {
        let failed = |error| self.convert_error(spec, ConvertError::JsonKey(error));
        let doc = JsonSecret::parse(value).map_err(failed)?;
        spec.json_keys
            .iter()
            .map(|key| doc.extract(&key.path).map_err(failed))
            .collect()
    }

    /// The `jmesPath` files: each shares the secret's version (ids: `ObjectSpec::json_key_id`).
    fn json_files(
        &self,
        spec: &ObjectSpec,
        values: Vec<Zeroizing<Vec<u8>>>,
        version: &str,
    ) -> Vec<OutputFile> {
        let object_mode = spec.mode.unwrap_or(self.plan.default_mode);
        spec.json_keys
            .iter()
            .zip(values)
            .map(|(key, contents)| OutputFile {
                path: key.alias.clone(),
                mode: key.mode.unwrap_or(object_mode),
                contents,
                id: spec.json_key_id(key),
                version: version.to_owned(),
            })
            .collect()
    }

    /// Converts a secret. Decoding a PFX derives keys with thousands of hash iterations, so it runs on
    /// the blocking pool, a bounded number at once, where it cannot stall the other Mounts' I/O, and
    /// Mounts converting the same input at once share it (`shared.rs`); this Mount's deadline still
    /// ends the wait for it.
    async fn convert_secret(
        &self,
        bundle: SecretBundle,
        options: SecretFileOptions,
    ) -> Result<ObjectFiles, ConvertError> {
        let heavy = files::secret_is_expensive(
            bundle.content_type.as_deref(),
            bundle.kid.is_some(),
            options,
        );
        // Hashed before the bundle moves into the conversion.
        let key_input = heavy.then(|| {
            super::shared::key(
                bundle.value.expose_secret(),
                bundle.content_type.as_deref(),
                bundle.kid.is_some(),
                options,
            )
        });
        let convert = move || {
            files::secret(
                bundle.value.expose_secret(),
                bundle.content_type.as_deref(),
                bundle.kid.is_some(),
                options,
            )
        };
        let Some(key) = key_input else {
            return convert();
        };
        // The permit moves into the blocking task: a Mount cancelled mid-conversion cannot free
        // its slot while the thread still runs, so retries of a hostile PFX cannot pile up threads.
        let slots = self.conversions.clone();
        let work = async move {
            let permit = slots.acquire_owned().await.map_err(|_| {
                ConvertError::Unsupported("the provider is shutting down".to_owned())
            })?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                convert().map(Arc::new)
            })
            .await
            .unwrap_or_else(|_| {
                Err(ConvertError::Unsupported(
                    "the conversion failed unexpectedly (internal error)".to_owned(),
                ))
            })
        };
        // Mounts converting the same input at the same time share one conversion.
        let (result, _joined) = self.shared.run(key, work).await;
        result
            .map(|files| ObjectFiles::clone(&files))
            .map_err(|e| (*e).clone())
    }

    async fn download<T: KeyVaultObject>(
        &self,
        spec: &ObjectSpec,
        version: Option<&str>,
    ) -> Result<T, MountError> {
        self.keyvault
            .get::<T>(self.caller, &self.vault_url(spec), &spec.name, version)
            .await
            .map_err(|e| self.kv_error(spec, e))
    }

    /// The newest `history` enabled versions, newest first, starting at `objectVersion` when given.
    async fn select_versions(&self, spec: &ObjectSpec) -> Result<Vec<String>, MountError> {
        let items = self
            .keyvault
            .list_versions(self.caller, &self.vault_url(spec), spec.kind, &spec.name)
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

    /// Places an object version's files at `path` (plus each file's suffix).
    fn outputs(
        &self,
        spec: &ObjectSpec,
        path: &str,
        index: Option<u32>,
        files: ObjectFiles,
        version: &str,
    ) -> Vec<OutputFile> {
        let mode = spec.mode.unwrap_or(self.plan.default_mode);
        files
            .files
            .into_iter()
            .map(|part| OutputFile {
                path: format!("{path}{}", part.suffix),
                mode,
                contents: part.contents,
                id: spec.version_id(index),
                version: version.to_owned(),
            })
            .collect()
    }

    fn kv_error(&self, spec: &ObjectSpec, error: Arc<KeyVaultError>) -> MountError {
        MountError::KeyVault {
            vault: self.vault_of(spec).to_owned(),
            kind: spec.kind,
            object: spec.name.clone(),
            error,
        }
    }

    pub(super) fn object_error(&self, spec: &ObjectSpec, message: String) -> MountError {
        MountError::Object {
            vault: self.vault_of(spec).to_owned(),
            kind: spec.kind,
            object: spec.name.clone(),
            message,
        }
    }

    fn convert_error(&self, spec: &ObjectSpec, error: ConvertError) -> MountError {
        MountError::Convert {
            vault: self.vault_of(spec).to_owned(),
            kind: spec.kind,
            object: spec.name.clone(),
            error,
        }
    }
}
