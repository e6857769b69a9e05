//! aad-pod-identity (deprecated): the NMI daemon on the node issues tokens for the identity bound to
//! the pod (spec 3.4). Kept for clusters that have not migrated to workload identity yet.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::managed_identity::lenient_u64;
use super::{AccessToken, AuthError};

#[derive(Deserialize)]
struct NmiResponse {
    token: NmiToken,
}

#[derive(Deserialize)]
struct NmiToken {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

/// A token for `resource` for the pod `namespace/pod` from NMI at `endpoint`.
pub async fn token(
    http: &reqwest::Client,
    endpoint: &str,
    resource: &str,
    namespace: &str,
    pod: &str,
) -> Result<AccessToken, AuthError> {
    let url = format!("{}/host/token/", endpoint.trim_end_matches('/'));
    let failure = |description: String, status: Option<u16>| AuthError::PodIdentity {
        pod: format!("{namespace}/{pod}"),
        status,
        description,
    };
    let response = http
        .get(&url)
        .query(&[("resource", resource)])
        .header("podns", namespace)
        .header("podname", pod)
        .send()
        .await
        .map_err(|e| {
            failure(
                format!(
                    "cannot reach NMI at {endpoint}: {}; is aad-pod-identity installed and the provider \
                     running with hostNetwork: true?",
                    crate::http::describe_transport_error(&e)
                ),
                None,
            )
        })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned();
        return Err(failure(
            format!(
                "NMI answered HTTP {status}: {text}; check the AzureIdentity and AzureIdentityBinding for \
                 the pod's aadpodidbinding label (aad-pod-identity is deprecated: consider workload identity)"
            ),
            Some(status.as_u16()),
        ));
    }
    let parsed: NmiResponse = serde_json::from_slice(&body).map_err(|e| AuthError::Decode {
        host: endpoint.to_owned(),
        reason: format!("NMI token response is not the expected JSON: {e}"),
    })?;
    let lifetime = lenient_u64(parsed.token.expires_in.as_ref())
        .or_else(|| {
            lenient_u64(parsed.token.expires_on.as_ref())
                .map(|on| on.saturating_sub(super::assertion::unix_now().max(0) as u64))
        })
        .unwrap_or(300);
    Ok(AccessToken::new(
        parsed.token.access_token,
        Duration::from_secs(lifetime),
    ))
}
