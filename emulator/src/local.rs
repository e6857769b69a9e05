//! The node-local token endpoints, plain HTTP like the real ones: IMDS
//! (`GET /metadata/identity/oauth2/token`, spec 3.3) and aad-pod-identity's NMI (`GET /host/token/`,
//! spec 3.4), on one port. Their tokens are issued by the same token table as Entra's, so the
//! emulated Key Vault accepts them and attributes requests to the managed identity.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Request;
use hyper::body::Incoming;
use serde_json::json;

use crate::clock::now;
use crate::http::{Resp, header, json_response, read_body, text_response};
use crate::state::Shared;

/// IMDS tokens live a day, as on Azure VMs; NMI's an hour.
const IMDS_LIFETIME: i64 = 86_399;
const NMI_LIFETIME: i64 = 3_599;

fn invalid(description: &str) -> Resp {
    json_response(
        400,
        &json!({ "error": "invalid_request", "error_description": description }),
    )
}

/// Handles one IMDS or NMI request.
pub(crate) async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Resp {
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    let metadata = header(&req, "metadata").as_deref() == Some("true");
    let podns = header(&req, "podns").unwrap_or_default();
    let podname = header(&req, "podname").unwrap_or_default();
    // Drain the body so keep-alive connections stay usable; its content is never used.
    let _ = read_body(req.into_body()).await;

    let mut s = shared.lock();
    s.counters.local_requests += 1;
    if let Some((status, body)) = s.local.answers.pop_front() {
        return json_response(status, &body);
    }
    let resource = query.get("resource").cloned().unwrap_or_default();
    let tenant = s.local_tenant();
    let t = now();
    if path == "/metadata/identity/oauth2/token" {
        if !metadata {
            s.local.missing_metadata_header += 1;
            return invalid("Required metadata header not specified");
        }
        if !query.contains_key("api-version") || resource.is_empty() {
            return invalid("Required query variable 'resource' is missing");
        }
        let principal = match query.get("client_id") {
            Some(id) if s.local.user.contains(id) || s.local.system.as_ref() == Some(id) => {
                id.clone()
            }
            Some(_) => return invalid("Identity not found"),
            None => match (&s.local.system, s.local.user.as_slice()) {
                (Some(system), _) => system.clone(),
                (None, [only]) => only.clone(),
                (None, []) => return invalid("Identity not found"),
                (None, _) => {
                    return invalid(
                        "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
                    );
                }
            },
        };
        let token = s.mint(&tenant, &principal, None, IMDS_LIFETIME);
        // Numbers as strings, as IMDS sends them.
        return json_response(
            200,
            &json!({
                "access_token": token, "client_id": principal,
                "expires_in": IMDS_LIFETIME.to_string(),
                "expires_on": (t + IMDS_LIFETIME).to_string(),
                "ext_expires_in": IMDS_LIFETIME.to_string(),
                "not_before": t.to_string(), "resource": resource, "token_type": "Bearer"
            }),
        );
    }
    if path == "/host/token/" {
        let key = format!("{podns}/{podname}");
        let Some(principal) = s.local.pod_bindings.get(&key).cloned() else {
            return text_response(
                403,
                format!("no AzureAssignedIdentity found for pod:{key} in assigned state\n"),
            );
        };
        let token = s.mint(&tenant, &principal, None, NMI_LIFETIME);
        return json_response(
            200,
            &json!({
                "token": {
                    "access_token": token, "expires_in": NMI_LIFETIME.to_string(),
                    "expires_on": (t + NMI_LIFETIME).to_string(),
                    "resource": resource, "token_type": "Bearer"
                },
                "clientid": principal
            }),
        );
    }
    json_response(404, &json!({ "error": "not_found" }))
}
