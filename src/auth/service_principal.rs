//! Service principal: an app registration's client id and secret from the SecretProviderClass's
//! `nodePublishSecretRef` Secret (README, "Identity modes").

use secrecy::{ExposeSecret, SecretString};

use sha2::{Digest, Sha256};

use super::cache::CacheKey;
use super::entra::{Requester, request_token};
use super::{AccessToken, AuthError, EntraContext, Peer, Planned, TokenContext};
use crate::cloud::CloudEnvironment;

/// The mode's name as users know it.
pub(super) const NAME: &str = "service principal";

/// The cache key and token request of a service principal. The key holds the secret's digest, so
/// that a rotated secret never gets the old secret's token.
pub(super) fn plan(ctx: TokenContext, client_id: &str, client_secret: &SecretString) -> Planned {
    let key = CacheKey::ServicePrincipal {
        authority: ctx.cloud.authority.clone(),
        tenant: ctx.tenant.clone(),
        client_id: client_id.to_owned(),
        scope: ctx.cloud.key_vault_scope(),
        secret_sha256: Sha256::digest(client_secret.expose_secret().as_bytes()).into(),
    };
    let fetch = token(
        ctx.entra,
        ctx.cloud,
        ctx.tenant,
        client_id.to_owned(),
        client_secret.clone(),
    );
    (key, Box::pin(fetch))
}

/// Client-secret grant.
async fn token(
    entra: EntraContext,
    cloud: CloudEnvironment,
    tenant: String,
    client_id: String,
    client_secret: SecretString,
) -> Result<AccessToken, AuthError> {
    let form = [("client_secret", client_secret.expose_secret())];
    let requester = Requester {
        peer: Peer::Entra,
        mode: NAME,
        tenant: &tenant,
        client_id: &client_id,
        hint: &|codes| hint(codes, &client_id),
    };
    request_token(&entra, &cloud, &requester, &form).await
}

/// What to do about the errors users meet most.
fn hint(codes: &[u64], client_id: &str) -> Option<String> {
    codes.iter().find_map(|code| match code {
        7000215 => Some(
            "The client secret in the nodePublishSecretRef Secret is wrong: store the secret's \
             value (not its ID) under the key clientsecret"
                .to_owned(),
        ),
        7000222 => Some(
            "The client secret has expired: create a new one and update the nodePublishSecretRef \
             Secret"
                .to_owned(),
        ),
        700016 => Some(format!(
            "No application with client ID {client_id} exists in this tenant: check clientid in \
             the nodePublishSecretRef Secret and tenantID in the SecretProviderClass"
        )),
        90002 => Some("The tenant does not exist: check tenantID".to_owned()),
        _ => None,
    })
}
