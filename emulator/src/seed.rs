//! The seed file: a small YAML document that describes a tenant's principals, the node's managed
//! identities and the vaults' contents, so the standalone emulator and demos need no code. The
//! format is documented with an example in the crate's README; [`EmulatorConfig::from_yaml`]
//! checks everything it can before anything starts, and its errors name the field
//! (`vaults.kv-main.secrets.db-password[1].version`).
//!
//! Defaults keep seeds short: a version without `version` gets a stable id derived from its place
//! (so a SecretProviderClass can pin it), without `created` one a minute after the previous
//! version (the last listed is the latest), and every issuer a federated credential names gets a
//! signing key, so the emulator can mint and verify its service-account tokens.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;

use crate::issuer::{Issuer, WORKLOAD_IDENTITY_AUDIENCE};
use crate::state::{DEFAULT_TENANT, SecretVersion};
use crate::{Emulator, EmulatorError};

/// The `created` of the first version when a seed gives none (2023-11-14T22:13:20Z).
const FIRST_CREATED: i64 = 1_700_000_000;

/// A seed file that is not valid: `field` is the path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SeedError {
    /// Dotted path of the field (`vaults.kv-main.secrets.db[0].value`), or `(document)`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SeedError {
    SeedError {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole seed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmulatorConfig {
    /// Tenant of identities that name none (default `33333333-3333-3333-3333-333333333333`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// `expires_in` of the access tokens Entra issues (default 3599).
    #[serde(default)]
    pub token_lifetime_seconds: Option<i64>,
    /// Issuers whose tokens the emulator verifies with given public keys (a real cluster's);
    /// every other issuer a federated credential names gets a key the emulator signs with.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Apps and managed identities, their credentials and the vaults they may read.
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
    /// The node's managed identities, as IMDS serves them.
    #[serde(default)]
    pub imds: ImdsConfig,
    /// aad-pod-identity bindings, as NMI serves them.
    #[serde(default)]
    pub pod_identities: Vec<PodIdentityConfig>,
    /// Vaults by name.
    #[serde(default)]
    pub vaults: BTreeMap<String, VaultConfig>,
}

/// An issuer known by its public keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerConfig {
    /// The issuer URL, exactly as in the tokens' `iss`.
    pub url: String,
    /// Its JWKS document (`{"keys": [...]}`), e.g. `kubectl get --raw /openid/v1/jwks`.
    pub jwks: Value,
}

/// An app registration or managed identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentityConfig {
    /// A label for messages.
    #[serde(default)]
    pub name: Option<String>,
    /// The client (application) id.
    pub client_id: String,
    /// Its tenant (default: the top-level `tenant`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// A client secret (service principal sign-in).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Federated identity credentials (workload identity).
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredentialConfig>,
    /// Vaults it may read (an RBAC role assignment such as Key Vault Secrets User).
    #[serde(default)]
    pub vaults: Vec<String>,
    /// Vaults whose objects it may GET but not list (an access policy with `get` alone): listings
    /// get 403. A vault in both lists is fully granted.
    #[serde(default)]
    pub get_only_vaults: Vec<String>,
}

/// One federated identity credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederatedCredentialConfig {
    /// The cluster's OIDC issuer URL, exactly as in the tokens' `iss`.
    pub issuer: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// Default `api://AzureADTokenExchange`.
    #[serde(default)]
    pub audience: Option<String>,
}

/// The node's managed identities.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImdsConfig {
    /// Client id of the system-assigned identity.
    #[serde(default)]
    pub system_assigned: Option<String>,
    /// Client ids of user-assigned identities.
    #[serde(default)]
    pub user_assigned: Vec<String>,
}

/// One NMI binding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodIdentityConfig {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The identity its tokens are for.
    pub client_id: String,
}

/// One vault.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaultConfig {
    /// The vault's tenant (tokens from other tenants get 401).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Access-policy vault: 403 `AccessDenied` rather than `ForbiddenByRbac`.
    #[serde(default)]
    pub access_policies: bool,
    /// Delay before every response, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// The throttling model.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Secrets by name → versions, oldest first.
    #[serde(default)]
    pub secrets: BTreeMap<String, Vec<SecretConfig>>,
    /// Keys by name → versions.
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<KeyConfig>>,
    /// Certificates by name → versions; each also creates its secret.
    #[serde(default)]
    pub certificates: BTreeMap<String, Vec<CertificateConfig>>,
}

/// At most `requests` per `windowSeconds`, then 429 with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThrottleConfig {
    /// Requests admitted per window.
    pub requests: u32,
    /// Window length, seconds (Key Vault's limits are per 10 s).
    pub window_seconds: f64,
}

/// Fields every object version has, before defaults.
struct VersionFields {
    version: Option<String>,
    created: Option<i64>,
    enabled: Option<bool>,
}

/// A secret version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretConfig {
    /// The value.
    pub value: String,
    /// Its content type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// 32 hex digits (default: derived).
    #[serde(default)]
    pub version: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A key version: a JWK, or `generate: P-256`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyConfig {
    /// The public JWK (`kty`, `n`/`e` or `crv`/`x`/`y`, …).
    #[serde(default)]
    pub jwk: Option<Value>,
    /// `P-256`: a fresh EC key.
    #[serde(default)]
    pub generate: Option<String>,
    /// 32 hex digits (default: derived).
    #[serde(default)]
    pub version: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A certificate version: one of `pfx` (with `cer`), `pem`, or `generate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateConfig {
    /// Base64 PKCS#12 (empty password), served as an `application/x-pkcs12` secret.
    #[serde(default)]
    pub pfx: Option<String>,
    /// PEM, private key then certificates, served as an `application/x-pem-file` secret.
    #[serde(default)]
    pub pem: Option<String>,
    /// Base64 DER of the leaf (required with `pfx`; from the first certificate of `pem`).
    #[serde(default)]
    pub cer: Option<String>,
    /// A leaf issued by the emulator's CA, served as PEM.
    #[serde(default)]
    pub generate: Option<GenerateConfig>,
    /// 32 hex digits (default: derived).
    #[serde(default)]
    pub version: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A certificate the emulator issues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenerateConfig {
    /// Subject CN (default: the first DNS name, or the object name).
    #[serde(default)]
    pub common_name: Option<String>,
    /// Subject alternative names.
    #[serde(default)]
    pub dns_names: Vec<String>,
}

fn is_guidish(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn check_vault_name(field: &str, name: &str) -> Result<(), SeedError> {
    let ok = (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{name:?} is not a vault name (3-24 letters, digits and single hyphens, starting with a letter)"
            ),
        ))
    }
}

fn check_object_name(field: &str, name: &str) -> Result<(), SeedError> {
    if (1..=127).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(())
    } else {
        Err(err(
            field,
            format!("{name:?} is not an object name (1-127 letters, digits and hyphens)"),
        ))
    }
}

fn check_version(field: &str, version: &Option<String>) -> Result<(), SeedError> {
    match version {
        Some(v) if v.len() != 32 || !v.chars().all(|c| c.is_ascii_hexdigit()) => Err(err(
            format!("{field}.version"),
            format!("{v:?} is not 32 hex digits"),
        )),
        _ => Ok(()),
    }
}

/// The first `CERTIFICATE` block of a PEM text, DER.
fn first_certificate(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = pem[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

impl EmulatorConfig {
    /// Parses and checks a seed.
    pub fn from_yaml(yaml: &str) -> Result<Self, SeedError> {
        let config: Self =
            serde_saphyr::from_str(yaml).map_err(|e| err("(document)", e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Every rule the YAML types cannot express.
    fn check(&self) -> Result<(), SeedError> {
        for (i, issuer) in self.issuers.iter().enumerate() {
            if !issuer.url.starts_with("https://") {
                return Err(err(format!("issuers[{i}].url"), "must be an https:// URL"));
            }
            if let Err(e) = crate::issuer::Jwks::parse(&issuer.jwks) {
                return Err(err(format!("issuers[{i}].jwks"), e.to_string()));
            }
        }
        for (i, id) in self.identities.iter().enumerate() {
            let at = format!("identities[{i}]");
            if !is_guidish(&id.client_id) {
                return Err(err(format!("{at}.clientId"), "must be a client id (GUID)"));
            }
            if let Some(t) = &id.tenant
                && !is_guidish(t)
            {
                return Err(err(format!("{at}.tenant"), "must be a tenant id (GUID)"));
            }
            for (j, fic) in id.federated_credentials.iter().enumerate() {
                let at = format!("{at}.federatedCredentials[{j}]");
                if !fic.issuer.starts_with("https://") {
                    return Err(err(format!("{at}.issuer"), "must be an https:// URL"));
                }
                if fic.subject.is_empty() {
                    return Err(err(format!("{at}.subject"), "must not be empty"));
                }
            }
            for (j, vault) in id.vaults.iter().enumerate() {
                check_vault_name(&format!("{at}.vaults[{j}]"), vault)?;
            }
            for (j, vault) in id.get_only_vaults.iter().enumerate() {
                check_vault_name(&format!("{at}.getOnlyVaults[{j}]"), vault)?;
            }
        }
        for (i, p) in self.pod_identities.iter().enumerate() {
            if !is_guidish(&p.client_id) {
                return Err(err(
                    format!("podIdentities[{i}].clientId"),
                    "must be a client id (GUID)",
                ));
            }
        }
        if let Some(t) = self.token_lifetime_seconds
            && t <= 0
        {
            return Err(err("tokenLifetimeSeconds", "must be positive"));
        }
        for (name, vault) in &self.vaults {
            let at = format!("vaults.{name}");
            check_vault_name(&at, name)?;
            if let Some(t) = &vault.throttle
                && (t.requests == 0 || !(t.window_seconds > 0.0 && t.window_seconds <= 86_400.0))
            {
                return Err(err(
                    format!("{at}.throttle"),
                    "needs requests >= 1 and 0 < windowSeconds <= 86400",
                ));
            }
            for (object, versions) in &vault.secrets {
                let at = format!("{at}.secrets.{object}");
                check_object_name(&at, object)?;
                if versions.is_empty() {
                    return Err(err(at, "needs at least one version"));
                }
                for (i, v) in versions.iter().enumerate() {
                    check_version(&format!("{at}[{i}]"), &v.version)?;
                }
            }
            for (object, versions) in &vault.keys {
                let at = format!("{at}.keys.{object}");
                check_object_name(&at, object)?;
                if versions.is_empty() {
                    return Err(err(at, "needs at least one version"));
                }
                for (i, v) in versions.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    check_version(&at, &v.version)?;
                    match (&v.jwk, &v.generate) {
                        (Some(jwk), None) if jwk["kty"].is_string() => {}
                        (Some(_), None) => return Err(err(format!("{at}.jwk"), "needs a kty")),
                        (None, Some(g)) if g == "P-256" => {}
                        (None, Some(g)) => {
                            return Err(err(
                                format!("{at}.generate"),
                                format!("{g:?} is not supported (P-256)"),
                            ));
                        }
                        _ => return Err(err(at, "needs exactly one of jwk or generate")),
                    }
                }
            }
            for (object, versions) in &vault.certificates {
                let at = format!("{at}.certificates.{object}");
                check_object_name(&at, object)?;
                if vault.secrets.contains_key(object) {
                    return Err(err(
                        at,
                        "a certificate creates the secret of the same name: remove that secret",
                    ));
                }
                if versions.is_empty() {
                    return Err(err(at, "needs at least one version"));
                }
                for (i, v) in versions.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    check_version(&at, &v.version)?;
                    if let Some(cer) = &v.cer
                        && STANDARD.decode(cer.trim()).is_err()
                    {
                        return Err(err(format!("{at}.cer"), "is not base64"));
                    }
                    match (&v.pfx, &v.pem, &v.generate) {
                        (Some(pfx), None, None) => {
                            if STANDARD.decode(pfx.trim()).is_err() {
                                return Err(err(format!("{at}.pfx"), "is not base64"));
                            }
                            if v.cer.is_none() {
                                return Err(err(
                                    format!("{at}.cer"),
                                    "is required with pfx (base64 DER of the leaf)",
                                ));
                            }
                        }
                        (None, Some(pem), None) => {
                            if v.cer.is_none() && first_certificate(pem).is_none() {
                                return Err(err(
                                    format!("{at}.pem"),
                                    "has no CERTIFICATE block (or give cer)",
                                ));
                            }
                        }
                        (None, None, Some(_)) => {
                            if v.cer.is_some() {
                                return Err(err(
                                    format!("{at}.cer"),
                                    "cannot be given with generate",
                                ));
                            }
                        }
                        _ => return Err(err(at, "needs exactly one of pfx, pem or generate")),
                    }
                }
            }
        }
        Ok(())
    }

    /// Every (issuer, subject, audience) the seed federates, with the identity's label.
    pub fn federated_subjects(&self) -> Vec<(String, String, String, String)> {
        self.identities
            .iter()
            .flat_map(|id| {
                let label = id.name.clone().unwrap_or_else(|| id.client_id.clone());
                id.federated_credentials.iter().map(move |f| {
                    (
                        label.clone(),
                        f.issuer.clone(),
                        f.subject.clone(),
                        f.audience
                            .clone()
                            .unwrap_or_else(|| WORKLOAD_IDENTITY_AUDIENCE.to_owned()),
                    )
                })
            })
            .collect()
    }

    /// The hosts of the issuers the seed names (for the server certificate, to serve their JWKS).
    pub fn issuer_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .federated_subjects()
            .into_iter()
            .filter_map(|(_, iss, _, _)| {
                let rest = iss.strip_prefix("https://")?;
                let host = rest.split(['/', ':']).next()?.to_ascii_lowercase();
                (!host.is_empty()).then_some(host)
            })
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// A stable 32-hex version id for an object version the seed gave none.
fn derived_version(vault: &str, kind: &str, name: &str, index: usize) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{vault}/{kind}/{}/{index}", name.to_ascii_lowercase()).as_bytes(),
    );
    d.as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (version, created, enabled) with the seed's defaults applied.
fn resolve(
    vault: &str,
    kind: &str,
    name: &str,
    index: usize,
    previous: &mut i64,
    fields: VersionFields,
) -> (String, i64, bool) {
    let version = fields
        .version
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_else(|| derived_version(vault, kind, name, index));
    let created = fields.created.unwrap_or(previous.saturating_add(60));
    *previous = created;
    (version, created, fields.enabled.unwrap_or(true))
}

fn generated_p256_jwk() -> Result<Value, EmulatorError> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| EmulatorError::Issuer(crate::issuer::IssuerError::Crypto))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| EmulatorError::Issuer(crate::issuer::IssuerError::Crypto))?;
    let point = key.public_key().as_ref();
    let (x, y) = point.get(1..33).zip(point.get(33..65)).unwrap_or_default();
    Ok(serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        "key_ops": ["sign", "verify"],
    }))
}

/// Applies a checked seed to a running emulator; returns the issuers it holds keys of.
pub(crate) fn apply(
    emulator: &Emulator,
    config: &EmulatorConfig,
) -> Result<Vec<Issuer>, EmulatorError> {
    let default_tenant = config
        .tenant
        .clone()
        .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    let entra = emulator.entra();
    if let Some(lifetime) = config.token_lifetime_seconds {
        entra.set_token_lifetime(lifetime);
    }
    for issuer in &config.issuers {
        entra.trust_jwks(&issuer.url, &issuer.jwks)?;
    }
    let mut issuers: Vec<Issuer> = Vec::new();
    for id in &config.identities {
        let tenant = id.tenant.clone().unwrap_or_else(|| default_tenant.clone());
        if let Some(secret) = &id.client_secret {
            entra.add_client_secret(&tenant, &id.client_id, secret);
        }
        for fic in &id.federated_credentials {
            let external = config.issuers.iter().any(|i| i.url == fic.issuer);
            if !external && !issuers.iter().any(|i| i.url() == fic.issuer) {
                issuers.push(entra.add_issuer(&fic.issuer)?);
            }
            let audience = fic
                .audience
                .as_deref()
                .unwrap_or(WORKLOAD_IDENTITY_AUDIENCE);
            entra.add_federated_credential(
                &tenant,
                &id.client_id,
                &fic.issuer,
                &fic.subject,
                audience,
            );
        }
        // Full grants last, so a vault in both lists is fully granted.
        for vault in &id.get_only_vaults {
            emulator.vault(vault).grant_without_list(&id.client_id);
        }
        for vault in &id.vaults {
            emulator.vault(vault).grant(&id.client_id);
        }
    }
    let node = emulator.node();
    node.set_tenant(&default_tenant);
    if let Some(system) = &config.imds.system_assigned {
        node.set_system_identity(system);
    }
    for user in &config.imds.user_assigned {
        node.assign_user_identity(user);
    }
    for p in &config.pod_identities {
        node.bind_pod(&p.namespace, &p.pod, &p.client_id);
    }
    for (name, v) in &config.vaults {
        let vault = emulator.vault(name);
        if let Some(t) = &v.tenant {
            vault.set_tenant(t);
        }
        if v.access_policies {
            vault.use_access_policies();
        }
        vault.set_latency(std::time::Duration::from_millis(v.latency_ms));
        if let Some(t) = &v.throttle {
            vault.limit_requests(
                t.requests,
                std::time::Duration::from_secs_f64(t.window_seconds),
            );
        }
        for (object, versions) in &v.secrets {
            let mut previous = FIRST_CREATED - 60;
            for (i, s) in versions.iter().enumerate() {
                let fields = VersionFields {
                    version: s.version.clone(),
                    created: s.created,
                    enabled: s.enabled,
                };
                let (version, created, enabled) =
                    resolve(name, "secrets", object, i, &mut previous, fields);
                vault.put_secret(
                    object,
                    SecretVersion {
                        version,
                        value: s.value.clone(),
                        content_type: s.content_type.clone(),
                        kid: None,
                        created,
                        enabled,
                    },
                );
            }
        }
        for (object, versions) in &v.keys {
            let mut previous = FIRST_CREATED - 60;
            for (i, k) in versions.iter().enumerate() {
                let fields = VersionFields {
                    version: k.version.clone(),
                    created: k.created,
                    enabled: k.enabled,
                };
                let (version, created, enabled) =
                    resolve(name, "keys", object, i, &mut previous, fields);
                let jwk = match &k.jwk {
                    Some(jwk) => {
                        let mut jwk = jwk.clone();
                        if let Some(o) = jwk.as_object_mut() {
                            o.remove("kid");
                        }
                        jwk
                    }
                    None => generated_p256_jwk()?,
                };
                vault.put_key(object, &version, jwk, created, enabled);
            }
        }
        for (object, versions) in &v.certificates {
            let mut previous = FIRST_CREATED - 60;
            for (i, c) in versions.iter().enumerate() {
                let fields = VersionFields {
                    version: c.version.clone(),
                    created: c.created,
                    enabled: c.enabled,
                };
                let (version, created, enabled) =
                    resolve(name, "certificates", object, i, &mut previous, fields);
                let (value, content_type, cer) = match (&c.pfx, &c.pem, &c.generate) {
                    (Some(pfx), _, _) => (
                        pfx.trim().to_owned(),
                        "application/x-pkcs12",
                        c.cer.clone().unwrap_or_default(),
                    ),
                    (None, Some(pem), _) => {
                        let cer = c.cer.clone().unwrap_or_else(|| {
                            first_certificate(pem)
                                .map(|d| STANDARD.encode(d))
                                .unwrap_or_default()
                        });
                        (pem.clone(), "application/x-pem-file", cer)
                    }
                    (None, None, generate) => {
                        let g = generate.clone().unwrap_or(GenerateConfig {
                            common_name: None,
                            dns_names: Vec::new(),
                        });
                        let cn = g
                            .common_name
                            .clone()
                            .or_else(|| g.dns_names.first().cloned())
                            .unwrap_or_else(|| object.clone());
                        let leaf = emulator.pki().leaf(&cn, &g.dns_names)?;
                        // Key Vault's PEM: the key, then the chain from the leaf up.
                        let pem = format!("{}{}{}", leaf.key_pem, leaf.cert_pem, emulator.ca_pem());
                        (
                            pem,
                            "application/x-pem-file",
                            STANDARD.encode(&leaf.cert_der),
                        )
                    }
                };
                vault.put_certificate_with_secret(
                    object,
                    &version,
                    cer.trim(),
                    &value,
                    content_type,
                    created,
                    enabled,
                );
            }
        }
    }
    Ok(issuers)
}
