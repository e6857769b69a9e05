//! The Entra ID token endpoint (`{authority}{tenant}/oauth2/v2.0/token`), shared by every mode that
//! sends a client credential: a federated assertion or a client secret.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{
    AccessToken, AuthError, EntraContext, MAX_TOKEN_BODY, NumberOrString, Peer, unusable_token,
};
use crate::cloud::CloudEnvironment;
use crate::http::{TransportError, excerpt, host_of, read_body};
use crate::throttle::Refused;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    /// Entra sends a number; ADFS and some proxies send a string.
    #[serde(default)]
    expires_in: Option<NumberOrString>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// A failed token request: Entra's refusal (before the mode adds its hint), or anything else.
enum TokenFailure {
    Refused {
        status: u16,
        retry_after: Option<Duration>,
        codes: Vec<u64>,
        description: String,
    },
    Other(Box<AuthError>),
}

/// Who is asking, for error messages, and what to advise for Entra's error codes.
pub(crate) struct Requester<'a> {
    /// Where the request goes: Entra ID, or the AKS token proxy in front of it.
    pub(crate) peer: Peer,
    pub(crate) mode: &'static str,
    pub(crate) tenant: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) hint: &'a (dyn Fn(&[u64]) -> Option<String> + Sync),
}

/// POSTs a client-credentials grant. `form` holds the credential fields; `client_id`, `scope` and
/// `grant_type` are added here. Entra's refusals become [`AuthError::Entra`] with the requester's hint.
///
/// Requests to one authority go through its gate: when Entra throttles (429), every Mount of the
/// node waits for its `Retry-After` and one request goes first afterwards (see [`crate::throttle`]).
pub(crate) async fn request_token(
    entra: &EntraContext,
    cloud: &CloudEnvironment,
    requester: &Requester<'_>,
    form: &[(&str, &str)],
) -> Result<AccessToken, AuthError> {
    let host = host_of(&cloud.authority);
    let result =
        loop {
            let pass =
                entra.gates.enter(&host, entra.deadline).await.map_err(
                    |refused| match refused {
                        Refused::Throttled { remaining } => AuthError::Throttled {
                            peer: requester.peer,
                            host: host.clone(),
                            remaining,
                        },
                        // Not throttling: the authority is slow and this node's requests to it are
                        // all taken.
                        Refused::Busy => AuthError::Busy {
                            peer: requester.peer,
                            host: host.clone(),
                        },
                    },
                )?;
            match post(entra, cloud, requester, form).await {
                Err(TokenFailure::Refused {
                    status: 429,
                    retry_after,
                    ..
                }) => {
                    let wait = pass.throttled(retry_after);
                    tracing::warn!(host = %host, ?wait, "Entra ID is throttling token requests");
                }
                other => {
                    pass.succeeded();
                    break other;
                }
            }
        };
    match result {
        Ok(token) => Ok(token),
        Err(TokenFailure::Other(e)) => Err(*e),
        Err(TokenFailure::Refused {
            status,
            codes,
            description,
            ..
        }) => Err(AuthError::Entra {
            peer: requester.peer,
            host,
            mode: requester.mode,
            tenant: requester.tenant.to_owned(),
            client_id: requester.client_id.to_owned(),
            status,
            hint: (requester.hint)(&codes),
            codes,
            description,
        }),
    }
}

async fn post(
    entra: &EntraContext,
    cloud: &CloudEnvironment,
    requester: &Requester<'_>,
    form: &[(&str, &str)],
) -> Result<AccessToken, TokenFailure> {
    let (peer, tenant, client_id) = (requester.peer, requester.tenant, requester.client_id);
    let url = format!("{}{tenant}/oauth2/v2.0/token", cloud.authority);
    let scope = cloud.key_vault_scope();
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", &scope),
    ];
    fields.extend_from_slice(form);
    if let Some(claims) = &entra.claims {
        fields.push(("claims", claims));
    }
    let transport = |error| TokenFailure::Other(Box::new(AuthError::Transport { peer, error }));
    let response = entra
        .http
        .post(&url)
        .form(&fields)
        .timeout(crate::http::until(entra.deadline))
        .send()
        .await
        .map_err(|e| transport(TransportError::new(&url, e)))?;
    let status = response.status();
    let retry_after = crate::http::retry_after(response.headers());
    let body = read_body(&url, response, MAX_TOKEN_BODY)
        .await
        .map_err(transport)?;
    if status.is_success() {
        let host = host_of(&url);
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            TokenFailure::Other(Box::new(AuthError::Decode {
                peer,
                host: host.clone(),
                reason: format!("token response is not the expected JSON: {e}"),
            }))
        })?;
        let lifetime = token
            .expires_in
            .as_ref()
            .and_then(NumberOrString::as_u64)
            .unwrap_or(3599);
        return AccessToken::new(token.access_token, Duration::from_secs(lifetime))
            .ok_or_else(|| TokenFailure::Other(Box::new(unusable_token(peer, &host))));
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(err) => Err(TokenFailure::Refused {
            status: status.as_u16(),
            retry_after,
            codes: err.error_codes,
            description: clean_description(&err.error, &err.error_description),
        }),
        Err(_) => Err(TokenFailure::Refused {
            status: status.as_u16(),
            retry_after,
            codes: Vec::new(),
            description: format!("HTTP {status} with a non-JSON body: {}", excerpt(&body)),
        }),
    }
}

/// Entra descriptions end in `\r\nTrace ID: … Correlation ID: … Timestamp: …` lines; keep them
/// (support asks for them) but on one line.
fn clean_description(error: &str, description: &str) -> String {
    let d = description
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if d.is_empty() { error.to_owned() } else { d }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_folded_onto_one_line() {
        assert_eq!(
            clean_description(
                "invalid_client",
                "AADSTS70021: No match.\r\nTrace ID: x\r\n"
            ),
            "AADSTS70021: No match. Trace ID: x"
        );
        assert_eq!(clean_description("invalid_client", ""), "invalid_client");
    }

    #[test]
    fn expires_in_may_be_a_string() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":"86399"}"#).unwrap();
        assert_eq!(t.expires_in.and_then(|e| e.as_u64()), Some(86399));
    }
}
