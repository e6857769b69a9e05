//! The node's managed identity through IMDS (spec 3.3): system-assigned, or a user-assigned identity
//! by client id (the node pool's, or the one the AKS Key Vault add-on creates).
//!
//! IMDS is slow or briefly unavailable at times (and answers 404/410 while an identity is being
//! assigned), so transient answers are retried with exponential backoff; the Mount deadline bounds
//! the whole. Its 400 answers are turned into the fix an operator needs.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;

use super::{AccessToken, AuthError};

/// IMDS token path under the endpoint.
const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(400);

#[derive(Deserialize)]
struct ImdsToken {
    access_token: SecretString,
    /// IMDS sends numbers as strings.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ImdsError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Reads a number that may be sent as a JSON string.
pub(crate) fn lenient_u64(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 410 | 429) || status.is_server_error()
}

/// A token for `resource` from IMDS at `endpoint` (e.g. `http://169.254.169.254`).
pub async fn token(
    http: &reqwest::Client,
    endpoint: &str,
    resource: &str,
    client_id: Option<&str>,
) -> Result<AccessToken, AuthError> {
    let url = format!("{}{TOKEN_PATH}", endpoint.trim_end_matches('/'));
    let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
    if let Some(id) = client_id {
        query.push(("client_id", id));
    }
    let identity = client_id.map_or_else(
        || "system-assigned".to_owned(),
        |id| format!("user-assigned {id}"),
    );
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let result = http
            .get(&url)
            .query(&query)
            .header("Metadata", "true")
            .send()
            .await;
        let failure = match result {
            Err(e) => AuthError::Imds {
                identity: identity.clone(),
                status: None,
                description: format!(
                    "cannot reach IMDS at {endpoint}: {}",
                    crate::http::describe_transport_error(&e)
                ),
                hint: Some(
                    "the provider needs hostNetwork: true to reach IMDS, and the node must be an Azure VM"
                        .to_owned(),
                ),
            },
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await.unwrap_or_default();
                if status.is_success() {
                    let token: ImdsToken = serde_json::from_slice(&body).map_err(|e| AuthError::Decode {
                        host: endpoint.to_owned(),
                        reason: format!("IMDS token response is not the expected JSON: {e}"),
                    })?;
                    let lifetime = lenient_u64(token.expires_in.as_ref()).unwrap_or(3600);
                    return Ok(AccessToken::new(token.access_token, Duration::from_secs(lifetime)));
                }
                let description = serde_json::from_slice::<ImdsError>(&body)
                    .map(|e| if e.error_description.is_empty() { e.error } else { e.error_description })
                    .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned());
                let err = AuthError::Imds {
                    identity: identity.clone(),
                    status: Some(status.as_u16()),
                    hint: hint(&description, client_id),
                    description,
                };
                if !is_transient(status) {
                    return Err(err);
                }
                err
            }
        };
        if attempt >= ATTEMPTS {
            return Err(failure);
        }
        tracing::debug!(attempt, error = %failure, ?backoff, "retrying IMDS");
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
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

    #[test]
    fn numbers_may_be_strings() {
        assert_eq!(lenient_u64(Some(&serde_json::json!("86399"))), Some(86399));
        assert_eq!(lenient_u64(Some(&serde_json::json!(5))), Some(5));
        assert_eq!(lenient_u64(Some(&serde_json::json!(null))), None);
    }
}
