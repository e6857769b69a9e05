//! Self-test of the emulator's REST shapes, table-driven: each case starts a fresh emulator (with
//! the fixture below), applies its own setup, sends its requests with a plain reqwest client that
//! verifies TLS against the emulator's CA (DNS overridden to it), and checks status, headers and
//! JSON fields. Sequences that need live state (paging, timing, logs) are separate tests below.

use std::sync::OnceLock;
use std::time::Duration;

use akv_emulator::{Emulator, Issuer, JWT_BEARER, ObjectKind, SecretVersion, now};
use base64::Engine as _;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const APP: &str = "0c8bac94-5e34-4589-b16a-c8bfc2b2a36b";
const SP: &str = "5d2c7e0f-3a4b-4c6d-8e9f-0a1b2c3d4e5f";
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

fn issuer() -> &'static Issuer {
    static I: OnceLock<Issuer> = OnceLock::new();
    I.get_or_init(|| Issuer::generate(ISSUER).unwrap())
}

fn sa_token(namespace: &str, sa: &str) -> String {
    issuer()
        .service_account_token(namespace, sa, &[AUDIENCE], now() + 3600)
        .unwrap()
}

fn client(emu: &Emulator, http1: bool) -> Client {
    let mut tls = emu.pki().client_config().unwrap();
    let mut builder = reqwest::ClientBuilder::new();
    if http1 {
        tls.alpn_protocols.clear();
        builder = builder.http1_only();
    }
    let mut builder = builder
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(10));
    for host in HOSTS {
        builder = builder.resolve(host, emu.addr());
    }
    builder.build().unwrap()
}

/// The fixture: APP federated with app/web (issuer trusted) and granted on VAULT; SP with a
/// client secret; a few objects.
async fn fixture() -> Emulator {
    let emu = Emulator::start().await.unwrap();
    let entra = emu.entra();
    entra.trust_issuer(issuer());
    entra.add_federated_credential(
        TENANT,
        APP,
        ISSUER,
        "system:serviceaccount:app:web",
        AUDIENCE,
    );
    entra.add_client_secret(TENANT, SP, "right");
    let v = emu.vault(VAULT);
    v.grant(APP).grant(SP);
    v.put_secret("db-password", SecretVersion::new(V2, "new", 200))
        .put_secret("db-password", SecretVersion::new(V1, "old", 100));
    v.put_secret(
        "web-tls",
        SecretVersion {
            version: V1.into(),
            value: "-----BEGIN PRIVATE KEY-----\n…".into(),
            content_type: Some("application/x-pem-file".into()),
            kid: Some(format!("{KV}/keys/web-tls/{V1}")),
            created: 100,
            enabled: true,
        },
    );
    v.put_secret("off", SecretVersion::new(V1, "on", 100))
        .put_secret("off", SecretVersion::new(V2, "x", 200).disabled());
    v.put_key(
        "rsa",
        V1,
        json!({"kty":"RSA","n":"jjyunHjWkDTNGYhY","e":"AQAB","key_ops":["sign","verify"]}),
        1,
        true,
    );
    let cer = base64::engine::general_purpose::STANDARD.encode(emu.ca_der());
    v.put_certificate("web", V1, &cer, 1, true);
    v.put_certificate_with_secret("bundle", V2, &cer, "UEZY", "application/x-pkcs12", 5, true);
    emu
}

/// How a request authenticates.
#[derive(Clone)]
enum Auth {
    None,
    /// A token for APP from the federated exchange.
    App,
    /// A token for SP from the US Government authority.
    Gov,
    /// A token for APP that has already expired.
    Expired,
    Raw(&'static str),
}

#[derive(Clone)]
enum Send {
    Get(String),
    /// POST a form.
    Form(String, Vec<(String, String)>),
    /// POST a raw body with a content type.
    Body(String, &'static str, &'static str),
    /// GET with extra headers (IMDS/NMI; `{LOCAL}` is the local endpoint).
    GetWith(String, Vec<(&'static str, &'static str)>),
}

#[derive(Clone)]
enum Check {
    Header(&'static str, String),
    HeaderContains(&'static str, String),
    /// JSON pointer equals.
    Eq(&'static str, Value),
    StartsWith(&'static str, String),
    Contains(&'static str, String),
    Absent(&'static str),
    Text(&'static str),
}

#[derive(Clone)]
struct Step {
    send: Send,
    auth: Auth,
    http1: bool,
    status: u16,
    checks: Vec<Check>,
}

fn get(url: impl Into<String>, auth: Auth, status: u16, checks: Vec<Check>) -> Step {
    Step {
        send: Send::Get(url.into()),
        auth,
        http1: false,
        status,
        checks,
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn exchange(url: &str, pairs: &[(&str, &str)], status: u16, checks: Vec<Check>) -> Step {
    Step {
        send: Send::Form(url.to_owned(), form(pairs)),
        auth: Auth::None,
        http1: false,
        status,
        checks,
    }
}

fn federated(assertion: &str, status: u16, checks: Vec<Check>) -> Step {
    exchange(
        &format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("scope", "https://vault.azure.net/.default"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
        status,
        checks,
    )
}

fn sp_exchange(secret: &str, scope: &str, status: u16, checks: Vec<Check>) -> Step {
    exchange(
        &format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", SP),
            ("client_secret", secret),
            ("scope", scope),
        ],
        status,
        checks,
    )
}

fn local(
    path: &str,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    checks: Vec<Check>,
) -> Step {
    Step {
        send: Send::GetWith(format!("{{LOCAL}}{path}"), headers),
        auth: Auth::None,
        http1: true,
        status,
        checks,
    }
}

fn code(c: u64) -> Check {
    Check::Eq("/error_codes/0", json!(c))
}

fn s(x: &str) -> String {
    x.to_owned()
}

struct Case {
    name: &'static str,
    setup: fn(&Emulator),
    steps: Vec<Step>,
}

fn case(name: &'static str, setup: fn(&Emulator), steps: Vec<Step>) -> Case {
    Case { name, setup, steps }
}

fn none(_: &Emulator) {}

/// notBefore of `dated` (2021-11-04T00:00:00Z, a UTCTime) in Unix seconds.
const DATED_NBF: i64 = 1_635_984_000;
/// notAfter of `dated` (2050-01-01T00:00:00Z, past 2049 so a GeneralizedTime) in Unix seconds.
const DATED_EXP: i64 = 2_524_608_000;

/// `dated`, a certificate whose validity is known (both ASN.1 time forms), and `junk`, whose
/// `cer` is not X.509.
fn dated_certificates(e: &Emulator) {
    let mut params = rcgen::CertificateParams::new(vec!["dated.example".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2021, 11, 4);
    params.not_after = rcgen::date_time_ymd(2050, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cer = base64::engine::general_purpose::STANDARD.encode(cert.der());
    e.vault(VAULT)
        .put_certificate("dated", V1, &cer, 300, true)
        .put_certificate("junk", V1, "AAAA", 300, true);
}

fn cases() -> Vec<Case> {
    let challenge = format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
    );
    let not_found = |kind: &str, code: &str| {
        get(
            format!("{KV}/{kind}s/nope?api-version=7.4"),
            Auth::App,
            404,
            vec![Check::Eq(
                "",
                json!({"error":{"code": code, "message": format!("A {kind} with (name/id) nope was not found in this key vault. If you recently deleted this {kind} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")}}),
            )],
        )
    };
    let forged = {
        let impostor = Issuer::generate(ISSUER).unwrap();
        impostor
            .service_account_token("app", "web", &[AUDIENCE], now() + 3600)
            .unwrap()
    };
    let tampered = {
        let t = sa_token("app", "web");
        let parts: Vec<&str> = t.split('.').collect();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({"iss": ISSUER, "sub": "system:serviceaccount:app:web", "aud": [AUDIENCE], "nbf": now(), "exp": now() + 7200})
                .to_string(),
        );
        format!("{}.{claims}.{}", parts[0], parts[2])
    };
    let secret_url = |path: &str| format!("{KV}/secrets/{path}?api-version=7.4");
    vec![
        // ---- Entra ID ----
        case(
            "federated exchange",
            none,
            vec![federated(
                &sa_token("app", "web"),
                200,
                vec![
                    Check::Eq("/token_type", json!("Bearer")),
                    Check::Eq("/expires_in", json!(3599)),
                    Check::StartsWith("/access_token", s("emulator-at.")),
                    Check::Header("cache-control", s("no-store, no-cache")),
                ],
            )],
        ),
        case(
            "answer_next replaces the next token answers, then Entra answers again",
            |e| {
                e.entra().answer_next(
                    2,
                    200,
                    json!({"access_token": "x", "padding": "p".repeat(70_000)}),
                )
            },
            vec![
                sp_exchange(
                    "wrong",
                    "https://vault.azure.net/.default",
                    200,
                    vec![
                        Check::Eq("/access_token", json!("x")),
                        Check::Eq("/padding", json!("p".repeat(70_000))),
                    ],
                ),
                sp_exchange(
                    "right",
                    "https://vault.azure.net/.default",
                    200,
                    vec![Check::Eq("/access_token", json!("x"))],
                ),
                sp_exchange(
                    "right",
                    "https://vault.azure.net/.default",
                    200,
                    vec![Check::StartsWith("/access_token", s("emulator-at."))],
                ),
            ],
        ),
        case(
            "token lifetime",
            |e| e.entra().set_token_lifetime(600),
            vec![sp_exchange(
                "right",
                "https://vault.azure.net/.default",
                200,
                vec![
                    Check::Eq("/expires_in", json!(600)),
                    Check::Eq("/ext_expires_in", json!(600)),
                ],
            )],
        ),
        case(
            "AADSTS70021 as recorded, with the presented claims",
            none,
            vec![federated(
                &sa_token("other-ns", "web"),
                400,
                vec![
                    Check::Eq("/error", json!("invalid_request")),
                    Check::Eq("/error_codes", json!([70021])),
                    Check::StartsWith(
                        "/error_description",
                        format!(
                            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{ISSUER}'. Assertion Subject: 'system:serviceaccount:other-ns:web'. Assertion Audience: '{AUDIENCE}'. https://"
                        ),
                    ),
                    Check::Contains("/error_description", s("\r\nTrace ID: ")),
                ],
            )],
        ),
        case(
            "AADSTS700211 for an issuer the app does not federate",
            none,
            vec![federated(
                &akv_emulator::issuer::unsigned_service_account_token(
                    "https://elsewhere.example/",
                    "app",
                    "web",
                    AUDIENCE,
                    now() + 3600,
                ),
                400,
                vec![
                    code(700211),
                    Check::Contains(
                        "/error_description",
                        s("assertion issuer 'https://elsewhere.example/'"),
                    ),
                    Check::Contains("/error_description", s("\r\nCorrelation ID: ")),
                ],
            )],
        ),
        case(
            "AADSTS700027 for another key of the same issuer",
            none,
            vec![federated(
                &forged,
                401,
                vec![
                    code(700027),
                    Check::Eq("/error", json!("invalid_client")),
                    Check::StartsWith(
                        "/error_description",
                        s(
                            "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found.]",
                        ),
                    ),
                ],
            )],
        ),
        case(
            "AADSTS700027 for tampered claims",
            none,
            vec![federated(
                &tampered,
                401,
                vec![
                    code(700027),
                    Check::Contains("/error_description", s("did not match")),
                ],
            )],
        ),
        case(
            "an untrusted issuer is accepted on its claims",
            |e| {
                e.entra().add_federated_credential(
                    TENANT,
                    APP,
                    "https://unsigned.example/",
                    "system:serviceaccount:app:web",
                    AUDIENCE,
                )
            },
            vec![federated(
                &akv_emulator::issuer::unsigned_service_account_token(
                    "https://unsigned.example/",
                    "app",
                    "web",
                    AUDIENCE,
                    now() + 3600,
                ),
                200,
                vec![],
            )],
        ),
        case(
            "expired assertion",
            none,
            vec![federated(
                &issuer()
                    .service_account_token("app", "web", &[AUDIENCE], now() - 10)
                    .unwrap(),
                400,
                vec![code(700024)],
            )],
        ),
        case(
            "not a JWT",
            none,
            vec![federated("not-a-jwt", 400, vec![code(50027)])],
        ),
        case(
            "unknown client",
            none,
            vec![exchange(
                &format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "unknown-app"),
                    ("scope", "https://vault.azure.net/.default"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &sa_token("app", "web")),
                ],
                400,
                vec![
                    code(700016),
                    Check::Eq("/error", json!("unauthorized_client")),
                ],
            )],
        ),
        case(
            "unknown tenant",
            none,
            vec![exchange(
                &format!("{LOGIN}/99999999-9999-9999-9999-999999999999/oauth2/v2.0/token"),
                &[("grant_type", "client_credentials")],
                400,
                vec![code(90002)],
            )],
        ),
        case(
            "AADSTS7000215 as recorded",
            none,
            vec![sp_exchange(
                "wrong",
                "https://vault.azure.net/.default",
                401,
                vec![
                    Check::Eq("/error", json!("invalid_client")),
                    Check::Eq("/error_codes", json!([7000215])),
                    Check::StartsWith(
                        "/error_description",
                        s("AADSTS7000215: Invalid client secret is provided."),
                    ),
                ],
            )],
        ),
        case(
            "scope without /.default",
            none,
            vec![sp_exchange(
                "right",
                "https://vault.azure.net",
                400,
                vec![code(1002012)],
            )],
        ),
        case(
            "scope with the OpenID Connect scopes MSAL adds (Azure's provider sends them)",
            none,
            vec![sp_exchange(
                "right",
                "https://vault.azure.net/.default openid offline_access profile",
                200,
                vec![Check::Eq("/token_type", json!("Bearer"))],
            )],
        ),
        case(
            "two resources' /.default scopes",
            none,
            vec![sp_exchange(
                "right",
                "https://vault.azure.net/.default https://management.azure.com/.default",
                400,
                vec![code(1002012)],
            )],
        ),
        case(
            "OpenID Connect scopes only",
            none,
            vec![sp_exchange(
                "right",
                "openid offline_access profile",
                400,
                vec![code(1002012)],
            )],
        ),
        case(
            "another cloud's Key Vault from the public authority",
            none,
            vec![sp_exchange(
                "right",
                "https://vault.usgovcloudapi.net/.default",
                400,
                vec![code(500011)],
            )],
        ),
        case(
            "JSON instead of a form",
            none,
            vec![Step {
                send: Send::Body(
                    format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
                    "application/json",
                    "{\"grant_type\":\"client_credentials\"}",
                ),
                auth: Auth::None,
                http1: false,
                status: 400,
                checks: vec![code(900144)],
            }],
        ),
        case(
            "GET on the token endpoint",
            none,
            vec![get(
                format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
                Auth::None,
                400,
                vec![code(900561)],
            )],
        ),
        case(
            "OpenID configuration",
            none,
            vec![get(
                format!("{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration"),
                Auth::None,
                200,
                vec![Check::Eq(
                    "/token_endpoint",
                    json!(format!("{LOGIN}/{TENANT}/oauth2/v2.0/token")),
                )],
            )],
        ),
        // ---- Key Vault: authentication ----
        case(
            "no token: the recorded challenge",
            none,
            vec![get(
                secret_url("db-password"),
                Auth::None,
                401,
                vec![
                    Check::Header("www-authenticate", challenge.clone()),
                    Check::Eq(
                        "",
                        json!({"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}),
                    ),
                ],
            )],
        ),
        case(
            "unknown token",
            none,
            vec![get(
                secret_url("db-password"),
                Auth::Raw("garbage"),
                401,
                vec![Check::Header("www-authenticate", challenge.clone())],
            )],
        ),
        case(
            "another cloud's token",
            none,
            vec![
                get(
                    secret_url("db-password"),
                    Auth::Gov,
                    401,
                    vec![Check::Eq(
                        "/error/message",
                        json!(
                            "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://vault.usgovcloudapi.net."
                        ),
                    )],
                ),
                get(
                    "https://myvault.vault.usgovcloudapi.net/secrets/db-password?api-version=7.4",
                    Auth::Gov,
                    200,
                    vec![Check::Eq("/value", json!("new"))],
                ),
            ],
        ),
        case(
            "expired token",
            none,
            vec![get(
                secret_url("db-password"),
                Auth::Expired,
                401,
                vec![Check::Eq(
                    "/error/message",
                    json!("[TokenExpired] Error validating token: 'S2S12086'."),
                )],
            )],
        ),
        case(
            "vault tenant named in the challenge and enforced",
            |e| {
                e.vault("other")
                    .set_tenant("44444444-4444-4444-4444-444444444444")
                    .grant(APP);
            },
            vec![get(
                "https://other.vault.azure.net/secrets/s?api-version=7.4",
                Auth::App,
                401,
                vec![
                    Check::HeaderContains(
                        "www-authenticate",
                        s("/44444444-4444-4444-4444-444444444444\""),
                    ),
                    Check::StartsWith("/error/message", s("AKV10032: Invalid issuer.")),
                ],
            )],
        ),
        // ---- Key Vault: objects ----
        case(
            "latest secret over HTTP/2",
            none,
            vec![get(
                secret_url("db-password"),
                Auth::App,
                200,
                vec![
                    Check::Eq("/value", json!("new")),
                    Check::Eq("/id", json!(format!("{KV}/secrets/db-password/{V2}"))),
                    Check::Eq("/attributes/enabled", json!(true)),
                    Check::Eq("/attributes/created", json!(200)),
                    Check::Absent("/kid"),
                    Check::Absent("/contentType"),
                    Check::HeaderContains("x-ms-request-id", s("00000000-0000-4000-8000-")),
                ],
            )],
        ),
        case(
            "pinned secret, case-insensitive name and trailing slash, over HTTP/1.1",
            none,
            vec![
                Step {
                    http1: true,
                    ..get(
                        secret_url(&format!("db-password/{V1}")),
                        Auth::App,
                        200,
                        vec![
                            Check::Eq("/value", json!("old")),
                            Check::Eq("/id", json!(format!("{KV}/secrets/db-password/{V1}"))),
                        ],
                    )
                },
                Step {
                    http1: true,
                    ..get(
                        secret_url("DB-Password/"),
                        Auth::App,
                        200,
                        vec![Check::Eq("/value", json!("new"))],
                    )
                },
            ],
        ),
        case(
            "certificate-backed secret",
            none,
            vec![get(
                secret_url("web-tls"),
                Auth::App,
                200,
                vec![
                    Check::Eq("/contentType", json!("application/x-pem-file")),
                    Check::Eq("/managed", json!(true)),
                    Check::Eq("/kid", json!(format!("{KV}/keys/web-tls/{V1}"))),
                ],
            )],
        ),
        case(
            "certificate with its secret: kid names the host it is read on",
            none,
            vec![
                get(
                    secret_url("bundle"),
                    Auth::App,
                    200,
                    vec![
                        Check::Eq("/value", json!("UEZY")),
                        Check::Eq("/contentType", json!("application/x-pkcs12")),
                        Check::Eq("/kid", json!(format!("{KV}/keys/bundle/{V2}"))),
                    ],
                ),
                get(
                    format!("{KV}/certificates/bundle?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![Check::Eq(
                        "/sid",
                        json!(format!("{KV}/secrets/bundle/{V2}")),
                    )],
                ),
            ],
        ),
        case(
            "disabled latest and disabled pinned version",
            none,
            vec![
                get(
                    secret_url("off"),
                    Auth::App,
                    403,
                    vec![Check::Eq(
                        "",
                        json!({"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}),
                    )],
                ),
                get(
                    secret_url(&format!("off/{V2}")),
                    Auth::App,
                    403,
                    vec![Check::Eq("/error/innererror/code", json!("SecretDisabled"))],
                ),
                get(
                    secret_url(&format!("off/{V1}")),
                    Auth::App,
                    200,
                    vec![Check::Eq("/value", json!("on"))],
                ),
            ],
        ),
        case(
            "key as JWK",
            none,
            vec![get(
                format!("{KV}/keys/rsa?api-version=7.4"),
                Auth::App,
                200,
                vec![
                    Check::Eq("/key/kid", json!(format!("{KV}/keys/rsa/{V1}"))),
                    Check::Eq("/key/kty", json!("RSA")),
                    Check::Eq("/key/e", json!("AQAB")),
                    Check::Eq("/attributes/enabled", json!(true)),
                ],
            )],
        ),
        case(
            "certificate with x5t",
            none,
            vec![get(
                format!("{KV}/certificates/web/{V1}?api-version=7.4"),
                Auth::App,
                200,
                vec![
                    Check::Eq("/id", json!(format!("{KV}/certificates/web/{V1}"))),
                    Check::Eq("/kid", json!(format!("{KV}/keys/web/{V1}"))),
                    Check::Eq("/sid", json!(format!("{KV}/secrets/web/{V1}"))),
                    Check::Contains("/x5t", s("")),
                ],
            )],
        ),
        case(
            "certificate validity as nbf/exp in a GET and both listings",
            dated_certificates,
            vec![
                get(
                    format!("{KV}/certificates/dated?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![
                        Check::Eq("/attributes/nbf", json!(DATED_NBF)),
                        Check::Eq("/attributes/exp", json!(DATED_EXP)),
                        Check::Eq("/attributes/created", json!(300)),
                    ],
                ),
                get(
                    format!("{KV}/certificates/dated/versions?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![
                        Check::Eq("/value/0/attributes/nbf", json!(DATED_NBF)),
                        Check::Eq("/value/0/attributes/exp", json!(DATED_EXP)),
                    ],
                ),
                // Name order: bundle, dated, junk, web.
                get(
                    format!("{KV}/certificates?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![
                        Check::Eq("/value/1/id", json!(format!("{KV}/certificates/dated"))),
                        Check::Eq("/value/1/attributes/nbf", json!(DATED_NBF)),
                        Check::Eq("/value/1/attributes/exp", json!(DATED_EXP)),
                        Check::Eq("/value/2/id", json!(format!("{KV}/certificates/junk"))),
                        Check::Absent("/value/2/attributes/nbf"),
                    ],
                ),
                get(
                    format!("{KV}/certificates/junk?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![
                        Check::Absent("/attributes/nbf"),
                        Check::Absent("/attributes/exp"),
                        Check::Eq("/attributes/enabled", json!(true)),
                    ],
                ),
            ],
        ),
        case(
            "secret 404",
            none,
            vec![not_found("secret", "SecretNotFound")],
        ),
        case("key 404", none, vec![not_found("key", "KeyNotFound")]),
        case(
            "certificate 404",
            none,
            vec![not_found("certificate", "CertificateNotFound")],
        ),
        case(
            "unknown version 404",
            none,
            vec![get(
                secret_url(&format!("db-password/{}", "f".repeat(32))),
                Auth::App,
                404,
                vec![Check::Eq("/error/code", json!("SecretNotFound"))],
            )],
        ),
        // ---- Key Vault: authorization ----
        case(
            "RBAC denial names caller, action, resource and vault",
            |e| {
                e.vault("other")
                    .put_secret("s", SecretVersion::new(V1, "v", 1));
            },
            vec![get(
                "https://other.vault.azure.net/secrets/s?api-version=7.4",
                Auth::App,
                403,
                vec![
                    Check::Eq("/error/code", json!("Forbidden")),
                    Check::Eq("/error/innererror/code", json!("ForbiddenByRbac")),
                    Check::StartsWith(
                        "/error/message",
                        s("Caller is not authorized to perform action on resource.\r\n"),
                    ),
                    Check::Contains("/error/message", format!("\r\nCaller: appid={APP};oid=")),
                    Check::Contains(
                        "/error/message",
                        s("\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"),
                    ),
                    Check::Contains(
                        "/error/message",
                        s("/providers/microsoft.keyvault/vaults/other/secrets/s'\r\n"),
                    ),
                    Check::Contains(
                        "/error/message",
                        s("\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: other;location="),
                    ),
                ],
            )],
        ),
        case(
            "access-policy denial",
            |e| {
                e.vault("other").use_access_policies();
            },
            vec![get(
                "https://other.vault.azure.net/keys/k?api-version=7.4",
                Auth::App,
                403,
                vec![
                    Check::Eq("/error/innererror/code", json!("AccessDenied")),
                    Check::StartsWith(
                        "/error/message",
                        format!("The user, group or application 'appid={APP};oid="),
                    ),
                    Check::Contains(
                        "/error/message",
                        s("' does not have keys get permission on key vault 'other;location="),
                    ),
                ],
            )],
        ),
        case(
            "get-only grant on an RBAC vault: objects yes, listings 403 naming the list action",
            |e| {
                e.vault(VAULT).grant_without_list(APP);
            },
            vec![
                get(secret_url("db-password"), Auth::App, 200, vec![]),
                get(
                    format!("{KV}/secrets?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![
                        Check::Eq("/error/code", json!("Forbidden")),
                        Check::Eq("/error/innererror/code", json!("ForbiddenByRbac")),
                        Check::Contains(
                            "/error/message",
                            s(
                                "\r\nAction: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'\r\n",
                            ),
                        ),
                        Check::Contains(
                            "/error/message",
                            s("/providers/microsoft.keyvault/vaults/myvault'\r\n"),
                        ),
                    ],
                ),
                get(
                    format!("{KV}/keys/?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![Check::Contains(
                        "/error/message",
                        s("\r\nAction: 'Microsoft.KeyVault/vaults/keys/read'\r\n"),
                    )],
                ),
                get(
                    format!("{KV}/certificates?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![Check::Contains(
                        "/error/message",
                        s("\r\nAction: 'Microsoft.KeyVault/vaults/certificates/read'\r\n"),
                    )],
                ),
                get(
                    format!("{KV}/secrets/db-password/versions?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![
                        Check::Contains(
                            "/error/message",
                            s(
                                "\r\nAction: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'\r\n",
                            ),
                        ),
                        Check::Contains(
                            "/error/message",
                            s(
                                "/providers/microsoft.keyvault/vaults/myvault/secrets/db-password'\r\n",
                            ),
                        ),
                    ],
                ),
            ],
        ),
        case(
            "get-only grant on an access-policy vault: listings 403 AccessDenied without list",
            |e| {
                e.vault(VAULT).use_access_policies().grant_without_list(APP);
            },
            vec![
                get(
                    format!("{KV}/keys/rsa?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![],
                ),
                get(
                    format!("{KV}/secrets?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![
                        Check::Eq("/error/innererror/code", json!("AccessDenied")),
                        Check::StartsWith(
                            "/error/message",
                            format!("The user, group or application 'appid={APP};oid="),
                        ),
                        Check::Contains(
                            "/error/message",
                            s(
                                "' does not have secrets list permission on key vault 'myvault;location=",
                            ),
                        ),
                    ],
                ),
                get(
                    format!("{KV}/certificates?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![Check::Contains(
                        "/error/message",
                        s("' does not have certificates list permission on key vault"),
                    )],
                ),
                get(
                    format!("{KV}/keys/rsa/versions?api-version=7.4"),
                    Auth::App,
                    403,
                    vec![Check::Contains(
                        "/error/message",
                        s("' does not have keys list permission on key vault"),
                    )],
                ),
            ],
        ),
        case(
            "a full grant after a get-only one lists again",
            |e| {
                e.vault(VAULT).grant_without_list(APP).grant(APP);
            },
            vec![get(
                format!("{KV}/secrets?api-version=7.4"),
                Auth::App,
                200,
                vec![Check::Eq(
                    "/value/0/id",
                    json!(format!("{KV}/secrets/bundle")),
                )],
            )],
        ),
        case(
            "collection listing: maxresults outside 1..=25, bad skiptoken, no object name",
            none,
            vec![
                get(
                    format!("{KV}/secrets?api-version=7.4&maxresults=26"),
                    Auth::App,
                    400,
                    vec![
                        Check::Eq("/error/code", json!("BadParameter")),
                        Check::Contains("/error/message", s("'26'")),
                    ],
                ),
                get(
                    format!("{KV}/keys?api-version=7.4&maxresults=0"),
                    Auth::App,
                    400,
                    vec![Check::Eq("/error/code", json!("BadParameter"))],
                ),
                get(
                    format!("{KV}/certificates?api-version=7.4&$skiptoken=zzz"),
                    Auth::App,
                    400,
                    vec![Check::Eq("/error/code", json!("BadParameter"))],
                ),
                get(
                    format!("{KV}/secrets//versions?api-version=7.4"),
                    Auth::App,
                    400,
                    vec![Check::Contains(
                        "/error/message",
                        s("missing the object name"),
                    )],
                ),
                get(
                    format!("{KV}/secrets?api-version=7.4&maxresults=25"),
                    Auth::App,
                    200,
                    vec![Check::Eq("/nextLink", Value::Null)],
                ),
            ],
        ),
        case(
            "collection listing: throttling, faults and the challenge apply",
            |e| {
                e.vault(VAULT).throttle_next(1, 3).fail_next(1, 503);
            },
            vec![
                get(
                    format!("{KV}/secrets?api-version=7.4"),
                    Auth::None,
                    401,
                    vec![Check::Header("www-authenticate", challenge.clone())],
                ),
                get(
                    format!("{KV}/secrets?api-version=7.4"),
                    Auth::App,
                    429,
                    vec![Check::Header("retry-after", s("3"))],
                ),
                get(
                    format!("{KV}/secrets?api-version=7.4"),
                    Auth::App,
                    503,
                    vec![],
                ),
                get(
                    format!("{KV}/secrets?api-version=7.4"),
                    Auth::App,
                    200,
                    vec![],
                ),
            ],
        ),
        // ---- Key Vault: faults ----
        case(
            "injected 429 with Retry-After, then served",
            |e| {
                e.vault(VAULT).throttle_next(2, 3);
            },
            vec![
                get(
                    secret_url("db-password"),
                    Auth::App,
                    429,
                    vec![
                        Check::Header("retry-after", s("3")),
                        Check::Eq(
                            "",
                            json!({"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}),
                        ),
                    ],
                ),
                get(secret_url("db-password"), Auth::App, 429, vec![]),
                get(secret_url("db-password"), Auth::App, 200, vec![]),
            ],
        ),
        case(
            "the challenge probe never consumes injected faults",
            |e| {
                e.vault(VAULT).throttle_next(1, 1);
            },
            vec![
                get(secret_url("db-password"), Auth::None, 401, vec![]),
                get(secret_url("db-password"), Auth::App, 429, vec![]),
            ],
        ),
        case(
            "injected 503, then served",
            |e| {
                e.vault(VAULT).fail_next(1, 503);
            },
            vec![
                get(
                    secret_url("db-password"),
                    Auth::App,
                    503,
                    vec![Check::Eq("/error/code", json!("ServiceUnavailable"))],
                ),
                get(secret_url("db-password"), Auth::App, 200, vec![]),
            ],
        ),
        case(
            "throttling model: two per window, then Retry-After until the window ends",
            |e| {
                e.vault(VAULT).limit_requests(2, Duration::from_secs(30));
            },
            vec![
                get(secret_url("db-password"), Auth::App, 200, vec![]),
                get(secret_url("db-password"), Auth::App, 200, vec![]),
                get(
                    secret_url("db-password"),
                    Auth::App,
                    429,
                    vec![
                        Check::Header("retry-after", s("30")),
                        Check::Eq("/error/code", json!("Throttled")),
                    ],
                ),
            ],
        ),
        case(
            "raw JSON override",
            |e| {
                e.vault(VAULT).put_raw_json(
                    "/secrets/raw",
                    200,
                    json!({"value":"verbatim","id":"x"}),
                );
            },
            vec![get(
                secret_url("raw"),
                Auth::App,
                200,
                vec![Check::Eq("", json!({"value":"verbatim","id":"x"}))],
            )],
        ),
        // ---- Key Vault: bad requests ----
        case(
            "malformed requests get 4xx errors and the server keeps serving",
            none,
            vec![
                get(
                    format!("{KV}/secrets/s"),
                    Auth::App,
                    400,
                    vec![Check::Eq("/error/code", json!("BadParameter"))],
                ),
                get(
                    format!("{KV}/nonsense/s?api-version=7.4"),
                    Auth::App,
                    400,
                    vec![Check::Eq("/error/code", json!("BadParameter"))],
                ),
                get(
                    format!("{KV}/secrets/a/b/c/d?api-version=7.4"),
                    Auth::App,
                    400,
                    vec![Check::Eq("/error/code", json!("BadParameter"))],
                ),
                get(
                    format!("{KV}/secrets/%FF%FE?api-version=7.4&x=%%%"),
                    Auth::App,
                    404,
                    vec![Check::Eq("/error/code", json!("SecretNotFound"))],
                ),
                get(
                    format!("{KV}/?api-version=7.4"),
                    Auth::App,
                    400,
                    vec![Check::Eq("/error/code", json!("BadParameter"))],
                ),
                get(
                    format!("{KV}/secrets/db-password/versions?api-version=7.4&maxresults=99"),
                    Auth::App,
                    400,
                    vec![],
                ),
                get(
                    format!("{KV}/secrets/db-password/versions?api-version=7.4&$skiptoken=zzz"),
                    Auth::App,
                    400,
                    vec![],
                ),
                get(secret_url("db-password"), Auth::App, 200, vec![]),
            ],
        ),
        // ---- IMDS and NMI ----
        case(
            "IMDS user-assigned identity",
            |e| e.node().assign_user_identity("mi-1"),
            vec![local(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id=mi-1",
                vec![("Metadata", "true")],
                200,
                vec![
                    Check::Eq("/client_id", json!("mi-1")),
                    Check::Eq("/expires_in", json!("86399")),
                    Check::Eq("/resource", json!("https://vault.azure.net")),
                    Check::Eq("/token_type", json!("Bearer")),
                    Check::StartsWith("/access_token", s("emulator-at.")),
                ],
            )],
        ),
        case(
            "IMDS without the Metadata header",
            |e| e.node().assign_user_identity("mi-1"),
            vec![local(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
                vec![],
                400,
                vec![Check::Eq(
                    "/error_description",
                    json!("Required metadata header not specified"),
                )],
            )],
        ),
        case(
            "IMDS identity not found",
            |e| e.node().assign_user_identity("mi-1"),
            vec![local(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id=mi-2",
                vec![("Metadata", "true")],
                400,
                vec![Check::Eq("/error_description", json!("Identity not found"))],
            )],
        ),
        case(
            "IMDS several identities and none named",
            |e| {
                e.node().assign_user_identity("mi-1");
                e.node().assign_user_identity("mi-2");
            },
            vec![local(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
                vec![("Metadata", "true")],
                400,
                vec![Check::StartsWith(
                    "/error_description",
                    s("Multiple user assigned identities exist"),
                )],
            )],
        ),
        case(
            "IMDS system-assigned identity",
            |e| e.node().set_system_identity("mi-system"),
            vec![local(
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
                vec![("Metadata", "true")],
                200,
                vec![Check::Eq("/client_id", json!("mi-system"))],
            )],
        ),
        case(
            "IMDS transient failures, then served",
            |e| {
                e.node().set_system_identity("mi-system");
                e.node().fail_next(&[503]);
            },
            vec![
                local(
                    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r",
                    vec![("Metadata", "true")],
                    503,
                    vec![],
                ),
                local(
                    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r",
                    vec![("Metadata", "true")],
                    200,
                    vec![],
                ),
            ],
        ),
        case(
            "NMI bound and unbound pods",
            |e| e.node().bind_pod("app", "web-0", "mi-1"),
            vec![
                local(
                    "/host/token/?resource=https://vault.azure.net",
                    vec![("podns", "app"), ("podname", "web-0")],
                    200,
                    vec![
                        Check::Eq("/clientid", json!("mi-1")),
                        Check::StartsWith("/token/access_token", s("emulator-at.")),
                    ],
                ),
                local(
                    "/host/token/?resource=https://vault.azure.net",
                    vec![("podns", "app"), ("podname", "web-1")],
                    403,
                    vec![Check::Text(
                        "no AzureAssignedIdentity found for pod:app/web-1 in assigned state\n",
                    )],
                ),
            ],
        ),
    ]
}

async fn token_for(emu: &Emulator, c: &Client, auth: &Auth) -> Option<String> {
    let post = |url: String, pairs: Vec<(String, String)>| {
        let c = c.clone();
        async move {
            let body: Value = c
                .post(url)
                .form(&pairs)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    match auth {
        Auth::None => None,
        Auth::Raw(t) => Some((*t).to_owned()),
        Auth::App => Some(
            post(
                format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", APP),
                    ("scope", "https://vault.azure.net/.default"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &sa_token("app", "web")),
                ]),
            )
            .await,
        ),
        Auth::Gov => Some(
            post(
                format!("https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"),
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", SP),
                    ("client_secret", "right"),
                    ("scope", "https://vault.usgovcloudapi.net/.default"),
                ]),
            )
            .await,
        ),
        Auth::Expired => {
            emu.entra().set_token_lifetime(-1);
            let t = Box::pin(token_for(emu, c, &Auth::App)).await;
            emu.entra().set_token_lifetime(3599);
            t
        }
    }
}

fn pointer<'a>(body: &'a Value, p: &str) -> Option<&'a Value> {
    body.pointer(p)
}

#[tokio::test]
async fn rest_shapes() {
    let mut failures = Vec::new();
    for case in cases() {
        let emu = fixture().await;
        (case.setup)(&emu);
        for (i, step) in case.steps.iter().enumerate() {
            let c = client(&emu, step.http1);
            let token = token_for(&emu, &c, &step.auth).await;
            let local = emu.local_url();
            let mut req = match &step.send {
                Send::Get(url) => c.get(url),
                Send::GetWith(url, headers) => {
                    let mut r = c.get(url.replace("{LOCAL}", &local));
                    for (k, v) in headers {
                        r = r.header(*k, *v);
                    }
                    r
                }
                Send::Form(url, pairs) => c.post(url).form(pairs),
                Send::Body(url, ct, body) => c.post(url).header("content-type", *ct).body(*body),
            };
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let at = format!("{} [step {i}]", case.name);
            if step.http1 {
                assert_eq!(resp.version(), reqwest::Version::HTTP_11, "{at}");
            } else if !matches!(step.send, Send::GetWith(..)) {
                assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{at}");
            }
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status != StatusCode::from_u16(step.status).unwrap() {
                failures.push(format!(
                    "{at}: status {status}, want {}: {text}",
                    step.status
                ));
                continue;
            }
            for check in &step.checks {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let ok = match check {
                    Check::Header(n, v) => header(n) == *v,
                    Check::HeaderContains(n, v) => header(n).contains(v.as_str()),
                    Check::Eq(p, v) => pointer(&body, p) == Some(v),
                    Check::StartsWith(p, v) => pointer(&body, p)
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.starts_with(v.as_str())),
                    Check::Contains(p, v) => pointer(&body, p)
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.contains(v.as_str())),
                    Check::Absent(p) => pointer(&body, p).is_none(),
                    Check::Text(t) => text == *t,
                };
                if !ok {
                    let what = match check {
                        Check::Header(n, v) | Check::HeaderContains(n, v) => {
                            format!("header {n} {v:?}, got {:?}", header(n))
                        }
                        Check::Eq(p, v) => format!("{p} == {v}"),
                        Check::StartsWith(p, v) => format!("{p} starts with {v:?}"),
                        Check::Contains(p, v) => format!("{p} contains {v:?}"),
                        Check::Absent(p) => format!("{p} absent"),
                        Check::Text(t) => format!("text {t:?}"),
                    };
                    failures.push(format!("{at}: want {what}: {text}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn app_token(emu: &Emulator) -> (Client, String) {
    let c = client(emu, false);
    let t = token_for(emu, &c, &Auth::App).await.unwrap();
    (c, t)
}

#[tokio::test]
async fn versions_listing_pages_with_next_link() {
    let emu = fixture().await;
    for (i, created) in [(1, 300), (2, 100), (3, 200)] {
        let mut v = SecretVersion::new(&format!("{i:032x}"), "v", created);
        v.enabled = i != 2;
        emu.vault(VAULT).put_secret("rot", v);
    }
    let (_, token) = app_token(&emu).await;
    let c = client(&emu, true);
    let mut url = format!("{KV}/secrets/rot/versions?api-version=7.4&maxresults=2");
    let mut pages = Vec::new();
    loop {
        let body: Value = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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

    // Keys are listed by "kid"; the page size limits pages without maxresults.
    emu.set_page_size(1);
    emu.vault(VAULT)
        .put_key("rsa", V2, json!({"kty":"RSA","n":"AA","e":"AQAB"}), 2, true);
    let body: Value = c
        .get(format!("{KV}/keys/rsa/versions?api-version=7.4"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    assert_eq!(body["value"][0]["kid"], format!("{KV}/keys/rsa/{V1}"));
    assert!(body["nextLink"].is_string());
}

/// Every page of a listing from `url` on, following `nextLink` until null; checks each link.
async fn all_pages(c: &Client, token: &str, mut url: String, link_prefix: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    loop {
        let resp = c.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        let body: Value = resp.json().await.unwrap();
        pages.push(body["value"].as_array().unwrap().clone());
        match body["nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(link_prefix), "{next}");
                url = next.to_owned();
            }
            None => {
                assert!(body["nextLink"].is_null(), "{body}");
                return pages;
            }
        }
    }
}

#[tokio::test]
async fn collection_listings_page_in_name_order_with_item_shapes() {
    let emu = fixture().await;
    let v = emu.vault(VAULT);
    v.put_secret("App1-b", SecretVersion::new(V1, "b", 10))
        .put_secret("app1-a", SecretVersion::new(V1, "a", 10))
        .put_secret(
            "app1-c",
            SecretVersion::new(V1, "c", 10).content_type("text/plain"),
        );
    // The key of certificate "bundle" (Key Vault creates it with the certificate).
    v.put_key(
        "bundle",
        V2,
        json!({"kty":"RSA","n":"AA","e":"AQAB"}),
        5,
        true,
    );
    let (_, token) = app_token(&emu).await;
    let c = client(&emu, true);

    // The configured page size pages the listing; every name once, in lower-case name order.
    emu.set_page_size(2);
    let pages = all_pages(
        &c,
        &token,
        format!("{KV}/secrets?api-version=7.4"),
        &format!("{KV}/secrets?api-version=7.4&$skiptoken="),
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 2, 1]
    );
    let all: Vec<&Value> = pages.iter().flatten().collect();
    let ids: Vec<&str> = all.iter().map(|x| x["id"].as_str().unwrap()).collect();
    let want: Vec<String> = [
        "app1-a",
        "App1-b",
        "app1-c",
        "bundle",
        "db-password",
        "off",
        "web-tls",
    ]
    .iter()
    .map(|n| format!("{KV}/secrets/{n}"))
    .collect();
    assert_eq!(ids, want);
    let by_name = |n: &str| {
        all[want
            .iter()
            .position(|w| w.ends_with(&format!("/{n}")))
            .unwrap()]
    };
    // The current version's attributes, no value; plain secrets are not managed.
    assert_eq!(
        *by_name("db-password"),
        json!({"id": format!("{KV}/secrets/db-password"), "attributes": {"enabled": true, "created": 200, "updated": 200, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}, "tags": {}})
    );
    assert_eq!(by_name("app1-c")["contentType"], "text/plain");
    assert!(by_name("app1-c").get("managed").is_none());
    // A certificate's secret is managed, with its content type.
    assert_eq!(by_name("bundle")["managed"], true);
    assert_eq!(by_name("bundle")["contentType"], "application/x-pkcs12");
    assert_eq!(by_name("web-tls")["managed"], true);
    // The newest version is disabled: listed, with enabled false.
    assert_eq!(by_name("off")["attributes"]["enabled"], false);
    assert_eq!(by_name("off")["attributes"]["created"], 200);

    // maxresults (and a trailing slash) page the same, and the links repeat maxresults.
    emu.set_page_size(25);
    let pages = all_pages(
        &c,
        &token,
        format!("{KV}/secrets/?api-version=7.4&maxresults=3"),
        &format!("{KV}/secrets?api-version=7.4&$skiptoken="),
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let again: Vec<&Value> = pages.iter().flatten().collect();
    assert_eq!(again, all);

    // Keys: "kid" without version; the certificate's key is managed.
    let keys: Value = c
        .get(format!("{KV}/keys?api-version=7.4"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        keys,
        json!({"value": [
            {"kid": format!("{KV}/keys/bundle"), "managed": true, "attributes": {"enabled": true, "created": 5, "updated": 5, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}, "tags": {}},
            {"kid": format!("{KV}/keys/rsa"), "attributes": {"enabled": true, "created": 1, "updated": 1, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}, "tags": {}},
        ], "nextLink": null})
    );

    // Certificates: id without version, the certificate's x5t and validity (the same as a GET
    // gives), an empty subject (as recorded).
    let cert: Value = c
        .get(format!("{KV}/certificates/web?api-version=7.4"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let validity = ["nbf", "exp"].map(|f| cert["attributes"][f].as_i64().unwrap());
    assert!(validity[0] < validity[1], "{validity:?}");
    let certs: Value = c
        .get(format!("{KV}/certificates?api-version=7.4&maxresults=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(certs["value"].as_array().unwrap().len(), 1);
    assert_eq!(certs["value"][0]["id"], format!("{KV}/certificates/bundle"));
    let next = certs["nextLink"].as_str().unwrap();
    assert!(next.ends_with("&maxresults=1"), "{next}");
    let page2: Value = c
        .get(next)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page2,
        json!({"value": [
            {"id": format!("{KV}/certificates/web"), "x5t": cert["x5t"], "subject": "", "attributes": {"enabled": true, "nbf": cert["attributes"]["nbf"], "exp": cert["attributes"]["exp"], "created": 1, "updated": 1, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}, "tags": {}},
        ], "nextLink": null})
    );

    // The log names the collection, no object, and a listing.
    let last = emu.kv_requests().pop().unwrap();
    assert_eq!(last.kind, Some(ObjectKind::Certificate));
    assert_eq!(last.name, None);
    assert!(last.listing);
    assert_eq!(last.status, 200);
}

#[tokio::test]
async fn a_seeded_get_only_grant_reads_but_does_not_list() {
    let emu = Emulator::start().await.unwrap();
    let config = akv_emulator::EmulatorConfig::from_yaml(&format!(
        "identities:\n  - clientId: {SP}\n    tenant: {TENANT}\n    clientSecret: right\n    getOnlyVaults: [other]\nvaults:\n  other:\n    secrets:\n      s:\n        - value: v\n"
    ))
    .unwrap();
    emu.seed(&config).unwrap();
    let c = client(&emu, false);
    let token: Value = c
        .post(format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP),
            ("client_secret", "right"),
            ("scope", "https://vault.azure.net/.default"),
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let get = |path: &str| {
        c.get(format!(
            "https://other.vault.azure.net{path}?api-version=7.4"
        ))
        .bearer_auth(token)
        .send()
    };
    assert_eq!(get("/secrets/s").await.unwrap().status(), StatusCode::OK);
    let listing = get("/secrets").await.unwrap();
    assert_eq!(listing.status(), StatusCode::FORBIDDEN);
    let body: Value = listing.json().await.unwrap();
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
}

#[tokio::test]
async fn latency_delays_key_vault_answers() {
    let emu = fixture().await;
    let (c, token) = app_token(&emu).await;
    emu.set_latency(Duration::from_millis(150));
    emu.vault(VAULT).set_latency(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let r = c
        .get(format!("{KV}/secrets/db-password?api-version=7.4"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// (client id, kind, name, version, status) of a logged request.
type Seen<'a> = (
    Option<&'a str>,
    Option<ObjectKind>,
    Option<&'a str>,
    Option<&'a str>,
    u16,
);

/// The log says who fetched what and when; the counters add up; the throttling model opens a
/// new window once the old one has passed.
#[tokio::test]
async fn request_log_counters_and_throttling_windows() {
    let emu = fixture().await;
    let (c, app) = app_token(&emu).await;
    let sp: Value = c
        .post(format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP),
            ("client_secret", "right"),
            ("scope", "https://vault.azure.net/.default"),
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sp = sp["access_token"].as_str().unwrap().to_owned();
    emu.vault(VAULT)
        .limit_requests(1, Duration::from_millis(400));
    let fetch = |token: String, path: &'static str| {
        let c = c.clone();
        async move {
            c.get(format!("{KV}/{path}?api-version=7.4"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        fetch(app.clone(), "secrets/db-password").await,
        StatusCode::OK
    );
    assert_eq!(
        fetch(sp.clone(), "secrets/db-password").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        fetch(sp.clone(), format!("secrets/db-password/{V1}").leak()).await,
        StatusCode::OK
    );
    assert_eq!(fetch(s("nope"), "keys/rsa").await, StatusCode::UNAUTHORIZED);

    let log = emu.kv_requests();
    let summary: Vec<Seen<'_>> = log
        .iter()
        .map(|r| {
            (
                r.client_id.as_deref(),
                r.kind,
                r.name.as_deref(),
                r.version.as_deref(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                Some(APP),
                Some(ObjectKind::Secret),
                Some("db-password"),
                None,
                200
            ),
            (
                Some(SP),
                Some(ObjectKind::Secret),
                Some("db-password"),
                None,
                429
            ),
            (
                Some(SP),
                Some(ObjectKind::Secret),
                Some("db-password"),
                Some(V1),
                200
            ),
            (None, Some(ObjectKind::Key), Some("rsa"), None, 401),
        ]
    );
    assert!(log.iter().all(|r| r.vault == VAULT && !r.listing));
    assert!(log[2].at.duration_since(log[1].at) >= Duration::from_millis(400));
    assert_eq!(emu.vault(VAULT).requests().len(), 4);
    assert_eq!(emu.vault(VAULT).gets(), 4);

    let counters = emu.counters();
    assert_eq!(counters.kv_gets.get(VAULT), Some(&4));
    assert_eq!(counters.throttled.get(VAULT), Some(&1));
    assert_eq!(counters.throttled_total(), 1);
    assert_eq!(counters.token_exchanges.get(APP), Some(&1));
    assert_eq!(counters.token_exchanges.get(SP), Some(&1));
    assert_eq!(counters.token_requests.get(SP), Some(&1));
    assert_eq!(emu.entra().requests(), 2);
    assert_eq!(emu.entra().requests_for(APP), 1);
    assert_eq!(
        emu.entra().last_host().as_deref(),
        Some("login.microsoftonline.com")
    );
    assert_eq!(emu.entra().last_form().unwrap()["client_id"], SP);
}

#[tokio::test]
async fn stopped_emulator_refuses_connections() {
    let emu = Emulator::start().await.unwrap();
    let addr = emu.addr();
    emu.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
