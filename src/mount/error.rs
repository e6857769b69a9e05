//! Mount errors and the one mapping from them to gRPC status codes.
//!
//! The status message reaches `kubectl describe pod` verbatim, so each variant says what failed
//! (vault, object), why (Key Vault's or Entra's own code and message) and, where we know it, what
//! to change. The code matters too: the driver retries only `UNAVAILABLE`, so transient failures
//! (throttling, 5xx, network) map there and nothing else does.

use std::sync::Arc;

use tonic::{Code, Status};

use crate::auth::AuthError;
use crate::cloud::CloudError;
use crate::convert::ConvertError;
use crate::http::FailureKind;
use crate::keyvault::{KeyVaultError, ObjectKind};
use crate::metrics::ErrorClass;

/// Why a Mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The request breaks one or more rules; each entry names its field.
    #[error("invalid SecretProviderClass or request: {}", super::findings::messages(.0))]
    Invalid(Vec<super::findings::Finding>),
    /// The cloud's environment file could not be used.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// No token for the selected identity.
    #[error(transparent)]
    Auth(#[from] Arc<AuthError>),
    /// Key Vault refused or failed a request for one object.
    #[error("{}", keyvault_message(.vault, .kind, .object, .error))]
    KeyVault {
        /// `keyvaultName`.
        vault: String,
        /// `objectType`.
        kind: ObjectKind,
        /// `objectName`.
        object: String,
        /// What Key Vault (or the network) said; shared by every Mount that waited for the request.
        error: Arc<KeyVaultError>,
    },
    /// Key Vault refused or failed the listing of a vault's objects that a pattern needs.
    #[error("{}", listing_message(.vault, .kind, .pattern, .error))]
    Listing {
        /// The vault listed.
        vault: String,
        /// `objectType`.
        kind: ObjectKind,
        /// The pattern (`objectName`).
        pattern: String,
        /// What Key Vault (or the network) said.
        error: Arc<KeyVaultError>,
    },
    /// Key Vault refused the identity's token (HTTP 401) twice: the cached one, and the one that
    /// replaced it.
    #[error(
        "{kind} {object:?} from vault {vault}: Key Vault refused the token of the {identity} (HTTP \
         401) twice, the second time a newly issued one: {error}; check that tenantID is the vault's \
         tenant and the vault is in the SecretProviderClass's cloud (cloudName), that the identity \
         still exists and is enabled, and that no Conditional Access policy blocks it",
        kind = .kind.as_str()
    )]
    TokenRefused {
        /// `keyvaultName`.
        vault: String,
        /// `objectType`.
        kind: ObjectKind,
        /// `objectName`.
        object: String,
        /// The identity, as users name it (mode and client id).
        identity: String,
        /// Key Vault's answer to the new token.
        error: Arc<KeyVaultError>,
    },
    /// An object's content could not be turned into its file.
    #[error("{kind} {object:?} from vault {vault}: {error}", kind = .kind.as_str())]
    Convert {
        /// `keyvaultName`.
        vault: String,
        /// `objectType`.
        kind: ObjectKind,
        /// `objectName`.
        object: String,
        /// What was wrong with the content.
        error: ConvertError,
    },
    /// An object cannot be served as asked (e.g. the requested version is not among the enabled ones).
    #[error("{kind} {object:?} from vault {vault}: {message}", kind = .kind.as_str())]
    Object {
        /// `keyvaultName`.
        vault: String,
        /// `objectType`.
        kind: ObjectKind,
        /// `objectName`.
        object: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The files are larger in all than the driver accepts in one response.
    #[error(
        "the objects of this SecretProviderClass add up to {total} bytes, more than the {limit} bytes a \
         Mount response may carry (the driver's gRPC limit; --max-response-bytes); the largest: {}. \
         Split the objects over several SecretProviderClasses (volumes)",
        largest.iter().map(|(path, size)| format!("{path} ({size} bytes)")).collect::<Vec<_>>().join(", ")
    )]
    TooLarge {
        /// Bytes of all files.
        total: usize,
        /// `--max-response-bytes`.
        limit: usize,
        /// The largest files, largest first.
        largest: Vec<(String, usize)>,
    },
    /// Every Mount slot stayed taken until the deadline.
    #[error(
        "the provider is busy: it is serving {0} Mounts already and none finished before this Mount's \
         deadline; the driver will retry (see --max-concurrent-mounts)"
    )]
    Busy(usize),
    /// The Mount ran past `--mount-timeout`.
    #[error(
        "the Mount did not finish within {0:?}: Key Vault or Entra ID is slow or unreachable from this node"
    )]
    Timeout(std::time::Duration),
}

fn keyvault_message(vault: &str, kind: &ObjectKind, object: &str, err: &KeyVaultError) -> String {
    let what = format!("{} {object:?} from vault {vault}", kind.as_str());
    let hint = match err {
        KeyVaultError::Transport(t) if t.kind == FailureKind::Dns => format!(
            ": the vault {vault} does not exist or its name is misspelled (keyvaultName), or this node \
             cannot resolve it (private endpoint DNS)"
        ),
        KeyVaultError::Status { status: 404, .. } => format!(
            ": check objectName and objectVersion, and that the object is a {} (objectType)",
            kind.as_str()
        ),
        KeyVaultError::Status {
            status: 403, inner, ..
        } => match inner.as_deref() {
            Some("ForbiddenByRbac") => format!(
                ": grant the identity the \"{}\" role (or a role with the action named above) on the \
                 vault",
                reader_role(*kind)
            ),
            Some("AccessDenied") => format!(
                ": the vault uses access policies; give the identity the get permission for {}",
                kind.collection()
            ),
            _ => String::new(),
        },
        KeyVaultError::Status { status: 429, .. } => {
            ": Key Vault is throttling this vault; the driver will retry".to_owned()
        }
        _ => String::new(),
    };
    format!("{what}: {err}{hint}")
}

/// What listing a vault's objects of `kind` needs besides reading them by name, in both permission
/// models (`check` notes it for every pattern; a 403 on a listing says it).
pub(crate) fn list_permission(kind: ObjectKind) -> String {
    let action = match kind {
        ObjectKind::Secret => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ObjectKind::Key => "Microsoft.KeyVault/vaults/keys/read",
        ObjectKind::Cert => "Microsoft.KeyVault/vaults/certificates/read",
    };
    format!(
        "with Azure RBAC the data action {action} (in the \"{}\" role), with access policies the \
         list permission for {} (get alone is not enough)",
        reader_role(kind),
        kind.collection()
    )
}

/// The built-in role that reads (and lists) the objects of a kind.
fn reader_role(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Secret => "Key Vault Secrets User",
        ObjectKind::Key => "Key Vault Crypto User",
        ObjectKind::Cert => "Key Vault Certificate User",
    }
}

/// Listing needs another permission than reading one object: say which.
fn listing_message(vault: &str, kind: &ObjectKind, pattern: &str, err: &KeyVaultError) -> String {
    let what = format!(
        "listing the {} of vault {vault} for the pattern {pattern:?}",
        kind.collection()
    );
    let hint = match err {
        KeyVaultError::Status { status: 403, .. } => format!(
            ": a pattern lists the vault, which reading objects by name does not need: {}; or name \
             the objects instead of a pattern",
            list_permission(*kind)
        ),
        _ => String::new(),
    };
    format!("{what}: {err}{hint}")
}

impl MountError {
    /// Low-cardinality outcome class, for logs and metrics.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Invalid(_) | Self::Cloud(_) => ErrorClass::Invalid,
            Self::Auth(e) => e.class(),
            Self::KeyVault { error, .. }
            | Self::Listing { error, .. }
            | Self::TokenRefused { error, .. } => error.class(),
            Self::Convert { .. } | Self::Object { .. } => ErrorClass::Conversion,
            Self::Timeout(_) | Self::Busy(_) => ErrorClass::Timeout,
            Self::TooLarge { .. } => ErrorClass::Conversion,
        }
    }

    /// Key Vault refused the token this error came from (HTTP 401): with its challenge's claims.
    pub(crate) fn refused_token(&self) -> Option<Option<String>> {
        match self {
            Self::KeyVault { error, .. } | Self::Listing { error, .. } => {
                error.refused_token().map(|c| c.map(str::to_owned))
            }
            _ => None,
        }
    }

    /// A second refusal, after the token was replaced: named with the identity.
    pub(crate) fn refused_again(self, identity: String) -> Self {
        match self {
            Self::KeyVault {
                vault,
                kind,
                object,
                error,
            } if error.refused_token().is_some() => Self::TokenRefused {
                vault,
                kind,
                object,
                identity,
                error,
            },
            Self::Listing {
                vault,
                kind,
                pattern,
                error,
            } if error.refused_token().is_some() => Self::TokenRefused {
                vault,
                kind,
                object: pattern,
                identity,
                error,
            },
            other => other,
        }
    }

    /// The object the error is about, if it is about one.
    pub fn object(&self) -> Option<&str> {
        match self {
            Self::KeyVault { object, .. }
            | Self::TokenRefused { object, .. }
            | Self::Convert { object, .. }
            | Self::Object { object, .. }
            | Self::Listing {
                pattern: object, ..
            } => Some(object),
            _ => None,
        }
    }

    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Invalid(_) | Self::Cloud(_) => Code::InvalidArgument,
            Self::Auth(e) if e.is_transient() => Code::Unavailable,
            Self::Auth(e) if matches!(**e, AuthError::NotConfigured { .. }) => {
                Code::FailedPrecondition
            }
            Self::Auth(_) | Self::TokenRefused { .. } => Code::Unauthenticated,
            Self::KeyVault { error, .. } | Self::Listing { error, .. } if error.is_transient() => {
                Code::Unavailable
            }
            Self::KeyVault { error, .. } | Self::Listing { error, .. } => match &**error {
                KeyVaultError::Transport(t) if t.kind == FailureKind::Dns => Code::NotFound,
                KeyVaultError::Transport(t) if t.kind == FailureKind::Redirect => Code::Unavailable,
                KeyVaultError::Status { status: 404, .. } => Code::NotFound,
                KeyVaultError::Status { status: 401, .. } => Code::Unauthenticated,
                KeyVaultError::Status { status: 403, .. } => Code::PermissionDenied,
                KeyVaultError::Status { status: 400, .. } => Code::InvalidArgument,
                _ => Code::Internal,
            },
            Self::Convert { .. } | Self::Object { .. } => Code::FailedPrecondition,
            Self::Timeout(_) => Code::DeadlineExceeded,
            Self::Busy(_) => Code::Unavailable,
            Self::TooLarge { .. } => Code::ResourceExhausted,
        }
    }
}

impl From<MountError> for Status {
    fn from(err: MountError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(status: u16, inner: Option<&str>) -> MountError {
        MountError::KeyVault {
            vault: "kv1".into(),
            kind: ObjectKind::Secret,
            object: "db".into(),
            error: Arc::new(KeyVaultError::Status {
                status,
                code: "Code".into(),
                inner: inner.map(str::to_owned),
                message: "msg".into(),
                claims: None,
            }),
        }
    }

    #[test]
    fn only_transient_failures_are_unavailable() {
        assert_eq!(kv(429, None).code(), Code::Unavailable);
        assert_eq!(kv(503, None).code(), Code::Unavailable);
        assert_eq!(kv(404, None).code(), Code::NotFound);
        assert_eq!(
            kv(403, Some("ForbiddenByRbac")).code(),
            Code::PermissionDenied
        );
        assert_eq!(
            MountError::Invalid(vec![crate::mount::findings::Finding::objects("x".into())]).code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn messages_name_vault_object_and_fix() {
        let msg = kv(403, Some("ForbiddenByRbac")).to_string();
        assert!(
            msg.starts_with("secret \"db\" from vault kv1: HTTP 403 Code (ForbiddenByRbac): msg"),
            "{msg}"
        );
        assert!(msg.contains("Key Vault Secrets User"), "{msg}");
        let dns = MountError::KeyVault {
            vault: "nope".into(),
            kind: ObjectKind::Secret,
            object: "db".into(),
            error: Arc::new(KeyVaultError::Transport(
                crate::http::TransportError::from_parts(
                    "nope.vault.azure.net".into(),
                    FailureKind::Dns,
                    "DNS lookup of nope.vault.azure.net failed: x".into(),
                ),
            )),
        };
        assert!(
            dns.to_string().contains("nope.vault.azure.net")
                && dns.to_string().contains("does not exist")
        );
        assert_eq!(dns.code(), Code::NotFound);
    }
}
