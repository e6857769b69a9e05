//! Service principal: an app registration's client id and secret from the SecretProviderClass's
//! `nodePublishSecretRef` Secret (spec 3.2).

use secrecy::{ExposeSecret, SecretString};

use super::entra::{TokenFailure, request_token};
use super::{AccessToken, AuthError};
use crate::cloud::CloudEnvironment;

/// Client-secret grant.
pub async fn token(
    http: &reqwest::Client,
    cloud: &CloudEnvironment,
    tenant: &str,
    client_id: &str,
    client_secret: &SecretString,
) -> Result<AccessToken, AuthError> {
    let form = [
        ("client_id", client_id),
        ("client_secret", client_secret.expose_secret()),
    ];
    match request_token(http, cloud, tenant, &form).await {
        Ok(token) => Ok(token),
        Err(TokenFailure::Other(e)) => Err(*e),
        Err(TokenFailure::Refused {
            status,
            codes,
            description,
        }) => {
            let hint = codes.iter().find_map(|code| match code {
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
            });
            Err(AuthError::Entra {
                mode: "service principal",
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                status,
                codes,
                description,
                hint,
            })
        }
    }
}
