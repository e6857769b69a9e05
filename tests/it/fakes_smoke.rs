//! Self-tests of the fakes in `support::fake_azure` and `support::pki`: a plain reqwest client, TLS
//! verified against the test CA and DNS overridden to the fake, checks the REST shapes the provider
//! relies on (token exchange, 401 challenge, 403, 404, paging, 429, key/certificate bodies).

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::fake_azure::{self, FakeAzure, FakeSecret, JWT_BEARER};
use crate::support::pki;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const APP: &str = "0c8bac94-5e34-4589-b16a-c8bfc2b2a36b";
const ISSUER: &str = "https://oidc.prod-aks.azure.com/00000000-0000-0000-0000-000000000001/";
const AUDIENCE: &str = "api://AzureADTokenExchange";
const VAULT: &str = "myvault";
const KV: &str = "https://myvault.vault.azure.net";
const LOGIN: &str = "https://login.microsoftonline.com";
const V1: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const V2: &str = "1f2e3d4c5b6a79880796a5b4c3d2e1f0";

const HOSTS: &[&str] = &[
    "myvault.vault.azure.net",
    "other.vault.azure.net",
    "myvault.vault.usgovcloudapi.net",
    "login.microsoftonline.com",
    "login.microsoftonline.us",
];

fn client(fake: &FakeAzure, http2: bool) -> Client {
    let mut tls = pki::client_tls_config();
    let mut builder = reqwest::ClientBuilder::new();
    if !http2 {
        tls.alpn_protocols.clear();
        builder = builder.http1_only();
    }
    let mut builder = builder
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10));
    for host in HOSTS {
        builder = builder.resolve(host, fake.addr);
    }
    builder.build().expect("client")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn sa_token(namespace: &str, sa: &str) -> String {
    fake_azure::service_account_token(ISSUER, namespace, sa, AUDIENCE, now() + 3600)
}

fn secret(version: &str, value: &str, created: i64, enabled: bool) -> FakeSecret {
    FakeSecret {
        version: version.into(),
        value: value.into(),
        content_type: None,
        kid: None,
        created,
        enabled,
    }
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.expect("send");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text:?}"));
    (status, headers, body)
}

async fn exchange(
    c: &Client,
    login: &str,
    tenant: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let (status, _, body) = send(
        c.post(format!("{login}/{tenant}/oauth2/v2.0/token"))
            .form(form),
    )
    .await;
    (status, body)
}

async fn federated(c: &Client, client_id: &str, assertion: &str) -> (StatusCode, Value) {
    exchange(
        c,
        LOGIN,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", "https://vault.azure.net/.default"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// A fake where APP is federated with app/web and granted on VAULT; returns a valid token.
async fn fixture() -> (FakeAzure, Client, String) {
    let fake = FakeAzure::start().await;
    fake.add_federated_credential(
        TENANT,
        APP,
        ISSUER,
        "system:serviceaccount:app:web",
        AUDIENCE,
    );
    fake.grant(VAULT, APP);
    let c = client(&fake, true);
    let (status, body) = federated(&c, APP, &sa_token("app", "web")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();
    (fake, c, token)
}

async fn kv_get(
    c: &Client,
    token: Option<&str>,
    url: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

#[tokio::test]
async fn federated_exchange_succeeds_and_is_recorded() {
    let (fake, _c, token) = fixture().await;
    assert!(token.starts_with("fake-at."));
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.token_requests_for(APP), 1);
    assert_eq!(fake.token_requests_for("someone-else"), 0);
    let form = fake.last_token_form().expect("form");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_assertion_type"], JWT_BEARER);
    assert_eq!(form["scope"], "https://vault.azure.net/.default");
    assert_eq!(
        fake.last_token_host().as_deref(),
        Some("login.microsoftonline.com")
    );
}

#[tokio::test]
async fn token_response_shape_and_lifetime() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, APP, "s3cret");
    fake.set_token_lifetime(600);
    let c = client(&fake, true);
    let (status, body) = exchange(
        &c,
        LOGIN,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("client_secret", "s3cret"),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["ext_expires_in"], 600);
    let (_, body2) = exchange(
        &c,
        LOGIN,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("client_secret", "s3cret"),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await;
    assert_ne!(
        body["access_token"], body2["access_token"],
        "tokens are unique"
    );
}

#[tokio::test]
async fn unmatched_assertion_gets_the_recorded_70021_with_presented_claims() {
    let (_fake, c, _) = fixture().await;
    let (status, body) = federated(&c, APP, &sa_token("other-ns", "web")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request", "as recorded");
    assert_eq!(body["error_codes"], json!([70021]));
    let d = body["error_description"].as_str().unwrap();
    assert!(
        d.starts_with(&format!(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{ISSUER}'. Assertion Subject: 'system:serviceaccount:other-ns:web'. Assertion Audience: '{AUDIENCE}'. https://"
        )),
        "{d}"
    );
    assert!(d.contains("\r\nTrace ID: "), "{d}");
    assert!(body["correlation_id"].is_string() && body["trace_id"].is_string());
}

#[tokio::test]
async fn other_entra_errors() {
    let (fake, c, _) = fixture().await;
    fake.add_client_secret(TENANT, "sp-app", "right");

    let (status, body) = federated(&c, "unknown-app", &sa_token("app", "web")).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::BAD_REQUEST, Some(700016))
    );
    assert_eq!(body["error"], "unauthorized_client");

    let expired = fake_azure::service_account_token(ISSUER, "app", "web", AUDIENCE, now() - 10);
    let (status, body) = federated(&c, APP, &expired).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::BAD_REQUEST, Some(700024))
    );

    let (status, body) = federated(&c, APP, "not-a-jwt").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = exchange(
        &c,
        LOGIN,
        "99999999-9999-9999-9999-999999999999",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::BAD_REQUEST, Some(90002))
    );

    let (status, body) = exchange(
        &c,
        LOGIN,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "sp-app"),
            ("client_secret", "wrong"),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "recorded status");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: Invalid client secret is provided.")
    );

    // Scope without /.default, and another cloud's Key Vault from the public authority.
    for (scope, code) in [
        ("https://vault.azure.net", 1002012),
        ("https://vault.usgovcloudapi.net/.default", 500011),
    ] {
        let (status, body) = exchange(
            &c,
            LOGIN,
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sp-app"),
                ("client_secret", "right"),
                ("scope", scope),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error_codes"][0].as_u64()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{scope}"
        );
    }

    // Garbage body: JSON instead of a form.
    let (status, _, body) = send(
        c.post(format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"))
            .header("content-type", "application/json")
            .body("{\"grant_type\":\"client_credentials\"}"),
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::BAD_REQUEST, Some(900144))
    );
}

#[tokio::test]
async fn secret_latest_and_pinned() {
    let (fake, c, token) = fixture().await;
    fake.put_secret(VAULT, "db-password", secret(V2, "new", 200, true));
    fake.put_secret(VAULT, "db-password", secret(V1, "old", 100, true));

    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/db-password?api-version=7.4"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], "new");
    assert_eq!(body["id"], format!("{KV}/secrets/db-password/{V2}"));
    assert_eq!(body["attributes"]["enabled"], true);
    assert_eq!(body["attributes"]["created"], 200);
    assert!(body.get("kid").is_none() && body.get("contentType").is_none());

    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/db-password/{V1}?api-version=7.4"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], "old");
    assert_eq!(body["id"], format!("{KV}/secrets/db-password/{V1}"));

    // Names are case-insensitive; a trailing slash means latest.
    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/DB-Password/?api-version=7.4"),
    )
    .await;
    assert_eq!(
        (status, body["value"].as_str()),
        (StatusCode::OK, Some("new"))
    );

    // HTTP/2 (ALPN h2): routed on :authority.
    let resp = c
        .get(format!("{KV}/secrets/db-password?api-version=7.4"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);

    let requests = fake.kv_requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].host, "myvault.vault.azure.net");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/secrets/db-password");
    assert_eq!(requests[0].query, "api-version=7.4");
    assert!(requests[0].authorization_present);
}

#[tokio::test]
async fn certificate_backed_secret_disabled_versions() {
    let (fake, c, token) = fixture().await;
    fake.put_secret(
        VAULT,
        "web-tls",
        FakeSecret {
            version: V1.into(),
            value: "-----BEGIN PRIVATE KEY-----\n…".into(),
            content_type: Some("application/x-pem-file".into()),
            kid: Some(format!("{KV}/keys/web-tls/{V1}")),
            created: 100,
            enabled: true,
        },
    );
    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/web-tls?api-version=7.4"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["contentType"], "application/x-pem-file");
    assert_eq!(body["managed"], true);
    assert_eq!(body["kid"], format!("{KV}/keys/web-tls/{V1}"));

    // The newest version is disabled: like the real service, "latest" is that version → 403.
    fake.put_secret(VAULT, "web-tls", secret(V2, "x", 200, false));
    for url in [
        format!("{KV}/secrets/web-tls?api-version=7.4"),
        format!("{KV}/secrets/web-tls/{V2}?api-version=7.4"),
    ] {
        let (status, _, body) = kv_get(&c, Some(&token), &url).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}");
        assert_eq!(
            body,
            json!({"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}})
        );
    }
}

#[tokio::test]
async fn missing_or_unusable_tokens_get_the_challenge() {
    let (fake, c, token) = fixture().await;
    fake.put_secret(VAULT, "s", secret(V1, "v", 1, true));
    let url = format!("{KV}/secrets/s?api-version=7.4");
    let expected_challenge = format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
    );

    let (status, headers, body) = kv_get(&c, None, &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], expected_challenge.as_str());
    assert_eq!(
        body,
        json!({"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}})
    );

    let (status, headers, _) = kv_get(&c, Some("garbage"), &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], expected_challenge.as_str());

    // A token for the US Government cloud's Key Vault used on a public-cloud vault.
    fake.add_client_secret(TENANT, "gov-app", "pw");
    fake.grant(VAULT, "gov-app");
    let (status, body) = exchange(
        &c,
        "https://login.microsoftonline.us",
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "gov-app"),
            ("client_secret", "pw"),
            ("scope", "https://vault.usgovcloudapi.net/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let gov = body["access_token"].as_str().unwrap();
    let (status, _, body) = kv_get(&c, Some(gov), &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["error"]["message"],
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://vault.usgovcloudapi.net."
    );
    let (status, headers, _) = kv_get(
        &c,
        Some(gov),
        "https://myvault.vault.usgovcloudapi.net/secrets/s?api-version=7.4",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("x-ms-request-id"));

    // Expired.
    fake.set_token_lifetime(-1);
    let (_, body) = federated(&c, APP, &sa_token("app", "web")).await;
    let expired = body["access_token"].as_str().unwrap();
    let (status, _, body) = kv_get(&c, Some(expired), &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["error"]["message"],
        "[TokenExpired] Error validating token: 'S2S12086'."
    );

    // The still-valid token works.
    assert_eq!(kv_get(&c, Some(&token), &url).await.0, StatusCode::OK);
}

#[tokio::test]
async fn vault_tenant_is_named_in_the_challenge_and_enforced() {
    let (fake, c, token) = fixture().await;
    fake.set_vault_tenant("other", "44444444-4444-4444-4444-444444444444");
    fake.grant("other", APP);
    let (status, headers, body) = kv_get(
        &c,
        Some(&token),
        "https://other.vault.azure.net/secrets/s?api-version=7.4",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("/44444444-4444-4444-4444-444444444444\"")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10032: Invalid issuer.")
    );
}

#[tokio::test]
async fn not_granted_gets_forbidden_by_rbac_or_access_denied() {
    let (fake, c, token) = fixture().await;
    fake.put_secret("other", "s", secret(V1, "v", 1, true));
    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        "https://other.vault.azure.net/secrets/s?api-version=7.4",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("Caller is not authorized to perform action on resource.\r\n"),
        "{m}"
    );
    assert!(m.contains(&format!("\r\nCaller: appid={APP};oid=")), "{m}");
    assert!(
        m.contains("\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"),
        "{m}"
    );
    assert!(
        m.contains("/providers/microsoft.keyvault/vaults/other/secrets/s'\r\n"),
        "{m}"
    );
    assert!(
        m.contains("\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: other;location="),
        "{m}"
    );

    fake.use_access_policies("other");
    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        "https://other.vault.azure.net/keys/k?api-version=7.4",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.starts_with(&format!("The user, group or application 'appid={APP};oid=")),
        "{m}"
    );
    assert!(
        m.contains("' does not have keys get permission on key vault 'other;location="),
        "{m}"
    );
}

#[tokio::test]
async fn missing_objects_get_the_recorded_404s() {
    let (_fake, c, token) = fixture().await;
    for (collection, code, singular) in [
        ("secrets", "SecretNotFound", "secret"),
        ("keys", "KeyNotFound", "key"),
        ("certificates", "CertificateNotFound", "certificate"),
    ] {
        let (status, _, body) = kv_get(
            &c,
            Some(&token),
            &format!("{KV}/{collection}/nope?api-version=7.4"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error":{"code": code, "message": format!("A {singular} with (name/id) nope was not found in this key vault. If you recently deleted this {singular} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")}})
        );
    }
}

#[tokio::test]
async fn versions_listing_pages_with_next_link() {
    let (fake, _, token) = fixture().await;
    for (i, created) in [(1, 300), (2, 100), (3, 200)] {
        fake.put_secret(
            VAULT,
            "rot",
            secret(&format!("{i:032x}"), "v", created, i != 2),
        );
    }
    // HTTP/1.1 this time: the fake routes on the Host header as well as on :authority.
    let c = client(&fake, false);
    let mut url = format!("{KV}/secrets/rot/versions?api-version=7.4&maxresults=2");
    let mut pages = Vec::new();
    loop {
        let resp = c.get(&url).bearer_auth(&token).send().await.expect("send");
        assert_eq!(resp.version(), reqwest::Version::HTTP_11);
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        pages.push(body["value"].as_array().unwrap().clone());
        match body["nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&format!(
                        "{KV}/secrets/rot/versions?api-version=7.4&$skiptoken="
                    )),
                    "{next}"
                );
                assert!(next.ends_with("&maxresults=2"), "{next}");
                url = next.to_owned();
            }
            None => {
                assert!(body["nextLink"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
    let all: Vec<&Value> = pages.iter().flatten().collect();
    assert_eq!(all[0]["id"], format!("{KV}/secrets/rot/{:032x}", 1));
    assert_eq!(all[1]["attributes"]["enabled"], false);
    assert_eq!(all[2]["attributes"]["created"], 200);

    let (status, _, _) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/rot/versions?api-version=7.4&maxresults=99"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/rot/versions?api-version=7.4&$skiptoken=zzz"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Key listings name versions by "kid"; page size limits pages without maxresults.
    fake.set_page_size(1);
    fake.put_key(
        VAULT,
        "k",
        V1,
        json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA"}),
        1,
        true,
    );
    fake.put_key(
        VAULT,
        "k",
        V2,
        json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA"}),
        2,
        true,
    );
    let (_, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/keys/k/versions?api-version=7.4"),
    )
    .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    assert_eq!(body["value"][0]["kid"], format!("{KV}/keys/k/{V1}"));
    assert!(body["nextLink"].is_string());
}

#[tokio::test]
async fn throttling_and_failures_are_injected() {
    let (fake, c, token) = fixture().await;
    fake.put_secret(VAULT, "s", secret(V1, "v", 1, true));
    let url = format!("{KV}/secrets/s?api-version=7.4");
    fake.throttle_next(VAULT, 2, 3);
    for _ in 0..2 {
        let (status, headers, body) = kv_get(&c, Some(&token), &url).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(
            body,
            json!({"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}})
        );
    }
    assert_eq!(kv_get(&c, Some(&token), &url).await.0, StatusCode::OK);

    fake.fail_next(VAULT, 1, 503);
    assert_eq!(
        kv_get(&c, Some(&token), &url).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(kv_get(&c, Some(&token), &url).await.0, StatusCode::OK);

    fake.set_latency(Duration::from_millis(200));
    let start = std::time::Instant::now();
    assert_eq!(kv_get(&c, Some(&token), &url).await.0, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn keys_and_certificates_have_the_service_shapes() {
    let (fake, c, token) = fixture().await;
    let jwk = json!({"kty":"RSA","n":"jjyunHjWkDTNGYhY","e":"AQAB","key_ops":["sign","verify"]});
    fake.put_key(VAULT, "rsa", V1, jwk, 1, true);
    let (status, _, body) =
        kv_get(&c, Some(&token), &format!("{KV}/keys/rsa?api-version=7.4")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["key"]["kid"], format!("{KV}/keys/rsa/{V1}"));
    assert_eq!(body["key"]["kty"], "RSA");
    assert_eq!(body["key"]["e"], "AQAB");
    assert_eq!(body["attributes"]["enabled"], true);

    use base64::Engine as _;
    let cer = base64::engine::general_purpose::STANDARD.encode(pki::ca_der());
    fake.put_certificate(VAULT, "web", V1, &cer, 1, true);
    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/certificates/web/{V1}?api-version=7.4"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], format!("{KV}/certificates/web/{V1}"));
    assert_eq!(body["kid"], format!("{KV}/keys/web/{V1}"));
    assert_eq!(body["sid"], format!("{KV}/secrets/web/{V1}"));
    assert_eq!(body["cer"], cer);
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pki::ca_der());
    assert_eq!(
        body["x5t"],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    );
}

#[tokio::test]
async fn raw_bodies_and_bad_requests() {
    let (fake, c, token) = fixture().await;
    fake.put_raw_json(
        VAULT,
        "/secrets/raw",
        200,
        json!({"value":"verbatim","id":"x"}),
    );
    let (status, _, body) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/raw?api-version=7.4"),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"value":"verbatim","id":"x"}))
    );

    for url in [
        format!("{KV}/secrets/s"),                            // no api-version
        format!("{KV}/nonsense/s?api-version=7.4"),           // unknown collection
        format!("{KV}/secrets/a/b/c/d?api-version=7.4"),      // too deep
        format!("{KV}/secrets/%FF%FE?api-version=7.4&x=%%%"), // odd encodings
        format!("{KV}/?api-version=7.4"),
    ] {
        let (status, _, body) = kv_get(&c, Some(&token), &url).await;
        assert!(status.is_client_error(), "{url}: {status}");
        assert!(body["error"]["code"].is_string(), "{url}: {body}");
    }
    // Still serving.
    let (status, _, _) = kv_get(
        &c,
        Some(&token),
        &format!("{KV}/secrets/raw?api-version=7.4"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn service_account_token_and_tokens_attribute() {
    use base64::Engine as _;
    let token = fake_azure::service_account_token(ISSUER, "app", "web", AUDIENCE, 2_000_000_000);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(parts[0]), json!({"alg":"RS256","kid":"test"}));
    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:app:web");
    assert_eq!(claims["aud"], json!([AUDIENCE]));
    assert_eq!(claims["exp"], 2_000_000_000);
    assert_eq!(claims["kubernetes.io"]["namespace"], "app");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "web");

    let attr = fake_azure::tokens_attribute(AUDIENCE, &token, "2099-01-01T00:00:00Z");
    let v: Value = serde_json::from_str(&attr).unwrap();
    assert_eq!(v[AUDIENCE]["token"], token.as_str());
    assert_eq!(v[AUDIENCE]["expirationTimestamp"], "2099-01-01T00:00:00Z");
}

#[test]
fn pki_is_shared_and_well_formed() {
    assert_eq!(pki::ca_der(), pki::ca_der());
    assert!(pki::ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let config = pki::server_tls_config();
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
