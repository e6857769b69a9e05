//! Identity binding: workload identity's grant sent through the AKS token proxy, which stands in
//! for the Entra authority (`--token-proxy-url`); scope and grant are unchanged.

use std::sync::Arc;

use super::assertion::Assertion;
use super::{AuthError, Peer, Planned, TokenContext, workload};
use crate::cloud::CloudEnvironment;

/// The mode's name as users know it.
pub(super) const NAME: &str = "identity binding";

/// The cache key and token request of identity binding; refused when the daemon has no proxy.
pub(super) fn plan(
    ctx: TokenContext,
    client_id: &str,
    assertion: &Assertion,
) -> Result<Planned, Arc<AuthError>> {
    let Some(proxy) = &ctx.endpoints.token_proxy else {
        return Err(Arc::new(AuthError::NotConfigured {
            what: "useAzureTokenProxy needs the provider started with --token-proxy-url (and \
                   --sni-name); set them in the provider DaemonSet"
                .to_owned(),
        }));
    };
    let proxied = CloudEnvironment {
        authority: proxy.clone(),
        ..ctx.cloud
    };
    let key = workload::cache_key(&proxied, &ctx.tenant, client_id, assertion);
    let fetch = workload::token(
        ctx.entra,
        Peer::TokenProxy,
        NAME,
        proxied,
        ctx.tenant,
        client_id.to_owned(),
        assertion.clone(),
    );
    Ok((key, Box::pin(fetch)))
}
