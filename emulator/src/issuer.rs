//! Kubernetes service-account token issuers. A cluster signs projected tokens with its own key and
//! publishes the public half at `{issuer}/openid/v1/jwks`; Entra ID fetches that to verify the
//! client assertions of workload identity. An [`Issuer`] here holds an ES256 (P-256) key, mints
//! tokens shaped like kubelet's, and lets the emulated Entra verify them, so a test can tell a
//! genuine assertion from a forged or tampered one.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

/// The audience kubelet requests for workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

/// DER prefix of a P-256 SubjectPublicKeyInfo; followed by the 65-byte uncompressed point.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a key could not be made or a token signed.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// ring could not generate or use the key.
    #[error("ES256 key operation failed")]
    Crypto,
    /// A JWKS without an RSA or P-256 key.
    #[error("the JWKS has no RSA or EC P-256 key")]
    NoKeys,
}

/// What verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    /// No key with the token's `kid`, or not ES256: Entra cannot find a key to check it with.
    KeyNotFound,
    /// The signature does not match the header and claims.
    BadSignature,
}

struct Inner {
    url: String,
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

/// A service-account token issuer with its signing key. Cloning shares the key.
#[derive(Clone)]
pub struct Issuer(Arc<Inner>);

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.0.url)
            .field("kid", &self.0.kid)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// A new issuer `url` (the `iss` claim, exactly as federated credentials name it) with a fresh
    /// P-256 key.
    pub fn generate(url: &str) -> Result<Self, IssuerError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| IssuerError::Crypto)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| IssuerError::Crypto)?;
        // Kubernetes' key id: base64url SHA-256 of the DER public key.
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let kid = B64URL.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(Self(Arc::new(Inner {
            url: url.to_owned(),
            key,
            kid,
            rng,
        })))
    }

    /// The issuer URL (`iss`).
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// The `kid` of its key.
    pub fn key_id(&self) -> &str {
        &self.0.kid
    }

    /// The JWKS document a cluster serves at `{issuer}/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        let point = self.0.key.public_key().as_ref();
        let (x, y) = point.get(1..33).zip(point.get(33..65)).unwrap_or_default();
        json!({ "keys": [{
            "use": "sig", "kty": "EC", "kid": self.0.kid, "crv": "P-256", "alg": "ES256",
            "x": B64URL.encode(x), "y": B64URL.encode(y),
        }]})
    }

    /// The OIDC discovery document a cluster serves at `{issuer}/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        let base = self.0.url.trim_end_matches('/');
        json!({
            "issuer": self.0.url,
            "jwks_uri": format!("{base}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// A projected service-account token as kubelet gets it from the API server: header
    /// `{"alg":"ES256","kid":…}`, claims `aud` (array), `exp`, `iat` and `nbf` (now, or an hour
    /// before `exp` if that is earlier, so an already-expired token is consistent), `iss`, `sub` =
    /// `system:serviceaccount:<namespace>:<service_account>` and the `kubernetes.io` block.
    pub fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        expires_at: i64,
    ) -> Result<String, IssuerError> {
        let issued = crate::clock::now().min(expires_at.saturating_sub(3600));
        self.sign(&json!({
            "aud": audiences, "exp": expires_at, "iat": issued, "nbf": issued, "iss": self.0.url,
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": { "name": service_account, "uid": "9b7c1f0e-0000-4000-8000-000000000001" },
            },
        }))
    }

    /// Signs arbitrary claims (for tokens no kubelet would issue).
    pub fn sign(&self, claims: &Value) -> Result<String, IssuerError> {
        let header = json!({ "alg": "ES256", "kid": self.0.kid });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = self
            .0
            .key
            .sign(&self.0.rng, signing_input.as_bytes())
            .map_err(|_| IssuerError::Crypto)?;
        Ok(format!(
            "{signing_input}.{}",
            B64URL.encode(signature.as_ref())
        ))
    }

    /// Checks `token`'s signature against this issuer's key, as Entra does with the JWKS.
    pub(crate) fn verify(&self, token: &str) -> Verdict {
        let Some((header, signing_input, signature)) = split(token) else {
            return Verdict::BadSignature;
        };
        if header["alg"] != "ES256" || header["kid"].as_str().is_some_and(|k| k != self.0.kid) {
            return Verdict::KeyNotFound;
        }
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.0.key.public_key().as_ref());
        match public.verify(signing_input.as_bytes(), &signature) {
            Ok(()) => Verdict::Valid,
            Err(_) => Verdict::BadSignature,
        }
    }
}

/// A public key from a cluster's JWKS.
#[derive(Clone, Debug)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
}

/// The public keys of an issuer whose signing key the emulator does not hold (a real cluster's,
/// from `kubectl get --raw /openid/v1/jwks`): verification only, RS256 or ES256, as Entra does.
#[derive(Clone, Debug)]
pub(crate) struct Jwks(Vec<(Option<String>, PublicKey)>);

impl Jwks {
    /// The usable keys of a JWKS document; an error if it has none.
    pub(crate) fn parse(jwks: &Value) -> Result<Self, IssuerError> {
        let field = |k: &Value, name: &str| {
            k[name]
                .as_str()
                .and_then(|v| B64URL.decode(v.trim_end_matches('=')).ok())
        };
        let keys: Vec<(Option<String>, PublicKey)> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| {
                let kid = k["kid"].as_str().map(str::to_owned);
                match (k["kty"].as_str(), k["crv"].as_str()) {
                    (Some("RSA"), _) => Some((
                        kid,
                        PublicKey::Rsa {
                            n: field(k, "n")?,
                            e: field(k, "e")?,
                        },
                    )),
                    (Some("EC"), Some("P-256")) => {
                        let mut point = vec![4u8];
                        point.extend(field(k, "x")?);
                        point.extend(field(k, "y")?);
                        Some((kid, PublicKey::P256(point)))
                    }
                    _ => None,
                }
            })
            .collect();
        if keys.is_empty() {
            return Err(IssuerError::NoKeys);
        }
        Ok(Self(keys))
    }

    pub(crate) fn verify(&self, token: &str) -> Verdict {
        let Some((header, signing_input, signature)) = split(token) else {
            return Verdict::BadSignature;
        };
        let kid = header["kid"].as_str();
        let candidates = self
            .0
            .iter()
            .filter(|(k, _)| kid.is_none() || k.as_deref() == kid);
        let mut found = false;
        for (_, key) in candidates {
            let ok = match (header["alg"].as_str(), key) {
                (Some("RS256"), PublicKey::Rsa { n, e }) => {
                    ring::signature::RsaPublicKeyComponents { n, e }
                        .verify(
                            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                            signing_input.as_bytes(),
                            &signature,
                        )
                        .is_ok()
                }
                (Some("ES256"), PublicKey::P256(point)) => {
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                        .verify(signing_input.as_bytes(), &signature)
                        .is_ok()
                }
                _ => continue,
            };
            found = true;
            if ok {
                return Verdict::Valid;
            }
        }
        if found {
            Verdict::BadSignature
        } else {
            Verdict::KeyNotFound
        }
    }
}

/// (header, signing input, signature) of a compact JWS.
fn split(token: &str) -> Option<(Value, &str, Vec<u8>)> {
    let (signing_input, s) = token.rsplit_once('.')?;
    let (h, p) = signing_input.split_once('.')?;
    if p.contains('.') {
        return None;
    }
    let header: Value =
        serde_json::from_slice(&B64URL.decode(h.trim_end_matches('=')).ok()?).ok()?;
    let signature = B64URL.decode(s.trim_end_matches('=')).ok()?;
    Some((header, signing_input, signature))
}

/// A service-account token with no valid signature (the signature segment is a fixed string): for
/// issuers the emulator has no key of, which it trusts on claims alone, and for tests of the
/// daemon's own checks, which never look at signatures.
pub fn unsigned_service_account_token(
    issuer: &str,
    namespace: &str,
    service_account: &str,
    audience: &str,
    expires_at: i64,
) -> String {
    let header = json!({ "alg": "RS256", "kid": "unsigned" });
    let claims = json!({
        "aud": [audience], "exp": expires_at, "iat": expires_at - 3600, "nbf": expires_at - 3600,
        "iss": issuer, "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": service_account, "uid": "9b7c1f0e-0000-4000-8000-000000000001" },
        },
    });
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    )
}

/// The `csi.storage.k8s.io/serviceAccount.tokens` volume attribute the driver passes to providers:
/// `{"<audience>":{"token":"…","expirationTimestamp":"…"}}`.
pub fn tokens_attribute(audience: &str, token: &str, expiry_rfc3339: &str) -> String {
    json!({ audience: { "token": token, "expirationTimestamp": expiry_rfc3339 } }).to_string()
}

/// The claims of a JWT, without checking anything; `None` unless it is three parts with a JSON
/// object in the middle.
pub(crate) fn claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_tampering_is_caught() {
        let issuer = Issuer::generate("https://oidc.example/").unwrap();
        let token = issuer
            .service_account_token("app", "web", &[WORKLOAD_IDENTITY_AUDIENCE], 2_000_000_000)
            .unwrap();
        assert_eq!(issuer.verify(&token), Verdict::Valid);
        let c = claims(&token).unwrap();
        assert_eq!(c["sub"], "system:serviceaccount:app:web");
        assert_eq!(c["aud"], json!([WORKLOAD_IDENTITY_AUDIENCE]));
        assert_eq!(c["iss"], "https://oidc.example/");
        assert!(c["nbf"].as_i64().unwrap() <= crate::clock::now());

        // Claims swapped under the same signature.
        let forged_claims = B64URL.encode(
            json!({"iss": "https://oidc.example/", "sub": "system:serviceaccount:kube-system:admin"})
                .to_string(),
        );
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(issuer.verify(&forged), Verdict::BadSignature);

        // Another key with the same issuer URL.
        let impostor = Issuer::generate("https://oidc.example/").unwrap();
        let other = impostor
            .service_account_token("app", "web", &["a"], 2_000_000_000)
            .unwrap();
        assert_eq!(issuer.verify(&other), Verdict::KeyNotFound, "other kid");
        assert_eq!(
            issuer.verify(&unsigned_service_account_token(
                "https://oidc.example/",
                "a",
                "b",
                "c",
                1
            )),
            Verdict::KeyNotFound
        );
        assert_eq!(issuer.verify("a.b"), Verdict::BadSignature);

        let jwks = issuer.jwks();
        assert_eq!(jwks["keys"][0]["kid"], issuer.key_id());
        // The published JWKS verifies the issuer's tokens, as Entra does with a real cluster's.
        let published = Jwks::parse(&jwks).unwrap();
        assert_eq!(published.verify(&token), Verdict::Valid);
        assert_eq!(published.verify(&forged), Verdict::BadSignature);
        assert_eq!(published.verify(&other), Verdict::KeyNotFound);
        assert!(Jwks::parse(&json!({"keys": [{"kty": "oct"}]})).is_err());
        assert_eq!(
            B64URL
                .decode(jwks["keys"][0]["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }
}
