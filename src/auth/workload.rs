//! Workload identity: the pod's service-account token exchanged for a Key Vault token through a
//! federated identity credential (README, "Identity modes").

use super::assertion::Assertion;
use super::cache::CacheKey;
use super::entra::{Requester, request_token};
use super::{AccessToken, AuthError, EntraContext, Peer, Planned, TokenContext};
use crate::cloud::CloudEnvironment;

/// The mode's name as users know it.
pub(super) const NAME: &str = "workload identity";

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The cache key and token request of workload identity.
pub(super) fn plan(ctx: TokenContext, client_id: &str, assertion: &Assertion) -> Planned {
    let key = cache_key(&ctx.cloud, &ctx.tenant, client_id, assertion);
    let fetch = token(
        ctx.entra,
        Peer::Entra,
        NAME,
        ctx.cloud,
        ctx.tenant,
        client_id.to_owned(),
        assertion.clone(),
    );
    (key, Box::pin(fetch))
}

/// Tokens are shared by every pod presenting the same issuer and subject for the same identity.
pub(super) fn cache_key(
    cloud: &CloudEnvironment,
    tenant: &str,
    client_id: &str,
    assertion: &Assertion,
) -> CacheKey {
    CacheKey::Workload {
        authority: cloud.authority.clone(),
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        scope: cloud.key_vault_scope(),
        issuer: assertion.issuer.clone(),
        subject: assertion.subject.clone(),
    }
}

/// Exchanges the assertion for a token. `mode` names the identity mode in errors (workload identity,
/// or identity binding, which sends the same grant through the AKS token proxy).
pub(super) async fn token(
    entra: EntraContext,
    peer: Peer,
    mode: &'static str,
    cloud: CloudEnvironment,
    tenant: String,
    client_id: String,
    assertion: Assertion,
) -> Result<AccessToken, AuthError> {
    let form = [
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.token()),
    ];
    let requester = Requester {
        peer,
        mode,
        tenant: &tenant,
        client_id: &client_id,
        hint: &|codes| hint(codes, &client_id, &assertion),
    };
    request_token(&entra, &cloud, &requester, &form).await
}

/// What to do about the errors users meet most.
fn hint(codes: &[u64], client_id: &str, assertion: &Assertion) -> Option<String> {
    let federate = || {
        format!(
            "The pod presented issuer {iss:?} and subject {sub:?}. Federate them with the identity: \
             az identity federated-credential create --name <name> --identity-name <identity-name> \
             --resource-group <resource-group> --issuer {iss} --subject {sub} --audience \
             api://AzureADTokenExchange (for an app registration: az ad app federated-credential create \
             --id {client_id} --parameters '{{\"name\":\"<name>\",\"issuer\":\"{iss}\",\"subject\":\"{sub}\",\
             \"audiences\":[\"api://AzureADTokenExchange\"]}}')",
            iss = assertion.issuer,
            sub = assertion.subject,
        )
    };
    codes.iter().find_map(|code| match code {
        70021 | 700211 | 700212 | 700213 => Some(federate()),
        700016 => Some(format!(
            "No application or managed identity with client ID {client_id} exists in this tenant: check \
             clientID and tenantID in the SecretProviderClass"
        )),
        90002 => Some("The tenant does not exist: check tenantID in the SecretProviderClass".to_owned()),
        700024 => Some(
            "The service-account token is outside its validity period: check the node's clock".to_owned(),
        ),
        _ => None,
    })
}
