//! A `MountRequest` parsed and validated into a [`MountPlan`] before any network call
//! (ARCHITECTURE.md, "The flow of one Mount"; the parameters: README, "The SecretProviderClass it accepts").
//!
//! `attributes` is deserialized into [`RawAttributes`] (serde renames give the parameter names);
//! every rule is then checked here and in [`super::objects`] and [`super::identity`], and all
//! violations are reported together, each naming the field and showing a valid value. The
//! attribute map carries the pod's service-account token, so it is never logged and never echoed
//! back.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

use super::findings::Finding;
pub use super::identity::PodInfo;
use super::identity::{self, IdentityAttributes, Mode, secret_value};
use super::layout;
use super::objects::{self, ObjectSpec};
use super::{missing, trimmed};
use crate::auth::Identity;
use crate::cloud::CloudName;

/// The SecretProviderClass parameters this provider reads (for near-miss hints).
pub const PARAMETERS: &[&str] = &[
    "keyvaultName",
    "tenantID",
    "tenantId",
    "clientID",
    "useVMManagedIdentity",
    "userAssignedIdentityID",
    "usePodIdentity",
    "useAzureTokenProxy",
    "cloudName",
    "cloudEnvFileName",
    "objects",
];

/// Parameters the Go provider once read and ignores now; SecretProviderClasses still carry them.
pub const LEGACY_PARAMETERS: &[&str] = &["resourceGroup", "subscriptionId"];

/// `attributes` as sent: SecretProviderClass parameters plus the pod attributes the driver adds.
#[derive(Debug, Default, Deserialize)]
pub struct RawAttributes {
    #[serde(rename = "keyvaultName")]
    /// `keyvaultName`.
    pub keyvault_name: Option<String>,
    #[serde(rename = "tenantID")]
    /// `tenantID`.
    pub tenant_id: Option<String>,
    #[serde(rename = "tenantId")]
    /// `tenantId` (legacy spelling; `tenantID` wins).
    pub tenant_id_legacy: Option<String>,
    #[serde(rename = "clientID")]
    /// `clientID`.
    pub client_id: Option<String>,
    #[serde(rename = "useVMManagedIdentity")]
    /// `useVMManagedIdentity`.
    pub use_vm_managed_identity: Option<String>,
    #[serde(rename = "userAssignedIdentityID")]
    /// `userAssignedIdentityID`.
    pub user_assigned_identity_id: Option<String>,
    #[serde(rename = "usePodIdentity")]
    /// `usePodIdentity`.
    pub use_pod_identity: Option<String>,
    #[serde(rename = "useAzureTokenProxy")]
    /// `useAzureTokenProxy`.
    pub use_azure_token_proxy: Option<String>,
    #[serde(rename = "cloudName")]
    /// `cloudName`.
    pub cloud_name: Option<String>,
    #[serde(rename = "cloudEnvFileName")]
    /// `cloudEnvFileName`.
    pub cloud_env_file_name: Option<String>,
    /// `objects`: the YAML list.
    pub objects: Option<String>,
    #[serde(rename = "secretProviderClass")]
    /// `secretProviderClass` (absent in driver v1.5 rotation calls).
    pub secret_provider_class: Option<String>,
    #[serde(rename = "csi.storage.k8s.io/pod.name")]
    /// The pod's name.
    pub pod_name: Option<String>,
    #[serde(rename = "csi.storage.k8s.io/pod.namespace")]
    /// The pod's namespace.
    pub pod_namespace: Option<String>,
    #[serde(rename = "csi.storage.k8s.io/pod.uid")]
    /// The pod's UID.
    pub pod_uid: Option<String>,
    #[serde(rename = "csi.storage.k8s.io/serviceAccount.name")]
    /// The pod's service account.
    pub service_account: Option<String>,
    /// The pod's projected tokens: bearer credentials, so a secret type (redacted `Debug`).
    #[serde(rename = "csi.storage.k8s.io/serviceAccount.tokens")]
    pub service_account_tokens: Option<SecretString>,
    /// Everything else: legacy parameters (`resourceGroup`, …) and typos, which get hints.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl RawAttributes {
    /// The attributes identity selection reads.
    fn identity(&self) -> IdentityAttributes<'_> {
        IdentityAttributes {
            client_id: &self.client_id,
            use_vm_managed_identity: &self.use_vm_managed_identity,
            user_assigned_identity_id: &self.user_assigned_identity_id,
            use_pod_identity: &self.use_pod_identity,
            use_azure_token_proxy: &self.use_azure_token_proxy,
            service_account_tokens: &self.service_account_tokens,
            other: &self.other,
        }
    }
}

/// A validated Mount.
#[derive(Debug)]
pub struct MountPlan {
    /// `keyvaultName`.
    pub vault_name: String,
    /// `tenantID`.
    pub tenant: String,
    /// `cloudName` (or `--cloud-name`).
    pub cloud: CloudName,
    /// `cloudEnvFileName`.
    pub cloud_env_file: Option<String>,
    /// Who authenticates, with the credential.
    pub identity: Identity,
    /// The objects, in SecretProviderClass order.
    pub objects: Vec<ObjectSpec>,
    /// The request's `permission`: default file mode.
    pub default_mode: u32,
    /// The pod.
    pub pod: PodInfo,
}

fn valid_tenant(t: &str) -> bool {
    t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// What parsing needs besides the request.
#[derive(Clone, Copy, Debug)]
pub struct ParseContext {
    /// `--cloud-name`: the cloud when the SecretProviderClass sets none.
    pub default_cloud: CloudName,
    /// `--write-cert-and-key-in-separate-files`: secrets may add `.crt` and `.key` files.
    pub split_files: bool,
    /// Unix seconds, for the assertion's expiry.
    pub now: i64,
}

impl RawAttributes {
    /// Deserializes the `attributes` JSON.
    pub fn from_json(attributes: &str) -> Result<Self, String> {
        serde_json::from_str(attributes).map_err(|e| {
            format!(
                "attributes: not a JSON object of string values ({e}); this comes from the CSI driver, \
                 check its version"
            )
        })
    }

    /// `namespace/name` of the pod, for logs (empty parts when the driver sent none).
    pub fn pod_label(&self) -> String {
        format!(
            "{}/{}",
            trimmed(&self.pod_namespace).unwrap_or_default(),
            trimmed(&self.pod_name).unwrap_or_default()
        )
    }
}

/// Parses and validates a request.
pub fn parse(
    attributes: &str,
    secrets: &str,
    permission: &str,
    ctx: &ParseContext,
) -> Result<MountPlan, Vec<Finding>> {
    let attrs = RawAttributes::from_json(attributes)
        .map_err(|e| vec![Finding::request("attributes", e)])?;
    validate(attrs, secrets, permission, ctx)
}

/// The SecretProviderClass parameters, validated: everything a Mount needs that does not come from
/// the pod (this is what `akv-csi-provider check` checks).
#[derive(Debug)]
pub struct SpcParameters {
    /// `keyvaultName`.
    pub vault_name: String,
    /// `tenantID`.
    pub tenant: String,
    /// `cloudName` (or `--cloud-name`).
    pub cloud: CloudName,
    /// `cloudEnvFileName`.
    pub cloud_env_file: Option<String>,
    /// The identity mode the parameters select (`None` when they select none validly).
    pub mode: Option<Mode>,
    /// The objects, in SecretProviderClass order.
    pub objects: Vec<ObjectSpec>,
}

/// Validates the SecretProviderClass parameters, pushing every problem into `errors`.
/// `has_secret_keys`: whether the request carries service-principal keys (`None`: unknown).
pub fn validate_parameters(
    attrs: &RawAttributes,
    has_secret_keys: Option<bool>,
    ctx: &ParseContext,
    errors: &mut Vec<Finding>,
) -> SpcParameters {
    let cloud = match trimmed(&attrs.cloud_name) {
        None => ctx.default_cloud,
        Some(c) => c.parse().unwrap_or_else(|e: String| {
            errors.push(Finding::parameter("cloudName", format!("cloudName: {e}")));
            ctx.default_cloud
        }),
    };
    let vault_name = vault_name(attrs, errors);
    let tenant = tenant(attrs, errors);
    let mode = identity::select(&attrs.identity(), has_secret_keys, errors);
    let mut objects = objects(attrs, ctx.split_files, errors);
    // An entry naming the class's own vault is an object of the class's vault: same id as without.
    for object in &mut objects {
        if object
            .vault
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(&vault_name))
        {
            object.vault = None;
        }
    }
    SpcParameters {
        vault_name,
        tenant,
        cloud,
        cloud_env_file: trimmed(&attrs.cloud_env_file_name).map(str::to_owned),
        mode,
        objects,
    }
}

fn vault_name(attrs: &RawAttributes, errors: &mut Vec<Finding>) -> String {
    match trimmed(&attrs.keyvault_name) {
        Some(v) if objects::valid_vault_name(v) => return v.to_owned(),
        Some(v) => errors.push(Finding::parameter(
            "keyvaultName",
            format!(
                "keyvaultName: {v:?} is not a Key Vault name (3-24 letters, digits and '-'), e.g. \
                 keyvaultName: my-vault"
            ),
        )),
        None => errors.push(missing(
            &attrs.other,
            "keyvaultName",
            "keyvaultName is required, e.g. keyvaultName: my-vault".to_owned(),
        )),
    }
    String::new()
}

fn tenant(attrs: &RawAttributes, errors: &mut Vec<Finding>) -> String {
    let (key, value) = match (trimmed(&attrs.tenant_id), trimmed(&attrs.tenant_id_legacy)) {
        (Some(t), _) => ("tenantID", t),
        (None, Some(t)) => ("tenantId", t),
        (None, None) => {
            errors.push(missing(
                &attrs.other,
                "tenantID",
                "tenantID is required: the Entra tenant of the identity and the vault, e.g. tenantID: \
                 72f988bf-86f1-41af-91ab-2d7cd011db47"
                    .to_owned(),
            ));
            return String::new();
        }
    };
    if valid_tenant(value) {
        return value.to_owned();
    }
    errors.push(Finding::parameter(
        key,
        format!(
            "tenantID: {value:?} is not a tenant ID (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47 \
             or a domain such as contoso.onmicrosoft.com)"
        ),
    ));
    String::new()
}

/// The objects, their paths checked together: collisions and the volume's file count.
fn objects(attrs: &RawAttributes, split_files: bool, errors: &mut Vec<Finding>) -> Vec<ObjectSpec> {
    let Some(yaml) = trimmed(&attrs.objects) else {
        errors.push(missing(
            &attrs.other,
            "objects",
            "objects is required: a YAML list of the Key Vault objects to mount".to_owned(),
        ));
        return Vec::new();
    };
    let objects = objects::parse(yaml, errors);
    layout::check_volume(&objects, split_files, errors);
    objects
}

/// Validates deserialized attributes together with the request's `secrets` and `permission`.
pub fn validate(
    attrs: RawAttributes,
    secrets: &str,
    permission: &str,
    ctx: &ParseContext,
) -> Result<MountPlan, Vec<Finding>> {
    let mut errors = Vec::new();
    let secrets = parse_secrets(secrets, &mut errors);

    let default_mode = match permission.trim() {
        "" => 0o644,
        p => match p.parse::<u32>() {
            Ok(m) if m <= 0o777 => m,
            _ => {
                errors.push(Finding::request(
                    "permission",
                    format!(
                        "permission: {p:?} is not a file mode in decimal up to 511 (e.g. \"420\" for \
                         0644)"
                    ),
                ));
                0o644
            }
        },
    };

    let has_secret_keys = ["clientid", "clientsecret"]
        .iter()
        .any(|k| secret_value(&secrets, k).is_some());
    let params = validate_parameters(&attrs, Some(has_secret_keys), ctx, &mut errors);

    let pod = PodInfo {
        namespace: trimmed(&attrs.pod_namespace).unwrap_or_default().to_owned(),
        name: trimmed(&attrs.pod_name).unwrap_or_default().to_owned(),
        uid: trimmed(&attrs.pod_uid).unwrap_or_default().to_owned(),
        service_account: trimmed(&attrs.service_account)
            .unwrap_or_default()
            .to_owned(),
        secret_provider_class: trimmed(&attrs.secret_provider_class)
            .unwrap_or_default()
            .to_owned(),
    };
    let identity = params.mode.and_then(|mode| {
        identity::credential(
            mode,
            &attrs.identity(),
            &secrets,
            &pod,
            ctx.now,
            &mut errors,
        )
    });

    match identity {
        Some(identity) if errors.is_empty() => Ok(MountPlan {
            vault_name: params.vault_name,
            tenant: params.tenant,
            cloud: params.cloud,
            cloud_env_file: params.cloud_env_file,
            identity,
            objects: params.objects,
            default_mode,
            pod,
        }),
        _ => Err(errors),
    }
}

/// `secrets`: `null`, empty, `{}` or an object of strings. Keys stay as sent; lookups ignore case.
fn parse_secrets(secrets: &str, errors: &mut Vec<Finding>) -> BTreeMap<String, SecretString> {
    let text = secrets.trim();
    if text.is_empty() || text == "null" {
        return BTreeMap::new();
    }
    match serde_json::from_str::<BTreeMap<String, SecretString>>(text) {
        Ok(map) => map,
        Err(_) => {
            // serde_json's message could quote part of a secret value: say only what is wrong.
            errors.push(Finding::request(
                "secrets",
                "secrets: the nodePublishSecretRef data is not a JSON object of string values; check \
                 the Secret referenced by nodePublishSecretRef"
                    .to_owned(),
            ));
            BTreeMap::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::assertion::WORKLOAD_IDENTITY_AUDIENCE;
    use crate::mount::identity::TOKENS_KEY;
    use base64::Engine as _;

    const NOW: i64 = 1_700_000_000;

    fn jwt(ns: &str, sa: &str, aud: &str, exp: i64) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = serde_json::json!({
            "iss": "https://oidc.example/", "sub": format!("system:serviceaccount:{ns}:{sa}"),
            "aud": [aud], "exp": exp });
        format!(
            "{}.{}.c2ln",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode(claims.to_string())
        )
    }

    fn attrs(extra: serde_json::Value) -> String {
        let mut base = serde_json::json!({
            "keyvaultName": "kv1",
            "tenantID": "tenant-1",
            "objects": "array:\n  - |\n    objectName: s1\n    objectType: secret\n",
            "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/pod.name": "pod",
            "csi.storage.k8s.io/serviceAccount.name": "sa",
            "resourceGroup": "legacy-is-ignored",
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        base.to_string()
    }

    fn tokens(token: &str) -> String {
        serde_json::json!({ WORKLOAD_IDENTITY_AUDIENCE: {"token": token, "expirationTimestamp": "x"} }).to_string()
    }

    const CTX: ParseContext = ParseContext {
        default_cloud: CloudName::Public,
        split_files: false,
        now: NOW,
    };

    fn errors_of(a: &str, secrets: &str) -> String {
        let findings = parse(a, secrets, "420", &CTX).unwrap_err();
        findings
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn workload_identity_plan() {
        let a = attrs(serde_json::json!({
            "clientID": "cid", TOKENS_KEY: tokens(&jwt("ns", "sa", WORKLOAD_IDENTITY_AUDIENCE, NOW + 600)),
        }));
        let plan = parse(&a, "null", "420", &CTX).unwrap();
        assert_eq!(plan.vault_name, "kv1");
        assert_eq!(plan.default_mode, 0o644);
        assert!(
            matches!(plan.identity, Identity::Workload { ref client_id, .. } if client_id == "cid")
        );
        assert_eq!(plan.objects.len(), 1);
    }

    #[test]
    fn tokens_may_arrive_in_secrets() {
        let a = attrs(serde_json::json!({"clientID": "cid"}));
        let s = serde_json::json!({TOKENS_KEY: tokens(&jwt("ns", "sa", WORKLOAD_IDENTITY_AUDIENCE, NOW + 600))}).to_string();
        assert!(parse(&a, &s, "420", &CTX).is_ok());
    }

    #[test]
    fn client_id_without_token_points_at_token_requests() {
        let e = errors_of(&attrs(serde_json::json!({"clientID": "cid"})), "{}");
        assert!(e.contains("tokenRequests"), "{e}");
    }

    #[test]
    fn foreign_or_expired_assertions_are_refused() {
        let other = attrs(serde_json::json!({
            "clientID": "cid", TOKENS_KEY: tokens(&jwt("other-ns", "sa", WORKLOAD_IDENTITY_AUDIENCE, NOW + 600)),
        }));
        assert!(errors_of(&other, "null").contains("subject"));
        let expired = attrs(serde_json::json!({
            "clientID": "cid", TOKENS_KEY: tokens(&jwt("ns", "sa", WORKLOAD_IDENTITY_AUDIENCE, NOW - 1)),
        }));
        assert!(errors_of(&expired, "null").contains("expired"));
    }

    #[test]
    fn service_principal_keys_match_case_insensitively() {
        let s = r#"{"ClientID":"app","ClientSecret":"shh"}"#;
        let plan = parse(&attrs(serde_json::json!({})), s, "420", &CTX).unwrap();
        assert!(
            matches!(plan.identity, Identity::ServicePrincipal { ref client_id, .. } if client_id == "app")
        );
        assert!(!format!("{:?}", plan.identity).contains("shh"));
    }

    #[test]
    fn no_identity_explains_modes_and_near_misses() {
        let e = errors_of(&attrs(serde_json::json!({"clientId": "cid"})), "null");
        assert!(
            e.contains("no identity selected") && e.contains("write clientID"),
            "{e}"
        );
        assert!(e.contains("nodePublishSecretRef"), "{e}");
    }

    #[test]
    fn exclusive_flags_and_bad_booleans() {
        let e = errors_of(
            &attrs(serde_json::json!({"useVMManagedIdentity": "true", "usePodIdentity": "True"})),
            "null",
        );
        assert!(e.contains("mutually exclusive"), "{e}");
        let e = errors_of(
            &attrs(serde_json::json!({"useVMManagedIdentity": "yes"})),
            "null",
        );
        assert!(
            e.contains("useVMManagedIdentity") && e.contains("boolean"),
            "{e}"
        );
    }

    #[test]
    fn every_required_field_is_reported_at_once() {
        let e = errors_of(
            &attrs(
                serde_json::json!({"keyvaultName": null, "tenantID": null, "objects": null, "keyVaultName": "x"}),
            ),
            r#"{"clientid":"a","clientsecret":"b"}"#,
        );
        assert!(
            e.contains("keyvaultName is required") && e.contains("found \"keyVaultName\""),
            "{e}"
        );
        assert!(e.contains("tenantID is required"), "{e}");
        assert!(e.contains("objects is required"), "{e}");
    }

    #[test]
    fn tenant_id_wins_over_legacy_and_legacy_alone_works() {
        let sp = r#"{"clientid":"a","clientsecret":"b"}"#;
        let plan = parse(
            &attrs(serde_json::json!({"tenantId": "legacy"})),
            sp,
            "420",
            &CTX,
        )
        .unwrap();
        assert_eq!(plan.tenant, "tenant-1");
        let plan = parse(
            &attrs(serde_json::json!({"tenantID": null, "tenantId": "legacy"})),
            sp,
            "420",
            &CTX,
        )
        .unwrap();
        assert_eq!(plan.tenant, "legacy");
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        assert!(parse("not json", "null", "420", &CTX).is_err());
        let sp = r#"{"clientid":"a","clientsecret":"b"}"#;
        let e = parse(&attrs(serde_json::json!({})), sp, "0x1", &CTX)
            .unwrap_err()
            .iter()
            .map(|f| f.message.as_str())
            .collect::<String>();
        assert!(e.contains("permission"), "{e}");
        let e = errors_of(&attrs(serde_json::json!({})), r#"{"clientsecret": 5}"#);
        assert!(e.contains("secrets:"), "{e}");
        let e = errors_of(&attrs(serde_json::json!({"keyvaultName": "bad_name!"})), sp);
        assert!(e.contains("not a Key Vault name"), "{e}");
        let e = errors_of(&attrs(serde_json::json!({"cloudName": "Mars"})), sp);
        assert!(e.contains("cloudName"), "{e}");
    }

    #[test]
    fn duplicate_file_paths_are_refused() {
        let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: same\n  - |\n    objectName: b\n    objectType: secret\n    objectAlias: same\n";
        let e = errors_of(
            &attrs(serde_json::json!({"objects": objects})),
            r#"{"clientid":"a","clientsecret":"b"}"#,
        );
        assert!(e.contains("both write the file"), "{e}");
    }
}
