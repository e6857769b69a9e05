//! The node's managed identity through IMDS (README, "Identity modes"): system-assigned, or a user-assigned identity
//! by client id (the node pool's, or the one the AKS Key Vault add-on creates).
//!
//! IMDS is slow or briefly unavailable at times (and answers 404/410 while an identity is being
//! assigned), so transient answers are retried with exponential backoff; the Mount deadline bounds
//! the whole. Its 400 answers are turned into the fix an operator needs.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;

use super::cache::CacheKey;
use super::{
    AccessToken, AuthError, MAX_TOKEN_BODY, NumberOrString, Peer, Planned, TokenContext,
    unusable_token,
};
use crate::http::{FailureKind, TransportError, excerpt, host_of, read_body};
use crate::retry::{Backoff, Failure, Policy};

/// IMDS token path under the endpoint.
const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// Five attempts, 400 ms apart and doubling; IMDS sends no `Retry-After`.
const RETRY: Policy = Policy {
    attempts: 5,
    backoff: Backoff::new(Duration::from_millis(400), Duration::from_secs(60)),
    max_retry_after: Duration::from_secs(60),
};

#[derive(Deserialize)]
struct ImdsToken {
    access_token: SecretString,
    /// IMDS sends numbers as strings.
    #[serde(default)]
    expires_in: Option<NumberOrString>,
}

#[derive(Deserialize)]
struct ImdsError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 410 | 429) || status.is_server_error()
}

/// The mode's name as users know it.
pub(super) const NAME: &str = "VM managed identity";

/// The cache key and token request of the node's managed identity (`None`: system-assigned).
pub(super) fn plan(ctx: TokenContext, client_id: Option<&str>) -> Planned {
    let key = CacheKey::ManagedIdentity {
        endpoint: ctx.endpoints.imds.clone(),
        identity: client_id.unwrap_or_default().to_owned(),
        resource: ctx.cloud.key_vault_resource.clone(),
    };
    let fetch = token(
        ctx.local_http,
        ctx.endpoints.imds,
        ctx.cloud.key_vault_resource,
        client_id.map(str::to_owned),
        ctx.deadline,
    );
    (key, Box::pin(fetch))
}

/// A token for `resource` from IMDS at `endpoint` (e.g. `http://169.254.169.254`).
pub(crate) async fn token(
    http: reqwest::Client,
    endpoint: String,
    resource: String,
    client_id: Option<String>,
    deadline: Instant,
) -> Result<AccessToken, AuthError> {
    let (http, endpoint, resource, client_id) = (
        &http,
        endpoint.as_str(),
        resource.as_str(),
        client_id.as_deref(),
    );
    let url = format!("{}{TOKEN_PATH}", endpoint.trim_end_matches('/'));
    let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
    if let Some(id) = client_id {
        query.push(("client_id", id));
    }
    let identity = client_id.map_or_else(
        || "system-assigned".to_owned(),
        |id| format!("user-assigned {id}"),
    );
    crate::retry::run(&RETRY, "IMDS", deadline, |_| {
        attempt_once(http, &url, &query, endpoint, &identity, client_id, deadline)
    })
    .await
}

/// How one IMDS request failed: transient when IMDS is unreachable, or answers 404/410 while an
/// identity is assigned, 429 or 5xx.
type Attempt = Failure<AuthError>;

fn transient(error: AuthError) -> Attempt {
    Failure::Transient {
        error,
        retry_after: None,
    }
}

async fn attempt_once(
    http: &reqwest::Client,
    url: &str,
    query: &[(&str, &str)],
    endpoint: &str,
    identity: &str,
    client_id: Option<&str>,
    deadline: Instant,
) -> Result<AccessToken, Attempt> {
    let unreachable = |error: TransportError| AuthError::ImdsUnreachable {
        identity: identity.to_owned(),
        endpoint: endpoint.to_owned(),
        error,
    };
    let response = http
        .get(url)
        .query(query)
        .header("Metadata", "true")
        .timeout(crate::http::until(deadline))
        .send()
        .await
        .map_err(|e| transient(unreachable(TransportError::new(url, e))))?;
    let status = response.status();
    let body = read_body(url, response, MAX_TOKEN_BODY)
        .await
        .map_err(|e| {
            if e.kind != FailureKind::Redirect {
                transient(unreachable(e))
            } else {
                Failure::Final(unreachable(e))
            }
        })?;
    if status.is_success() {
        let decode = |reason: String| {
            Failure::Final(AuthError::Decode {
                peer: Peer::Imds,
                host: host_of(url),
                reason,
            })
        };
        let token: ImdsToken = serde_json::from_slice(&body)
            .map_err(|e| decode(format!("token response is not the expected JSON: {e}")))?;
        let lifetime = token
            .expires_in
            .as_ref()
            .and_then(NumberOrString::as_u64)
            .unwrap_or(3600);
        return AccessToken::new(token.access_token, Duration::from_secs(lifetime))
            .ok_or_else(|| Failure::Final(unusable_token(Peer::Imds, &host_of(url))));
    }
    let description = serde_json::from_slice::<ImdsError>(&body)
        .map(|e| {
            if e.error_description.is_empty() {
                e.error
            } else {
                e.error_description
            }
        })
        .unwrap_or_else(|_| excerpt(&body));
    let err = AuthError::Imds {
        identity: identity.to_owned(),
        status: status.as_u16(),
        hint: hint(&description, client_id),
        description,
    };
    Err(if is_transient(status) {
        transient(err)
    } else {
        Failure::Final(err)
    })
}

fn hint(description: &str, client_id: Option<&str>) -> Option<String> {
    let d = description.to_ascii_lowercase();
    if d.contains("identity not found") {
        return Some(match client_id {
            Some(id) => format!(
                "The identity with client ID {id} is not assigned to this node's VM scale set: assign it \
                 with az vmss identity assign --resource-group <node-resource-group> --name <vmss-name> \
                 --identities <identity-resource-id>, or check userAssignedIdentityID"
            ),
            None => {
                "This node has no system-assigned identity: enable it on the VM scale set or set \
                     userAssignedIdentityID to a user-assigned identity of the node pool"
                    .to_owned()
            }
        });
    }
    if d.contains("multiple user assigned identities") {
        return Some(
            "Several identities are assigned to this node: set userAssignedIdentityID in the \
             SecretProviderClass to the client ID of the one to use"
                .to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_the_common_imds_errors() {
        assert!(
            hint("Identity not found", Some("abc"))
                .unwrap()
                .contains("az vmss identity assign")
        );
        assert!(
            hint("Identity not found", None)
                .unwrap()
                .contains("system-assigned")
        );
        assert!(
            hint(
                "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
                None
            )
            .unwrap()
            .contains("userAssignedIdentityID")
        );
        assert!(hint("Required metadata header not specified", None).is_none());
    }

    /// A token request to `endpoint` with a deadline too close for a second attempt.
    async fn one_attempt(endpoint: &str) -> AuthError {
        let http =
            crate::http::build_local_client(&crate::http::HttpSettings::for_tests()).unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        token(
            http,
            endpoint.to_owned(),
            "https://vault.azure.net".into(),
            None,
            deadline,
        )
        .await
        .unwrap_err()
    }

    /// IMDS refusing connections is a transport failure (metrics class and retries), named as
    /// IMDS with the advice for reaching it.
    #[tokio::test]
    async fn a_refused_connection_is_a_transport_failure() {
        // A port that was just free: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let endpoint = format!("http://{closed}");
        let err = one_attempt(&endpoint).await;
        assert!(matches!(err, AuthError::ImdsUnreachable { .. }), "{err:?}");
        assert_eq!(err.class(), crate::metrics::ErrorClass::Transport);
        assert!(err.is_transient());
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "the node's managed identity (system-assigned) could not get a token: cannot reach \
                 IMDS at {endpoint}: request to 127.0.0.1 failed: "
            )) && msg.ends_with("the node must be an Azure VM"),
            "{msg}"
        );
    }

    /// An IMDS that accepts the connection and never answers is a timeout, not a generic transport
    /// failure: the class comes from the transport error's kind.
    #[tokio::test]
    async fn no_answer_is_a_timeout() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let err = one_attempt(&endpoint).await;
        assert_eq!(err.class(), crate::metrics::ErrorClass::Timeout, "{err}");
        assert!(
            err.to_string().contains("127.0.0.1 did not answer in time"),
            "{err}"
        );
    }
}
