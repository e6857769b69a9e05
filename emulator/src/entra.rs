//! Entra ID's v2.0 token endpoint (spec 3.1, 3.2): `POST /{tenant}/oauth2/v2.0/token` with the
//! client-credentials grant, authenticated by a federated client assertion (a service-account
//! JWT matched against the app's federated credentials on issuer, subject and audience, its
//! signature checked when the emulator holds the issuer's key) or by a client secret; plus
//! `GET /{tenant}/v2.0/.well-known/openid-configuration`, which MSAL-based clients fetch first.
//!
//! Failures use Entra's error envelope as recorded (AADSTS70021, AADSTS7000215), with the
//! presented claims substituted. The checks run in the order users meet them: tenant, grant,
//! scope, client, then the credential.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::clock::{now, rfc3339};
use crate::http::{Resp, json_response, read_body, set_header};
use crate::issuer::{self, Verdict};
use crate::recorded::replace_between;
use crate::state::Shared;

/// The `client_assertion_type` of a federated (JWT bearer) client credential.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra error in the recorded envelope (`error`, `error_description` with trace/correlation
/// lines, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`).
fn aad_error(shared: &Shared, status: u16, error: &str, code: u64, text: &str) -> Resp {
    let mut body = shared.recorded.fic_mismatch.clone();
    let recorded_description = body["error_description"].as_str().unwrap_or_default();
    let tail = recorded_description
        .find("\r\nTrace ID:")
        .map(|i| recorded_description[i..].to_owned())
        .unwrap_or_default();
    body["error"] = error.into();
    body["error_description"] = format!("AADSTS{code}: {text}{tail}").into();
    body["error_codes"] = json!([code]);
    body["error_uri"] = format!("https://login.microsoftonline.com/error?code={code}").into();
    json_response(status, &body)
}

fn missing_parameter(shared: &Shared, name: &str) -> Resp {
    aad_error(
        shared,
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// The Key Vault resource an Entra authority host issues tokens for; `None` for non-Entra hosts
/// (the AKS token proxy forwards to whatever cloud it is in).
fn kv_resource_for_login(host: &str) -> Option<String> {
    let suffix = host.strip_prefix("login.")?;
    Some(
        match suffix {
            "microsoftonline.com" | "windows.net" => "https://vault.azure.net",
            "microsoftonline.us" => "https://vault.usgovcloudapi.net",
            "chinacloudapi.cn" => "https://vault.azure.cn",
            "microsoftonline.de" => "https://vault.microsoftazure.de",
            other => return Some(format!("https://vault.{other}")),
        }
        .to_owned(),
    )
}

fn openid_configuration(host: &str, tenant: &str) -> Resp {
    let base = format!("https://{host}/{tenant}");
    json_response(
        200,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "issuer": format!("{base}/v2.0"),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "WW",
        }),
    )
}

/// Handles a request routed to Entra (a `login.*` host, or the AKS token proxy's path).
pub(crate) async fn handle(req: Request<Incoming>, host: &str, shared: &Arc<Shared>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let trimmed = path.trim_start_matches('/');
    if let Some(tenant) = trimmed.strip_suffix("/v2.0/.well-known/openid-configuration") {
        return openid_configuration(host, tenant);
    }
    let Some(tenant) = trimmed
        .strip_suffix("/oauth2/v2.0/token")
        .filter(|t| !t.is_empty() && !t.contains('/'))
        .map(str::to_owned)
    else {
        return json_response(404, &json!({ "error": "not_found", "path": path }));
    };
    if method != hyper::Method::POST {
        return aad_error(
            shared,
            400,
            "invalid_request",
            900561,
            &format!("The endpoint only accepts POST requests. Received a {method} request."),
        );
    }
    let Some(body) = read_body(req.into_body()).await else {
        return aad_error(
            shared,
            400,
            "invalid_request",
            900144,
            "The request body could not be read.",
        );
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let latency = shared.lock().token_latency;
    if !latency.is_zero() {
        {
            let mut s = shared.lock();
            s.token_in_flight += 1;
            s.counters.token_in_flight_max = s.counters.token_in_flight_max.max(s.token_in_flight);
        }
        // Counted out again even if the client goes away mid-sleep.
        struct Leave<'a>(&'a Shared);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.lock().token_in_flight -= 1;
            }
        }
        let _leave = Leave(shared);
        tokio::time::sleep(latency).await;
    }
    token(shared, host, &tenant, form)
}

fn token(shared: &Shared, host: &str, tenant: &str, form: HashMap<String, String>) -> Resp {
    let mut s = shared.lock();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    s.token_requests.push(client_id.clone());
    *s.counters
        .token_requests
        .entry(client_id.clone())
        .or_default() += 1;
    s.last_token_form = Some(form.clone());
    s.last_token_host = Some(host.to_owned());
    if let Some((status, body)) = s.token_answers.pop_front() {
        return json_response(status, &body);
    }
    let known_tenant = s.federated.iter().any(|f| f.tenant == tenant)
        || s.client_secrets.keys().any(|k| k.0 == tenant);
    if !known_tenant {
        return aad_error(
            shared,
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    }
    let Some(grant_type) = form.get("grant_type") else {
        return missing_parameter(shared, "grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            shared,
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(scope) = form.get("scope") else {
        return missing_parameter(shared, "scope");
    };
    let Some(resource) = default_scope_resource(scope) else {
        return aad_error(
            shared,
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    if let Some(expected) = kv_resource_for_login(host)
        && resource.trim_end_matches('/') != expected
    {
        return aad_error(
            shared,
            400,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        );
    }
    if client_id.is_empty() {
        return missing_parameter(shared, "client_id");
    }
    let known_client = s
        .federated
        .iter()
        .any(|f| f.tenant == tenant && f.client_id == client_id)
        || s.client_secrets
            .contains_key(&(tenant.to_owned(), client_id.clone()));
    if !known_client {
        return aad_error(
            shared,
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return aad_error(
                shared,
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type: expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            );
        }
        if let Some(rejection) = check_assertion(shared, &s, tenant, &client_id, assertion) {
            return rejection;
        }
    } else if let Some(secret) = form.get("client_secret") {
        if s.client_secrets
            .get(&(tenant.to_owned(), client_id.clone()))
            != Some(secret)
        {
            let (status, body) = &shared.recorded.bad_secret;
            return json_response(*status, body);
        }
    } else {
        return aad_error(
            shared,
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let lifetime = s.token_lifetime;
    let token = s.mint(tenant, &client_id, Some(resource.to_owned()), lifetime);
    if let Some(issued) = s.tokens.get_mut(&token) {
        issued.claims = form.get("claims").cloned();
    }
    let mut body = shared.recorded.token_ok.clone();
    body["token_type"] = "Bearer".into();
    body["expires_in"] = lifetime.into();
    body["ext_expires_in"] = lifetime.into();
    body["access_token"] = token.into();
    let mut r = json_response(200, &body);
    set_header(&mut r, "cache-control", "no-store, no-cache");
    r
}

/// A federated client assertion: well-formed, in its validity window, matching a federated
/// credential of the app, and (when the emulator knows the issuer's key) genuinely signed. `None`
/// if it is, else Entra's answer.
fn check_assertion(
    shared: &Shared,
    s: &crate::state::State,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> Option<Resp> {
    let Some(claims) = issuer::claims(assertion) else {
        return Some(aad_error(
            shared,
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    let aud: Vec<String> = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let nbf = claims["nbf"]
        .as_i64()
        .or_else(|| claims["iat"].as_i64())
        .unwrap_or(exp);
    let t = now();
    // Entra allows five minutes of clock skew on nbf.
    if exp <= t || nbf > t.saturating_add(300) {
        return Some(aad_error(
            shared,
            400,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                rfc3339(t),
                rfc3339(nbf),
                rfc3339(exp)
            ),
        ));
    }
    let app_credentials: Vec<_> = s
        .federated
        .iter()
        .filter(|f| f.tenant == tenant && f.client_id == client_id)
        .collect();
    if !app_credentials.iter().any(|f| f.issuer == iss) {
        return Some(aad_error(
            shared,
            400,
            "invalid_request",
            700211,
            &format!(
                "No matching federated identity record found for presented assertion issuer '{iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
            ),
        ));
    }
    let matched = app_credentials
        .iter()
        .any(|f| f.issuer == iss && f.subject == sub && aud.contains(&f.audience));
    if !matched {
        let mut body = shared.recorded.fic_mismatch.clone();
        let description = body["error_description"].as_str().unwrap_or_default();
        let description = replace_between(description, "Assertion Issuer: '", "'.", &iss);
        let description = replace_between(&description, "Assertion Subject: '", "'.", &sub);
        let description =
            replace_between(&description, "Assertion Audience: '", "'.", &aud.join(","));
        body["error_description"] = description.into();
        return Some(json_response(400, &body));
    }
    // Issuers the emulator has no key of are trusted on their claims (it cannot fetch a JWKS).
    let verdict = match (s.issuers.get(&iss), s.jwks.get(&iss)) {
        (Some(own), _) => Some(own.verify(assertion)),
        (None, Some(jwks)) => Some(jwks.verify(assertion)),
        (None, None) => None,
    };
    if let Some(verdict) = verdict {
        let reason = match verdict {
            Verdict::Valid => return None,
            Verdict::KeyNotFound => "The key was not found.",
            Verdict::BadSignature => {
                "The provided signature value did not match the expected signature value."
            }
        };
        return Some(aad_error(
            shared,
            401,
            "invalid_client",
            700027,
            &format!("Client assertion contains an invalid signature. [Reason - {reason}]"),
        ));
    }
    None
}

/// The resource of a client-credentials `scope`: exactly one `{resource}/.default`, beside which the
/// OpenID Connect scopes may stand. MSAL adds `openid offline_access profile` to every token request
/// (Azure's provider v1.8.2, through MSAL Go, sends `https://vault.azure.net/.default openid
/// offline_access profile`), and Entra ID issues the client-credentials token all the same.
fn default_scope_resource(scope: &str) -> Option<&str> {
    const OIDC: [&str; 4] = ["openid", "offline_access", "profile", "email"];
    let mut resources = scope
        .split(' ')
        .filter(|s| !s.is_empty() && !OIDC.contains(s));
    let only = resources.next()?;
    if resources.next().is_some() {
        return None;
    }
    only.strip_suffix("/.default").filter(|r| !r.is_empty())
}
