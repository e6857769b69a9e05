//! The pod's service-account token, used as the client assertion in workload identity.
//!
//! Entra ID verifies its signature; we only read its claims, to refuse an assertion that cannot be
//! right (expired, wrong audience, someone else's subject) before spending a round trip, to key the
//! token cache on who presented it, and to tell the user which issuer and subject to federate.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Audience of the token the CSIDriver requests for workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A service-account JWT with the claims we read. `Debug` never shows the token.
#[derive(Clone)]
pub struct Assertion {
    token: SecretString,
    /// `iss`: the cluster's OIDC issuer.
    pub issuer: String,
    /// `sub`: `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// `aud`.
    pub audiences: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion")
            .field("token", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("audiences", &self.audiences)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    aud: Audience,
    #[serde(default)]
    exp: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

/// Why an assertion was refused; the message is completed by the caller with the field it came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    /// Not three dot-separated parts.
    #[error("is not a JWT (expected three dot-separated base64url parts)")]
    Malformed,
    /// The payload is not JSON claims.
    #[error("has a payload that is not valid JSON claims")]
    BadClaims,
    /// No `exp`.
    #[error("has no exp claim")]
    NoExpiry,
    /// Past its `exp`.
    #[error(
        "expired at {expired_at} (Unix time); kubelet refreshes projected tokens, so this usually means \
         the node clock is wrong or the token was copied from elsewhere"
    )]
    Expired {
        /// `exp`, Unix seconds.
        expired_at: i64,
    },
    /// Not for the audience the mode needs.
    #[error(
        "has audience {actual:?}, not {expected:?}; set the CSIDriver tokenRequests audience to {expected}"
    )]
    Audience {
        /// The audience the mode needs.
        expected: String,
        /// `aud`.
        actual: Vec<String>,
    },
    /// Someone else's token.
    #[error(
        "has subject {actual:?} but the pod runs as {expected:?}; the token must be the pod's own \
         service-account token"
    )]
    Subject {
        /// The pod's service account subject.
        expected: String,
        /// `sub`.
        actual: String,
    },
}

impl Assertion {
    /// Reads the claims of a JWT without verifying its signature.
    pub fn parse(token: &str) -> Result<Self, AssertionError> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (Some(_header), Some(payload), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed);
        };
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| AssertionError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| AssertionError::BadClaims)?;
        let audiences = match claims.aud {
            Audience::One(a) => vec![a],
            Audience::Many(a) => a,
            Audience::None => Vec::new(),
        };
        Ok(Self {
            token: SecretString::from(token.to_owned()),
            issuer: claims.iss,
            subject: claims.sub,
            audiences,
            expires_at: claims.exp.ok_or(AssertionError::NoExpiry)?,
        })
    }

    /// The raw JWT, for the token request only.
    pub fn token(&self) -> &str {
        self.token.expose_secret()
    }

    /// Checks expiry (with `now` in Unix seconds), audience and subject.
    pub fn check(
        &self,
        now: i64,
        audience: &str,
        expected_subject: &str,
    ) -> Result<(), AssertionError> {
        if self.expires_at <= now {
            return Err(AssertionError::Expired {
                expired_at: self.expires_at,
            });
        }
        if !self.audiences.iter().any(|a| a == audience) {
            return Err(AssertionError::Audience {
                expected: audience.to_owned(),
                actual: self.audiences.clone(),
            });
        }
        if self.subject != expected_subject {
            return Err(AssertionError::Subject {
                expected: expected_subject.to_owned(),
                actual: self.subject.clone(),
            });
        }
        Ok(())
    }
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode(claims)
        )
    }

    #[test]
    fn reads_claims_and_checks_them() {
        let a = Assertion::parse(&jwt(
            r#"{"iss":"https://oidc.example/","sub":"system:serviceaccount:ns:sa","aud":["api://AzureADTokenExchange"],"exp":2000}"#,
        ))
        .unwrap();
        assert_eq!(a.issuer, "https://oidc.example/");
        assert!(
            a.check(
                1000,
                WORKLOAD_IDENTITY_AUDIENCE,
                "system:serviceaccount:ns:sa"
            )
            .is_ok()
        );
        assert_eq!(
            a.check(
                2000,
                WORKLOAD_IDENTITY_AUDIENCE,
                "system:serviceaccount:ns:sa"
            ),
            Err(AssertionError::Expired { expired_at: 2000 })
        );
        assert!(matches!(
            a.check(1000, "api://other", "system:serviceaccount:ns:sa"),
            Err(AssertionError::Audience { .. })
        ));
        assert!(matches!(
            a.check(
                1000,
                WORKLOAD_IDENTITY_AUDIENCE,
                "system:serviceaccount:other:sa"
            ),
            Err(AssertionError::Subject { .. })
        ));
    }

    #[test]
    fn single_string_audience_is_accepted() {
        let a = Assertion::parse(&jwt(r#"{"aud":"api://AzureADTokenExchange","exp":5}"#)).unwrap();
        assert_eq!(a.audiences, vec!["api://AzureADTokenExchange".to_owned()]);
    }

    #[test]
    fn malformed_tokens_are_refused_and_never_printed() {
        assert_eq!(
            Assertion::parse("abc").unwrap_err(),
            AssertionError::Malformed
        );
        assert_eq!(
            Assertion::parse("a.!!!.c").unwrap_err(),
            AssertionError::Malformed
        );
        assert_eq!(
            Assertion::parse(&jwt("5")).unwrap_err(),
            AssertionError::BadClaims
        );
        assert_eq!(
            Assertion::parse(&jwt("{}")).unwrap_err(),
            AssertionError::NoExpiry
        );
        let token = jwt(r#"{"exp":5,"secretish":"x"}"#);
        let a = Assertion::parse(&token).unwrap();
        assert!(!format!("{a:?}").contains(&token));
    }
}
