//! Which identity a Mount authenticates as (README, "Identity modes"), and the credential it presents: the pod's
//! service-account token for workload identity and identity binding, the client secret from
//! `nodePublishSecretRef` for a service principal.
//!
//! Selection happens in two steps so that `check` can run the first without a pod: [`select`] reads
//! only SecretProviderClass parameters (and whether the request has service-principal keys), and
//! [`credential`] adds what the pod brings. Both push problems into the shared error list rather than
//! stopping at the first.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::findings::Finding;
use super::{near_miss, trimmed};
use crate::auth::Identity;
pub use crate::auth::Mode;
use crate::auth::assertion::{Assertion, WORKLOAD_IDENTITY_AUDIENCE};
use crate::config::parse_bool;

/// Attribute key of the service-account tokens (also accepted from `secrets`).
pub const TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";
/// Largest service-account tokens attribute read: a JWT is about a kilobyte, and the driver sends one
/// per requested audience.
pub const MAX_TOKENS_ATTRIBUTE: usize = 64 * 1024;
/// Audience of identity-binding assertions.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// The request attributes identity selection reads, borrowed from the parsed request (so that this
/// file does not depend on request parsing).
pub(super) struct IdentityAttributes<'a> {
    pub(super) client_id: &'a Option<String>,
    pub(super) use_vm_managed_identity: &'a Option<String>,
    pub(super) user_assigned_identity_id: &'a Option<String>,
    pub(super) use_pod_identity: &'a Option<String>,
    pub(super) use_azure_token_proxy: &'a Option<String>,
    pub(super) service_account_tokens: &'a Option<SecretString>,
    pub(super) other: &'a BTreeMap<String, serde_json::Value>,
}

/// The pod a Mount is for (for logs, messages and the assertion check).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Service account.
    pub service_account: String,
    /// SecretProviderClass (empty in driver v1.5 rotation calls).
    pub secret_provider_class: String,
}

/// The request part service-account token findings are about.
const TOKENS_PART: &str = "serviceAccount.tokens";

const MODES_HELP: &str = "set clientID to the client ID of the managed identity or app registration \
    federated with the pod's service account (workload identity), or useVMManagedIdentity: \"true\" \
    (plus userAssignedIdentityID) to use the node's managed identity, or reference a Secret with \
    clientid and clientsecret in nodePublishSecretRef (service principal)";

fn flag(attrs_value: &Option<String>, name: &str, errors: &mut Vec<Finding>) -> bool {
    match trimmed(attrs_value) {
        None => false,
        Some(v) => parse_bool(v).unwrap_or_else(|_| {
            errors.push(Finding::parameter(
                name,
                format!("{name}: {v:?} is not a boolean; use \"true\" or \"false\""),
            ));
            false
        }),
    }
}

/// The mode the parameters select. `has_secret_keys`: the request carries `clientid` or
/// `clientsecret` (`None` when unknown, as in `check`, which then assumes a service principal).
pub(super) fn select(
    attrs: &IdentityAttributes<'_>,
    has_secret_keys: Option<bool>,
    errors: &mut Vec<Finding>,
) -> Option<Mode> {
    let pod_identity = flag(attrs.use_pod_identity, "usePodIdentity", errors);
    let vm_identity = flag(
        attrs.use_vm_managed_identity,
        "useVMManagedIdentity",
        errors,
    );
    let token_proxy = flag(attrs.use_azure_token_proxy, "useAzureTokenProxy", errors);
    let client_id = trimmed(attrs.client_id).map(str::to_owned);
    if [pod_identity, vm_identity, token_proxy]
        .iter()
        .filter(|f| **f)
        .count()
        > 1
    {
        // Located at the last flag set: the one that turned a valid choice into two.
        let last = [
            (token_proxy, "useAzureTokenProxy"),
            (vm_identity, "useVMManagedIdentity"),
            (pod_identity, "usePodIdentity"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
        .unwrap_or("usePodIdentity");
        errors.push(Finding::parameter(
            last,
            "usePodIdentity, useVMManagedIdentity and useAzureTokenProxy are mutually exclusive: set \
             only one of them to \"true\""
                .to_owned(),
        ));
        return None;
    }
    if vm_identity {
        return Some(Mode::VmManagedIdentity {
            client_id: trimmed(attrs.user_assigned_identity_id).map(str::to_owned),
        });
    }
    if pod_identity {
        return Some(Mode::PodIdentity);
    }
    if token_proxy {
        let Some(client_id) = client_id else {
            errors.push(Finding::parameter(
                "useAzureTokenProxy",
                "useAzureTokenProxy requires clientID: the client ID of the identity bound to the \
                 pod's service account"
                    .to_owned(),
            ));
            return None;
        };
        return Some(Mode::TokenProxy { client_id });
    }
    if let Some(client_id) = client_id {
        return Some(Mode::Workload { client_id });
    }
    if has_secret_keys == Some(false) {
        let mut msg = format!("no identity selected: {MODES_HELP}");
        msg.push_str(&near_miss(attrs.other, "clientID"));
        msg.push_str(&near_miss(attrs.other, "useVMManagedIdentity"));
        if trimmed(attrs.user_assigned_identity_id).is_some() {
            msg.push_str(
                " (userAssignedIdentityID is set but useVMManagedIdentity is not \"true\")",
            );
        }
        // At the near miss of clientID if there is one; else the class as a whole (`clientID`,
        // which `check` places at the class when it is absent).
        let key = attrs
            .other
            .keys()
            .find(|k| k.eq_ignore_ascii_case("clientID"))
            .map_or("clientID", String::as_str);
        errors.push(Finding::parameter(key, msg));
        return None;
    }
    Some(Mode::ServicePrincipal)
}

/// A value of `secrets`, its key matched case-insensitively like the Go provider.
pub(super) fn secret_value<'a>(
    secrets: &'a BTreeMap<String, SecretString>,
    key: &str,
) -> Option<&'a SecretString> {
    secrets
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Attaches the pod's credential to the selected mode.
pub(super) fn credential(
    mode: Mode,
    attrs: &IdentityAttributes<'_>,
    secrets: &BTreeMap<String, SecretString>,
    pod: &PodInfo,
    now: i64,
    errors: &mut Vec<Finding>,
) -> Option<Identity> {
    match mode {
        Mode::VmManagedIdentity { client_id } => Some(Identity::VmManagedIdentity { client_id }),
        Mode::PodIdentity => Some(Identity::PodIdentity {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
        }),
        Mode::TokenProxy { client_id } => {
            let assertion = service_account_assertion(
                attrs,
                secrets,
                pod,
                IDENTITY_BINDING_AUDIENCE,
                now,
                errors,
            )?;
            Some(Identity::TokenProxy {
                client_id,
                assertion,
            })
        }
        Mode::Workload { client_id } => {
            let assertion = service_account_assertion(
                attrs,
                secrets,
                pod,
                WORKLOAD_IDENTITY_AUDIENCE,
                now,
                errors,
            )?;
            Some(Identity::Workload {
                client_id,
                assertion,
            })
        }
        Mode::ServicePrincipal => service_principal(secrets, errors),
    }
}

fn service_principal(
    secrets: &BTreeMap<String, SecretString>,
    errors: &mut Vec<Finding>,
) -> Option<Identity> {
    match (
        secret_value(secrets, "clientid"),
        secret_value(secrets, "clientsecret"),
    ) {
        (Some(id), Some(secret)) => {
            let id = id.expose_secret().trim();
            if id.is_empty() || secret.expose_secret().is_empty() {
                errors.push(Finding::request(
                    "secrets",
                    "the nodePublishSecretRef Secret has an empty clientid or clientsecret"
                        .to_owned(),
                ));
                return None;
            }
            Some(Identity::ServicePrincipal {
                client_id: id.to_owned(),
                client_secret: secret.clone(),
            })
        }
        _ => {
            errors.push(Finding::request(
                "secrets",
                "the nodePublishSecretRef Secret must have both clientid and clientsecret keys for a \
                 service principal; one is missing"
                    .to_owned(),
            ));
            None
        }
    }
}

#[derive(Deserialize)]
struct TokenEntry {
    token: SecretString,
}

/// Takes the service-account token for `audience` from `attributes` (or, on Kubernetes ≥1.35 with
/// `serviceAccountTokenInSecrets`, from `secrets`) and checks it belongs to this pod.
fn service_account_assertion(
    attrs: &IdentityAttributes<'_>,
    secrets: &BTreeMap<String, SecretString>,
    pod: &PodInfo,
    audience: &str,
    now: i64,
    errors: &mut Vec<Finding>,
) -> Option<Assertion> {
    let tokens_json = attrs
        .service_account_tokens
        .as_ref()
        .filter(|t| !t.expose_secret().trim().is_empty())
        .or_else(|| secret_value(secrets, TOKENS_KEY));
    let missing = || {
        let message = format!(
            "clientID is set but the request has no service-account token for audience {audience}: the \
             CSIDriver object secrets-store.csi.k8s.io needs tokenRequests: [{{audience: {audience}}}] \
             (Helm: tokenRequests with that audience; then restart the pod)"
        );
        Finding::request(TOKENS_PART, message)
    };
    let token_error = |message: String| Finding::request(TOKENS_PART, message);
    let Some(tokens_json) = tokens_json else {
        errors.push(missing());
        return None;
    };
    if tokens_json.expose_secret().len() > MAX_TOKENS_ATTRIBUTE {
        errors.push(token_error(format!(
            "{TOKENS_KEY}: {} bytes, more than the {MAX_TOKENS_ATTRIBUTE} a few service-account tokens \
             take; check the CSIDriver tokenRequests",
            tokens_json.expose_secret().len()
        )));
        return None;
    }
    let tokens: BTreeMap<String, TokenEntry> = match serde_json::from_str(
        tokens_json.expose_secret(),
    ) {
        Ok(t) => t,
        Err(_) => {
            errors.push(token_error(format!(
                "{TOKENS_KEY}: not the JSON the driver sends ({{\"<audience>\":{{\"token\":\"…\"}}}})"
            )));
            return None;
        }
    };
    let Some(entry) = tokens.get(audience) else {
        errors.push(missing());
        return None;
    };
    let assertion = match Assertion::parse(entry.token.expose_secret()) {
        Ok(a) => a,
        Err(e) => {
            errors.push(token_error(format!(
                "the service-account token for {audience} {e}"
            )));
            return None;
        }
    };
    if pod.namespace.is_empty() || pod.service_account.is_empty() {
        errors.push(Finding::request(
            "podInfo",
            "the request lacks csi.storage.k8s.io/pod.namespace or \
             csi.storage.k8s.io/serviceAccount.name: set podInfoOnMount: true on the CSIDriver object"
                .to_owned(),
        ));
        return None;
    }
    let subject = format!(
        "system:serviceaccount:{}:{}",
        pod.namespace, pod.service_account
    );
    if let Err(e) = assertion.check(now, audience, &subject) {
        errors.push(token_error(format!(
            "the service-account token for {audience} {e}"
        )));
        return None;
    }
    Some(assertion)
}
