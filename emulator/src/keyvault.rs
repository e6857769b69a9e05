//! The Key Vault data plane (spec 4) for `<vault>.vault.*` hosts: `GET
//! /{secrets|keys|certificates}/{name}[/{version}]`, and the listings `/{…}/{name}/versions` and
//! `/{secrets|keys|certificates}[/]` (the collection: one item per object) with `maxresults`
//! (1..=25) and `nextLink` paging, behind the bearer-token challenge, RBAC or access policies,
//! injected faults and a per-vault throttling model.
//!
//! Fidelity choices a test writer should know:
//! - A collection listing's items carry no version in their id (`…/secrets/{name}`, keys `kid`),
//!   as the real service lists, with the current version's attributes (disabled objects are listed
//!   with `enabled: false`), `tags`, and: secrets `contentType` if any and `managed: true` for a
//!   certificate's secret; keys `managed: true` when a certificate of the same name exists (its
//!   key); certificates `x5t` and `"subject": ""` as recorded. Items come in lower-case name
//!   order. Attributes are the emulator's usual ones; a certificate's (single GET, versions and
//!   collection listings alike) also carry `nbf`/`exp`, its notBefore/notAfter in Unix seconds as
//!   the real service gives them; left out when the stored `cer` does not parse (not X.509, or a
//!   date before 1970, which the `x509-cert` parser refuses).
//! - A get-only grant (`VaultRef::grant_without_list`) reads objects but gets 403 on both kinds
//!   of listing: RBAC names the listing's action (`secrets/readMetadata/action`, `keys/read`,
//!   `certificates/read`; a collection's resource is the vault), access policies the `list`
//!   permission.
//! - "latest" is the NEWEST version by `created`, enabled or not, as in the real service: if it
//!   is disabled, a GET without a version gets 403 `SecretDisabled` (no fallback to an older one).
//! - Object names are case-insensitive (the returned id keeps the stored casing).
//! - Access tokens are bound to (tenant, client id, resource): a token for another cloud's Key
//!   Vault gets 401 `AKV10022: Invalid audience`, an expired one `[TokenExpired]`, and (only for a
//!   vault with a tenant set) a token from another tenant `AKV10032: Invalid issuer`.
//! - `nextLink` is absolute on the request's host but WITHOUT the `:443` the real service adds: a
//!   URL port would defeat a client's DNS override (reqwest uses a URL's explicit port).
//! - Throttling and 5xx injection apply to authenticated requests only (the unauthenticated
//!   challenge probe never consumes them), in this order: `throttle_next`, the rate limit,
//!   `fail_next`.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::clock::now;
use crate::http::{Resp, header, json_response, kv_error, percent_decode, query_param, set_header};
use crate::recorded::{replace_between, with_message};
use crate::state::{
    IssuedToken, KvRequest, ObjectKind, Shared, State, StoredSecret, Vault, VersionMeta, Versioned,
    current,
};

/// (Entra authority, Key Vault resource) of the cloud a vault host belongs to.
fn cloud_of(host: &str) -> (String, String) {
    let suffix = host.split_once('.').map(|x| x.1).unwrap_or_default();
    let authority = match suffix {
        "vault.azure.net" => "https://login.microsoftonline.com".to_owned(),
        "vault.usgovcloudapi.net" => "https://login.microsoftonline.us".to_owned(),
        "vault.azure.cn" => "https://login.chinacloudapi.cn".to_owned(),
        "vault.microsoftazure.de" => "https://login.microsoftonline.de".to_owned(),
        other => format!(
            "https://login.{}",
            other.strip_prefix("vault.").unwrap_or(other)
        ),
    };
    (authority, format!("https://{suffix}"))
}

fn attributes(created: i64, enabled: bool) -> Value {
    json!({ "enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90 })
}

/// A certificate's attributes: the usual ones and, as Key Vault gives them, its validity
/// (`nbf`/`exp`, computed when it was stored).
fn certificate_attributes(payload: &Value, created: i64, enabled: bool) -> Value {
    let mut attributes = attributes(created, enabled);
    for field in ["nbf", "exp"] {
        if let Some(seconds) = payload.get(field) {
            attributes[field] = seconds.clone();
        }
    }
    attributes
}

/// (notBefore, notAfter) of a DER certificate in Unix seconds, or `None` if it does not parse.
pub(crate) fn validity(der: &[u8]) -> Option<(i64, i64)> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let validity = cert.tbs_certificate().validity();
    let seconds = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).ok();
    Some((seconds(validity.not_before)?, seconds(validity.not_after)?))
}

fn rbac_action(kind: ObjectKind, listing: bool) -> &'static str {
    match (kind, listing) {
        (ObjectKind::Secret, false) => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        (ObjectKind::Secret, true) => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        (ObjectKind::Key, _) => "Microsoft.KeyVault/vaults/keys/read",
        (ObjectKind::Certificate, _) => "Microsoft.KeyVault/vaults/certificates/read",
    }
}

fn skiptoken_encode(offset: usize) -> String {
    B64URL.encode(json!({ "NextMarker": format!("2!{offset}"), "TargetLocation": 0 }).to_string())
}

fn skiptoken_decode(token: &str) -> Option<usize> {
    let bytes = B64URL.decode(token.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["NextMarker"].as_str()?.strip_prefix("2!")?.parse().ok()
}

/// A stable, made-up object id for an app's service principal.
fn object_id(client_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, client_id.as_bytes());
    let h: String = digest
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What the path asks for.
struct Target {
    kind: ObjectKind,
    /// Empty for a collection listing (`/secrets`).
    name: String,
    version: Option<String>,
    /// `/{name}/versions`, or the collection listing.
    listing: bool,
}

impl Target {
    /// `GET /secrets` (`/keys`, `/certificates`): every object of the kind.
    fn collection(&self) -> bool {
        self.name.is_empty()
    }
}

/// The path's target, or the message of the 400 `BadParameter` it deserves.
fn parse_path(path: &str) -> Result<Target, String> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let unsupported = || format!("The request URI '{path}' is not a supported operation.");
    let kind = match segments.first().map(String::as_str) {
        Some("secrets") => ObjectKind::Secret,
        Some("keys") => ObjectKind::Key,
        Some("certificates") => ObjectKind::Certificate,
        _ => return Err(unsupported()),
    };
    let name = segments.get(1).cloned().unwrap_or_default();
    let rest: Vec<&str> = segments.iter().skip(2).map(String::as_str).collect();
    let (listing, version) = match rest.as_slice() {
        [] | [""] => (false, None),
        ["versions"] => (true, None),
        [v] | [v, ""] => (false, Some((*v).to_owned())),
        _ => return Err(unsupported()),
    };
    if name.is_empty() {
        // `/secrets` and `/secrets/` list the collection; `/secrets//…` names nothing.
        if rest.is_empty() {
            return Ok(Target {
                kind,
                name,
                version: None,
                listing: true,
            });
        }
        return Err(format!(
            "The request URI '{path}' is missing the object name."
        ));
    }
    Ok(Target {
        kind,
        name,
        version,
        listing,
    })
}

fn challenge(shared: &Shared, host: &str, tenant: &str, message: Option<&str>) -> Resp {
    let (authority, resource) = cloud_of(host);
    let body = match message {
        None => shared.recorded.challenge.clone(),
        Some(m) => with_message(shared.recorded.challenge.clone(), |_| m.to_owned()),
    };
    let mut r = json_response(401, &body);
    set_header(
        &mut r,
        "www-authenticate",
        &format!("Bearer authorization=\"{authority}/{tenant}\", resource=\"{resource}\""),
    );
    r
}

/// Continuous access evaluation's answer to a token without the claims the vault requires: 401 with
/// `error="insufficient_claims"` and the claims, base64-encoded, in `WWW-Authenticate`.
fn claims_challenge(shared: &Shared, host: &str, tenant: &str, claims: &str) -> Resp {
    use base64::engine::general_purpose::STANDARD;
    let (authority, _) = cloud_of(host);
    let body = with_message(shared.recorded.challenge.clone(), |_| {
        "The token does not satisfy the claims challenge (continuous access evaluation).".to_owned()
    });
    let mut r = json_response(401, &body);
    set_header(
        &mut r,
        "www-authenticate",
        &format!(
            "Bearer realm=\"\", authorization_uri=\"{authority}/{tenant}/oauth2/authorize\", \
             error=\"insufficient_claims\", claims=\"{}\"",
            STANDARD.encode(claims)
        ),
    );
    r
}

fn not_found(shared: &Shared, kind: ObjectKind, name: &str) -> Resp {
    let r = &shared.recorded;
    let (template, original) = match kind {
        ObjectKind::Secret => &r.secret_not_found,
        ObjectKind::Key => &r.key_not_found,
        ObjectKind::Certificate => &r.cert_not_found,
    };
    let body = with_message(template.clone(), |m| {
        m.replacen(
            &format!("(name/id) {original} "),
            &format!("(name/id) {name} "),
            1,
        )
    });
    json_response(404, &body)
}

/// The latency to inject before answering a request for `vault`.
pub(crate) fn latency(state: &State, vault: &str) -> std::time::Duration {
    state.latency
        + state
            .vaults
            .get(vault)
            .map(|v| v.latency)
            .unwrap_or_default()
}

/// The first label of a vault host.
pub(crate) fn vault_of(host: &str) -> String {
    host.split('.').next().unwrap_or_default().to_owned()
}

/// Answers one Key Vault request, records it, and adds the service's headers.
pub(crate) fn handle(req: &Request<Incoming>, host: &str, shared: &Shared) -> Resp {
    let mut s = shared.lock();
    let request_id = s.next_id();
    let vault = vault_of(host);
    let path = req.uri().path().to_owned();
    let target = parse_path(&path).ok();
    let mut entry = KvRequest {
        at: Instant::now(),
        host: host.to_owned(),
        vault: vault.clone(),
        method: req.method().to_string(),
        path,
        query: req.uri().query().unwrap_or_default().to_owned(),
        kind: target.as_ref().map(|t| t.kind),
        name: target
            .as_ref()
            .filter(|t| !t.collection())
            .map(|t| t.name.clone()),
        version: target.as_ref().and_then(|t| t.version.clone()),
        listing: target.as_ref().is_some_and(|t| t.listing),
        authorization_present: req.headers().contains_key(hyper::header::AUTHORIZATION),
        client_id: None,
        user_agent: header(req, "user-agent"),
        status: 0,
    };
    let auth = header(req, "authorization");
    let mut r = respond(shared, &mut s, &mut entry, auth.as_deref());
    entry.status = r.status().as_u16();
    if req.method() == hyper::Method::GET {
        *s.counters.kv_gets.entry(vault.clone()).or_default() += 1;
    }
    if entry.status == 429 {
        *s.counters.throttled.entry(vault).or_default() += 1;
    }
    s.kv_requests.push(entry);
    set_header(&mut r, "cache-control", "no-cache");
    set_header(&mut r, "x-ms-keyvault-service-version", "1.9.2400.1");
    set_header(&mut r, "x-ms-keyvault-region", "westeurope");
    set_header(
        &mut r,
        "x-ms-request-id",
        &format!("00000000-0000-4000-8000-{request_id:012x}"),
    );
    r
}

fn respond(shared: &Shared, s: &mut State, entry: &mut KvRequest, auth: Option<&str>) -> Resp {
    if query_param(&entry.query, "api-version").is_none_or(|v| v.is_empty()) {
        return kv_error(
            400,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
        );
    }
    let caller = match authenticate(shared, s, entry, auth) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let page_size = s.page_size;
    let v = s.vault(&entry.vault);
    if let Some(r) = injected_fault(shared, v, entry.at) {
        return r;
    }

    if let Some((status, body)) = v.raw.get(&entry.path) {
        return json_response(*status, body);
    }

    if entry.method != "GET" {
        return kv_error(
            405,
            "MethodNotAllowed",
            &format!(
                "The emulated Key Vault only serves GET, not {}.",
                entry.method
            ),
        );
    }
    let target = match parse_path(&entry.path) {
        Ok(t) => t,
        Err(message) => return kv_error(400, "BadParameter", &message),
    };

    // Authorization: a get-only grant reads every object but lists none, as a real access policy
    // with `get` alone or a role with only the get action does.
    let allowed = v.grants.contains(&caller.client_id)
        || (!target.listing && v.get_only.contains(&caller.client_id));
    if !allowed {
        return forbidden(
            shared,
            v,
            &entry.vault,
            &target,
            &caller.client_id,
            &caller.tenant,
        );
    }
    let listing = Listing {
        host: &entry.host,
        query: &entry.query,
        page_size,
    };
    if target.collection() {
        return list_collection(v, &listing, target.kind);
    }
    serve_object(shared, v, &listing, target)
}

/// The caller of an accepted bearer token (its client id recorded in `entry`), or the 401
/// challenge the vault answers instead.
fn authenticate(
    shared: &Shared,
    s: &mut State,
    entry: &mut KvRequest,
    auth: Option<&str>,
) -> Result<IssuedToken, Box<Resp>> {
    let host = entry.host.clone();
    let vault = entry.vault.clone();
    let tenant = s.vault_tenant(&vault);
    let refuse = |message: Option<&str>| Box::new(challenge(shared, &host, &tenant, message));
    let presented = auth.and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
    });
    let Some(presented) = presented.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(refuse(None));
    };
    let Some(caller) = s.tokens.get(presented).cloned() else {
        return Err(refuse(None));
    };
    entry.client_id = Some(caller.client_id.clone());
    if caller.expires_at <= now() {
        return Err(refuse(Some(
            "[TokenExpired] Error validating token: 'S2S12086'.",
        )));
    }
    let (_, expected_resource) = cloud_of(&host);
    if let Some(found) = &caller.resource
        && *found != expected_resource
    {
        return Err(refuse(Some(&format!(
            "AKV10022: Invalid audience. Expected {expected_resource}, found: {found}."
        ))));
    }
    let v = s.vault(&vault);
    if v.tenant.is_some() && caller.tenant != tenant {
        return Err(refuse(Some(&format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found https://sts.windows.net/{}/.",
            caller.tenant
        ))));
    }
    if let Some(required) = &v.required_claims
        && caller.claims.as_deref() != Some(required.as_str())
    {
        return Err(Box::new(claims_challenge(shared, &host, &tenant, required)));
    }
    Ok(caller)
}

/// Injected throttling and failures, then the throttling model: the answer that replaces the
/// vault's own, if any.
fn injected_fault(shared: &Shared, v: &mut Vault, at: Instant) -> Option<Resp> {
    let throttled = |retry_after: u64| {
        let mut r = json_response(429, &shared.recorded.throttled);
        set_header(&mut r, "retry-after", &retry_after.to_string());
        r
    };
    if v.throttle_next.0 > 0 {
        v.throttle_next.0 -= 1;
        return Some(throttled(v.throttle_next.1));
    }
    if let Some(limit) = &mut v.limit
        && let Err(retry_after) = limit.admit(at)
    {
        return Some(throttled(retry_after));
    }
    if v.fail_next.0 > 0 {
        v.fail_next.0 -= 1;
        return Some(kv_error(
            v.fail_next.1,
            "ServiceUnavailable",
            "The service is temporarily unavailable, please retry later.",
        ));
    }
    None
}

/// A named object: its versions listing, or one version (the current one without a version).
fn serve_object(shared: &Shared, v: &Vault, listing: &Listing<'_>, target: Target) -> Resp {
    let key = target.name.to_ascii_lowercase();
    let object: Option<(String, Vec<VersionMeta>)> = match target.kind {
        ObjectKind::Secret => metas(v.secrets.get(&key)),
        ObjectKind::Key => metas(v.keys.get(&key)),
        ObjectKind::Certificate => metas(v.certificates.get(&key)),
    };
    let Some((stored_name, versions)) = object.filter(|(_, v)| !v.is_empty()) else {
        return not_found(shared, target.kind, &target.name);
    };
    if target.listing {
        return list_versions(v, listing, target.kind, &stored_name, &versions);
    }

    let chosen = match &target.version {
        Some(wanted) => versions
            .iter()
            .rev()
            .find(|(id, _, _)| id.eq_ignore_ascii_case(wanted)),
        None => current(&versions),
    };
    let Some(meta) = chosen.cloned() else {
        return not_found(
            shared,
            target.kind,
            &format!("{}/{}", target.name, target.version.unwrap_or_default()),
        );
    };
    if !meta.2 {
        let singular = target.kind.singular();
        let mut capitalized = singular.to_owned();
        capitalized[..1].make_ascii_uppercase();
        let mut body = with_message(shared.recorded.disabled.clone(), |m| {
            m.replace("disabled secret", &format!("disabled {singular}"))
        });
        body["error"]["innererror"]["code"] = format!("{capitalized}Disabled").into();
        return json_response(403, &body);
    }
    match object_body(v, listing.host, target.kind, &stored_name, &meta) {
        Some(body) => json_response(200, &body),
        None => not_found(shared, target.kind, &target.name),
    }
}

/// The GET answer for one enabled version (`None` if it vanished, which cannot happen under the
/// state lock but is answered as the 404 it would be).
fn object_body(
    v: &Vault,
    host: &str,
    kind: ObjectKind,
    stored_name: &str,
    (version, created, enabled): &VersionMeta,
) -> Option<Value> {
    let key = stored_name.to_ascii_lowercase();
    let id = format!(
        "https://{host}/{}/{stored_name}/{version}",
        kind.collection()
    );
    let attributes = attributes(*created, *enabled);
    let body = match kind {
        ObjectKind::Secret => {
            let x = find(v.secrets.get(&key), version)?;
            let mut b =
                json!({ "value": x.secret.value, "id": id, "attributes": attributes, "tags": {} });
            if let Some(ct) = &x.secret.content_type {
                b["contentType"] = ct.clone().into();
            }
            let kid = if x.kid_from_host {
                Some(format!("https://{host}/keys/{stored_name}/{version}"))
            } else {
                x.secret.kid.clone()
            };
            if let Some(kid) = kid {
                b["kid"] = kid.into();
                b["managed"] = true.into();
            }
            b
        }
        ObjectKind::Key => {
            let x = find(v.keys.get(&key), version)?;
            let mut jwk = x.payload.clone();
            if !jwk.is_object() {
                jwk = json!({});
            }
            jwk["kid"] = id.into();
            json!({ "key": jwk, "attributes": attributes, "tags": {} })
        }
        ObjectKind::Certificate => {
            let x = find(v.certificates.get(&key), version)?;
            json!({
                "id": id,
                "kid": format!("https://{host}/keys/{stored_name}/{version}"),
                "sid": format!("https://{host}/secrets/{stored_name}/{version}"),
                "x5t": x.payload["x5t"],
                "cer": x.payload["cer"],
                "attributes": certificate_attributes(&x.payload, *created, *enabled),
                "tags": {},
            })
        }
    };
    Some(body)
}

fn metas<T: Versioned>(entry: Option<&(String, Vec<T>)>) -> Option<(String, Vec<VersionMeta>)> {
    entry.map(|(n, v)| (n.clone(), v.iter().map(Versioned::meta).collect()))
}

fn find<'a, T: Versioned>(entry: Option<&'a (String, Vec<T>)>, version: &str) -> Option<&'a T> {
    entry.and_then(|(_, v)| v.iter().rev().find(|x| x.meta().0 == version))
}

/// 403 in the recorded shape: `AccessDenied` on access-policy vaults, `ForbiddenByRbac` otherwise.
fn forbidden(
    shared: &Shared,
    v: &Vault,
    vault: &str,
    target: &Target,
    client_id: &str,
    tenant: &str,
) -> Resp {
    let caller_id = format!(
        "appid={client_id};oid={};iss=https://sts.windows.net/{tenant}/",
        object_id(client_id),
    );
    let collection = target.kind.collection();
    if v.access_policies {
        let op = if target.listing { "list" } else { "get" };
        let body = with_message(shared.recorded.access_denied.clone(), |m| {
            let m = replace_between(m, "application '", "' does not", &caller_id);
            let m = replace_between(
                &m,
                "does not have ",
                " permission",
                &format!("{collection} {op}"),
            );
            replace_between(&m, "key vault '", ";location=", vault)
        });
        return json_response(403, &body);
    }
    let body = with_message(shared.recorded.rbac.clone(), |m| {
        m.split("\r\n")
            .map(|line| {
                if line.starts_with("Caller: ") {
                    format!("Caller: {caller_id}")
                } else if line.starts_with("Action: ") {
                    format!("Action: '{}'", rbac_action(target.kind, target.listing))
                } else if line.starts_with("Resource: ") {
                    // A collection listing is authorized on the vault itself.
                    let object = if target.collection() {
                        String::new()
                    } else {
                        format!("/{collection}/{}", target.name.to_ascii_lowercase())
                    };
                    format!(
                        "Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/{vault}{object}'"
                    )
                } else if line.starts_with("Vault: ") {
                    format!("Vault: {vault};location=westeurope")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    });
    json_response(403, &body)
}

/// What every listing needs besides the objects: where it was asked and how large a page may be.
struct Listing<'a> {
    host: &'a str,
    query: &'a str,
    /// The emulator's page size (`Emulator::set_page_size`), the largest page without `maxresults`.
    page_size: usize,
}

/// One page of a listing: `size` items after the first `skip`.
struct Page {
    skip: usize,
    size: usize,
    /// As sent, repeated in `nextLink` (the real service does too).
    maxresults: Option<String>,
}

impl Listing<'_> {
    /// The page asked for, or the message of the 400 `BadParameter` a `maxresults` outside
    /// 1..=25 or a `$skiptoken` the emulator did not issue deserves.
    fn page(&self) -> Result<Page, String> {
        let mut size = self.page_size;
        let maxresults = query_param(self.query, "maxresults");
        if let Some(m) = &maxresults {
            match m.parse::<usize>() {
                Ok(n @ 1..=25) => size = size.min(n),
                _ => {
                    return Err(format!(
                        "Invalid maxresults value '{m}'. It must be between 1 and 25."
                    ));
                }
            }
        }
        let skip = match query_param(self.query, "$skiptoken") {
            None => 0,
            Some(t) => {
                skiptoken_decode(&t).ok_or_else(|| "The skip token is not valid.".to_owned())?
            }
        };
        Ok(Page {
            skip,
            size,
            maxresults,
        })
    }

    /// `{"value": items, "nextLink": …}` for `page` of a listing of `total` items at `path`
    /// (e.g. `/secrets`): `nextLink` is absolute on the request's host (no `:443`, see the module
    /// doc) and null on the last page.
    fn body(&self, path: &str, page: &Page, total: usize, items: Vec<Value>) -> Resp {
        let end = page.skip.saturating_add(page.size);
        let next = (end < total).then(|| {
            let api_version = query_param(self.query, "api-version").unwrap_or_default();
            let mut link = format!(
                "https://{}{path}?api-version={api_version}&$skiptoken={}",
                self.host,
                skiptoken_encode(end)
            );
            if let Some(m) = &page.maxresults {
                link.push_str(&format!("&maxresults={m}"));
            }
            link
        });
        json_response(200, &json!({ "value": items, "nextLink": next }))
    }
}

fn list_versions(
    v: &Vault,
    listing: &Listing<'_>,
    kind: ObjectKind,
    stored_name: &str,
    versions: &[VersionMeta],
) -> Resp {
    let page = match listing.page() {
        Ok(p) => p,
        Err(message) => return kv_error(400, "BadParameter", &message),
    };
    let path = format!("/{}/{stored_name}", kind.collection());
    let base = format!("https://{}{path}", listing.host);
    let key = stored_name.to_ascii_lowercase();
    let items: Vec<Value> = versions
        .iter()
        .skip(page.skip)
        .take(page.size)
        .map(|(version, created, enabled)| {
            let id = format!("{base}/{version}");
            let mut item = match kind {
                ObjectKind::Key => json!({ "kid": id }),
                _ => json!({ "id": id }),
            };
            item["attributes"] = attributes(*created, *enabled);
            item["tags"] = json!({});
            match kind {
                ObjectKind::Secret => {
                    if let Some(x) = find(v.secrets.get(&key), version) {
                        secret_fields(&mut item, x);
                    }
                }
                ObjectKind::Certificate => {
                    if let Some(x) = find(v.certificates.get(&key), version) {
                        item["x5t"] = x.payload["x5t"].clone();
                        item["attributes"] = certificate_attributes(&x.payload, *created, *enabled);
                    }
                }
                ObjectKind::Key => {}
            }
            item
        })
        .collect();
    listing.body(&format!("{path}/versions"), &page, versions.len(), items)
}

/// A secret item's `contentType` and, for a certificate's secret, `managed: true`.
fn secret_fields(item: &mut Value, x: &StoredSecret) {
    if let Some(ct) = &x.secret.content_type {
        item["contentType"] = ct.clone().into();
    }
    if x.managed() {
        item["managed"] = true.into();
    }
}

/// `GET /{collection}`: one item per object, its current version's attributes, no version in the
/// id (as the real service lists), in lower-case name order so pages are stable. Disabled objects
/// are listed too, with `enabled: false`.
fn list_collection(v: &Vault, listing: &Listing<'_>, kind: ObjectKind) -> Resp {
    let page = match listing.page() {
        Ok(p) => p,
        Err(message) => return kv_error(400, "BadParameter", &message),
    };
    let mut names: Vec<&String> = match kind {
        ObjectKind::Secret => v.secrets.keys().collect(),
        ObjectKind::Key => v.keys.keys().collect(),
        ObjectKind::Certificate => v.certificates.keys().collect(),
    };
    names.sort();
    let host = listing.host;
    let collection = kind.collection();
    let item = |key: &String| -> Option<Value> {
        let (stored, mut item, meta, certificate) = match kind {
            ObjectKind::Secret => {
                let (stored, versions) = v.secrets.get(key)?;
                let x = current(versions)?;
                let mut item = json!({});
                secret_fields(&mut item, x);
                (stored, item, x.meta(), None)
            }
            ObjectKind::Key => {
                let (stored, versions) = v.keys.get(key)?;
                // A key named like a certificate is that certificate's key: Key Vault refuses
                // to create one otherwise, and marks it managed.
                let item = if v.certificates.contains_key(key) {
                    json!({ "managed": true })
                } else {
                    json!({})
                };
                (stored, item, current(versions)?.meta(), None)
            }
            ObjectKind::Certificate => {
                let (stored, versions) = v.certificates.get(key)?;
                let x = current(versions)?;
                let item = json!({ "x5t": x.payload["x5t"], "subject": "" });
                (stored, item, x.meta(), Some(&x.payload))
            }
        };
        let id = format!("https://{host}/{collection}/{stored}");
        item[if kind == ObjectKind::Key { "kid" } else { "id" }] = id.into();
        // A certificate's carry its validity (its payload's `nbf`/`exp`).
        item["attributes"] = match certificate {
            Some(payload) => certificate_attributes(payload, meta.1, meta.2),
            None => attributes(meta.1, meta.2),
        };
        item["tags"] = json!({});
        Some(item)
    };
    // `item` is `Some` for every name: an object is stored with its first version.
    let items: Vec<Value> = names
        .iter()
        .skip(page.skip)
        .take(page.size)
        .filter_map(|k| item(k))
        .collect();
    listing.body(&format!("/{collection}"), &page, names.len(), items)
}

#[cfg(test)]
mod tests {
    #[test]
    fn skiptokens_round_trip_and_garbage_is_refused() {
        assert_eq!(
            super::skiptoken_decode(&super::skiptoken_encode(7)),
            Some(7)
        );
        assert_eq!(super::skiptoken_decode("zzz"), None);
    }

    #[test]
    fn object_ids_look_like_guids() {
        let id = super::object_id("app");
        assert_eq!(id.len(), 36);
        assert_eq!(id, super::object_id("app"));
    }
}
