//! aad-pod-identity (deprecated): the NMI daemon on the node issues tokens for the identity bound to
//! the pod (README, "Identity modes"). Kept for clusters that have not migrated to workload identity yet.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::cache::CacheKey;
use super::{
    AccessToken, AuthError, MAX_TOKEN_BODY, NumberOrString, Peer, Planned, TokenContext,
    unusable_token,
};
use crate::http::{TransportError, excerpt, host_of, read_body};

#[derive(Deserialize)]
struct NmiResponse {
    token: NmiToken,
}

#[derive(Deserialize)]
struct NmiToken {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<NumberOrString>,
    #[serde(default)]
    expires_on: Option<NumberOrString>,
}

/// The mode's name as users know it.
pub(super) const NAME: &str = "pod identity";

/// The cache key and token request of aad-pod-identity for the pod `namespace/pod`.
pub(super) fn plan(ctx: TokenContext, namespace: &str, pod: &str) -> Planned {
    let key = CacheKey::PodIdentity {
        endpoint: ctx.endpoints.nmi.clone(),
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        resource: ctx.cloud.key_vault_resource.clone(),
    };
    let fetch = token(
        ctx.local_http,
        ctx.endpoints.nmi,
        ctx.cloud.key_vault_resource,
        namespace.to_owned(),
        pod.to_owned(),
        ctx.deadline,
    );
    (key, Box::pin(fetch))
}

/// A token for `resource` for the pod `namespace/pod` from NMI at `endpoint`.
pub(crate) async fn token(
    http: reqwest::Client,
    endpoint: String,
    resource: String,
    namespace: String,
    pod: String,
    deadline: std::time::Instant,
) -> Result<AccessToken, AuthError> {
    let (endpoint, resource, namespace, pod) = (
        endpoint.as_str(),
        resource.as_str(),
        namespace.as_str(),
        pod.as_str(),
    );
    let url = format!("{}/host/token/", endpoint.trim_end_matches('/'));
    let unreachable = |error: TransportError| AuthError::NmiUnreachable {
        pod: format!("{namespace}/{pod}"),
        endpoint: endpoint.to_owned(),
        error,
    };
    let response = http
        .get(&url)
        .query(&[("resource", resource)])
        .header("podns", namespace)
        .header("podname", pod)
        .timeout(crate::http::until(deadline))
        .send()
        .await
        .map_err(|e| unreachable(TransportError::new(&url, e)))?;
    let status = response.status();
    let body = read_body(&url, response, MAX_TOKEN_BODY)
        .await
        .map_err(unreachable)?;
    if !status.is_success() {
        let text = excerpt(&body);
        return Err(AuthError::PodIdentity {
            pod: format!("{namespace}/{pod}"),
            status: status.as_u16(),
            description: format!(
                "NMI answered HTTP {status}: {text}; check the AzureIdentity and AzureIdentityBinding for \
                 the pod's aadpodidbinding label (aad-pod-identity is deprecated: consider workload identity)"
            ),
        });
    }
    let parsed: NmiResponse = serde_json::from_slice(&body).map_err(|e| AuthError::Decode {
        peer: Peer::Nmi,
        host: host_of(&url),
        reason: format!("NMI token response is not the expected JSON: {e}"),
    })?;
    let token = parsed.token;
    let lifetime = token
        .expires_in
        .as_ref()
        .and_then(NumberOrString::as_u64)
        .or_else(|| {
            let on = token.expires_on.as_ref()?.as_u64()?;
            Some(on.saturating_sub(super::assertion::unix_now().max(0) as u64))
        })
        .unwrap_or(300);
    AccessToken::new(token.access_token, Duration::from_secs(lifetime))
        .ok_or_else(|| unusable_token(Peer::Nmi, &host_of(&url)))
}
