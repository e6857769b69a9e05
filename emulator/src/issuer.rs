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
    /// `{"alg":"ES256","kid":…}`, claims `aud` (array), `exp`, `iat` and `nbf` (an hour before
    /// `exp`, or `exp` itself for very old tokens), `iss`, `sub` =
    /// `system:serviceaccount:<namespace>:<service_account>` and the `kubernetes.io` block.
    pub fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        expires_at: i64,
    ) -> Result<String, IssuerError> {
        let issued = expires_at - 3600;
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
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Verdict::BadSignature;
        };
        let header: Option<Value> = B64URL
            .decode(h.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(header) = header else {
            return Verdict::BadSignature;
        };
        if header["alg"] != "ES256" || header["kid"].as_str().is_some_and(|k| k != self.0.kid) {
            return Verdict::KeyNotFound;
        }
        let Ok(signature) = B64URL.decode(s.trim_end_matches('=')) else {
            return Verdict::BadSignature;
        };
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.0.key.public_key().as_ref());
        match public.verify(format!("{h}.{p}").as_bytes(), &signature) {
            Ok(()) => Verdict::Valid,
            Err(_) => Verdict::BadSignature,
        }
    }
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
        assert_eq!(c["nbf"], 2_000_000_000 - 3600);

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
        assert_eq!(
            B64URL
                .decode(jwks["keys"][0]["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }
}
